"""ROS-free frame assembly: freshness checks, nearest LiDAR, latest-only slot, rates."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from min2real.runtime.frame_assembly import CameraFrame, FrameAssembler, FreshnessLimits, LatestSlot, RateMeter

IMAGE = np.zeros((4, 6, 3), np.uint8)


def _ready(limits=None, now=100.0):
    assembler = FrameAssembler(limits or FreshnessLimits())
    assembler.update_speed(2.0, now - 0.1)
    assembler.update_target(np.array([8.0, 1.0]), now - 0.1)
    assembler.update_lidar(np.ones((5, 3), np.float32), now - 0.30)
    assembler.update_lidar(np.full((7, 3), 2.0, np.float32), now - 0.05)
    return assembler


def test_fresh_inputs_assemble_with_nearest_lidar():
    result = _ready().assemble(CameraFrame(IMAGE, None, 99.96), now_s=100.0)
    assert result.reason is None and result.frame is not None
    assert result.frame.lidar_points_ego.shape == (7, 3)  # 0.01 s from the camera, not the 0.26 s one
    assert result.lidar_skew_s == pytest.approx(0.01)
    assert result.frame.speed_mps == 2.0 and result.frame.command is None
    np.testing.assert_array_equal(result.frame.target_point_ego, [8.0, 1.0])


@pytest.mark.parametrize(
    ("mutate", "camera_stamp", "reason"),
    [
        (lambda a: None, 99.0, "camera frame is 1.000 s old"),
        (lambda a: a.update_speed(2.0, 90.0), 100.0, "speed is 10.000 s old"),
        (lambda a: a.update_target(np.zeros(2), 95.0), 100.0, "target point is 5.000 s old"),
    ],
)
def test_stale_inputs_give_a_reason_and_no_frame(mutate, camera_stamp, reason):
    assembler = _ready()
    mutate(assembler)
    result = assembler.assemble(CameraFrame(IMAGE, None, camera_stamp), now_s=100.0)
    assert result.frame is None and reason in result.reason


def test_missing_inputs_and_lidar_skew():
    empty = FrameAssembler(FreshnessLimits())
    assert "no speed" in empty.assemble(CameraFrame(IMAGE, None, 100.0), 100.0).reason
    empty.update_speed(1.0, 100.0)
    assert "no target point" in empty.assemble(CameraFrame(IMAGE, None, 100.0), 100.0).reason
    empty.update_target(np.zeros(2), 100.0)
    assert "no LiDAR" in empty.assemble(CameraFrame(IMAGE, None, 100.0), 100.0).reason
    empty.update_lidar(np.ones((3, 3), np.float32), 99.5)
    assert "0.500 s from the camera frame" in empty.assemble(CameraFrame(IMAGE, None, 100.0), 100.0).reason
    camera_only = FrameAssembler(FreshnessLimits(require_lidar=False))
    camera_only.update_speed(1.0, 100.0)
    camera_only.update_target(np.zeros(2), 100.0)
    result = camera_only.assemble(CameraFrame(IMAGE, None, 100.0), 100.0)
    assert result.frame is not None and result.frame.lidar_points_ego is None


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="max_image_age_s=0"):
        FreshnessLimits(max_image_age_s=0)


def test_latest_slot_keeps_only_the_newest_and_counts_drops():
    slot: LatestSlot[int] = LatestSlot()
    for value in range(5):
        slot.put(value)
    assert slot.take(0.01) == 4 and slot.dropped == 4 and slot.received == 5
    assert slot.take(0.01) is None
    taken = []
    worker = threading.Thread(target=lambda: taken.append(slot.take(2.0)))
    worker.start()
    slot.put(9)
    worker.join(2.0)
    assert taken == [9] and slot.dropped == 4
    slot.close()
    assert slot.take(5.0) is None  # closed: returns at once


def test_rate_meter():
    meter = RateMeter(window_s=2.0)
    for index in range(21):
        meter.tick(10.0 + index * 0.05)  # 20 Hz for 1 s
    assert meter.rate_hz(11.0) == pytest.approx(20.0)
    assert meter.rate_hz(20.0) == 0.0  # everything fell out of the window


def test_inputs_stamped_ahead_of_the_clock_are_refused():
    # e.g. use_sim_time with /clock not running yet (now = 0) or a sensor on another time base:
    # without this check such inputs would count as fresh until the clock caught up.
    assembler = _ready(now=100.0)
    result = assembler.assemble(CameraFrame(IMAGE, None, 100.0), now_s=0.0)
    assert result.frame is None and "camera frame is stamped 100.000 s ahead of the node clock" in result.reason
    assembler = _ready(now=100.0)
    assembler.update_target(np.array([8.0, 1.0]), 130.0)
    result = assembler.assemble(CameraFrame(IMAGE, None, 100.0), now_s=100.0)
    assert result.frame is None and "target point is stamped 30.000 s ahead" in result.reason
    # Small lead (a sensor message arriving just before its /clock tick) stays usable.
    assert _ready(now=100.0).assemble(CameraFrame(IMAGE, None, 100.1), now_s=100.0).frame is not None
