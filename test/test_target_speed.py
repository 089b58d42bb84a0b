"""The target-speed head (CARLA Garage TransFuser++'s classes [0, 2, 5, 8] m/s): its labels, what it
learns, its optional graph output, and its use by the controller (brake when it says stop; a model
without it drives exactly as before)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch
from training_helpers import write_synthetic

from min2real.contract import (
    OUTPUT_NAMES,
    OUTPUT_TARGET_SPEED_LOGITS,
    TARGET_SPEEDS_MPS,
    TINY_CONTRACT,
    ArtifactMetadata,
    ContractError,
    decode_target_speed,
    target_speed_class,
)
from min2real.data import CarlaGarageDataset
from min2real.data.navsim import logged_target_speed_class
from min2real.export import export_model
from min2real.models.model import build_model
from min2real.models.variants import variant_config
from min2real.runtime.controller import ControllerConfig, Watchdog, WatchdogLimits, WaypointController
from min2real.runtime.onnx_metadata import read_onnx_metadata
from min2real.runtime.policy import load_policy
from min2real.runtime.speed_head import confidence_weighted_target_speed
from min2real.runtime.types import FrameInputs
from min2real.training.recipes import load_miniature
from min2real.training.trainer import train

STEPS = 150


def test_labels_follow_garage_brake_first_then_speed_bins():
    assert target_speed_class(7.0, True) == 0  # the expert brakes: class 0 whatever its speed
    assert [target_speed_class(v, False) for v in (0.0, 2.0, 2.09, 2.2, 5.0, 5.2, 8.0, 12.0)] == [
        1,
        1,
        1,
        2,
        2,
        3,
        3,
        3,
    ]
    with pytest.raises(ValueError, match="not finite"):
        target_speed_class(float("nan"), False)
    times, speeds = np.array([0.0, 0.5, 1.0, 1.5]), np.array([6.0, 5.9, 4.0, 0.2])
    # NAVSIM: the next logged speed is the target; hard deceleration or standing is "brake".
    assert [logged_target_speed_class(times, speeds, i) for i in range(4)] == [3, 0, 0, -1]


def _tiny(head: bool, seed: int = 0):
    torch.manual_seed(seed)
    config = variant_config("min2real", tiny=True).replace(use_target_speed_head=head)
    return build_model(config, TINY_CONTRACT).eval()


def test_the_head_is_an_optional_graph_output_that_the_policy_reads(tmp_path):
    with_head = export_model(_tiny(True), TINY_CONTRACT, "sim", tmp_path / "head.onnx", exporter="legacy")
    without = export_model(_tiny(False), TINY_CONTRACT, "sim", tmp_path / "plain.onnx", exporter="legacy")
    assert with_head.max_abs_error[OUTPUT_TARGET_SPEED_LOGITS] <= 1e-3  # ONNX Runtime = PyTorch
    metadata: ArtifactMetadata = read_onnx_metadata(tmp_path / "head.onnx")
    assert metadata.output_shapes[OUTPUT_TARGET_SPEED_LOGITS] == (1, len(TARGET_SPEEDS_MPS))
    assert OUTPUT_TARGET_SPEED_LOGITS not in read_onnx_metadata(tmp_path / "plain.onnx").output_shapes
    assert OUTPUT_TARGET_SPEED_LOGITS not in without.max_abs_error
    names = [o.name for o in onnxruntime.InferenceSession(str(tmp_path / "plain.onnx")).get_outputs()]
    assert tuple(names) == OUTPUT_NAMES  # a model without the head has exactly the two outputs

    frame = FrameInputs(
        image_rgb=np.random.default_rng(0).integers(0, 256, (96, 256, 3), dtype=np.uint8),
        lidar_points_ego=None,
        target_point_ego=np.array([20.0, 0.0]),
        speed_mps=3.0,
        command=1,
    )
    probs = load_policy(str(tmp_path / "head.onnx")).predict(frame).target_speed_probs
    assert probs is not None and probs.shape == (4,) and abs(float(probs.sum()) - 1.0) < 1e-5
    assert load_policy(str(tmp_path / "plain.onnx")).predict(frame).target_speed_probs is None
    assert decode_target_speed({"waypoints": np.zeros((1, 8, 2))}) is None
    with pytest.raises(ContractError, match="target_speed_logits"):
        decode_target_speed({OUTPUT_TARGET_SPEED_LOGITS: np.full((1, 4), np.nan, np.float32)})


def test_a_speed_blind_model_ignores_the_speed_but_its_graph_keeps_the_input(tmp_path):
    """model.use_speed_input=false (the inertia remedy): no output depends on the ego speed, and the
    exported graph still takes `speed` (the contract's inputs are unchanged; the runtime feeds it)."""
    torch.manual_seed(0)
    config = variant_config("min2real", tiny=True).replace(use_target_speed_head=True, use_speed_input=False)
    model = build_model(config, TINY_CONTRACT).eval()
    export_model(model, TINY_CONTRACT, "sim", tmp_path / "blind.onnx", exporter="legacy")
    session = onnxruntime.InferenceSession(str(tmp_path / "blind.onnx"))
    assert "speed" in [i.name for i in session.get_inputs()]
    rng = np.random.default_rng(1)
    frame = dict(
        image_rgb=rng.integers(0, 256, (96, 256, 3), dtype=np.uint8),
        lidar_points_ego=None,
        target_point_ego=np.array([20.0, 0.0]),
        command=1,
    )
    policy = load_policy(str(tmp_path / "blind.onnx"))
    standing, driving = (policy.predict(FrameInputs(speed_mps=v, **frame)) for v in (0.0, 7.0))
    np.testing.assert_array_equal(standing.waypoints_ego, driving.waypoints_ego)
    np.testing.assert_array_equal(standing.target_speed_probs, driving.target_speed_probs)
    seeing = build_model(config.replace(use_speed_input=True), TINY_CONTRACT).eval()
    seeing.load_state_dict(model.state_dict())  # same weights: the option adds or removes none
    export_model(seeing, TINY_CONTRACT, "sim", tmp_path / "seeing.onnx", exporter="legacy")
    seeing_policy = load_policy(str(tmp_path / "seeing.onnx"))
    standing, driving = (seeing_policy.predict(FrameInputs(speed_mps=v, **frame)) for v in (0.0, 7.0))
    assert not np.array_equal(standing.target_speed_probs, driving.target_speed_probs)


@pytest.mark.slow
def test_the_head_learns_the_expert_target_speed_on_held_out_frames(tmp_path):
    train_roots = write_synthetic(tmp_path / "train", seed=3, frames=64)
    val_roots = write_synthetic(tmp_path / "val", seed=4, frames=48)
    overrides = [
        "train.batch_size=8",
        "train.num_threads=1",
        "model.use_target_speed_head=true",
        "train.warmup_steps=10",
    ]
    overrides += [f"data.cache_dir={tmp_path / 'cache'}", "loss.target_speed_ce=2.0"]
    config = load_miniature("min2real", train_roots, val_roots, STEPS, lr=3e-3, overrides=overrides)
    threads = torch.get_num_threads()
    try:
        train(config, tmp_path / "run")
    finally:
        torch.set_num_threads(threads)
    record = json.loads(sorted((tmp_path / "run" / "metrics").glob("step_*.json"))[-1].read_text())
    accuracy = record["metrics"]["sim"]["target_speed_accuracy"]
    val = CarlaGarageDataset([val_roots["sim"]], TINY_CONTRACT)
    labels = np.array([int(val.load(i)["target_speed_class"]) for i in range(len(val))])
    majority = np.bincount(labels[labels >= 0]).max() / (labels >= 0).sum()  # chance: always the commonest class
    assert accuracy >= majority + 0.15, (accuracy, majority)


def test_controller_brakes_when_the_head_says_stop_and_follows_its_speed_otherwise():
    waypoints = np.array([[2.5 * (i + 1), 0.0] for i in range(8)])  # 5 m/s straight ahead
    stop = confidence_weighted_target_speed(np.array([0.6, 0.1, 0.1, 0.2]))
    assert stop == 0.0  # P(brake) above Garage's 0.5
    assert confidence_weighted_target_speed(np.array([0.4, 0.0, 0.6, 0.0])) == pytest.approx(3.0)
    controller = WaypointController(ControllerConfig(speed_from="head"))
    step = controller.compute(waypoints, 4.0, stop)
    assert step.braking and step.control.brake == 1.0 and step.control.throttle == 0.0
    step = controller.compute(waypoints, 1.0, 8.0)
    assert not step.braking and step.control.throttle > 0 and step.desired_speed_mps == 8.0
    with pytest.raises(ValueError, match="target speed"):
        controller.compute(waypoints, 1.0, float("nan"))
    # `waypoints`: the waypoints set the speed, the head is only published.
    by_waypoints = WaypointController(ControllerConfig(speed_from="waypoints"))
    assert by_waypoints.compute(waypoints, 4.0, stop).control == WaypointController().compute(waypoints, 4.0).control
    assert ControllerConfig().speed_from == "waypoints_head_stop"  # the default (the bundled model's, synth-val)
    with pytest.raises(ValueError, match="speed_from"):
        ControllerConfig(speed_from="lidar")


def test_a_model_without_the_head_drives_exactly_as_before():
    rng = np.random.default_rng(1)
    plain, explicit = WaypointController(ControllerConfig()), WaypointController(ControllerConfig())
    for _ in range(50):
        waypoints = np.cumsum(rng.uniform([0.5, -0.5], [4.0, 0.5], (8, 2)), axis=0)
        speed = float(rng.uniform(0, 8))
        a, b = plain.compute(waypoints, speed), explicit.compute(waypoints, speed, None)
        assert (a.control, a.desired_speed_mps, a.braking) == (b.control, b.desired_speed_mps, b.braking)


def test_the_controller_pairs_the_head_speed_with_its_waypoints_by_stamp():
    watchdog = Watchdog(WatchdogLimits(waypoint_timeout_s=0.5))
    assert watchdog.target_speed_mps() is None
    watchdog.offer_waypoints(np.ones((8, 2)), stamp_s=10.0, now_s=10.0)
    assert watchdog.target_speed_mps() is None  # no head: the waypoints' own speed
    assert watchdog.offer_target_speed(2.0, stamp_s=10.0, now_s=10.01) is None
    assert watchdog.target_speed_mps() == 2.0
    watchdog.offer_waypoints(np.ones((8, 2)), stamp_s=11.0, now_s=11.0)
    assert watchdog.target_speed_mps() is None  # the head's speed belongs to a frame 1 s older
    assert "finite" in watchdog.offer_target_speed(float("inf"), 11.0, 11.0)
    assert "ahead" in watchdog.offer_target_speed(1.0, 12.0, 11.0)


def test_waypoints_head_stop_brakes_to_a_standstill_once_per_stop_the_head_says():
    waypoints = np.array([[2.5 * (i + 1), 0.0] for i in range(8)])  # 5 m/s straight ahead
    controller = WaypointController(ControllerConfig(speed_from="waypoints_head_stop"))
    plain = WaypointController(ControllerConfig())
    # Head says go: exactly the waypoints' rule.
    assert controller.compute(waypoints, 2.0, 5.0).control == plain.compute(waypoints, 2.0).control
    # Head says stop: full brake while the car moves, whatever the waypoints ask.
    for speed in (4.0, 1.0, 0.2):
        step = controller.compute(waypoints, speed, 0.0)
        assert step.braking and step.control.brake == 1.0 and step.control.throttle == 0.0
    # Stood (below head_stop_standstill_mps): the waypoints drive although the head still says stop.
    for speed in (0.01, 0.5, 3.0):
        step = controller.compute(waypoints, speed, 0.0)
        assert not step.braking and step.control.throttle > 0, speed
    # The head says go, then stop again: a new stop.
    controller.compute(waypoints, 3.0, 5.0)
    assert controller.compute(waypoints, 3.0, 0.0).braking
    # reset (the node's watchdog) re-arms the stop as well.
    controller.compute(waypoints, 0.0, 0.0)
    controller.reset()
    assert controller.compute(waypoints, 3.0, 0.0).braking
    # The waypoints' own brake still fires while the stop is released.
    controller.compute(waypoints, 0.0, 0.0)
    assert controller.compute(np.zeros((8, 2)) + [0.05, 0.0], 1.0, 0.0).braking
    with pytest.raises(ValueError, match="target speed"):
        controller.compute(waypoints, 1.0, float("nan"))
