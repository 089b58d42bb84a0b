"""The traffic of a frame as dataset labels: CARLA Garage's `boxes/%04d.json.gz` entries (ego frame,
CARLA axes: x forward, y right, yaw clockwise) and NAVSIM/OpenScene `anns` (ego frame, REP 103:
x forward, y left; boxes [x, y, z, length, width, height, heading])."""

from __future__ import annotations

import math

import numpy as np

from min2real import contract as C
from min2real.data.synthetic.drive import SyntheticFrame
from min2real.data.synthetic.traffic_plan import KIND_PEDESTRIAN

LIGHT_HAZARD_M = 30.0  # a red / yellow light this close ahead is Garage's light_hazard
BOX_RANGE_M = 50.0  # actors written within this distance of the ego
_GARAGE_LIGHT = {"red": "Red", "yellow": "Yellow", "green": "Green"}


def _in_range(frame: SyntheticFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indices of actors in range, their centres (A, 2) and yaws (A,) in the ego frame REP 103)."""
    traffic = frame.traffic
    assert traffic is not None
    x, y, yaw = frame.pose_world
    centres = C.world_to_ego_xy(traffic.centre_xy.reshape(-1, 2), np.array([x, y]), yaw)
    keep = np.flatnonzero(np.linalg.norm(centres, axis=1) < BOX_RANGE_M)
    yaw_ego = np.arctan2(np.sin(traffic.yaw_rad[keep] - yaw), np.cos(traffic.yaw_rad[keep] - yaw))
    return keep, centres[keep], yaw_ego


def _lidar_hits(frame: SyntheticFrame, centres: np.ndarray, yaws: np.ndarray, half: np.ndarray) -> np.ndarray:
    """(A,) LiDAR points inside each box's footprint (0 without LiDAR)."""
    points = frame.lidar_points_ego
    if points is None or not len(centres):
        return np.zeros(len(centres), dtype=np.int64)
    rel = points[None, :, :2] - centres[:, None, :]  # (A, N, 2)
    c, s = np.cos(yaws)[:, None], np.sin(yaws)[:, None]
    along, across = c * rel[..., 0] + s * rel[..., 1], -s * rel[..., 0] + c * rel[..., 1]
    inside = (np.abs(along) <= half[:, :1]) & (np.abs(across) <= half[:, 1:]) & (points[None, :, 2] > 0.1)
    return inside.sum(axis=1)


def garage_boxes(frame: SyntheticFrame) -> list[dict]:
    """CARLA Garage boxes of a frame: the ego car, the actors in range, the next traffic light."""
    traffic = frame.traffic
    assert traffic is not None
    boxes: list[dict] = [
        {
            "class": "ego_car",
            "extent": [2.3, 0.95, 0.75],
            "position": [0.0, 0.0, 0.0],
            "yaw": 0.0,
            "speed": frame.speed_mps,
            "id": -1,
            "num_points": -1,
            "distance": 0.0,
        }  # fmt: skip
    ]
    keep, centres, yaws = _in_range(frame)
    half = traffic.half_size_m[keep]
    hits = _lidar_hits(frame, centres, yaws, half)
    for row, actor in enumerate(keep):
        position = C.carla_to_rep103(centres[row][None])[0]
        boxes.append(
            {
                "class": "walker" if traffic.kinds[actor] == KIND_PEDESTRIAN else "car",
                "extent": [float(half[row, 0]), float(half[row, 1]), 0.5 * float(traffic.height_m[actor])],
                "position": [float(position[0]), float(position[1]), 0.0],
                "yaw": -float(yaws[row]),
                "speed": float(traffic.speed_mps[actor]),
                "id": int(traffic.ids[actor]),
                "num_points": int(hits[row]),
                "distance": float(np.linalg.norm(centres[row])),
            }
        )
    if traffic.light_state != "none" and math.isfinite(traffic.light_distance_m):
        boxes.append(
            {
                "class": "traffic_light",
                "state": _GARAGE_LIGHT[traffic.light_state],
                "distance": float(traffic.light_distance_m),
                "affects_ego": bool(traffic.light_distance_m < LIGHT_HAZARD_M),
            }
        )
    return boxes


def navsim_annotations(frame: SyntheticFrame) -> dict:
    """NAVSIM `anns` of a frame (empty arrays without traffic)."""
    if frame.traffic is None:
        return {
            "gt_boxes": np.zeros((0, 7)),
            "gt_names": np.array([], dtype="<U10"),
            "gt_velocity_3d": np.zeros((0, 3)),
            "instance_tokens": [],
            "track_tokens": [],
        }
    traffic = frame.traffic
    keep, centres, yaws = _in_range(frame)
    half, height = traffic.half_size_m[keep], traffic.height_m[keep]
    boxes = np.column_stack([centres, 0.5 * height, 2 * half[:, 0], 2 * half[:, 1], height, yaws])
    heading = np.stack([np.cos(yaws), np.sin(yaws)], axis=1) * traffic.speed_mps[keep, None]
    names = ["pedestrian" if k == KIND_PEDESTRIAN else "vehicle" for k in traffic.kinds[keep]]
    tokens = [f"synthetic-actor-{int(i)}" for i in traffic.ids[keep]]
    return {
        "gt_boxes": boxes.reshape(-1, 7),
        "gt_names": np.array(names, dtype="<U10"),
        "gt_velocity_3d": np.column_stack([heading, np.zeros(len(keep))]).reshape(-1, 3),
        "instance_tokens": tokens,
        "track_tokens": tokens,
    }
