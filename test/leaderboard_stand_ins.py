"""Stand-ins for the parts of the CARLA leaderboard an agent meets, written from the upstream code
(CARLA Garage's leaderboard 1.0 fork: leaderboard/leaderboard/leaderboard_evaluator_local.py,
autoagents/autonomous_agent.py, utils/route_manipulation.py; carla-simulator/leaderboard 2.x:
leaderboard/leaderboard_evaluator.py, autoagents/autonomous_agent.py). Only the call sequence and
the data formats are reproduced, not CARLA."""

from __future__ import annotations

import enum
import math
import sys
import types
from types import SimpleNamespace


class RoadOption(enum.IntEnum):
    """CARLA's agents.navigation.local_planner.RoadOption values."""

    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4
    CHANGELANELEFT = 5
    CHANGELANERIGHT = 6


def leaderboard_downsample_route(route, sample_factor):
    """route_manipulation.downsample_route, point by point as upstream walks it: keep lane-change
    points, RoadOption changes not right after a lane change, the point after more than
    `sample_factor` metres, and the last point. route: [(transform, RoadOption), ...]."""
    lane_changes = (RoadOption.CHANGELANELEFT, RoadOption.CHANGELANERIGHT)
    kept, previous, distance = [], None, 0.0
    for index, (transform, option) in enumerate(route):
        if option in lane_changes:
            kept.append(index)
            distance = 0.0
        elif option != previous and previous not in lane_changes:
            kept.append(index)
            distance = 0.0
        elif distance > sample_factor:
            kept.append(index)
            distance = 0.0
        elif index == len(route) - 1:
            kept.append(index)
            distance = 0.0
        else:
            before = route[index - 1][0].location
            distance += math.hypot(transform.location.x - before.x, transform.location.y - before.y)
        previous = option
    return kept


def transform(x, y):
    """A carla.Transform stand-in at world (x, y)."""
    return SimpleNamespace(location=SimpleNamespace(x=float(x), y=float(y), z=0.0))


class GarageAutonomousAgent:
    """CARLA Garage's AutonomousAgent (leaderboard 1.0 fork): __init__(path, route_index) calls
    setup(path, route_index); set_global_plan keeps the plan downsampled to 50 m."""

    def __init__(self, path_to_conf_file, route_index=None):
        self.track = None
        self._global_plan = None
        self._global_plan_world_coord = None
        self.setup(path_to_conf_file, route_index)

    def setup(self, path_to_conf_file, route_index=None):
        pass

    def destroy(self):
        pass

    def set_global_plan(self, global_plan_gps, global_plan_world_coord):
        kept = leaderboard_downsample_route(global_plan_world_coord, 50)
        self._global_plan_world_coord = [global_plan_world_coord[i] for i in kept]
        self._global_plan = [global_plan_gps[i] for i in kept]


class Leaderboard2AutonomousAgent:
    """carla-simulator/leaderboard 2.x AutonomousAgent: __init__(host, port, debug) without
    setup (the evaluator calls it later); set_global_plan keeps the plan downsampled to 200 m."""

    def __init__(self, carla_host, carla_port, debug=False):
        self.track = None
        self._global_plan = None
        self._global_plan_world_coord = None

    def setup(self, path_to_conf_file):
        pass

    def destroy(self):
        pass

    def set_global_plan(self, global_plan_gps, global_plan_world_coord):
        kept = leaderboard_downsample_route(global_plan_world_coord, 200)
        self._global_plan_world_coord = [global_plan_world_coord[i] for i in kept]
        self._global_plan = [global_plan_gps[i] for i in kept]


def install(monkeypatch, base_class):
    """Put stand-in `carla` and `leaderboard.autoagents.autonomous_agent` modules on sys.modules."""
    carla = types.ModuleType("carla")
    carla.VehicleControl = lambda steer=0.0, throttle=0.0, brake=0.0: SimpleNamespace(
        steer=steer, throttle=throttle, brake=brake
    )
    autonomous_agent = types.ModuleType("leaderboard.autoagents.autonomous_agent")
    autonomous_agent.AutonomousAgent = base_class
    autonomous_agent.Track = enum.Enum("Track", "SENSORS MAP")
    leaderboard = types.ModuleType("leaderboard")
    autoagents = types.ModuleType("leaderboard.autoagents")
    leaderboard.autoagents, autoagents.autonomous_agent = autoagents, autonomous_agent
    for name, module in (
        ("carla", carla),
        ("leaderboard", leaderboard),
        ("leaderboard.autoagents", autoagents),
        ("leaderboard.autoagents.autonomous_agent", autonomous_agent),
    ):
        monkeypatch.setitem(sys.modules, name, module)


def garage_evaluator_start(agent_module, agent_config, gps_route, route):
    """leaderboard_evaluator_local._load_and_run_scenario up to the first tick: the agent class
    from get_entry_point(), built with (agent_config, route_date_string), sensors(), then the
    route scenario's set_global_plan(gps_route, route)."""
    agent_class = getattr(agent_module, agent_module.get_entry_point())
    agent = agent_class(agent_config, "longest6_route0_01_02_03_04_05")
    sensors = agent.sensors()
    agent.set_global_plan(gps_route, route)
    return agent, sensors


def garage_evaluator_cleanup(agent, results):
    """leaderboard_evaluator_local._cleanup(results): `agent.destroy(results)`."""
    agent.destroy(results)


def leaderboard2_evaluator_start(agent_module, agent_config, gps_route, route):
    """leaderboard 2.x _load_and_run_scenario: agent_class(host, port, debug), set_global_plan,
    setup(agent_config), sensors()."""
    agent_class = getattr(agent_module, agent_module.get_entry_point())
    agent = agent_class("localhost", 2000, 0)
    agent.set_global_plan(gps_route, route)
    agent.setup(agent_config)
    return agent, agent.sensors()


def leaderboard2_evaluator_cleanup(agent):
    """leaderboard 2.x _cleanup: `agent.destroy()`."""
    agent.destroy()
