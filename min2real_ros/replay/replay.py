"""Replay a rosbag2 bag through the real driver and controller nodes, and record what they publish.

    bag (sqlite3 | MCAP) --raw CDR bytes--> player node --ROS 2--> DriverNode --> ControllerNode
                                                                        |              |
                            recorder node (raw subscriptions) <---------+--------------+
                                   |
                 output bag (MCAP) + overlays + plots + summary (report.py)

Three parts: `session` (the rclpy side: context, the product's node classes with the launch
files' remappings, player, recorder, one SingleThreadedExecutor), `playback` (bag or fast
timing, a tick's inputs before its camera) and `report` (overlays, plots, summary). This module
holds the options and runs the three in order.

Sensor mounts: when the bag has /tf_static with the LiDAR (and camera) transforms from the
vehicle frame (as the CARLA bridge and `min2real synth-bag` write them), the driver's
`lidar_mount_*` parameters and the overlay camera take them from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from min2real.contract import yaw_from_quaternion_wxyz
from min2real_ros.replay import playback, report
from min2real_ros.replay.bag import (
    BagError,
    BagInfo,
    BagWriter,
    deserialize,
    inspect_bag,
    iter_raw_messages,
    require_topics,
)
from min2real_ros.replay.session import (
    CONTROLLER_NODE_NAME,
    DRIVER_NODE_NAME,
    Recording,
    ReplayError,
    ReplaySession,
    required_topics,
)
from min2real_ros.replay.synth_bag import BridgeTopics

TIMINGS = ("bag", "fast")
CONTROL_OUTPUTS = ("twist", "carla", "ackermann")


@dataclass
class ReplayOptions:
    """What to replay and how. `driver_parameters` override DriverNode parameters by name."""

    bag: Path
    model: Path
    out: Path
    timing: str = "bag"
    rate: float = 1.0
    backend: str = "auto"
    domain: str = "sim"
    topics: BridgeTopics = field(default_factory=BridgeTopics)
    use_lidar: bool = True
    control_output: str = "twist"
    frame_timeout_s: float = 10.0
    startup_timeout_s: float = 30.0
    max_frames: int | None = None
    tiles: int = 12
    video: bool = False
    progress: bool = True
    driver_parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bag, self.model, self.out = Path(self.bag), Path(self.model), Path(self.out)
        if self.timing not in TIMINGS:
            raise ReplayError(f"replay timing {self.timing!r} is not supported; expected one of {TIMINGS}")
        if not self.rate > 0:
            raise ReplayError(f"replay rate {self.rate}; expected a positive factor (1.0 = real time)")
        if self.control_output not in CONTROL_OUTPUTS:
            raise ReplayError(f"control output {self.control_output!r}; expected one of {CONTROL_OUTPUTS}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ReplayError(f"max_frames={self.max_frames}; expected >= 1 or None (all frames)")


@dataclass
class ReplayResult:
    summary: dict
    outputs: dict[str, Path]


def read_static_mounts(info: BagInfo, topics: BridgeTopics) -> dict[str, tuple[float, float, float, float]]:
    """child frame -> (x, y, z, yaw_rad) relative to the vehicle frame, from the bag's /tf_static."""
    if topics.tf_static not in info.topics:
        return {}
    mounts: dict[str, tuple[float, float, float, float]] = {}
    for _, _, raw in iter_raw_messages(info.path, [topics.tf_static]):
        for transform in deserialize(raw, info.topics[topics.tf_static].msgtype).transforms:
            if transform.header.frame_id.strip("/") not in (topics.base_frame, "base_link"):
                continue
            t, q = transform.transform.translation, transform.transform.rotation
            yaw = float(yaw_from_quaternion_wxyz(np.array([q.w, q.x, q.y, q.z])))
            mounts[transform.child_frame_id.strip("/")] = (float(t.x), float(t.y), float(t.z), yaw)
    return mounts


def replay(options: ReplayOptions) -> ReplayResult:
    """Run one replay and write its outputs under `options.out`:

    output_bag/            MCAP bag: driver Path, steering class, processing time, latency,
                           controller commands, diagnostics
    contact_sheet.png      overlay tiles (camera + projected waypoints + top-down panel)
    overlays/frame_*.png   the same tiles one by one
    overlays.mp4           every frame (with `video`)
    trajectory.png         predicted vs recorded trajectory (bags with odometry)
    latency_histogram.png  camera published -> Path received
    summary.json           the summary (also returned)
    """
    if not options.model.is_file():
        raise ReplayError(
            f"model {str(options.model)!r} does not exist; expected an exported min2real model (.onnx, .engine)"
        )
    info = inspect_bag(options.bag)
    require_topics(info, required_topics(options.topics, options.use_lidar))
    output_bag = options.out / "output_bag"
    if output_bag.exists():
        raise ReplayError(f"output {str(output_bag)!r} exists already; choose a new --out directory or remove it")
    options.out.mkdir(parents=True, exist_ok=True)
    mounts = read_static_mounts(info, options.topics)

    outputs: dict[str, Path] = {"bag": output_bag}
    with BagWriter(output_bag, "mcap") as writer:
        recording = Recording(writer)
        session = ReplaySession(options, info, mounts, recording)
        try:
            played = playback.play(session, options, info, recording)
            driver = session.driver
            with recording.lock:
                counters = {
                    "frames_received_by_driver": session.driver_received("camera"),
                    "refused": int(driver.rejected),
                    "inference_errors": int(driver.inference_errors),
                    "dropped_while_busy": int(driver.frames_dropped),
                    "last_refusal": driver.last_reject_reason,
                    "last_error": driver.last_error,
                }
            backend_name = driver.policy.backend_name if driver.policy is not None else None
            contract, driver_values = session.contract, session.driver_values
        finally:
            session.close()
    with recording.lock:
        paths_received = len(recording.paths)
        steer_classes = list(recording.steer_classes)
        processing_ms = np.asarray(recording.processing_ms)
        controls = recording.controls
        domain_shift = report.domain_shift_stats(sorted(recording.domain_shift))

    numbers = report.write_outputs(options, info, played, recording, contract, mounts, driver_values, outputs)
    frames_in = len(played["camera_stamps"])
    predicted = sum(1 for stamp in played["camera_stamps"] if stamp in recording.paths)
    summary = {
        "bag": str(info.path),
        "storage": info.storage,
        "model": str(options.model),
        "backend": backend_name,
        "domain": options.domain,
        "timing": options.timing if options.timing == "fast" else f"bag x{options.rate:g}",
        "frames_in": frames_in,
        "predictions_out": paths_received,
        "predictions_for_frames_in": predicted,
        "drops": frames_in - predicted,
        **counters,
        "not_received_by_driver": frames_in - counters["frames_received_by_driver"],
        "steer_class_counts": report.steer_class_counts(steer_classes),
        "latency_ms": report.latency_stats_ms(numbers["latencies_ms"]),
        "processing_ms": report.latency_stats_ms(processing_ms),
        "controls_out": controls,
        "domain_shift": domain_shift,
        "ade_m": numbers["ade_m"],
        "fde_m": numbers["fde_m"],
        "frames_with_recorded_future": numbers["frames_with_recorded_future"],
        "wall_s": round(played["wall_s"], 3),
        "bag_duration_s": round(info.duration_s, 3),
        "output_bag_counts": dict(recording.writer.counts),
    }
    outputs["summary"] = options.out / "summary.json"
    summary["outputs"] = {key: str(value) for key, value in outputs.items()}
    report.write_summary(outputs["summary"], summary)
    return ReplayResult(summary, outputs)


__all__ = [
    "CONTROLLER_NODE_NAME",
    "DRIVER_NODE_NAME",
    "BagError",
    "ReplayError",
    "ReplayOptions",
    "ReplayResult",
    "replay",
    "required_topics",
]
