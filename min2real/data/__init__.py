"""Datasets feeding the contract: CARLA Garage routes, OpenScene/NAVSIM logs, synthetic two-domain data.

Entry points for the trainer:

    train_set, val_set = datasets_from_config(config["data"], contract)
    sampler = build_sampler(train_set, config["data"], seed=0, rank=rank, world_size=world_size)
    DataLoader(train_set, batch_size=..., sampler=sampler, collate_fn=collate_samples,
               num_workers=..., worker_init_fn=worker_init_fn)

The YAML `data:` section (all keys optional except that one of sim_roots/real_roots is needed):

    sim_roots: [data/carla]        CARLA Garage folders (routes, scenarios or whole trees)
    real_roots: [data/navsim]      OpenScene/NAVSIM roots (each with navsim_logs/ and sensor_blobs/)
    real_split: trainval           the split folder under navsim_logs/ and sensor_blobs/
    sim_real_ratio: 1.0            sim:real draws per epoch (inf: sim only, 0: real only)
    real_driving_labels: true      real samples train the driving heads (false: discriminator only)
    use_real_lidar: false          read the real merged point cloud instead of an all-zero BEV
    real_camera: front             front | stitch (NAVSIM left/front/right panorama)
    real_target_point: straight_ahead   straight_ahead (what a NAVSIM agent gets: no route) |
                                   future_path (logged path 30 m ahead, a route-like target)
    require_perfect_score: true    CARLA Garage: only routes with score_composed 100
    skip_crashed_routes: true      CARLA Garage: skip routes without results.json.gz
    samples_per_epoch: null        draws per epoch (default: the dataset's length)
    val_sim_roots: []              validation data, same formats (no ratio sampling)
    val_real_roots: []
    val_real_split: <real_split>

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

DATA_CONFIG_KEYS = (
    "sim_roots",
    "real_roots",
    "real_split",
    "sim_real_ratio",
    "real_driving_labels",
    "use_real_lidar",
    "real_camera",
    "real_target_point",
    "require_perfect_score",
    "skip_crashed_routes",
    "samples_per_epoch",
    "val_sim_roots",
    "val_real_roots",
    "val_real_split",
)


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
) -> MixedDomainDataset:
    """Sim (CARLA Garage layout) and real (NAVSIM layout) data as one `MixedDomainDataset`."""
    sim = (
        CarlaGarageDataset(
            list(sim_roots),
            contract,
            require_perfect_score=require_perfect_score,
            skip_crashed_routes=skip_crashed_routes,
        )
        if sim_roots
        else None
    )
    real = None
    if real_roots:
        parts = [
            NavsimDataset(
                root,
                real_split,
                contract,
                camera=real_camera,
                use_lidar=use_real_lidar,
                driving_labels=real_driving_labels,
                target_point=real_target_point,
            )
            for root in real_roots
        ]
        if len(parts) == 1:
            real = parts[0]
        else:
            from torch.utils.data import ConcatDataset

            real = ConcatDataset(parts)
    if sim is None and real is None:
        raise ValueError("data config names no sim_roots and no real_roots; expected at least one")
    return MixedDomainDataset(sim, real)


def build_sampler(
    dataset: MixedDomainDataset, data_config: dict, seed: int = 0, rank: int = 0, world_size: int = 1
) -> DomainRatioSampler:
    """The training sampler of a `data:` config section (sim_real_ratio, samples_per_epoch)."""
    ratio = data_config.get("sim_real_ratio", 1.0)
    ratio = math.inf if ratio in (None, "inf", float("inf")) else float(ratio)
    if dataset.num_real == 0 and ratio > 0:
        ratio = math.inf  # sim-only data: the ratio has nothing to mix
    if dataset.num_sim == 0:
        ratio = 0.0
    return DomainRatioSampler(dataset, ratio, data_config.get("samples_per_epoch"), seed, rank, world_size)


def datasets_from_config(
    data_config: dict, contract: C.Contract = C.DEFAULT_CONTRACT
) -> tuple[MixedDomainDataset, MixedDomainDataset | None]:
    """(train, validation or None) from a YAML `data:` section (keys in the module docstring)."""
    unknown = sorted(set(data_config) - set(DATA_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"data config has unknown keys {unknown}; known keys: {sorted(DATA_CONFIG_KEYS)}")
    shared = {
        "contract": contract,
        "real_driving_labels": bool(data_config.get("real_driving_labels", True)),
        "use_real_lidar": bool(data_config.get("use_real_lidar", False)),
        "real_camera": data_config.get("real_camera", "front"),
        "real_target_point": data_config.get("real_target_point", "straight_ahead"),
        "require_perfect_score": bool(data_config.get("require_perfect_score", True)),
        "skip_crashed_routes": bool(data_config.get("skip_crashed_routes", True)),
    }
    split = data_config.get("real_split", "trainval")
    train = build_dataset(data_config.get("sim_roots"), data_config.get("real_roots"), real_split=split, **shared)
    val = None
    if data_config.get("val_sim_roots") or data_config.get("val_real_roots"):
        val = build_dataset(
            data_config.get("val_sim_roots"),
            data_config.get("val_real_roots"),
            real_split=data_config.get("val_real_split", split),
            **shared,
        )
    return train, val


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
