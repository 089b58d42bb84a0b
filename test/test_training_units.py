"""Unit tests of the training pieces: config + overrides, losses, noise augmentation, LR schedule,
metrics, RNG capture/restore through a weights_only checkpoint."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from min2real.contract import (
    DOMAIN_REAL,
    DOMAIN_SIM,
    STEER_LEFT,
    STEER_STRAIGHT,
    TINY_CONTRACT,
    steer_class_from_waypoints,
)
from min2real.data.config import TEST_SPLITS
from min2real.evaluation import metrics
from min2real.training.augment import add_gaussian_noise
from min2real.training.config import ConfigError, TrainConfig, apply_overrides, parse_override
from min2real.training.distributed import capture_rng_state, restore_rng_state
from min2real.training.loaders import SkipSampler
from min2real.training.losses import (
    compute_losses,
    domain_bce_loss,
    steer_ce_loss,
    turning_samples,
    waypoint_l1_loss,
)
from min2real.training.recipes import ABLATION_RECIPES, OTHER_RECIPES, TABLE_I_RECIPES, load_miniature, load_recipe
from min2real.training.trainer import drop_sim_lidar, warmup_cosine

CONFIG_DIR = Path(__file__).resolve().parents[1] / "training"


# ---- config -------------------------------------------------------------------------------------
def test_override_values_are_parsed_as_yaml():
    assert parse_override("train.lr=3e-4") == (["train", "lr"], 3e-4)
    assert parse_override("data.sim_roots=[a, b]") == (["data", "sim_roots"], ["a", "b"])
    assert parse_override("model.use_lidar=false") == (["model", "use_lidar"], False)
    with pytest.raises(ConfigError, match="no '='"):
        parse_override("train.lr")


def test_overrides_build_a_config_and_unknown_keys_are_named():
    config = TrainConfig.from_dict(
        apply_overrides(
            {"model": {"variant": "baseline", "tiny": True}, "contract": "tiny"},
            ["train.lr=0.002", "loss.turn_weight=3", "model.variant=min2real", "train.noise_augmentation=true"],
        )
    )
    assert config.train.lr == pytest.approx(0.002)
    assert config.loss.turn_weight == 3.0
    assert config.model_config().variant == "min2real" and config.model_config().use_adapter
    assert config.build_contract() == TINY_CONTRACT
    assert config.train.noise_augmentation is True
    with pytest.raises(ConfigError, match="'lrr'"):
        TrainConfig.from_dict(apply_overrides({}, ["train.lrr=1"]))
    with pytest.raises(ConfigError, match="unknown section 'trian'"):
        apply_overrides({}, ["trian.lr=1"])
    with pytest.raises(ConfigError, match="no_such_field"):
        TrainConfig.from_dict({"model": {"variant": "baseline", "no_such_field": 1}})
    with pytest.raises(ConfigError, match="not a known variant"):
        TrainConfig.from_dict({"model": {"variant": "min3real"}})
    with pytest.raises(ConfigError, match="expected an integer"):
        TrainConfig.from_dict({"train": {"batch_size": 2.5}})


def test_contract_override_on_a_preset_and_round_trip():
    config = TrainConfig.from_dict(
        apply_overrides(
            {"contract": "tiny", "model": {"variant": "baseline", "tiny": True}}, ["contract.num_waypoints=4"]
        )
    )
    contract = config.build_contract()
    assert contract.num_waypoints == 4 and contract.camera_height == TINY_CONTRACT.camera_height
    again = TrainConfig.from_dict(config.to_dict())
    assert again.to_dict() == config.to_dict()


ALL_RECIPES = TABLE_I_RECIPES + ABLATION_RECIPES + OTHER_RECIPES


@pytest.mark.parametrize("recipe", ALL_RECIPES)
def test_recipes_load_at_full_size(recipe):
    config = load_recipe(recipe, ["model.dinov2_checkpoint=/data/dinov2_vits14_pretrain.pth"])
    if recipe in TABLE_I_RECIPES + ABLATION_RECIPES:
        assert config.model_config().variant == recipe
        assert config.build_contract().camera_height == 384  # real-size contract
    model = config.model_config()
    # Real training images exactly where a variant needs them: the discriminator, or real driving labels.
    assert bool(config.data.real_roots) == (model.use_discriminator or config.data.real_driving_labels)
    assert config.train.noise_augmentation == (recipe in ("augment", "full", "ablation_augment"))
    # The selection rule: {S} recipes select on sim, {S, R} recipes on the held-out real logs.
    assert config.selection_domain() == ("real" if config.data.real_driving_labels else "sim")
    for split in (config.data.real_split, config.data.validation_real_split):
        assert split not in TEST_SPLITS
    if model.use_lidar:
        assert config.train.lidar_dropout > 0  # the heads also see the all-zero BEV of the real stream
    if model.use_steer_head:
        assert config.loss.steer_ce > 0 and config.loss.steer_class_balance == "batch"


def test_each_ablation_differs_from_the_baseline_in_one_component():
    def settings(name):
        config = load_recipe(name, ["model.dinov2_checkpoint=/x.pth"])
        model = config.model_config()
        return {
            "extractor": model.image_backbone == "dinov2",
            "adapter": model.use_adapter,
            "discriminator": model.use_discriminator,
            "steer_head": model.use_steer_head,
            "augment": config.train.noise_augmentation,
        }

    baseline = settings("baseline")
    assert not any(baseline.values())
    expected = {
        "ablation_augment": {"augment"},
        "ablation_discriminator": {"discriminator"},
        "ablation_steer_head": {"steer_head"},
        "ablation_extractor": {"extractor"},
        "ablation_adapter": {"extractor", "adapter"},  # the V2R adapter + real extractor pair
    }
    for name, components in expected.items():
        differing = {key for key, value in settings(name).items() if value != baseline[key]}
        assert differing == components, name


def test_turn_weighting_is_used_by_a_named_recipe():
    assert load_recipe("min2real_turns", ["model.dinov2_checkpoint=/x.pth"]).loss.turn_weight > 1.0


def test_dinov2_checkpoint_missing_says_how_to_set_it():
    with pytest.raises(ConfigError, match="--set model.dinov2_checkpoint="):
        TrainConfig.load(CONFIG_DIR / "min2real.yaml")


def test_tiny_config_accepts_every_variant():
    for variant in ("baseline", "min2real", "full"):
        config = TrainConfig.load(CONFIG_DIR / "tiny.yaml", [f"model.variant={variant}"])
        assert config.model_config().variant == variant
        assert config.build_contract() == TINY_CONTRACT


def test_miniatures_keep_the_recipe_and_shrink_the_rest(tmp_path):
    roots = {"sim": tmp_path / "train" / "carla", "real": tmp_path / "train" / "navsim"}
    val = {"sim": tmp_path / "val" / "carla", "real": tmp_path / "val" / "navsim"}
    full = load_miniature("full", roots, val, steps=7)
    assert full.model_config().variant == "full" and full.build_contract() == TINY_CONTRACT
    assert full.train.max_steps == 7 and full.train.noise_augmentation and full.data.real_driving_labels
    assert full.model_config().dinov2_weights == "timm_file"  # the stand-in extractor, not hub weights
    assert full.model_config().dinov2_checkpoint.endswith(".safetensors")
    baseline = load_miniature("baseline", roots, val, steps=7)
    assert not baseline.data.real_roots and baseline.data.val_real_roots  # sim only; real still measured
    assert not baseline.model_config().resnet_pretrained


def test_selection_rule_and_its_refusals():
    sim_only = {
        "model": {"variant": "min2real", "tiny": True},
        "data": {"val_sim_roots": ["v"], "val_real_roots": ["r"]},
    }
    assert TrainConfig.from_dict(sim_only).selection_domain() == "sim"  # {S}: never select on real labels
    mixed = {**sim_only, "data": {**sim_only["data"], "real_driving_labels": True}}
    assert TrainConfig.from_dict(mixed).selection_domain() == "real"
    with pytest.raises(ConfigError, match="would use them after all"):
        TrainConfig.from_dict(apply_overrides(sim_only, ["train.select_on=real"]))
    with pytest.raises(ConfigError, match="data.val_real_roots is empty"):
        TrainConfig.from_dict(
            apply_overrides({**mixed, "data": {"real_driving_labels": True}}, ["train.select_on=real"])
        )
    with pytest.raises(ConfigError, match="is a test split"):
        TrainConfig.from_dict(apply_overrides(mixed, ["data.val_real_split=navtest"]))


# ---- losses -------------------------------------------------------------------------------------
def _path(headings_deg: list[float], step_m: float = 2.0) -> np.ndarray:
    """(T, 2) waypoints (x forward, y left) of segments of `step_m` with the given headings."""
    angle = np.radians(headings_deg)
    return np.cumsum(step_m * np.stack([np.cos(angle), np.sin(angle)], axis=-1), axis=0)


def test_turn_samples_cover_approach_middle_and_exit():
    straight = _path([0.0] * 8)
    standing = np.zeros((8, 2))
    approach = _path([0, 0, 0, 10, 30, 50, 70, 90])  # the turn starts ahead: LEFT
    # The exit: the last 18 degrees of a left turn in the first metres, then straight on. The
    # steering class is already STRAIGHT (end heading below 20 degrees); the next metres still curve.
    exit_turn = _path([6, 12, 18, 18, 18, 18, 18, 18])
    gentle = _path([1, 2, 3, 4, 5, 5, 5, 5])  # lane keeping on a slight bend: not a turn
    waypoints = np.stack([straight, standing, approach, exit_turn, gentle]).astype(np.float32)
    assert steer_class_from_waypoints(waypoints, TINY_CONTRACT).tolist() == [
        STEER_STRAIGHT,
        STEER_STRAIGHT,
        STEER_LEFT,
        STEER_STRAIGHT,
        STEER_STRAIGHT,
    ]
    assert turning_samples(torch.from_numpy(waypoints), 10.0).tolist() == [False, False, True, True, False]
    mirrored = waypoints * np.array([1.0, -1.0], dtype=np.float32)  # right turns count the same
    assert turning_samples(torch.from_numpy(mirrored), 10.0).tolist() == [False, False, True, True, False]


def test_waypoint_l1_masks_unlabelled_and_turn_weights_are_normalised_by_their_sum():
    straight, turn = _path([0.0] * 8), _path([0, 0, 0, 10, 30, 50, 70, 90])
    target = torch.tensor(np.stack([straight, turn, straight]), dtype=torch.float32)
    pred = target.clone()
    pred[0] += 1.0  # straight sample: L1 error 1 m
    pred[1] += 2.0  # turning sample: L1 error 2 m
    pred[2] += 100.0  # unlabelled sample: must not count
    pred.requires_grad_(True)
    has_labels = torch.tensor([True, True, False])
    assert waypoint_l1_loss(pred, target, has_labels).item() == pytest.approx(1.5)
    # Weight 3 on the turn: (1 * 1 + 3 * 2) / (1 + 3), a weighted mean in metres, not (1 + 6) / 2.
    assert waypoint_l1_loss(pred, target, has_labels, turn_weight=3.0).item() == pytest.approx(7.0 / 4.0)
    # Equal errors: turn weighting leaves the loss unchanged.
    assert waypoint_l1_loss(target + 1.0, target, torch.ones(3, dtype=torch.bool), turn_weight=5.0).item() == (
        pytest.approx(1.0)
    )
    loss = waypoint_l1_loss(pred, target, torch.zeros(3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and pred.grad is not None and torch.all(pred.grad == 0)


def test_lidar_dropout_zeroes_sim_bevs_only_at_the_given_rate():
    bev = torch.ones(4000, 1, 4, 4)
    domain = torch.tensor([DOMAIN_SIM, DOMAIN_REAL] * 2000)
    dropped = drop_sim_lidar(bev, domain, 0.3, torch.Generator().manual_seed(0))
    zero = dropped.flatten(1).abs().sum(dim=1) == 0
    assert not zero[domain == DOMAIN_REAL].any()  # real BEVs are left as they are
    assert zero[domain == DOMAIN_SIM].float().mean().item() == pytest.approx(0.3, abs=0.03)
    kept = ~zero & (domain == DOMAIN_SIM)
    assert torch.equal(dropped[kept], bev[kept])


def test_class_balanced_steer_ce_weighs_every_present_class_equally():
    # 6 straight samples with CE ~0 and 1 left sample with CE ~10: plain mean ~1.4, balanced ~5.
    logits = torch.tensor([[10.0, 0.0, 0.0]] * 6 + [[10.0, 0.0, 0.0]])
    target = torch.tensor([STEER_STRAIGHT] * 6 + [STEER_LEFT])
    labelled = torch.ones(7, dtype=torch.bool)
    plain = steer_ce_loss(logits, target, labelled, class_balance="none").item()
    balanced = steer_ce_loss(logits, target, labelled, class_balance="batch").item()
    assert plain == pytest.approx(10.0 / 7, rel=1e-3)
    assert balanced == pytest.approx(10.0 / 2, rel=1e-3)
    focal = steer_ce_loss(logits, target, labelled, class_balance="none", focal_gamma=2.0).item()
    assert focal == pytest.approx(plain, rel=1e-3)  # the confidently right samples contribute ~0 either way
    with pytest.raises(ValueError, match="class_balance"):
        steer_ce_loss(logits, target, labelled, class_balance="inverse")


def test_steer_ce_and_domain_bce():
    logits = torch.tensor([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
    right = torch.tensor([0, 1, 2])
    labelled = torch.tensor([True, True, False])
    assert steer_ce_loss(logits, right, labelled).item() < 1e-3
    assert steer_ce_loss(logits, torch.tensor([1, 0, 0]), labelled).item() > 9.0
    domain = torch.tensor([DOMAIN_SIM, DOMAIN_REAL])
    assert domain_bce_loss(torch.tensor([-10.0, 10.0]), domain).item() < 1e-3
    assert domain_bce_loss(torch.tensor([10.0, -10.0]), domain).item() > 9.0
    assert domain_bce_loss(torch.zeros(2), domain).item() == pytest.approx(math.log(2.0))


def test_compute_losses_weights_and_parts():
    from min2real.training.config import LossSection

    outputs = {
        "waypoints": torch.zeros(2, 4, 2),
        "steer_logits": torch.zeros(2, 3),
        "domain_logits": torch.zeros(2),
    }
    batch = {
        "waypoints": torch.ones(2, 4, 2),
        "steer_class": torch.tensor([0, 1]),
        "domain": torch.tensor([0, 1]),
        "has_labels": torch.tensor([True, True]),
    }
    weights = LossSection(waypoint_l1=2.0, turn_weight=1.0, steer_ce=0.5, domain_bce=0.25)
    result = compute_losses(outputs, batch, weights)
    expected = 2.0 * 1.0 + 0.5 * math.log(3.0) + 0.25 * math.log(2.0)
    assert result.total.item() == pytest.approx(expected, rel=1e-5)
    assert set(result.parts) == {"waypoint_l1", "steer_ce", "domain_bce"}
    del outputs["domain_logits"]
    assert "domain_bce" not in compute_losses(outputs, batch, weights).parts


# ---- augmentation -------------------------------------------------------------------------------
def test_gaussian_noise_level_per_sample_and_range():
    generator = torch.Generator().manual_seed(0)
    image = torch.full((64, 3, 24, 24), 128.0)
    noisy, level = add_gaussian_noise(image, 100.0, generator)
    assert noisy.shape == image.shape and noisy.min() >= 0 and noisy.max() <= 255
    assert level.min() >= 0 and level.max() <= 100 and level.std() > 10  # drawn per sample, spread over [0, 100]
    measured = (noisy - image).flatten(1).std(dim=1)
    low = level < 30  # clipping at 0/255 only shrinks large levels
    assert torch.allclose(measured[low], level[low], rtol=0.15, atol=0.5)
    quiet, level0 = add_gaussian_noise(image, 0.0, generator)
    assert torch.equal(quiet, image) and torch.all(level0 == 0)
    again, _ = add_gaussian_noise(image, 100.0, torch.Generator().manual_seed(0))
    assert torch.equal(again, noisy)  # reproducible from the generator
    with pytest.raises(ValueError, match="expected \\(B, 3, H, W\\)"):
        add_gaussian_noise(torch.zeros(3, 8, 8), 10.0)


# ---- schedule -----------------------------------------------------------------------------------
def test_warmup_cosine_schedule():
    total, warmup = 100, 10
    values = [warmup_cosine(step, total, warmup, 0.1) for step in range(total + 1)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(values[:9], values[1:10]))  # rising warm-up
    assert all(a >= b for a, b in zip(values[10:], values[11:]))  # falling cosine
    assert values[55] == pytest.approx(0.1 + 0.9 * 0.5, rel=1e-6)  # half-way
    assert values[total] == pytest.approx(0.1)
    assert warmup_cosine(0, 10, 0, 0.0) == pytest.approx(1.0)


def test_skip_sampler_resumes_inside_an_epoch():
    assert list(SkipSampler(range(10), 4)) == [4, 5, 6, 7, 8, 9]
    assert len(SkipSampler(range(10), 4)) == 6


# ---- metrics ------------------------------------------------------------------------------------
def test_displacement_metrics():
    gt = np.zeros((2, 4, 2), np.float32)
    pred = gt.copy()
    pred[0, :, 0] = [0.0, 0.0, 0.0, 4.0]  # only the last waypoint off by 4 m
    pred[1, :, 1] = 3.0  # every waypoint off by 3 m
    assert metrics.average_displacement_error(pred, gt) == pytest.approx((4.0 + 12.0) / 8)
    assert metrics.final_displacement_error(pred, gt) == pytest.approx(3.5)
    assert metrics.l2_per_step(pred, gt) == pytest.approx([1.5, 1.5, 1.5, 3.5])
    assert metrics.average_displacement_error(np.zeros((0, 4, 2)), np.zeros((0, 4, 2))) is None


def test_steering_and_discriminator_metrics():
    confusion = metrics.steering_confusion([0, 1, 2, 1], [0, 1, 1, 2])
    assert confusion.tolist() == [[1, 0, 0], [0, 1, 1], [0, 1, 0]]
    assert metrics.steering_accuracy([0, 1, 2, 1], [0, 1, 1, 2]) == pytest.approx(0.5)
    assert metrics.discriminator_accuracy([2.0, -1.0, 0.5, -3.0], [1, 0, 0, 1]) == pytest.approx(0.5)


def test_turn_split_and_accumulator_per_domain():
    times = TINY_CONTRACT.waypoint_times_s
    straight = np.stack([5.0 * times, np.zeros_like(times)], axis=-1)
    angle = np.linspace(0.0, math.pi / 2, len(times))  # quarter circle to the left
    left = np.stack([10.0 * np.sin(angle), 10.0 * (1 - np.cos(angle))], axis=-1)
    gt = np.stack([straight, left]).astype(np.float32)
    assert metrics.turn_mask(gt, TINY_CONTRACT).tolist() == [False, True]

    accumulator = metrics.MetricsAccumulator(TINY_CONTRACT)
    pred = gt.copy()
    pred[1] += 1.0  # the turn is off by sqrt(2) m everywhere
    accumulator.add(
        {
            "waypoints": torch.from_numpy(pred),
            "steer_logits": torch.tensor([[5.0, 0, 0], [5.0, 0, 0]]),
            "domain_logits": torch.tensor([1.0, 1.0]),
        },
        {
            "waypoints": torch.from_numpy(gt),
            "steer_class": torch.tensor([STEER_STRAIGHT, STEER_LEFT]),
            "domain": torch.tensor([DOMAIN_REAL, DOMAIN_REAL]),
            "has_labels": torch.tensor([True, True]),
        },
    )
    accumulator.add(
        {
            "waypoints": torch.zeros(1, len(times), 2),
            "steer_logits": torch.zeros(1, 3),
            "domain_logits": torch.tensor([1.0]),
        },
        {
            "waypoints": torch.zeros(1, len(times), 2),
            "steer_class": torch.tensor([0]),
            "domain": torch.tensor([DOMAIN_SIM]),
            "has_labels": torch.tensor([False]),
        },
    )
    report = accumulator.compute()
    real = report["real"]
    assert real["ade_m"] == pytest.approx(math.sqrt(2) / 2, rel=1e-5)
    assert real["turn"]["ade_m"] == pytest.approx(math.sqrt(2), rel=1e-5)
    assert real["straight"]["ade_m"] == pytest.approx(0.0, abs=1e-6)
    assert real["steer_accuracy"] == pytest.approx(0.5) and real["turn"]["steer_accuracy"] == 0.0
    assert real["discriminator_accuracy"] == 1.0
    assert report["sim"]["num_samples"] == 0 and report["sim"]["ade_m"] is None
    assert report["sim"]["discriminator_accuracy"] == 0.0
    flat = metrics.flatten_metrics(report, "val")
    assert flat["val/real/turn/ade_m"] == pytest.approx(math.sqrt(2), rel=1e-5)


# ---- RNG state through a weights_only checkpoint ------------------------------------------------
def test_rng_state_round_trips_through_weights_only_checkpoint(tmp_path):
    from min2real.models.checkpoint import load_checkpoint
    from min2real.training.checkpoint import save_checkpoint

    random.seed(1)
    np.random.seed(2)  # noqa: NPY002 - the trainer checkpoints the legacy global RNG
    torch.manual_seed(3)
    state = capture_rng_state(torch.device("cpu"))
    expected = (random.random(), np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    save_checkpoint(tmp_path / "c.pt", {"model": {}, "model_config": {}, "contract": {}, "rng": state})
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"], torch.device("cpu"))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected  # noqa: NPY002


def test_index_time_data_problems_are_reported():
    """Frames skipped while indexing (missing files, refused logs) never reach a batch, so the
    trainer reports them at start-up instead of the epoch report."""
    from types import SimpleNamespace

    from min2real.data import DataProblem, DataProblems
    from min2real.training.trainer import index_problems_report

    problems = DataProblems()
    problems.add(DataProblem("missing_file", "route0/rgb/0003.jpg", "frame file is missing"))
    problems.add(DataProblem("unsafe_pickle", "navsim_logs/trainval/evil.pkl", "refused global 'os.system'"))
    report = index_problems_report({"training": SimpleNamespace(problems=problems), "validation": None})
    assert "training data, skipped while indexing" in report
    assert "2 skipped" in report and "missing_file 1" in report and "evil.pkl" in report
    assert index_problems_report({"training": SimpleNamespace(problems=DataProblems()), "validation": None}) == ""


@pytest.mark.parametrize("real_driving_labels", [False, True])
def test_real_samples_feed_the_losses_of_their_variant(real_driving_labels):
    """{S} variants (min2real): an unlabelled real sample trains only the discriminator (its
    driving losses are masked, and the adapter never sees real images). {S, R} variants
    (mix_min2real, full): the same sample also trains the waypoint and steering heads."""
    from min2real.models.model import build_model
    from min2real.models.variants import variant_config
    from min2real.training.config import LossSection

    torch.manual_seed(0)
    model = build_model(variant_config("min2real", tiny=True), TINY_CONTRACT)
    model.set_training_progress(1.0)
    batch_size = 2
    inputs = {name: torch.rand(shape) for name, shape in TINY_CONTRACT.input_shapes(batch_size).items()}
    inputs["image"] = inputs["image"] * 255.0
    inputs["lidar_bev"].zero_()  # real samples carry an all-zero BEV
    batch = {
        "waypoints": torch.rand(batch_size, TINY_CONTRACT.num_waypoints, 2) * 5.0,
        "steer_class": torch.tensor([STEER_LEFT, STEER_STRAIGHT]),
        "domain": torch.full((batch_size,), DOMAIN_REAL),
        "has_labels": torch.full((batch_size,), real_driving_labels),
    }
    losses = compute_losses(model(inputs, batch["domain"]), batch, LossSection())
    losses.total.backward()

    def grad_norm(module) -> float:
        return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)

    assert grad_norm(model.discriminator) > 0
    assert grad_norm(model.adapter) == 0  # real images bypass the V2R adapter
    for head in (model.waypoint_head, model.steer_head):
        assert (grad_norm(head) > 0) == real_driving_labels
