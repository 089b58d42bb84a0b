"""Sensor mounts from tf2 static transforms (tf2_ros), when tf2_ros is importable.

`TfMounts(node)` keeps a tf2_ros.Buffer filled by a TransformListener on the node and answers
`mount(vehicle_frame, sensor_frame)` with a 6-DoF `min2real.runtime.mounts.Mount` from
`Buffer.lookup_transform(vehicle_frame, sensor_frame, Time())` (the latest, i.e. the static
transform). Lookups are cached per sensor frame: mounts are static. The driver's
`mount_source` parameter chooses tf, parameters, or auto (tf when tf2_ros imports, else the
`*_mount_*` parameters; the choice is logged and reported in diagnostics).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from min2real.runtime.mounts import Mount, MountError


def tf2_available() -> bool:
    return importlib.util.find_spec("tf2_ros") is not None


class TfMounts:
    def __init__(self, node: Any) -> None:
        try:
            import tf2_ros
        except ImportError as error:
            raise RuntimeError(
                "mount_source 'tf' needs the ROS package tf2_ros, which is not importable: source a ROS 2 "
                "installation with tf2_ros, or set mount_source to 'parameters' (the lidar_mount_* / "
                "camera_mount_* parameters)"
            ) from error
        self._tf2 = tf2_ros
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node)
        self._cache: dict[tuple[str, str], Mount] = {}

    def mount(self, vehicle_frame: str, sensor_frame: str) -> Mount:
        """The sensor frame's mount in the vehicle frame, or MountError naming both frames."""
        key = (vehicle_frame, sensor_frame)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        from rclpy.time import Time

        tf2 = self._tf2
        try:
            transform = self.buffer.lookup_transform(vehicle_frame, sensor_frame, Time())
        except (tf2.LookupException, tf2.ConnectivityException, tf2.ExtrapolationException) as error:
            raise MountError(
                f"no tf transform from {sensor_frame!r} to {vehicle_frame!r} yet ({type(error).__name__}: {error}); "
                "expected a static transform on /tf_static (URDF robot_state_publisher, the CARLA bridge, "
                "or static_transform_publisher)"
            ) from error
        mount = Mount.from_transform(transform)
        self._cache[key] = mount
        return mount
