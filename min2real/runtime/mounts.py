"""Sensor mounts: the full 6-DoF pose of a sensor frame in the vehicle frame (base_link), ROS-free.

A `Mount` maps points from the sensor frame to the vehicle frame: p_vehicle = R @ p_sensor + t.
It comes from a tf2 static transform (`Mount.from_transform`, a geometry_msgs/Transform or
TransformStamped: translation + quaternion x, y, z, w, exactly what
`tf2_ros.Buffer.lookup_transform(vehicle_frame, sensor_frame, Time())` returns) or from
parameters (`Mount.from_xyz_rpy`: metres and radians, REP 103 fixed-axis roll-pitch-yaw:
R = Rz(yaw) @ Ry(pitch) @ Rx(roll), the convention of tf2's setRPY and URDF <origin rpy>).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

MOUNT_SOURCES = ("auto", "tf", "parameters")


class MountError(ValueError):
    """A transform that cannot be a sensor mount (non-finite, zero quaternion)."""


def rotation_from_rpy(roll_rad: float, pitch_rad: float, yaw_rad: float) -> np.ndarray:
    """(3, 3) rotation Rz(yaw) @ Ry(pitch) @ Rx(roll) (fixed axes x, y, z; REP 103)."""
    cr, sr = math.cos(roll_rad), math.sin(roll_rad)
    cp, sp = math.cos(pitch_rad), math.sin(pitch_rad)
    cy, sy = math.cos(yaw_rad), math.sin(yaw_rad)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ],
        dtype=np.float64,
    )


def rotation_from_quaternion_xyzw(x: float, y: float, z: float, w: float) -> np.ndarray:
    """(3, 3) rotation of the unit quaternion (x, y, z, w) (normalised here; geometry_msgs order)."""
    q = np.array([x, y, z, w], dtype=np.float64)
    norm = float(np.linalg.norm(q))
    if not np.isfinite(q).all() or norm < 1e-9:
        raise MountError(f"quaternion (x, y, z, w) = {tuple(q)} is not finite or is zero; expected a rotation")
    x, y, z, w = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class Mount:
    """Sensor frame -> vehicle frame. translation_m: (3,) sensor origin in the vehicle frame;
    rotation: (3, 3) sensor axes in vehicle axes; source: "tf" or "parameters" (for diagnostics)."""

    translation_m: np.ndarray
    rotation: np.ndarray
    source: str = "parameters"

    @classmethod
    def from_xyz_rpy(
        cls, x_m: float, y_m: float, z_m: float, roll_rad: float = 0.0, pitch_rad: float = 0.0, yaw_rad: float = 0.0
    ) -> Mount:
        values = np.array([x_m, y_m, z_m, roll_rad, pitch_rad, yaw_rad], dtype=np.float64)
        if not np.isfinite(values).all():
            raise MountError(f"mount x, y, z, roll, pitch, yaw = {tuple(values)}; expected finite metres and radians")
        return cls(values[:3].copy(), rotation_from_rpy(*values[3:]), "parameters")

    @classmethod
    def from_transform(cls, transform: Any) -> Mount:
        """geometry_msgs/Transform or TransformStamped (duck-typed: .translation.x.., .rotation.x..w)."""
        transform = getattr(transform, "transform", transform)
        t, q = transform.translation, transform.rotation
        translation = np.array([t.x, t.y, t.z], dtype=np.float64)
        if not np.isfinite(translation).all():
            raise MountError(f"transform translation {tuple(translation)} is not finite")
        return cls(translation, rotation_from_quaternion_xyzw(q.x, q.y, q.z, q.w), "tf")

    def transform_points(self, points_sensor: np.ndarray) -> np.ndarray:
        """(N, 3+) points in the sensor frame -> (N, 3) float32 in the vehicle frame (one matrix product)."""
        xyz = np.asarray(points_sensor)[:, :3]
        rotation_t = self.rotation.T.astype(np.float32)
        return xyz.astype(np.float32, copy=False) @ rotation_t + self.translation_m.astype(np.float32)

    @property
    def yaw_rad(self) -> float:
        return math.atan2(float(self.rotation[1, 0]), float(self.rotation[0, 0]))

    @property
    def pitch_rad(self) -> float:
        return -math.asin(float(np.clip(self.rotation[2, 0], -1.0, 1.0)))

    def describe(self) -> str:
        x, y, z = self.translation_m
        return f"{self.source}: xyz ({x:.3f}, {y:.3f}, {z:.3f}) m, yaw {math.degrees(self.yaw_rad):.2f} deg"
