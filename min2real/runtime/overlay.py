"""Drawing predictions on camera images and in a top-down panel (ROS-free, numpy + cv2).

Used by the driver node's debug image, the replay's overlay frames and the evaluation report,
so a waypoint is drawn the same way everywhere. Frames: waypoints in REP 103 `base_link`
(x forward, y left, metres). Drawing is vectorised per point list (cv2), never per pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Colours (RGB) used in every picture: prediction red, recorded green, target blue.
COLOR_PREDICTED = (230, 40, 40)
COLOR_RECORDED = (40, 200, 60)
COLOR_TARGET = (40, 110, 255)


@dataclass(frozen=True)
class CameraModel:
    """Pinhole camera mounted on the vehicle, for drawing ground points on its image.

    fx, fy, cx, cy: intrinsics in pixels of a `width x height` image (sensor_msgs/CameraInfo K).
    mount_xyz_m: camera position in base_link (REP 103); pitch_rad: positive looks down.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    mount_xyz_m: tuple[float, float, float] = (0.0, 0.0, 1.6)
    pitch_rad: float = 0.0

    @classmethod
    def from_horizontal_fov(
        cls, width: int, height: int, hfov_deg: float, mount_xyz_m: tuple[float, float, float], pitch_rad: float = 0.0
    ) -> CameraModel:
        """Square pixels, principal point at the centre (the CARLA camera model)."""
        focal = width / (2.0 * math.tan(math.radians(hfov_deg) / 2.0))
        x_m, y_m, z_m = mount_xyz_m
        return cls(
            width, height, focal, focal, width / 2.0, height / 2.0, (float(x_m), float(y_m), float(z_m)), pitch_rad
        )

    def project_ground(self, points_ego_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) ground points (z = 0) in base_link -> ((N, 2) pixel u, v in this camera's image,
        (N,) bool visible: in front of the camera and inside the image)."""
        points = np.asarray(points_ego_xy, dtype=np.float64).reshape(-1, 2)
        relative = np.column_stack([points, np.zeros(len(points))]) - np.asarray(self.mount_xyz_m, dtype=np.float64)
        # base_link axes -> camera optical axes (z forward, x right, y down), then pitch about x.
        forward, right, down = relative[:, 0], -relative[:, 1], -relative[:, 2]
        cos_p, sin_p = math.cos(self.pitch_rad), math.sin(self.pitch_rad)
        depth = cos_p * forward + sin_p * down
        down_pitched = -sin_p * forward + cos_p * down
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.fx * right / depth + self.cx
            v = self.fy * down_pitched / depth + self.cy
        pixels = np.column_stack([u, v])
        visible = (depth > 0.1) & np.isfinite(pixels).all(axis=1)
        visible &= (u >= 0) & (u < self.width) & (v >= 0) & (v < self.height)
        return pixels, visible

    def scaled_to(self, width: int, height: int) -> CameraModel:
        """The same camera for an image resized to `width x height`."""
        sx, sy = width / self.width, height / self.height
        return CameraModel(
            width, height, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, self.mount_xyz_m, self.pitch_rad
        )


def draw_ground_points(
    image_rgb: np.ndarray,
    camera: CameraModel,
    layers: list[tuple[np.ndarray | None, tuple[int, int, int]]],
    thickness_px: int = 1,
    radius_px: int = 3,
) -> np.ndarray:
    """Draw (N, 2) base_link ground point lists (e.g. waypoints) in place on `image_rgb`
    (H, W, 3 uint8, the camera's image size) as connected dots, one colour per layer."""
    import cv2

    for points, color in layers:
        if points is None or len(points) == 0:
            continue
        pixels, visible = camera.project_ground(points)
        drawn = np.round(pixels[visible]).astype(np.int32)
        if len(drawn) > 1:
            cv2.polylines(image_rgb, [drawn.reshape(-1, 1, 2)], False, color, thickness_px, cv2.LINE_AA)
        for u, v in drawn:  # a handful of waypoints, not pixels
            cv2.circle(image_rgb, (int(u), int(v)), radius_px, color, -1, cv2.LINE_AA)
    return image_rgb


# ---- overlays ---------------------------------------------------------------------------------
def _bev_panel(size_px: int, range_m: float, layers: list[tuple[np.ndarray, tuple[int, int, int]]]) -> np.ndarray:
    """Top-down panel (RGB uint8, size_px square): ego at the bottom centre heading up, `range_m`
    metres ahead; layers are (N, 2) base_link points drawn as connected dots."""
    import cv2

    panel = np.full((size_px, size_px, 3), 245, dtype=np.uint8)
    scale = size_px / range_m  # pixels per metre
    origin = np.array([size_px / 2.0, size_px - 8.0])
    for metres in range(5, int(range_m) + 1, 5):  # range rings every 5 m
        cv2.circle(panel, (int(origin[0]), int(origin[1])), int(metres * scale), (215, 215, 215), 1, cv2.LINE_AA)
    cv2.drawMarker(panel, (int(origin[0]), int(origin[1])), (0, 0, 0), cv2.MARKER_TRIANGLE_UP, 10, 2)
    for points_ego, color in layers:
        if points_ego is None or len(points_ego) == 0:
            continue
        xy = np.asarray(points_ego, dtype=np.float64).reshape(-1, 2)
        # x forward -> up, y left -> left
        pixels = np.column_stack([origin[0] - xy[:, 1] * scale, origin[1] - xy[:, 0] * scale])
        pixels = np.round(pixels).astype(np.int32)
        cv2.polylines(panel, [pixels.reshape(-1, 1, 2)], False, color, 1, cv2.LINE_AA)
        for u, v in pixels:
            cv2.circle(panel, (int(u), int(v)), 3, color, -1, cv2.LINE_AA)
    return panel


def draw_overlay(
    image_rgb: np.ndarray,
    waypoints_ego: np.ndarray | None,
    label: str,
    camera: CameraModel | None = None,
    recorded_ego: np.ndarray | None = None,
    target_point_ego: np.ndarray | None = None,
    tile_height: int = 160,
) -> np.ndarray:
    """One overlay tile (RGB uint8): the camera frame with the predicted waypoints projected on it
    (when a camera model is known) beside a top-down panel of predicted (red) and recorded (green)
    future waypoints and the target point (blue), all in base_link, and a text label."""
    import cv2

    image = np.ascontiguousarray(image_rgb[..., :3], dtype=np.uint8)
    width = max(1, int(round(image.shape[1] * tile_height / image.shape[0])))
    frame = cv2.resize(image, (width, tile_height), interpolation=cv2.INTER_AREA)
    if camera is not None:
        draw_ground_points(
            frame,
            camera.scaled_to(width, tile_height),
            [(recorded_ego, COLOR_RECORDED), (waypoints_ego, COLOR_PREDICTED)],
        )
    layers = [
        (points, colour)
        for points, colour in ((recorded_ego, COLOR_RECORDED), (waypoints_ego, COLOR_PREDICTED))
        if points is not None
    ]
    if target_point_ego is not None:
        layers.append((np.asarray(target_point_ego).reshape(1, 2), COLOR_TARGET))
    reach = [np.abs(np.asarray(p)).max() for p, _ in layers if len(p)]
    range_m = float(np.clip(max(reach, default=10.0) * 1.15, 10.0, 60.0))
    panel = _bev_panel(tile_height, range_m, layers)
    tile = np.concatenate([frame, panel], axis=1)
    draw_label(tile, label)
    return tile


def draw_label(image: np.ndarray, label: str, colour_rgb: tuple[int, int, int] = (255, 255, 255)) -> None:
    """Write `label` in the top-left corner of `image` (RGB uint8, in place) on a black box."""
    import cv2

    (text_w, text_h), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    cv2.rectangle(image, (0, 0), (text_w + 8, text_h + baseline + 6), (0, 0, 0), -1)  # legible on any background
    cv2.putText(image, label, (4, text_h + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour_rgb, 1, cv2.LINE_AA)


# ---- the driver node's debug outputs ------------------------------------------------------------
def debug_image(
    image_rgb: np.ndarray,
    camera: CameraModel,
    waypoints_ego: np.ndarray,
    target_point_ego: np.ndarray | None,
    label: str | None = None,
) -> np.ndarray:
    """A copy of the camera frame (H, W, 3 uint8) with the predicted waypoints (red) and the target
    point (blue) projected on it, and `label` (e.g. the domain-shift score) in the top-left corner:
    the driver's ~/output/debug_image."""
    image = np.array(image_rgb[..., :3], dtype=np.uint8, order="C")
    target = None if target_point_ego is None else np.asarray(target_point_ego, dtype=np.float64).reshape(1, 2)
    draw_ground_points(
        image,
        camera.scaled_to(image.shape[1], image.shape[0]),
        [(waypoints_ego, COLOR_PREDICTED), (target, COLOR_TARGET)],
        thickness_px=2,
        radius_px=5,
    )
    if label:
        draw_label(image, label)
    return image


def marker_line_points(waypoints_ego: np.ndarray) -> np.ndarray:
    """(T, 2) waypoints -> (T + 1, 3) points from the ego origin along the waypoints at z = 0, for
    the driver's waypoint LINE_STRIP marker (base_link)."""
    points = np.zeros((len(waypoints_ego) + 1, 3), dtype=np.float64)
    points[1:, :2] = np.asarray(waypoints_ego, dtype=np.float64).reshape(-1, 2)
    return points


def colour_rgba(colour_rgb: tuple[int, int, int]) -> tuple[float, float, float, float]:
    """One of the overlay colours as RViz's 0-1 RGBA (opaque), so markers match the images."""
    return colour_rgb[0] / 255.0, colour_rgb[1] / 255.0, colour_rgb[2] / 255.0, 1.0
