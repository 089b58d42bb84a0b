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

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT = "min2real-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or is not a min2real checkpoint."""


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> Path:
    """Atomically write `checkpoint` (see module docstring for the keys) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, **checkpoint}
    for key in ("model", "model_config", "contract"):
        if key not in payload:
            raise CheckpointError(f"checkpoint for {path} lacks required key {key!r}")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(payload, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True`; clear errors for missing or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for corrupt / unsafe files
        raise CheckpointError(f"checkpoint {path} cannot be read safely (weights_only=True): {error}") from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{path} is not a min2real checkpoint (format {found!r}; expected {CHECKPOINT_FORMAT!r})")
    return checkpoint


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_from_checkpoint(path: str | Path, map_location: str | torch.device = "cpu"):
    """Rebuild the network from a checkpoint. Returns (model in eval mode, checkpoint dict, contract)."""
    from min2real.models.config import ModelConfig
    from min2real.models.contract import Contract
    from min2real.models.model import build_model

    checkpoint = load_checkpoint(path, map_location=map_location)
    contract = Contract.from_dict(checkpoint["contract"])
    config = ModelConfig.from_dict(checkpoint["model_config"])
    # The checkpoint holds every weight (DINOv2 included): do not fetch or read pretrained files again.
    model = build_model(config.replace(dinov2_weights="none", dinov2_checkpoint="", resnet_pretrained=False), contract)
    missing, unexpected = model.load_state_dict(checkpoint["model"], strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not fit model variant {config.variant!r}: "
            f"missing keys {list(missing)[:5]}, unexpected keys {list(unexpected)[:5]}"
        )
    model.eval()
    return model, checkpoint, contract
