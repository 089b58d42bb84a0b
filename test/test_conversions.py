"""ROS-free message conversions: images, compressed images, point clouds, paths, odometry."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from min2real_ros.conversions import (
    POINTFIELD_FLOAT32,
    POINTFIELD_FLOAT64,
    POINTFIELD_UINT16,
    MessageError,
    PointFieldSpec,
    compressed_image_to_rgb,
    image_to_rgb,
    odometry_to_pose2d,
    path_to_xy,
    pointcloud2_to_xyz,
    rgb_to_bgra8_bytes,
    rgb_to_image_fields,
    rgb_to_jpeg_bytes,
    xyz_to_pointcloud2_fields,
)


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)


def _image_msg(fields):
    return SimpleNamespace(**fields._asdict())


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
@pytest.mark.parametrize("padding", [0, 3])
def test_color_encodings_round_trip_with_row_padding(rgb, encoding, padding):
    msg = _image_msg(rgb_to_image_fields(rgb, encoding, row_padding=padding))
    out = image_to_rgb(msg)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)


def test_rgb8_is_a_view_and_bgra8_one_conversion(rgb):
    fields = rgb_to_image_fields(rgb, "rgb8", row_padding=2)
    buffer = bytearray(fields.data)
    out = image_to_rgb(SimpleNamespace(**{**fields._asdict(), "data": buffer}))
    assert not out.flags.owndata and np.shares_memory(out, np.frombuffer(buffer, np.uint8))
    bgra = rgb_to_image_fields(rgb, "bgra8")
    converted = image_to_rgb(SimpleNamespace(**bgra._asdict()))
    assert converted.flags.c_contiguous
    np.testing.assert_array_equal(converted, rgb)
    assert bytes(rgb_to_bgra8_bytes(rgb)) == bgra.data


def test_mono8_becomes_three_equal_channels(rgb):
    msg = _image_msg(rgb_to_image_fields(rgb, "mono8"))
    out = image_to_rgb(msg)
    assert out.shape == rgb.shape
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    grey = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    assert np.abs(out[..., 0].astype(float) - grey).max() <= 1.0


def test_image_errors_name_input_problem_and_expectation(rgb):
    good = rgb_to_image_fields(rgb, "bgra8")
    with pytest.raises(MessageError, match=r"camera image encoding 'yuv422' is not supported; expected one of rgb8"):
        image_to_rgb(SimpleNamespace(**{**good._asdict(), "encoding": "yuv422"}))
    with pytest.raises(MessageError, match="truncated"):
        image_to_rgb(SimpleNamespace(**{**good._asdict(), "data": good.data[:-5]}))
    with pytest.raises(MessageError, match="step"):
        image_to_rgb(SimpleNamespace(**{**good._asdict(), "step": 7 * 3}))
    with pytest.raises(MessageError, match="positive height"):
        image_to_rgb(SimpleNamespace(**{**good._asdict(), "height": 0}))


def test_compressed_jpeg_and_png(rgb):
    import cv2

    big = np.repeat(np.repeat(rgb, 8, axis=0), 8, axis=1)
    jpeg = SimpleNamespace(format="rgb8; jpeg compressed bgr8", data=rgb_to_jpeg_bytes(big, quality=100))
    out = compressed_image_to_rgb(jpeg)
    assert out.shape == big.shape
    assert np.abs(out.astype(int) - big.astype(int)).mean() < 8  # JPEG is lossy; channel order must be right
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(compressed_image_to_rgb(SimpleNamespace(format="png", data=png.tobytes())), rgb)
    with pytest.raises(MessageError, match="could not be decoded"):
        compressed_image_to_rgb(SimpleNamespace(format="jpeg", data=b"\xff\xd8garbage"))
    with pytest.raises(MessageError, match="not supported; expected JPEG or PNG"):
        compressed_image_to_rgb(SimpleNamespace(format="tiff", data=b"1234"))


def _cloud(fields):
    return SimpleNamespace(**fields._asdict())


def test_carla_layout_cloud_drops_nan_points():
    points = np.array([[1, 2, 3], [np.nan, 0, 0], [4, 5, np.inf], [-1, -2, -3]], dtype=np.float32)
    out = pointcloud2_to_xyz(_cloud(xyz_to_pointcloud2_fields(points, intensity=np.arange(4))))
    assert out.dtype == np.float32 and out.shape == (2, 3)
    np.testing.assert_array_equal(out, points[[0, 3]])


def test_cloud_with_padding_extra_fields_row_step_and_big_endian():
    rng = np.random.default_rng(1)
    height, width, point_step, row_step = 3, 5, 32, 32 * 5 + 8
    xyz = rng.normal(size=(height, width, 3)).astype(np.float32)
    for order, big in (("<", False), (">", True)):
        raw = np.zeros((height, row_step), dtype=np.uint8)
        record = np.dtype(
            {
                "names": ["ring", "x", "y", "z", "t"],
                "formats": [order + "u2", order + "f4", order + "f4", order + "f4", order + "f8"],
                "offsets": [0, 4, 8, 12, 16],
                "itemsize": point_step,
            }
        )
        structured = np.zeros((height, width), dtype=record)
        structured["x"], structured["y"], structured["z"] = xyz[..., 0], xyz[..., 1], xyz[..., 2]
        raw[:, : width * point_step] = structured.view(np.uint8).reshape(height, -1)
        msg = SimpleNamespace(
            height=height,
            width=width,
            point_step=point_step,
            row_step=row_step,
            is_bigendian=big,
            fields=[
                PointFieldSpec("ring", 0, POINTFIELD_UINT16),
                PointFieldSpec("x", 4, POINTFIELD_FLOAT32),
                PointFieldSpec("y", 8, POINTFIELD_FLOAT32),
                PointFieldSpec("z", 12, POINTFIELD_FLOAT32),
                PointFieldSpec("t", 16, POINTFIELD_FLOAT64),
            ],
            data=raw.tobytes(),
        )
        np.testing.assert_array_equal(pointcloud2_to_xyz(msg), xyz.reshape(-1, 3))


def test_adjacent_xyz_fast_path_matches_structured_path_big_endian():
    rng = np.random.default_rng(2)
    xyz = rng.normal(size=(10, 3)).astype(np.float32)
    xyz[3, 1] = np.nan
    record = np.zeros((10, 5), dtype=">f4")
    record[:, 1:4] = xyz  # x, y, z at offsets 4, 8, 12; 20-byte points
    msg = SimpleNamespace(
        height=1,
        width=10,
        point_step=20,
        row_step=200,
        is_bigendian=True,
        data=record.tobytes(),
        fields=[PointFieldSpec(axis, 4 + 4 * i, POINTFIELD_FLOAT32) for i, axis in enumerate("xyz")],
    )
    out = pointcloud2_to_xyz(msg)
    assert out.dtype == np.float32 and out.dtype.byteorder in ("=", "<")
    np.testing.assert_array_equal(out, np.delete(xyz, 3, axis=0))


def test_cloud_errors():
    good = xyz_to_pointcloud2_fields(np.ones((4, 3), np.float32))
    with pytest.raises(MessageError, match=r"without \['z'\]"):
        pointcloud2_to_xyz(SimpleNamespace(**{**good._asdict(), "fields": good.fields[:2]}))
    f64 = [PointFieldSpec("x", 0, POINTFIELD_FLOAT64)] + list(good.fields[1:])
    with pytest.raises(MessageError, match="field 'x' has datatype FLOAT64 count 1; expected FLOAT32"):
        pointcloud2_to_xyz(SimpleNamespace(**{**good._asdict(), "fields": f64}))
    with pytest.raises(MessageError, match="truncated"):
        pointcloud2_to_xyz(SimpleNamespace(**{**good._asdict(), "data": good.data[:-1]}))
    with pytest.raises(MessageError, match="is empty"):  # what an all-NaN cloud is too (below)
        pointcloud2_to_xyz(SimpleNamespace(**{**good._asdict(), "width": 0, "row_step": 0, "data": b""}))
    with pytest.raises(MessageError, match="row_step"):
        pointcloud2_to_xyz(SimpleNamespace(**{**good._asdict(), "row_step": 8}))


def test_all_nan_cloud_is_malformed_like_an_empty_one():
    nan_cloud = xyz_to_pointcloud2_fields(np.full((30, 3), np.nan, np.float32))
    with pytest.raises(MessageError, match="none is finite"):
        pointcloud2_to_xyz(SimpleNamespace(**nan_cloud._asdict()))


def _pose(x, y, yaw=0.0):
    return SimpleNamespace(
        pose=SimpleNamespace(
            position=SimpleNamespace(x=x, y=y, z=0.0),
            orientation=SimpleNamespace(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)),
        )
    )


def test_path_and_odometry():
    path = SimpleNamespace(poses=[_pose(float(i), 2.0 * i) for i in range(5)])
    np.testing.assert_array_equal(path_to_xy(path), np.stack([np.arange(5.0), 2 * np.arange(5.0)], axis=1))
    with pytest.raises(MessageError, match="no poses"):
        path_to_xy(SimpleNamespace(poses=[]))
    xy, yaw = odometry_to_pose2d(SimpleNamespace(pose=_pose(3.0, 4.0, 0.7)))
    np.testing.assert_allclose(xy, [3.0, 4.0])
    assert yaw == pytest.approx(0.7)
