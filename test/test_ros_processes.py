"""driver_node and controller_node as separate processes, started from their console scripts, fed
1.5 MB bgra8 1024 x 384 images at 20 Hz for 10 s from this process over real DDS (the shipped
Fast DDS profile, as scripts/ros_env.sh and the launch files set it).

Every frame sent is accounted for by the driver itself: predicted, refused with a reason, dropped
while busy (latest-only), failed, or lost in transport (gaps in the stamps, or before the first /
after the last frame it received); the counts add up, and with the shipped profile none is lost.
No timing is asserted (a loaded machine may refuse stale frames or drop them while busy).
"""

from __future__ import annotations

import os

import pytest
from ros_process_helpers import measure

from min2real_ros.cli.demo import bundled_model_path

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_every_frame_between_processes_is_predicted_refused_dropped_or_reported_lost(tmp_path):
    assert os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE", "").endswith("fastdds_large_data.xml")
    result = measure(bundled_model_path(), rate_hz=20.0, seconds=10.0, log_dir=tmp_path / "logs")
    logs = "\n".join((tmp_path / "logs" / f"{name}.log").read_text()[-3000:] for name in ("driver", "controller"))
    assert result["sent"] == 200
    assert result["received_adds_up"], (result, logs)  # received = predicted + refused + dropped + failed
    assert result["sent_adds_up"], (result, logs)  # sent = received + malformed + lost
    lost = {key: result[key] for key in ("lost_total", "lost", "lost_head", "lost_tail")}
    assert result["lost_total"] == 0, (lost, result, logs)  # the shipped profile loses nothing
    assert result["malformed"] == 0 and result["errors"] == 0
    assert result["published"] > 0 and result["paths_received_here"] == result["published"]
    assert result["refused"] == 0 or result["last_refusal"]  # a refusal always carries its reason
    assert result["controls"] > 0  # the controller process turned the Paths into commands
    assert result["exit_codes"] == [0, 0], logs  # both stop cleanly on SIGINT
