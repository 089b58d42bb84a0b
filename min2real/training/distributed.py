"""Distributed set-up (torchrun / DDP) and reproducibility (seeds, deterministic kernels, the RNG
states a checkpoint carries so that a resumed run continues the same draws on every rank)."""

from __future__ import annotations

import datetime
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from min2real.training.errors import TrainingError


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


# How long a collective may wait. Rank 0 validates alone while the other ranks wait in a barrier;
# NCCL's default (10 minutes) is shorter than a full NAVSIM validation can take, and its watchdog
# would kill the waiting ranks.
DISTRIBUTED_TIMEOUT = datetime.timedelta(minutes=60)


def setup_distributed(device_kind: str) -> DistributedContext:
    """Join the process group when started by torchrun (WORLD_SIZE > 1), else a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    context = DistributedContext(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world_size)
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        if device_kind == "cuda":
            torch.cuda.set_device(context.local_rank)
        dist.init_process_group(backend=backend, timeout=DISTRIBUTED_TIMEOUT)
    return context


def resolve_device(requested: str, context: DistributedContext) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise TrainingError("train.device='cuda' but no CUDA GPU is visible; use train.device=auto or cpu")
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", context.local_rank)
    return torch.device("cpu")


# ---- reproducibility ----------------------------------------------------------------------------
# The legacy global numpy RNG is seeded and checkpointed on purpose: third-party code and user
# datasets may draw from it, and an exact resume needs its state (hence the NPY002 exemptions).
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def configure_determinism(deterministic: bool) -> None:
    """Deterministic kernels where torch has them. Some ops the network needs have no deterministic
    CUDA backward (the V2R adapter's bilinear upsampling, `F.interpolate`); torch would raise a
    RuntimeError on the first GPU step, so those only warn (`warn_only`): on CPU every op is
    deterministic and resume is bit-exact, on GPU the run is as deterministic as torch allows."""
    if not deterministic:
        torch.use_deterministic_algorithms(False)  # an earlier run in this process may have set it
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
        return
    # cuBLAS needs a fixed workspace for deterministic GEMMs; must be set before CUDA initialises.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def capture_rng_state(device: torch.device) -> dict:
    """This process's RNG states in a form `torch.load(weights_only=True)` accepts."""
    numpy_state = np.random.get_state()  # noqa: NPY002
    python_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [
            numpy_state[0],
            numpy_state[1].tolist(),
            int(numpy_state[2]),
            int(numpy_state[3]),
            float(numpy_state[4]),
        ],
        "python": [python_state[0], list(python_state[1]), python_state[2]],
        "cuda": [torch.cuda.get_rng_state(device)] if device.type == "cuda" else [],
    }
    return state


def restore_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))  # noqa: NPY002
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if device.type == "cuda" and state.get("cuda"):
        torch.cuda.set_rng_state(state["cuda"][0], device)


def gather_rng_states(context: DistributedContext, device: torch.device) -> list[dict]:
    """Every rank's RNG state, on every rank (rank 0 stores them)."""
    mine = capture_rng_state(device)
    if not context.is_distributed:
        return [mine]
    gathered: list = [None] * context.world_size
    dist.all_gather_object(gathered, mine)
    return gathered


def every_rank_has_samples(batch: dict, context: DistributedContext, device: torch.device) -> bool:
    """False when this batch (or, under DDP, any rank's batch) lost every sample to broken data:
    all ranks must take the same number of optimiser steps or DDP would wait forever."""
    from min2real.data import batch_size

    has_samples = batch_size(batch) > 0
    if not context.is_distributed:
        return has_samples
    flag = torch.tensor([1 if has_samples else 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())
