"""Losses: waypoint L1 (optionally turn-weighted), steering cross-entropy, domain BCE.

Maps (model outputs, batch targets) to one number, as NAVSIM's agents do; nothing here reaches
into the model. Driving losses use only samples with `has_labels` (real images that only feed
the discriminator carry none). The domain BCE trains the discriminator on every sample; the
model's gradient reversal layer hands the adapter the reversed gradient, so minimising this one
total both sharpens the discriminator and pushes the adapter towards domain-invariant features.

Losses are computed in float32 even under mixed precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from min2real.contract import (
    DOMAIN_REAL,
    OUTPUT_STEER_LOGITS,
    OUTPUT_WAYPOINTS,
    SAMPLE_DOMAIN,
    SAMPLE_HAS_LABELS,
    STEER_CLASSES,
    STEER_STRAIGHT,
    TARGET_STEER_CLASS,
    TARGET_WAYPOINTS,
)

OUTPUT_DOMAIN_LOGITS = "domain_logits"  # (B,) pre-sigmoid, real = 1; present when the discriminator is on


@dataclass
class LossBreakdown:
    """The total to back-propagate and its parts (detached tensors, for logging: converting them to
    floats only at log time avoids a GPU synchronisation every step)."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor]


def waypoint_l1_loss(
    waypoints_pred: torch.Tensor,
    waypoints_target: torch.Tensor,
    has_labels: torch.Tensor,
    steer_class_target: torch.Tensor | None = None,
    turn_weight: float = 1.0,
) -> torch.Tensor:
    """L1 between predicted and ground-truth waypoints, ego frame, metres.

    waypoints_pred, waypoints_target: (B, T, 2). has_labels: (B,) bool.
    steer_class_target: (B,) int64 ground-truth steering class (the contract's rule on the ground
    truth trajectory); samples that turn (LEFT/RIGHT) count `turn_weight` times. The paper reports
    waypoints losing direction after turns and up-weighting turn losses as the remedy.
    Returns the mean over labelled samples of their (weighted) mean absolute error; 0 (still
    connected to the graph) when no sample is labelled.
    """
    if waypoints_pred.shape != waypoints_target.shape:
        raise ValueError(
            f"waypoints prediction {tuple(waypoints_pred.shape)} and target {tuple(waypoints_target.shape)} differ; "
            "expected the same (B, T, 2)"
        )
    labelled = has_labels.to(torch.bool)
    error = (waypoints_pred.float() - waypoints_target.float()).abs().mean(dim=(1, 2))
    error = torch.where(labelled, error, torch.zeros_like(error))
    weight = labelled.float()
    if steer_class_target is not None and turn_weight != 1.0:
        turning = steer_class_target.to(error.device) != STEER_STRAIGHT
        weight = weight * torch.where(turning, torch.full_like(weight, float(turn_weight)), torch.ones_like(weight))
    return (error * weight).sum() / labelled.sum().clamp(min=1)


def steer_ce_loss(
    steer_logits: torch.Tensor, steer_class_target: torch.Tensor, has_labels: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of the 3-class steering head (straight/left/right) over labelled samples.

    steer_logits: (B, 3). steer_class_target: (B,) int64. has_labels: (B,) bool.
    """
    if steer_logits.ndim != 2 or steer_logits.shape[1] != len(STEER_CLASSES):
        raise ValueError(f"steer logits have shape {tuple(steer_logits.shape)}; expected (B, {len(STEER_CLASSES)})")
    labelled = has_labels.to(torch.bool)
    target = torch.where(labelled, steer_class_target.long(), torch.zeros_like(steer_class_target.long()))
    per_sample = F.cross_entropy(steer_logits.float(), target, reduction="none")
    per_sample = torch.where(labelled, per_sample, torch.zeros_like(per_sample))
    return per_sample.sum() / labelled.sum().clamp(min=1)


def domain_bce_loss(domain_logits: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the domain discriminator, real = 1 (contract.DOMAIN_REAL), every sample.

    domain_logits: (B,) pre-sigmoid. domain: (B,) int64 DOMAIN_SIM / DOMAIN_REAL.
    """
    logits = domain_logits.float().reshape(-1)
    if logits.shape[0] != domain.shape[0]:
        raise ValueError(
            f"domain logits have {logits.shape[0]} entries for a batch of {domain.shape[0]}; expected (B,)"
        )
    target = (domain.to(logits.device) == DOMAIN_REAL).float()
    return F.binary_cross_entropy_with_logits(logits, target)


def compute_losses(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], weights) -> LossBreakdown:
    """Weighted sum of the three losses.

    outputs: the model's dict (`waypoints`, `steer_logits`, optional `domain_logits`).
    batch: collated targets (`waypoints`, `steer_class`, `domain`, `has_labels`).
    weights: a LossSection (waypoint_l1, turn_weight, steer_ce, domain_bce).
    """
    has_labels = batch[SAMPLE_HAS_LABELS]
    steer_target = batch[TARGET_STEER_CLASS]
    parts: dict[str, torch.Tensor] = {}
    total = outputs[OUTPUT_WAYPOINTS].new_zeros((), dtype=torch.float32)
    if weights.waypoint_l1 > 0:
        parts["waypoint_l1"] = waypoint_l1_loss(
            outputs[OUTPUT_WAYPOINTS], batch[TARGET_WAYPOINTS], has_labels, steer_target, weights.turn_weight
        )
        total = total + weights.waypoint_l1 * parts["waypoint_l1"]
    if weights.steer_ce > 0 and OUTPUT_STEER_LOGITS in outputs:
        parts["steer_ce"] = steer_ce_loss(outputs[OUTPUT_STEER_LOGITS], steer_target, has_labels)
        total = total + weights.steer_ce * parts["steer_ce"]
    if weights.domain_bce > 0 and outputs.get(OUTPUT_DOMAIN_LOGITS) is not None:
        parts["domain_bce"] = domain_bce_loss(outputs[OUTPUT_DOMAIN_LOGITS], batch[SAMPLE_DOMAIN])
        total = total + weights.domain_bce * parts["domain_bce"]
    return LossBreakdown(total=total, parts={name: value.detach() for name, value in parts.items()})
