"""The driver node, in its own process, publishes the target-speed head's output on
~/output/target_speed, stamped with the camera stamp of the frame it belongs to, for a model with
the head."""

from __future__ import annotations

import threading

import pytest
import torch
from ros_process_helpers import DRIVER, Feeder, start_nodes, stop_nodes

from min2real.contract import TARGET_SPEEDS_MPS, TINY_CONTRACT
from min2real.export import export_model
from min2real.models.model import build_model
from min2real.models.variants import variant_config

pytestmark = [pytest.mark.ros]


def test_driver_process_publishes_the_stamped_target_speed(tmp_path):
    torch.manual_seed(0)
    model = build_model(variant_config("min2real", tiny=True).replace(use_target_speed_head=True), TINY_CONTRACT)
    model_path = tmp_path / "head.onnx"
    export_model(model.eval(), TINY_CONTRACT, "sim", model_path, exporter="legacy", num_random=1)
    processes = start_nodes(model_path, 10.0, tmp_path / "logs")
    feeder = Feeder(image_hw=(96, 256), lidar_points=2000)
    received, lock = [], threading.Lock()
    try:
        from geometry_msgs.msg import Vector3Stamped

        def on_target_speed(msg):
            with lock:
                received.append(
                    (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, msg.header.frame_id, msg.vector)
                )

        feeder.node.create_subscription(Vector3Stamped, f"/{DRIVER}/output/target_speed", on_target_speed, 10)
        assert feeder.wait_for_driver(60.0), (tmp_path / "logs" / "driver.log").read_text()[-2000:]
        feeder.feed(10.0, 2.0)
        accounting = feeder.settle(30.0)
    finally:
        feeder.close()
        codes = stop_nodes(processes)
    assert accounting["published"] > 0 and codes == [0, 0]
    with lock:
        assert len(received) == accounting["published"]  # one per published Path
        sent = {round(stamp, 6) for stamp in feeder.result.sent_stamps_s}
        for stamp, frame_id, vector in received:
            assert round(stamp, 6) in sent and frame_id == "base_link"  # the camera stamp of its frame
            assert 0.0 <= vector.y <= 1.0 and vector.z in TARGET_SPEEDS_MPS
            assert vector.x == 0.0 or 0.0 < vector.x <= max(TARGET_SPEEDS_MPS)
