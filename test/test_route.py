"""ROS-free route planner: Garage's popping rule and the target point in the ego frame."""

from __future__ import annotations

import math

import numpy as np
import pytest

from min2real.contract import COMMAND_LEFT, COMMAND_RIGHT, COMMAND_STRAIGHT, COMMAND_UNKNOWN
from min2real.runtime import route as route_lib
from min2real.runtime.route import RoutePlanner


def _straight_route(length_m=100, spacing=1.0):
    x = np.arange(0.0, length_m + spacing, spacing)
    return np.stack([x, np.zeros_like(x)], axis=1)


def test_target_is_first_point_beyond_min_distance_on_a_dense_route():
    planner = RoutePlanner(min_distance_m=7.5, max_distance_m=50.0)
    planner.set_route(_straight_route())
    step = planner.step(np.array([0.0, 0.0]), 0.0)
    np.testing.assert_allclose(step.target_point_ego, [8.0, 0.0])
    for x in np.arange(0.0, 20.3, 0.1):  # drive along it: the target stays just beyond 7.5 m ahead
        step = planner.step(np.array([x, 0.0]), 0.0)
        assert 7.5 < step.target_point_ego[0] <= 8.5 and step.target_point_ego[1] == 0.0
    np.testing.assert_allclose(step.target_point_ego, [8.0 - 0.2, 0.0], atol=1e-4)
    assert step.remaining_points == 101 - 27


def test_target_point_is_in_the_rep103_ego_frame():
    planner = RoutePlanner()
    planner.set_route(_straight_route())
    # Vehicle at (0, -5) heading +90 deg (map +y): the route's point (8, 0) lies ahead-right.
    step = planner.step(np.array([0.0, -5.0]), math.pi / 2)
    x_forward, y_left = step.target_point_ego
    assert x_forward > 0 and y_left < 0


def test_only_points_within_max_distance_are_examined():
    # A route that loops back near the vehicle after 60 m must not be popped to the loop's end.
    out = np.stack([np.arange(0, 31.0), np.zeros(31)], axis=1)
    back = np.stack([np.arange(30, 0, -1.0), np.full(30, 1.0)], axis=1)
    route = np.vstack([out, back])
    planner = RoutePlanner(min_distance_m=7.5, max_distance_m=50.0)
    planner.set_route(route)
    step = planner.step(np.array([0.0, 0.0]), 0.0)
    np.testing.assert_allclose(step.target_point_ego, [8.0, 0.0])


def test_keeps_two_points_and_reports_last():
    planner = RoutePlanner()
    planner.set_route(_straight_route(length_m=5))
    planner.step(np.array([0.0, 0.0]), 0.0)
    step = planner.step(np.array([5.0, 0.0]), 0.0)
    assert step.is_last and step.remaining_points == 2
    np.testing.assert_allclose(step.target_point_ego, [0.0, 0.0])


def test_command_is_the_previous_targets_as_in_garage():
    route = _straight_route(length_m=40, spacing=10.0)  # points every 10 m
    commands = np.array([COMMAND_LEFT, COMMAND_LEFT, COMMAND_RIGHT, COMMAND_RIGHT, COMMAND_RIGHT])
    planner = RoutePlanner()
    planner.set_route(route, commands)
    first = planner.step(np.array([0.0, 0.0]), 0.0)
    assert first.command == COMMAND_STRAIGHT  # no previous target yet: Garage's history starts at LANEFOLLOW
    second = planner.step(np.array([12.0, 0.0]), 0.0)  # target moves to the point at 20 m
    assert second.command == COMMAND_LEFT
    planner.set_route(route)  # a route without commands knows none
    assert planner.step(np.array([0.0, 0.0]), 0.0).command == COMMAND_UNKNOWN


def test_errors():
    with pytest.raises(ValueError, match="no route"):
        RoutePlanner().step(np.zeros(2), 0.0)
    with pytest.raises(ValueError, match="expected"):
        RoutePlanner().set_route(np.zeros((3, 3)))


# ---- Garage's plan from a dense route -----------------------------------------------------------------
def _dense_route_with_turns(spacing_m=1.0):
    """carla_waypoint_publisher-like dense path (map frame, metres): 120 m east, a 90 degree LEFT
    turn of radius 10 m, 100 m north, a 90 degree RIGHT turn of radius 8 m, 120 m east, with a
    3.5 m lane change on the last straight; returns (points, turn arcs (start, end) in metres)."""
    pieces, arcs, s = [], [], 0.0

    def straight(start, heading, length):
        steps = np.arange(0.0, length, spacing_m)
        return start + np.outer(steps, [math.cos(heading), math.sin(heading)])

    def arc(start, heading, radius, turn):
        centre = start + radius * np.array([-math.sin(heading), math.cos(heading)]) * np.sign(turn)
        angles = np.arange(0.0, abs(turn) * radius, spacing_m) / radius * np.sign(turn)
        start_angle = heading - np.sign(turn) * math.pi / 2
        return centre + radius * np.stack([np.cos(start_angle + angles), np.sin(start_angle + angles)], axis=1)

    position, heading = np.zeros(2), 0.0
    for kind, value, extra in (
        ("s", 120.0, None),
        ("a", 10.0, math.pi / 2),
        ("s", 100.0, None),
        ("a", 8.0, -math.pi / 2),
        ("s", 120.0, None),
    ):
        points = straight(position, heading, value) if kind == "s" else arc(position, heading, value, extra)
        length = value if kind == "s" else abs(extra) * value
        if kind == "a":
            arcs.append((s, s + length))
            heading += extra
        pieces.append(points)
        s += length
        position = points[-1] + spacing_m * np.array([math.cos(heading), math.sin(heading)])
    route = np.vstack(pieces)
    last = route[:, 1] == route[-1, 1]  # the final eastward straight
    ramp = np.clip((route[last, 0] - route[last, 0].min() - 40.0) / 20.0, 0.0, 1.0)
    route[last, 1] += 3.5 * ramp**2 * (3.0 - 2.0 * ramp)  # a smooth 3.5 m lane change over 20 m
    return route, arcs


def test_downsampling_matches_the_leaderboards_walk():
    import leaderboard_stand_ins as lb

    rng = np.random.default_rng(3)
    xy = np.cumsum(rng.uniform(0.2, 2.5, (400, 2)), axis=0)
    options = np.full(400, lb.RoadOption.LANEFOLLOW)
    options[60:75], options[140:150], options[151:158] = lb.RoadOption.LEFT, lb.RoadOption.CHANGELANELEFT, 3
    options[300:330] = lb.RoadOption.RIGHT
    plan = [(lb.transform(x, y), lb.RoadOption(int(o))) for (x, y), o in zip(xy, options)]
    for spacing in (route_lib.GARAGE_PLAN_SPACING_M, route_lib.LEADERBOARD_2_PLAN_SPACING_M, 7.0):
        expected = lb.leaderboard_downsample_route(plan, spacing)
        assert route_lib.downsample_route_indices(xy, options, spacing).tolist() == expected
    with pytest.raises(ValueError, match="road options"):
        route_lib.downsample_route_indices(xy, options[:-1])


def test_turn_commands_from_a_dense_paths_geometry():
    route, arcs = _dense_route_with_turns()
    options = route_lib.road_options_from_geometry(route)
    arc_m = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(route, axis=0), axis=1))])
    left, right = arcs
    inside_left = (arc_m > left[0]) & (arc_m < left[1])
    inside_right = (arc_m > right[0]) & (arc_m < right[1])
    assert (options[inside_left] == route_lib.ROAD_OPTION_LEFT).all()
    assert (options[inside_right] == route_lib.ROAD_OPTION_RIGHT).all()
    # Away from the turns (the lane change included) the road is followed.
    far = (np.abs(arc_m[:, None] - np.array(arcs).reshape(1, -1)).min(axis=1) > 15.0) & ~inside_left & ~inside_right
    assert (options[far] == route_lib.ROAD_OPTION_LANEFOLLOW).all()
    assert set(np.unique(options)) == {1, 2, 4}
    # Repeated points (lane-section borders) change nothing.
    doubled = np.repeat(route, 2, axis=0)
    np.testing.assert_array_equal(route_lib.road_options_from_geometry(doubled)[::2], options)


def test_a_dense_path_drives_with_garages_targets_and_commands():
    """carla_waypoint_publisher's 1 m Path: as given, the target sits 8 m ahead and the command is
    unknown; through Garage's plan, targets are up to ~50 m ahead and the turns carry LEFT / RIGHT."""
    route, arcs = _dense_route_with_turns()
    dense, garage = RoutePlanner(), RoutePlanner()
    dense.set_route(route)
    garage.set_dense_route(route)
    plan_xy, commands = route_lib.garage_plan_from_dense_route(route)
    assert len(plan_xy) < len(route) / 10
    gaps = np.linalg.norm(np.diff(plan_xy, axis=0), axis=1)
    assert gaps.max() <= route_lib.GARAGE_PLAN_SPACING_M + 2.0
    assert {COMMAND_LEFT, COMMAND_RIGHT, COMMAND_STRAIGHT} == set(commands.tolist())
    dense_distances, garage_distances, seen = [], [], []
    for index in range(0, len(route) - 20, 2):  # drive along the path
        pose = route[index]
        ahead = route[index + 1] - route[index]
        yaw = math.atan2(ahead[1], ahead[0])
        dense_step, garage_step = dense.step(pose, yaw), garage.step(pose, yaw)
        dense_distances.append(np.linalg.norm(dense_step.target_point_ego))
        garage_distances.append(np.linalg.norm(garage_step.target_point_ego))
        seen.append(garage_step.command)
        assert dense_step.command == COMMAND_UNKNOWN
    assert max(dense_distances) < 9.0
    # A target is popped within 7.5 m of the vehicle; the next lies at most ~52 m of route beyond it.
    assert np.median(garage_distances) > 20.0 and max(garage_distances) <= 7.5 + 52.0
    # The commands come in the route's order: straight, left, straight, right, straight.
    order = [c for i, c in enumerate(seen) if i == 0 or c != seen[i - 1]]
    assert order == [COMMAND_STRAIGHT, COMMAND_LEFT, COMMAND_STRAIGHT, COMMAND_RIGHT, COMMAND_STRAIGHT]
