"""Benchmark agents: CARLA leaderboard and NAVSIM pure logic with inputs of the real shapes."""

from __future__ import annotations

import enum
import math
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from min2real.agents import carla_leaderboard_agent as carla_agent
from min2real.agents import navsim_agent
from min2real.contract import (
    CARLA_GARAGE_CAMERA,
    COMMAND_LEFT,
    COMMAND_RIGHT,
    COMMAND_STRAIGHT,
    DEFAULT_CONTRACT,
    TINY_CONTRACT,
    CameraSpec,
    Contract,
    ContractError,
    lidar_bev_from_points,
)
from min2real.runtime.route import RoutePlanner


class RoadOption(enum.IntEnum):
    """Stand-in with CARLA's RoadOption values (agents.navigation.local_planner)."""

    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4


METRES_PER_DEGREE_EQUATOR = 6378137.0 * math.pi / 180.0  # 111319.49 m


# ---- GNSS / compass ------------------------------------------------------------------------------
def test_gps_to_carla_world_matches_hand_computed_values():
    # 0.001 degree of longitude on the equator: R * pi / 180 * 0.001 east = +x in CARLA.
    east = carla_agent.gps_to_carla_world(np.array([0.0, 0.001]))
    np.testing.assert_allclose(east, [METRES_PER_DEGREE_EQUATOR * 0.001, 0.0], atol=1e-6)
    # 0.001 degree of latitude north: Mercator northing R ln tan(pi/4 + lat/2) = 111.3195 m, and
    # north is -y in CARLA's left-handed world.
    north = carla_agent.gps_to_carla_world(np.array([0.001, 0.0]))
    expected_northing = 6378137.0 * math.log(math.tan(math.pi / 4 + math.radians(0.001) / 2))
    np.testing.assert_allclose(north, [0.0, -expected_northing], atol=1e-6)
    assert abs(expected_northing - 111.3195) < 1e-3
    # CARLA Garage's linear approximation (scale 111324.6 / 111319.49 m per degree) agrees to < 0.01 %.
    lat_lon = np.array([[0.0012, -0.0007], [-0.0031, 0.0024]])
    garage = np.stack([lat_lon[:, 1] * 111319.490945, -lat_lon[:, 0] * 111324.60662786], axis=-1)
    np.testing.assert_allclose(carla_agent.gps_to_carla_world(lat_lon), garage, rtol=1e-4, atol=0.05)


def test_gps_conversion_is_the_inverse_of_the_leaderboard_projection():
    xy = np.array([[120.5, -340.25], [-15.0, 88.0], [0.0, 0.0]])
    for lat_ref, lon_ref in ((0.0, 0.0), (49.0, 8.0)):
        lat_lon = carla_agent.carla_world_to_gps(xy, lat_ref, lon_ref)
        np.testing.assert_allclose(carla_agent.gps_to_carla_world(lat_lon, lat_ref, lon_ref), xy, atol=1e-5)


def test_gps_to_map_is_right_handed_east_north():
    np.testing.assert_allclose(carla_agent.gps_to_map(np.array([0.001, 0.0])), [0.0, 111.3195], atol=1e-3)


@pytest.mark.parametrize(
    ("compass_rad", "map_yaw_rad"),
    [(0.0, math.pi / 2), (math.pi / 2, 0.0), (math.pi, -math.pi / 2), (3 * math.pi / 2, -math.pi)],
)
def test_compass_to_map_yaw(compass_rad, map_yaw_rad):
    # Compass 0 = north (map +y), clockwise; map yaw counter-clockwise from east.
    assert math.isclose(carla_agent.compass_to_map_yaw(compass_rad), map_yaw_rad, abs_tol=1e-9)


def test_nan_compass_reuses_the_last_heading_and_fails_on_the_first_frame():
    config = carla_agent.CarlaAgentConfig(model_path="unused.onnx")
    data = {
        "gps": (0, np.array([0.0, 0.0, 0.0])),
        "imu": (0, np.array([0, 0, 9.8, 0, 0, 0, np.nan])),
        "speed": (0, {"speed": 3.0}),
    }
    state = carla_agent.ego_state_from_sensors(data, config, last_yaw_rad=0.25)
    assert state.yaw_rad == 0.25 and state.speed_mps == 3.0
    with pytest.raises(ValueError, match="first frame"):
        carla_agent.ego_state_from_sensors(data, config, last_yaw_rad=None)


# ---- global plan -> target point -----------------------------------------------------------------
def _gps_plan(points_carla_world, options):
    lat_lon = carla_agent.carla_world_to_gps(np.asarray(points_carla_world, dtype=np.float64))
    return [({"lat": lat, "lon": lon, "z": 0.0}, option) for (lat, lon), option in zip(lat_lon, options)]


def test_global_plan_to_route_converts_positions_and_commands():
    plan = _gps_plan([[0, 0], [0, -10], [10, -20]], [RoadOption.LANEFOLLOW, RoadOption.LEFT, RoadOption.RIGHT])
    route_xy_map, commands = carla_agent.global_plan_to_route(plan)
    np.testing.assert_allclose(route_xy_map, [[0, 0], [0, 10], [10, 20]], atol=1e-4)  # CARLA y flipped
    assert commands.tolist() == [COMMAND_STRAIGHT, COMMAND_LEFT, COMMAND_RIGHT]
    with pytest.raises(ValueError, match="empty"):
        carla_agent.global_plan_to_route([])
    with pytest.raises(ValueError, match="RoadOption"):
        carla_agent.road_option_to_command(42)


def test_target_selection_from_gnss_compass_and_plan():
    """Ego at the CARLA origin heading north (compass 0); the route goes north then bends east
    (to the ego's right): the target point is Garage's next point beyond 7.5 m, with y < 0."""
    config = carla_agent.CarlaAgentConfig(model_path="unused.onnx")
    plan = _gps_plan(
        [[0, 0], [0, -5], [0, -10], [5, -15], [10, -15]], [RoadOption.LANEFOLLOW] * 2 + [RoadOption.RIGHT] * 3
    )
    route_xy_map, commands = carla_agent.global_plan_to_route(plan)
    planner = RoutePlanner(config.route_min_distance_m, config.route_max_distance_m)
    planner.set_route(route_xy_map, commands)
    gnss = carla_agent.carla_world_to_gps(np.array([0.0, 0.0]))
    data = {
        "gps": (0, np.array([gnss[0], gnss[1], 0.0])),
        "imu": (0, np.array([0, 0, 9.8, 0, 0, 0, 0.0])),
        "speed": (0, {"speed": 0.0}),
    }
    state = carla_agent.ego_state_from_sensors(data, config)
    step = planner.step(state.xy_map, state.yaw_rad)
    np.testing.assert_allclose(step.target_point_ego, [10.0, 0.0], atol=1e-3)  # (0, -10): 10 m straight ahead
    # Drive to 2 m before the bend: the target becomes (5, -15), 7 m ahead and 5 m to the RIGHT.
    gnss = carla_agent.carla_world_to_gps(np.array([0.0, -8.0]))
    data["gps"] = (1, np.array([gnss[0], gnss[1], 0.0]))
    state = carla_agent.ego_state_from_sensors(data, config, state.yaw_rad)
    step = planner.step(state.xy_map, state.yaw_rad)
    np.testing.assert_allclose(step.target_point_ego, [7.0, -5.0], atol=1e-3)


# ---- sensors -> FrameInputs ------------------------------------------------------------------------
def _carla_input_data(num_points=1000, seed=0):
    rng = np.random.default_rng(seed)
    camera_bgra = np.zeros((384, 1024, 4), dtype=np.uint8)
    camera_bgra[..., 0], camera_bgra[..., 1], camera_bgra[..., 2], camera_bgra[..., 3] = 10, 20, 30, 255
    lidar = rng.uniform(-20, 20, size=(num_points, 4)).astype(np.float32)
    lidar[0] = [0.0, 10.0, 0.0, 1.0]  # sensor frame: 10 m along the sensor's y (right) axis
    lidar[1] = [10.0, 0.0, -2.5, 1.0]  # 10 m along the sensor's x axis, at ground height
    return {
        "rgb_front": (7, camera_bgra),
        "lidar": (7, lidar),
        "gps": (7, np.array([0.0, 0.0, 0.0])),
        "imu": (7, np.array([0.0, 0.0, 9.81, 0.0, 0.0, 0.0, 0.0])),
        "speed": (7, {"speed": 4.5}),
    }


def test_lidar_sensor_frame_to_rep103_with_garage_mounting():
    points = np.array([[0.0, 10.0, 0.0, 1.0], [10.0, 0.0, -2.5, 1.0]], dtype=np.float32)
    ego = carla_agent.lidar_sensor_to_ego(points, (0.0, 0.0, 2.5), -90.0)
    # Mounted yawed -90 degrees: the sensor's +y looks forward, its +x looks LEFT (CARLA y = -10).
    np.testing.assert_allclose(ego, [[10.0, 0.0, 2.5], [0.0, 10.0, 0.0]], atol=1e-5)
    assert ego.dtype == np.float32


def test_sensor_assembly_into_frame_inputs():
    config = carla_agent.CarlaAgentConfig(model_path="unused.onnx", jpeg_round_trip=False)
    data = _carla_input_data()
    previous = np.array([[5.0, 1.0, 1.0], [6.0, -1.0, 1.0]], dtype=np.float32)
    frame, lidar_current = carla_agent.frame_inputs_from_sensors(
        data, config, np.array([12.0, -3.0]), COMMAND_RIGHT, speed_mps=4.5, previous_lidar_ego=previous
    )
    assert frame.image_rgb.shape == (384, 1024, 3) and frame.image_rgb.dtype == np.uint8
    assert frame.image_rgb[0, 0].tolist() == [30, 20, 10]  # BGRA -> RGB
    assert lidar_current.shape == (1000, 3)
    assert frame.lidar_points_ego.shape == (1002, 3)  # current half sweep + the previous one
    np.testing.assert_allclose(frame.lidar_points_ego[0], [10.0, 0.0, 2.5], atol=1e-5)
    np.testing.assert_allclose(frame.target_point_ego, [12.0, -3.0])
    assert frame.speed_mps == 4.5 and frame.command == COMMAND_RIGHT
    # Through the contract's BEV: the point 10 m ahead lands in the front (upper) half, centre column.
    bev = lidar_bev_from_points(frame.lidar_points_ego[:1], TINY_CONTRACT)
    rows, cols = np.nonzero(bev[0])
    assert rows[0] < TINY_CONTRACT.bev_size_px // 2 and cols[0] == TINY_CONTRACT.bev_size_px // 2


def test_sensor_assembly_jpeg_round_trip_and_missing_sensor():
    config = carla_agent.CarlaAgentConfig(model_path="unused.onnx", jpeg_round_trip=True)
    data = _carla_input_data(num_points=10)
    frame, _ = carla_agent.frame_inputs_from_sensors(data, config, np.zeros(2), None, 0.0)
    assert np.abs(frame.image_rgb.astype(int) - [30, 20, 10]).max() <= 3  # JPEG keeps flat colours
    del data["lidar"]
    with pytest.raises(ContractError, match="lidar"):
        carla_agent.frame_inputs_from_sensors(data, config, np.zeros(2), None, 0.0)
    with pytest.raises(ValueError, match="BGRA"):
        carla_agent.camera_bgra_to_rgb(np.zeros((384, 1024), np.uint8))


def test_previous_sweep_moves_into_the_current_pose():
    points = np.array([[10.0, 0.0, 1.0]], dtype=np.float32)
    # Drove 1 m forward heading north (map yaw pi/2): the point is now 9 m ahead.
    moved = carla_agent.move_points_between_poses(
        points, np.array([0.0, 0.0]), math.pi / 2, np.array([0.0, 1.0]), math.pi / 2
    )
    np.testing.assert_allclose(moved, [[9.0, 0.0, 1.0]], atol=1e-5)
    # Turned 90 degrees left in place: what was ahead is now on the right.
    moved = carla_agent.move_points_between_poses(points, np.array([0.0, 0.0]), 0.0, np.array([0.0, 0.0]), math.pi / 2)
    np.testing.assert_allclose(moved, [[0.0, -10.0, 1.0]], atol=1e-5)


def test_sensor_suite_requests_the_models_source_camera():
    config = carla_agent.CarlaAgentConfig(model_path="unused.onnx")
    camera = carla_agent.agent_camera(config, None)  # a model that records none: Garage's camera
    assert camera == CARLA_GARAGE_CAMERA
    sensors = {sensor["id"]: sensor for sensor in carla_agent.sensor_suite(config, camera)}
    assert set(sensors) == {"rgb_front", "lidar", "gps", "imu", "speed"}
    assert (sensors["rgb_front"]["width"], sensors["rgb_front"]["height"], sensors["rgb_front"]["fov"]) == (
        1024,
        256,
        110.0,
    )
    assert sensors["lidar"]["yaw"] == -90.0 and sensors["lidar"]["type"] == "sensor.lidar.ray_cast"
    synthetic = CameraSpec(256, 96, 100.0)
    camera_only = carla_agent.sensor_suite(
        carla_agent.CarlaAgentConfig(model_path="m.onnx", use_lidar=False), carla_agent.agent_camera(config, synthetic)
    )
    assert "lidar" not in {sensor["id"] for sensor in camera_only}
    assert {s["id"]: s for s in camera_only}["rgb_front"]["width"] == 256
    override = carla_agent.CarlaAgentConfig(model_path="m.onnx", camera_fov_deg=90.0, camera_height_px=300)
    assert carla_agent.agent_camera(override, synthetic) == CameraSpec(256, 300, 90.0)


def test_agent_config_from_model_file_and_yaml(tmp_path):
    model = tmp_path / "policy.onnx"
    model.write_bytes(b"onnx")
    assert carla_agent.load_agent_config(model).model_path == str(model)
    yaml_file = tmp_path / "agent.yaml"
    yaml_file.write_text("model: policy.onnx\nbackend: onnxruntime\ncamera_fov_deg: 100\nlidar_xyz_m: [0, 0, 2.4]\n")
    config = carla_agent.load_agent_config(yaml_file)
    assert config.model_path == str(model) and config.backend == "onnxruntime"
    assert config.camera_fov_deg == 100 and config.lidar_xyz_m == (0.0, 0.0, 2.4)
    yaml_file.write_text("model: policy.onnx\ncamera_fvo: 100\n")
    with pytest.raises(ValueError, match="camera_fvo"):
        carla_agent.load_agent_config(yaml_file)
    with pytest.raises(FileNotFoundError):
        carla_agent.load_agent_config(tmp_path / "missing.onnx")


def test_leaderboard_results_summary():
    def record(ds, rc, ip, n_infractions, length_m):
        return {
            "scores": {"score_composed": ds, "score_route": rc, "score_penalty": ip},
            "infractions": {"collisions_vehicle": ["x"] * n_infractions, "red_light": []},
            "meta": {"route_length": length_m},
        }

    summary = carla_agent.summarize_leaderboard_results(
        {"_checkpoint": {"records": [record(30.0, 60.0, 0.5, 2, 2000.0), record(10.0, 20.0, 0.5, 1, 1000.0)]}}
    )
    assert summary["routes"] == 2
    assert summary["driving_score_mean"] == 20.0 and summary["driving_score_std"] == 10.0
    assert summary["route_completion_mean"] == 40.0
    assert summary["infractions_per_route"] == 1.5
    assert math.isclose(summary["infractions_per_km"], 3 / (2.0 * 0.6 + 1.0 * 0.2))
    with pytest.raises(ValueError, match="records"):
        carla_agent.summarize_leaderboard_results({"_checkpoint": {}})


def test_leaderboard_agent_class_needs_carla_and_leaderboard(monkeypatch):
    for name in ("leaderboard", "leaderboard.autoagents", "leaderboard.autoagents.autonomous_agent"):
        monkeypatch.setitem(sys.modules, name, None)  # as on a machine without it: import fails
    monkeypatch.delitem(carla_agent.__dict__, "Min2RealAgent", raising=False)
    assert carla_agent.get_entry_point() == "Min2RealAgent"
    with pytest.raises(carla_agent.AgentDependencyError, match="PYTHONPATH"):
        carla_agent.Min2RealAgent  # noqa: B018  (attribute access builds the class)


# ---- geo reference and the agent class against stand-in carla / leaderboard modules ---------------------
@pytest.mark.parametrize(("lat_ref", "lon_ref"), [(0.0, 0.0), (49.0, 8.0), (-33.87, 151.21)])
def test_geo_reference_is_recovered_from_one_plan_point(lat_ref, lon_ref):
    point_world = np.array([812.5, -1437.25])
    gps = carla_agent.carla_world_to_gps(point_world, lat_ref, lon_ref)
    estimated = carla_agent.estimate_lat_lon_ref(gps, point_world)
    np.testing.assert_allclose(estimated, (lat_ref, lon_ref), atol=1e-9)
    others = np.array([[0.0, 0.0], [-950.0, 420.0], [1500.0, 1500.0]])
    back = carla_agent.gps_to_carla_world(carla_agent.carla_world_to_gps(others, lat_ref, lon_ref), *estimated)
    np.testing.assert_allclose(back, others, atol=1e-3)


def test_a_wrong_geo_reference_would_scale_every_distance():
    """Why the agent estimates the reference: on a map referenced at 49 deg N, assuming (0, 0)
    stretches distances by 1 / cos(49 deg) = 1.52 (a 10 m target point would be 15 m away)."""
    gps = carla_agent.carla_world_to_gps(np.array([[0.0, 0.0], [0.0, -10.0]]), 49.0, 8.0)
    wrong = carla_agent.gps_to_carla_world(gps)
    assert np.linalg.norm(wrong[1] - wrong[0]) == pytest.approx(10.0 / math.cos(math.radians(49.0)), rel=1e-3)


class _StandInPolicy:
    """Predicts a path bending RIGHT (REP 103: y < 0) and records what it was given."""

    def __init__(self, contract, source_camera=None):
        self.contract, self.frames, self.closed = contract, [], False
        self.metadata = SimpleNamespace(source_camera=source_camera)

    def predict(self, frame):
        self.frames.append(frame)
        times = self.contract.waypoint_times_s
        waypoints = np.stack([4.0 * times, -0.4 * times**2], axis=-1).astype(np.float32)
        return SimpleNamespace(waypoints_ego=waypoints, steer_class=2)

    def close(self):
        self.closed = True


# CARLA Garage's leaderboard (1.0 fork) runs for real in test_upstream_agents.py; leaderboard 2.x is
# not in ../shared/third_party, so its call sequence is the stand-in's (test/leaderboard_stand_ins.py).
@pytest.mark.parametrize("leaderboard", ["leaderboard_2.x"])
def test_leaderboard_agent_through_the_evaluators_call_sequence(monkeypatch, tmp_path, leaderboard):
    import leaderboard_stand_ins as lb

    import min2real.runtime.policy as policy_module

    garage = leaderboard == "garage_1.0_fork"
    lb.install(monkeypatch, lb.GarageAutonomousAgent if garage else lb.Leaderboard2AutonomousAgent)
    source_camera = None if garage else CameraSpec(320, 120, 100.0)  # an old model / a synthetic-data model
    policies = []

    def fake_load_policy(path, domain=None, backend="auto"):
        assert (domain, backend) == ("sim", "auto")
        policies.append(_StandInPolicy(TINY_CONTRACT, source_camera))
        return policies[-1]

    monkeypatch.setattr(policy_module, "load_policy", fake_load_policy)
    monkeypatch.delitem(carla_agent.__dict__, "Min2RealAgent", raising=False)
    model = tmp_path / "tiny_sim.onnx"
    model.write_bytes(b"stand-in")

    # The leaderboard's dense plan (1 m): north (CARLA -y) from (100, 200) in a town geo-referenced
    # at 49 N, 8 E, LANEFOLLOW then a LEFT junction at 120 m, then LANEFOLLOW again.
    lat_ref, lon_ref = 49.0, 8.0
    route_world = np.stack([np.full(301, 100.0), 200.0 - np.arange(301.0)], axis=1)
    options = [lb.RoadOption.LANEFOLLOW] * 120 + [lb.RoadOption.LEFT] * 15 + [lb.RoadOption.LANEFOLLOW] * 166
    route_gps = carla_agent.carla_world_to_gps(route_world, lat_ref, lon_ref)
    gps_route = [({"lat": lat, "lon": lon, "z": 0.0}, option) for (lat, lon), option in zip(route_gps, options)]
    route = [(lb.transform(x, y), option) for (x, y), option in zip(route_world, options)]
    start = lb.garage_evaluator_start if garage else lb.leaderboard2_evaluator_start
    agent, sensors = start(carla_agent, str(model), gps_route, route)

    camera = {sensor["id"]: sensor for sensor in sensors}["rgb_front"]
    expected_camera = CARLA_GARAGE_CAMERA if source_camera is None else source_camera
    assert (camera["width"], camera["height"], camera["fov"]) == (
        expected_camera.width_px,
        expected_camera.height_px,
        expected_camera.fov_deg,
    )
    # Garage's 50 m plan under both leaderboards (2.x's own base class would keep 200 m).
    garage_kept = lb.leaderboard_downsample_route(route, 50)
    assert len(lb.leaderboard_downsample_route(route, 200)) < len(garage_kept)
    assert [t.location.y for t, _ in agent._global_plan_world_coord] == [route[i][0].location.y for i in garage_kept]
    assert agent._global_plan == [gps_route[i] for i in garage_kept]

    def input_data(frame, ego_world):
        rng = np.random.default_rng(frame)
        lat, lon = carla_agent.carla_world_to_gps(np.asarray(ego_world, dtype=np.float64), lat_ref, lon_ref)
        return {
            "rgb_front": (frame, rng.integers(0, 255, (camera["height"], camera["width"], 4), dtype=np.uint8)),
            "lidar": (frame, rng.uniform(-20, 20, (500, 4)).astype(np.float32)),
            "gps": (frame, np.array([lat, lon, 0.0])),
            "imu": (frame, np.array([0.0, 0.0, 9.81, 0.0, 0.0, 0.0, 0.0])),  # compass 0: heading north
            "speed": (frame, {"speed": 2.0}),  # slower than the predicted 4 m/s: no braking
        }

    first = agent.run_step(input_data(0, [100.0, 200.0]), 0.05)
    assert (first.brake, first.throttle) == (1.0, 0.0)  # waits for a full LiDAR sweep
    control = agent.run_step(input_data(1, [100.0, 199.0]), 0.10)
    np.testing.assert_allclose(agent.lat_lon_ref_deg, (lat_ref, lon_ref), atol=1e-9)
    frame = policies[0].frames[-1]
    # Ego 1 m up the route: the target is Garage's next plan point, the first past 50 m of route
    # (index 52), 51 m straight ahead, metric (with the reference assumed at (0, 0): 77.7 m).
    assert garage_kept[1] == 52
    np.testing.assert_allclose(frame.target_point_ego, [51.0, 0.0], atol=1e-2)
    assert frame.command == COMMAND_STRAIGHT  # Garage's history starts at LANEFOLLOW
    assert frame.image_rgb.shape == (camera["height"], camera["width"], 3)
    assert frame.lidar_points_ego.shape == (1000, 3)  # this half sweep + the previous one
    assert frame.speed_mps == 2.0
    assert control.steer > 0.0  # a path bending right is a positive (CARLA: right) steer
    if garage:
        lb.garage_evaluator_cleanup(agent, SimpleNamespace(scores={"score_composed": 100.0}))
    else:
        lb.leaderboard2_evaluator_cleanup(agent)
    assert policies[0].closed and agent.policy is None


def test_road_option_void_reads_as_lanefollow_as_in_garage():
    import leaderboard_stand_ins as lb

    assert carla_agent.road_option_to_command(lb.RoadOption.VOID) == COMMAND_STRAIGHT
    assert carla_agent.road_option_to_command(lb.RoadOption.LANEFOLLOW) == COMMAND_STRAIGHT
    assert carla_agent.road_option_to_command(lb.RoadOption.CHANGELANELEFT) == COMMAND_LEFT


# ---- NAVSIM -------------------------------------------------------------------------------------------
def _agent_input(driving_command=(0, 1, 0, 0), velocity=(3.0, 4.0), size=(1080, 1920)):
    rng = np.random.default_rng(1)

    def camera():
        return SimpleNamespace(image=rng.integers(0, 255, size=(*size, 3), dtype=np.uint8))

    cameras = SimpleNamespace(cam_f0=camera(), cam_l0=camera(), cam_r0=camera())
    status = SimpleNamespace(
        ego_pose=np.zeros(3, np.float32),
        ego_velocity=np.asarray(velocity, np.float32),
        ego_acceleration=np.zeros(2, np.float32),
        driving_command=np.asarray(driving_command),
    )
    return SimpleNamespace(
        ego_statuses=[status] * 4, cameras=[cameras] * 4, lidars=[SimpleNamespace(lidar_pc=None)] * 4
    )


def test_navsim_agent_input_to_frame_inputs():
    agent_input = _agent_input(driving_command=(0, 0, 1, 0))
    frame = navsim_agent.frame_inputs_from_agent_input(agent_input, "front")
    assert frame.image_rgb.shape == (1080, 1920, 3)
    assert frame.speed_mps == pytest.approx(5.0)
    assert frame.command == COMMAND_RIGHT and frame.lidar_points_ego is None
    np.testing.assert_allclose(frame.target_point_ego, navsim_agent.DEFAULT_TARGET_POINT_EGO)
    stitched = navsim_agent.frame_inputs_from_agent_input(agent_input, "stitch")
    assert stitched.image_rgb.shape == (1024, 1088 + 1920 + 1088, 3)  # TransFuser's 4:1 stitch
    np.testing.assert_array_equal(stitched.image_rgb[:, 1088:3008], agent_input.cameras[-1].cam_f0.image[28:-28])
    assert navsim_agent.command_from_one_hot([0, 0, 0, 1]) is None
    assert navsim_agent.command_from_one_hot([1, 0, 0, 0]) == COMMAND_LEFT
    with pytest.raises(ValueError, match="one-hot"):
        navsim_agent.command_from_one_hot([1, 0, 0])
    with pytest.raises(ValueError, match="camera mode"):
        navsim_agent.frame_inputs_from_agent_input(agent_input, "surround")


def test_navsim_sensor_config_loads_only_the_needed_cameras():
    fields = navsim_agent.sensor_config_fields("front")
    assert fields["cam_f0"] == [3] and fields["cam_l0"] == [] and fields["lidar_pc"] == []
    assert set(fields) == {"cam_f0", "cam_l0", "cam_l1", "cam_l2", "cam_r0", "cam_r1", "cam_r2", "cam_b0", "lidar_pc"}
    stitch = navsim_agent.sensor_config_fields("stitch")
    assert stitch["cam_l0"] == [3] and stitch["cam_r0"] == [3] and stitch["cam_b0"] == []


def test_navsim_poses_shape_and_headings():
    contract = DEFAULT_CONTRACT  # 8 waypoints every 0.5 s
    straight = np.stack([np.arange(1, 9) * 2.0, np.zeros(8)], axis=-1)
    poses = navsim_agent.waypoints_to_poses(straight, contract)
    assert poses.shape == (8, 3) and poses.dtype == np.float32
    np.testing.assert_allclose(poses[:, :2], straight, atol=1e-6)
    np.testing.assert_allclose(poses[:, 2], 0.0, atol=1e-7)
    # A left arc of radius 10 m: heading of each chord, increasing and positive (left).
    angles = np.linspace(0.1, 0.8, 8)
    arc = np.stack([10 * np.sin(angles), 10 * (1 - np.cos(angles))], axis=-1)
    poses = navsim_agent.waypoints_to_poses(arc, contract)
    previous = np.vstack([np.zeros((1, 2)), arc[:-1]])
    expected = np.arctan2(arc[:, 1] - previous[:, 1], arc[:, 0] - previous[:, 0])
    np.testing.assert_allclose(poses[:, 2], expected, atol=1e-6)
    assert np.all(np.diff(poses[:, 2]) > 0) and poses[-1, 2] > 0
    # Stopping after a right turn keeps the last heading; standing from the start keeps 0.
    stop = np.array([[1, 0], [2, -1], [2, -1], [2, -1], [2, -1], [2, -1], [2, -1], [2, -1]], dtype=np.float64)
    poses = navsim_agent.waypoints_to_poses(stop, contract)
    np.testing.assert_allclose(poses[2:, 2], -math.pi / 4, atol=1e-6)
    np.testing.assert_allclose(navsim_agent.waypoints_to_poses(np.zeros((8, 2)), contract)[:, 2], 0.0)


def test_navsim_poses_resample_other_contracts_and_refuse_short_horizons():
    fine = Contract(num_waypoints=16, waypoint_dt_s=0.25)
    waypoints = np.stack([np.arange(1, 17) * 0.25 * 4.0, np.zeros(16)], axis=-1)  # 4 m/s
    poses = navsim_agent.waypoints_to_poses(waypoints, fine)
    np.testing.assert_allclose(poses[:, 0], np.arange(1, 9) * 2.0, atol=1e-5)
    short = Contract(num_waypoints=4, waypoint_dt_s=0.5)
    with pytest.raises(ValueError, match="4.00 s"):
        navsim_agent.waypoints_to_poses(np.ones((4, 2)), short)
    with pytest.raises(ValueError, match="expected finite"):
        navsim_agent.waypoints_to_poses(np.full((8, 2), np.nan), DEFAULT_CONTRACT)


def test_navsim_agent_class_needs_navsim(monkeypatch):
    for name in ("navsim", "navsim.agents", "navsim.agents.abstract_agent", "navsim.common.dataclasses"):
        monkeypatch.setitem(sys.modules, name, None)  # as on a machine without it: import fails
    monkeypatch.delitem(navsim_agent.__dict__, "Min2RealNavsimAgent", raising=False)
    with pytest.raises(navsim_agent.AgentDependencyError, match="navsim"):
        navsim_agent.Min2RealNavsimAgent  # noqa: B018


def test_navsim_agent_target_point_is_the_contracts_no_route_point():
    # test_data_synthetic checks that NAVSIM training samples carry this same point by default.
    from min2real.contract import NO_ROUTE_TARGET_POINT_EGO

    assert navsim_agent.DEFAULT_TARGET_POINT_EGO == NO_ROUTE_TARGET_POINT_EGO
