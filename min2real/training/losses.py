"""Losses: waypoint L1 (optionally turn-weighted), steering cross-entropy (class-balanced,
optionally focal), domain BCE, and the V2R adapter's distance to its input (optional).

Maps (model outputs, batch targets) to one number, as NAVSIM's agents do; nothing here reaches
into the model. Driving losses use only samples with `has_labels` (real images that only feed
the discriminator carry none). The domain BCE trains the discriminator on every sample; the
model's gradient reversal layer hands the adapter the reversed gradient, so minimising this one
total both sharpens the discriminator and pushes the adapter towards domain-invariant features.

Losses are computed in float32 even under mixed precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from min2real.contract import (
    DOMAIN_REAL,
    OUTPUT_STEER_LOGITS,
    OUTPUT_TARGET_SPEED_LOGITS,
    OUTPUT_WAYPOINTS,
    SAMPLE_DOMAIN,
    SAMPLE_HAS_LABELS,
    STEER_CLASSES,
    TARGET_SPEED_CLASS,
    TARGET_STEER_CLASS,
    TARGET_WAYPOINTS,
)

OUTPUT_DOMAIN_LOGITS = "domain_logits"  # (B,) pre-sigmoid, real = 1; present when the discriminator is on
OUTPUT_ADAPTER_DISTANCE = "adapter_distance"  # () the adapter's distance to its input; when it ran
STEER_CLASS_BALANCE = ("batch", "none")


@dataclass
class LossBreakdown:
    """The total to back-propagate and its parts (detached tensors, for logging: converting them to
    floats only at log time avoids a GPU synchronisation every step)."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor]


def turning_samples(waypoints_target: torch.Tensor, min_heading_deg: float) -> torch.Tensor:
    """(B, T, 2) ground-truth waypoints (ego, m) -> (B,) bool: some segment of the trajectory (from
    the ego origin through every waypoint) heads more than `min_heading_deg` away from the current
    heading. That covers a turn's approach and middle (where the steering class is LEFT/RIGHT) and
    also its exit, where the class is already STRAIGHT but the next metres still curve: the paper
    saw waypoints lose their direction exactly there. Segments under 0.25 m (standing) do not count."""
    points = torch.cat([torch.zeros_like(waypoints_target[:, :1]), waypoints_target.float()], dim=1)
    segments = points[:, 1:] - points[:, :-1]
    heading = torch.atan2(segments[..., 1], segments[..., 0]).abs()
    moving = segments.norm(dim=-1) >= 0.25
    return ((heading > math.radians(min_heading_deg)) & moving).any(dim=1)


def waypoint_l1_loss(
    waypoints_pred: torch.Tensor,
    waypoints_target: torch.Tensor,
    has_labels: torch.Tensor,
    turn_weight: float = 1.0,
    turn_min_heading_deg: float = 10.0,
) -> torch.Tensor:
    """L1 between predicted and ground-truth waypoints, ego frame, metres.

    waypoints_pred, waypoints_target: (B, T, 2). has_labels: (B,) bool.
    Samples that turn (`turning_samples`: approach, middle and exit of a turn) weigh `turn_weight`,
    the others 1; the loss is the weighted mean, normalised by the sum of the weights, so it stays
    in metres and turn weighting only shifts emphasis (the paper up-weighted turn losses because
    waypoints lost direction after turns). 0 (still connected to the graph) without labels.
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
    if turn_weight != 1.0:
        turning = turning_samples(waypoints_target, turn_min_heading_deg).to(error.device)
        weight = weight * torch.where(turning, torch.full_like(weight, float(turn_weight)), torch.ones_like(weight))
    return (error * weight).sum() / weight.sum().clamp(min=1e-6)


def steer_ce_loss(
    steer_logits: torch.Tensor,
    steer_class_target: torch.Tensor,
    has_labels: torch.Tensor,
    class_balance: str = "batch",
    focal_gamma: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy of the 3-class steering head (straight/left/right) over labelled samples.

    steer_logits: (B, 3). steer_class_target: (B,) int64. has_labels: (B,) bool.
    class_balance "batch": every class present among the batch's labelled samples weighs the same
    in total (sample weight n / (k n_c), k = classes present), so "straight", most of any driving
    log, cannot drown the turns; "none": plain mean. focal_gamma > 0 multiplies each sample's CE by
    (1 - p_true)^gamma (focal loss). The weighted mean is normalised by the sum of the weights.
    """
    if steer_logits.ndim != 2 or steer_logits.shape[1] != len(STEER_CLASSES):
        raise ValueError(f"steer logits have shape {tuple(steer_logits.shape)}; expected (B, {len(STEER_CLASSES)})")
    if class_balance not in STEER_CLASS_BALANCE:
        raise ValueError(f"steering class_balance {class_balance!r}; expected one of {STEER_CLASS_BALANCE}")
    labelled = has_labels.to(torch.bool)
    target = torch.where(labelled, steer_class_target.long(), torch.zeros_like(steer_class_target.long()))
    log_probs = F.log_softmax(steer_logits.float(), dim=-1)
    per_sample = -log_probs.gather(1, target[:, None])[:, 0]
    if focal_gamma > 0:
        per_sample = per_sample * (1.0 - per_sample.neg().exp()).clamp(min=0.0) ** focal_gamma
    weight = labelled.float()
    if class_balance == "batch":
        counts = torch.bincount(target[labelled], minlength=len(STEER_CLASSES)).float()
        present = (counts > 0).sum().clamp(min=1)
        per_class = torch.where(counts > 0, labelled.sum() / (present * counts.clamp(min=1)), torch.zeros_like(counts))
        weight = weight * per_class[target]
    per_sample = torch.where(labelled, per_sample, torch.zeros_like(per_sample))
    return (per_sample * weight).sum() / weight.sum().clamp(min=1e-6)


def target_speed_ce_loss(
    target_speed_logits: torch.Tensor, target_speed_class: torch.Tensor, has_labels: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of the target-speed head (CARLA Garage TransFuser++) over labelled samples whose
    data carry the label (class >= 0; -1 = none). logits (B, K), class (B,) int64, has_labels (B,) bool.
    0 (still connected to the graph) when no sample has a label."""
    target = target_speed_class.long().to(target_speed_logits.device)
    valid = has_labels.to(torch.bool) & (target >= 0)
    per_sample = F.cross_entropy(target_speed_logits.float(), target.clamp(min=0), reduction="none")
    per_sample = torch.where(valid, per_sample, torch.zeros_like(per_sample))
    return per_sample.sum() / valid.sum().clamp(min=1)


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
    """Weighted sum of the losses.

    outputs: the model's dict (`waypoints`, `steer_logits`, optional `domain_logits`, `adapter_distance`).
    batch: collated targets (`waypoints`, `steer_class`, `domain`, `has_labels`).
    weights: a LossSection (waypoint_l1, turn_weight, turn_min_heading_deg, steer_ce,
    steer_class_balance, steer_focal_gamma, domain_bce, adapter_identity).
    """
    has_labels = batch[SAMPLE_HAS_LABELS]
    parts: dict[str, torch.Tensor] = {}
    total = outputs[OUTPUT_WAYPOINTS].new_zeros((), dtype=torch.float32)
    if weights.waypoint_l1 > 0:
        parts["waypoint_l1"] = waypoint_l1_loss(
            outputs[OUTPUT_WAYPOINTS],
            batch[TARGET_WAYPOINTS],
            has_labels,
            weights.turn_weight,
            weights.turn_min_heading_deg,
        )
        total = total + weights.waypoint_l1 * parts["waypoint_l1"]
    if weights.steer_ce > 0 and OUTPUT_STEER_LOGITS in outputs:
        parts["steer_ce"] = steer_ce_loss(
            outputs[OUTPUT_STEER_LOGITS],
            batch[TARGET_STEER_CLASS],
            has_labels,
            weights.steer_class_balance,
            weights.steer_focal_gamma,
        )
        total = total + weights.steer_ce * parts["steer_ce"]
    if weights.target_speed_ce > 0 and outputs.get(OUTPUT_TARGET_SPEED_LOGITS) is not None:
        parts["target_speed_ce"] = target_speed_ce_loss(
            outputs[OUTPUT_TARGET_SPEED_LOGITS], batch[TARGET_SPEED_CLASS], has_labels
        )
        total = total + weights.target_speed_ce * parts["target_speed_ce"]
    if weights.domain_bce > 0 and outputs.get(OUTPUT_DOMAIN_LOGITS) is not None:
        parts["domain_bce"] = domain_bce_loss(outputs[OUTPUT_DOMAIN_LOGITS], batch[SAMPLE_DOMAIN])
        total = total + weights.domain_bce * parts["domain_bce"]
    if weights.adapter_identity > 0 and outputs.get(OUTPUT_ADAPTER_DISTANCE) is not None:
        parts["adapter_identity"] = outputs[OUTPUT_ADAPTER_DISTANCE].float()
        total = total + weights.adapter_identity * parts["adapter_identity"]
    return LossBreakdown(total=total, parts={name: value.detach() for name, value in parts.items()})
