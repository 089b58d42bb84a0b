"""Synthetic two-domain generator: determinism, domain consistency, turn signs, and the
generator -> CARLA Garage / NAVSIM layout -> loader round trip."""

from __future__ import annotations

import gzip
import json
from types import SimpleNamespace

import numpy as np
import pytest

from min2real import contract as C
from min2real.contract import TINY_CONTRACT
from min2real.data import CarlaGarageDataset, NavsimDataset
from min2real.data.common import TARGET_POINT_DISTANCE_M
from min2real.data.synthetic import SyntheticDrive, generate_drive, write_synthetic_dataset

SIM_SIZE, REAL_SIZE = (128, 48), (128, 72)
SEED = 11


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(
        out, seed=SEED, frames=48, routes=2, sim_image_size=SIM_SIZE, real_image_size=REAL_SIZE, contract=TINY_CONTRACT
    )
    return out


def _labels(frame):
    return frame.waypoints_ego, frame.target_point_ego, frame.command, frame.steer_class


def test_generate_drive_is_deterministic_per_seed():
    first = list(generate_drive(3, 4, "real", image_size=REAL_SIZE, contract=TINY_CONTRACT))
    again = list(generate_drive(3, 4, "real", image_size=REAL_SIZE, contract=TINY_CONTRACT))
    other = list(generate_drive(4, 4, "real", image_size=REAL_SIZE, contract=TINY_CONTRACT))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.image_rgb, b.image_rgb)
        np.testing.assert_array_equal(a.waypoints_ego, b.waypoints_ego)
        assert a.pose_world == b.pose_world
    assert first[0].pose_world != other[0].pose_world
    assert first[0].image_rgb.shape == (REAL_SIZE[1], REAL_SIZE[0], 3) and first[0].image_rgb.dtype == np.uint8


def test_domains_differ_in_appearance_only():
    # Same seed and duration: the sim drive at 4 Hz and the real one at 2 Hz share every second frame.
    sim = list(generate_drive(5, 8, "sim", image_size=SIM_SIZE, contract=TINY_CONTRACT))
    real = list(generate_drive(5, 4, "real", image_size=SIM_SIZE, contract=TINY_CONTRACT))
    for k, real_frame in enumerate(real):
        sim_frame = sim[2 * k]
        assert sim_frame.timestamp_s == pytest.approx(real_frame.timestamp_s)
        np.testing.assert_allclose(sim_frame.waypoints_ego, real_frame.waypoints_ego, atol=1e-6)
        np.testing.assert_allclose(sim_frame.target_point_ego, real_frame.target_point_ego, atol=1e-6)
        assert (sim_frame.command, sim_frame.steer_class, sim_frame.speed_mps) == (
            real_frame.command,
            real_frame.steer_class,
            real_frame.speed_mps,
        )
        assert np.abs(sim_frame.image_rgb.astype(int) - real_frame.image_rgb.astype(int)).mean() > 5
        assert real_frame.lidar_points_ego is None
        points = sim_frame.lidar_points_ego
        assert points.dtype == np.float32 and points.shape[1] == 4 and len(points) > 1000
    np.testing.assert_array_equal(sim[0].route_world, real[0].route_world)
    spacing = np.linalg.norm(np.diff(sim[0].route_world, axis=0), axis=1)
    np.testing.assert_allclose(spacing, 1.0, atol=0.05)


def test_lidar_sees_roadside_objects_above_the_ground():
    frame = next(generate_drive(2, 1, "sim", image_size=SIM_SIZE, contract=TINY_CONTRACT))
    z = frame.lidar_points_ego[:, 2]
    assert (z < 0.05).mean() > 0.3  # ground returns
    assert (z > 0.5).sum() > 50  # boxes (buildings, trees, cars)
    bev = C.lidar_bev_from_points(frame.lidar_points_ego, TINY_CONTRACT)
    assert 0 < bev.sum() and bev.max() <= 1.0


def test_turns_have_the_contract_signs_in_both_domains():
    drive = SyntheticDrive(SEED, 80 / 2.0, "sim", SIM_SIZE, TINY_CONTRACT, lidar=False)
    frames = [drive.frame(i, 2.0) for i in range(80)]
    classes = np.array([f.steer_class for f in frames])
    assert {C.STEER_LEFT, C.STEER_RIGHT, C.STEER_STRAIGHT} <= set(classes.tolist())
    for frame in frames:
        end_y = frame.waypoints_ego[-1, 1]
        if frame.steer_class == C.STEER_LEFT:
            assert end_y > 1.0
        elif frame.steer_class == C.STEER_RIGHT:
            assert end_y < -1.0
    left_frames = [f for f in frames if f.steer_class == C.STEER_LEFT and f.road_option == 1]
    assert left_frames and all(f.command == C.COMMAND_LEFT for f in left_frames)


def test_commands_and_targets_are_what_the_driver_derives_and_agree_with_the_labels():
    """The target point and the command of every frame are the driver node's (runtime RoutePlanner
    over the dense route: Garage's plan and commands), so the model trains on what the vehicle
    feeds it; and they agree with the steering labels: no frame turning one way carries the other
    command, and most frames whose future turns into a junction's manoeuvre carry its command.
    (Garage's command is the previous target point's: it can switch a few metres after the 4 s
    label has turned, and back to straight before a left turn's last metres.)"""
    from min2real.runtime.route import RoutePlanner

    counts = {"junction_turn_frames": 0, "command_matches": 0, "contradictions": 0}
    for seed in range(6):
        drive = SyntheticDrive((seed, 7), 40.0, "sim", (64, 32), TINY_CONTRACT, lidar=False, first_turn="left")
        route = drive.route
        planner = RoutePlanner()
        planner.set_dense_route(drive.route_world_xy)
        for index in range(160):
            frame = drive.frame(index, 4.0)
            step = planner.step(np.asarray(frame.pose_world[:2]), frame.pose_world[2])
            np.testing.assert_allclose(frame.target_point_ego, step.target_point_ego, atol=1e-5)
            assert frame.command == step.command
            s_now = float(route.s_at(frame.timestamp_s))
            travel = float(np.linalg.norm(frame.waypoints_ego[-1]))
            label = C.STEER_CLASSES[frame.steer_class]
            command = C.COMMANDS[frame.command]
            if {label, command} == {"left", "right"}:
                counts["contradictions"] += 1
            for junction in route.intersections:
                s_start, s_end = route.path_s[junction.index_start], route.path_s[junction.index_end]
                if junction.kind == label and s_now <= s_end and s_now + travel >= s_start:
                    counts["junction_turn_frames"] += 1
                    counts["command_matches"] += command == label
    assert counts["junction_turn_frames"] > 50
    assert counts["command_matches"] >= 0.85 * counts["junction_turn_frames"], counts
    assert counts["contradictions"] == 0, counts


def test_drives_start_from_rest_and_paint_stop_lines_where_they_stop():
    from min2real.data.synthetic.drive import stop_lines_world

    drive = SyntheticDrive((3, 7), 20.0, "sim", (64, 32), TINY_CONTRACT, lidar=False)
    assert drive.frame(0, 4.0).speed_mps < 1.0 < drive.frame(16, 4.0).speed_mps  # standing, then moving
    stops = [junction for junction in drive.route.intersections if junction.stop_dwell_s > 0]
    assert len(stop_lines_world(drive.route)) == len(stops)


def test_writer_records_garage_augmented_views(dataset_dir):
    """rgb_augmented/ with Garage's ranges (+-1 m, +-5 deg); the loader moves the labels into that camera."""
    from min2real.data.carla_garage import to_augmented_view
    from min2real.data.synthetic.drive import AUGMENTATION_ROTATION_DEG, AUGMENTATION_TRANSLATION_M

    route = dataset_dir / "carla" / "synthetic" / "route_000"
    translations, rotations = [], []
    for path in sorted((route / "measurements").glob("*.json.gz"))[:12]:
        with gzip.open(path, "rt") as handle:
            measurement = json.load(handle)
        translations.append(measurement["augmentation_translation"])
        rotations.append(measurement["augmentation_rotation"])
        assert (route / "rgb_augmented" / path.name.replace(".json.gz", ".jpg")).is_file()
    assert max(map(abs, translations)) <= AUGMENTATION_TRANSLATION_M and max(map(abs, rotations)) <= 5.0
    assert np.std(translations) > 0.2 and np.std(rotations) > 1.0 and AUGMENTATION_ROTATION_DEG == 5.0
    plain = CarlaGarageDataset([route], TINY_CONTRACT)
    shifted = CarlaGarageDataset([route], TINY_CONTRACT, augmented_view_probability=1.0)
    for index in (0, 5):
        a, b = plain[index], shifted[index]
        frame = int(plain.samples[index, 1])
        np.testing.assert_allclose(
            b[C.TARGET_WAYPOINTS],
            to_augmented_view(a[C.TARGET_WAYPOINTS], translations[frame], rotations[frame]),
            atol=1e-4,
        )
        assert np.abs(a[C.INPUT_IMAGE].astype(int) - b[C.INPUT_IMAGE].astype(int)).mean() > 2


def test_writer_produces_both_layouts(dataset_dir):
    route = dataset_dir / "carla" / "synthetic" / "route_000"
    assert (route / "rgb" / "0000.jpg").is_file() and (route / "lidar" / "0000.laz").is_file()
    with gzip.open(route / "results.json.gz", "rt") as handle:
        assert json.load(handle)["scores"]["score_composed"] == 100.0
    with gzip.open(route / "measurements" / "0000.json.gz", "rt") as handle:
        measurement = json.load(handle)
    assert np.asarray(measurement["ego_matrix"]).shape == (4, 4)
    assert measurement["command"] in (1, 2, 3, 4)
    assert (dataset_dir / "navsim" / "navsim_logs" / "trainval" / "synthetic_000.pkl").is_file()
    assert any((dataset_dir / "navsim" / "sensor_blobs" / "trainval" / "synthetic_000" / "CAM_F0").glob("*.jpg"))
    summary = json.loads((dataset_dir / "synthetic.json").read_text())
    assert summary["domains"]["sim"]["labelled_frames"] == 48


def test_carla_round_trip_matches_generator_labels(dataset_dir):
    dataset = CarlaGarageDataset([dataset_dir / "carla"], TINY_CONTRACT)
    assert len(dataset) >= 48 and dataset.stats["routes_used"] == 2 and not dataset.index_problems.total
    drive = SyntheticDrive((SEED, C.DOMAIN_SIM, 0), 24 / 4.0, "sim", SIM_SIZE, TINY_CONTRACT, first_turn="left")
    for index in (0, 7, 15):
        route_index, frame_number = dataset.samples[index]
        assert route_index == 0 and frame_number == index
        sample, frame = dataset[index], drive.frame(index, 4.0)
        assert sample["image"].shape == (3, TINY_CONTRACT.camera_height, TINY_CONTRACT.camera_width)
        assert sample["domain"] == C.DOMAIN_SIM and sample["has_labels"]
        np.testing.assert_allclose(sample["waypoints"], frame.waypoints_ego, atol=1e-4)
        np.testing.assert_allclose(sample["target_point"], frame.target_point_ego, atol=1e-4)
        assert int(np.argmax(sample["command"])) == frame.command
        assert int(sample["steer_class"]) == frame.steer_class
        assert sample["speed"][0] == pytest.approx(frame.speed_mps, abs=1e-4)
        expected_bev = C.lidar_bev_from_points(frame.lidar_points_ego, TINY_CONTRACT)
        assert (
            np.abs(sample["lidar_bev"] - expected_bev).sum() <= 0.02 * expected_bev.sum() + 1.0
        )  # 1 mm LAZ quantisation
        expected_image = C.prepare_camera_rgb(frame.image_rgb, TINY_CONTRACT).transpose(2, 0, 1)
        assert np.abs(sample["image"].astype(int) - expected_image.astype(int)).mean() < 6  # JPEG


def test_navsim_round_trip_matches_generator_labels(dataset_dir):
    dataset = NavsimDataset(dataset_dir / "navsim", "trainval", TINY_CONTRACT, target_point="future_path")
    assert len(dataset) >= 48 and dataset.stats["logs_used"] == 2
    drive = SyntheticDrive((SEED, C.DOMAIN_REAL, 0), 24 / 2.0, "real", REAL_SIZE, TINY_CONTRACT, first_turn="left")
    for index in (0, 9, 19):
        sample, frame = dataset[index], drive.frame(index, 2.0)
        assert sample["domain"] == C.DOMAIN_REAL and not sample["lidar_bev"].any()
        np.testing.assert_allclose(sample["waypoints"], frame.waypoints_ego, atol=1e-3)
        # future_path: the logged path 30 m ahead (the loader walks the 2 Hz poses' chords, here the
        # exact route); the generator's own target point is the driver's (RoutePlanner), not this one.
        s_ahead = float(drive.route.s_at(frame.timestamp_s)) + TARGET_POINT_DISTANCE_M
        ahead_world, _ = drive.route.pose_at_s(s_ahead)
        expected = C.world_to_ego_xy(ahead_world[None], np.asarray(frame.pose_world[:2]), frame.pose_world[2])[0]
        np.testing.assert_allclose(sample["target_point"], expected, atol=1.5)
        assert int(np.argmax(sample["command"])) == frame.command
        assert int(sample["steer_class"]) == frame.steer_class


def test_navsim_target_point_modes(dataset_dir):
    default = NavsimDataset(dataset_dir / "navsim", "trainval", TINY_CONTRACT)
    targets = np.stack([default[i]["target_point"] for i in range(len(default))])
    np.testing.assert_allclose(
        targets, np.tile(C.NO_ROUTE_TARGET_POINT_EGO, (len(default), 1))
    )  # what the NAVSIM agent gets
    routed = NavsimDataset(dataset_dir / "navsim", "trainval", TINY_CONTRACT, target_point="future_path")
    samples = [routed[i] for i in range(len(routed))]
    left = [s["target_point"][1] for s in samples if s["steer_class"] == C.STEER_LEFT]
    right = [s["target_point"][1] for s in samples if s["steer_class"] == C.STEER_RIGHT]
    assert np.mean(left) > 1.0 and np.mean(right) < -1.0  # the logged path bends with the turn
    with pytest.raises(ValueError, match="target_point 'route'"):
        NavsimDataset(dataset_dir / "navsim", "trainval", TINY_CONTRACT, target_point="route")


def test_left_turn_loaded_from_both_layouts(dataset_dir):
    sim = CarlaGarageDataset([dataset_dir / "carla"], TINY_CONTRACT)
    real = NavsimDataset(dataset_dir / "navsim", "trainval", TINY_CONTRACT)
    for dataset in (sim, real):
        samples = [dataset[i] for i in range(len(dataset))]
        left = [s for s in samples if s["steer_class"] == C.STEER_LEFT]
        right = [s for s in samples if s["steer_class"] == C.STEER_RIGHT]
        assert left and right, f"{dataset.domain}: expected left and right turns in the synthetic routes"
        assert all(s["waypoints"][-1, 1] > 0 for s in left)
        assert all(s["waypoints"][-1, 1] < 0 for s in right)
    # CARLA's own sign convention in the written measurements: a left turn steers negative.
    route = sim.route_dirs[0]
    steers = []
    for index in range(len(sim)):
        route_index, frame_number = sim.samples[index]
        if sim.route_dirs[route_index] != route:
            continue
        sample = sim[index]
        if sample["steer_class"] == C.STEER_LEFT:
            with gzip.open(f"{route}/measurements/{frame_number:04d}.json.gz", "rt") as handle:
                measurement = json.load(handle)
            assert measurement["target_point"][1] < 0  # CARLA: y right
            steers.append(measurement["steer"])
    assert steers and max(steers) <= 1e-9 and min(steers) < -0.05  # CARLA: positive steer = right


def test_drives_past_a_parked_car_swerve_round_it_as_closed_loop_routes_do(tmp_path):
    """A training drive with a parked car: the car is in the ego lane, the drive (poses, labels and
    the driver's dense route) passes it in the oncoming lane, the LiDAR sees it, and the drive is the
    plain one everywhere the swerve does not reach."""
    from min2real.data.synthetic.geometry import LANE_WIDTH_M
    from min2real.data.synthetic.scenario import OBSTACLE_HALF_SIZE_M

    seed, duration_s = (3, 0, 3), 30.0
    plain = SyntheticDrive(seed, duration_s, "sim", (256, 96), TINY_CONTRACT)
    parked = SyntheticDrive(seed, duration_s, "sim", (256, 96), TINY_CONTRACT, obstacle=True)
    assert plain.obstacle is None and parked.obstacle is not None
    car = parked.obstacle
    s = np.arange(0.0, float(parked.route.s_at(duration_s)), 0.5)
    xy, _ = parked.route.pose_at_s(s)
    distance = np.linalg.norm(xy - car.centre_xy, axis=1)
    assert distance.min() > OBSTACLE_HALF_SIZE_M[1] + 1.0  # passes clear of the car's side
    assert distance.min() == pytest.approx(LANE_WIDTH_M, abs=0.3)  # one lane over
    far = np.abs(s - car.s_m) > 40.0
    np.testing.assert_allclose(xy[far], plain.route.pose_at_s(s[far])[0], atol=1e-9)
    # The label 20 m before the car bends left (REP 103: +y), where the plain drive's goes straight.
    index = int(np.argmin(np.abs(parked.route.s_at(np.arange(121) / 4.0) - (car.s_m - 20.0))))
    lateral = parked.frame(index, 4.0).waypoints_ego[:4, 1] - plain.frame(index, 4.0).waypoints_ego[:4, 1]
    assert lateral.max() > 1.0
    # The car is an object of the world: LiDAR returns on it when it is just ahead.
    frame = parked.frame(index, 4.0)
    x, y, yaw = frame.pose_world
    offset = car.centre_xy - np.array([x, y])
    car_ego = np.array(  # the car's centre in the ego frame (x forward, y left)
        [np.cos(yaw) * offset[0] + np.sin(yaw) * offset[1], -np.sin(yaw) * offset[0] + np.cos(yaw) * offset[1]]
    )
    assert 10.0 < car_ego[0] < 30.0 and car_ego[1] < -LANE_WIDTH_M / 2  # ahead, on the right: we swerved
    points = frame.lidar_points_ego
    on_car = np.linalg.norm(points[:, :2] - car_ego, axis=1) < 2.5
    assert np.count_nonzero(on_car & (points[:, 2] > 0.3)) > 10


def test_writer_spreads_parked_cars_over_the_share_of_routes(tmp_path):
    summary = write_synthetic_dataset(
        tmp_path, seed=3, frames=480, routes=4, domains=("real",), contract=TINY_CONTRACT, obstacle_share=0.5
    )
    assert summary["obstacle_share"] == 0.5
    assert summary["domains"]["real"]["routes_with_parked_car"] == 2  # routes 1 and 3
    with pytest.raises(ValueError, match="obstacle_share"):
        write_synthetic_dataset(tmp_path / "bad", frames=4, routes=1, obstacle_share=1.5)


class _StalledTiming:
    """The ego's progress of a drive whose expert stood blocked from `stall_s` until the judge
    ended the route at `end_s` (the failure that crashed the writer on seed 20's real route 31)."""

    def __init__(self, timing, stall_s: float, end_s: float) -> None:
        self.inner, self.stall_s, self.duration_s = timing, stall_s, end_s

    def s_at(self, time_s):
        return self.inner.s_at(np.minimum(np.asarray(time_s, dtype=np.float64), self.stall_s))

    def speed_at(self, time_s: float) -> float:
        return self.inner.speed_at(time_s) if time_s < self.stall_s else 0.0


def _stalled_drive(seed, duration_s, domain, size, contract, stall_s, first_turn="left"):
    drive = SyntheticDrive(seed, duration_s, domain, size, contract, first_turn=first_turn)
    drive.timing = _StalledTiming(drive.timing, stall_s, end_s=duration_s)
    return drive


def test_labellable_frames_stop_where_a_stalled_drive_has_no_future():
    drive = _stalled_drive((SEED, C.DOMAIN_REAL, 0), 12.0, "real", REAL_SIZE, TINY_CONTRACT, stall_s=7.0)
    rate = 2.0
    usable = drive.labellable_frames(24, rate)
    assert 0 < usable < 24
    assert drive.frames_with_tail(usable, rate) > usable  # the last usable frame has its horizon and target point
    with pytest.raises(RuntimeError, match="cannot all be labelled"):
        drive.frames_with_tail(usable + 1, rate)
    # the last labelled frame lies a target-point distance (plus its margin) before where the drive stalled
    s_stall = float(drive.timing.s_at(7.0))
    assert float(drive.timing.s_at((usable - 1) / rate)) <= s_stall - TARGET_POINT_DISTANCE_M - 1.0
    whole = SyntheticDrive((SEED, C.DOMAIN_REAL, 0), 12.0, "real", REAL_SIZE, TINY_CONTRACT, first_turn="left")
    assert whole.labellable_frames(24, rate) == 24


def test_writer_cuts_short_a_route_whose_expert_drive_ended_early(tmp_path):
    def factory(seed, duration_s, traffic, domain, size, contract, cameras, lidar, condition, obstacle, first_turn):
        blocked = seed[2] == 1
        stall_s = 0.8 * duration_s if blocked else duration_s + 3 * contract.horizon_s
        drive = _stalled_drive(seed, duration_s + 3 * contract.horizon_s, domain, size, contract, stall_s, first_turn)
        drive.recording = SimpleNamespace(driving_score=17.1 if blocked else 100.0)  # what the writer reads of it
        return drive

    summary = write_synthetic_dataset(
        tmp_path, seed=SEED, frames=96, routes=2, sim_image_size=SIM_SIZE, real_image_size=REAL_SIZE,
        contract=TINY_CONTRACT, traffic=1.0, traffic_drive=factory,
    )  # fmt: skip
    for domain in ("sim", "real"):
        info = summary["domains"][domain]
        [cut] = info["routes_cut_short"]
        assert cut["route"] == 1 and cut["requested"] == 48 and 0 < cut["labelled"] < 48
        assert info["labelled_frames"] == 48 + cut["labelled"]
    sim = CarlaGarageDataset([tmp_path / "carla"], TINY_CONTRACT)
    real = NavsimDataset(tmp_path / "navsim", "trainval", TINY_CONTRACT)
    # Garage's loader keeps the expert's perfect routes only; NAVSIM has no score: both logs load, every
    # frame the writer labelled among them (the loader's own future check may find one more)
    assert sim.stats["routes_used"] == 1 and sim.stats["routes_imperfect"] == 1 and not sim.index_problems.total
    assert real.stats["logs_used"] == 2 and len(real) >= summary["domains"]["real"]["labelled_frames"]
