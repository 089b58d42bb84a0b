"""Datasets feeding the contract: CARLA Garage routes, OpenScene/NAVSIM logs, synthetic two-domain data.

Entry points for the trainer (the `data:` section of a training config is a `DataSection`,
min2real.data.config, the only reader of those keys):

    train_set, val_set = datasets_from_config(DataSection(sim_roots=[...], ...), contract)
    sampler = build_sampler(train_set, section, seed=0, rank=rank, world_size=world_size)
    DataLoader(train_set, batch_size=..., sampler=sampler, collate_fn=collate_samples,
               num_workers=..., worker_init_fn=worker_init_fn)

Every sample is a dict of numpy arrays (see common.build_sample); a broken sample is a
`DataProblem` that `collate_samples` drops and reports in batch["problems"], and
`DataProblems` sums them up at epoch end.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from min2real import contract as C
from min2real.data.carla_garage import CarlaGarageDataset
from min2real.data.common import DataError, DataProblem, DataProblems, build_sample
from min2real.data.config import TEST_SPLITS, DataConfigError, DataSection
from min2real.data.mixed import (
    DomainRatioSampler,
    MixedDomainDataset,
    batch_size,
    collate_samples,
    worker_init_fn,
)
from min2real.data.navsim import NavsimDataset
from min2real.data.safe_pickle import UnsafePickleError, load_navsim_log

__all__ = [
    "CarlaGarageDataset",
    "NavsimDataset",
    "MixedDomainDataset",
    "DomainRatioSampler",
    "DataProblem",
    "DataProblems",
    "DataError",
    "DataConfigError",
    "DataSection",
    "TEST_SPLITS",
    "UnsafePickleError",
    "build_dataset",
    "build_sampler",
    "datasets_from_config",
    "batch_size",
    "build_sample",
    "collate_samples",
    "load_navsim_log",
    "worker_init_fn",
]


def build_dataset(
    sim_roots: list[str | Path] | None,
    real_roots: list[str | Path] | None,
    contract: C.Contract = C.DEFAULT_CONTRACT,
    real_split: str = "trainval",
    real_driving_labels: bool = True,
    use_real_lidar: bool = False,
    real_camera: str = "front",
    real_target_point: str = "straight_ahead",
    require_perfect_score: bool = True,
    skip_crashed_routes: bool = True,
    real_scene_filter: str = "",
    sim_skip_first_s: float = 0.0,
    sim_augmented_view_probability: float = 0.0,
    real_look_roots: list[str | Path] | None = None,
) -> MixedDomainDataset:
    """Sim (CARLA Garage layout) and real (NAVSIM layout) data as one `MixedDomainDataset`.
    `real_look_roots`: real-look DAgger recordings (Garage layout, real domain, all-zero BEV), added
    to the real part; they carry driving labels, so only with `real_driving_labels`.
    `real_scene_filter`: a NAVSIM scene filter YAML (log_names / tokens) restricting the real logs;
    `sim_skip_first_s` / `sim_augmented_view_probability`: CarlaGarageDataset's skip_first_s /
    augmented_view_probability."""
    sim = (
        CarlaGarageDataset(
            list(sim_roots),
            contract,
            require_perfect_score=require_perfect_score,
            skip_crashed_routes=skip_crashed_routes,
            skip_first_s=sim_skip_first_s,
            augmented_view_probability=sim_augmented_view_probability,
        )
        if sim_roots
        else None
    )
    if real_look_roots and not real_driving_labels:
        raise ValueError(
            f"real_look_roots {list(real_look_roots)} hold real driving labels; expected real_driving_labels"
        )
    real = None
    parts: list = []
    if real_roots:
        options = {}
        if real_scene_filter:
            options["scene_filter"] = _load_scene_filter(real_scene_filter)
        parts += [
            NavsimDataset(
                root,
                real_split,
                contract,
                camera=real_camera,
                use_lidar=use_real_lidar,
                driving_labels=real_driving_labels,
                target_point=real_target_point,
                **options,
            )
            for root in real_roots
        ]
    if real_look_roots:
        look = CarlaGarageDataset(
            list(real_look_roots),
            contract,
            require_perfect_score=require_perfect_score,
            skip_crashed_routes=skip_crashed_routes,
            use_lidar=False,
            domain=C.DOMAINS[C.DOMAIN_REAL],
        )
        parts.append(look)
    if parts:
        if len(parts) == 1:
            real = parts[0]
        else:
            from torch.utils.data import ConcatDataset

            real = ConcatDataset(parts)
    if sim is None and real is None:
        raise ValueError("data config names no sim_roots and no real_roots; expected at least one")
    return MixedDomainDataset(sim, real)


def _load_scene_filter(path: str):
    from min2real.data.navsim import load_scene_filter

    return load_scene_filter(path)


def build_sampler(
    dataset: MixedDomainDataset, section: DataSection, seed: int = 0, rank: int = 0, world_size: int = 1
) -> DomainRatioSampler:
    """The training sampler of a `data:` section (sim_real_ratio, samples_per_epoch)."""
    ratio = float(section.sim_real_ratio)
    if dataset.num_real == 0 and ratio > 0:
        ratio = math.inf  # sim-only data: the ratio has nothing to mix
    if dataset.num_sim == 0:
        ratio = 0.0
    return DomainRatioSampler(dataset, ratio, section.samples_per_epoch or None, seed, rank, world_size)


def datasets_from_config(
    section: DataSection, contract: C.Contract = C.DEFAULT_CONTRACT
) -> tuple[MixedDomainDataset, MixedDomainDataset | None]:
    """(train, validation or None) from a `data:` section. Validation data always carries driving
    labels (real ones included): it measures driving."""
    section.validate()
    shared = {
        "contract": contract,
        "use_real_lidar": section.use_real_lidar,
        "real_camera": section.real_camera,
        "real_target_point": section.real_target_point,
        "require_perfect_score": section.require_perfect_score,
        "skip_crashed_routes": section.skip_crashed_routes,
        "sim_skip_first_s": section.sim_skip_first_s,
    }
    train = build_dataset(
        section.sim_roots,
        section.real_roots,
        real_split=section.real_split,
        real_driving_labels=section.real_driving_labels,
        real_scene_filter=section.real_scene_filter,
        sim_augmented_view_probability=section.sim_augmented_view_probability,
        real_look_roots=section.real_look_roots,
        **shared,
    )
    if section.cache_dir:
        train = cached(train, section.cache_dir, "train")
    val = None
    if section.val_sim_roots or section.val_real_roots:
        val = build_dataset(
            section.val_sim_roots,
            section.val_real_roots,
            real_split=section.validation_real_split,
            real_driving_labels=True,
            real_scene_filter=section.val_real_scene_filter,
            **shared,
        )
        if section.cache_dir:
            val = cached(val, section.cache_dir, "val")
    return train, val


def cached(dataset: MixedDomainDataset, cache_dir: str | Path, name: str) -> MixedDomainDataset:
    """The same dataset with each domain's samples served from a decoded-sample cache under `cache_dir`."""
    from min2real.data.sample_cache import CachedSamples

    def wrap(part, domain: str):
        return None if part is None else CachedSamples(part, cache_dir, f"{name}-{domain}")

    return MixedDomainDataset(wrap(dataset.sim_dataset, "sim"), wrap(dataset.real_dataset, "real"))


def sample_to_inputs(sample: dict) -> dict[str, np.ndarray]:
    """A dataset sample (dict of numpy arrays, image uint8 (3, H, W)) -> batch-1 float32 graph inputs."""
    missing = [name for name in C.INPUT_NAMES if name not in sample]
    if missing:
        raise C.ContractError(f"dataset sample lacks inputs {missing}; it has {sorted(sample)}")
    return {name: np.asarray(sample[name], dtype=np.float32)[None] for name in C.INPUT_NAMES}


def load_dataset_samples(
    data_dir: str | Path, contract: C.Contract, domain: str, limit: int, seed: int = 0, real_split: str | None = None
) -> list[dict]:
    """Up to `limit` samples, evenly drawn, of the data the `domain` graph is meant for, in the
    shared sample convention (parity checks, INT8 calibration).

    "sim": CARLA Garage layout (`data_dir/carla` when present, else `data_dir`), "real":
    OpenScene/NAVSIM layout (`data_dir/navsim` when present, else `data_dir`; split
    `real_split`, or the only split there, or "trainval"). `min2real data synth --out DIR`
    writes both under DIR. Broken samples are skipped; none left is an error.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"dataset directory {data_dir} does not exist")
    if domain == "sim":
        root = data_dir / "carla" if (data_dir / "carla").is_dir() else data_dir
        dataset = CarlaGarageDataset([root], contract)
    else:
        root = data_dir / "navsim" if (data_dir / "navsim").is_dir() else data_dir
        if real_split is None:
            splits = sorted(p.name for p in (root / "navsim_logs").glob("*") if p.is_dir())
            real_split = splits[0] if len(splits) == 1 else "trainval"
        dataset = NavsimDataset(root, real_split, contract)
    if len(dataset) == 0:
        raise ValueError(f"dataset {root} has no {domain} samples")
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(len(dataset), size=min(limit, len(dataset)), replace=False))
    samples = [dataset[int(i)] for i in indices]
    samples = [sample for sample in samples if isinstance(sample, dict)]  # broken ones are DataProblems
    if not samples:
        raise ValueError(f"dataset {root}: every drawn sample was broken (see the data warnings above)")
    return samples
