"""`min2real dagger`: closed-loop data aggregation. The recorded frames are labelled by the expert
at the states actually visited, beta mixes the expert and the model as documented, the data loads
through the Garage loader, and no judged town or held-out data seed can be driven."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from min2real import contract as C
from min2real.data import CarlaGarageDataset
from min2real.data.common import EXTRACTOR_SEEDS
from min2real.evaluation.closed_loop import TICK_S, DirectPolicyStack, run_route
from min2real.evaluation.closed_loop.dagger import (
    HELD_OUT_DATA_SEEDS,
    RECORD_EVERY_TICKS,
    beta_for_round,
    check_training_seed,
    dagger_routes,
    drive_route,
    run_round,
    write_route,
)
from min2real.evaluation.closed_loop.expert import RouteExpert
from min2real.evaluation.closed_loop.record import record_expert_drive
from min2real.evaluation.closed_loop.routes import ROUTE_SETS
from min2real.evaluation.closed_loop.run import rendering_camera
from min2real.evaluation.closed_loop.vehicle import VehicleState
from min2real.runtime.types import Prediction

REPO = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = REPO / "models" / "bundled" / "min2real_tiny_sim.onnx"
CONTRACT = C.TINY_CONTRACT


class DriftRightPolicy:
    """Test double for a learner that makes a mistake: waypoints straight ahead at 5 m/s, bending
    0.25 m further right per waypoint, so the car leaves its lane within seconds."""

    def __init__(self) -> None:
        self.contract = CONTRACT
        self.metadata = SimpleNamespace(variant="test-double", domain="sim", output_shapes={})

    def predict(self, frame) -> Prediction:
        k = np.arange(1, CONTRACT.num_waypoints + 1, dtype=np.float32)
        waypoints = np.stack([5.0 * CONTRACT.waypoint_dt_s * k, -0.25 * k], axis=1).astype(np.float32)
        steer = int(C.steer_class_from_waypoints(waypoints, CONTRACT))
        return Prediction(waypoints, steer, np.eye(3, dtype=np.float32)[steer], preprocess_ms=0.0, inference_ms=0.0)


def _route(traffic: float, length_m: float = 60.0):
    return dagger_routes(10, 1, ("noon",), 0.0, traffic, length_m)[0]


def _lane_offset_m(scenario, xy: np.ndarray) -> np.ndarray:
    """Distance of world points (..., 2) to the route's lane centre (0.5 m samples)."""
    return np.linalg.norm(xy[..., None, :] - scenario.route_lane_xy, axis=-1).min(axis=-1)


def test_frames_off_the_lane_are_labelled_by_the_expert_from_that_state(tmp_path):
    spec = _route(traffic=0.0)  # an empty world: the expert's plan depends on the state alone
    run, stack = drive_route(spec, DriftRightPolicy(), beta=0.0, contract=CONTRACT)
    scenario = stack.sim.scenario
    assert run.score.driving_score < 100.0, "the drifting learner should make mistakes"
    frames = write_route(tmp_path / "carla" / "route_000", run, stack, CONTRACT)
    rows = stack.rows
    assert frames == len(rows["pose"]) == len(rows["s"]) > 8

    dataset = CarlaGarageDataset([tmp_path / "carla"], CONTRACT)  # require_perfect_score: the default
    assert dataset.stats["routes_expert_labelled"] == 1 and len(dataset) == frames  # every frame is a sample
    poses = np.asarray(rows["pose"])
    offsets = _lane_offset_m(scenario, poses[:, :2])
    first_line = min((line.s_m for line in scenario.stop_lines), default=np.inf)
    checked = 0
    for index in range(frames):
        sample = dataset[index]
        assert isinstance(sample, dict), sample
        labels = sample[C.TARGET_WAYPOINTS]
        x, y, yaw = poses[index]
        world = labels @ np.array([[np.cos(yaw), np.sin(yaw)], [-np.sin(yaw), np.cos(yaw)]]) + np.array([x, y])
        # The expert's waypoints lie on the lane centre wherever the car is: they lead back to it.
        assert _lane_offset_m(scenario, world).max() < 0.3
        expected_class = C.target_speed_class(rows["target"][index], rows["brake"][index])
        assert int(sample[C.TARGET_SPEED_CLASS]) == expected_class >= 0
        if rows["s"][index] < first_line - 6.0:  # no stop line decided yet: a fresh expert plans the same
            fresh = RouteExpert(scenario, CONTRACT.num_waypoints, CONTRACT.waypoint_dt_s)
            state = VehicleState(x, y, yaw, rows["speed"][index])
            np.testing.assert_allclose(labels, fresh.waypoints_ego(state, rows["s"][index]), atol=1e-4)
            checked += 1
    off = np.flatnonzero(offsets > 0.8)
    assert len(off) >= 2, f"the learner never left the lane centre (max offset {offsets.max():.2f} m)"
    assert checked >= 5
    # The driven future is not the label: the car drifts right while the labels point back left.
    later_labels = [dataset[int(i)][C.TARGET_WAYPOINTS][-1, 1] for i in off]
    assert np.mean(later_labels) > 0.3


def test_beta_one_reproduces_the_expert_drive_and_beta_zero_drives_the_model():
    spec = _route(traffic=1.0, length_m=45.0)
    run, stack = drive_route(spec, None, beta=1.0, contract=CONTRACT)
    expert = record_expert_drive(spec.scenario(), CONTRACT)  # data synth's expert recorder
    np.testing.assert_array_equal(stack.rows["s"], expert.route_s_m[::RECORD_EVERY_TICKS][: len(stack.rows["s"])])
    np.testing.assert_array_equal(
        stack.rows["target"], expert.target_speed_mps[::RECORD_EVERY_TICKS][: len(stack.rows["s"])]
    )
    assert run.score.driving_score == expert.driving_score
    assert stack.report()["model_share"] == 0.0

    policy = DriftRightPolicy()
    mixed_run, mixed = drive_route(spec, policy, beta=0.0, contract=CONTRACT)
    alone = run_route(
        spec, DirectPolicyStack(policy, TICK_S, True), "sim", rendering_camera(CONTRACT, "sim"), True, tiles=False
    )
    np.testing.assert_array_equal(mixed_run.states, alone.states)  # exactly `closed-loop`'s drive of the model
    assert mixed.report()["model_share"] == 1.0


def test_beta_mixes_per_segment_and_the_schedule_decays():
    run, stack = drive_route(_route(traffic=0.0), DriftRightPolicy(), beta=0.5, segment_s=1.0, contract=CONTRACT)
    drove = np.asarray(stack.rows["expert_drove"])
    per_segment = int(round(1.0 / TICK_S)) // RECORD_EVERY_TICKS  # 4 frames per 1 s segment
    segments = drove[: len(drove) // per_segment * per_segment].reshape(-1, per_segment)
    assert (segments == segments[:, :1]).all(), "the driver changed inside a segment"
    assert segments[:, 0].any() and not segments[:, 0].all(), "beta 0.5 should give both drivers segments"
    assert 0.0 < stack.report()["model_share"] < 1.0
    assert [beta_for_round(i) for i in range(4)] == [1.0, 0.5, 0.25, 0.125]
    assert beta_for_round(2, beta0=0.8, decay=0.5) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="decay"):
        beta_for_round(1, decay=1.5)


def test_the_expert_drops_a_stop_line_the_car_has_run():
    scenario = _route(0.0, 180.0).scenario()
    assert scenario.stop_lines, "the test route should have a stop line"
    line = scenario.stop_lines[0]
    expert = RouteExpert(scenario, CONTRACT.num_waypoints, CONTRACT.waypoint_dt_s)
    before_s = line.s_m - 6.0
    xy, yaw = scenario.lane_pose_at(before_s)
    expert.update(TICK_S, before_s, 5.0)
    expert.waypoints_ego(VehicleState(*xy, float(yaw), 5.0), before_s)
    assert expert.target_speed_mps < 2.5 and expert.brake  # stopping at the line 3 m ahead
    after_s = line.s_m + 3.0  # the learner ran it without stopping
    xy, yaw = scenario.lane_pose_at(after_s)
    expert.update(TICK_S, after_s, 5.0)
    expert.waypoints_ego(VehicleState(*xy, float(yaw), 5.0), after_s)
    assert expert.target_speed_mps > 4.0, "the expert still wants to stop for a line behind the car"


def test_only_training_seeds_are_driven():
    judged = {spec.seed for specs in ROUTE_SETS.values() for spec in specs()}
    for seed in sorted({s[0] for s in judged}):
        with pytest.raises(ValueError, match=rf"--seed {seed} is in the closed-loop judge's seed space"):
            dagger_routes(seed, 1)
    for seed, what in HELD_OUT_DATA_SEEDS.items():
        with pytest.raises(ValueError, match=rf"--seed {seed} is {what}"):
            check_training_seed(seed)
    with pytest.raises(ValueError, match="reserved"):
        check_training_seed(EXTRACTOR_SEEDS.start)
    specs = dagger_routes(10, 24, ("noon", "fog"), 0.5, 1.0)
    assert [spec.seed for spec in specs] == [(10, 0, r) for r in range(24)]  # data synth --seed 10's sim routes
    assert not {spec.seed for spec in specs} & judged
    # The held-out seeds are the ones the bundled recipe's header writes its val / test data with.
    header = (REPO / "training" / "bundled.yaml").read_text()
    held_out = {int(m.group(2)) for m in re.finditer(r"data/bundled/(val|test) --seed (\d+)", header)}
    assert held_out == set(HELD_OUT_DATA_SEEDS)


def test_command_refuses_judged_towns_and_held_out_seeds_and_records_a_round(tmp_path, capsys):
    from min2real.cli import main

    base = ["dagger", "--model", str(BUNDLED_MODEL), "--beta", "0.5", "--no-progress", "--no-figures"]
    assert main([*base, "--out", str(tmp_path / "a"), "--seed", "16000002"]) == 2
    assert "--seed 16000002 is in the closed-loop judge's seed space" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b"), "--seed", "12"]) == 2
    assert "--seed 12 is the bundled model's test data" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

    out = tmp_path / "round1"
    argv = ["dagger", "--model", str(BUNDLED_MODEL), "--out", str(out), "--seed", "10", "--routes", "1"]
    assert main([*argv, "--round", "1", "--route-length", "45", "--no-progress"]) == 0
    import json

    summary = json.loads((out / "dagger.json").read_text())
    assert summary["beta"] == 0.5 and summary["round"] == 1 and summary["arguments"]["seed"] == 10
    route = summary["routes"][0]
    assert route["frames_recorded"] == summary["frames_recorded"] > 0
    assert 0.0 <= route["driving_score"] <= 100.0 and (out / "routes" / "route000" / "top_down.png").is_file()
    dataset = CarlaGarageDataset([out / "carla"], CONTRACT, augmented_view_probability=1.0)
    assert len(dataset) == route["frames_recorded"]
    sample = dataset[0]
    assert isinstance(sample, dict) and sample[C.INPUT_LIDAR_BEV].any()
    assert main([*argv, "--beta", "1", "--no-progress"]) == 2  # one folder per round
    assert "exists" in capsys.readouterr().err


def test_retraining_on_the_aggregate_starts_from_the_previous_checkpoint(tmp_path):
    import torch
    from training_helpers import TINY_CONFIG, data_overrides, write_synthetic

    from min2real.models.checkpoint import CheckpointError, load_checkpoint, load_weights_into
    from min2real.training.config import TrainConfig
    from min2real.training.trainer import train

    roots = write_synthetic(tmp_path / "synth", seed=3, frames=16)
    specs = dagger_routes(10, 1, (), 0.0, 0.0, 45.0)
    run_round(specs, DriftRightPolicy(), tmp_path / "round1", 0.5, contract=CONTRACT, figures=False, progress=False)
    common = [*data_overrides(roots), "train.max_steps=1", "train.batch_size=4", "train.num_workers=0"]
    common += ["train.progress_bar=false", "train.num_threads=1", "train.deterministic=true"]
    train(TrainConfig.load(TINY_CONFIG, common), tmp_path / "round0")
    previous = tmp_path / "round0" / "checkpoints" / "last.pt"
    # The documented one-liner's overrides: the DAgger folder beside the original data, the weights
    # from the previous round; another seed and a vanishing learning rate make the start visible.
    aggregate = [f"data.sim_roots=[{roots['sim']}, {tmp_path / 'round1' / 'carla'}]"]
    config = TrainConfig.load(
        TINY_CONFIG, [*common, *aggregate, f"train.init_checkpoint={previous}", "train.seed=7", "train.lr=1e-12"]
    )
    train(config, tmp_path / "round1_run")
    before = load_checkpoint(previous)["model"]
    after = load_checkpoint(tmp_path / "round1_run" / "checkpoints" / "last.pt")["model"]
    assert all(torch.allclose(before[name], after[name], atol=1e-6) for name in before)
    # Export reads the synthetic camera the aggregate was recorded with (DIR/synthetic.json).
    from min2real.export import source_camera_from_checkpoint

    camera = source_camera_from_checkpoint(
        load_checkpoint(tmp_path / "round1_run" / "checkpoints" / "last.pt"), CONTRACT
    )
    assert camera is not None and (camera.width_px, camera.height_px) == (CONTRACT.camera_width, CONTRACT.camera_height)
    # Without the init, seed 7 would have started elsewhere.
    from min2real.models.model import build_model
    from min2real.training.distributed import seed_everything

    seed_everything(7)
    model = build_model(config.model_config(), config.build_contract())
    scratch = model.state_dict()
    assert not all(torch.allclose(before[name], scratch[name], atol=1e-6) for name in before)
    with pytest.raises(CheckpointError, match="another contract"):
        load_weights_into(model, previous, C.DEFAULT_CONTRACT)


def _real_graph(tmp_path: Path) -> Path:
    """The bundled graph relabelled as its real-domain export (what `export --domain real` marks)."""
    import json

    import onnx

    graph = onnx.load(str(BUNDLED_MODEL))
    entry = next(prop for prop in graph.metadata_props if prop.key == "min2real.metadata")
    metadata = json.loads(entry.value)
    assert metadata["domain"] == "sim"
    entry.value = json.dumps({**metadata, "domain": "real"})
    real = tmp_path / "model_real.onnx"
    onnx.save(graph, str(real))
    return real


def test_the_sim_look_refuses_a_real_graph(tmp_path, capsys):
    """Sim-look recordings come from the sim graph only."""
    from min2real.cli import main

    argv = [
        "dagger",
        "--model",
        str(_real_graph(tmp_path)),
        "--out",
        str(tmp_path / "r"),
        "--seed",
        "10",
        "--beta",
        "0",
    ]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "for the sim look" in error and "real" in error
    assert not (tmp_path / "r").exists()


def test_the_real_look_records_real_driving_labels_kept_apart_from_sim_ones(tmp_path, capsys):
    """`--look real`: the real graph drives the real look (no LiDAR) on the seed's real routes; the
    frames land in DIR/real_look (never DIR/carla), load as real-domain samples with an all-zero BEV
    and the expert's labels, and only a recipe with real driving labels may read them."""
    import json

    from min2real.cli import main
    from min2real.data import DataConfigError, DataSection, build_dataset

    out = tmp_path / "real1"
    argv = ["dagger", "--model", str(_real_graph(tmp_path)), "--out", str(out), "--seed", "10", "--routes", "1"]
    assert (
        main([*argv, "--beta", "0.5", "--route-length", "40", "--no-progress", "--no-figures", "--look", "real"]) == 0
    )
    assert "data.real_look_roots" in capsys.readouterr().out
    summary = json.loads((out / "dagger.json").read_text())
    assert summary["look"] == "real" and summary["domain"] == "real" and "real driving labels" in summary["labels"]
    assert not (out / "carla").exists()
    assert summary["routes"][0]["seed"][:2] == [10, C.DOMAINS.index("real")]  # data synth's real routes
    frames = summary["frames_recorded"]
    assert frames > 0

    dataset = build_dataset(None, None, CONTRACT, real_driving_labels=True, real_look_roots=[out / "real_look"])
    assert dataset.num_sim == 0 and dataset.num_real == frames
    sample = dataset[0]
    assert isinstance(sample, dict)
    assert int(sample[C.SAMPLE_DOMAIN]) == C.DOMAIN_REAL and not sample[C.INPUT_LIDAR_BEV].any()
    assert np.isfinite(sample[C.TARGET_WAYPOINTS]).all() and int(sample[C.TARGET_SPEED_CLASS]) >= 0
    with pytest.raises(ValueError, match="real driving labels"):
        build_dataset(None, None, CONTRACT, real_driving_labels=False, real_look_roots=[out / "real_look"])
    section = DataSection(real_roots=[str(tmp_path)], real_look_roots=[str(out / "real_look")])
    with pytest.raises(DataConfigError, match="real_look_roots"):
        section.validate()
