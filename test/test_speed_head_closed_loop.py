"""The controller's use of the target-speed head in closed loop (issue 23): with `speed_from: head`
the head's speed alone makes a car stop for red lights, lead vehicles and pedestrians whose
waypoints never slow for them; with the default (`speed_from: waypoints`) the same waypoints run
into them. The head here is an oracle: a one-hot distribution on the class that the yielding
expert's label (target speed, brake) falls in at every visited state, through the runtime's own
confidence weighting (Garage's rule) and the controller mirror of the lock-step closed loop."""

from __future__ import annotations

import numpy as np
import pytest

from min2real import contract as C
from min2real.evaluation.closed_loop import ExpertStack, route_set, run_route
from min2real.evaluation.closed_loop.direct import ControllerMirror, TickOutput
from min2real.evaluation.closed_loop.expert import ExpertParams
from min2real.evaluation.closed_loop.simulator import ClosedLoopSimulator, Observation
from min2real.runtime.controller import ControllerConfig
from min2real.runtime.speed_head import confidence_weighted_target_speed


class OracleHeadStack:
    """Waypoints of the lane follower that is blind to traffic (route speed plan and stop lines only);
    the target-speed head's probabilities from the yielding expert's label at the same state."""

    needs_sensors = False

    def __init__(self, speed_from: str) -> None:
        contract = C.DEFAULT_CONTRACT
        self.blind = ExpertStack(contract, ExpertParams(yield_to_traffic=False))
        self.yielding = ExpertStack(contract)
        config = ControllerConfig(waypoint_dt_s=float(contract.waypoint_dt_s), speed_from=speed_from)
        self.controller = ControllerMirror(contract, config)
        self.head_classes: list[int] = []

    def start(self, sim: ClosedLoopSimulator) -> None:
        self.blind.start(sim)
        self.yielding.start(sim)

    def control(self, observation: Observation) -> TickOutput:
        waypoints_ego = self.blind.waypoints(observation)
        self.yielding.waypoints(observation)  # advances the yielding expert's plan to this state
        expert = self.yielding.expert
        assert expert is not None
        label = C.target_speed_class(float(expert.target_speed_mps), bool(expert.brake))
        self.head_classes.append(label)
        probs = np.eye(len(C.TARGET_SPEEDS_MPS))[label]
        target_speed_mps = confidence_weighted_target_speed(probs)
        control = self.controller.command(waypoints_ego, observation.state.speed_mps, target_speed_mps)
        return TickOutput(control, waypoints_ego)

    def report(self) -> dict:
        return {}

    def close(self) -> None:
        return None


@pytest.mark.parametrize("name", ["town03_route0", "town01_route1"])
def test_the_head_speed_stops_the_car_for_red_lights_and_vehicles_its_waypoints_run_into(name):
    spec = next(spec for spec in route_set("synth-longest6")[1] if spec.name == f"synth-longest6/{name}")
    by_waypoints = OracleHeadStack("waypoints")
    blind = run_route(spec, by_waypoints, "sim", None, lidar=False, tiles=False).score
    assert blind.counts()["red_light"] >= 1 and blind.counts()["collision_vehicle"] >= 1, blind.infractions

    by_head = OracleHeadStack("head")
    run = run_route(spec, by_head, "sim", None, lidar=False, tiles=False)
    assert run.score.driving_score == 100.0, run.result()
    assert sum(run.score.counts().values()) == 0, run.score.infractions
    assert 0 in by_head.head_classes  # the head said brake at some states: the stops came from it


class ConstantSpeedStack:
    """A lane follower blind to everything: waypoints along the route's lane at a constant speed.
    Its head is speed-blind like the bundled model's: it says stop (P(brake) = 1) whenever a stop
    line lies within `head_stop_within_m` ahead, also while the car stands in front of it."""

    needs_sensors = False

    def __init__(self, speed_from: str, cruise_mps: float = 4.0, head_stop_within_m: float = 8.0) -> None:
        contract = C.DEFAULT_CONTRACT
        config = ControllerConfig(waypoint_dt_s=float(contract.waypoint_dt_s), speed_from=speed_from)
        self.controller = ControllerMirror(contract, config)
        self.times_s = contract.waypoint_dt_s * np.arange(1, contract.num_waypoints + 1)
        self.cruise_mps = cruise_mps
        self.head_stop_within_m = head_stop_within_m
        self.sim: ClosedLoopSimulator | None = None
        self.brakes: list[bool] = []

    def start(self, sim: ClosedLoopSimulator) -> None:
        self.sim = sim

    def control(self, observation: Observation) -> TickOutput:
        assert self.sim is not None
        scenario, s_m = self.sim.scenario, self.sim.judge.position_s_m
        ahead_s = s_m + self.cruise_mps * self.times_s
        xy = np.stack([np.interp(ahead_s, scenario.route_s_m, scenario.route_lane_xy[:, i]) for i in (0, 1)], axis=1)
        state = observation.state
        c, s = np.cos(state.yaw_rad), np.sin(state.yaw_rad)
        offset = xy - np.array([state.x_m, state.y_m])
        waypoints_ego = np.stack([c * offset[:, 0] + s * offset[:, 1], -s * offset[:, 0] + c * offset[:, 1]], axis=1)
        brake = any(0.0 <= line.s_m - s_m <= self.head_stop_within_m for line in scenario.stop_lines)
        self.brakes.append(brake)
        probs = np.eye(len(C.TARGET_SPEEDS_MPS))[0 if brake else len(C.TARGET_SPEEDS_MPS) - 1]
        target_speed_mps = confidence_weighted_target_speed(probs)
        control = self.controller.command(waypoints_ego, state.speed_mps, target_speed_mps)
        return TickOutput(control, waypoints_ego)

    def report(self) -> dict:
        return {}

    def close(self) -> None:
        return None


def test_waypoints_head_stop_stands_at_a_stop_line_once_and_drives_on_where_a_speed_blind_head_would_hold_it():
    """Stop lines need a full stop, which waypoints that never slow do not make (`waypoints`: the
    line is run); a speed-blind head still says stop once the car stands in front of the line
    (`head`: it stands there until the route is given up); `waypoints_head_stop` stands once and
    lets the waypoints drive on: the route is completed without an infraction."""
    spec = next(spec for spec in route_set("synth-val-empty")[1] if spec.name.endswith("town03_route1"))
    assert spec.scenario().stop_lines, "the route must cross a stop line"

    run_through = run_route(spec, ConstantSpeedStack("waypoints"), "sim", None, lidar=False, tiles=False).score
    assert run_through.counts()["stop_infraction"] >= 1, run_through.infractions

    held = run_route(spec, ConstantSpeedStack("head"), "sim", None, lidar=False, tiles=False).score
    assert held.counts()["agent_blocked"] == 1 and held.route_completion < 50.0, held.infractions

    stack = ConstantSpeedStack("waypoints_head_stop")
    run = run_route(spec, stack, "sim", None, lidar=False, tiles=False)
    assert run.score.driving_score == 100.0, run.result()
    assert sum(run.score.counts().values()) == 0, run.score.infractions
    assert any(stack.brakes)  # the head said stop on the way: the standstill came from it
