"""Mixing the virtual and real domains: a concatenated dataset, a sim:real ratio sampler that
works under DistributedDataParallel, and the collate function that drops broken samples.

    dataset = MixedDomainDataset(sim_dataset, real_dataset)
    sampler = DomainRatioSampler(dataset, sim_real_ratio=1.0, num_samples=len(dataset), seed=0,
                                 rank=rank, world_size=world_size)
    loader = DataLoader(dataset, batch_size=8, sampler=sampler, collate_fn=collate_samples,
                        num_workers=4, worker_init_fn=worker_init_fn)
    problems = DataProblems()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader:
            problems.update_from_batch(batch)
            if batch_size(batch) == 0:
                continue  # every sample of this batch was broken
            ...
        print(problems.summary()); problems.clear()
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from min2real import contract as C
from min2real.data.common import SAMPLE_KEYS, UNKNOWN, DataProblem, DataProblems, warn_problem


class MixedDomainDataset:
    """sim_dataset followed by real_dataset (either may be None). `domains[i]` is the domain
    index (contract.DOMAIN_SIM / DOMAIN_REAL) of item i, known without loading it."""

    def __init__(self, sim_dataset=None, real_dataset=None) -> None:
        if sim_dataset is None and real_dataset is None:
            raise ValueError("MixedDomainDataset needs a sim dataset, a real dataset or both; got neither")
        self.sim_dataset, self.real_dataset = sim_dataset, real_dataset
        self.num_sim = len(sim_dataset) if sim_dataset is not None else 0
        self.num_real = len(real_dataset) if real_dataset is not None else 0
        self.domains = np.concatenate(
            [np.full(self.num_sim, C.DOMAIN_SIM, np.int64), np.full(self.num_real, C.DOMAIN_REAL, np.int64)]
        )

    def __len__(self) -> int:
        return self.num_sim + self.num_real

    def __getitem__(self, index: int):
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"mixed dataset index {index} is out of range 0..{len(self) - 1}")
        if index < self.num_sim:
            return self.sim_dataset[index]
        return self.real_dataset[index - self.num_sim]

    def parts(self) -> list:
        return [d for d in (self.sim_dataset, self.real_dataset) if d is not None]

    @property
    def problems(self) -> DataProblems:
        """Problems met in this process (index time and num_workers=0 loading) by the parts."""
        merged = DataProblems()
        for part in self.parts():
            for datasets in _leaves(part):
                for attribute in ("index_problems", "problems"):
                    if hasattr(datasets, attribute):
                        merged.merge(getattr(datasets, attribute))
        return merged


def _leaves(dataset) -> list:
    """The datasets inside a (possibly torch ConcatDataset) dataset."""
    inner = getattr(dataset, "datasets", None)
    if inner is None:
        return [dataset]
    return [leaf for part in inner for leaf in _leaves(part)]


class DomainRatioSampler:
    """Indices into a `MixedDomainDataset` with a fixed sim:real ratio per epoch.

    `sim_real_ratio` r: a fraction r / (1 + r) of the `num_samples` draws comes from the sim
    part (r = inf: sim only, r = 0: real only). Each domain is drawn without replacement from a
    fresh permutation, cycling when the epoch asks for more than the domain holds. The draw is
    shuffled with (seed, epoch), padded to a multiple of `world_size` and dealt round-robin:
    under DDP every rank computes the same draw and takes a disjoint share of it.
    """

    def __init__(
        self,
        dataset: MixedDomainDataset,
        sim_real_ratio: float = 1.0,
        num_samples: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not (sim_real_ratio >= 0):
            raise ValueError(f"sim_real_ratio={sim_real_ratio}; expected a number >= 0 (inf for sim only)")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.sim_fraction = 1.0 if math.isinf(sim_real_ratio) else sim_real_ratio / (1.0 + sim_real_ratio)
        if self.sim_fraction > 0 and dataset.num_sim == 0:
            raise ValueError(f"sim_real_ratio={sim_real_ratio} asks for sim samples but the dataset has none")
        if self.sim_fraction < 1 and dataset.num_real == 0:
            raise ValueError(
                f"sim_real_ratio={sim_real_ratio} asks for real samples but the dataset has none (use inf for sim only)"
            )
        self.dataset = dataset
        self.num_samples = len(dataset) if num_samples is None else int(num_samples)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_indices(self) -> np.ndarray:
        """The whole epoch's draw (all ranks), before dealing."""
        rng = np.random.default_rng((self.seed, self.epoch))
        num_sim = int(round(self.num_samples * self.sim_fraction))
        num_real = self.num_samples - num_sim

        def draw(count: int, offset: int, size: int) -> np.ndarray:
            if count == 0:
                return np.zeros(0, np.int64)
            rounds = -(-count // size)
            return offset + np.concatenate([rng.permutation(size) for _ in range(rounds)])[:count]

        indices = np.concatenate(
            [draw(num_sim, 0, self.dataset.num_sim), draw(num_real, self.dataset.num_sim, self.dataset.num_real)]
        )
        return rng.permutation(indices)

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices()
        padded = len(self) * self.world_size
        if padded > len(indices):
            indices = np.concatenate([indices, indices[: padded - len(indices)]])
        return iter(indices[self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return -(-self.num_samples // self.world_size)


def collate_samples(samples: Sequence) -> dict:
    """Stack sample dicts into tensors; broken samples (`DataProblem`, or None from a dataset that
    returns nothing) are dropped and listed in batch["problems"]. The batch may be smaller than
    requested or empty (then it holds only "problems": check `batch_size(batch)`)."""
    import torch

    good, problems = [], []
    for sample in samples:
        if isinstance(sample, dict):
            good.append(sample)
        elif isinstance(sample, DataProblem):
            problems.append(sample)
        else:
            problems.append(
                warn_problem(DataProblem(UNKNOWN, "<dataset>", f"sample is {type(sample).__name__}; expected a dict"))
            )
    batch: dict = {"problems": problems}
    if not good:
        return batch
    for key in good[0]:
        values = [sample[key] for sample in good]
        batch[key] = torch.from_numpy(np.stack(values))
    return batch


def batch_size(batch: dict) -> int:
    """Number of samples in a collated batch (0 when every sample was broken)."""
    for key in SAMPLE_KEYS:
        if key in batch:
            return int(batch[key].shape[0])
    return 0


def worker_init_fn(worker_id: int) -> None:
    """DataLoader workers decode in parallel already: keep OpenCV single-threaded in each."""
    del worker_id
    import cv2

    cv2.setNumThreads(0)
