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
from pathlib import Path
from typing import Any

import numpy as np

from min2real.contract import STEER_CLASSES
from min2real.evaluation.figures import pyplot


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
    rows.append(("wall time", number(summary.get("wall_s"), " s")))
    width = max(len(name) for name, _ in rows)
    lines = [f"  {name:<{width}}  {value}" for name, value in rows]
    outputs = summary.get("outputs", {})
    if outputs:
        lines.append("  outputs:")
        key_width = max(len(key) for key in outputs)
        lines.extend(f"    {key:<{key_width}}  {value}" for key, value in outputs.items())
    return "\n".join(lines)
