"""The leaderboard and NAVSIM agents against the real upstream code of ../shared/third_party.

Leaderboard: CARLA Garage's `leaderboard` (AutonomousAgent base class and its __call__, the
SENSORS-track validation of agent_wrapper_local.AgentWrapper, SensorInterface, route_parser on
the real data/longest6.xml, route_manipulation's downsample_route and GPS conversion) with the
`carla` 0.9.16 client from PyPI (VehicleControl, Location, Transform need no server). Two parts
are not real, and why:
* CARLA's Python `agents` package (PythonAPI/carla/agents) is in neither the `carla` wheel nor
  ../shared/third_party; the leaderboard imports it at module level. `_carla_agents_stand_in`
  provides only what those imports name: RoadOption with CARLA's values, and route planner
  classes that raise (they need a CARLA server's map), never called here;
* the dense 1 m route between longest6's key points, which GlobalRoutePlanner computes on the
  server's road network: here straight segments between the key points.

NAVSIM: v2.2's AbstractAgent, AgentInput, EgoStatus, Cameras, SensorConfig and Trajectory, the
agent built by Hydra from the YAML docs/evaluation.md shows, the documented run_metric_caching /
run_pdm_score overrides composed against navsim v2.2's own Hydra configs.
"""

from __future__ import annotations

import enum
import math
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from upstream import ROOT, require

from min2real.agents import carla_leaderboard_agent as carla_agent
from min2real.agents import navsim_agent

BUNDLED = ROOT / "models" / "bundled" / "min2real_tiny_sim.onnx"


# ---- leaderboard ------------------------------------------------------------------------------------
class _RoadOption(enum.IntEnum):
    """agents.navigation.local_planner.RoadOption (CARLA PythonAPI/carla/agents, 16ae66c)."""

    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4
    CHANGELANELEFT = 5
    CHANGELANERIGHT = 6


def _carla_agents_stand_in(monkeypatch) -> None:
    def needs_server(*args, **kwargs):
        raise RuntimeError("CARLA's route planner needs a CARLA server's map (not available here)")

    modules = {name: types.ModuleType(name) for name in ("agents", "agents.navigation")}
    local_planner = types.ModuleType("agents.navigation.local_planner")
    local_planner.RoadOption = _RoadOption
    planner = types.ModuleType("agents.navigation.global_route_planner")
    planner.GlobalRoutePlanner = type("GlobalRoutePlanner", (), {"__init__": needs_server})
    dao = types.ModuleType("agents.navigation.global_route_planner_dao")
    dao.GlobalRoutePlannerDAO = type("GlobalRoutePlannerDAO", (), {"__init__": needs_server})
    for module in (local_planner, planner, dao):
        modules[module.__name__] = module
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    for name in [n for n in sys.modules if n.startswith(("leaderboard", "srunner"))]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh against this `agents`
    monkeypatch.delitem(carla_agent.__dict__, "Min2RealAgent", raising=False)


@pytest.fixture
def leaderboard(monkeypatch):
    require("carla", "leaderboard", "srunner", "py_trees")
    _carla_agents_stand_in(monkeypatch)
    import leaderboard as package

    yield Path(package.__file__)
    # Modules imported against the stand-in `agents` leave with it.
    for name in [n for n in sys.modules if n.split(".")[0] in ("leaderboard", "srunner", "agents")]:
        del sys.modules[name]


def _dense_route(carla, keypoints, spacing_m: float = 1.0):
    """(Transform, RoadOption) every `spacing_m` along straight segments between the key points."""
    route = []
    for start, end in zip(keypoints[:-1], keypoints[1:]):
        a, b = np.array([start.x, start.y]), np.array([end.x, end.y])
        length = float(np.linalg.norm(b - a))
        yaw = math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))
        for s in np.arange(0.0, length, spacing_m):
            x, y = a + (b - a) * (s / length)
            transform = carla.Transform(carla.Location(x=float(x), y=float(y), z=0.0), carla.Rotation(yaw=yaw))
            route.append((transform, _RoadOption.LANEFOLLOW))
    return route


def test_leaderboard_agent_on_the_real_leaderboard(leaderboard):
    import carla
    from leaderboard.autoagents import autonomous_agent
    from leaderboard.autoagents.agent_wrapper_local import AgentWrapper
    from leaderboard.utils import route_manipulation
    from leaderboard.utils.route_parser import RouteParser
    from srunner.scenariomanager.timer import GameTime

    longest6 = leaderboard.parents[1] / "data" / "longest6.xml"
    routes = RouteParser.parse_routes_file(str(longest6), "no-scenarios.json", single_route="0")
    assert [r.town for r in routes] == ["Town01"] and len(routes[0].trajectory) == 22
    route = _dense_route(carla, routes[0].trajectory)
    gps_route = route_manipulation.location_route_to_gps(route, 0.0, 0.0)  # CARLA towns' geo reference

    agent_class = getattr(carla_agent, carla_agent.get_entry_point())
    assert issubclass(agent_class, autonomous_agent.AutonomousAgent)
    agent = agent_class(str(BUNDLED), "longest6_route0")  # Garage: __init__(conf, route_index) -> setup
    try:
        assert agent.track == autonomous_agent.Track.SENSORS
        sensors = agent.sensors()
        AgentWrapper.validate_sensor_configuration(sensors, agent.track, "SENSORS")  # raises when invalid
        agent.set_global_plan(gps_route, route)
        # Garage's 50 m plan, as the real downsample_route keeps it.
        assert [t.location.x for t, _ in agent._global_plan_world_coord] == [
            route[i][0].location.x for i in route_manipulation.downsample_route(route, 50)
        ]
        for sensor in sensors:
            agent.sensor_interface.register_sensor(sensor["id"], sensor["type"], None)
        camera = {sensor["id"]: sensor for sensor in sensors}["rgb_front"]
        start = route[0][0]
        controls = []
        for frame in range(2):  # the first tick waits for a full LiDAR sweep
            ahead = carla.Location(x=start.location.x, y=start.location.y + 0.5 * frame, z=0.0)
            gnss = route_manipulation._location_to_gps(0.0, 0.0, ahead)
            rng = np.random.default_rng(frame)
            # What the leaderboard's CallBack parsers put in: BGRA image, (N, 4) float32 LiDAR,
            # [lat, lon, alt] GNSS, 7-value IMU (compass last), the speedometer's dict.
            pushes = {
                "rgb_front": rng.integers(0, 255, (camera["height"], camera["width"], 4), dtype=np.uint8),
                "lidar": rng.uniform(-20, 20, (1000, 4)).astype(np.float32),
                "gps": np.array([gnss["lat"], gnss["lon"], 0.0]),
                "imu": np.array([0.0, 0.0, 9.81, 0.0, 0.0, 0.0, math.radians(start.rotation.yaw + 90.0)]),
                "speed": {"speed": 2.0},
            }
            for tag, data in pushes.items():
                agent.sensor_interface.update_sensor(tag, data, frame)
            GameTime.on_carla_tick(carla.Timestamp(frame + 1, 0.05 * (frame + 1), 0.05, 0.0))  # the world tick
            controls.append(agent())  # AutonomousAgent.__call__: SensorInterface.get_data -> run_step
        for control in controls:
            assert isinstance(control, carla.VehicleControl)
            assert all(math.isfinite(v) for v in (control.steer, control.throttle, control.brake))
        assert (controls[0].brake, controls[0].throttle) == (1.0, 0.0)
        assert agent.last_prediction is not None and agent.last_prediction.waypoints_ego.shape == (8, 2)
    finally:
        agent.destroy(None)
    assert agent.policy is None


# ---- NAVSIM -----------------------------------------------------------------------------------------
@pytest.fixture
def navsim():
    require("navsim", "nuplan", "hydra", "pytorch_lightning")
    from navsim.common import dataclasses

    return dataclasses


def _agent_input(dataclasses, driving_command=(1, 0, 0, 0)):
    rng = np.random.default_rng(0)
    statuses, cameras, lidars = [], [], []
    for _ in range(4):
        statuses.append(
            dataclasses.EgoStatus(
                ego_pose=np.zeros(3, np.float32),
                ego_velocity=np.array([4.0, 0.0], np.float32),
                ego_acceleration=np.zeros(2, np.float32),
                driving_command=np.array(driving_command),
            )
        )
        image = rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
        empty = dataclasses.Camera()
        cameras.append(
            dataclasses.Cameras(
                cam_f0=dataclasses.Camera(image=image), cam_l0=empty, cam_l1=empty, cam_l2=empty,
                cam_r0=empty, cam_r1=empty, cam_r2=empty, cam_b0=empty,
            )
        )  # fmt: skip
        lidars.append(dataclasses.Lidar())
    return dataclasses.AgentInput(ego_statuses=statuses, cameras=cameras, lidars=lidars)


def test_navsim_agent_is_a_real_abstract_agent_returning_a_real_trajectory(navsim):
    from navsim.agents.abstract_agent import AbstractAgent

    agent_class = getattr(navsim_agent, navsim_agent.ENTRY_POINT)
    assert issubclass(agent_class, AbstractAgent)
    agent = agent_class(model_path=str(BUNDLED), backend="onnxruntime-cpu", domain="sim")
    agent.initialize()
    config = agent.get_sensor_config()
    assert isinstance(config, navsim.SensorConfig)
    assert config.cam_f0 == [navsim_agent.CURRENT_FRAME_INDEX] and config.cam_b0 == [] and config.lidar_pc == []
    trajectory = agent.compute_trajectory(_agent_input(navsim))
    assert isinstance(trajectory, navsim.Trajectory)
    assert trajectory.poses.shape == (8, 3) and np.isfinite(trajectory.poses).all()
    sampling = trajectory.trajectory_sampling
    assert (sampling.num_poses, sampling.time_horizon, sampling.interval_length) == (8, 4.0, 0.5)


def _documented(section: str) -> tuple[str, list[tuple[str, list[str]]]]:
    """docs/evaluation.md's NAVSIM agent YAML and its commands: [(script, [override, ...])]."""
    text = (ROOT / "docs" / "evaluation.md").read_text(encoding="utf-8")
    body = text[text.index(section) :]
    agent_yaml = re.search(r"```yaml\n(.*?)```", body, re.S).group(1)
    bash = re.search(r"```bash\n(.*?)```", body, re.S).group(1).replace("\\\n", " ")
    commands = []
    for line in bash.splitlines():
        words = line.split()
        if words[:1] == ["python"]:
            commands.append((Path(words[1]).stem, words[2:]))
    return agent_yaml, commands


def test_documented_navsim_commands_compose_against_navsim_hydra_configs(navsim, tmp_path):
    import hydra
    import navsim as navsim_package
    from hydra import compose, initialize_config_dir
    from navsim.agents.abstract_agent import AbstractAgent

    agent_yaml, commands = _documented("## 3. NAVSIM")
    assert [script for script, _ in commands] == ["run_metric_caching", "run_pdm_score"]
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "min2real_agent.yaml").write_text(
        agent_yaml.replace("/path/to/min2real_real.onnx", str(BUNDLED)).replace("domain: real", "domain: sim")
    )
    config_root = Path(navsim_package.__file__).parent / "planning" / "script" / "config"
    primary = {"run_metric_caching": ("metric_caching", "default_metric_caching"),
               "run_pdm_score": ("pdm_scoring", "default_run_pdm_score")}  # fmt: skip
    variables = {"$TRAIN_TEST_SPLIT": "navhard_two_stage", "$CACHE_PATH": str(tmp_path / "cache")}
    for script, overrides in commands:
        overrides = [re.sub(r"\$\w+", lambda m: variables.get(m.group(0), str(tmp_path)), o) for o in overrides]
        group, name = primary[script]
        search = f"hydra.searchpath=[pkg://navsim.planning.script.config.common,file://{tmp_path}]"
        with initialize_config_dir(config_dir=str(config_root / group), version_base=None):
            config = compose(config_name=name, overrides=[*overrides, search])  # unknown keys fail here
        assert config.train_test_split.data_split is not None
        assert str(config.metric_cache_path) == variables["$CACHE_PATH"]
        if script == "run_pdm_score":
            agent = hydra.utils.instantiate(config.agent)
            assert isinstance(agent, AbstractAgent) and type(agent).__name__ == navsim_agent.ENTRY_POINT
            sampling = agent._trajectory_sampling
            assert (sampling.time_horizon, sampling.interval_length) == (4, 0.5)
