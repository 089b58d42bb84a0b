"""What a replay leaves behind besides the output bag: overlay frames and a contact sheet (and an
optional MP4), a top-down plot of predicted vs recorded trajectory, a latency histogram and a
summary (JSON + a printed table).

ROS-free: everything works on numpy arrays collected by the replay. Frames: waypoints are in
REP 103 `base_link` (x forward, y left, metres); recorded poses in the bag's odometry frame
(`map`). Drawing uses cv2 (vectorised point lists, never per-pixel loops); plots use matplotlib
with the Agg backend (no display needed).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from min2real.models.contract import STEER_CLASSES

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
    def from_horizontal_fov(cls, width: int, height: int, hfov_deg: float, mount_xyz_m: tuple[float, float, float],
                            pitch_rad: float = 0.0) -> CameraModel:
        """Square pixels, principal point at the centre (the CARLA camera model)."""
        focal = width / (2.0 * math.tan(math.radians(hfov_deg) / 2.0))
        return cls(width, height, focal, focal, width / 2.0, height / 2.0, tuple(mount_xyz_m), pitch_rad)

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
        return CameraModel(width, height, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy,
                           self.mount_xyz_m, self.pitch_rad)


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
        scaled = camera.scaled_to(width, tile_height)
        for points, color in ((recorded_ego, COLOR_RECORDED), (waypoints_ego, COLOR_PREDICTED)):
            if points is None or len(points) == 0:
                continue
            pixels, visible = scaled.project_ground(points)
            drawn = np.round(pixels[visible]).astype(np.int32)
            if len(drawn) > 1:
                cv2.polylines(frame, [drawn.reshape(-1, 1, 2)], False, color, 1, cv2.LINE_AA)
            for u, v in drawn:
                cv2.circle(frame, (int(u), int(v)), 3, color, -1, cv2.LINE_AA)
    layers = [(recorded_ego, COLOR_RECORDED), (waypoints_ego, COLOR_PREDICTED)]
    if target_point_ego is not None:
        layers.append((np.asarray(target_point_ego).reshape(1, 2), COLOR_TARGET))
    reach = [np.abs(np.asarray(p)).max() for p, _ in layers if p is not None and len(p)]
    range_m = float(np.clip(max(reach, default=10.0) * 1.15, 10.0, 60.0))
    panel = _bev_panel(tile_height, range_m, layers)
    tile = np.concatenate([frame, panel], axis=1)
    cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def contact_sheet(tiles: list[np.ndarray], columns: int = 3, gap_px: int = 4) -> np.ndarray:
    """Equal-size RGB tiles -> one RGB image in a grid (row-major), white gaps."""
    if not tiles:
        raise ValueError("contact sheet needs at least one tile; the replay produced no overlay frames")
    height, width = tiles[0].shape[:2]
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    sheet = np.full((rows * (height + gap_px) - gap_px, columns * (width + gap_px) - gap_px, 3), 255, dtype=np.uint8)
    for index, tile in enumerate(tiles):
        if tile.shape[:2] != (height, width):
            raise ValueError(f"contact sheet tile {index} has size {tile.shape[:2]}; expected {(height, width)} like tile 0")
        row, column = divmod(index, columns)
        top, left = row * (height + gap_px), column * (width + gap_px)
        sheet[top : top + height, left : left + width] = tile
    return sheet


def write_png(path: Path, image_rgb: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write image {str(path)!r}")
    return path


def write_video(path: Path, frames_rgb: list[np.ndarray], fps: float) -> Path:
    """Equal-size RGB frames -> MP4 (mp4v) via cv2.VideoWriter."""
    import cv2

    if not frames_rgb:
        raise ValueError("video needs at least one frame; the replay produced no overlay frames")
    height, width = frames_rgb[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(max(fps, 1.0)), (width, height))
    if not writer.isOpened():
        raise OSError(f"cv2.VideoWriter could not open {str(path)!r} with the mp4v codec")
    try:
        for frame in frames_rgb:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


# ---- plots --------------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_trajectories(
    path: Path,
    recorded_xy_map: np.ndarray,
    predicted_paths_map: list[np.ndarray],
    route_xy_map: np.ndarray | None = None,
    title: str = "predicted vs recorded trajectory",
) -> Path:
    """Top-down plot in the odometry frame: recorded trajectory (green), every predicted waypoint
    path moved into the map frame with the pose at its camera stamp (red), the route (grey)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 6.4), dpi=100)
    if route_xy_map is not None and len(route_xy_map):
        axes.plot(route_xy_map[:, 0], route_xy_map[:, 1], "--", color="0.6", lw=1, label="route")
    for index, predicted in enumerate(predicted_paths_map):
        axes.plot(predicted[:, 0], predicted[:, 1], "-", color="tab:red", lw=0.8, alpha=0.6,
                  label="predicted waypoints" if index == 0 else None)
    axes.plot(recorded_xy_map[:, 0], recorded_xy_map[:, 1], "-", color="tab:green", lw=2, label="recorded (odometry)")
    axes.plot(recorded_xy_map[:1, 0], recorded_xy_map[:1, 1], "o", color="tab:green", label="start")
    # Frame the drive (the route usually extends far beyond the part that was replayed).
    shown = np.concatenate([recorded_xy_map.reshape(-1, 2)] + [p.reshape(-1, 2) for p in predicted_paths_map])
    low, high = shown.min(axis=0) - 10.0, shown.max(axis=0) + 10.0
    axes.set_xlim(low[0], high[0])
    axes.set_ylim(low[1], high[1])
    axes.set_aspect("equal", adjustable="box")
    axes.set_xlabel("x (m, odometry frame)")
    axes.set_ylabel("y (m, odometry frame)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_latency_histogram(path: Path, latencies_ms: np.ndarray, title: str = "camera -> Path latency") -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    values = np.asarray(latencies_ms, dtype=np.float64)
    if values.size:
        axes.hist(values, bins=min(40, max(5, values.size // 2)), color="tab:blue", alpha=0.85)
        for q, style in ((50, "--"), (99, ":")):
            value = float(np.percentile(values, q))
            axes.axvline(value, color="k", linestyle=style, lw=1, label=f"p{q} {value:.1f} ms")
        axes.legend(fontsize=8)
    else:
        axes.text(0.5, 0.5, "no predictions received", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("latency (ms): camera message published -> predicted Path received")
    axes.set_ylabel("frames")
    axes.set_title(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


# ---- summary ----------------------------------------------------------------------------------
def latency_stats_ms(latencies_ms: np.ndarray) -> dict[str, float | None]:
    values = np.asarray(latencies_ms, dtype=np.float64)
    if values.size == 0:
        return {"p50": None, "p99": None, "mean": None, "max": None}
    return {
        "p50": round(float(np.percentile(values, 50)), 3),
        "p99": round(float(np.percentile(values, 99)), 3),
        "mean": round(float(values.mean()), 3),
        "max": round(float(values.max()), 3),
    }


def steer_class_counts(steer_classes: list[int]) -> dict[str, int]:
    counts = np.bincount(np.asarray(steer_classes, dtype=np.int64), minlength=len(STEER_CLASSES)) if steer_classes else \
        np.zeros(len(STEER_CLASSES), dtype=np.int64)
    return {name: int(counts[index]) for index, name in enumerate(STEER_CLASSES)}


def write_summary(path: Path, summary: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    return path


def format_summary(summary: dict) -> str:
    """The summary as an aligned two-column table (what `min2real replay` and `demo` print)."""
    latency = summary.get("latency_ms", {})
    counts = summary.get("steer_class_counts", {})

    def number(value: Any, unit: str = "") -> str:
        return "n/a" if value is None else f"{value:.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"

    rows = [
        ("bag", f"{summary.get('bag')} ({summary.get('storage')})"),
        ("model", f"{summary.get('model')} (backend {summary.get('backend')})"),
        ("timing", summary.get("timing")),
        ("camera frames in", number(summary.get("frames_in"))),
        ("predictions out (Path)", number(summary.get("predictions_out"))),
        ("frames without prediction", number(summary.get("drops"))),
        ("control commands out", number(summary.get("controls_out"))),
        ("latency p50 / p99", f"{number(latency.get('p50'), ' ms')} / {number(latency.get('p99'), ' ms')}"),
        ("steering classes", ", ".join(f"{name} {count}" for name, count in counts.items())),
    ]
    if summary.get("ade_m") is not None:
        rows.append(("waypoint error vs recorded (ADE)", number(summary["ade_m"], " m")))
    rows.append(("wall time", number(summary.get("wall_s"), " s")))
    width = max(len(name) for name, _ in rows)
    lines = [f"  {name:<{width}}  {value}" for name, value in rows]
    outputs = summary.get("outputs", {})
    if outputs:
        lines.append("  outputs:")
        key_width = max(len(key) for key in outputs)
        lines.extend(f"    {key:<{key_width}}  {value}" for key, value in outputs.items())
    return "\n".join(lines)
