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

Frames: positions are in a right-handed world frame (ROS `map`, as the CARLA ROS bridge and
carla_waypoint_publisher publish); the target point comes out in REP 103 `base_link`
(x forward, y left). CARLA world coordinates (left-handed) go through
`contract.carla_to_rep103` first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from min2real.contract import COMMAND_UNKNOWN, world_to_ego_xy


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

    @property
    def has_route(self) -> bool:
        return self._route_xy.shape[0] > 0

    @property
    def remaining_route_xy(self) -> np.ndarray:
        """(M, 2) route points not yet popped, map frame."""
        return self._route_xy[self._head :]

    def set_route(self, route_xy_map: np.ndarray, commands: np.ndarray | None = None) -> None:
        """Replace the route. route_xy_map: (N, 2) positions in the map frame; commands: (N,)
        contract command indices (optional; a ROS nav_msgs/Path carries none)."""
        route = np.asarray(route_xy_map, dtype=np.float64)
        if route.ndim != 2 or route.shape[1] != 2 or route.shape[0] == 0 or not np.isfinite(route).all():
            raise ValueError(f"route has shape {route.shape}; expected (N >= 1, 2) finite map-frame positions")
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
        self._commands_seen = [COMMAND_UNKNOWN, COMMAND_UNKNOWN]
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
