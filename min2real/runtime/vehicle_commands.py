"""What each controller output means: the one ROS-free place that encodes and decodes them.

The controller computes a `VehicleControl` in CARLA's convention (steer in [-1, 1], positive =
RIGHT; throttle and brake in [0, 1]). The controller node publishes it in one of three forms, each
meaning exactly what its consumer in carla-simulator/ros-bridge reads:

carla      carla_msgs/CarlaEgoVehicleControl on /carla/<role>/vehicle_control_cmd: the fields as
           they are (`carla_control_fields`).
twist      geometry_msgs/Twist on /carla/<role>/twist, read by carla_twist_to_control
           (carla_twist_to_control.py): an all-zero Twist is a full brake (throttle 0, brake 1,
           steer 0); otherwise linear.x > 0 gives throttle = min(10, linear.x) / 10 (an open-loop
           pedal, NOT a speed), linear.x <= 0 engages reverse with throttle = min(10, -linear.x) / 10,
           and angular.z is the front WHEEL ANGLE in radians, positive = LEFT (NOT a yaw rate):
           steer = -clip(angular.z, -max, max) / max with max = the vehicle's max_steer_angle from
           /carla/<role>/vehicle_info. A Twist cannot carry a partial brake: any brake is sent as
           the all-zero Twist (full brake). Coasting (no throttle, no brake) is sent as linear.x =
           COAST_LINEAR_X (> 0, a 1e-4 pedal) so the bridge keeps the forward gear: at linear.x = 0
           it would engage reverse.
ackermann  ackermann_msgs/AckermannDrive (UNSTAMPED, as carla_ackermann_control subscribes it) on
           /carla/<role>/ackermann_cmd: steering_angle = wheel angle in radians, positive = LEFT
           (carla_ackermann_control sets steer = -steering_angle / max_steering_angle); speed = the
           target speed in m/s, which carla_ackermann_control tracks with its own speed PID (0 =
           stop at its maximum deceleration); acceleration = jerk = 0 keeps that speed PID active.

`control_from_twist` and `steer_from_ackermann` are the inverses (what the bridge's converters
compute), used by the closed-loop simulator and by the tests that pin these meanings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from min2real.runtime.types import VehicleControl

# carla_twist_to_control: TwistToVehicleControl.MAX_LON_ACCELERATION (throttle = linear.x / 10).
TWIST_THROTTLE_SCALE = 10.0
# linear.x sent while coasting: carla_twist_to_control engages reverse at linear.x <= 0.
COAST_LINEAR_X = 1e-3


def _check_max_steer(max_steering_angle_rad: float) -> float:
    value = float(max_steering_angle_rad)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"max steering angle {max_steering_angle_rad} rad; expected a positive wheel angle "
            "(CARLA's vehicle_info wheels[0].max_steer_angle, 70 deg = 1.2217 rad for the default vehicles)"
        )
    return value


def carla_control_fields(control: VehicleControl) -> dict:
    """VehicleControl -> carla_msgs/CarlaEgoVehicleControl field values (steer + = right, clipped)."""
    return {
        "throttle": float(np.clip(control.throttle, 0.0, 1.0)),
        "steer": float(np.clip(control.steer, -1.0, 1.0)),
        "brake": float(np.clip(control.brake, 0.0, 1.0)),
        "hand_brake": False,
        "reverse": bool(control.reverse),
        "gear": -1 if control.reverse else 1,
        "manual_gear_shift": False,
    }


def twist_from_control(control: VehicleControl, max_steering_angle_rad: float) -> tuple[float, float]:
    """VehicleControl -> (linear.x, angular.z) of the geometry_msgs/Twist that carla_twist_to_control
    turns back into this control (see the module docstring; any brake -> full brake)."""
    max_steer = _check_max_steer(max_steering_angle_rad)
    if control.brake > 0.0:
        return 0.0, 0.0
    throttle = float(np.clip(control.throttle, 0.0, 1.0))
    pedal = throttle * TWIST_THROTTLE_SCALE
    if pedal <= 0.0:
        pedal = COAST_LINEAR_X
    linear_x = -pedal if control.reverse else pedal
    angular_z = -float(np.clip(control.steer, -1.0, 1.0)) * max_steer
    return linear_x, angular_z


def control_from_twist(linear_x: float, angular_z: float, max_steering_angle_rad: float) -> VehicleControl:
    """geometry_msgs/Twist (linear.x, angular.z) -> the VehicleControl carla_twist_to_control
    publishes for it (throttle = |linear.x| / 10 clipped to 1, reverse when linear.x <= 0,
    steer = -angular.z / max wheel angle clipped to [-1, 1]; the all-zero Twist = full brake)."""
    max_steer = _check_max_steer(max_steering_angle_rad)
    linear_x, angular_z = float(linear_x), float(angular_z)
    if not (math.isfinite(linear_x) and math.isfinite(angular_z)):
        raise ValueError(f"twist linear.x={linear_x}, angular.z={angular_z}; expected finite numbers")
    if linear_x == 0.0 and angular_z == 0.0:
        return VehicleControl(steer=0.0, throttle=0.0, brake=1.0)
    throttle = min(TWIST_THROTTLE_SCALE, abs(linear_x)) / TWIST_THROTTLE_SCALE
    steer = -float(np.clip(angular_z, -max_steer, max_steer)) / max_steer
    return VehicleControl(steer=steer, throttle=throttle, brake=0.0, reverse=linear_x <= 0.0)


@dataclass(frozen=True)
class AckermannCommand:
    """ackermann_msgs/AckermannDrive field values (REP 103: steering_angle positive = LEFT).

    steering_angle_rad: front wheel angle; speed_mps: target speed (0 = stop);
    acceleration_mps2 / jerk_mps3: 0 lets carla_ackermann_control's speed PID track `speed_mps`.
    """

    steering_angle_rad: float
    speed_mps: float
    acceleration_mps2: float = 0.0
    jerk_mps3: float = 0.0


def ackermann_from_control(
    control: VehicleControl, target_speed_mps: float, max_steering_angle_rad: float
) -> AckermannCommand:
    """The controller's step -> AckermannDrive: wheel angle = -steer * max wheel angle (positive =
    left), speed = `target_speed_mps` (the speed the waypoints ask for), 0 whenever the control brakes."""
    max_steer = _check_max_steer(max_steering_angle_rad)
    speed = float(target_speed_mps)
    if not math.isfinite(speed) or speed < 0:
        raise ValueError(f"ackermann target speed {target_speed_mps} m/s; expected a finite speed >= 0")
    steering_angle = -float(np.clip(control.steer, -1.0, 1.0)) * max_steer
    return AckermannCommand(steering_angle, 0.0 if control.brake > 0.0 else speed)


def steer_from_ackermann(steering_angle_rad: float, max_steering_angle_rad: float) -> float:
    """AckermannDrive steering_angle -> CARLA steer as carla_ackermann_control computes it
    (-angle / max wheel angle, clipped to [-1, 1]; positive = right)."""
    max_steer = _check_max_steer(max_steering_angle_rad)
    return float(np.clip(-float(steering_angle_rad) / max_steer, -1.0, 1.0))
