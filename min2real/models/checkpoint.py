"""Reading min2real checkpoints (torch only): the format, the safe loader and the model rebuild.

The runtime's PyTorch backend, export and evaluation read checkpoints through this module;
`min2real.training.checkpoint` writes them (atomically) and documents the keys.
A checkpoint is a trust boundary: it is only ever read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from min2real.contract import Contract

CHECKPOINT_FORMAT = "min2real-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or is not a min2real checkpoint."""


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


def model_from_checkpoint(path: str | Path, map_location: str | torch.device = "cpu"):
    """Rebuild the network from a checkpoint. Returns (model in eval mode, checkpoint dict, contract)."""
    from min2real.models.config import ModelConfig
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
    # The weights came from the checkpoint, but their origin is the one training recorded (e.g. the
    # stand-in extractor's file), which exported metadata should name rather than "none".
    recorded = (checkpoint.get("extra") or {}).get("weights_provenance") or {}
    backbone = config.image_backbone
    if isinstance(recorded.get(backbone), str) and hasattr(model.image_backbone, "provenance"):
        model.image_backbone.provenance = recorded[backbone]
    model.eval()
    return model, checkpoint, contract


def load_weights_into(model: torch.nn.Module, path: str | Path, contract: Contract) -> None:
    """Load the network weights of checkpoint `path` into `model` (train.init_checkpoint: a run that
    starts from a previous one, e.g. the last DAgger round's). The checkpoint must hold `contract`
    and every weight of the same network; anything else is refused with the keys that differ."""
    checkpoint = load_checkpoint(path, map_location="cpu")
    if Contract.from_dict(checkpoint["contract"]) != contract:
        raise CheckpointError(f"checkpoint {path} was trained with another contract; expected the config's contract")
    missing, unexpected = model.load_state_dict(checkpoint["model"], strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not fit this config's model: missing keys {list(missing)[:5]}, "
            f"unexpected keys {list(unexpected)[:5]}; expected a checkpoint of the same model section"
        )
