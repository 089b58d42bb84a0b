"""The trainer's data: datasets from the `data:` section, the domain-ratio sampler, the epoch's
DataLoader (seeded by seed, epoch and rank; resumable inside an epoch) and batches moved to the device."""

from __future__ import annotations

import itertools
import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from min2real.contract import INPUT_NAMES
from min2real.training.config import TrainConfig
from min2real.training.distributed import DistributedContext
from min2real.training.errors import TrainingError


class SkipSampler(Sampler):
    """Yields the wrapped sampler's indices after the first `skip` (resume inside an epoch)."""

    def __init__(self, sampler: Sampler, skip: int) -> None:
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


def build_datasets(config: TrainConfig, contract, model_config):
    """(training dataset, validation dataset or None) from the `data:` section.

    Validation data always carries driving labels (real ones included): it measures driving.
    """
    from min2real import data as data_lib

    data = config.data
    real_roots = [*data.real_roots, *data.real_look_roots]  # both are real-domain images
    if not data.sim_roots and not real_roots:
        raise TrainingError(
            "data.sim_roots, data.real_roots and data.real_look_roots are all empty; the run has nothing to train on"
        )
    if model_config.use_discriminator and not real_roots:
        raise TrainingError(
            f"model variant {model_config.variant!r} trains a domain discriminator, which needs real-domain images; "
            "set data.real_roots (with data.real_driving_labels=false they only feed the discriminator)"
        )
    try:
        train_set, val_set = data_lib.datasets_from_config(data, contract)
    except (FileNotFoundError, ValueError) as error:
        raise TrainingError(f"data section: {error}") from error
    if len(train_set) == 0:
        raise TrainingError(f"the training data under {data.sim_roots + real_roots} holds no usable samples")
    return train_set, val_set


def build_train_sampler(train_set, config: TrainConfig, context: DistributedContext):
    """The domain-ratio sampler: every rank computes the same (seed, epoch) draw and takes its share."""
    from min2real.data import build_sampler

    try:
        return build_sampler(
            train_set, config.data, seed=config.train.seed, rank=context.rank, world_size=context.world_size
        )
    except ValueError as error:
        raise TrainingError(f"data section: {error}") from error


def seed_worker(worker_id: int) -> None:
    # DataLoader seeds torch per worker from its generator; numpy and random follow it.
    from min2real.data import worker_init_fn

    worker_init_fn(worker_id)
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)  # noqa: NPY002
    random.seed(worker_seed)


def make_train_loader(
    train_set, sampler, config: TrainConfig, context: DistributedContext, epoch: int, skip_batches: int, device
):
    """The epoch's DataLoader over this rank's share, skipping the batches already done."""
    from min2real.data import collate_samples

    sampler.set_epoch(epoch)
    generator = torch.Generator().manual_seed(config.train.seed * 1_000_003 + epoch * 1009 + context.rank)
    return DataLoader(
        train_set,
        batch_size=config.train.batch_size,
        sampler=SkipSampler(sampler, skip_batches * config.train.batch_size),
        num_workers=config.train.num_workers,
        collate_fn=collate_samples,
        drop_last=True,  # every rank runs the same number of steps per epoch
        pin_memory=device.type == "cuda",
        worker_init_fn=seed_worker,
        generator=generator,
    )


def steps_per_epoch(sampler, config: TrainConfig, context: DistributedContext) -> int:
    steps = len(sampler) // config.train.batch_size
    if steps <= 0:
        raise TrainingError(
            f"an epoch of {len(sampler)} samples per process ({context.world_size} process(es)) gives no full batch of "
            f"{config.train.batch_size}; lower train.batch_size or raise data.samples_per_epoch"
        )
    return steps


def to_device(batch: dict, device: torch.device) -> dict:
    return {
        key: value.to(device, non_blocking=True) if torch.is_tensor(value) else value for key, value in batch.items()
    }


def model_inputs(batch: dict, channels_last: bool = False) -> dict:
    """The model's inputs from a collated batch (image as float 0..255, channels-last when asked)."""
    inputs = {name: batch[name] for name in INPUT_NAMES if name in batch}
    image = inputs["image"].float()
    inputs["image"] = image.contiguous(memory_format=torch.channels_last) if channels_last else image
    return inputs
