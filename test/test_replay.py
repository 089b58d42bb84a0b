"""Rosbag replay through the real nodes: synthetic CARLA-bridge bags in both storage formats, the
output bag / overlays / summary, and clear messages for bags that cannot be replayed."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest

from min2real.contract import STEER_CLASSES
from min2real.runtime.onnx_metadata import read_onnx_metadata
from min2real.runtime.overlay import CameraModel
from min2real_ros.cli.demo import bundled_model_path
from min2real_ros.conversions import image_to_rgb, path_to_xy, pointcloud2_to_xyz
from min2real_ros.replay.bag import BagError, BagWriter, deserialize, inspect_bag, iter_raw_messages, require_topics
from min2real_ros.replay.replay import ReplayOptions, replay, required_topics
from min2real_ros.replay.synth_bag import LIDAR_MOUNT_XYZ_M, BridgeTopics, write_frames_to_bag, write_synthetic_bag

TOPICS = BridgeTopics()
WAYPOINTS_TOPIC = "/min2real_driver/output/waypoints"
STEER_TOPIC = "/min2real_driver/output/steer_class"


def _fake_frames(count: int, seed: int = 0) -> list:
    """Cheap frames with the generator's fields (no rendering)."""
    rng = np.random.default_rng(seed)
    route = np.stack([np.arange(60.0), np.zeros(60)], axis=1)
    return [
        types.SimpleNamespace(
            timestamp_s=0.1 * i,
            image_rgb=rng.integers(0, 255, (24, 64, 3), dtype=np.uint8),
            lidar_points_ego=rng.normal(0, 5, (50, 4)).astype(np.float32),
            pose_world=(0.5 * i, 0.0, 0.0),
            speed_mps=5.0,
            route_world=route,
        )
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def bundled_model() -> Path:
    path = bundled_model_path()
    assert path.is_file(), f"the bundled model {path} is missing (models/bundled/README.md regenerates it)"
    return path


# ---- replay through the nodes ----------------------------------------------------------------
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_replay_synthetic_bag_writes_one_path_per_frame(tmp_path, storage, bundled_model):
    bag = write_synthetic_bag(tmp_path / "bag", storage, num_frames=12, seed=3, image_size=(256, 96)).path
    assert inspect_bag(bag).storage == storage

    result = replay(ReplayOptions(bag, bundled_model, tmp_path / "out", timing="fast", progress=False, tiles=4))
    summary = result.summary

    # Every camera frame was processed: one Path per frame, stamped with that frame's camera stamp.
    camera_stamps = [
        (m.header.stamp.sec, m.header.stamp.nanosec)
        for m in (deserialize(raw, "sensor_msgs/msg/Image") for _, _, raw in iter_raw_messages(bag, [TOPICS.camera]))
    ]
    assert summary["frames_in"] == 12
    assert summary["predictions_out"] == summary["frames_in"] - summary["refused"] - summary["inference_errors"]
    assert summary["predictions_out"] == 12, summary
    assert summary["drops"] == 0
    # Every frame in is accounted for exactly once.
    assert summary["frames_in"] == (
        summary["predictions_for_frames_in"]
        + summary["refused"]
        + summary["inference_errors"]
        + summary["dropped_while_busy"]
        + summary["not_received_by_driver"]
    )

    output = inspect_bag(result.outputs["bag"])
    assert output.storage == "mcap"
    assert output.topics[WAYPOINTS_TOPIC].count == summary["predictions_out"]
    assert output.topics[STEER_TOPIC].count == summary["predictions_out"]
    paths = [
        deserialize(raw, "nav_msgs/msg/Path")
        for _, _, raw in iter_raw_messages(result.outputs["bag"], [WAYPOINTS_TOPIC])
    ]
    assert sorted((p.header.stamp.sec, p.header.stamp.nanosec) for p in paths) == camera_stamps
    num_waypoints = read_onnx_metadata(bundled_model).contract.num_waypoints
    for path in paths:
        assert path.header.frame_id == "base_link"
        xy = path_to_xy(path)
        assert xy.shape == (num_waypoints, 2) and np.isfinite(xy).all()
    steer = [
        int(deserialize(raw, "std_msgs/msg/Int8").data)
        for _, _, raw in iter_raw_messages(result.outputs["bag"], [STEER_TOPIC])
    ]
    assert summary["steer_class_counts"] == {name: steer.count(index) for index, name in enumerate(STEER_CLASSES)}
    assert sum(summary["steer_class_counts"].values()) == summary["predictions_out"]
    assert summary["controls_out"] == output.topics["/carla/ego_vehicle/twist"].count > 0

    # Pictures and the summary on disk.
    overlays = sorted((tmp_path / "out" / "overlays").glob("frame_*.png"))
    assert len(overlays) == 4
    for name in ("contact_sheet", "trajectory_plot", "latency_histogram"):
        assert result.outputs[name].is_file() and result.outputs[name].stat().st_size > 1000, name
    on_disk = json.loads(result.outputs["summary"].read_text())
    assert on_disk["predictions_out"] == summary["predictions_out"]
    assert on_disk["latency_ms"]["p50"] is not None and on_disk["latency_ms"]["p99"] >= on_disk["latency_ms"]["p50"]


def test_demo_command_runs_the_bundled_model(tmp_path, capsys):
    from min2real.cli import main

    # The closed-loop step 3 has its own test (test_closed_loop_ros.py).
    no_closed_loop = ["--closed-loop-routes", "none"]
    code = main(["demo", "--out", str(tmp_path / "demo"), "--frames", "6", "--fast", "--no-progress", *no_closed_loop])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "predictions out (Path)" in printed and str(tmp_path / "demo") in printed
    summary = json.loads((tmp_path / "demo" / "replay" / "summary.json").read_text())
    assert summary["frames_in"] == 6 and summary["predictions_out"] == 6
    # Re-running replaces the previous demo output instead of failing.
    assert (
        main(["demo", "--out", str(tmp_path / "demo"), "--frames", "3", "--fast", "--no-progress", *no_closed_loop])
        == 0
    )


# ---- bags that cannot be replayed -------------------------------------------------------------
def test_bag_without_the_camera_topic_fails_with_the_topic_list(tmp_path, bundled_model, capsys):
    other = BridgeTopics(camera_id="rgb_left")
    bag = write_frames_to_bag(_fake_frames(3), tmp_path / "bag", "mcap", topics=other).path
    with pytest.raises(BagError) as error:
        replay(ReplayOptions(bag, bundled_model, tmp_path / "out", timing="fast", progress=False))
    text = str(error.value)
    assert f"topic {TOPICS.camera} (sensor_msgs/msg/Image) is missing" in text
    for name in ("/carla/ego_vehicle/rgb_left/image", "/carla/ego_vehicle/lidar", "/carla/ego_vehicle/odometry"):
        assert name in text
    assert not (tmp_path / "out" / "output_bag").exists()

    from min2real.cli import main

    assert main(["replay", str(bag), "--model", str(bundled_model), "--out", str(tmp_path / "out2")]) == 2
    assert "/carla/ego_vehicle/rgb_left/image" in capsys.readouterr().err


def test_unreadable_and_empty_bags_get_clear_messages(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        inspect_bag(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(BagError, match="no metadata.yaml"):
        inspect_bag(tmp_path / "plain")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metadata.yaml").write_text("rosbag2_bagfile_information: [not a bag\n")
    with pytest.raises(BagError, match="not readable"):
        inspect_bag(tmp_path / "broken")

    with BagWriter(tmp_path / "empty", "sqlite3") as writer:
        writer.add_topic(TOPICS.camera, "sensor_msgs/msg/Image")
    info = inspect_bag(tmp_path / "empty")
    with pytest.raises(BagError, match="is empty") as error:
        require_topics(info, required_topics(TOPICS, use_lidar=True))
    assert TOPICS.camera in str(error.value)

    bag = write_frames_to_bag(_fake_frames(2), tmp_path / "typed", "mcap").path
    wrong = dict(required_topics(TOPICS, use_lidar=True), **{TOPICS.speedometer: "std_msgs/msg/Float64"})
    with pytest.raises(BagError, match="has type std_msgs/msg/Float32; expected std_msgs/msg/Float64"):
        require_topics(inspect_bag(bag), wrong)


# ---- synth-bag --------------------------------------------------------------------------------
def test_synth_bag_cli_writes_the_bridge_layout_in_both_storages(tmp_path, capsys):
    from min2real.cli import main

    out = tmp_path / "drive"
    assert main(["synth-bag", "--out", str(out), "--storage", "both", "--frames", "3", "--image-size", "64x32"]) == 0
    assert "/carla/ego_vehicle/rgb_front/image" in capsys.readouterr().out
    for storage in ("mcap", "sqlite3"):
        info = inspect_bag(Path(f"{out}_{storage}"))
        assert info.storage == storage
        for name, msgtype in TOPICS.types().items():
            assert info.topics[name].msgtype == msgtype
        assert info.topics[TOPICS.camera].count == 3 and info.topics[TOPICS.route].count == 1
        assert info.topics[TOPICS.route].qos == "transient_local"
        image = next(
            deserialize(raw, "sensor_msgs/msg/Image") for _, _, raw in iter_raw_messages(info.path, [TOPICS.camera])
        )
        assert image.encoding == "bgra8" and image_to_rgb(image).shape == (32, 64, 3)


def test_lidar_is_stored_in_its_mount_frame_and_round_trips(tmp_path):
    frames = _fake_frames(2, seed=7)
    bag = write_frames_to_bag(frames, tmp_path / "bag", "sqlite3").path
    clouds = [deserialize(raw, "sensor_msgs/msg/PointCloud2") for _, _, raw in iter_raw_messages(bag, [TOPICS.lidar])]
    for frame, cloud in zip(frames, clouds):
        assert cloud.header.frame_id == "ego_vehicle/lidar"
        np.testing.assert_allclose(
            pointcloud2_to_xyz(cloud) + np.float32(LIDAR_MOUNT_XYZ_M), frame.lidar_points_ego[:, :3], atol=1e-5
        )
    tf = next(deserialize(raw, "tf2_msgs/msg/TFMessage") for _, _, raw in iter_raw_messages(bag, [TOPICS.tf_static]))
    (transform,) = [t for t in tf.transforms if t.child_frame_id == "ego_vehicle/lidar"]
    assert transform.header.frame_id == "ego_vehicle"
    assert (transform.transform.translation.x, transform.transform.translation.z) == LIDAR_MOUNT_XYZ_M[::2]


def test_overlay_camera_projects_left_points_left_and_far_points_up():
    camera = CameraModel.from_horizontal_fov(200, 100, 90.0, (0.0, 0.0, 1.5))
    pixels, visible = camera.project_ground(np.array([[10.0, 2.0], [10.0, -2.0], [30.0, 0.0], [-5.0, 0.0]]))
    assert visible.tolist() == [True, True, True, False]  # behind the camera is not drawn
    assert pixels[0, 0] < camera.cx < pixels[1, 0]  # y left (REP 103) is image left
    assert camera.cy < pixels[2, 1] < pixels[0, 1]  # farther ground is closer to the horizon


# ---- replay bookkeeping -----------------------------------------------------------------------
class _FakeDriverProgress:
    """Stands in for _Session: a driver whose camera count and outcomes move on another thread."""

    def __init__(self, received: int, published: int, dropped: int) -> None:
        self.driver = types.SimpleNamespace(published=published, rejected=0, inference_errors=0, frames_dropped=dropped)
        self.received = received

    def driver_received(self, kind: str) -> int:
        assert kind == "camera"
        return self.received

    def driver_outcomes(self) -> int:
        from min2real_ros.replay.session import driver_outcomes

        return driver_outcomes(self.driver)


def _drain_returns(session, frames_published: int) -> bool:
    import threading

    from min2real_ros.replay.playback import drain

    worker = threading.Thread(target=drain, args=(session, frames_published, 60.0), daemon=True)
    worker.start()
    return worker


def test_drain_counts_dropped_frames_as_finished_and_waits_for_the_last_frame():
    import time

    # 10 frames received, 7 published, 3 replaced while the worker was busy: the driver is done.
    worker = _drain_returns(_FakeDriverProgress(received=10, published=7, dropped=3), 10)
    worker.join(5.0)
    assert not worker.is_alive(), "drain waited for frames the driver had dropped"

    # The last frame is still in flight: drain must not stop before the driver received and handled it.
    session = _FakeDriverProgress(received=9, published=9, dropped=0)
    worker = _drain_returns(session, 10)
    time.sleep(0.2)
    assert worker.is_alive()
    session.received = 10
    time.sleep(0.1)
    assert worker.is_alive()  # received, not yet handled
    session.driver.published = 10
    worker.join(5.0)
    assert not worker.is_alive()


def test_player_offers_the_route_latched_whatever_the_bag_recorded():
    from min2real_ros.replay.bag import QOS_LATCHED, QOS_RELIABLE, QOS_SENSOR
    from min2real_ros.replay.session import _player_qos

    latched, streaming = object(), object()
    assert _player_qos(TOPICS.route, QOS_RELIABLE, TOPICS, latched, streaming) is latched
    assert _player_qos(TOPICS.route, QOS_LATCHED, TOPICS, latched, streaming) is latched
    assert _player_qos(TOPICS.camera, QOS_SENSOR, TOPICS, latched, streaming) is streaming


def test_a_ticks_camera_is_played_after_that_ticks_other_messages():
    from min2real_ros.replay.playback import camera_last_per_tick

    camera = TOPICS.camera
    bag_order = [
        (camera, 0, b"c0"),
        (TOPICS.speedometer, 0, b"s0"),
        (TOPICS.odometry, 0, b"o0"),
        (TOPICS.lidar, 50, b"l1"),
        (camera, 100, b"c1"),
        (camera, 100, b"c1b"),
        (TOPICS.speedometer, 100, b"s1"),
        (TOPICS.speedometer, 150, b"s2"),
    ]
    played = [raw for _, _, raw in camera_last_per_tick(bag_order, camera)]
    assert played == [b"s0", b"o0", b"c0", b"l1", b"s1", b"c1", b"c1b", b"s2"]


def test_bag_timing_predicts_the_first_frame_and_accounts_for_every_frame(tmp_path, bundled_model):
    """Bag timing: the clock and the route are delivered before the drive, so the first camera
    frame already has speed, odometry and a target point; every frame is predicted, refused,
    dropped while busy, failed or not received (no timing asserted)."""
    bag = write_synthetic_bag(tmp_path / "bag", "mcap", num_frames=12, seed=5, image_size=(256, 96)).path
    result = replay(ReplayOptions(bag, bundled_model, tmp_path / "out", timing="bag", progress=False, tiles=2))
    summary = result.summary
    first_stamp = next(
        deserialize(raw, "sensor_msgs/msg/Image").header.stamp for _, _, raw in iter_raw_messages(bag, [TOPICS.camera])
    )
    output = inspect_bag(result.outputs["bag"])
    predicted_stamps = {
        (m.header.stamp.sec, m.header.stamp.nanosec)
        for m in (
            deserialize(raw, output.topics[WAYPOINTS_TOPIC].msgtype)
            for _, _, raw in iter_raw_messages(result.outputs["bag"], [WAYPOINTS_TOPIC])
        )
    }
    assert (first_stamp.sec, first_stamp.nanosec) in predicted_stamps, summary
    assert summary["frames_in"] == 12 and summary["timing"] == "bag x1"
    assert summary["frames_in"] == (
        summary["predictions_for_frames_in"]
        + summary["refused"]
        + summary["inference_errors"]
        + summary["dropped_while_busy"]
        + summary["not_received_by_driver"]
    )
