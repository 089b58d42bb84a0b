"""ROS-free route planner: Garage's popping rule and the target point in the ego frame."""

from __future__ import annotations

import math

import numpy as np
import pytest

from min2real.contract import COMMAND_LEFT, COMMAND_RIGHT, COMMAND_UNKNOWN
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
    assert first.command == COMMAND_UNKNOWN  # no previous target yet
    second = planner.step(np.array([12.0, 0.0]), 0.0)  # target moves to the point at 20 m
    assert second.command == COMMAND_LEFT


def test_errors():
    with pytest.raises(ValueError, match="no route"):
        RoutePlanner().step(np.zeros(2), 0.0)
    with pytest.raises(ValueError, match="expected"):
        RoutePlanner().set_route(np.zeros((3, 3)))
