"""The synthetic LiDAR: 32 beams x 720 azimuths from LIDAR_HEIGHT_M above base_link, each ray ending
on the ground plane or on the nearest box (roadside objects, traffic, light poles), as numpy arrays
(slab test of every ray against every box in range at once)."""

from __future__ import annotations

import numpy as np

from min2real import contract as C
from min2real.data.synthetic.render import LIDAR_HEIGHT_M, LIDAR_RANGE_M, Boxes


def cast_lidar(boxes: Boxes, ego_xy: np.ndarray, ego_yaw: float, rng: np.random.Generator) -> np.ndarray:
    """(N, 4) float32 x, y, z, intensity in the ego frame (REP 103): rays from a LiDAR at
    LIDAR_HEIGHT_M hit the ground plane or the nearest box (between its base and top heights)."""
    elevation = np.radians(np.linspace(-25.0, 5.0, 32))[:, None]  # (E, 1)
    azimuth = np.radians(np.arange(0.0, 360.0, 0.5))[None, :]  # (1, A)
    tan_el = np.tan(elevation)
    ground = np.where(tan_el < -1e-6, LIDAR_HEIGHT_M / np.maximum(-tan_el, 1e-6), np.inf) * np.ones_like(azimuth)
    best, intensity = ground.copy(), np.full(ground.shape, 0.15)
    if len(boxes):
        centres = C.world_to_ego_xy(boxes.centre_xy, ego_xy, ego_yaw)
        near = np.flatnonzero(np.linalg.norm(centres, axis=1) < LIDAR_RANGE_M + 15.0)
        if len(near):
            yaw_b = (boxes.yaw_rad[near] - ego_yaw)[:, None]  # (K, 1)
            dir_x, dir_y = np.cos(azimuth - yaw_b), np.sin(azimuth - yaw_b)  # ray direction in box frame
            c, s = np.cos(-yaw_b), np.sin(-yaw_b)
            ox = -(c[:, 0] * centres[near, 0] - s[:, 0] * centres[near, 1])[:, None]
            oy = -(s[:, 0] * centres[near, 0] + c[:, 0] * centres[near, 1])[:, None]
            half = boxes.half_size_m[near]
            with np.errstate(divide="ignore", invalid="ignore"):
                tx1, tx2 = (-half[:, :1] - ox) / dir_x, (half[:, :1] - ox) / dir_x
                ty1, ty2 = (-half[:, 1:] - oy) / dir_y, (half[:, 1:] - oy) / dir_y
            enter = np.maximum(np.minimum(tx1, tx2), np.minimum(ty1, ty2))
            leave = np.minimum(np.maximum(tx1, tx2), np.maximum(ty1, ty2))
            hit = (enter <= leave) & (leave > 0) & (enter > 0)
            t_box = np.where(hit, enter, np.inf)  # (K, A) horizontal distance
            z_hit = LIDAR_HEIGHT_M + t_box[None] * tan_el[:, :, None]  # (E, K, A)
            valid = (z_hit >= boxes.base_m[near][None, :, None]) & (z_hit <= boxes.top_m[near][None, :, None])
            t_valid = np.where(valid, t_box[None], np.inf).min(axis=1)  # (E, A)
            box_first = t_valid < best
            best = np.where(box_first, t_valid, best)
            intensity = np.where(box_first, 0.6, intensity)
    keep = best < LIDAR_RANGE_M
    distance = best[keep] + rng.normal(0.0, 0.02, size=int(keep.sum()))
    az = np.broadcast_to(azimuth, best.shape)[keep]
    z = np.maximum(LIDAR_HEIGHT_M + distance * np.broadcast_to(tan_el, best.shape)[keep], 0.0)
    points = np.stack([distance * np.cos(az), distance * np.sin(az), z, intensity[keep]], axis=1)
    return points.astype(np.float32)
