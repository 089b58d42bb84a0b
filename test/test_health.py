"""The driver's ROS-free health ladder, frame-loss counting and negative-speed policy."""

from __future__ import annotations

import numpy as np
import pytest

from min2real.runtime import health
from min2real.runtime.frame_assembly import CameraFrame, FrameAssembler, FreshnessLimits, RateMeter, StampGaps

THRESHOLDS = health.HealthThresholds(processing_time_warn_ms=100.0, rate_warn_ratio=0.8, rate_error_ratio=0.5)


def _snapshot(**override):
    values = dict(
        active=True,
        counts={"camera": 20, "published": 20},
        rates_hz={"camera": 20.0, "lidar": 20.0},
        expected_rates_hz={"camera": 20.0, "lidar": 20.0},
    )
    values.update(override)
    return health.HealthSnapshot(**values)


def test_ok_when_every_input_arrives_at_its_rate():
    result = health.assess(_snapshot(), THRESHOLDS)
    assert (result.level, result.message) == (health.OK, "publishing waypoints")
    assert result.values["camera_expected_rate_hz"] == "20" and result.values["camera_rate_deficit_pct"] == "0.0"


def test_a_camera_ten_times_below_its_rate_is_an_error_and_a_mild_deficit_a_warning():
    slow = health.assess(_snapshot(rates_hz={"camera": 2.0, "lidar": 20.0}), THRESHOLDS)
    assert slow.level == health.ERROR
    assert "camera arrives at 2.0 Hz, expected 20 Hz (10 %)" in slow.message
    assert slow.values["camera_rate_deficit_pct"] == "90.0"
    mild = health.assess(_snapshot(rates_hz={"camera": 20.0, "lidar": 14.0}), THRESHOLDS)
    assert mild.level == health.WARN and "lidar arrives at 14.0 Hz" in mild.message


def test_a_rate_not_yet_measurable_or_not_expected_is_no_problem():
    starting = health.assess(_snapshot(rates_hz={"camera": None, "lidar": None}), THRESHOLDS)
    assert starting.level == health.OK
    unexpected = health.assess(_snapshot(rates_hz={"camera": 1.0}, expected_rates_hz={"camera": 0.0}), THRESHOLDS)
    assert unexpected.level == health.OK


@pytest.mark.parametrize(
    ("counts", "level", "text"),
    [
        ({"camera": 0, "malformed": 3}, health.ERROR, "no valid camera frames"),
        ({"camera": 5, "errors": 1}, health.ERROR, "inference failed"),
        ({"camera": 5, "refused": 5}, health.ERROR, "no prediction"),
        ({"camera": 20, "published": 18, "lost": 2}, health.WARN, "2 camera frames lost in transport"),
        ({"camera": 20, "published": 20, "clamped": 3}, health.WARN, "negative speeds clamped"),
        ({"camera": 20, "published": 10, "dropped": 10}, health.WARN, "dropped while busy"),
    ],
)
def test_ladder_rungs(counts, level, text):
    result = health.assess(_snapshot(counts=counts, last_error="boom", last_refusal="stale"), THRESHOLDS)
    assert result.level == level and text in result.message
    assert health.assess(_snapshot(active=False, counts=counts), THRESHOLDS).message == "inactive (lifecycle)"


def test_stamp_gaps_count_the_frames_missing_between_received_stamps():
    gaps = StampGaps(expected_rate_hz=20.0)
    stamps = 100.0 + 0.05 * np.array([0, 1, 2, 5, 6, 7, 11])  # 2 missing after #2, 3 missing after #7
    lost = [gaps.add(float(s)) for s in stamps]
    assert lost == [0, 0, 0, 2, 0, 0, 3] and gaps.lost == 5
    assert gaps.add(100.0) == 0  # a stamp going backwards (replay restart) counts nothing
    jitter = StampGaps(expected_rate_hz=20.0)
    assert sum(jitter.add(t) for t in (0.0, 0.07, 0.1, 0.17)) == 0  # < 1.5 periods is jitter, not loss
    assert StampGaps(0.0).add(1.0) == 0 and StampGaps(0.0).add(5.0) == 0


def test_rate_meter_settles_after_a_full_window_and_falls_to_zero_when_a_stream_stops():
    meter = RateMeter(window_s=2.0)
    for i in range(20):
        meter.tick(0.1 * i)
    assert meter.settled_rate_hz(1.9) is None  # still starting
    assert meter.settled_rate_hz(2.0) == pytest.approx(10.0, rel=0.1)
    assert meter.settled_rate_hz(10.0) == 0.0


def _assembler(tolerance_mps=0.5):
    assembler = FrameAssembler(FreshnessLimits(require_lidar=False, negative_speed_tolerance_mps=tolerance_mps))
    assembler.update_target(np.array([10.0, 0.0]), 1.0)
    return assembler


def test_negative_speed_policy_clamps_small_and_refuses_fast_reversing():
    camera = CameraFrame(np.zeros((4, 4, 3), np.uint8), None, 1.0)
    assembler = _assembler()
    assembler.update_speed(-0.2, 1.0)
    clamped = assembler.assemble(camera, 1.0)
    assert clamped.frame is not None and clamped.frame.speed_mps == 0.0 and clamped.speed_clamped
    assembler.update_speed(-2.0, 1.0)
    refused = assembler.assemble(camera, 1.0)
    assert refused.frame is None and "reversing" in refused.reason and "negative_speed_tolerance_mps" in refused.reason
    assembler.update_speed(3.0, 1.0)
    forward = assembler.assemble(camera, 1.0)
    assert forward.frame.speed_mps == 3.0 and not forward.speed_clamped
