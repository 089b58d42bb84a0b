"""Driving heads: the autoregressive GRU waypoint head and the 3-class steering head, plus the
torch form of the contract's waypoints -> steering-class rule (for variants without the head).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from min2real.contract import (
    NO_ROUTE_TARGET_DISTANCE_M,
    STEER_CLASSES,
    STEER_LEFT,
    STEER_RIGHT,
    TARGET_SPEEDS_MPS,
    Contract,
)

# Logit given to the rule's class when steering is derived from waypoints (softmax ~ 0.99991).
RULE_STEER_LOGIT = 10.0


class WaypointGRUHead(nn.Module):
    """TransFuser's autoregressive GRU: fused feature (B, D) + target point (B, 2) -> (B, T, 2).

    h0 = join(feature); at each step h = GRUCell([x, target_point], h), x += Linear(h).
    Waypoints and target point are in the ego frame (REP 103: x forward, y left), metres.
    """

    def __init__(self, in_dim: int, hidden: int, num_waypoints: int) -> None:
        super().__init__()
        self.num_waypoints = num_waypoints
        self.join = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.gru = nn.GRUCell(input_size=4, hidden_size=hidden)
        self.output = nn.Linear(hidden, 2)

    def forward(self, fused: torch.Tensor, target_point: torch.Tensor) -> torch.Tensor:
        hidden = self.join(fused)
        position = torch.zeros_like(target_point)
        waypoints = []
        for _ in range(self.num_waypoints):
            hidden = self.gru(torch.cat([position, target_point], dim=-1), hidden)
            position = position + self.output(hidden)
            waypoints.append(position)
        return torch.stack(waypoints, dim=1)


class SteerHead(nn.Module):
    """The paper's trajectory predictor: a linear classifier on image features, here LayerNorm-ed
    first (a frozen extractor's features have arbitrary scale and offset), optionally conditioned on
    the driving command and the target point.

    features (B, D), command (B, num_commands) one-hot, target_point (B, 2) ego m -> logits (B, 3).
    """

    def __init__(self, features_dim: int, num_commands: int = 0, use_target_point: bool = False) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(features_dim)
        self.num_commands = int(num_commands)
        self.use_target_point = bool(use_target_point)
        in_dim = features_dim + self.num_commands + (2 if self.use_target_point else 0)
        self.linear = nn.Linear(in_dim, len(STEER_CLASSES))

    def forward(self, features: torch.Tensor, command: torch.Tensor, target_point: torch.Tensor) -> torch.Tensor:
        parts = [self.norm(features)]
        if self.num_commands:
            parts.append(command)
        if self.use_target_point:
            parts.append(target_point / NO_ROUTE_TARGET_DISTANCE_M)  # ~unit scale
        return self.linear(torch.cat(parts, dim=-1))


class TargetSpeedHead(nn.Module):
    """The expert's target speed as classes (CARLA Garage TransFuser++): fused feature (B, D) and
    the ego speed (B, 1) m/s -> logits (B, len(contract.TARGET_SPEEDS_MPS)); class 0 is the brake
    action. The speed also enters directly (scaled by the top class speed), as the target speed
    is mostly a change of the current one."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.speed_scale = 1.0 / max(TARGET_SPEEDS_MPS)
        self.mlp = nn.Sequential(nn.Linear(in_dim + 1, hidden), nn.GELU(), nn.Linear(hidden, len(TARGET_SPEEDS_MPS)))

    def forward(self, fused: torch.Tensor, speed_mps: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([fused, speed_mps * self.speed_scale], dim=-1))


def steer_logits_from_waypoints(waypoints_ego: torch.Tensor, contract: Contract) -> torch.Tensor:
    """(B, T, 2) ego waypoints -> (B, 3) logits: RULE_STEER_LOGIT on the class given by
    `contract.steer_class_from_waypoints`, 0 elsewhere.

    Same rule, re-expressed without atan2 (exports to plain ONNX ops): the end heading is above
    +threshold iff the direction (dx, dy) has dy > 0 and its cross product with the unit vector at
    +threshold is positive; symmetric for the right. Exactly backward directions (dy == 0, dx < 0),
    where atan2 returns +-pi by the sign of zero, count as straight here.
    """
    if waypoints_ego.ndim != 3 or waypoints_ego.shape[-1] != 2 or waypoints_ego.shape[1] < 2:
        raise ValueError(f"waypoints have shape {tuple(waypoints_ego.shape)}; expected (B, T>=2, 2)")
    last = waypoints_ego[:, -1]
    middle = waypoints_ego[:, (waypoints_ego.shape[1] - 1) // 2]
    direction = last - middle
    short_segment = (direction * direction).sum(dim=-1, keepdim=True) < 0.25  # |direction| < 0.5 m
    direction = torch.where(short_segment, last, direction)
    dx, dy = direction[:, 0], direction[:, 1]
    threshold = math.radians(contract.steer_turn_threshold_deg)
    cos_t, sin_t = math.cos(threshold), math.sin(threshold)
    left = (dy > 0) & (dy * cos_t - dx * sin_t > 0)
    right = (dy < 0) & (dy * cos_t + dx * sin_t < 0)
    moving = (last * last).sum(dim=-1) >= contract.steer_min_travel_m**2
    left = (left & moving).to(waypoints_ego.dtype)
    right = (right & moving).to(waypoints_ego.dtype)
    straight = 1.0 - left - right
    by_class = {STEER_LEFT: left, STEER_RIGHT: right}
    columns = [by_class.get(index, straight) for index in range(len(STEER_CLASSES))]
    return RULE_STEER_LOGIT * torch.stack(columns, dim=-1)
