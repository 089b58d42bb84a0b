"""Mixed-domain dataset, the sim:real ratio sampler (also under DDP-style sharding), collation
of broken samples through DataLoader workers, and the data config entry point."""

from __future__ import annotations

import math

import numpy as np
import pytest

from min2real import contract as C
from min2real.contract import TINY_CONTRACT
from min2real.data import (
    DataConfigError,
    DataProblem,
    DataProblems,
    DataSection,
    DomainRatioSampler,
    MixedDomainDataset,
    batch_size,
    build_sampler,
    collate_samples,
    datasets_from_config,
    worker_init_fn,
)
from min2real.data.common import build_sample
from min2real.data.synthetic import write_synthetic_dataset


class _FakeDomain:
    """Tiny in-memory dataset: every `broken_every`-th item is a DataProblem."""

    def __init__(self, size: int, domain: str, broken_every: int = 0) -> None:
        self.size, self.domain, self.broken_every = size, domain, broken_every

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        if self.broken_every and index % self.broken_every == 0:
            return DataProblem("bad_image", f"{self.domain}/{index}.jpg", "truncated")
        waypoints = np.stack([np.arange(1, 9, dtype=np.float32), np.zeros(8, np.float32)], axis=1)
        return build_sample(
            np.full((48, 128, 3), index % 255, np.uint8),
            None,
            np.array([10.0, 0.0]),
            1.0,
            C.COMMAND_STRAIGHT,
            waypoints,
            self.domain,
            True,
            TINY_CONTRACT,
        )


def _mixed(num_sim=30, num_real=10, broken_every=0):
    return MixedDomainDataset(_FakeDomain(num_sim, "sim", broken_every), _FakeDomain(num_real, "real", broken_every))


@pytest.mark.parametrize("ratio, expected_sim", [(1.0, 200), (3.0, 300), (1 / 3, 100), (math.inf, 400), (0.0, 0)])
def test_sampler_respects_the_ratio(ratio, expected_sim):
    dataset = _mixed()
    sampler = DomainRatioSampler(dataset, sim_real_ratio=ratio, num_samples=400, seed=1)
    indices = np.array(list(sampler))
    assert len(indices) == len(sampler) == 400
    assert int((dataset.domains[indices] == C.DOMAIN_SIM).sum()) == expected_sim
    # Without replacement inside each pass: the 10 real items appear equally often.
    if 0 < expected_sim < 400:
        counts = np.bincount(indices[indices >= 30] - 30, minlength=10)
        assert counts.max() - counts.min() <= 1


def test_sampler_shards_are_disjoint_and_reshuffle_per_epoch():
    dataset = _mixed()
    world = 3
    samplers = [
        DomainRatioSampler(dataset, 1.0, num_samples=100, seed=7, rank=r, world_size=world) for r in range(world)
    ]
    shards = [list(s) for s in samplers]
    assert all(len(shard) == 34 for shard in shards)
    draw = samplers[0].epoch_indices()
    padded = np.concatenate([draw, draw[: 34 * world - 100]])
    # Round-robin dealing of one shared draw: together the ranks cover every position exactly once.
    for rank, shard in enumerate(shards):
        np.testing.assert_array_equal(shard, padded[rank::world])
    first_epoch = list(samplers[0])
    samplers[0].set_epoch(1)
    assert list(samplers[0]) != first_epoch
    samplers[0].set_epoch(0)
    assert list(samplers[0]) == first_epoch
    for shard in shards:  # each rank keeps roughly the ratio
        assert 0.3 < np.mean(dataset.domains[shard] == C.DOMAIN_SIM) < 0.7


def test_sampler_refuses_a_ratio_the_data_cannot_serve():
    sim_only = MixedDomainDataset(_FakeDomain(5, "sim"), None)
    with pytest.raises(ValueError, match="real samples"):
        DomainRatioSampler(sim_only, 1.0)
    assert len(list(DomainRatioSampler(sim_only, math.inf, num_samples=12))) == 12
    assert build_sampler(sim_only, DataSection(sim_real_ratio=1.0)).sim_fraction == 1.0


def test_collate_drops_broken_samples_and_keeps_shapes():
    dataset = _mixed(broken_every=3)
    batch = collate_samples([dataset[i] for i in range(6)])
    assert batch_size(batch) == 4 and len(batch["problems"]) == 2
    assert tuple(batch["image"].shape) == (4, 3, TINY_CONTRACT.camera_height, TINY_CONTRACT.camera_width)
    assert batch["has_labels"].dtype.is_floating_point is False and batch["steer_class"].shape == (4,)
    empty = collate_samples([dataset[0], None])
    assert batch_size(empty) == 0 and [p.kind for p in empty["problems"]] == ["bad_image", "unknown"]


def test_problem_counts_survive_dataloader_workers():
    from torch.utils.data import DataLoader

    dataset = _mixed(num_sim=20, num_real=8, broken_every=4)
    sampler = DomainRatioSampler(dataset, 1.0, num_samples=len(dataset), seed=0)
    loader = DataLoader(
        dataset, batch_size=5, sampler=sampler, collate_fn=collate_samples, num_workers=2, worker_init_fn=worker_init_fn
    )
    problems, seen = DataProblems(), 0
    for batch in loader:
        problems.update_from_batch(batch)
        seen += batch_size(batch)
    drawn = np.array(list(sampler))
    local = np.where(drawn < 20, drawn, drawn - 20)
    expected_broken = int(np.sum(local % 4 == 0))
    assert problems.counts_by_kind() == {"bad_image": expected_broken}
    assert seen == len(drawn) - expected_broken
    assert f"{expected_broken} skipped" in problems.summary()


def test_datasets_from_config_on_synthetic_data(tmp_path):
    write_synthetic_dataset(
        tmp_path,
        seed=2,
        frames=8,
        routes=1,
        sim_image_size=(128, 48),
        real_image_size=(128, 72),
        contract=TINY_CONTRACT,
    )
    section = DataSection(
        sim_roots=[str(tmp_path / "carla")],
        real_roots=[str(tmp_path / "navsim")],
        real_split="trainval",
        sim_real_ratio=2.0,
        real_driving_labels=False,
        val_sim_roots=[str(tmp_path / "carla")],
    )
    train, val = datasets_from_config(section, TINY_CONTRACT)
    assert train.num_sim >= 8 and train.num_real >= 8 and val.num_real == 0
    real_sample = train[train.num_sim]
    assert real_sample["domain"] == C.DOMAIN_REAL and not real_sample["has_labels"]
    assert train[0]["domain"] == C.DOMAIN_SIM and train[0]["has_labels"]
    assert build_sampler(train, section).sim_fraction == pytest.approx(2 / 3)


@pytest.mark.parametrize("split", ["test", "navtest", "navhard_two_stage"])
def test_a_test_split_never_validates_or_trains(split):
    """Validation picks best.pt, so the navtest/navhard (OpenScene test) logs are refused there."""
    with pytest.raises(DataConfigError, match="is a test split, and validation selects"):
        DataSection(sim_roots=["a"], val_real_roots=["data/navsim"], val_real_split=split).validate()
    with pytest.raises(DataConfigError, match="training never reads test logs"):
        DataSection(real_roots=["data/navsim"], real_split=split).validate()
    # A test split named only through real_split is inherited by validation: refused as well.
    with pytest.raises(DataConfigError, match="test split"):
        DataSection(sim_roots=["a"], val_real_roots=["v"], real_split=split).validate()


def test_validation_on_the_training_logs_needs_disjoint_scene_filters(tmp_path):
    shared = dict(real_roots=[str(tmp_path / "navsim")], val_real_roots=[str(tmp_path / "navsim")])
    with pytest.raises(DataConfigError, match="read the same logs"):
        DataSection(**shared).validate()
    with pytest.raises(DataConfigError, match="the same file"):
        DataSection(**shared, real_scene_filter="f.yaml", val_real_scene_filter="./f.yaml").validate()
    DataSection(**shared, real_scene_filter="train_logs.yaml", val_real_scene_filter="val_logs.yaml").validate()
    # Other roots (e.g. the synthetic validation drives of another seed) need no filter.
    DataSection(real_roots=["train/navsim"], val_real_roots=["val/navsim"]).validate()


def test_split_logs_makes_disjoint_filters_that_train_and_validate(tmp_path):
    from min2real.cli import main

    write_synthetic_dataset(
        tmp_path / "data",
        seed=3,
        frames=12,
        routes=4,
        sim_image_size=(128, 48),
        real_image_size=(128, 72),
        domains=("real",),
        contract=TINY_CONTRACT,
    )
    root = tmp_path / "data" / "navsim"
    filters = tmp_path / "filters"
    assert (
        main(["data", "split-logs", "--navsim-root", str(root), "--val-fraction", "0.25", "--out", str(filters)]) == 0
    )
    section = DataSection(
        real_roots=[str(root)],
        real_driving_labels=True,
        real_scene_filter=str(filters / "train_logs.yaml"),
        val_real_roots=[str(root)],
        val_real_scene_filter=str(filters / "val_logs.yaml"),
    )
    train, val = datasets_from_config(section, TINY_CONTRACT)
    train_logs = {path.split(b"/")[0] for path in train.real_dataset.image_paths[:, 0]}
    val_logs = {path.split(b"/")[0] for path in val.real_dataset.image_paths[:, 0]}
    assert len(train_logs) == 3 and len(val_logs) == 1 and not train_logs & val_logs
    assert main(["data", "split-logs", "--navsim-root", str(root), "--split", "navtest", "--out", str(filters)]) == 2


def test_data_synth_refuses_the_extractor_seeds(tmp_path, capsys):
    from min2real.cli import main
    from min2real.data.common import EXTRACTOR_SEEDS

    assert main(["data", "synth", "--out", str(tmp_path), "--seed", str(EXTRACTOR_SEEDS.start), "--tiny"]) == 2
    assert "reserved" in capsys.readouterr().err and not any(tmp_path.iterdir())
