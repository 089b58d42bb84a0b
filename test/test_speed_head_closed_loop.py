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
