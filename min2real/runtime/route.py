"""Route -> target point: CARLA Garage's RoutePlanner semantics, ROS-free and vectorised.

Garage (`team_code/nav_planner.py RoutePlanner.run_step`, `sensor_agent.py tick`): the route is
a list of positions in the world frame with per-segment lengths. Each step, among the route
points (after the first) whose preceding route length from the current head is at most
`max_distance_m` (50 m), the one that is the farthest from the vehicle while still within
`min_distance_m` (7.5 m) is found, and every point before it is popped (the route always keeps
two points). The target point is then the route's second point (its first when only one is
left), converted into the ego frame.

One deliberate difference: Garage pops up to the point within `min_distance_m` that is farthest
*from the vehicle*. On the leaderboard's sparse global plan (points tens of metres apart) at
most one or two points are ever in range and the two rules agree; on a dense route (the CARLA
ROS bridge's carla_waypoint_publisher path, 1-2 m spacing) the points in range form a band
around the vehicle and the farthest can be *behind* it, which would make the target point jump
backwards. We pop up to the in-range point that is farthest *along the route*, so on a dense
route the target point is the first route point beyond `min_distance_m` ahead.
Garage also uses the command of the previous target point (it appends the far command each
time the target changes and feeds `commands[-2]` to the model); `step` reproduces that.

Garage starts its command history at LANEFOLLOW (`commands = deque([4, 4])`); so does `step`
on a route with commands. A route without commands reports COMMAND_UNKNOWN throughout.

Which route: Garage's target points come from the leaderboard's global plan downsampled to a
point every ~50 m plus every change of RoadOption (leaderboard/utils/route_manipulation.py
downsample_route, called with 50 by Garage's leaderboard 1.0 fork; leaderboard 2.x calls it
with 200), and its commands are the plan's real RoadOptions. The CARLA ROS bridge's
carla_waypoint_publisher sends a dense 1 m nav_msgs/Path without RoadOptions instead: with it,
the target point sits ~8 m ahead and the command is unknown, neither of which Garage-trained
models saw. `garage_plan_from_dense_route` (and `RoutePlanner.set_dense_route`) turns such a path
into Garage's input: RoadOptions derived from the path's geometry (`road_options_from_geometry`:
LEFT / RIGHT where the heading turns by more than 45 degrees within 20 m, LANEFOLLOW elsewhere),
then `downsample_route_indices` with Garage's 50 m. A geometric turn is not a junction: a road
bend tighter than ~25 m radius also reads as LEFT / RIGHT (the plan would say LANEFOLLOW), and
a straight crossing reads LANEFOLLOW where the plan says STRAIGHT (the contract maps both to
COMMAND_STRAIGHT, so the model input is the same).

Frames: positions are in a right-handed world frame (ROS `map`, as the CARLA ROS bridge and
carla_waypoint_publisher publish); the target point comes out in REP 103 `base_link`
(x forward, y left). CARLA world coordinates (left-handed) go through
`contract.carla_to_rep103` first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from min2real.contract import CARLA_ROAD_OPTION_TO_COMMAND, COMMAND_UNKNOWN, world_to_ego_xy

# CARLA RoadOption values (agents.navigation.local_planner.RoadOption).
ROAD_OPTION_VOID, ROAD_OPTION_LEFT, ROAD_OPTION_RIGHT, ROAD_OPTION_STRAIGHT = -1, 1, 2, 3
ROAD_OPTION_LANEFOLLOW, ROAD_OPTION_CHANGELANELEFT, ROAD_OPTION_CHANGELANERIGHT = 4, 5, 6
_LANE_CHANGES = (ROAD_OPTION_CHANGELANELEFT, ROAD_OPTION_CHANGELANERIGHT)
# Spacing of the plan's target points: Garage's leaderboard 1.0 fork, and leaderboard 2.x.
GARAGE_PLAN_SPACING_M = 50.0
LEADERBOARD_2_PLAN_SPACING_M = 200.0
# Geometric turn detection on a dense route (see the module docstring).
TURN_HEADING_CHANGE_DEG = 45.0
TURN_WINDOW_M = 20.0


def _arc_length(route_xy: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(route_xy, axis=0), axis=1))])


def _check_route(route_xy: np.ndarray) -> np.ndarray:
    route = np.asarray(route_xy, dtype=np.float64)
    if route.ndim != 2 or route.shape[1] != 2 or route.shape[0] == 0 or not np.isfinite(route).all():
        raise ValueError(f"route has shape {route.shape}; expected (N >= 1, 2) finite map-frame positions")
    return route


def downsample_route_indices(
    route_xy: np.ndarray, road_options: np.ndarray, spacing_m: float = GARAGE_PLAN_SPACING_M
) -> np.ndarray:
    """Indices of the route points the leaderboard keeps of a dense plan (route_manipulation.py
    downsample_route): every lane-change point, every point where the RoadOption changes (except
    right after a lane change), the first point after more than `spacing_m` of route since the
    last kept one, and the last point.

    route_xy: (N, 2) positions (any frame, metres); road_options: (N,) CARLA RoadOption values.
    Returns (M,) int64 indices, increasing.
    """
    route = _check_route(route_xy)
    options = np.asarray(road_options, dtype=np.int64).reshape(-1)
    if options.shape[0] != route.shape[0]:
        raise ValueError(f"route has {route.shape[0]} points but {options.shape[0]} road options")
    if not spacing_m > 0:
        raise ValueError(f"route spacing {spacing_m} m; expected > 0")
    count = route.shape[0]
    lane_change = np.isin(options, _LANE_CHANGES)
    mandatory = lane_change.copy()
    mandatory[0] = mandatory[-1] = True
    mandatory[1:] |= (options[1:] != options[:-1]) & ~lane_change[:-1]
    mandatory_indices = np.flatnonzero(mandatory)
    arc = _arc_length(route)
    kept, last = [0], 0
    while last < count - 1:
        next_mandatory = int(mandatory_indices[np.searchsorted(mandatory_indices, last, side="right")])
        # Kept by distance: the first i whose preceding point lies more than spacing_m beyond `last`.
        next_by_distance = int(np.searchsorted(arc, arc[last] + spacing_m, side="right")) + 1
        last = min(next_mandatory, next_by_distance)
        kept.append(last)
    return np.asarray(kept, dtype=np.int64)


def road_options_from_geometry(
    route_xy: np.ndarray,
    turn_heading_change_deg: float = TURN_HEADING_CHANGE_DEG,
    window_m: float = TURN_WINDOW_M,
) -> np.ndarray:
    """(N, 2) dense route (right-handed frame, metres) -> (N,) CARLA RoadOption values:
    LEFT / RIGHT where the route's heading changes by more than `turn_heading_change_deg`
    between `window_m / 2` before and after the point (counter-clockwise = LEFT), else LANEFOLLOW."""
    route = _check_route(route_xy)
    options = np.full(route.shape[0], ROAD_OPTION_LANEFOLLOW, dtype=np.int64)
    segments = np.diff(route, axis=0)
    lengths = np.linalg.norm(segments, axis=1)
    moving = lengths > 1e-6  # the waypoint publisher repeats points at lane-section borders
    if moving.sum() < 2:
        return options
    arc = _arc_length(route)
    middle = (arc[:-1] + 0.5 * lengths)[moving]
    heading = np.unwrap(np.arctan2(segments[moving, 1], segments[moving, 0]))
    change = np.interp(arc + 0.5 * window_m, middle, heading) - np.interp(arc - 0.5 * window_m, middle, heading)
    threshold = np.radians(turn_heading_change_deg)
    options[change > threshold] = ROAD_OPTION_LEFT
    options[change < -threshold] = ROAD_OPTION_RIGHT
    return options


def garage_plan_from_dense_route(
    route_xy_map: np.ndarray, road_options: np.ndarray | None = None, spacing_m: float = GARAGE_PLAN_SPACING_M
) -> tuple[np.ndarray, np.ndarray]:
    """A dense route (e.g. carla_waypoint_publisher's 1 m Path, or a leaderboard plan) -> the plan
    Garage's target points and commands come from: (route_xy (M, 2), commands (M,) contract
    command indices). RoadOptions come from the geometry when `road_options` is None."""
    route = _check_route(route_xy_map)
    options = road_options_from_geometry(route) if road_options is None else np.asarray(road_options, np.int64)
    unknown = sorted(set(options.tolist()) - set(CARLA_ROAD_OPTION_TO_COMMAND))
    if unknown:
        raise ValueError(
            f"road options {unknown} are not CARLA RoadOptions; expected {sorted(CARLA_ROAD_OPTION_TO_COMMAND)}"
        )
    kept = downsample_route_indices(route, options, spacing_m)
    commands = np.array([CARLA_ROAD_OPTION_TO_COMMAND[int(option)] for option in options[kept]], dtype=np.int64)
    return route[kept], commands


@dataclass(frozen=True)
class RouteStep:
    """target_point_ego: (2,) float32 REP 103 metres; command: contract command index of the
    previous target (Garage), COMMAND_UNKNOWN when the route has no commands; is_last: the
    route is down to its final two points; remaining_points: points left on the route."""

    target_point_ego: np.ndarray
    command: int
    is_last: bool
    remaining_points: int


class RoutePlanner:
    """Dense route in the map frame -> next target point in the ego frame (Garage semantics)."""

    def __init__(self, min_distance_m: float = 7.5, max_distance_m: float = 50.0) -> None:
        if min_distance_m <= 0 or max_distance_m <= 0:
            raise ValueError(
                f"route planner min_distance_m={min_distance_m}, max_distance_m={max_distance_m}; expected both > 0"
            )
        self.min_distance_m = float(min_distance_m)
        self.max_distance_m = float(max_distance_m)
        self._route_xy = np.zeros((0, 2))
        self._commands = np.zeros(0, dtype=np.int64)
        self._arc_length = np.zeros(0)  # cumulative route length at each point
        self._head = 0  # index of the route's current first point (points before it are popped)
        self._commands_seen: list[int] = [COMMAND_UNKNOWN, COMMAND_UNKNOWN]
        self._previous_target: np.ndarray | None = None

    def set_dense_route(
        self,
        route_xy_map: np.ndarray,
        road_options: np.ndarray | None = None,
        spacing_m: float = GARAGE_PLAN_SPACING_M,
    ) -> None:
        """Replace the route with a dense one (carla_waypoint_publisher's 1 m Path, with no
        RoadOptions, or a full leaderboard plan with them), reduced to Garage's plan first
        (`garage_plan_from_dense_route`): target points ~50 m apart and turn commands."""
        self.set_route(*garage_plan_from_dense_route(route_xy_map, road_options, spacing_m))

    @property
    def has_route(self) -> bool:
        return self._route_xy.shape[0] > 0

    @property
    def remaining_route_xy(self) -> np.ndarray:
        """(M, 2) route points not yet popped, map frame."""
        return self._route_xy[self._head :]

    def set_route(self, route_xy_map: np.ndarray, commands: np.ndarray | None = None) -> None:
        """Replace the route, used as given (see `set_dense_route` for a dense path).
        route_xy_map: (N, 2) positions in the map frame; commands: (N,) contract command indices
        (optional; a ROS nav_msgs/Path carries none)."""
        route = _check_route(route_xy_map)
        if commands is None:
            command_array = np.full(route.shape[0], COMMAND_UNKNOWN, dtype=np.int64)
        else:
            command_array = np.asarray(commands, dtype=np.int64).reshape(-1)
            if command_array.shape[0] != route.shape[0]:
                raise ValueError(f"route has {route.shape[0]} points but {command_array.shape[0]} commands")
        segment = np.linalg.norm(np.diff(route, axis=0), axis=1)
        self._route_xy = route
        self._commands = command_array
        self._arc_length = np.concatenate([[0.0], np.cumsum(segment)])
        self._head = 0
        # Garage's history starts at LANEFOLLOW; a route without commands knows none.
        first = COMMAND_UNKNOWN if commands is None else CARLA_ROAD_OPTION_TO_COMMAND[ROAD_OPTION_LANEFOLLOW]
        self._commands_seen = [first, first]
        self._previous_target = None

    def advance(self, ego_xy_map: np.ndarray) -> None:
        """Pop the points the vehicle at `ego_xy_map` has reached (Garage's run_step)."""
        remaining = self._route_xy.shape[0] - self._head
        if remaining <= 2:
            return
        head = self._head
        ego = np.asarray(ego_xy_map, dtype=np.float64)
        # Candidate i (absolute index > head) is examined when the route length from the head to
        # the point before it is at most max_distance.
        arc = self._arc_length
        last_examined = int(
            np.searchsorted(arc, arc[head] + self.max_distance_m, side="right")
        )  # exclusive bound of i-1
        stop = min(last_examined + 1, self._route_xy.shape[0])
        candidates = np.arange(head + 1, stop)
        if candidates.size == 0:
            return
        distance = np.linalg.norm(self._route_xy[candidates] - ego, axis=1)
        within = distance <= self.min_distance_m
        if not within.any():
            return
        # Pop up to the farthest point along the route that is within min_distance (see the
        # module docstring: on Garage's sparse routes that is its "farthest in range" point).
        to_pop = int(candidates[np.flatnonzero(within)[-1]] - head)
        self._head = min(head + to_pop, self._route_xy.shape[0] - 2)

    def step(self, ego_xy_map: np.ndarray, ego_yaw_rad: float) -> RouteStep:
        """Advance along the route and return the target point in the ego frame of the pose
        (ego_xy_map, ego_yaw_rad: heading counter-clockwise from the map's x axis)."""
        if not self.has_route:
            raise ValueError("route planner has no route; call set_route first")
        self.advance(ego_xy_map)
        remaining = self._route_xy.shape[0] - self._head
        target_index = self._head + 1 if remaining > 1 else self._head
        target_map = self._route_xy[target_index]
        if self._previous_target is None or np.any(target_map != self._previous_target):
            self._previous_target = target_map
            self._commands_seen = [self._commands_seen[-1], int(self._commands[target_index])]
        target_ego = world_to_ego_xy(target_map[None, :], ego_xy_map, float(ego_yaw_rad))[0].astype(np.float32)
        return RouteStep(target_ego, self._commands_seen[-2], remaining <= 2, remaining)
