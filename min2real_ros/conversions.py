"""ROS message buffers <-> numpy, without ROS (duck-typed on the message fields).

Every function here reads only the fields of the ROS message it names (`sensor_msgs/Image`,
`sensor_msgs/CompressedImage`, `sensor_msgs/PointCloud2`, `nav_msgs/Path`, `nav_msgs/Odometry`),
so the nodes, the replay tool and ROS-free tests all use the same code on real rclpy messages,
rosbags-deserialised messages or plain objects with the same attributes.

Conversions are numpy views over the message buffer (or one vectorised operation): never a
per-pixel or per-point Python loop. A malformed message raises `MessageError` naming the input,
what was wrong and what was expected; callers reject that message and keep running.

The inverse helpers (numpy -> message field values) serve the tests, the benchmarks and the
synthetic rosbag writer. They return the `data` field as `bytes`: an rclpy message wants
`array.array("B", data)` (see `ros_uint8_array`; assigning `bytes` runs a slow per-byte check
in rclpy), a rosbags message wants `np.frombuffer(data, np.uint8)`.
"""

from __future__ import annotations

import array
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from min2real.contract import yaw_from_quaternion_wxyz


class MessageError(ValueError):
    """A ROS message cannot be converted (the text names the input, the problem and what was expected)."""


# ---- images -----------------------------------------------------------------------------------
# encoding -> (bytes per pixel, channel indices that give R, G, B; None = grey)
_IMAGE_ENCODINGS: dict[str, tuple[int, tuple[int, int, int] | None]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, None),
}
SUPPORTED_IMAGE_ENCODINGS = tuple(_IMAGE_ENCODINGS)
_CV2_TO_RGB = {"bgr8": "COLOR_BGR2RGB", "rgba8": "COLOR_RGBA2RGB", "bgra8": "COLOR_BGRA2RGB", "mono8": "COLOR_GRAY2RGB"}
_EXPECTED_IMAGE = "expected one of rgb8, bgr8, bgra8, rgba8, mono8 or a JPEG/PNG CompressedImage"


def _buffer(data: Any) -> np.ndarray:
    """Message `data` (bytes, bytearray, array.array('B'), memoryview, numpy uint8) -> 1-D uint8 view."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def image_to_rgb(msg: Any, name: str = "camera image") -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB.

    rgb8 returns a numpy view over the message buffer (row padding via `step` handled by the
    row stride, no copy); bgr8, bgra8, rgba8 and mono8 are one cv2.cvtColor over that view
    (a contiguous (H, W, 3) result).
    """
    encoding = str(msg.encoding).strip().lower()
    if encoding not in _IMAGE_ENCODINGS:
        raise MessageError(f"{name} encoding {msg.encoding!r} is not supported; {_EXPECTED_IMAGE}")
    channels, rgb_index = _IMAGE_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise MessageError(f"{name} has size {height}x{width}; expected a positive height and width")
    row_bytes = width * channels
    if step < row_bytes:
        raise MessageError(
            f"{name} step {step} is smaller than width {width} x {channels} bytes ({encoding}) = {row_bytes}; "
            "expected step >= width * bytes per pixel"
        )
    buffer = _buffer(msg.data)
    needed = step * (height - 1) + row_bytes  # the last row may omit its padding
    if buffer.size < needed:
        raise MessageError(
            f"{name} data has {buffer.size} bytes but {height} rows of step {step} ({encoding}, {width} px wide) "
            f"need {needed}; the message is truncated"
        )
    rows = np.lib.stride_tricks.as_strided(buffer, shape=(height, row_bytes), strides=(step, 1), writeable=False)
    pixels = rows.reshape(height, width, channels)  # a view; row padding skipped by the row stride
    if encoding == "rgb8":
        return pixels
    import cv2

    # One C conversion (cv2 reads the padded rows through the view's row stride). Much faster than
    # letting numpy copy a view with a reversed channel stride (measured in benchmarks/bench_nodes.py).
    return cv2.cvtColor(pixels, getattr(cv2, _CV2_TO_RGB[encoding]))


def compressed_image_to_rgb(msg: Any, name: str = "camera image") -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG or PNG) -> (H, W, 3) uint8 RGB (contiguous), via cv2.imdecode."""
    import cv2

    image_format = str(msg.format).lower()
    if not any(token in image_format for token in ("jpeg", "jpg", "png")):
        raise MessageError(f"{name} compressed format {msg.format!r} is not supported; expected JPEG or PNG")
    buffer = _buffer(msg.data)
    if buffer.size == 0:
        raise MessageError(f"{name} compressed data is empty; expected a JPEG or PNG byte stream")
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None:
        raise MessageError(
            f"{name} compressed data ({buffer.size} bytes, format {msg.format!r}) could not be decoded; "
            "expected a complete JPEG or PNG byte stream"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class ImageFields(NamedTuple):
    """Field values of a sensor_msgs/Image (data as bytes, see the module docstring)."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: bytes


def rgb_to_image_fields(image_rgb: np.ndarray, encoding: str = "bgra8", row_padding: int = 0) -> ImageFields:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image field values in `encoding` (bgra8 as the CARLA bridge
    publishes; alpha 255). `row_padding` extra bytes per row exercise `step` handling."""
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise MessageError(f"image has shape {image.shape} dtype {image.dtype}; expected (H, W, 3) uint8 RGB")
    if encoding not in _IMAGE_ENCODINGS:
        raise MessageError(f"image encoding {encoding!r} is not supported; {_EXPECTED_IMAGE}")
    channels, rgb_index = _IMAGE_ENCODINGS[encoding]
    height, width = image.shape[:2]
    step = width * channels + int(row_padding)
    out = np.zeros((height, step), dtype=np.uint8)
    pixels = out[:, : width * channels].reshape(height, width, channels)
    if rgb_index is None:  # ITU-R 601 luma, as cv2.cvtColor(RGB2GRAY)
        import cv2

        pixels[:, :, 0] = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    else:
        pixels[:, :, list(rgb_index)] = image
        if channels == 4:
            pixels[:, :, 3] = 255
    return ImageFields(height, width, encoding, 0, step, out.tobytes())


def rgb_to_bgra8_bytes(image_rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB -> bgra8 bytes (step = 4 * W), the CARLA bridge camera layout."""
    return rgb_to_image_fields(image_rgb, "bgra8").data


def rgb_to_jpeg_bytes(image_rgb: np.ndarray, quality: int = 90) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes (the `data` of a CompressedImage with format "jpeg")."""
    import cv2

    ok, encoded = cv2.imencode(
        ".jpg",
        cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, int(quality)],
    )
    if not ok:
        raise MessageError(f"image of shape {np.shape(image_rgb)} could not be JPEG-encoded")
    return encoded.tobytes()


def ros_uint8_array(data: bytes | bytearray | memoryview) -> array.array:
    """bytes -> array.array('B'), the value an rclpy `uint8[]` field accepts without a per-byte check."""
    return array.array("B", bytes(data))


# ---- point clouds -----------------------------------------------------------------------------
# sensor_msgs/PointField datatype constants -> numpy base type
POINTFIELD_INT8, POINTFIELD_UINT8, POINTFIELD_INT16, POINTFIELD_UINT16 = 1, 2, 3, 4
POINTFIELD_INT32, POINTFIELD_UINT32, POINTFIELD_FLOAT32, POINTFIELD_FLOAT64 = 5, 6, 7, 8
_POINTFIELD_NAMES = {
    1: "INT8",
    2: "UINT8",
    3: "INT16",
    4: "UINT16",
    5: "INT32",
    6: "UINT32",
    7: "FLOAT32",
    8: "FLOAT64",
}


@dataclass(frozen=True)
class PointFieldSpec:
    """A sensor_msgs/PointField's values (same attribute names, so it duck-types as one)."""

    name: str
    offset: int
    datatype: int
    count: int = 1


def pointcloud2_fields_xyzi() -> list[PointFieldSpec]:
    """The CARLA ROS bridge LiDAR layout: x, y, z, intensity float32 at offsets 0, 4, 8, 12 (point_step 16)."""
    return [
        PointFieldSpec(axis, 4 * index, POINTFIELD_FLOAT32, 1)
        for index, axis in enumerate(("x", "y", "z", "intensity"))
    ]


def pointcloud2_to_xyz(msg: Any, name: str = "LiDAR cloud") -> np.ndarray:
    """sensor_msgs/PointCloud2 -> (N, 3) float32 x, y, z in the cloud's frame; NaN/inf points dropped
    (a cloud with no finite point raises, as an empty one does).

    Any layout with float32 x, y, z works: extra fields and padding (via a numpy structured dtype
    with explicit offsets and itemsize = point_step), row padding (row_step > width * point_step),
    organised clouds (height > 1) and big-endian data.
    """
    fields = {str(field.name): field for field in msg.fields}
    missing = [axis for axis in ("x", "y", "z") if axis not in fields]
    if missing:
        raise MessageError(f"{name} has fields {sorted(fields)} without {missing}; expected float32 fields x, y and z")
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    height, width = int(msg.height), int(msg.width)
    for axis in ("x", "y", "z"):
        field = fields[axis]
        if int(field.datatype) != POINTFIELD_FLOAT32 or int(field.count) != 1:
            kind = _POINTFIELD_NAMES.get(int(field.datatype), str(field.datatype))
            raise MessageError(
                f"{name} field {axis!r} has datatype {kind} count {field.count}; expected FLOAT32 (7) count 1"
            )
        if int(field.offset) < 0 or int(field.offset) + 4 > point_step:
            raise MessageError(
                f"{name} field {axis!r} at offset {field.offset} does not fit in point_step {point_step}; "
                "expected offset + 4 <= point_step"
            )
    num_points = height * width
    if num_points <= 0:
        raise MessageError(f"{name} is empty ({height}x{width} points); expected at least one point")
    if row_step < width * point_step:
        raise MessageError(
            f"{name} row_step {row_step} is smaller than width {width} x point_step {point_step}; "
            "expected row_step >= width * point_step"
        )
    buffer = _buffer(msg.data)
    needed = row_step * (height - 1) + width * point_step
    if buffer.size < needed:
        raise MessageError(
            f"{name} data has {buffer.size} bytes but {height} rows x row_step {row_step} "
            f"({width} points of {point_step} bytes) need {needed}; the message is truncated"
        )
    order = ">" if bool(msg.is_bigendian) else "<"
    offsets = [int(fields[axis].offset) for axis in ("x", "y", "z")]
    if (
        point_step % 4 == 0
        and offsets[0] % 4 == 0
        and offsets[1] == offsets[0] + 4
        and offsets[2] == offsets[0] + 8
        and (row_step == width * point_step or height == 1)
    ):
        # Common layout (x, y, z adjacent, 4-byte aligned): view the points as float32 rows.
        floats = np.frombuffer(buffer, dtype=order + "f4", count=num_points * point_step // 4)
        start = offsets[0] // 4
        return _finite_rows(floats.reshape(num_points, point_step // 4)[:, start : start + 3], name)
    dtype = np.dtype(
        {
            "names": ["x", "y", "z"],
            "formats": [order + "f4"] * 3,
            "offsets": offsets,
            "itemsize": point_step,
        }
    )
    if row_step == width * point_step or height == 1:
        points = np.frombuffer(buffer, dtype=dtype, count=num_points)
    else:  # padded rows: drop the padding with one strided copy, then view the points
        rows = np.lib.stride_tricks.as_strided(buffer, shape=(height, width * point_step), strides=(row_step, 1))
        points = np.ascontiguousarray(rows).reshape(-1).view(dtype)
    xyz = np.empty((num_points, 3), dtype=np.float32)
    xyz[:, 0] = points["x"]
    xyz[:, 1] = points["y"]
    xyz[:, 2] = points["z"]
    return _finite_rows(xyz, name)


def _finite_rows(xyz: np.ndarray, name: str) -> np.ndarray:
    """(N, 3) float32 view/array -> contiguous native float32 copy without non-finite rows.

    The check runs on the contiguous copy (numpy is slow on strided views and on `.all(axis=1)`
    over a 3-wide axis); the common all-finite cloud costs one copy and one flat pass. A cloud
    without a single finite point is malformed like an empty one (never an all-zero BEV)."""
    out = np.array(xyz, dtype=np.float32, order="C")
    if np.isfinite(out).all():
        return out
    finite = np.isfinite(out[:, 0]) & np.isfinite(out[:, 1]) & np.isfinite(out[:, 2])
    if not finite.any():
        raise MessageError(
            f"{name} has {out.shape[0]} points and none is finite (all NaN/inf); expected at least one finite point"
        )
    return out[finite]


class PointCloud2Fields(NamedTuple):
    """Field values of a sensor_msgs/PointCloud2 (data as bytes, see the module docstring)."""

    height: int
    width: int
    fields: list
    is_bigendian: bool
    point_step: int
    row_step: int
    data: bytes
    is_dense: bool


def xyz_to_pointcloud2_fields(points_xyz: np.ndarray, intensity: np.ndarray | None = None) -> PointCloud2Fields:
    """(N, 3) float32 points -> PointCloud2 field values in the CARLA bridge layout (x, y, z,
    intensity float32, point_step 16, one row). `fields` holds PointFieldSpec tuples."""
    points = np.asarray(points_xyz, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise MessageError(f"points have shape {points.shape}; expected (N, 3) x, y, z")
    packed = np.zeros((points.shape[0], 4), dtype="<f4")
    packed[:, :3] = points
    if intensity is not None:
        packed[:, 3] = np.asarray(intensity, dtype=np.float32).reshape(-1)
    num_points = points.shape[0]
    return PointCloud2Fields(
        1,
        num_points,
        pointcloud2_fields_xyzi(),
        False,
        16,
        16 * num_points,
        packed.tobytes(),
        bool(np.isfinite(points).all()),
    )


# ---- route, odometry --------------------------------------------------------------------------
def path_to_xy(msg: Any, name: str = "route") -> np.ndarray:
    """nav_msgs/Path -> (N, 2) float64 positions in the path's frame (one pass over the poses)."""
    poses = msg.poses
    count = len(poses)
    if count == 0:
        raise MessageError(f"{name} Path has no poses; expected at least one")
    flat = np.fromiter(
        (value for pose in poses for value in (pose.pose.position.x, pose.pose.position.y)),
        dtype=np.float64,
        count=2 * count,
    )
    xy = flat.reshape(count, 2)
    if not np.isfinite(xy).all():
        raise MessageError(f"{name} Path has non-finite positions; expected finite x, y")
    return xy


def odometry_to_pose2d(msg: Any, name: str = "odometry") -> tuple[np.ndarray, float]:
    """nav_msgs/Odometry -> ((2,) x, y position in the odometry frame, yaw rad counter-clockwise)."""
    position, orientation = msg.pose.pose.position, msg.pose.pose.orientation
    quaternion = np.array([orientation.w, orientation.x, orientation.y, orientation.z], dtype=np.float64)
    xy = np.array([position.x, position.y], dtype=np.float64)
    if not (np.isfinite(xy).all() and np.isfinite(quaternion).all()) or not np.any(quaternion):
        raise MessageError(f"{name} pose is not finite or has a zero quaternion; expected a valid pose")
    return xy, float(yaw_from_quaternion_wxyz(quaternion))


def odometry_speed_mps(msg: Any, name: str = "odometry") -> float:
    """nav_msgs/Odometry -> forward speed (m/s): the twist's linear x in the child (vehicle) frame."""
    speed = float(msg.twist.twist.linear.x)
    if not math.isfinite(speed):
        raise MessageError(f"{name} twist.linear.x is {speed}; expected a finite speed in m/s")
    return speed


def stamp_to_seconds(stamp: Any) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)
