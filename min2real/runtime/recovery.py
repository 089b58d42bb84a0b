"""Recovery when stuck: CARLA Garage's creep (team_code/sensor_agent.py), never into an obstacle.

Rule (Garage's, with its constants by default): a vehicle that has stood (speed below
`stopped_speed_mps`) for `stuck_after_s` creeps forward for `creep_for_s` at throttle at least
`creep_throttle` (brake released, steering from the controller), but only while the LiDAR sees
nothing in the safety box ahead of the front bumper (`SafetyBox`, Garage's safety_box_*: 2.5 m
long, 80 % of the half width to each side, 0.5-1.5 m above the ground). A point in the box stops
the creep at once (full brake) and re-arms it; without LiDAR points ("nothing ahead" unknown) the
command passes unchanged (no creep). Moving resets the stand timer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from min2real.runtime.types import VehicleControl


@dataclass(frozen=True)
class SafetyBox:
    """The volume ahead of the bumper that must be empty to creep, base_link (REP 103) metres.
    Defaults: Garage's (config.py: ego extent x 2.45 m, y 1.06 m; box z 0.5-1.5 m)."""

    x_min_m: float = 2.45
    x_max_m: float = 2.45 + 2.5
    half_width_m: float = 0.8 * 1.06
    z_min_m: float = 0.5
    z_max_m: float = 1.5

    def occupied(self, points_ego: np.ndarray) -> bool:
        """Whether any of the (N, >=3) base_link points lies in the box."""
        points = np.asarray(points_ego)
        if points.ndim != 2 or points.shape[1] < 3:
            raise ValueError(f"safety box: LiDAR points have shape {points.shape}; expected (N, >=3) in base_link")
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
        inside = (
            (x > self.x_min_m)
            & (x < self.x_max_m)
            & (np.abs(y) < self.half_width_m)
            & (z > self.z_min_m)
            & (z < self.z_max_m)
        )
        return bool(inside.any())


@dataclass(frozen=True)
class CreepConfig:
    """Garage: stuck_threshold 1100 frames and creep_duration 20 frames at 20 Hz, creep_throttle 0.4,
    stopped below 0.1 m/s."""

    stuck_after_s: float = 55.0
    creep_for_s: float = 1.0
    creep_throttle: float = 0.4
    stopped_speed_mps: float = 0.1
    box: SafetyBox = field(default_factory=SafetyBox)

    def __post_init__(self) -> None:
        for name in ("stuck_after_s", "creep_for_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"creep {name}={getattr(self, name)}; expected > 0 s")
        if not 0.0 < self.creep_throttle <= 1.0:
            raise ValueError(f"creep_throttle={self.creep_throttle}; expected (0, 1]")


class StuckCreep:
    """The creep state machine; call `apply` once per control cycle with the controller's command."""

    def __init__(self, config: CreepConfig | None = None) -> None:
        self.config = config or CreepConfig()
        self.stood_s = 0.0
        self.creep_left_s = 0.0
        self.creeps = 0  # times a creep started (for reports)
        self.blocked_by_obstacle = 0  # cycles a creep was held by a point in the safety box

    def reset(self) -> None:
        self.stood_s = self.creep_left_s = 0.0

    def apply(
        self, control: VehicleControl, speed_mps: float, dt_s: float, lidar_points_ego: np.ndarray | None
    ) -> VehicleControl:
        """The command to send: `control`, or the creep's override (see the module docstring)."""
        if not (math.isfinite(speed_mps) and dt_s >= 0):
            raise ValueError(f"creep: speed {speed_mps} m/s and cycle {dt_s} s; expected finite values, dt >= 0")
        cfg = self.config
        self.stood_s = self.stood_s + dt_s if abs(speed_mps) < cfg.stopped_speed_mps else 0.0
        if self.stood_s > cfg.stuck_after_s and self.creep_left_s <= 0:
            self.creep_left_s = cfg.creep_for_s
            self.creeps += 1
        if self.creep_left_s <= 0 or lidar_points_ego is None:
            return control  # not stuck, or "nothing ahead" unknown: never creep
        if cfg.box.occupied(lidar_points_ego):
            self.blocked_by_obstacle += 1
            self.creep_left_s = cfg.creep_for_s  # re-armed: creep as soon as the box is empty
            return replace(control, throttle=0.0, brake=1.0)
        self.creep_left_s -= dt_s
        return replace(control, throttle=max(cfg.creep_throttle, control.throttle), brake=0.0)
