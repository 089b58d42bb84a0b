"""The simulated ego vehicle: a kinematic bicycle driven by CARLA-convention vehicle controls.

Inputs are `runtime.types.VehicleControl` (steer in [-1, 1], positive = RIGHT; throttle, brake in
[0, 1]), what the controller computes and what `runtime.vehicle_commands.control_from_twist`
decodes from the controller node's Twist. The vehicle:

* turns its front wheels to `-steer * max_steer_angle_rad` (REP 103: positive = LEFT), through a
  first-order actuation lag and a steering-rate limit;
* accelerates with `throttle * max_accel_mps2` (falling linearly to zero at `top_speed_mps`) and
  brakes with `brake * max_brake_decel_mps2`, pedals through a first-order lag, against rolling
  resistance and aerodynamic drag; it never rolls backwards in a forward gear (reverse gear
  drives backwards the same way);
* moves as a kinematic bicycle about its centre (the reference point, where base_link sits on
  the ground): slip angle beta = atan(l_r / L * tan(delta)), yaw rate = v cos(beta) tan(delta) / L.

Integration is explicit Euler at `physics_dt_s` (sub-steps of one simulator tick).
Frames: world right-handed (x east, y north), yaw counter-clockwise from x (REP 103).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from min2real.runtime.types import VehicleControl


@dataclass(frozen=True)
class VehicleParams:
    """Geometry, limits and actuation lag. Defaults: a CARLA-like sedan (the controller node's
    max_steering_angle_deg 70 of CARLA's default vehicles; a Lincoln MKZ-like 2.875 m wheelbase)."""

    wheelbase_m: float = 2.875
    rear_axle_to_centre_m: float = 1.4375  # l_r: the reference point sits half way between the axles
    length_m: float = 4.6
    width_m: float = 1.9
    max_steer_angle_rad: float = math.radians(70.0)
    steer_time_constant_s: float = 0.1
    max_steer_rate_per_s: float = 2.5  # normalised steer units per second (full lock in 0.4 s)
    pedal_time_constant_s: float = 0.15
    max_accel_mps2: float = 4.0
    max_brake_decel_mps2: float = 8.0
    top_speed_mps: float = 40.0
    rolling_resistance_mps2: float = 0.15
    drag_per_m: float = 0.006  # deceleration = drag_per_m * v^2
    physics_dt_s: float = 0.01

    def __post_init__(self) -> None:
        positive = (
            "wheelbase_m",
            "length_m",
            "width_m",
            "max_steer_angle_rad",
            "max_accel_mps2",
            "max_brake_decel_mps2",
            "top_speed_mps",
            "physics_dt_s",
            "max_steer_rate_per_s",
        )
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"vehicle {name}={value}; expected a positive finite number")
        if not 0 <= self.rear_axle_to_centre_m <= self.wheelbase_m:
            raise ValueError(
                f"vehicle rear_axle_to_centre_m={self.rear_axle_to_centre_m}; expected 0..wheelbase_m ({self.wheelbase_m})"
            )
        for name in ("steer_time_constant_s", "pedal_time_constant_s", "rolling_resistance_mps2", "drag_per_m"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"vehicle {name}={getattr(self, name)}; expected >= 0")


@dataclass(frozen=True)
class VehicleState:
    """Pose (world x, y m; yaw rad CCW), signed forward speed m/s, and the actuators' actual
    positions (steer: CARLA convention, positive = right; throttle, brake in [0, 1])."""

    x_m: float
    y_m: float
    yaw_rad: float
    speed_mps: float = 0.0
    steer: float = 0.0
    throttle: float = 0.0
    brake: float = 0.0
    reverse: bool = False

    @property
    def xy(self) -> np.ndarray:
        return np.array([self.x_m, self.y_m], dtype=np.float64)

    def footprint_xy(self, params: VehicleParams) -> np.ndarray:
        """(4, 2) world corners of the vehicle's box (centred on the reference point)."""
        half = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.float64) * [
            0.5 * params.length_m,
            0.5 * params.width_m,
        ]
        c, s = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        return half @ np.array([[c, s], [-s, c]]) + self.xy


def _lag(actual: float, command: float, time_constant_s: float, dt_s: float) -> float:
    if time_constant_s <= 0:
        return command
    return actual + (command - actual) * (1.0 - math.exp(-dt_s / time_constant_s))


class KinematicBicycle:
    """The ego vehicle. `step(control, dt_s)` advances by sub-steps of `params.physics_dt_s`."""

    def __init__(self, state: VehicleState, params: VehicleParams | None = None) -> None:
        self.params = params or VehicleParams()
        self.state = state

    @staticmethod
    def _check(control: VehicleControl) -> VehicleControl:
        values = (control.steer, control.throttle, control.brake)
        if not all(math.isfinite(float(v)) for v in values):
            raise ValueError(f"vehicle control {control}; expected finite steer, throttle and brake")
        return VehicleControl(
            steer=float(np.clip(control.steer, -1.0, 1.0)),
            throttle=float(np.clip(control.throttle, 0.0, 1.0)),
            brake=float(np.clip(control.brake, 0.0, 1.0)),
            reverse=bool(control.reverse),
        )

    def substep(self, control: VehicleControl, dt_s: float) -> VehicleState:
        """One integration step of `dt_s` (<= physics_dt_s); returns and keeps the new state."""
        p, s = self.params, self.state
        control = self._check(control)
        # Actuators: first-order lag, steering also rate-limited.
        steer_target = _lag(s.steer, control.steer, p.steer_time_constant_s, dt_s)
        max_change = p.max_steer_rate_per_s * dt_s
        steer = float(np.clip(steer_target, s.steer - max_change, s.steer + max_change))
        throttle = _lag(s.throttle, control.throttle, p.pedal_time_constant_s, dt_s)
        brake = _lag(s.brake, control.brake, p.pedal_time_constant_s, dt_s)
        # Longitudinal: drive force along the gear's direction, resistances and brake against motion.
        direction = -1.0 if control.reverse else 1.0
        speed = s.speed_mps
        magnitude = abs(speed)
        drive = throttle * p.max_accel_mps2 * max(0.0, 1.0 - magnitude / p.top_speed_mps)
        resist = brake * p.max_brake_decel_mps2 + p.rolling_resistance_mps2 + p.drag_per_m * magnitude**2
        if magnitude > 1e-9 and math.copysign(1.0, speed) != direction:
            new_speed = speed + direction * (drive + resist) * dt_s  # gear against motion: slows down first
            if math.copysign(1.0, new_speed) == direction:
                new_speed = 0.0
        else:
            new_magnitude = max(0.0, magnitude + (drive - resist) * dt_s)
            new_speed = direction * new_magnitude
        # Kinematic bicycle about the reference point (mean speed over the step).
        mean_speed = 0.5 * (speed + new_speed)
        wheel_angle = -steer * p.max_steer_angle_rad
        beta = math.atan(p.rear_axle_to_centre_m / p.wheelbase_m * math.tan(wheel_angle))
        heading = s.yaw_rad + beta
        x = s.x_m + mean_speed * math.cos(heading) * dt_s
        y = s.y_m + mean_speed * math.sin(heading) * dt_s
        yaw = s.yaw_rad + mean_speed * math.cos(beta) * math.tan(wheel_angle) / p.wheelbase_m * dt_s
        self.state = VehicleState(x, y, yaw, new_speed, steer, throttle, brake, control.reverse)
        return self.state

    def step(self, control: VehicleControl, dt_s: float) -> VehicleState:
        """Hold `control` for `dt_s` seconds (sub-steps of at most physics_dt_s)."""
        steps = max(1, int(math.ceil(dt_s / self.params.physics_dt_s - 1e-9)))
        for _ in range(steps):
            self.substep(control, dt_s / steps)
        return self.state

    def stop(self) -> None:
        """A collision: the vehicle stands (speed zero, actuators keep their positions)."""
        self.state = replace(self.state, speed_mps=0.0)
