"""The synthetic two-domain driving generator (the embedded default for tests and the demo).

A drive is a procedural route: a two-lane road whose curvature varies, intersections where the
route turns left or right or goes straight across a side road, roadside objects (buildings,
trees, parked cars, poles) and an ego speed profile that slows for curves and turns and
sometimes stops before an intersection. The ego vehicle follows the right lane exactly, so the
labels are exact: future waypoints from the continuous trajectory, the target point on the
route `TARGET_POINT_DISTANCE_M` ahead, the driving command of the next intersection, and the
steering class from the contract's rule.

Two domains render the same geometry differently:
  * "sim"  flat colours like a simple simulator, plus LiDAR points cast on the same boxes/ground;
  * "real" textured asphalt and grass, muted colours, a colour cast, a lighting gradient,
           vignetting, blur and sensor noise, and no LiDAR.
Geometry and labels depend only on the seed, so `generate_drive(seed, domain="sim")` and
`generate_drive(seed, domain="real")` differ in appearance only.

Rendering is vectorised: the ground is a top-down raster of the whole route, warped into the
camera with the flat-ground homography (cv2.warpPerspective); objects are boxes projected
with a pinhole camera and painted far to near (cv2.fillConvexPoly, a few per frame); LiDAR
rays are intersected with the ground plane and the boxes as numpy arrays.

`write_synthetic_dataset` writes the sim domain in the CARLA Garage layout (4 Hz) and the real
domain in the OpenScene/NAVSIM layout (2 Hz), so the real loaders run end to end on it.

World frame: right-handed, x east, y north, metres; yaw counter-clockwise from x. Ego frame:
REP 103 base_link (x forward, y left, z up) on the ground under the vehicle reference point.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from min2real.models import contract as C
from min2real.training.data.common import TARGET_POINT_DISTANCE_M, write_image_rgb

SIM, REAL = "sim", "real"
CARLA_RATE_HZ = 4.0  # CARLA Garage saves frames at 4 Hz
NAVSIM_RATE_HZ = 2.0  # OpenScene / NAVSIM logs are 2 Hz
DEFAULT_SIM_IMAGE_SIZE = (1024, 384)  # (width, height), CARLA layout
DEFAULT_REAL_IMAGE_SIZE = (640, 360)  # 16:9 like NAVSIM's 1920 x 1080, smaller to stay fast
NAVSIM_CAMERAS = ("CAM_F0", "CAM_L0", "CAM_R0")

LANE_WIDTH_M = 3.5
ROAD_WIDTH_M = 2 * LANE_WIDTH_M  # two lanes; the ego drives in the right one
PATH_STEP_M = 0.5
ROUTE_SPACING_M = 1.0  # dense route as carla_waypoint_publisher sends it
COMMAND_LOOKAHEAD_M = 25.0  # the next intersection's command applies from this far before it
V_MAX_MPS = 10.0
LATERAL_ACCEL_MPS2 = 2.0
ACCEL_MPS2, DECEL_MPS2 = 1.5, 2.5
CAMERA_FORWARD_M, CAMERA_HEIGHT_M, CAMERA_HFOV_DEG = 1.0, 1.6, 100.0
HORIZON_FRACTION = 0.42  # horizon row as a fraction of the contract crop band
LIDAR_HEIGHT_M, LIDAR_RANGE_M = 2.5, 50.0
MAP_PX_PER_M = 8.0
RENDER_DISTANCE_M = 90.0
NAVSIM_SIDE_CROP = (28 / 1080, 416 / 1920)  # NAVSIM TransFuser's stitch crop, as fractions

_ROAD_OPTION = {"left": 1, "right": 2, "straight": 3, "follow": 4}  # CARLA RoadOption values

# Object kinds: (probability, lateral offset range beyond the road edge, length, width, height)
_KINDS = ("building", "tree", "car", "pole")
_SIM_COLOURS = {
    "grass": (72, 150, 72), "road": (105, 105, 110), "marking": (235, 235, 235), "centre": (235, 205, 60),
    "sky": (120, 175, 235), "haze": (190, 210, 230),
    "building": (190, 120, 90), "tree": (40, 110, 40), "car": (200, 40, 40), "pole": (230, 230, 60),
}
_REAL_COLOURS = {
    "grass": (96, 104, 72), "road": (72, 72, 74), "marking": (200, 198, 190), "centre": (200, 170, 90),
    "sky": (175, 185, 195), "haze": (170, 175, 180),
    "building": (140, 130, 122), "tree": (58, 72, 48), "car": (70, 78, 92), "pole": (120, 120, 115),
}


@dataclass
class SyntheticFrame:
    """One frame of a synthetic drive (all labels exact).

    image_rgb (H, W, 3) uint8 front camera; side_images: extra NAVSIM cameras (CAM_L0/CAM_R0)
    when requested. lidar_points_ego (N, 4) float32 x, y, z, intensity in REP 103 base_link
    (None for the real domain unless LiDAR was requested). pose_world (x, y, yaw) right-handed
    world. route_world (M, 2) dense route (1 m spacing), the same array for every frame of a
    drive. target_point_ego (2,), command (contract COMMANDS index), road_option (CARLA
    RoadOption of the same command), waypoints_ego (num_waypoints, 2), steer_class (contract).
    """

    index: int
    timestamp_s: float
    domain: str
    image_rgb: np.ndarray
    lidar_points_ego: np.ndarray | None
    pose_world: tuple[float, float, float]
    speed_mps: float
    route_world: np.ndarray
    target_point_ego: np.ndarray
    command: int
    road_option: int
    waypoints_ego: np.ndarray
    steer_class: int
    in_junction: bool
    side_images: dict[str, np.ndarray] = field(default_factory=dict)


def _seed_tuple(seed: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(seed, (int, np.integer)):
        return (int(seed),)
    return tuple(int(value) for value in seed)


def _rotation(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s], [s, c]])


# ---- route geometry -------------------------------------------------------------------------------
@dataclass
class _Intersection:
    index_start: int  # path index where the manoeuvre starts
    index_end: int
    kind: str  # "left" | "right" | "straight"
    centre_xy: np.ndarray
    stop_dwell_s: float  # > 0: the ego stops before entering


class SyntheticRoute:
    """Road geometry, objects and the ego timing of one drive (depends on the seed only)."""

    def __init__(self, seed: int | Sequence[int], min_length_m: float, first_turn: str | None = None) -> None:
        if first_turn not in (None, "left", "right"):
            raise ValueError(f"first_turn {first_turn!r}; expected None, 'left' or 'right'")
        seed = _seed_tuple(seed)
        rng = np.random.default_rng((*seed, 0))
        self._build_path(rng, min_length_m, first_turn)
        self._build_side_roads()
        self._build_objects(np.random.default_rng((*seed, 1)))
        self._build_timing(rng)

    # path: curvature per 0.5 m step, integrated to heading and position
    def _build_path(self, rng: np.random.Generator, min_length_m: float, first_turn: str | None) -> None:
        """Events after a short straight; the first is an intersection (`first_turn` if given)
        so that even short drives contain a turn."""
        parts: list[tuple[float, float]] = [(rng.uniform(10.0, 20.0), 0.0)]  # (length, curvature)
        events: list[tuple[int, int, str, float]] = []
        steps = round(parts[0][0] / PATH_STEP_M)
        heading = 0.0
        while steps * PATH_STEP_M < min_length_m:
            roll = 0.0 if not events else rng.random()
            if roll < 0.6:  # intersection: approach, manoeuvre, exit
                approach = rng.uniform(10.0, 20.0) if not events else rng.uniform(15.0, 30.0)
                parts.append((approach, 0.0))
                steps += round(approach / PATH_STEP_M)
                # Prefer the turn that brings the route back towards its start heading (no loops).
                p_left = 0.4 if abs(heading) < 1.0 else (0.15 if heading > 0 else 0.65)
                kind = rng.choice(["left", "right", "straight"], p=[p_left, 0.8 - p_left, 0.2])
                if not events and first_turn is not None:
                    kind = first_turn
                if kind == "straight":
                    length, curvature = 16.0, 0.0
                else:
                    radius = 11.0 if kind == "left" else 7.0
                    length, curvature = radius * math.pi / 2, (1.0 if kind == "left" else -1.0) / radius
                    heading += math.pi / 2 * (1 if kind == "left" else -1)
                n = round(length / PATH_STEP_M)
                dwell = float(rng.uniform(1.0, 3.0)) if rng.random() < 0.2 else 0.0
                events.append((steps, steps + n, str(kind), dwell))
                parts.append((n * PATH_STEP_M, curvature))
                steps += n
                exit_length = rng.uniform(12.0, 20.0)
                parts.append((exit_length, 0.0))
                steps += round(exit_length / PATH_STEP_M)
            elif roll < 0.85:
                length = rng.uniform(25.0, 60.0)
                curvature = rng.choice([-1.0, 1.0]) * rng.uniform(1 / 120, 1 / 35)
                parts.append((length, curvature))
                heading += length * curvature
                steps += round(length / PATH_STEP_M)
            else:
                length = rng.uniform(20.0, 50.0)
                parts.append((length, 0.0))
                steps += round(length / PATH_STEP_M)
        curvature = np.concatenate([np.full(round(length / PATH_STEP_M), kappa) for length, kappa in parts])
        start_heading = rng.uniform(-math.pi, math.pi)
        heading_steps = start_heading + np.concatenate([[0.0], np.cumsum(curvature * PATH_STEP_M)])
        mid_heading = 0.5 * (heading_steps[:-1] + heading_steps[1:])
        deltas = PATH_STEP_M * np.stack([np.cos(mid_heading), np.sin(mid_heading)], axis=1)
        self.path_xy = np.concatenate([np.zeros((1, 2)), np.cumsum(deltas, axis=0)])  # (N, 2) ego lane centre
        self.path_yaw = heading_steps
        self.path_s = PATH_STEP_M * np.arange(len(self.path_xy))
        self.curvature = np.concatenate([curvature, curvature[-1:]])
        left_normal = np.stack([-np.sin(self.path_yaw), np.cos(self.path_yaw)], axis=1)
        self.road_centre_xy = self.path_xy + 0.5 * LANE_WIDTH_M * left_normal
        self.intersections: list[_Intersection] = []
        for start, end, kind, dwell in events:
            self.intersections.append(_Intersection(start, end, kind, self._junction_centre(start, end, kind), dwell))

    def _junction_centre(self, start: int, end: int, kind: str) -> np.ndarray:
        if kind == "straight":
            return self.road_centre_xy[(start + end) // 2]
        # The crossing of the incoming road's centre line and the outgoing road's centre line.
        p0, p1 = self.road_centre_xy[start], self.road_centre_xy[end]
        d0 = np.array([math.cos(self.path_yaw[start]), math.sin(self.path_yaw[start])])
        d1 = np.array([math.cos(self.path_yaw[end]), math.sin(self.path_yaw[end])])
        t, _ = np.linalg.solve(np.stack([d0, d1], axis=1), p1 - p0)
        return p0 + t * d0

    def _build_side_roads(self) -> None:
        """Straight road stubs (centre lines) that make each junction a crossing."""
        stub_m = 30.0
        self.side_roads: list[np.ndarray] = []
        for junction in self.intersections:
            start, end = junction.index_start, junction.index_end
            if junction.kind == "straight":
                across = self.path_yaw[(start + end) // 2] + math.pi / 2
                direction = np.array([math.cos(across), math.sin(across)])
                self.side_roads.append(np.stack([junction.centre_xy - stub_m * direction, junction.centre_xy + stub_m * direction]))
            else:
                d0 = np.array([math.cos(self.path_yaw[start]), math.sin(self.path_yaw[start])])
                d1 = np.array([math.cos(self.path_yaw[end]), math.sin(self.path_yaw[end])])
                centre = junction.centre_xy
                self.side_roads.append(np.stack([centre - 8.0 * d0, centre + stub_m * d0]))
                self.side_roads.append(np.stack([centre - stub_m * d1, centre + 8.0 * d1]))
        # Dense centre points of every road, for clearance checks.
        dense = [self.road_centre_xy]
        for stub in self.side_roads:
            fractions = np.linspace(0.0, 1.0, int(np.linalg.norm(stub[1] - stub[0])) + 1)[:, None]
            dense.append(stub[0] + fractions * (stub[1] - stub[0]))
        self.all_road_points = np.concatenate(dense)

    def _build_objects(self, rng: np.random.Generator) -> None:
        """Boxes beside the road: centre (K, 2), yaw, half length, half width, height, kind index."""
        count = int(self.path_s[-1] / 5.0)
        s_positions = np.cumsum(rng.uniform(4.0, 12.0, size=count))
        s_positions = s_positions[s_positions < self.path_s[-1]]
        k = len(s_positions)
        kind = rng.choice(len(_KINDS), size=k, p=[0.35, 0.35, 0.15, 0.15])
        side = np.where(rng.random(k) < 0.5, 1.0, -1.0)
        side[kind == 2] = -1.0  # parked cars stand on the right shoulder
        length = np.choose(kind, [rng.uniform(5, 12, k), np.full(k, 1.4), np.full(k, 4.4), np.full(k, 0.35)])
        width = np.choose(kind, [rng.uniform(5, 10, k), np.full(k, 1.4), np.full(k, 1.9), np.full(k, 0.35)])
        height = np.choose(kind, [rng.uniform(4, 12, k), rng.uniform(4, 8, k), np.full(k, 1.5), rng.uniform(1.0, 3.5, k)])
        gap = np.choose(kind, [rng.uniform(3, 8, k), rng.uniform(1.5, 5, k), np.full(k, 0.3), rng.uniform(0.6, 2, k)])
        index = np.minimum((s_positions / PATH_STEP_M).astype(np.int64), len(self.path_s) - 1)
        yaw = self.path_yaw[index]
        # Offset from the road centre: half the road, the gap, half the object's width.
        offset = side * (0.5 * ROAD_WIDTH_M + gap + 0.5 * width)
        normal = np.stack([-np.sin(yaw), np.cos(yaw)], axis=1)
        centre = self.road_centre_xy[index] + offset[:, None] * normal
        # Keep objects off every road (curves and side roads pass near other objects' spots).
        half_diag = 0.5 * np.hypot(length, width)
        clearance = np.min(np.linalg.norm(centre[:, None, :] - self.all_road_points[None, :, :], axis=2), axis=1)
        keep = clearance > 0.5 * ROAD_WIDTH_M + np.where(kind == 2, 0.95, half_diag + 0.3)
        self.object_centre_xy = centre[keep]
        self.object_yaw = yaw[keep]
        self.object_half_size = np.stack([0.5 * length[keep], 0.5 * width[keep]], axis=1)
        self.object_height = height[keep]
        self.object_kind = kind[keep]

    # timing: speed limits from curvature and stops, acceleration envelope, time along the path
    def _build_timing(self, rng: np.random.Generator) -> None:
        cruise = rng.uniform(6.0, 9.0)
        limit = np.minimum(cruise, np.sqrt(LATERAL_ACCEL_MPS2 / np.maximum(np.abs(self.curvature), 1e-6)))
        stop_index = {}
        for junction in self.intersections:
            if junction.stop_dwell_s > 0:
                index = max(junction.index_start - 4, 1)  # stop 2 m before the junction
                limit[index] = 0.0
                stop_index[index] = junction.stop_dwell_s
        constrained = np.flatnonzero(limit < cruise - 1e-9)
        speed_sq = limit**2
        if len(constrained):
            delta_s = self.path_s[constrained][None, :] - self.path_s[:, None]  # (N, K): constraint ahead > 0
            reach = np.where(delta_s >= 0, 2 * DECEL_MPS2 * delta_s, -2 * ACCEL_MPS2 * delta_s)
            speed_sq = np.minimum(speed_sq, np.min(limit[constrained][None, :] ** 2 + reach, axis=1))
        speed = np.sqrt(speed_sq)
        mean_speed = np.maximum(0.5 * (speed[:-1] + speed[1:]), 0.2)
        times = np.concatenate([[0.0], np.cumsum(PATH_STEP_M / mean_speed)])
        s_grid = self.path_s.copy()
        # A stop: the ego stands at the stop index for the dwell time (duplicate s sample).
        for index in sorted(stop_index, reverse=True):
            times[index + 1 :] += stop_index[index]
            times = np.insert(times, index + 1, times[index] + stop_index[index])
            s_grid = np.insert(s_grid, index + 1, s_grid[index])
        self.time_grid_s, self.s_grid_m = times, s_grid
        self.duration_s = float(times[-1])

    # queries
    @property
    def length_m(self) -> float:
        return float(self.path_s[-1])

    def s_at(self, time_s: np.ndarray | float) -> np.ndarray:
        return np.interp(time_s, self.time_grid_s, self.s_grid_m)

    def pose_at_s(self, s_m: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Position (..., 2) and yaw (...) on the ego lane at path distance s (clamped to the path)."""
        s_m = np.asarray(s_m, dtype=np.float64)
        x = np.interp(s_m, self.path_s, self.path_xy[:, 0])
        y = np.interp(s_m, self.path_s, self.path_xy[:, 1])
        return np.stack([x, y], axis=-1), np.interp(s_m, self.path_s, self.path_yaw)

    def speed_at(self, time_s: float) -> float:
        half = 0.05
        t0, t1 = max(time_s - half, 0.0), time_s + half
        return float((self.s_at(t1) - self.s_at(t0)) / (t1 - t0))

    def command_at(self, s_m: float) -> tuple[str, bool]:
        """("left" | "right" | "straight" | "follow", inside a junction) at path distance s."""
        for junction in self.intersections:
            s_start, s_end = self.path_s[junction.index_start], self.path_s[junction.index_end]
            if s_end > s_m and s_start - s_m <= COMMAND_LOOKAHEAD_M:
                return junction.kind, bool(s_start - 4.0 <= s_m <= s_end)
        return "follow", False

    def route_world(self) -> np.ndarray:
        """(M, 2) the whole route at 1 m spacing."""
        s = np.arange(0.0, self.length_m, ROUTE_SPACING_M)
        return self.pose_at_s(s)[0]


# ---- appearance -------------------------------------------------------------------------------------
@dataclass
class _Appearance:
    colours: dict[str, np.ndarray]
    textured: bool
    colour_gain: np.ndarray  # (3,) colour cast
    light_gradient: float  # left-right brightness slope
    blur_sigma: float
    noise_sigma: float
    fog_distance_m: float


def _appearance(domain: str, rng: np.random.Generator) -> _Appearance:
    if domain == SIM:
        colours = {k: np.array(v, dtype=np.float32) for k, v in _SIM_COLOURS.items()}
        return _Appearance(colours, False, np.ones(3, np.float32), 0.0, 0.0, 0.0, 400.0)
    jitter = {k: np.clip(np.array(v, np.float32) * rng.uniform(0.85, 1.15), 0, 255) for k, v in _REAL_COLOURS.items()}
    gain = rng.uniform(0.88, 1.12, size=3).astype(np.float32)
    return _Appearance(jitter, True, gain, float(rng.uniform(-0.25, 0.25)), float(rng.uniform(0.6, 1.3)),
                       float(rng.uniform(2.0, 6.0)), float(rng.uniform(70.0, 160.0)))


@dataclass(frozen=True)
class PinholeCamera:
    """A flat-ground pinhole camera on the ego vehicle (no pitch/roll; yaw offset for side cameras)."""

    width: int
    height: int
    focal_px: float
    cx: float
    cy: float
    yaw_rad: float = 0.0

    @property
    def intrinsics(self) -> np.ndarray:
        return np.array([[self.focal_px, 0.0, self.cx], [0.0, self.focal_px, self.cy], [0.0, 0.0, 1.0]])


def make_camera(image_size: tuple[int, int], contract: C.Contract = C.DEFAULT_CONTRACT, yaw_rad: float = 0.0) -> PinholeCamera:
    """Camera for an image of `image_size` (width, height): the contract's centre crop of it sees
    CAMERA_HFOV_DEG horizontally with the horizon at HORIZON_FRACTION of the crop, whatever the
    source aspect, so both domains look the same to the model after the crop."""
    width, height = int(image_size[0]), int(image_size[1])
    top, _, crop_h, crop_w = C.camera_crop_box((height, width), contract)
    focal = 0.5 * crop_w / math.tan(math.radians(CAMERA_HFOV_DEG) / 2)
    return PinholeCamera(width, height, focal, 0.5 * width, top + HORIZON_FRACTION * crop_h, yaw_rad)


def side_camera_yaw(camera: PinholeCamera) -> float:
    """Yaw of CAM_L0 (and minus that of CAM_R0) so NAVSIM's side crops continue the front view."""
    keep = 1.0 - 2.0 * NAVSIM_SIDE_CROP[1]
    half = math.atan(0.5 * camera.width / camera.focal_px)
    return half + math.atan(keep * math.tan(half))


class _GroundMap:
    """A top-down RGB raster of the route's ground (roads, markings, grass) in world metres."""

    def __init__(self, route: SyntheticRoute, appearance: _Appearance, rng: np.random.Generator) -> None:
        import cv2

        margin = 40.0
        points = np.concatenate([route.all_road_points, route.object_centre_xy]) if len(route.object_centre_xy) else route.all_road_points
        self.x_min, self.y_max = float(points[:, 0].min() - margin), float(points[:, 1].max() + margin)
        width = int((points[:, 0].max() + margin - self.x_min) * MAP_PX_PER_M) + 1
        height = int((self.y_max - points[:, 1].min() + margin) * MAP_PX_PER_M) + 1
        shift = 3  # sub-pixel drawing: coordinates carry 3 fractional bits

        def to_px(xy: np.ndarray) -> np.ndarray:
            cols = (xy[:, 0] - self.x_min) * MAP_PX_PER_M
            rows = (self.y_max - xy[:, 1]) * MAP_PX_PER_M
            return np.round(np.stack([cols, rows], axis=1) * (1 << shift)).astype(np.int32)

        road_mask = np.zeros((height, width), np.uint8)
        roads = [route.road_centre_xy, *route.side_roads]
        cv2.polylines(road_mask, [to_px(r) for r in roads], False, 255, int(ROAD_WIDTH_M * MAP_PX_PER_M), cv2.LINE_8, shift)
        colours = appearance.colours
        if appearance.textured:
            grass = self._texture(rng, (height, width), colours["grass"], 22.0, 14.0)
            road = self._texture(rng, (height, width), colours["road"], 8.0, 9.0)
            ground = np.where(road_mask[..., None] > 0, road, grass)
        else:
            ground = np.empty((height, width, 3), np.uint8)
            ground[:] = colours["grass"].astype(np.uint8)
            ground[road_mask > 0] = colours["road"].astype(np.uint8)

        # Markings: edge lines and a dashed centre line, interrupted inside junctions.
        centres = np.array([j.centre_xy for j in route.intersections]).reshape(-1, 2)
        edges, dashes = [], []
        for road in roads:
            dense = self._densify(road)
            yaw = np.arctan2(np.gradient(dense[:, 1]), np.gradient(dense[:, 0]))
            normal = np.stack([-np.sin(yaw), np.cos(yaw)], axis=1)
            s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
            if len(centres):
                outside = np.min(np.linalg.norm(dense[:, None] - centres[None], axis=2), axis=1) > 0.75 * ROAD_WIDTH_M + 2.0
            else:
                outside = np.ones(len(dense), bool)
            for side in (-1.0, 1.0):
                edges += self._runs(dense + side * (0.5 * ROAD_WIDTH_M - 0.3) * normal, outside)
            dashes += self._runs(dense, outside & (np.mod(s, 6.0) < 3.0))
        line_px = max(1, int(round(0.15 * MAP_PX_PER_M)))
        cv2.polylines(ground, [to_px(r) for r in edges], False, colours["marking"].tolist(), line_px, cv2.LINE_AA, shift)
        cv2.polylines(ground, [to_px(r) for r in dashes], False, colours["centre"].tolist(), line_px, cv2.LINE_AA, shift)
        self.image = ground
        self.border_colour = colours["grass"].tolist()

    @staticmethod
    def _texture(rng, shape, colour, coarse_sigma, fine_sigma) -> np.ndarray:
        import cv2

        coarse = rng.standard_normal((shape[0] // 32 + 2, shape[1] // 32 + 2), dtype=np.float32)
        coarse = cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
        fine = rng.standard_normal(shape, dtype=np.float32)
        shade = coarse * coarse_sigma + fine * fine_sigma
        return np.clip(colour[None, None, :] + shade[..., None], 0, 255).astype(np.uint8)

    @staticmethod
    def _densify(polyline: np.ndarray, step: float = 0.5) -> np.ndarray:
        lengths = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(lengths)])
        samples = np.arange(0.0, s[-1] + 1e-9, step)
        return np.stack([np.interp(samples, s, polyline[:, 0]), np.interp(samples, s, polyline[:, 1])], axis=1)

    @staticmethod
    def _runs(points: np.ndarray, keep: np.ndarray) -> list[np.ndarray]:
        """Consecutive stretches of `points` where `keep` holds (at least 2 points each)."""
        edges = np.flatnonzero(np.diff(keep.astype(np.int8))) + 1
        pieces = np.split(np.arange(len(points)), edges)
        return [points[p] for p in pieces if len(p) >= 2 and keep[p[0]]]

    def homography_to(self, camera: PinholeCamera, ego_xy: np.ndarray, ego_yaw: float) -> np.ndarray:
        """3x3 map pixel (col, row) -> image pixel for the ground plane seen by `camera`."""
        world_from_map = np.array([[1 / MAP_PX_PER_M, 0, self.x_min], [0, -1 / MAP_PX_PER_M, self.y_max], [0, 0, 1]])
        c, s = math.cos(ego_yaw), math.sin(ego_yaw)
        x0, y0 = float(ego_xy[0]), float(ego_xy[1])
        ego_from_world = np.array([[c, s, -(c * x0 + s * y0)], [-s, c, s * x0 - c * y0], [0, 0, 1]])
        ca, sa = math.cos(camera.yaw_rad), math.sin(camera.yaw_rad)
        # camera-aligned ground frame: origin at the camera, x along its optical axis
        cam_ground_from_ego = np.array([[ca, sa, -ca * CAMERA_FORWARD_M], [-sa, ca, sa * CAMERA_FORWARD_M], [0, 0, 1]])
        # (x forward, y left, 1) on the ground -> camera (right, down, forward)
        camera_from_ground = np.array([[0, -1, 0], [0, 0, CAMERA_HEIGHT_M], [1, 0, 0]])
        return camera.intrinsics @ camera_from_ground @ cam_ground_from_ego @ ego_from_world @ world_from_map


# ---- the drive ------------------------------------------------------------------------------------
class SyntheticDrive:
    """One drive (route + appearance) that renders frames at any time.

    `duration_s` is the time the caller wants fully labelled; the route extends beyond it by the
    waypoint horizon and the target-point distance at any speed, so every frame up to
    `duration_s` has exact labels.
    """

    def __init__(
        self,
        seed: int | Sequence[int],
        duration_s: float,
        domain: str = SIM,
        image_size: tuple[int, int] = DEFAULT_SIM_IMAGE_SIZE,
        contract: C.Contract = C.DEFAULT_CONTRACT,
        cameras: Sequence[str] = ("CAM_F0",),
        lidar: bool | None = None,
        first_turn: str | None = None,
    ) -> None:
        if domain not in C.DOMAINS:
            raise ValueError(f"synthetic domain {domain!r} is not supported; expected one of {C.DOMAINS}")
        unknown = set(cameras) - set(NAVSIM_CAMERAS)
        if unknown or "CAM_F0" not in cameras:
            raise ValueError(f"synthetic cameras {tuple(cameras)} must include CAM_F0 and be among {NAVSIM_CAMERAS}")
        self.seed = _seed_tuple(seed)
        self.domain = domain
        self.contract = contract
        self.lidar = (domain == SIM) if lidar is None else bool(lidar)
        min_length = (duration_s + 2 * contract.horizon_s) * V_MAX_MPS + TARGET_POINT_DISTANCE_M + 40.0
        self.route = SyntheticRoute(self.seed, min_length, first_turn)
        self.route_world_xy = self.route.route_world()
        domain_index = C.DOMAINS.index(domain)
        self.appearance = _appearance(domain, np.random.default_rng((*self.seed, 2, domain_index)))
        self.ground = _GroundMap(self.route, self.appearance, np.random.default_rng((*self.seed, 3, domain_index)))
        front = make_camera(image_size, contract)
        self.cameras = {"CAM_F0": front}
        if "CAM_L0" in cameras:
            self.cameras["CAM_L0"] = make_camera(image_size, contract, side_camera_yaw(front))
        if "CAM_R0" in cameras:
            self.cameras["CAM_R0"] = make_camera(image_size, contract, -side_camera_yaw(front))
        self._effect_cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def frames_with_tail(self, num_labelled: int, rate_hz: float) -> int:
        """Frames to write so that a loader can label the first `num_labelled` from later frames:
        the last labelled frame needs poses one horizon later and the route one target-point
        distance ahead."""
        t_last = (num_labelled - 1) / rate_hz
        s_last = float(self.route.s_at(t_last))
        times = t_last + np.arange(1, int(self.route.duration_s * rate_hz)) / rate_hz
        s_future = self.route.s_at(times)
        ok = (times >= t_last + self.contract.horizon_s - 1e-6) & (s_future >= s_last + TARGET_POINT_DISTANCE_M + 1.0)
        if not ok.any():
            raise RuntimeError("synthetic route is too short for the label horizon (generator bug)")
        return num_labelled + int(np.argmax(ok)) + 1

    def frame(self, index: int, rate_hz: float) -> SyntheticFrame:
        contract = self.contract
        time_s = index / rate_hz
        s_now = float(self.route.s_at(time_s))
        position, yaw = self.route.pose_at_s(s_now)
        yaw = float(yaw)
        times = time_s + np.concatenate([[0.0], contract.waypoint_times_s])
        future_xy, _ = self.route.pose_at_s(self.route.s_at(times))
        waypoints = C.future_waypoints_from_poses(times, future_xy, 0, yaw, contract)
        target_world, _ = self.route.pose_at_s(min(s_now + TARGET_POINT_DISTANCE_M, self.route.length_m))
        target = C.world_to_ego_xy(target_world[None], position, yaw)[0].astype(np.float32)
        manoeuvre, in_junction = self.route.command_at(s_now)
        road_option = _ROAD_OPTION[manoeuvre]
        frame_rng = np.random.default_rng((*self.seed, 4, C.DOMAINS.index(self.domain), index))
        images = {name: self._render(camera, position, yaw, frame_rng) for name, camera in self.cameras.items()}
        return SyntheticFrame(
            index=index,
            timestamp_s=time_s,
            domain=self.domain,
            image_rgb=images.pop("CAM_F0"),
            lidar_points_ego=self._lidar(position, yaw, frame_rng) if self.lidar else None,
            pose_world=(float(position[0]), float(position[1]), yaw),
            speed_mps=self.route.speed_at(time_s),
            route_world=self.route_world_xy,
            target_point_ego=target,
            command=C.CARLA_ROAD_OPTION_TO_COMMAND[road_option],
            road_option=road_option,
            waypoints_ego=waypoints,
            steer_class=int(C.steer_class_from_waypoints(waypoints, contract)),
            in_junction=in_junction,
            side_images=images,
        )

    # rendering
    def _render(self, camera: PinholeCamera, ego_xy: np.ndarray, ego_yaw: float, rng: np.random.Generator) -> np.ndarray:
        import cv2

        look = self.appearance
        colours = look.colours
        homography = self.ground.homography_to(camera, ego_xy, ego_yaw)
        image = cv2.warpPerspective(self.ground.image, homography, (camera.width, camera.height), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=self.ground.border_colour)
        # Sky above the horizon; haze blends in beyond 25 m, i.e. only in a band of rows under
        # the horizon (flat ground, no pitch: a row's ground distance is f * h / (v - cy)).
        sky_rows = int(min(max(math.ceil(camera.cy + 0.5), 0), camera.height))
        band_end = int(min(camera.height, math.ceil(camera.cy + camera.focal_px * CAMERA_HEIGHT_M / 25.0) + 1))
        if band_end > sky_rows:
            below = np.arange(sky_rows, band_end, dtype=np.float32) - camera.cy
            distance = camera.focal_px * CAMERA_HEIGHT_M / np.maximum(below, 0.5)
            fog = 1.0 - np.exp(-np.maximum(distance - 25.0, 0.0) / look.fog_distance_m)
            fog = np.where(distance > RENDER_DISTANCE_M * 2, 1.0, fog)[:, None, None]
            band = image[sky_rows:band_end].astype(np.float32) * (1 - fog) + colours["haze"] * fog
            image[sky_rows:band_end] = (band + 0.5).astype(np.uint8)
        if look.textured:  # a sky gradient, brighter towards the horizon
            ramp = np.linspace(0.85, 1.05, max(sky_rows, 1), dtype=np.float32)[:sky_rows, None, None]
            image[:sky_rows] = np.clip(colours["sky"] * ramp + 0.5, 0, 255).astype(np.uint8)
        else:
            image[:sky_rows] = colours["sky"].astype(np.uint8)
        self._draw_objects(image, camera, ego_xy, ego_yaw)
        if look.textured:
            image = self._real_camera_effects(image, camera, rng)
        return image

    def _draw_objects(self, image: np.ndarray, camera: PinholeCamera, ego_xy: np.ndarray, ego_yaw: float) -> None:
        import cv2

        route = self.route
        if not len(route.object_centre_xy):
            return
        centres_ego = C.world_to_ego_xy(route.object_centre_xy, ego_xy, ego_yaw)
        # Box corners in the ego frame: (K, 4, 2) footprint.
        local = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.float64)
        yaw_ego = route.object_yaw - ego_yaw
        cos_y, sin_y = np.cos(yaw_ego)[:, None], np.sin(yaw_ego)[:, None]
        lx, ly = local[None, :, 0] * route.object_half_size[:, :1], local[None, :, 1] * route.object_half_size[:, 1:]
        foot = np.stack([cos_y * lx - sin_y * ly, sin_y * lx + cos_y * ly], axis=2) + centres_ego[:, None, :]
        # Into the camera's ground frame.
        ca, sa = math.cos(camera.yaw_rad), math.sin(camera.yaw_rad)
        rel = foot - np.array([CAMERA_FORWARD_M, 0.0])
        forward = ca * rel[..., 0] + sa * rel[..., 1]
        left = -sa * rel[..., 0] + ca * rel[..., 1]
        distance = np.linalg.norm(centres_ego, axis=1)
        visible = np.flatnonzero((forward.min(axis=1) > 0.5) & (distance < RENDER_DISTANCE_M))
        if not len(visible):
            return
        order = visible[np.argsort(-distance[visible])]  # far to near
        # Project bottom and top rings: u = f * (-left) / forward + cx, v = f * (h - z) / forward + cy.
        u = camera.focal_px * (-left[order]) / forward[order] + camera.cx
        heights = route.object_height[order][:, None]
        v_bottom = camera.focal_px * CAMERA_HEIGHT_M / forward[order] + camera.cy
        v_top = camera.focal_px * (CAMERA_HEIGHT_M - heights) / forward[order] + camera.cy
        shift = 4
        scale = float(1 << shift)
        kinds = route.object_kind[order]
        fog = 1.0 - np.exp(-np.maximum(distance[order] - 25.0, 0.0) / self.appearance.fog_distance_m)
        for i in range(len(order)):  # a few boxes per frame; each is one C call
            colour = self.appearance.colours[_KINDS[kinds[i]]]
            colour = colour * (1 - fog[i]) + self.appearance.colours["haze"] * fog[i]
            bottom = np.stack([u[i], v_bottom[i]], axis=1)
            top = np.stack([u[i], v_top[i]], axis=1)
            ring = np.concatenate([bottom, top])
            if np.abs(ring).max() > 1e5:
                continue
            hull = cv2.convexHull(np.round(ring * scale).astype(np.int32))
            cv2.fillConvexPoly(image, hull, (colour * 0.8).tolist(), cv2.LINE_AA, shift)
            # The top face is lit: shows whether we look down on it (cars) or not (buildings).
            cv2.fillConvexPoly(image, np.round(top * scale).astype(np.int32), np.minimum(colour * 1.15, 255).tolist(), cv2.LINE_AA, shift)
            # The side facing the camera (nearest two bottom corners) is the brightest face.
            near = np.argsort(forward[order[i]])[:2]
            face = np.concatenate([bottom[near], top[near][::-1]])
            cv2.fillConvexPoly(image, np.round(face * scale).astype(np.int32), colour.tolist(), cv2.LINE_AA, shift)

    def _real_camera_effects(self, image: np.ndarray, camera: PinholeCamera, rng: np.random.Generator) -> np.ndarray:
        """uint8 render -> uint8 camera image: colour cast, lighting gradient and vignetting,
        exposure jitter, blur and sensor noise (a random window of a per-camera noise field)."""
        import cv2

        look = self.appearance
        height, width = image.shape[:2]
        key = (width, height)
        if key not in self._effect_cache:
            xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)
            ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)
            light = (1.0 + look.light_gradient * xs)[None, :] * (1.0 - 0.28 * (xs[None, :] ** 2 + ys[:, None] ** 2))
            gain = light[..., None] * look.colour_gain
            noise_rng = np.random.default_rng((*self.seed, 5, width, height))
            noise = noise_rng.standard_normal((height + 32, width + 32, 3), dtype=np.float32) * look.noise_sigma
            self._effect_cache[key] = (gain.astype(np.float32), noise)
        gain, noise = self._effect_cache[key]
        exposure = np.float32(rng.uniform(0.93, 1.07))
        shaded = cv2.GaussianBlur(image.astype(np.float32) * (gain * exposure), (0, 0), look.blur_sigma)
        top, left = rng.integers(0, 33, size=2)
        shaded += noise[top : top + height, left : left + width]
        return np.clip(shaded + 0.5, 0, 255, out=shaded).astype(np.uint8)

    # LiDAR
    def _lidar(self, ego_xy: np.ndarray, ego_yaw: float, rng: np.random.Generator) -> np.ndarray:
        """(N, 4) float32 x, y, z, intensity in the ego frame: rays from a LiDAR at LIDAR_HEIGHT_M hit
        the ground plane or the nearest box."""
        elevation = np.radians(np.linspace(-25.0, 5.0, 32))[:, None]  # (E, 1)
        azimuth = np.radians(np.arange(0.0, 360.0, 0.5))[None, :]  # (1, A)
        tan_el = np.tan(elevation)
        ground = np.where(tan_el < -1e-6, LIDAR_HEIGHT_M / np.maximum(-tan_el, 1e-6), np.inf) * np.ones_like(azimuth)
        best, intensity = ground.copy(), np.full(ground.shape, 0.15)
        route = self.route
        if len(route.object_centre_xy):
            centres = C.world_to_ego_xy(route.object_centre_xy, ego_xy, ego_yaw)
            near = np.flatnonzero(np.linalg.norm(centres, axis=1) < LIDAR_RANGE_M + 15.0)
            if len(near):
                yaw_b = (route.object_yaw[near] - ego_yaw)[:, None]  # (K, 1)
                dir_x, dir_y = np.cos(azimuth - yaw_b), np.sin(azimuth - yaw_b)  # ray direction in box frame
                c, s = np.cos(-yaw_b), np.sin(-yaw_b)
                ox = -(c[:, 0] * centres[near, 0] - s[:, 0] * centres[near, 1])[:, None]
                oy = -(s[:, 0] * centres[near, 0] + c[:, 0] * centres[near, 1])[:, None]
                half = route.object_half_size[near]
                with np.errstate(divide="ignore", invalid="ignore"):
                    tx1, tx2 = (-half[:, :1] - ox) / dir_x, (half[:, :1] - ox) / dir_x
                    ty1, ty2 = (-half[:, 1:] - oy) / dir_y, (half[:, 1:] - oy) / dir_y
                enter = np.maximum(np.minimum(tx1, tx2), np.minimum(ty1, ty2))
                leave = np.minimum(np.maximum(tx1, tx2), np.maximum(ty1, ty2))
                hit = (enter <= leave) & (leave > 0) & (enter > 0)
                t_box = np.where(hit, enter, np.inf)  # (K, A) horizontal distance
                z_hit = LIDAR_HEIGHT_M + t_box[None] * tan_el[:, :, None]  # (E, K, A)
                valid = (z_hit >= 0) & (z_hit <= route.object_height[near][None, :, None])
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


def generate_drive(
    seed: int | Sequence[int],
    num_frames: int,
    domain: str = SIM,
    image_size: tuple[int, int] | None = None,
    rate_hz: float | None = None,
    contract: C.Contract = C.DEFAULT_CONTRACT,
    cameras: Sequence[str] = ("CAM_F0",),
    lidar: bool | None = None,
) -> Iterator[SyntheticFrame]:
    """Yield `num_frames` frames of one drive (all exactly labelled), at `rate_hz` (default 4 Hz
    sim / 2 Hz real) and `image_size` (width, height; default 1024 x 384 sim / 640 x 360 real).
    The same seed gives the same route, timing and labels in both domains."""
    rate_hz = rate_hz or (CARLA_RATE_HZ if domain == SIM else NAVSIM_RATE_HZ)
    image_size = image_size or (DEFAULT_SIM_IMAGE_SIZE if domain == SIM else DEFAULT_REAL_IMAGE_SIZE)
    drive = SyntheticDrive(seed, num_frames / rate_hz, domain, image_size, contract, cameras, lidar)
    for index in range(num_frames):
        yield drive.frame(index, rate_hz)


# ---- dataset writers ------------------------------------------------------------------------------
def _write_laz(path: Path, points_xyz: np.ndarray, intensity: np.ndarray) -> None:
    import laspy

    header = laspy.LasHeader(point_format=0, version="1.2")
    header.offsets = points_xyz.min(axis=0) if len(points_xyz) else np.zeros(3)
    header.scales = np.array([0.001, 0.001, 0.001])
    las = laspy.LasData(header)
    las.x, las.y, las.z = points_xyz[:, 0], points_xyz[:, 1], points_xyz[:, 2]
    las.intensity = np.clip(intensity * 65535, 0, 65535).astype(np.uint16)
    las.write(str(path), laz_backend=laspy.LazBackend.Lazrs)  # no thread pool: see carla_garage.read_laz_xyz


def write_pcd(path: str | Path, points: np.ndarray) -> None:
    """Binary PCD with float32 fields x, y, z, intensity (the layout of OpenScene's merged clouds)."""
    points = np.ascontiguousarray(points[:, :4], dtype=np.float32)
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z intensity\nSIZE 4 4 4 4\n"
        f"TYPE F F F F\nCOUNT 1 1 1 1\nWIDTH {len(points)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\n"
        f"POINTS {len(points)}\nDATA binary\n"
    )
    Path(path).write_bytes(header.encode("ascii") + points.tobytes())


def _carla_measurement(frame: SyntheticFrame, next_frame: SyntheticFrame | None) -> dict:
    """CARLA Garage measurement fields of a frame, in CARLA's axes (left-handed world, ego y right).
    Written with `carla_to_rep103`, which is its own inverse (it flips y)."""
    x, y, yaw = frame.pose_world
    position_carla = C.carla_to_rep103(np.array([x, y]))
    yaw_carla = -yaw
    c, s = math.cos(yaw_carla), math.sin(yaw_carla)
    ego_matrix = [[c, -s, 0.0, float(position_carla[0])], [s, c, 0.0, float(position_carla[1])], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    route_ego = C.world_to_ego_xy(frame.route_world, np.array([x, y]), yaw)
    ahead = np.flatnonzero(route_ego[:, 0] > 0)[:20]
    target_carla = C.carla_to_rep103(frame.target_point_ego.astype(np.float64))
    next_speed = next_frame.speed_mps if next_frame is not None else frame.speed_mps
    aim = frame.waypoints_ego[min(1, len(frame.waypoints_ego) - 1)]
    steer_carla = float(np.clip(-math.degrees(math.atan2(aim[1], max(aim[0], 1e-3))) / 90.0, -1.0, 1.0))
    return {
        "pos_global": [float(position_carla[0]), float(position_carla[1])],
        "theta": yaw_carla,
        "speed": frame.speed_mps,
        "target_speed": next_speed,
        "target_point": target_carla.tolist(),
        "target_point_next": target_carla.tolist(),
        "command": frame.road_option,
        "next_command": frame.road_option,
        "aim_wp": C.carla_to_rep103(aim.astype(np.float64)).tolist(),
        "route": C.carla_to_rep103(route_ego[ahead]).tolist(),
        "steer": steer_carla,
        "throttle": 0.5 if next_speed > frame.speed_mps + 0.05 else 0.0,
        "brake": next_speed < frame.speed_mps - 0.2,
        "junction": frame.in_junction,
        "vehicle_hazard": False, "light_hazard": False, "walker_hazard": False, "stop_sign_hazard": False,
        "angle": steer_carla,
        "augmentation_translation": 0.0,
        "augmentation_rotation": 0.0,
        "ego_matrix": ego_matrix,
    }


def write_carla_route(route_dir: Path, drive: SyntheticDrive, num_labelled: int, score: float = 100.0) -> int:
    """One CARLA Garage route folder at 4 Hz: rgb/%04d.jpg, lidar/%04d.laz (ego frame, CARLA axes),
    measurements/%04d.json.gz, results.json.gz. Returns the number of frames written."""
    total = drive.frames_with_tail(num_labelled, CARLA_RATE_HZ)
    for sub in ("rgb", "lidar", "measurements"):
        (route_dir / sub).mkdir(parents=True, exist_ok=True)
    frames = [drive.frame(0, CARLA_RATE_HZ)]
    for index in range(total):
        frame = frames.pop(0)
        next_frame = drive.frame(index + 1, CARLA_RATE_HZ) if index + 1 < total else None
        if next_frame is not None:
            frames.append(next_frame)
        write_image_rgb(route_dir / "rgb" / f"{index:04d}.jpg", frame.image_rgb)
        if frame.lidar_points_ego is not None:
            points = frame.lidar_points_ego.astype(np.float64)
            _write_laz(route_dir / "lidar" / f"{index:04d}.laz", C.carla_to_rep103(points[:, :3]), points[:, 3])
        with gzip.open(route_dir / "measurements" / f"{index:04d}.json.gz", "wt", encoding="utf-8") as handle:
            json.dump(_carla_measurement(frame, next_frame), handle)
    results = {"scores": {"score_composed": score, "score_route": 100.0, "score_penalty": score / 100.0},
               "status": "Completed" if score >= 100.0 else "Failed", "num_infractions": 0}
    with gzip.open(route_dir / "results.json.gz", "wt", encoding="utf-8") as handle:
        json.dump(results, handle)
    return total


def write_navsim_log(root: Path, split: str, log_name: str, drive: SyntheticDrive, num_labelled: int, log_index: int) -> int:
    """One NAVSIM log at 2 Hz: navsim_logs/<split>/<log>.pkl (list of frame dicts) and
    sensor_blobs/<split>/<log>/<CAM>/<token>.jpg (+ MergedPointCloud/<token>.pcd with LiDAR)."""
    total = drive.frames_with_tail(num_labelled, NAVSIM_RATE_HZ)
    blobs = root / "sensor_blobs" / split
    for camera in drive.cameras:
        (blobs / log_name / camera).mkdir(parents=True, exist_ok=True)
    if drive.lidar:
        (blobs / log_name / "MergedPointCloud").mkdir(parents=True, exist_ok=True)
    (root / "navsim_logs" / split).mkdir(parents=True, exist_ok=True)
    start_us = 1_600_000_000_000_000 + log_index * 3_600_000_000
    records = []
    for index in range(total):
        frame = drive.frame(index, NAVSIM_RATE_HZ)
        token = hashlib.sha1(f"{drive.seed}/{index}".encode()).hexdigest()[:16]
        images = {"CAM_F0": frame.image_rgb, **frame.side_images}
        cams = {}
        for name, image in images.items():
            relative = f"{log_name}/{name}/{token}.jpg"
            write_image_rgb(blobs / relative, image)
            cams[name] = {
                "data_path": relative,
                "sensor2lidar_rotation": np.eye(3),
                "sensor2lidar_translation": np.zeros(3),
                "cam_intrinsic": drive.cameras[name].intrinsics,
                "distortion": np.zeros(5),
            }
        lidar_path = f"{log_name}/MergedPointCloud/{token}.pcd"
        if frame.lidar_points_ego is not None:
            write_pcd(blobs / lidar_path, frame.lidar_points_ego)
        x, y, yaw = frame.pose_world
        records.append({
            "token": token,
            "timestamp": int(start_us + round(frame.timestamp_s * 1e6)),
            "log_name": log_name,
            "frame_idx": index,
            "ego2global_translation": np.array([x, y, 0.0]),
            "ego2global_rotation": np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]),
            "ego_dynamic_state": [frame.speed_mps, 0.0, 0.0, 0.0],
            "driving_command": C.command_one_hot(frame.command).astype(np.int64),
            "cams": cams,
            "lidar_path": lidar_path,
            "lidar2ego_translation": np.zeros(3),
            "lidar2ego_rotation": np.array([1.0, 0.0, 0.0, 0.0]),
            "anns": {"gt_boxes": np.zeros((0, 7)), "gt_names": np.array([], dtype="<U8"),
                     "gt_velocity_3d": np.zeros((0, 3)), "instance_tokens": [], "track_tokens": []},
            "map_location": "synthetic",
            "roadblock_ids": [],
            "traffic_lights": [],
        })
    with (root / "navsim_logs" / split / f"{log_name}.pkl").open("wb") as handle:
        pickle.dump(records, handle, protocol=4)
    return total


def write_synthetic_dataset(
    out_dir: str | Path,
    seed: int = 0,
    frames: int = 300,
    routes: int = 3,
    sim_image_size: tuple[int, int] = DEFAULT_SIM_IMAGE_SIZE,
    real_image_size: tuple[int, int] = DEFAULT_REAL_IMAGE_SIZE,
    domains: Sequence[str] = (SIM, REAL),
    real_cameras: Sequence[str] = ("CAM_F0",),
    real_lidar: bool = False,
    split: str = "trainval",
    contract: C.Contract = C.DEFAULT_CONTRACT,
) -> dict:
    """Write `frames` labelled frames per domain over `routes` routes (plus each route's tail,
    which only serves as future poses) under `out_dir`:

        carla/synthetic/route_XXX/...                 sim, CARLA Garage layout, 4 Hz
        navsim/navsim_logs/<split>/synthetic_XXX.pkl  real, OpenScene/NAVSIM layout, 2 Hz
        navsim/sensor_blobs/<split>/synthetic_XXX/CAM_F0/<token>.jpg
        synthetic.json                                what was written

    Sim and real routes use different seeds (the real domain is new scenery, as in deployment);
    `generate_drive` with one seed gives both looks of the same drive.
    """
    if routes < 1 or frames < routes:
        raise ValueError(f"synthetic dataset needs routes >= 1 and frames >= routes; got frames={frames} routes={routes}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_route = [frames // routes + (1 if r < frames % routes else 0) for r in range(routes)]
    summary: dict = {"seed": seed, "frames_per_domain": frames, "routes": routes, "split": split, "domains": {}}
    for domain in domains:
        if domain not in C.DOMAINS:
            raise ValueError(f"synthetic domain {domain!r} is not supported; expected one of {C.DOMAINS}")
        rate = CARLA_RATE_HZ if domain == SIM else NAVSIM_RATE_HZ
        written = 0
        for route_index, labelled in enumerate(per_route):
            drive_seed = (seed, C.DOMAINS.index(domain), route_index)
            first_turn = "left" if route_index % 2 == 0 else "right"  # every class in even a tiny dataset
            if domain == SIM:
                drive = SyntheticDrive(drive_seed, labelled / rate, SIM, sim_image_size, contract, first_turn=first_turn)
                written += write_carla_route(out_dir / "carla" / "synthetic" / f"route_{route_index:03d}", drive, labelled)
            else:
                drive = SyntheticDrive(drive_seed, labelled / rate, REAL, real_image_size, contract, real_cameras, real_lidar,
                                       first_turn)
                written += write_navsim_log(out_dir / "navsim", split, f"synthetic_{route_index:03d}", drive, labelled, route_index)
        summary["domains"][domain] = {"labelled_frames": frames, "frames_written": written, "rate_hz": rate,
                                      "image_size": list(sim_image_size if domain == SIM else real_image_size)}
    (out_dir / "synthetic.json").write_text(json.dumps(summary, indent=2))
    return summary
