"""Plain data types of the ROS-free runtime: what goes into a policy and what comes out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameInputs:
    """One assembled frame, already in the contract's frames and units.

    image_rgb: (H, W, 3) uint8 RGB of any size (the contract crops and resizes it).
    lidar_points_ego: (N, 3+) float32 x, y, z in base_link (REP 103, metres), or None for
        "no LiDAR" (the BEV is all zeros, as for real-domain data in the paper).
    speed_mps: ego speed, metres per second.
    target_point_ego: (2,) next route target in base_link (REP 103, metres).
    command: driving command index (contract.COMMANDS) or None (unknown).
    """

    image_rgb: np.ndarray
    lidar_points_ego: np.ndarray | None
    speed_mps: float
    target_point_ego: np.ndarray
    command: int | None = None


@dataclass(frozen=True)
class Prediction:
    """A policy's output for one frame. Values are finite (non-finite outputs raise instead).

    waypoints_ego: (T, 2) float32 future positions in base_link (REP 103: x forward, y left), metres.
    steer_class: 0 straight, 1 left, 2 right (contract.STEER_CLASSES).
    steer_probs: (3,) float32 class probabilities.
    preprocess_ms / inference_ms: time spent in pre-processing and in the backend.
    ood_score / domain_logit: the monitor's outputs for this frame (runtime.domain_monitor), None
        when the graph has no monitor.
    target_speed_probs: (len(contract.TARGET_SPEEDS_MPS),) float32 probabilities of the target-speed
    head, or None when the model has no such output.
    """

    waypoints_ego: np.ndarray
    steer_class: int
    steer_probs: np.ndarray
    preprocess_ms: float
    inference_ms: float
    ood_score: float | None = None
    domain_logit: float | None = None
    target_speed_probs: np.ndarray | None = None


@dataclass(frozen=True)
class VehicleControl:
    """A vehicle command in CARLA's convention: steer in [-1, 1] with positive = RIGHT,
    throttle and brake in [0, 1]; reverse selects the reverse gear (the controller never does).
    min2real.runtime.vehicle_commands says how each ROS output encodes it."""

    steer: float
    throttle: float
    brake: float
    reverse: bool = False
