"""ROS-free PID controller: Garage semantics, constants and the sign conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from min2real.contract import DEFAULT_CONTRACT
from min2real.runtime.controller import ControllerConfig, PIDController, PIDGains, WaypointController
from min2real.runtime.types import VehicleControl
from min2real.runtime.vehicle_commands import (
    COAST_LINEAR_X,
    ackermann_from_control,
    carla_control_fields,
    control_from_twist,
    steer_from_ackermann,
    twist_from_control,
)

MAX_STEER_RAD = math.radians(70.0)


def _arc(turn_rad_per_m: float, speed_mps: float, dt: float = 0.5, count: int = 8) -> np.ndarray:
    """Waypoints on a circular arc in REP 103 (positive curvature turns LEFT)."""
    s = speed_mps * dt * np.arange(1, count + 1)
    if abs(turn_rad_per_m) < 1e-9:
        return np.stack([s, np.zeros_like(s)], axis=1)
    radius = 1.0 / turn_rad_per_m
    return np.stack([radius * np.sin(s / radius), radius * (1 - np.cos(s / radius))], axis=1)


def test_garage_defaults():
    cfg = ControllerConfig()
    assert (cfg.turn.kp, cfg.turn.ki, cfg.turn.kd, cfg.turn.window) == (1.25, 0.75, 0.3, 20)
    assert (cfg.speed.kp, cfg.speed.ki, cfg.speed.kd, cfg.speed.window) == (5.0, 0.5, 1.0, 20)
    assert (cfg.aim_distance_fast_m, cfg.aim_distance_slow_m, cfg.aim_distance_threshold_mps) == (3.0, 2.25, 5.5)
    assert (cfg.brake_speed_mps, cfg.brake_ratio, cfg.clip_delta_mps, cfg.clip_throttle) == (0.4, 1.1, 0.25, 0.75)
    assert cfg.waypoint_dt_s == DEFAULT_CONTRACT.waypoint_dt_s


def test_pid_window_mean_integral_and_last_difference():
    pid = PIDController(PIDGains(kp=2.0, ki=1.0, kd=0.5, window=4))
    assert pid.step(1.0) == pytest.approx(2.0 + 1.0 * (1.0 / 4) + 0.5 * 1.0)
    assert pid.step(3.0) == pytest.approx(6.0 + (4.0 / 4) + 0.5 * 2.0)
    pid.reset()
    assert pid.step(1.0) == pytest.approx(2.0 + 0.25 + 0.5)


def test_desired_speed_matches_garage_for_both_spacings():
    rng = np.random.default_rng(0)
    garage_wps = np.cumsum(rng.uniform(0.5, 2.0, size=(8, 2)), axis=0)  # every 0.25 s
    garage = 2.0 * np.linalg.norm(garage_wps[1] - garage_wps[3])
    quarter = WaypointController(ControllerConfig(waypoint_dt_s=0.25))
    assert quarter.desired_speed_mps(garage_wps) == pytest.approx(garage)
    ours = garage_wps[1::2]  # the same trajectory every 0.5 s: 0.5 s, 1.0 s, ...
    assert WaypointController().desired_speed_mps(ours) == pytest.approx(np.linalg.norm(ours[1] - ours[0]) / 0.5)
    assert WaypointController().desired_speed_mps(ours) == pytest.approx(garage)


def test_left_curving_path_gives_negative_carla_steer_and_positive_rep103_commands():
    controller = WaypointController()
    step = None
    for _ in range(3):
        step = controller.compute(_arc(0.08, 6.0), speed_mps=5.0)
    assert step.control.steer < 0  # CARLA: positive = right
    assert carla_control_fields(step.control)["steer"] < 0
    drive = ackermann_from_control(step.control, step.desired_speed_mps, MAX_STEER_RAD)
    assert drive.steering_angle_rad > 0 and drive.speed_mps == pytest.approx(step.desired_speed_mps)  # + = left
    linear, angular = twist_from_control(step.control, MAX_STEER_RAD)
    assert linear > 0 and angular > 0  # carla_twist_to_control: angular.z = wheel angle, positive = left
    right = WaypointController().compute(_arc(-0.08, 6.0), speed_mps=5.0)
    assert right.control.steer > 0


def test_throttle_when_slow_brake_when_too_fast_or_stopping():
    controller = WaypointController()
    go = controller.compute(_arc(0.0, 6.0), speed_mps=2.0)
    assert go.control.throttle > 0 and go.control.brake == 0.0 and not go.braking
    assert go.control.throttle <= 0.75
    too_fast = WaypointController().compute(_arc(0.0, 4.0), speed_mps=4.0 * 1.2)
    assert too_fast.braking and too_fast.control.brake == 1.0 and too_fast.control.throttle == 0.0
    stop = WaypointController().compute(np.zeros((8, 2)) + [0.05, 0.0], speed_mps=1.0)
    assert stop.braking and stop.control.steer == 0.0
    assert ackermann_from_control(stop.control, stop.desired_speed_mps, 1.0).speed_mps == 0.0


def test_aim_distance_depends_on_desired_speed():
    slow = WaypointController().compute(_arc(0.0, 3.0), speed_mps=3.0)  # wps at 1.5, 3.0, ... m
    np.testing.assert_allclose(slow.aim_point_ego, [3.0, 0.0])  # first >= 2.25 m
    fast = WaypointController().compute(_arc(0.0, 8.0), speed_mps=8.0)  # wps at 4, 8 m
    np.testing.assert_allclose(fast.aim_point_ego, [4.0, 0.0])


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="non-finite"):
        WaypointController().compute(np.full((8, 2), np.nan), 1.0)
    with pytest.raises(ValueError, match="expected"):
        WaypointController().compute(np.zeros((8, 3)), 1.0)


# ---- vehicle_commands: each output means what its ros-bridge consumer reads ---------------------
def _carla_twist_to_control(linear_x, angular_z, max_steering_angle):
    """carla-simulator/ros-bridge carla_twist_to_control.py TwistToVehicleControl.twist_received,
    restated (MAX_LON_ACCELERATION 10; max_steering_angle from vehicle_info, radians)."""
    if linear_x == 0.0 and angular_z == 0.0:
        return {"throttle": 0.0, "brake": 1.0, "steer": 0.0, "reverse": False}
    out = {"brake": 0.0, "reverse": False}
    if linear_x > 0:
        out["throttle"] = min(10.0, linear_x) / 10.0
    else:
        out["reverse"] = True
        out["throttle"] = max(-10.0, linear_x) / -10.0
    if angular_z > 0:
        out["steer"] = -min(max_steering_angle, angular_z) / max_steering_angle
    else:
        out["steer"] = -max(-max_steering_angle, angular_z) / max_steering_angle
    return out


@pytest.mark.parametrize(
    "control",
    [
        VehicleControl(steer=-0.3, throttle=0.6, brake=0.0),
        VehicleControl(steer=0.25, throttle=0.1, brake=0.0),
        VehicleControl(steer=1.0, throttle=0.75, brake=0.0),
        VehicleControl(steer=-0.4, throttle=0.0, brake=0.0),  # coasting
        VehicleControl(steer=0.0, throttle=0.0, brake=1.0),
        VehicleControl(steer=0.5, throttle=0.0, brake=1.0),  # braking: steer is not sent
    ],
)
def test_twist_means_what_carla_twist_to_control_reads(control):
    linear_x, angular_z = twist_from_control(control, MAX_STEER_RAD)
    bridge = _carla_twist_to_control(linear_x, angular_z, MAX_STEER_RAD)
    assert not bridge["reverse"]
    if control.brake > 0:
        assert bridge == {"throttle": 0.0, "brake": 1.0, "steer": 0.0, "reverse": False}
    else:
        assert bridge["brake"] == 0.0
        assert bridge["steer"] == pytest.approx(control.steer)
        assert bridge["throttle"] == pytest.approx(control.throttle, abs=COAST_LINEAR_X / 10 + 1e-12)
    decoded = control_from_twist(linear_x, angular_z, MAX_STEER_RAD)
    assert (decoded.steer, decoded.throttle, decoded.brake, decoded.reverse) == pytest.approx(
        (bridge["steer"], bridge["throttle"], bridge["brake"], bridge["reverse"])
    )


def test_twist_inverse_follows_the_bridge_for_arbitrary_twists():
    rng = np.random.default_rng(4)
    for linear_x, angular_z in rng.uniform([-15, -2], [15, 2], size=(50, 2)):
        bridge = _carla_twist_to_control(linear_x, angular_z, MAX_STEER_RAD)
        decoded = control_from_twist(linear_x, angular_z, MAX_STEER_RAD)
        assert (decoded.steer, decoded.throttle, decoded.brake, decoded.reverse) == pytest.approx(
            (bridge["steer"], bridge["throttle"], bridge["brake"], bridge["reverse"])
        )
    # 0.2 rad of left wheel angle, not a yaw rate: steer = -0.2 / max wheel angle
    assert control_from_twist(5.0, 0.2, MAX_STEER_RAD).steer == pytest.approx(-0.2 / MAX_STEER_RAD)


def test_ackermann_means_what_carla_ackermann_control_reads():
    # carla_ackermann_control: target.steering_angle = -msg.steering_angle; steer = target / max angle.
    control = VehicleControl(steer=-0.5, throttle=0.4, brake=0.0)
    drive = ackermann_from_control(control, 6.0, MAX_STEER_RAD)
    assert drive.steering_angle_rad == pytest.approx(0.5 * MAX_STEER_RAD)  # left wheel angle
    assert steer_from_ackermann(drive.steering_angle_rad, MAX_STEER_RAD) == pytest.approx(control.steer)
    assert (drive.speed_mps, drive.acceleration_mps2, drive.jerk_mps3) == (6.0, 0.0, 0.0)
    assert ackermann_from_control(VehicleControl(0.2, 0.0, 1.0), 6.0, MAX_STEER_RAD).speed_mps == 0.0
    with pytest.raises(ValueError, match="max steering angle"):
        twist_from_control(control, 0.0)
    with pytest.raises(ValueError, match="target speed"):
        ackermann_from_control(control, float("nan"), MAX_STEER_RAD)


def test_ackermann_output_is_the_unstamped_message_carla_ackermann_control_subscribes():
    from upstream import require

    require("ackermann_msgs")  # built from ../shared/third_party by scripts/setup_upstream.sh
    from min2real_ros.nodes.controller_node import import_output_type

    message_class = import_output_type("ackermann")
    assert message_class.__name__ == "AckermannDrive" and not hasattr(message_class(), "header")


# ---- watchdog: future stamps and receipt time -------------------------------------------------
def test_watchdog_refuses_waypoints_stamped_ahead_beyond_the_tolerance():
    from min2real.runtime.controller import Watchdog, WatchdogLimits

    watchdog = Watchdog(WatchdogLimits(waypoint_timeout_s=0.5, speed_timeout_s=0.5, future_stamp_tolerance_s=0.1))
    waypoints = _arc(0.0, 5.0)
    for ahead_s in (10.0, 3.0, 0.2):
        reason = watchdog.offer_waypoints(waypoints, stamp_s=100.0 + ahead_s, now_s=100.0)
        assert reason is not None and "ahead of the controller clock" in reason
    watchdog.offer_speed(4.0, 100.0, 100.0)
    assert watchdog.check(100.0)[0] == "no waypoints yet"  # none of them is followed
    assert watchdog.offer_waypoints(waypoints, stamp_s=100.05, now_s=100.0) is None  # within tolerance


def test_watchdog_brakes_one_timeout_after_the_last_valid_path_whatever_its_stamp():
    from min2real.runtime.controller import Watchdog, WatchdogLimits

    watchdog = Watchdog(WatchdogLimits(waypoint_timeout_s=0.5, speed_timeout_s=10.0, future_stamp_tolerance_s=0.1))
    # Stamped at the tolerance's edge ahead: by its stamp it would stay "fresh" 0.6 s; by receipt 0.5 s.
    watchdog.offer_waypoints(_arc(0.0, 5.0), stamp_s=200.1, now_s=200.0)
    watchdog.offer_speed(4.0, 200.0, 200.0)
    assert watchdog.check(200.49)[0] is None
    reason = watchdog.check(200.51)[0]
    assert reason is not None and "waypoints are 0.51" in reason
    # A stale stamp brakes even when the Path just arrived (pipeline latency counts).
    watchdog.offer_waypoints(_arc(0.0, 5.0), stamp_s=199.0, now_s=200.6)
    assert "old" in watchdog.check(200.6)[0]
