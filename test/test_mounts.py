"""Sensor mounts (min2real.runtime.mounts): the 6-DoF math against tf2's conventions, and the
parameter fallback the driver uses when tf2_ros is not importable."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from min2real.runtime.mounts import Mount, MountError, rotation_from_quaternion_xyzw, rotation_from_rpy


def _quaternion_from_rpy(roll, pitch, yaw):
    """tf2 Quaternion::setRPY (fixed axes: yaw about z, then pitch about y, then roll about x)."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
        cr * cp * cy + sr * sp * sy,
    )


def _transform_stamped(xyz, quaternion_xyzw):
    """What tf2_ros.Buffer.lookup_transform returns (geometry_msgs/TransformStamped fields)."""
    x, y, z, w = quaternion_xyzw
    return SimpleNamespace(
        header=SimpleNamespace(frame_id="base_link"),
        child_frame_id="ego_vehicle/lidar",
        transform=SimpleNamespace(
            translation=SimpleNamespace(x=xyz[0], y=xyz[1], z=xyz[2]),
            rotation=SimpleNamespace(x=x, y=y, z=z, w=w),
        ),
    )


def test_yaw_only_mount_turns_sensor_x_to_the_left():
    mount = Mount.from_xyz_rpy(1.3, 0.0, 2.5, yaw_rad=math.pi / 2)
    out = mount.transform_points(np.array([[1.0, 0.0, 0.0]], np.float32))
    np.testing.assert_allclose(out, [[1.3, 1.0, 2.5]], atol=1e-6)  # sensor x axis points left (REP 103)


def test_pitched_mount_sends_a_forward_ray_to_the_ground():
    # A sensor pitched down 30 deg (positive pitch about y tilts +x towards -z in REP 103).
    mount = Mount.from_xyz_rpy(0.0, 0.0, 2.0, pitch_rad=math.radians(30))
    out = mount.transform_points(np.array([[2.0, 0.0, 0.0]], np.float32))
    np.testing.assert_allclose(
        out, [[2 * math.cos(math.radians(30)), 0.0, 2.0 - 2 * math.sin(math.radians(30))]], atol=1e-6
    )


@pytest.mark.parametrize("rpy", [(0.1, -0.2, 0.3), (math.pi / 2, 0.0, 0.0), (0.0, 0.4, -2.5), (-0.7, 0.3, 1.9)])
def test_tf_transform_and_parameters_give_the_same_6dof_mount(rpy):
    xyz = (0.4, -0.2, 2.5)
    from_tf = Mount.from_transform(_transform_stamped(xyz, _quaternion_from_rpy(*rpy)))
    from_parameters = Mount.from_xyz_rpy(*xyz, *rpy)
    np.testing.assert_allclose(from_tf.rotation, from_parameters.rotation, atol=1e-12)
    np.testing.assert_allclose(from_tf.translation_m, xyz)
    assert from_tf.source == "tf" and from_parameters.source == "parameters"
    rng = np.random.default_rng(0)
    points = rng.normal(0, 10, (100, 3)).astype(np.float32)
    expected = points.astype(np.float64) @ rotation_from_rpy(*rpy).T + np.array(xyz)
    np.testing.assert_allclose(from_tf.transform_points(points), expected, atol=1e-4)
    assert from_parameters.yaw_rad == pytest.approx(rpy[2]) or abs(rpy[0]) == pytest.approx(math.pi / 2)


def test_rotations_are_proper_and_quaternions_are_normalised():
    rotation = rotation_from_quaternion_xyzw(0.0, 0.0, 2.0, 2.0)  # unnormalised 90 deg about z
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(rotation @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    with pytest.raises(MountError, match="zero"):
        rotation_from_quaternion_xyzw(0.0, 0.0, 0.0, 0.0)
    with pytest.raises(MountError, match="finite"):
        Mount.from_xyz_rpy(0.0, float("nan"), 0.0)
