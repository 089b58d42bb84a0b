"""The experiment's statistics and sim-to-real measures on inputs whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from min2real.evaluation.domain_gap import (
    action_probe,
    discriminator_accuracy,
    linear_cka,
    proxy_a_distance,
    rbf_mmd,
)
from min2real.evaluation.statistics import aligned_matrix, bootstrap_interval, mean_std, paired_difference


def _scores(seed: int, shape=(3, 12), mean: float = 50.0, std: float = 10.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, std, size=shape)


# ---- statistics --------------------------------------------------------------------------------
def test_mean_std_is_over_seeds_of_the_route_means():
    matrix = [[10.0, 30.0], [20.0, 40.0], [30.0, 50.0]]  # seed means 20, 30, 40
    assert mean_std(matrix) == pytest.approx((30.0, 10.0))
    mean, std = mean_std([[10.0, 30.0]])
    assert mean == 20.0 and np.isnan(std)


def test_bootstrap_interval_of_a_constant_is_degenerate():
    interval = bootstrap_interval(np.full((3, 12), 42.5))
    assert interval.estimate == interval.low == interval.high == 42.5


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_routes():
    few, many = bootstrap_interval(_scores(0, (3, 6))), bootstrap_interval(_scores(0, (3, 200)))
    for interval in (few, many):
        assert interval.low < interval.estimate < interval.high
    assert many.high - many.low < few.high - few.low
    assert many.low < 50.0 < many.high  # the true mean, 200 routes x 3 seeds of N(50, 10)


def test_paired_difference_of_identical_runs_is_zero_and_not_claimed():
    runs = _scores(1)
    difference = paired_difference(runs, runs.copy())
    assert difference.estimate == difference.low == difference.high == 0.0
    assert difference.low <= 0.0 <= difference.high and not difference.claimed


def test_paired_difference_claims_a_consistent_gain_and_not_noise():
    baseline = _scores(2)
    gain = paired_difference(baseline + 8.0 + np.random.default_rng(3).normal(0, 2, baseline.shape), baseline)
    assert gain.claimed and gain.low > 0.0 and gain.estimate == pytest.approx(8.0, abs=1.0)
    # per-route differences of +-5 that cancel: the interval must hold zero
    alternating = np.tile([5.0, -5.0], (3, 6))
    assert not paired_difference(baseline + alternating, baseline).claimed
    # too few (seed, route) pairs to claim anything, however large and consistent
    assert not paired_difference([[90.0]], [[10.0]]).claimed
    few = paired_difference([[90.0, 80.0, 85.0, 95.0, 70.0]], [[10.0, 20.0, 15.0, 5.0, 30.0]])
    assert few.excludes_zero and not few.claimed
    assert paired_difference([[90.0, 80.0, 85.0], [95.0, 70.0, 75.0]], [[10.0, 20.0, 15.0], [5.0, 30.0, 25.0]]).claimed


def test_paired_difference_refuses_unpaired_and_bad_inputs():
    with pytest.raises(ValueError, match="same seeds and routes"):
        paired_difference(_scores(4, (3, 12)), _scores(5, (2, 12)))
    with pytest.raises(ValueError, match="non-finite"):
        bootstrap_interval([[1.0, float("nan")]])
    with pytest.raises(ValueError, match="no score for routes"):
        aligned_matrix({0: {"a": 1.0}}, [0], ["a", "b"])


# ---- sim-to-real measures ----------------------------------------------------------------------
def _features(seed: int, n: int = 200, d: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_identical_feature_sets_have_no_domain_gap():
    features = _features(0)
    assert proxy_a_distance(features, features.copy())["proxy_a_distance"] == pytest.approx(0.0, abs=0.05)
    assert linear_cka(features, features.copy()) == pytest.approx(1.0, abs=1e-6)
    assert abs(rbf_mmd(features, features.copy())["mmd2"]) < 0.02


def test_separable_feature_sets_have_the_largest_gap():
    sim, real = _features(1), _features(2)
    real[:, 0] += 12.0  # one direction separates the domains by 12 standard deviations
    assert proxy_a_distance(sim, real)["proxy_a_distance"] == pytest.approx(2.0, abs=0.05)
    assert rbf_mmd(sim, real)["mmd2"] > 10 * abs(rbf_mmd(sim, _features(3))["mmd2"])
    threshold = torch.nn.Linear(16, 1)
    with torch.no_grad():
        threshold.weight.zero_()
        threshold.weight[0, 0] = 1.0
        threshold.bias.fill_(-6.0)  # "real" when feature 0 > 6
    assert discriminator_accuracy(threshold, sim, real) == pytest.approx(1.0)
    assert discriminator_accuracy(threshold, sim, sim) == pytest.approx(0.5)


def test_cka_is_invariant_to_rotation_and_scale_and_low_for_unrelated_features():
    features = _features(4)
    rotation, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(16, 16)))
    assert linear_cka(features, 3.0 * features @ rotation) == pytest.approx(1.0, abs=1e-5)
    assert linear_cka(features, _features(6)) < 0.3
    with pytest.raises(ValueError, match="paired rows"):
        linear_cka(features, features[:10])


def test_action_probe_transfers_a_shared_code_and_not_noise():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, size=300)
    code = np.eye(3, dtype=np.float32)[labels] * 4.0
    sim = np.concatenate([code, rng.normal(size=(300, 5))], axis=1).astype(np.float32)
    real = np.concatenate([code, rng.normal(size=(300, 5))], axis=1).astype(np.float32)
    transfer = action_probe(sim, labels, real, labels, num_classes=3)
    assert transfer["real_balanced_accuracy"] == pytest.approx(1.0) and transfer["chance"] == pytest.approx(1 / 3)
    noise = action_probe(sim, labels, rng.normal(size=(300, 8)).astype(np.float32), labels, num_classes=3)
    assert noise["real_balanced_accuracy"] < 0.5


def test_the_papers_comparisons_pair_each_recipe_with_its_own_reference_over_shared_seeds(tmp_path):
    """mix_min2real is paired with mixdata (not the baseline), over the seeds both finished and the
    same routes; a comparison whose recipes share no seed has no difference; one outside the plan's
    recipes is not listed."""
    import json

    from min2real.experiments.plan import parse_args, plan_from_args
    from min2real.experiments.results import comparison_statistics

    plan = plan_from_args(
        parse_args(
            ["--out", str(tmp_path), "--recipes", "baseline", "mixdata", "mix_min2real", "full", "--seeds", "0", "1"]
        )
    )
    routes = [f"r{index}" for index in range(6)]
    finished = {  # recipe: {seed: DS of every route}
        "baseline": {0: 10.0, 1: 20.0},
        "mixdata": {0: 40.0, 1: 50.0},
        "mix_min2real": {1: 65.0},  # seed 0 not finished
        "full": {},
    }
    for recipe, per_seed in finished.items():
        for seed, score in per_seed.items():
            folder = plan.closed_loop_dir(recipe, seed, plan.test_set, "sim")
            folder.mkdir(parents=True)
            document = {"routes": [{"name": name, "driving_score": score + index} for index, name in enumerate(routes)]}
            (folder / "results.json").write_text(json.dumps(document))
    rows = {(row["recipe"], row["reference"]): row for row in comparison_statistics(plan, plan.test_set, "sim")}
    assert set(rows) == {("mixdata", "baseline"), ("mix_min2real", "mixdata"), ("full", "mix_min2real")}
    assert rows[("mixdata", "baseline")]["difference"]["estimate"] == pytest.approx(30.0)
    assert rows[("mixdata", "baseline")]["difference"]["seeds"] == [0, 1]
    own = rows[("mix_min2real", "mixdata")]["difference"]
    assert own["seeds"] == [1] and own["cells"] == 6 and own["estimate"] == pytest.approx(15.0)
    assert own["claimed"] and own["low"] == pytest.approx(15.0)  # the same +15 on every route
    assert rows[("full", "mix_min2real")]["difference"] is None  # full has no finished drive


def test_ablation_augment_is_reported_from_augments_runs_and_trained_once(tmp_path):
    """training/ablation_augment.yaml is Table I's augment under Fig. 6's name: the same settings in
    every section but the variant's name (checked here, or the alias would be wrong), so the plan
    trains it once, in augment's folder, and reports it under both names."""
    from min2real.experiments.jobs import job_order
    from min2real.experiments.plan import SAME_RUNS, parse_args, plan_from_args
    from min2real.models.variants import model_config_from_mapping
    from min2real.training.recipes import load_recipe

    for alias, twin in SAME_RUNS.items():
        configs = [load_recipe(name, ["model.dinov2_weights=none"]).to_dict() for name in (alias, twin)]
        models = [model_config_from_mapping(config.pop("model")).to_dict() for config in configs]
        assert models[0].pop("variant") == alias and models[1].pop("variant") == twin
        assert models[0] == models[1] and configs[0] == configs[1]

    both = plan_from_args(parse_args(["--out", str(tmp_path), "--recipes", "baseline", "augment", "ablation_augment"]))
    assert both.trained_recipes == ("baseline", "augment")
    assert {recipe for recipe, _ in job_order(both)} == {"baseline", "augment"}
    assert both.run_dir("ablation_augment", 1) == both.run_dir("augment", 1)
    alone = plan_from_args(parse_args(["--out", str(tmp_path), "--recipes", "baseline", "ablation_augment"]))
    assert alone.trained_recipes == (
        "baseline",
        "ablation_augment",
    )  # no twin in the plan: trained, in augment's folder
    assert alone.run_dir("ablation_augment", 0) == both.run_dir("augment", 0)
