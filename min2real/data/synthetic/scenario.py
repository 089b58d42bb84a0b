"""Closed-loop scenarios of the synthetic world: one route to drive, scored like a Longest6 route.

A `Scenario` takes a procedural route (`geometry.SyntheticRoute`: curves, intersections with
left / right / straight manoeuvres) and adds what a closed-loop judge needs:

* the route to drive: the ego lane centre from the start to `length_m` (the scored length), as
  the dense 1 m route the CARLA ROS bridge's carla_waypoint_publisher sends (`route_xy`), and
  the lane centre beyond it (`TAIL_M`) so look-ahead and rendering never run out;
* stop lines: painted across the ego lane at the mouth of each intersection where the route's
  ego timing stops (`_Intersection.stop_dwell_s > 0`, the same junctions at which training drives
  stop); the vehicle must come to a stand before crossing one;
* optionally one static obstacle: a car parked in the ego lane on a straight stretch, with the
  route swerving into the oncoming lane around it (the route is what the planner publishes, so
  following the route avoids the obstacle and leaving the lane to do so is not an infraction);
* an appearance condition (`CONDITIONS`: daylight / weather on top of the sim or real look);
* optionally traffic (`traffic_plan`: lead, oncoming and crossing vehicles, traffic lights,
  pedestrians at crosswalks) at a density; `traffic.TrafficWorld` moves it in the closed loop.

Geometry depends on the seed only; the condition and the domain change appearance only.
World frame as in `geometry`: right-handed, x east, y north, metres; yaw counter-clockwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from min2real.data.synthetic.geometry import (
    KINDS,
    LANE_WIDTH_M,
    PATH_STEP_M,
    ROAD_WIDTH_M,
    ROUTE_SPACING_M,
    SyntheticRoute,
)
from min2real.data.synthetic.render import Condition, SceneRenderer
from min2real.data.synthetic.traffic_plan import build_traffic_plan

# Six appearance conditions, as Longest6 pairs its routes with six weathers / daylights.
CONDITIONS: dict[str, Condition] = {
    "noon": Condition("noon"),
    "cloudy": Condition("cloudy", brightness=0.88, saturation=0.6, sky_rgb=(170, 178, 186), fog_scale=0.7),
    "wet": Condition("wet", brightness=0.8, saturation=0.75, sky_rgb=(150, 158, 166), road_gain=0.65, fog_scale=0.6),
    "sunset": Condition("sunset", brightness=0.85, tint_rgb=(1.12, 0.92, 0.72), sky_rgb=(235, 160, 110)),
    "dusk": Condition("dusk", brightness=0.55, tint_rgb=(0.85, 0.9, 1.1), sky_rgb=(70, 80, 120)),
    "fog": Condition("fog", brightness=0.95, saturation=0.7, sky_rgb=(200, 204, 208), fog_scale=0.25),
}
CONDITION_NAMES = tuple(CONDITIONS)

TAIL_M = 60.0  # lane centre modelled beyond the scored end
STOP_LINE_AFTER_JUNCTION_START_M = 0.5  # the line sits at the junction mouth
STOP_LINE_END_MARGIN_M = 5.0  # no stop line this close to the route's end
OBSTACLE_HALF_SIZE_M = (2.2, 0.95)  # a parked car (half length, half width)
OBSTACLE_HEIGHT_M = 1.5
SWERVE_RAMP_M = 15.0  # lane change into the oncoming lane and back
SWERVE_HOLD_M = 6.0  # the route stays in the oncoming lane this far either side of the obstacle
ROAD_CLEARANCE_M = 0.2  # roadside boxes keep at least this far off the road surface
_CAR_KIND = KINDS.index("car")


@dataclass(frozen=True)
class StopLine:
    """A stop line across the ego lane. s_m: along the driven route (route_s_m) where the line is;
    dwell_s: how long the route's ego timing stands there; line_xy: (2, 2) world end points."""

    s_m: float
    dwell_s: float
    line_xy: np.ndarray


@dataclass(frozen=True)
class Obstacle:
    """A car parked in the ego lane: s_m along the driven route; centre_xy (2,) world; yaw rad."""

    s_m: float
    centre_xy: np.ndarray
    yaw_rad: float
    half_size_m: tuple[float, float]


class Scenario:
    """One closed-loop route: geometry (+ stop lines, obstacle) and an appearance condition.

    Arrays (world frame): route_s_m (N,), route_lane_xy (N, 2), route_lane_yaw (N,) = the lane
    centre the route follows (obstacle bypass included), 0.5 m apart, TAIL_M beyond length_m;
    route_xy (M, 2) = the published route, ROUTE_SPACING_M apart from the start to length_m;
    junction_zones_m (J, 2) = [from, to] along the route of each intersection (lanes are not
    judged inside them); road_points_xy = dense centre points of every road (off-road checks).
    """

    def __init__(
        self,
        seed: int | Sequence[int],
        length_m: float,
        condition: str = "noon",
        obstacle: bool = False,
        traffic: float = 0.0,
        first_turn: str | None = None,
    ) -> None:
        """traffic: the density of moving traffic, traffic lights and pedestrians (`traffic_plan`;
        1.0 = the judged density, 0 = an empty world); first_turn: as SyntheticRoute's."""
        if condition not in CONDITIONS:
            raise ValueError(f"appearance condition {condition!r} is not known; expected one of {CONDITION_NAMES}")
        if not length_m >= 40.0:
            raise ValueError(f"scenario length_m={length_m}; expected a route of at least 40 m")
        self.seed = (int(seed),) if isinstance(seed, (int, np.integer)) else tuple(int(v) for v in seed)
        self.length_m = float(length_m)
        self.condition = CONDITIONS[condition]
        self.route = SyntheticRoute(self.seed, self.length_m + TAIL_M, first_turn)
        base = self.route
        self._clear_roads()
        rng = np.random.default_rng((*self.seed, 7))
        junctions = [
            (float(base.path_s[j.index_start]), float(base.path_s[j.index_end]), j) for j in base.intersections
        ]
        self.obstacle: Obstacle | None = None
        offset_m = np.zeros(len(base.path_s))  # lateral offset of the route from the ego lane, + = left
        if obstacle:
            s_obstacle = obstacle_place(base, junctions, self.length_m, rng)
            if s_obstacle is not None:
                offset_m = LANE_WIDTH_M * _swerve_profile(base.path_s, s_obstacle)
                self.obstacle = _parked_car(base, s_obstacle)
                add_obstacle_box(base, self.obstacle)
        left = np.stack([-np.sin(base.path_yaw), np.cos(base.path_yaw)], axis=1)
        self.route_lane_xy = base.path_xy + offset_m[:, None] * left
        step = np.linalg.norm(np.diff(self.route_lane_xy, axis=0), axis=1)
        self.route_s_m = np.concatenate([[0.0], np.cumsum(step)])
        delta = np.gradient(self.route_lane_xy, axis=0)
        self.route_lane_yaw = np.unwrap(np.arctan2(delta[:, 1], delta[:, 0]))
        # Base path index -> driven route s (the bypass lengthens the route a little).
        to_route_s = lambda s_base: float(np.interp(s_base, base.path_s, self.route_s_m))  # noqa: E731
        if self.route_s_m[-1] < self.length_m + 10.0:
            raise RuntimeError("scenario route is shorter than its scored length (generator bug)")
        samples = np.arange(0.0, self.length_m + 1e-9, ROUTE_SPACING_M)
        self.route_xy = self.lane_pose_at(samples)[0]

        self.stop_lines: list[StopLine] = []
        for s_start, _s_end, junction in junctions:
            s_line = s_start + STOP_LINE_AFTER_JUNCTION_START_M
            if junction.stop_dwell_s <= 0 or to_route_s(s_line) > self.length_m - STOP_LINE_END_MARGIN_M:
                continue  # no stop, or one the route ends at (never crossed)
            index = int(round(s_line / PATH_STEP_M))
            right_edge = base.path_xy[index] - (0.5 * LANE_WIDTH_M - 0.2) * left[index]
            centre_line = base.path_xy[index] + 0.5 * LANE_WIDTH_M * left[index]
            self.stop_lines.append(
                StopLine(to_route_s(s_line), float(junction.stop_dwell_s), np.stack([right_edge, centre_line]))
            )
        self.junction_kinds = [j.kind for s0, _s1, j in junctions if to_route_s(s0) <= self.length_m]
        self.junction_zones_m = np.array(
            [[to_route_s(s0 - 2.0), to_route_s(s1 + 4.0)] for s0, s1, _ in junctions], dtype=np.float64
        ).reshape(-1, 2)
        self.road_points_xy = base.all_road_points
        self.traffic_plan = None if traffic == 0 else build_traffic_plan(self, float(traffic))

    # ---- construction ----------------------------------------------------------------------
    def _clear_roads(self) -> None:
        """Drop roadside boxes whose footprint reaches onto a road (the generator keeps box centres
        off the roads, but a long box beside a turn can stick into it, where a car that keeps its
        lane would hit it)."""
        route = self.route
        if not len(route.object_centre_xy):
            return
        # Footprint outline: corners and edge midpoints of each box, (K, 8, 2).
        local = np.array([[1, 1], [1, 0], [1, -1], [0, -1], [-1, -1], [-1, 0], [-1, 1], [0, 1]], dtype=np.float64)
        half = route.object_half_size
        lx, ly = local[None, :, 0] * half[:, :1], local[None, :, 1] * half[:, 1:]
        c, s = np.cos(route.object_yaw)[:, None], np.sin(route.object_yaw)[:, None]
        outline = np.stack([c * lx - s * ly, s * lx + c * ly], axis=2) + route.object_centre_xy[:, None, :]
        distance = np.linalg.norm(outline[:, :, None, :] - route.all_road_points[None, None], axis=3).min(axis=(1, 2))
        keep = distance > 0.5 * ROAD_WIDTH_M + ROAD_CLEARANCE_M
        route.object_centre_xy = route.object_centre_xy[keep]
        route.object_yaw = route.object_yaw[keep]
        route.object_half_size = route.object_half_size[keep]
        route.object_height = route.object_height[keep]
        route.object_kind = route.object_kind[keep]

    # ---- queries -----------------------------------------------------------------------------
    @property
    def start_pose(self) -> tuple[float, float, float]:
        """(x, y, yaw) of the route start on the lane centre."""
        return float(self.route_lane_xy[0, 0]), float(self.route_lane_xy[0, 1]), float(self.route_lane_yaw[0])

    def lane_pose_at(self, s_m: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Position (..., 2) and yaw (...) of the route's lane centre at route distance s (clamped)."""
        s_m = np.asarray(s_m, dtype=np.float64)
        x = np.interp(s_m, self.route_s_m, self.route_lane_xy[:, 0])
        y = np.interp(s_m, self.route_s_m, self.route_lane_xy[:, 1])
        return np.stack([x, y], axis=-1), np.interp(s_m, self.route_s_m, self.route_lane_yaw)

    def curvature_at(self, s_m: np.ndarray) -> np.ndarray:
        """Signed curvature (1/m, + = left) of the route's lane centre at route distance s."""
        curvature = np.gradient(self.route_lane_yaw, self.route_s_m)
        return np.interp(np.asarray(s_m, dtype=np.float64), self.route_s_m, curvature)

    def renderer(self, domain: str) -> SceneRenderer:
        """The renderer of this scenario in `domain` ("sim" | "real") under its condition."""
        return SceneRenderer(self.route, domain, self.seed, self.condition, [line.line_xy for line in self.stop_lines])


def _swerve_profile(s_m: np.ndarray, s_obstacle: float) -> np.ndarray:
    """0 -> 1 -> 0 lateral profile (cosine ramps) centred on the obstacle."""
    hold_start, hold_end = s_obstacle - SWERVE_HOLD_M, s_obstacle + SWERVE_HOLD_M
    rise = np.clip((s_m - (hold_start - SWERVE_RAMP_M)) / SWERVE_RAMP_M, 0.0, 1.0)
    fall = np.clip(((hold_end + SWERVE_RAMP_M) - s_m) / SWERVE_RAMP_M, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(math.pi * np.minimum(rise, fall))


def obstacle_place(route: SyntheticRoute, junctions: list, length_m: float, rng: np.random.Generator) -> float | None:
    """Path distance of a parked car: on a nearly straight stretch long enough for the bypass,
    away from intersections, before `length_m`; None when the route has none. `junctions`: (s_start,
    s_end, junction) per intersection along the path."""
    reach = SWERVE_HOLD_M + SWERVE_RAMP_M + 2.0
    s = route.path_s
    candidates = s[(s > 20.0 + reach) & (s < length_m - reach - 10.0)]
    straight = np.abs(route.curvature) < 1.0 / 30.0  # curves, not junction turns
    ok = []
    for s_candidate in candidates[:: int(round(2.0 / PATH_STEP_M))]:
        window = (s >= s_candidate - reach) & (s <= s_candidate + reach)
        if not straight[window].all():
            continue
        if any(s0 - 4.0 < s_candidate + reach and s_candidate - reach < s1 + 4.0 for s0, s1, _ in junctions):
            continue
        ok.append(float(s_candidate))
    if not ok:
        return None
    return ok[int(rng.integers(len(ok)))]


def add_obstacle_box(route: SyntheticRoute, obstacle: Obstacle) -> None:
    """Append the parked car to the route's boxes (so the renderer and LiDAR see it)."""
    route.object_centre_xy = np.concatenate([route.object_centre_xy.reshape(-1, 2), obstacle.centre_xy[None]])
    route.object_yaw = np.append(route.object_yaw, obstacle.yaw_rad)
    route.object_half_size = np.concatenate(
        [route.object_half_size.reshape(-1, 2), np.array([obstacle.half_size_m], dtype=np.float64)]
    )
    route.object_height = np.append(route.object_height, OBSTACLE_HEIGHT_M)
    route.object_kind = np.append(route.object_kind, _CAR_KIND).astype(np.int64)


def _parked_car(route: SyntheticRoute, s_obstacle: float) -> Obstacle:
    index = int(round(s_obstacle / PATH_STEP_M))
    return Obstacle(s_obstacle, route.path_xy[index].copy(), float(route.path_yaw[index]), OBSTACLE_HALF_SIZE_M)


def park_car_on_drive(route: SyntheticRoute, length_m: float, rng: np.random.Generator) -> Obstacle | None:
    """A training drive around a parked car, as the closed-loop routes have one: the car parked in
    the ego lane where `obstacle_place` finds room before `length_m`, and the ego path (what the
    drive follows, its labels and its dense route) moved into the oncoming lane around it with the
    closed-loop route's swerve. Changes `route` in place; None (route unchanged) when no stretch fits."""
    junctions = [(float(route.path_s[j.index_start]), float(route.path_s[j.index_end]), j) for j in route.intersections]
    s_obstacle = obstacle_place(route, junctions, length_m, rng)
    if s_obstacle is None:
        return None
    obstacle = _parked_car(route, s_obstacle)
    add_obstacle_box(route, obstacle)
    offset_m = LANE_WIDTH_M * _swerve_profile(route.path_s, s_obstacle)
    left = np.stack([-np.sin(route.path_yaw), np.cos(route.path_yaw)], axis=1)
    route.path_xy = route.path_xy + offset_m[:, None] * left
    delta = np.gradient(route.path_xy, axis=0)
    swerved = np.unwrap(np.arctan2(delta[:, 1], delta[:, 0]))
    swerved += 2.0 * math.pi * np.round((route.path_yaw - swerved) / (2.0 * math.pi))  # same branch as the path
    route.path_yaw = np.where(offset_m > 0.0, swerved, route.path_yaw)  # the lane's heading elsewhere, unchanged
    return obstacle
