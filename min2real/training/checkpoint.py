"""Checkpoints: one format for training, resume, export and evaluation.

A checkpoint is a `torch.save`d dict that `torch.load(weights_only=True)` can read (tensors,
numbers, strings, lists, dicts only: a checkpoint from elsewhere is a trust boundary):

    format            "min2real-checkpoint-v1"
    model             model state dict
    model_config      ModelConfig.to_dict()
    contract          Contract.to_dict()
    train_config      the full training config (dict), or {}
    optimizer, scheduler, scaler   state dicts, or {}
    step, epoch       ints (step = optimizer steps done; epoch = epochs completed)
    rng               {"torch": ByteTensor, "numpy": list, "python": list, "cuda": [ByteTensor, ...]}
    extra             free-form dict (metrics, data position, ...)

Writes are atomic (temporary file in the same directory + os.replace): a run killed mid-write
never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from min2real.files import atomic_write
from min2real.models.checkpoint import CHECKPOINT_FORMAT, CheckpointError


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> Path:
    """Atomically write `checkpoint` (see module docstring for the keys) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, **checkpoint}
    for key in ("model", "model_config", "contract"):
        if key not in payload:
            raise CheckpointError(f"checkpoint for {path} lacks required key {key!r}")
    atomic_write(path, lambda stream: torch.save(payload, stream))
    return path
