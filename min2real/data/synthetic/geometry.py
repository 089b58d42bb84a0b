"""Road geometry, roadside objects and the ego timing of one synthetic drive (depends on the seed only).

A drive is a procedural route: a two-lane road whose curvature varies, intersections where the
route turns left or right or goes straight across a side road, roadside objects (buildings,
trees, parked cars, poles) and an ego speed profile that slows for curves and turns and
sometimes stops before an intersection. The ego lane centre (`path_xy`) is what the ego drives.

World frame: right-handed, x east, y north, metres; yaw counter-clockwise from x.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LANE_WIDTH_M = 3.5
ROAD_WIDTH_M = 2 * LANE_WIDTH_M  # two lanes; the ego drives in the right one
PATH_STEP_M = 0.5
ROUTE_SPACING_M = 1.0  # dense route as carla_waypoint_publisher sends it
COMMAND_LOOKAHEAD_M = 25.0  # the next intersection's command applies from this far before it
# How long the ego stands at a stop: a stop, then go. A single-frame policy cannot tell how long it
# has stood, so a longer dwell teaches "standing at a junction: stay" and the car never leaves.
STOP_DWELL_S = 0.25
V_MAX_MPS = 10.0
LATERAL_ACCEL_MPS2 = 2.0
ACCEL_MPS2, DECEL_MPS2 = 1.5, 2.5
ROAD_OPTION = {"left": 1, "right": 2, "straight": 3, "follow": 4}  # CARLA RoadOption values
KINDS = ("building", "tree", "car", "pole")  # roadside object kinds


def _seed_tuple(seed: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(seed, (int, np.integer)):
        return (int(seed),)
    return tuple(int(value) for value in seed)


@dataclass
class _Intersection:
    index_start: int  # path index where the manoeuvre starts
    index_end: int
    kind: str  # "left" | "right" | "straight"
    centre_xy: np.ndarray
    stop_dwell_s: float  # > 0: the ego stops before entering


class SyntheticRoute:
    """Road geometry, objects and the ego timing of one drive (depends on the seed only)."""

    def __init__(
        self,
        seed: int | Sequence[int],
        min_length_m: float,
        first_turn: str | None = None,
        start_from_rest: bool = False,
    ) -> None:
        """start_from_rest: the ego's speed profile starts at 0 m/s (a drive that begins standing,
        as a closed-loop route or a CARLA route does) instead of at its cruise speed."""
        if first_turn not in (None, "left", "right"):
            raise ValueError(f"first_turn {first_turn!r}; expected None, 'left' or 'right'")
        seed = _seed_tuple(seed)
        rng = np.random.default_rng((*seed, 0))
        self._build_path(rng, min_length_m, first_turn)
        self._build_side_roads()
        self._build_objects(np.random.default_rng((*seed, 1)))
        self._build_timing(rng, start_from_rest)

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
                dwell = 0.0
                if rng.random() < 0.2:  # a stop before this junction
                    rng.uniform(1.0, 3.0)  # the old dwell draw, kept so every route's geometry stays as it was
                    dwell = STOP_DWELL_S
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
                self.side_roads.append(
                    np.stack([junction.centre_xy - stub_m * direction, junction.centre_xy + stub_m * direction])
                )
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
        kind = rng.choice(len(KINDS), size=k, p=[0.35, 0.35, 0.15, 0.15])
        side = np.where(rng.random(k) < 0.5, 1.0, -1.0)
        side[kind == 2] = -1.0  # parked cars stand on the right shoulder
        length = np.choose(kind, [rng.uniform(5, 12, k), np.full(k, 1.4), np.full(k, 4.4), np.full(k, 0.35)])
        width = np.choose(kind, [rng.uniform(5, 10, k), np.full(k, 1.4), np.full(k, 1.9), np.full(k, 0.35)])
        height = np.choose(
            kind, [rng.uniform(4, 12, k), rng.uniform(4, 8, k), np.full(k, 1.5), rng.uniform(1.0, 3.5, k)]
        )
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
    def _build_timing(self, rng: np.random.Generator, start_from_rest: bool = False) -> None:
        cruise = rng.uniform(6.0, 9.0)
        limit = np.minimum(cruise, np.sqrt(LATERAL_ACCEL_MPS2 / np.maximum(np.abs(self.curvature), 1e-6)))
        if start_from_rest:
            limit[0] = 0.0  # then the acceleration envelope (ACCEL_MPS2) sets the first seconds
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
