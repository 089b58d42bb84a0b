"""What a replay leaves behind besides the output bag: overlay frames and a contact sheet (and an
optional MP4), a top-down plot of predicted vs recorded trajectory, a latency histogram and a
summary (JSON + a printed table).

No rclpy: everything works on numpy arrays collected by the replay and on the bag (rosbags). Frames: waypoints are in
REP 103 `base_link` (x forward, y left, metres); recorded poses in the bag's odometry frame
(`map`). Drawing uses cv2 (vectorised point lists, never per-pixel loops); plots use matplotlib
with the Agg backend (no display needed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from min2real.contract import STEER_CLASSES, future_waypoints_from_poses
from min2real.evaluation import figures
from min2real.evaluation.figures import pyplot
from min2real.runtime.domain_monitor import ScoreSummary
from min2real.runtime.overlay import CameraModel, draw_overlay
from min2real_ros.conversions import image_to_rgb, odometry_to_pose2d, path_to_xy, stamp_to_seconds
from min2real_ros.replay.bag import BagInfo, deserialize, iter_raw_messages
from min2real_ros.replay.synth_bag import BridgeTopics


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def plot_trajectories(
    path: Path,
    recorded_xy_map: np.ndarray,
    predicted_paths_map: list[np.ndarray],
    route_xy_map: np.ndarray | None = None,
    title: str = "predicted vs recorded trajectory",
) -> Path:
    """Top-down plot in the odometry frame: recorded trajectory (green), every predicted waypoint
    path moved into the map frame with the pose at its camera stamp (red), the route (grey)."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 6.4), dpi=100)
    if route_xy_map is not None and len(route_xy_map):
        axes.plot(route_xy_map[:, 0], route_xy_map[:, 1], "--", color="0.6", lw=1, label="route")
    for index, predicted in enumerate(predicted_paths_map):
        axes.plot(
            predicted[:, 0],
            predicted[:, 1],
            "-",
            color="tab:red",
            lw=0.8,
            alpha=0.6,
            label="predicted waypoints" if index == 0 else None,
        )
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
    plt = pyplot()
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
    counts = (
        np.bincount(np.asarray(steer_classes, dtype=np.int64), minlength=len(STEER_CLASSES))
        if steer_classes
        else np.zeros(len(STEER_CLASSES), dtype=np.int64)
    )
    return {name: int(counts[index]) for index, name in enumerate(STEER_CLASSES)}


def domain_shift_stats(readings: list[tuple[int, float, float, int]]) -> dict | None:
    """The replay's domain-shift monitor (~/output/domain_shift: stamp, score, smoothed, level)
    summarised as runtime.domain_monitor.ScoreSummary does; None when the model has no monitor."""
    if not readings:
        return None
    return ScoreSummary.of([(score, level) for _stamp_ns, score, _smoothed, level in readings]).summary()


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
        (
            "  refused / dropped busy / lost",
            " / ".join(number(summary.get(key)) for key in ("refused", "dropped_while_busy", "not_received_by_driver")),
        ),
        ("control commands out", number(summary.get("controls_out"))),
        ("latency p50 / p99", f"{number(latency.get('p50'), ' ms')} / {number(latency.get('p99'), ' ms')}"),
        ("steering classes", ", ".join(f"{name} {count}" for name, count in counts.items())),
    ]
    if summary.get("ade_m") is not None:
        rows.append(("waypoint error vs recorded (ADE)", number(summary["ade_m"], " m")))
    shift = summary.get("domain_shift")
    if shift:
        rows.append(
            (
                "domain shift (OOD score)",
                f"mean {number(shift['ood_score_mean'])}, max {number(shift['ood_score_max'])}, "
                f"{shift['frames_warn_or_worse']:.0%} of frames WARN or worse",
            )
        )
    rows.append(("wall time", number(summary.get("wall_s"), " s")))
    width = max(len(name) for name, _ in rows)
    lines = [f"  {name:<{width}}  {value}" for name, value in rows]
    outputs = summary.get("outputs", {})
    if outputs:
        lines.append("  outputs:")
        key_width = max(len(key) for key in outputs)
        lines.extend(f"    {key:<{key_width}}  {value}" for key, value in outputs.items())
    return "\n".join(lines)


def decode_first(info: BagInfo, topic: str) -> Any | None:
    if topic not in info.topics:
        return None
    for _, _, raw in iter_raw_messages(info.path, [topic]):
        return deserialize(raw, info.topics[topic].msgtype)
    return None


def _odometry_track(info: BagInfo, topics: BridgeTopics) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(times s, positions (N, 2) in the odometry frame, yaw (N,)) from the bag, or None without odometry."""
    if topics.odometry not in info.topics:
        return None
    msgtype = info.topics[topics.odometry].msgtype
    times, positions, yaws = [], [], []
    for _, _, raw in iter_raw_messages(info.path, [topics.odometry]):
        message = deserialize(raw, msgtype)
        xy, yaw = odometry_to_pose2d(message)
        times.append(stamp_to_seconds(message.header.stamp))
        positions.append(xy)
        yaws.append(yaw)
    if not times:
        return None
    order = np.argsort(times, kind="stable")
    return np.asarray(times)[order], np.asarray(positions)[order], np.asarray(yaws)[order]


def _camera_model(info: BagInfo, topics: BridgeTopics, mounts: dict, driver_values: dict) -> CameraModel | None:
    """The overlay camera: CameraInfo intrinsics from the bag (else the driver's camera_fov_deg) and
    the camera mount from /tf_static (else the driver's camera_mount_* parameters)."""
    from min2real_ros.nodes.driver_parameters import PARAMETERS

    def value(name: str) -> float:
        return float(driver_values.get(name, PARAMETERS[name].default))

    mount = mounts.get(topics.camera_frame)
    mount_xyz = (
        mount[:3] if mount is not None else (value("camera_mount_x"), value("camera_mount_y"), value("camera_mount_z"))
    )
    pitch = math.radians(value("camera_pitch_deg"))
    info_msg = decode_first(info, topics.camera_info)
    if info_msg is not None and info_msg.k[0] > 0:
        k = np.asarray(info_msg.k, dtype=np.float64)
        return CameraModel(int(info_msg.width), int(info_msg.height), k[0], k[4], k[2], k[5], tuple(mount_xyz), pitch)
    first = decode_first(info, topics.camera)
    if first is None:
        return None
    return CameraModel.from_horizontal_fov(
        int(first.width), int(first.height), value("camera_fov_deg"), tuple(mount_xyz), pitch
    )


def _pose_at(track: tuple[np.ndarray, np.ndarray, np.ndarray], stamp_s: float, tolerance_s: float = 0.1) -> int | None:
    times = track[0]
    index = int(np.clip(np.searchsorted(times, stamp_s), 1, len(times) - 1)) if len(times) > 1 else 0
    if len(times) > 1 and abs(times[index - 1] - stamp_s) < abs(times[index] - stamp_s):
        index -= 1
    return index if abs(times[index] - stamp_s) <= tolerance_s else None


def _ego_to_map(points_ego: np.ndarray, xy: np.ndarray, yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return points_ego @ np.array([[c, s], [-s, c]]) + xy


def write_outputs(
    options: Any,
    info: BagInfo,
    session_data: dict,
    recording: Any,
    contract: Any,
    mounts: dict,
    driver_values: dict,
    outputs: dict[str, Path],
) -> dict[str, Any]:
    """Overlays, plots; returns the per-frame error numbers for the summary."""
    topics = options.topics
    stamps: list[int] = session_data["camera_stamps"]
    predicted = [stamp for stamp in stamps if stamp in recording.paths]
    track = _odometry_track(info, topics)
    route = decode_first(info, topics.route)
    route_xy = path_to_xy(route) if route is not None else None

    recorded_future: dict[int, np.ndarray] = {}
    errors_m: list[float] = []
    final_errors_m: list[float] = []
    predicted_map: list[np.ndarray] = []
    if track is not None:
        for stamp in predicted:
            index = _pose_at(track, stamp * 1e-9)
            if index is None:
                continue
            waypoints = recording.paths[stamp][0]
            predicted_map.append(_ego_to_map(waypoints, track[1][index], track[2][index]))
            future = future_waypoints_from_poses(track[0], track[1], index, float(track[2][index]), contract)
            if future is not None:
                recorded_future[stamp] = future
                distance = np.linalg.norm(waypoints - future, axis=1)
                errors_m.append(float(distance.mean()))
                final_errors_m.append(float(distance[-1]))
        outputs["trajectory_plot"] = plot_trajectories(
            options.out / "trajectory.png",
            track[1],
            predicted_map,
            route_xy,
            title=f"predicted vs recorded trajectory ({len(predicted_map)} predictions)",
        )

    latencies = np.array([(recording.paths[s][1] - session_data["published_at"][s]) * 1e3 for s in predicted])
    outputs["latency_histogram"] = plot_latency_histogram(options.out / "latency_histogram.png", latencies)

    # Overlays: a second pass over the camera topic draws the predictions on their frames.
    camera_model = _camera_model(info, topics, mounts, driver_values)
    steer_by_stamp = dict(zip(recording.path_order, recording.steer_classes))
    chosen = (
        set(
            predicted[i]
            for i in np.linspace(0, len(predicted) - 1, min(options.tiles, len(predicted))).round().astype(int)
        )
        if predicted
        else set()
    )
    tiles, video_frames = [], []
    wanted = set(stamps)
    camera_type = info.topics[topics.camera].msgtype
    overlay_dir = options.out / "overlays"
    for _, _, raw in iter_raw_messages(info.path, [topics.camera]):
        message = deserialize(raw, camera_type)
        stamp = _stamp_ns(message.header.stamp)
        if stamp not in wanted or (stamp not in chosen and not options.video):
            continue
        frame_index = stamps.index(stamp)
        waypoints = recording.paths.get(stamp, (None,))[0]
        steer = steer_by_stamp.get(stamp)
        label = f"#{frame_index} t={stamp * 1e-9:.2f}s " + (
            "no prediction"
            if waypoints is None
            else f"{STEER_CLASSES[steer] if steer is not None else '?'} "
            f"{(recording.paths[stamp][1] - session_data['published_at'][stamp]) * 1e3:.0f}ms"
        )
        tile = draw_overlay(image_to_rgb(message), waypoints, label, camera_model, recorded_future.get(stamp))
        if stamp in chosen:
            tiles.append(tile)
            figures.write_png(overlay_dir / f"frame_{frame_index:05d}.png", tile)
        if options.video:
            video_frames.append(tile)
    if tiles:
        outputs["contact_sheet"] = figures.write_png(
            options.out / "contact_sheet.png", figures.contact_sheet(tiles, columns=3)
        )
        outputs["overlays"] = overlay_dir
    if options.video and video_frames:
        rate_hz = len(stamps) / max(info.duration_s, 1e-3)
        outputs["video"] = figures.write_video(options.out / "overlays.mp4", video_frames, rate_hz)
    return {
        "latencies_ms": latencies,
        "ade_m": round(float(np.mean(errors_m)), 3) if errors_m else None,
        "fde_m": round(float(np.mean(final_errors_m)), 3) if final_errors_m else None,
        "frames_with_recorded_future": len(errors_m),
    }
