"""Loaders on broken data: corrupt files are skipped and counted (also through DataLoader
workers), malicious pickles are refused, CARLA route scores filter routes, `data check` reports."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pickle
import shutil

import numpy as np
import pytest

from min2real.cli import data as data_command
from min2real.contract import TINY_CONTRACT
from min2real.data import (
    CarlaGarageDataset,
    DataProblem,
    DataProblems,
    NavsimDataset,
    UnsafePickleError,
    collate_samples,
    load_navsim_log,
)
from min2real.data.navsim import read_pcd_xyz
from min2real.data.synthetic import write_pcd, write_synthetic_dataset


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    write_synthetic_dataset(
        out, seed=4, frames=24, routes=2, sim_image_size=(128, 48), real_image_size=(128, 72), contract=TINY_CONTRACT
    )
    return out


@pytest.fixture
def broken_dir(clean_dir, tmp_path):
    out = tmp_path / "broken"
    shutil.copytree(clean_dir, out)
    return out


def _route(root, index=0):
    return root / "carla" / "synthetic" / f"route_{index:03d}"


class _Malicious:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_pickle",))


def _run_check(path, *extra):
    parser = argparse.ArgumentParser()
    data_command.add_arguments(parser)
    return data_command.run(parser.parse_args(["check", str(path), "--contract", "tiny", *extra]))


def test_corrupt_carla_files_are_skipped_and_counted_through_workers(broken_dir):
    from torch.utils.data import DataLoader

    route = _route(broken_dir)
    clean_len = len(CarlaGarageDataset([broken_dir / "carla"], TINY_CONTRACT))
    jpeg = route / "rgb" / "0001.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[: len(jpeg.read_bytes()) // 2])  # truncated JPEG
    (route / "lidar" / "0003.laz").write_bytes(b"LASF" + b"\0" * 300)  # corrupt .laz
    (route / "measurements" / "0012.json.gz").write_bytes(gzip.compress(b"{not json"))  # bad JSON
    (route / "rgb" / "0005.jpg").unlink()  # missing frame
    dataset = CarlaGarageDataset([broken_dir / "carla"], TINY_CONTRACT)
    assert dataset.index_problems.counts_by_kind() == {"missing_file": 1}
    assert len(dataset) == clean_len - 1
    # A bad measurement breaks its own frame and every frame that takes a future pose from it.
    stride, horizon = dataset.frame_stride, dataset.frame_stride * TINY_CONTRACT.num_waypoints
    frames = dataset.samples[dataset.samples[:, 0] == 0, 1]
    expected_bad_json = int(np.sum((frames <= 12) & (frames + horizon >= 12) & ((12 - frames) % stride == 0)))
    assert expected_bad_json >= 2

    # Reading a .laz in the parent before the workers fork must not deadlock them (a parallel
    # LAZ backend's thread pool does); the timeout turns a hang into a failure.
    assert isinstance(dataset[len(dataset) - 1], dict)
    loader = DataLoader(dataset, batch_size=4, collate_fn=collate_samples, num_workers=2, timeout=120)
    problems, good = DataProblems(), 0
    for batch in loader:
        problems.update_from_batch(batch)
        good += batch["image"].shape[0] if "image" in batch else 0
    assert problems.counts_by_kind() == {"bad_image": 1, "bad_json": expected_bad_json, "bad_lidar": 1}
    assert good == len(dataset) - problems.total
    assert "bad_lidar 1" in problems.summary() and "0003.laz" in problems.summary()


def test_broken_samples_are_dropped_from_a_batch(broken_dir):
    route = _route(broken_dir)
    (route / "rgb" / "0000.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    dataset = CarlaGarageDataset([broken_dir / "carla"], TINY_CONTRACT)
    batch = collate_samples([dataset[0], dataset[1], dataset[2]])
    assert batch["image"].shape[0] == 2
    assert [p.kind for p in batch["problems"]] == ["bad_image"]
    assert dataset.problems.total == 1


def test_route_score_filter(broken_dir):
    with gzip.open(_route(broken_dir, 0) / "results.json.gz", "wt") as handle:
        json.dump({"scores": {"score_composed": 71.5}}, handle)
    (_route(broken_dir, 1) / "results.json.gz").unlink()  # crashed route
    perfect_only = CarlaGarageDataset([broken_dir / "carla"], TINY_CONTRACT)
    assert len(perfect_only) == 0
    assert perfect_only.stats["routes_imperfect"] == 1 and perfect_only.stats["routes_crashed"] == 1
    everything = CarlaGarageDataset(
        [broken_dir / "carla"], TINY_CONTRACT, require_perfect_score=False, skip_crashed_routes=False
    )
    assert everything.stats["routes_used"] == 2 and len(everything) > 0


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([{"token": "a", "payload": _Malicious()}]))
    with pytest.raises(UnsafePickleError, match=r"refused global '(posix|os|nt)\.system'"):
        load_navsim_log(path)
    assert not (tmp_path / "pwned_by_pickle").exists()


def test_navsim_log_with_numpy_arrays_loads():
    frames = [
        {
            "token": "t",
            "ego2global_translation": np.arange(3.0),
            "cams": {"CAM_F0": {"data_path": "x.jpg"}},
            "driving_command": np.array([0, 1, 0, 0]),
            "anns": {"gt_names": np.array(["car"])},
        }
    ]
    for protocol in (2, 4, 5):
        from min2real.data.safe_pickle import safe_loads

        loaded = safe_loads(pickle.dumps(frames, protocol=protocol))
        np.testing.assert_array_equal(loaded[0]["ego2global_translation"], np.arange(3.0))
        assert loaded[0]["anns"]["gt_names"][0] == "car"


def test_navsim_skips_refused_logs_and_broken_images(broken_dir):
    navsim = broken_dir / "navsim"
    logs = navsim / "navsim_logs" / "trainval"
    (logs / "synthetic_001.pkl").write_bytes(pickle.dumps([{"token": _Malicious()}]))
    (logs / "synthetic_002.pkl").write_bytes(b"\x80\x04truncated")
    dataset = NavsimDataset(navsim, "trainval", TINY_CONTRACT)
    assert dataset.index_problems.counts_by_kind() == {"bad_log": 1, "unsafe_pickle": 1}
    assert dataset.stats["logs_used"] == 1 and len(dataset) > 0
    first_image = navsim / "sensor_blobs" / "trainval" / dataset.image_paths[0, 0].decode()
    first_image.write_bytes(first_image.read_bytes()[:200])
    result = dataset[0]
    assert isinstance(result, DataProblem) and result.kind == "bad_image"
    assert isinstance(dataset[1], dict)


def test_navsim_optional_lidar_and_stitch(tmp_path):
    write_synthetic_dataset(
        tmp_path,
        seed=6,
        frames=4,
        routes=1,
        real_image_size=(192, 108),
        domains=("real",),
        real_cameras=("CAM_F0", "CAM_L0", "CAM_R0"),
        real_lidar=True,
        contract=TINY_CONTRACT,
    )
    zeroed = NavsimDataset(tmp_path / "navsim", "trainval", TINY_CONTRACT)
    with_lidar = NavsimDataset(tmp_path / "navsim", "trainval", TINY_CONTRACT, camera="stitch", use_lidar=True)
    assert not zeroed[0]["lidar_bev"].any()
    assert with_lidar[0]["lidar_bev"].sum() > 1.0
    assert with_lidar[0]["image"].shape == zeroed[0]["image"].shape == (3, 96, 256)
    assert np.abs(with_lidar[0]["image"].astype(int) - zeroed[0]["image"].astype(int)).mean() > 3  # a panorama


def test_pcd_reader_binary_and_ascii(tmp_path):
    points = np.array([[1.0, 2.0, 3.0, 0.5], [-4.0, 5.5, 0.25, 1.0]], dtype=np.float32)
    write_pcd(tmp_path / "a.pcd", points)
    np.testing.assert_allclose(read_pcd_xyz(tmp_path / "a.pcd"), points[:, :3])
    (tmp_path / "b.pcd").write_text(
        "VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\nHEIGHT 1\n"
        "POINTS 2\nDATA ascii\n1 2 3\n-4 5.5 0.25\n"
    )
    np.testing.assert_allclose(read_pcd_xyz(tmp_path / "b.pcd"), points[:, :3])


def test_data_check_reports_counts_labels_and_problems(clean_dir, broken_dir, capsys):
    assert _run_check(clean_dir) == 0
    report = capsys.readouterr().out
    assert "sim  (CARLA Garage): 2 routes" in report and "real (NAVSIM trainval" in report
    assert "steer straight" in report and "left" in report and "data problems: none" in report
    jpeg = _route(broken_dir) / "rgb" / "0002.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:100])
    assert _run_check(broken_dir) == 1
    report = capsys.readouterr().out
    assert "bad_image 1" in report and "0002.jpg" in report
    assert _run_check(broken_dir / "carla" / "synthetic" / "route_000" / "rgb") == 2


# ---- NAVSIM: what the navtrain download and the devkit's scene filters look like -------------------
def _write_navsim_log(root, log_name, positions_xy, split="trainval", image_hw=(36, 64)):
    """A log in OpenScene's pickle format: one frame dict per 0.5 s at `positions_xy` (heading +x),
    with a CAM_F0 image per frame under sensor_blobs/<split>/<log>/CAM_F0/<image token>.jpg (the
    image name is the camera's own token, not the frame token, as in OpenScene)."""
    from min2real.data.common import write_image_rgb

    rng = np.random.default_rng(len(log_name))
    (root / "navsim_logs" / split).mkdir(parents=True, exist_ok=True)
    frames = []
    for index, (x, y) in enumerate(positions_xy):
        data_path = f"{log_name}/CAM_F0/img{index:03d}{log_name[-4:]}.jpg"
        image_path = root / "sensor_blobs" / split / data_path
        image_path.parent.mkdir(parents=True, exist_ok=True)
        write_image_rgb(image_path, rng.integers(0, 255, (*image_hw, 3), dtype=np.uint8))
        frames.append(
            {
                "token": f"{log_name}-tok{index:03d}",
                "timestamp": 1_600_000_000_000_000 + index * 500_000,
                "log_name": log_name,
                "ego2global_translation": np.array([x, y, 0.0]),
                "ego2global_rotation": np.array([1.0, 0.0, 0.0, 0.0]),
                "ego_dynamic_state": [3.0, 0.0, 0.0, 0.0],
                "driving_command": np.array([0, 1, 0, 0]),
                "cams": {"CAM_F0": {"data_path": data_path, "cam_intrinsic": np.eye(3), "distortion": np.zeros(5)}},
                "lidar_path": f"{log_name}/MergedPointCloud/{index:03d}.pcd",
                "roadblock_ids": [],
            }
        )
    with (root / "navsim_logs" / split / f"{log_name}.pkl").open("wb") as handle:
        pickle.dump(frames, handle, protocol=4)
    return frames


def test_navsim_indexes_only_frames_whose_images_were_downloaded(tmp_path, caplog):
    # navtrain ships every trainval log but sensor blobs only for navtrain frames: 13 frames
    # logged, images for 4 of them (and none of a second log).
    frames = _write_navsim_log(tmp_path, "2021.05.12.22.00.38_veh-35_01008_01518", [(3.0 * i, 0.0) for i in range(13)])
    _write_navsim_log(tmp_path, "2021.06.07.12.54.00_veh-35_01843_02314", [(0.0, 3.0 * i) for i in range(10)])
    blobs = tmp_path / "sensor_blobs" / "trainval"
    kept = {0, 2, 4, 12}
    for index, frame in enumerate(frames):
        if index not in kept:
            (blobs / frame["cams"]["CAM_F0"]["data_path"]).unlink()
    shutil.rmtree(blobs / "2021.06.07.12.54.00_veh-35_01843_02314")
    with caplog.at_level("WARNING", logger="min2real.data"):
        dataset = NavsimDataset(tmp_path, "trainval", TINY_CONTRACT)
    # 0, 2 and 4 have images and a full 4 s horizon (8 frames ahead); 12 has images but no future.
    assert len(dataset) == 3
    assert dataset.stats["frames"] == 23 and dataset.stats["frames_without_sensors"] == 9 + 10
    assert dataset.stats["frames_without_future"] == 1 and dataset.stats["logs_used"] == 1
    assert all(isinstance(dataset[i], dict) for i in range(len(dataset)))  # nothing found missing on read
    assert (
        "3 samples from 23 frames" in caplog.text and "dropped 19 frames whose camera images are missing" in caplog.text
    )


NAVSIM_SCENE_FILTER_YAML = """\
_target_: navsim.common.dataclasses.SceneFilter
_convert_: 'all'
num_history_frames: 4
num_future_frames: 10
frame_interval: 1
has_route: true
max_scenes: null
log_names:
  - '2021.05.12.22.00.38_veh-35_01008_01518'
tokens:
  - '2021.05.12.22.00.38_veh-35_01008_01518-tok001'
  - '2021.05.12.22.00.38_veh-35_01008_01518-tok003'
  - '2021.06.07.12.54.00_veh-35_01843_02314-tok000'
"""


def test_navsim_scene_filter_from_the_devkit_yaml(tmp_path):
    from min2real.data.navsim import SceneFilter, load_scene_filter

    for name, offset in (
        ("2021.05.12.22.00.38_veh-35_01008_01518", 0.0),
        ("2021.06.07.12.54.00_veh-35_01843_02314", 50.0),
    ):
        _write_navsim_log(tmp_path / "data", name, [(3.0 * i, offset) for i in range(12)])
    # The devkit's layout: train_test_split/<split>.yaml names scene_filter/<split>.yaml in its defaults.
    split_dir = tmp_path / "train_test_split"
    (split_dir / "scene_filter").mkdir(parents=True)
    (split_dir / "scene_filter" / "navtrain.yaml").write_text(NAVSIM_SCENE_FILTER_YAML)
    (split_dir / "navtrain.yaml").write_text("defaults:\n  - scene_filter: navtrain\n\ndata_split: trainval\n")
    scene_filter = load_scene_filter(split_dir / "navtrain.yaml")
    assert scene_filter == load_scene_filter(split_dir / "scene_filter" / "navtrain.yaml")
    assert scene_filter.log_names == ["2021.05.12.22.00.38_veh-35_01008_01518"] and len(scene_filter.tokens) == 3

    dataset = NavsimDataset(tmp_path / "data", "trainval", TINY_CONTRACT, scene_filter=scene_filter)
    assert len(dataset) == 2  # tok001 and tok003 of the kept log; the other log is filtered out
    assert dataset.stats["logs_filtered"] == 1 and dataset.stats["frames_filtered"] == 10
    assert [round(float(x), 3) for x in dataset.waypoints[:, -1, 0]] == [24.0, 24.0]  # 8 frames x 3 m
    only_tokens = NavsimDataset(
        tmp_path / "data", "trainval", TINY_CONTRACT, scene_filter=SceneFilter(tokens=scene_filter.tokens)
    )
    assert len(only_tokens) == 3 and only_tokens.stats["logs_filtered"] == 0

    all_scenes = tmp_path / "all_scenes.yaml"
    all_scenes.write_text("num_history_frames: 4\nlog_names: null # all logs\ntokens: null\n")
    assert load_scene_filter(all_scenes) == SceneFilter()
    (tmp_path / "bad.yaml").write_text("log_names: 2021.05.12\n")
    with pytest.raises(ValueError, match=r"bad.yaml: SceneFilter.log_names is '2021.05.12'; expected a list"):
        load_scene_filter(tmp_path / "bad.yaml")
    (tmp_path / "other.yaml").write_text("num_history_frames: 4\n")
    with pytest.raises(ValueError, match="neither log_names nor tokens"):
        load_scene_filter(tmp_path / "other.yaml")


def test_navsim_straight_ahead_mode_keeps_a_full_horizon_short_of_30m(tmp_path):
    # 3 m/s: the 4 s horizon covers 12 m, far short of the 30 m a route-like target needs.
    _write_navsim_log(tmp_path, "slow", [(1.5 * i, 0.0) for i in range(12)])
    straight_ahead = NavsimDataset(tmp_path, "trainval", TINY_CONTRACT)
    assert len(straight_ahead) == 4 and straight_ahead.stats["frames_without_future"] == 8
    np.testing.assert_allclose(straight_ahead.waypoints[0, :, 0], 1.5 * np.arange(1, 9), atol=1e-5)
    future_path = NavsimDataset(tmp_path, "trainval", TINY_CONTRACT, target_point="future_path")
    assert len(future_path) == 0 and future_path.stats["frames_without_future"] == 12
    assert "short of the waypoint horizon or target distance" in future_path.describe()


# ---- CARLA Garage: augmented views and the 2.5 s skip ----------------------------------------------
def _add_garage_augmented_views(route, translation_m, rotation_deg):
    """Turn a route folder into what Garage's data_agent records with augmentation: per frame an
    augmentation_translation / augmentation_rotation in the measurement and an rgb_augmented/
    image (here the plain image inverted, so a test can tell which camera was read)."""
    import cv2

    (route / "rgb_augmented").mkdir(exist_ok=True)  # the synthetic writer records one too; replaced here
    for path in sorted((route / "measurements").glob("*.json.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            measurement = json.load(handle)
        frame = int(path.name.split(".")[0])
        measurement["augmentation_translation"] = translation_m[frame % len(translation_m)]
        measurement["augmentation_rotation"] = rotation_deg[frame % len(rotation_deg)]
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            json.dump(measurement, handle)
        image = cv2.imread(str(route / "rgb" / f"{frame:04d}.jpg"))
        cv2.imwrite(str(route / "rgb_augmented" / f"{frame:04d}.jpg"), 255 - image)


def _garage_augmented_labels(route, frame, stride, num_waypoints):
    """Garage's own arithmetic (data.py get_waypoints, augment_target_point, align) in CARLA axes
    (x forward, y right), then y flipped for REP 103: the reference the loader must match."""
    import laspy

    def measurement(f):
        with gzip.open(route / "measurements" / f"{f:04d}.json.gz", "rt", encoding="utf-8") as handle:
            return json.load(handle)

    current = measurement(frame)
    t, yaw = current["augmentation_translation"], np.deg2rad(current["augmentation_rotation"])
    rotation = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    origin = np.array(current["ego_matrix"])[:3]
    waypoints = []
    for k in range(1, num_waypoints + 1):
        position = np.array(measurement(frame + k * stride)["ego_matrix"])[:3, 3]
        ego = origin[:, :3].T @ (position - origin[:, 3])
        waypoints.append(rotation.T @ (ego[:2] - np.array([0.0, t])))
    target = rotation.T @ (np.array(current["target_point"]) - np.array([0.0, t]))
    lidar = np.asarray(laspy.read(str(route / "lidar" / f"{frame:04d}.laz")).xyz)
    rotation_3d = np.eye(3)
    rotation_3d[:2, :2] = rotation
    lidar = (rotation_3d.T @ (lidar - np.array([0.0, t, 0.0])).T).T
    flip = np.array([1.0, -1.0])
    return np.array(waypoints) * flip, target * flip, lidar * np.array([1.0, -1.0, 1.0])


def test_garage_augmented_views_move_every_label_into_the_shifted_camera(broken_dir):
    from min2real import contract as C

    route = _route(broken_dir)
    _add_garage_augmented_views(route, translation_m=[0.8, -0.6, 1.0], rotation_deg=[-4.0, 5.0, 2.5])
    plain = CarlaGarageDataset([route], TINY_CONTRACT)
    augmented = CarlaGarageDataset([route], TINY_CONTRACT, augmented_view_probability=1.0)
    assert len(augmented) == len(plain) > 3
    for index in (0, 1, 2):
        frame = int(augmented.samples[index, 1])
        waypoints, target, lidar = _garage_augmented_labels(
            route, frame, augmented.frame_stride, TINY_CONTRACT.num_waypoints
        )
        sample, original = augmented[index], plain[index]
        np.testing.assert_allclose(sample["waypoints"], waypoints, atol=1e-4)
        np.testing.assert_allclose(sample["target_point"], target, atol=1e-4)
        np.testing.assert_array_equal(sample["lidar_bev"], C.lidar_bev_from_points(lidar, TINY_CONTRACT))
        assert np.abs(sample["lidar_bev"] - original["lidar_bev"]).sum() > 1.0
        # rgb_augmented was read (the inverted image), not rgb.
        inverted = 255 - original["image"].astype(int)
        assert np.abs(sample["image"].astype(int) - inverted).mean() < 8
        assert sample["steer_class"] == C.steer_class_from_waypoints(waypoints, TINY_CONTRACT)
    # Signs: a camera shifted 1 m right sees the path that ran straight ahead of the car 1 m to its left.
    from min2real.data.carla_garage import to_augmented_view

    np.testing.assert_allclose(to_augmented_view(np.array([[10.0, 0.0]]), 1.0, 0.0), [[10.0, 1.0]])
    assert to_augmented_view(np.array([[10.0, 0.0]]), 0.0, 5.0)[0, 1] > 0  # turned right: ahead is left
    # Garage's probability picks either camera per draw (Python's random, seeded per DataLoader worker).
    import random

    random.seed(0)
    half = CarlaGarageDataset([route], TINY_CONTRACT, use_lidar=False, augmented_view_probability=0.5)
    plain_image = plain[0]["image"].astype(int)
    picks = [np.abs(half[0]["image"].astype(int) - plain_image).mean() > 20 for _ in range(40)]
    assert 10 <= sum(picks) <= 30
    with pytest.raises(ValueError, match="augmented_view_probability 1.5 is not a probability"):
        CarlaGarageDataset([route], TINY_CONTRACT, augmented_view_probability=1.5)


def test_garage_augmented_views_require_the_augmented_camera(broken_dir):
    route = _route(broken_dir)
    shutil.rmtree(route / "rgb_augmented")  # a route recorded without Garage's augmented camera
    dataset = CarlaGarageDataset([route], TINY_CONTRACT, augmented_view_probability=0.5)
    assert len(dataset) == 0 and dataset.index_problems.counts_by_kind()["missing_file"] == dataset.stats["frames"]
    assert "rgb_augmented/0000.jpg" in dataset.index_problems.summary()


def test_garage_skips_the_first_2_5_s_of_each_route(clean_dir):
    from min2real.data.carla_garage import GARAGE_SKIP_FIRST_S

    whole = CarlaGarageDataset([clean_dir / "carla"], TINY_CONTRACT)
    skipping = CarlaGarageDataset([clean_dir / "carla"], TINY_CONTRACT, skip_first_s=GARAGE_SKIP_FIRST_S)
    skipped = int(GARAGE_SKIP_FIRST_S * 4)  # Garage: int(2.5 * 20 fps) // save every 5th = 10 frames at 4 Hz
    for route in range(2):
        frames = whole.samples[whole.samples[:, 0] == route, 1]
        kept = skipping.samples[skipping.samples[:, 0] == route, 1]
        np.testing.assert_array_equal(kept, frames[frames >= skipped])
        assert kept.min() == skipped
    assert skipping.stats["frames_skipped_at_start"] == 2 * skipped
    assert len(whole) - len(skipping) == 2 * skipped
