"""Open-loop evaluation and report: tiny model on a small two-domain dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from min2real import contract as C
from min2real.contract import TINY_CONTRACT
from min2real.evaluation import open_loop as E


def _arc(curvature_per_m: float, speed_mps: float, contract=TINY_CONTRACT) -> np.ndarray:
    """Waypoints (T, 2) of a constant-curvature path driven at `speed_mps` (positive = left)."""
    distance = speed_mps * contract.waypoint_times_s
    if abs(curvature_per_m) < 1e-9:
        return np.stack([distance, np.zeros_like(distance)], axis=-1).astype(np.float32)
    angle = distance * curvature_per_m
    return np.stack([np.sin(angle) / curvature_per_m, (1 - np.cos(angle)) / curvature_per_m], axis=-1).astype(
        np.float32
    )


def make_samples(count: int = 12, seed: int = 0, contract=TINY_CONTRACT) -> list:
    """Samples in the contract's form: both domains, left / straight / right, a broken one."""
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(count):
        domain = C.DOMAIN_SIM if index % 2 == 0 else C.DOMAIN_REAL
        curvature = (0.08, 0.0, -0.08)[index % 3]
        speed = (2.0, 6.0, 11.0)[index % 3]
        waypoints = _arc(curvature, speed, contract)
        lidar = np.zeros((contract.bev_num_channels, contract.bev_size_px, contract.bev_size_px), np.float32)
        if domain == C.DOMAIN_SIM:
            lidar[:, :8, :8] = 0.4
        samples.append(
            {
                C.INPUT_IMAGE: rng.integers(0, 255, (3, contract.camera_height, contract.camera_width), dtype=np.uint8),
                C.INPUT_LIDAR_BEV: lidar,
                C.INPUT_TARGET_POINT: waypoints[-1].copy(),
                C.INPUT_SPEED: np.array([speed], np.float32),
                C.INPUT_COMMAND: C.command_one_hot(
                    (C.COMMAND_LEFT, C.COMMAND_STRAIGHT, C.COMMAND_RIGHT)[index % 3], contract
                ),
                C.TARGET_WAYPOINTS: waypoints,
                C.TARGET_STEER_CLASS: np.int64(C.steer_class_from_waypoints(waypoints, contract)),
                C.SAMPLE_DOMAIN: np.int64(domain),
                C.SAMPLE_HAS_LABELS: np.bool_(True),
                E.SAMPLE_JUNCTION: np.bool_(index % 3 != 1),
            }
        )
    samples.insert(5, None)  # a loader's broken sample
    return samples


class GroundTruthPredictor(E.Predictor):
    """Test double: predicts each sample's own ground truth (a perfect model)."""

    kind = "oracle"

    def __init__(self, samples):
        self.samples, self.name, self.source, self.contract, self.details = (
            samples,
            "oracle",
            "ground truth",
            TINY_CONTRACT,
            {},
        )

    def domains(self):
        return {C.DOMAIN_SIM, C.DOMAIN_REAL}

    def predict(self, batch):
        logits = np.full((len(batch[C.SAMPLE_DOMAIN]), 3), -5.0, np.float32)
        logits[np.arange(len(logits)), batch[C.TARGET_STEER_CLASS]] = 5.0
        return {C.OUTPUT_WAYPOINTS: batch[C.TARGET_WAYPOINTS].copy(), C.OUTPUT_STEER_LOGITS: logits}


@pytest.fixture(scope="module")
def samples():
    return make_samples()


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory):
    import torch

    from min2real.models.model import build_model
    from min2real.models.variants import variant_config
    from min2real.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = variant_config("min2real", tiny=True)
    model = build_model(config, TINY_CONTRACT)
    with torch.no_grad():  # a visibly non-identity adapter for the difference heat map
        model.adapter.to_rgb.weight.normal_(0.0, 0.05)
    path = tmp_path_factory.mktemp("ckpt") / "tiny_min2real.pt"
    save_checkpoint(
        path, {"model": model.state_dict(), "model_config": config.to_dict(), "contract": TINY_CONTRACT.to_dict()}
    )
    return path


def test_perfect_predictor_scores_zero_error(samples):
    run = E.run_predictor(GroundTruthPredictor(samples), samples, batch_size=4)
    metrics = E.compute_metrics(run)
    for domain_name in C.DOMAINS:
        assert metrics[domain_name]["ade_m"] == 0.0 and metrics[domain_name]["fde_m"] == 0.0
        assert metrics[domain_name]["steer_accuracy"] == 1.0
        assert metrics[domain_name]["steer_macro_f1"] == 1.0 and metrics[domain_name]["steer_balanced_accuracy"] == 1.0
        assert metrics[domain_name]["num_samples"] == 6
    assert run.skipped == {"broken sample (see the loader's warnings)": 1}
    assert set(metrics["sim"]["situations"]) == {"ground-truth steering", "driving command", "speed", "junction"}
    steering = metrics["sim"]["situations"]["ground-truth steering"]
    assert {"left", "right", "straight"} <= set(steering)
    assert sum(group["num_samples"] for group in steering.values()) == 6


def test_errors_are_measured_per_domain_and_situation(samples):
    class Shifted(GroundTruthPredictor):
        def predict(self, batch):
            outputs = super().predict(batch)
            # Sim predictions 1 m to the left; real ones exact.
            outputs[C.OUTPUT_WAYPOINTS][batch[C.SAMPLE_DOMAIN] == C.DOMAIN_SIM, :, 1] += 1.0
            return outputs

    run = E.run_predictor(Shifted(samples), samples, batch_size=5)
    metrics = E.compute_metrics(run)
    assert metrics["sim"]["ade_m"] == pytest.approx(1.0) and metrics["real"]["ade_m"] == 0.0
    assert metrics["sim"]["l2_per_step_m"] == pytest.approx([1.0] * TINY_CONTRACT.num_waypoints)
    assert metrics["sim"]["situations"]["speed"]["fast (>=10 m/s)"]["ade_m"] == pytest.approx(1.0)
    limited = E.run_predictor(Shifted(samples), samples, max_samples_per_domain=2)
    assert np.bincount(limited.domain).tolist() == [2, 2]


def test_checkpoint_run_and_report_with_comparison(samples, checkpoint_path, tmp_path):
    from min2real.evaluation.report import write_report

    model_run = E.run_predictor(E.CheckpointPredictor(checkpoint_path), samples, batch_size=6)
    oracle_run = E.run_predictor(GroundTruthPredictor(samples), samples)
    metrics = [E.compute_metrics(model_run), E.compute_metrics(oracle_run)]
    for domain_name in C.DOMAINS:
        m = metrics[0][domain_name]
        assert np.isfinite(m["ade_m"]) and m["ade_m"] > 0 and np.isfinite(m["fde_m"])
        assert len(m["l2_per_step_m"]) == TINY_CONTRACT.num_waypoints
        assert 0.0 <= m["discriminator_accuracy"] <= 1.0  # the min2real variant has a discriminator
        assert np.asarray(m["steer_confusion"]).sum() == 6
    assert model_run.details["variant"] == "min2real"

    markdown = write_report(tmp_path / "report", [model_run, oracle_run], metrics, data_description="unit-test samples")
    text = markdown.read_text()
    figures = sorted(p.name for p in (markdown.parent / "figures").glob("*.png"))
    for name in (
        "error_vs_horizon.png",
        "steer_confusion.png",
        "examples_sim.png",
        "examples_real.png",
        f"adapter_{model_run.name}.png",
        "ade_by_ground_truth_steering.png",
        "ade_by_junction.png",
    ):
        assert name in figures, figures
        assert f"figures/{name}" in text
    assert "| tiny_min2real | sim |" in text and "| oracle | real |" in text
    summary = json.loads((markdown.parent / "metrics.json").read_text())
    assert [run["name"] for run in summary["runs"]] == ["tiny_min2real", "oracle"]
    assert summary["runs"][1]["metrics"]["real"]["ade_m"] == 0.0
    assert summary["adapter"]["tiny_min2real"]["mean_abs_difference"] > 0.0


def test_adapter_images_show_the_plain_resize_for_an_identity_adapter(samples, checkpoint_path):
    from min2real.models.adapter import resize_to

    predictor = E.CheckpointPredictor(checkpoint_path)
    contract = predictor.contract
    # An adapter that returns its input resized (what `loss.adapter_identity` pulls towards).
    predictor.model.adapter.forward = lambda image: resize_to(image, contract.dino_height, contract.dino_width)
    images = np.stack([samples[0][C.INPUT_IMAGE], samples[2][C.INPUT_IMAGE]])
    plain, adapted = predictor.adapter_images(images)
    assert plain.shape == (2, TINY_CONTRACT.dino_height, TINY_CONTRACT.dino_width, 3)
    assert np.abs(plain.astype(int) - adapted.astype(int)).max() <= 1


def test_a_constant_straight_head_scores_low_macro_f1(samples):
    """The failure the issue measured: a head that says "straight" for everything. Plain accuracy is
    the share of straight frames; macro-F1 and balanced accuracy expose it."""

    class AlwaysStraight(GroundTruthPredictor):
        def predict(self, batch):
            outputs = super().predict(batch)
            outputs[C.OUTPUT_STEER_LOGITS] = np.tile(np.array([[5.0, 0.0, 0.0]], np.float32), (len(batch["domain"]), 1))
            return outputs

    metrics = E.compute_metrics(E.run_predictor(AlwaysStraight(samples), samples, batch_size=4))["sim"]
    straight_share = metrics["steer_confusion"][0][0] / metrics["num_samples"]
    assert metrics["steer_accuracy"] == pytest.approx(straight_share)
    assert metrics["steer_predicted_classes"] == ["straight"]
    assert metrics["steer_balanced_accuracy"] == pytest.approx(1 / 3)
    assert metrics["steer_macro_f1"] < 0.5


def test_exported_run_routes_samples_to_the_graph_of_their_domain(samples, monkeypatch):
    class FakeBackend:
        """Graph double: waypoints = target point repeated, plus 1 m to the left for the 'sim' graph."""

        def __init__(self, domain):
            self.domain = domain
            self.input_shapes = {name: shape for name, shape in TINY_CONTRACT.input_shapes(1).items()}

        def infer(self, inputs):
            assert set(inputs) == set(self.input_shapes) and all(v.shape[0] == 1 for v in inputs.values())
            waypoints = np.repeat(inputs[C.INPUT_TARGET_POINT][:, None, :], TINY_CONTRACT.num_waypoints, axis=1)
            waypoints[..., 1] += 1.0 if self.domain == "sim" else 0.0
            return {C.OUTPUT_WAYPOINTS: waypoints, C.OUTPUT_STEER_LOGITS: np.zeros((1, 3), np.float32)}

    class FakePolicy:
        def __init__(self, path):
            domain = "sim" if "sim" in str(path) else "real"
            self.metadata = type("M", (), {"domain": domain, "variant": "min2real"})()
            self.contract, self.backend_name, self.backend = TINY_CONTRACT, "test", FakeBackend(domain)

    import min2real.runtime.policy as policy_module

    monkeypatch.setattr(policy_module, "load_policy", lambda path, backend="auto": FakePolicy(path))
    with pytest.raises(E.EvaluationError, match="two models for domain 'sim'"):
        E.ExportedPredictor(["a_sim.onnx", "b_sim.onnx"])
    only_sim = E.run_predictor(E.ExportedPredictor(["a_sim.onnx"]), samples)
    assert set(only_sim.domain.tolist()) == {C.DOMAIN_SIM} and only_sim.skipped["no model for domain 'real'"] == 6
    both = E.run_predictor(E.ExportedPredictor(["a_sim.onnx", "a_real.onnx"]), samples, batch_size=4)
    sim_rows = both.domain == C.DOMAIN_SIM
    np.testing.assert_allclose(both.waypoints_pred[sim_rows][:, :, 1] - both.target_point[sim_rows][:, None, 1], 1.0)
    np.testing.assert_allclose(both.waypoints_pred[~sim_rows][:, 0], both.target_point[~sim_rows])
    assert both.name == "a_sim+a_real" and both.domain_logits is None


def test_cli_on_synthetic_data_directory(checkpoint_path, tmp_path):
    from min2real.cli import main
    from min2real.data.synthetic import write_synthetic_dataset

    data = tmp_path / "data"
    write_synthetic_dataset(
        data, seed=3, frames=8, routes=1, sim_image_size=(256, 96), real_image_size=(320, 180), contract=TINY_CONTRACT
    )
    out = tmp_path / "report.md"
    code = main(
        [
            "eval",
            "--checkpoint",
            str(checkpoint_path),
            "--checkpoint",
            str(checkpoint_path),
            "--name",
            "first",
            "--name",
            "second",
            "--data",
            str(data),
            "--out",
            str(out),
            "--max-samples",
            "4",
            "--camera-fov",
            "100",
            "--camera-mount",
            "1.0,0,1.6",
            "--camera-horizon",
            "0.42",
        ]
    )
    assert code == 0
    summary = json.loads((tmp_path / "metrics.json").read_text())
    first, second = (run["metrics"] for run in summary["runs"])
    for domain_name in C.DOMAINS:
        assert first[domain_name]["num_samples"] == 4 and np.isfinite(first[domain_name]["ade_m"])
        assert first[domain_name]["ade_m"] == second[domain_name]["ade_m"]  # same weights, same samples
    assert (tmp_path / "figures" / "adapter_first.png").is_file() and "| second | real |" in out.read_text()
    assert main(["eval", "--data", str(data), "--out", str(out)]) == 2  # no run given
    with pytest.raises(E.EvaluationError, match="no samples"):
        E.open_data_dir(tmp_path / "figures", TINY_CONTRACT)


def test_find_layouts_and_empty_data_dir(tmp_path):
    (tmp_path / "carla" / "Town01_scenario" / "route_000" / "measurements").mkdir(parents=True)
    (tmp_path / "navsim" / "navsim_logs" / "mini").mkdir(parents=True)
    garage, navsim = E.find_layouts(tmp_path)
    assert garage == [tmp_path / "carla"]
    assert navsim == [(tmp_path / "navsim", ["mini"])]
    with pytest.raises(E.EvaluationError, match="does not exist"):
        E.find_layouts(tmp_path / "missing")


def test_situation_plot_marks_missing_situations_instead_of_drawing_zero(tmp_path):
    from min2real.evaluation.report import plot_situation_ade, situation_ade_values, situation_order

    bars = [
        ("a (sim)", {"slow (0.5-5 m/s)": {"ade_m": 1.5}, "fast (>=10 m/s)": {"ade_m": 0.0}}),
        ("b (sim)", {"standing (<0.5 m/s)": {"ade_m": 2.0}, "slow (0.5-5 m/s)": {"ade_m": 0.5}}),
    ]
    situations = situation_order(bars)
    assert situations == ["slow (0.5-5 m/s)", "fast (>=10 m/s)", "standing (<0.5 m/s)"]
    values = situation_ade_values(bars, situations)
    np.testing.assert_array_equal(values[0], [1.5, 0.0, np.nan])  # a measured 0 stays 0, a missing one is NaN
    np.testing.assert_array_equal(values[1], [0.5, np.nan, 2.0])

    class Run:
        def __init__(self, name):
            self.name = name

    metrics = [{"sim": {"situations": {"speed": bars[0][1]}}}, {"sim": {"situations": {"speed": bars[1][1]}}}]
    path = plot_situation_ade(tmp_path / "speed.png", [Run("a"), Run("b")], metrics, "speed")
    assert path.is_file() and path.stat().st_size > 0
