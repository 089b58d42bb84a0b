"""Gradient reversal layer (Ganin & Lempitsky, DANN) and its coefficient schedules.

Forward is the identity; backward multiplies the incoming gradient by `-coefficient`, so the
discriminator learns to separate the domains while everything upstream of the layer (the V2R
adapter) learns to make them inseparable.
"""

from __future__ import annotations

import math

import torch

from min2real.models.config import GRL_SCHEDULES


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: torch.Tensor, coefficient: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(coefficient)
        return features.view_as(features)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (coefficient,) = ctx.saved_tensors
        return -coefficient.to(grad_output.dtype) * grad_output, None


def grad_reverse(features: torch.Tensor, coefficient: float | torch.Tensor) -> torch.Tensor:
    """Identity in the forward pass; the gradient flowing back is scaled by `-coefficient`.

    The model passes its coefficient as a 0-dim tensor buffer, so a coefficient that changes
    every step (the DANN schedule) does not make torch.compile recompile.
    """
    coefficient = torch.as_tensor(coefficient, dtype=features.dtype, device=features.device)
    return _GradientReversal.apply(features, coefficient)


def grl_coefficient(schedule: str, max_coefficient: float, progress: float) -> float:
    """GRL coefficient at training progress `progress` in [0, 1].

    "constant": `max_coefficient` throughout. "dann": `max_coefficient * (2 / (1 + exp(-10 p)) - 1)`,
    which starts at 0 (the discriminator is still noise) and approaches `max_coefficient`.
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"training progress {progress!r} is outside [0, 1]")
    if schedule == "constant":
        return float(max_coefficient)
    if schedule == "dann":
        return float(max_coefficient) * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)
    raise ValueError(f"GRL schedule {schedule!r} is not supported; expected one of {GRL_SCHEDULES}")
