"""The synthetic LiDAR: 32 beams x 720 azimuths from LIDAR_HEIGHT_M above base_link, each ray ending
on the ground plane or on the nearest box (roadside objects, traffic, light poles), as numpy arrays
(slab test of every ray against the boxes in range whose angular extent it crosses, at once)."""

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
            yaw_k = boxes.yaw_rad[near] - ego_yaw  # (K,)
            az = azimuth[0]  # (A,)
            # Only the rays whose azimuth lies within a box's angular extent can hit it: (box, ray) pairs.
            half = boxes.half_size_m[near]
            local = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.float64)
            cos_k, sin_k = np.cos(yaw_k)[:, None], np.sin(yaw_k)[:, None]
            lx, ly = local[None, :, 0] * half[:, :1], local[None, :, 1] * half[:, 1:]
            corners = np.stack([cos_k * lx - sin_k * ly, sin_k * lx + cos_k * ly], axis=2) + centres[near, None, :]
            middle = np.arctan2(centres[near, 1], centres[near, 0])
            wrap = lambda angle: np.mod(angle + np.pi, 2 * np.pi) - np.pi  # noqa: E731
            spread = wrap(np.arctan2(corners[..., 1], corners[..., 0]) - middle[:, None])
            delta = wrap(az[None, :] - middle[:, None])  # (K, A)
            inside = (delta >= spread.min(axis=1)[:, None] - 1e-3) & (delta <= spread.max(axis=1)[:, None] + 1e-3)
            k, a = np.nonzero(inside)
            yaw_b = yaw_k[k]
            dir_x, dir_y = np.cos(az[a] - yaw_b), np.sin(az[a] - yaw_b)  # ray direction in box frame
            c, s = np.cos(-yaw_b), np.sin(-yaw_b)
            ox = -(c * centres[near[k], 0] - s * centres[near[k], 1])
            oy = -(s * centres[near[k], 0] + c * centres[near[k], 1])
            with np.errstate(divide="ignore", invalid="ignore"):
                tx1, tx2 = (-half[k, 0] - ox) / dir_x, (half[k, 0] - ox) / dir_x
                ty1, ty2 = (-half[k, 1] - oy) / dir_y, (half[k, 1] - oy) / dir_y
            enter = np.maximum(np.minimum(tx1, tx2), np.minimum(ty1, ty2))
            leave = np.minimum(np.maximum(tx1, tx2), np.maximum(ty1, ty2))
            hit = (enter <= leave) & (leave > 0) & (enter > 0)
            t_box = np.where(hit, enter, np.inf)  # (P,) horizontal distance per (box, ray) pair
            z_hit = LIDAR_HEIGHT_M + t_box[None] * tan_el  # (E, P)
            valid = (z_hit >= boxes.base_m[near][k][None]) & (z_hit <= boxes.top_m[near][k][None])
            t_pairs = np.where(valid, t_box[None], np.inf)
            t_valid = np.full(best.shape, np.inf)
            np.minimum.at(t_valid, (np.arange(len(tan_el))[:, None], a[None, :]), t_pairs)
            box_first = t_valid < best
            best = np.where(box_first, t_valid, best)
            intensity = np.where(box_first, 0.6, intensity)
    keep = best < LIDAR_RANGE_M
    distance = best[keep] + rng.normal(0.0, 0.02, size=int(keep.sum()))
    az = np.broadcast_to(azimuth, best.shape)[keep]
    z = np.maximum(LIDAR_HEIGHT_M + distance * np.broadcast_to(tan_el, best.shape)[keep], 0.0)
    points = np.stack([distance * np.cos(az), distance * np.sin(az), z, intensity[keep]], axis=1)
    return points.astype(np.float32)
