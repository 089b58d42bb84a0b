"""LiDAR BEV encoder: a small strided CNN over the contract's BEV histogram."""

from __future__ import annotations

import math

import torch
from torch import nn

_NUM_STAGES = 5  # 256 px BEV -> 8 x 8 tokens of 4 m each


class LidarBevEncoder(nn.Module):
    """(B, C, S, S) BEV in [0, 1] -> tokens (B, N, out_dim), N = ceil(S / 32)^2.

    Token order is row-major over the BEV (row 0 = far front, column 0 = far left, as in
    `contract.lidar_bev_from_points`). Real-domain samples carry an all-zero BEV (the paper).
    """

    def __init__(self, in_channels: int, bev_size_px: int, width: int = 32, out_dim: int = 256) -> None:
        super().__init__()
        channels = [in_channels, width, 2 * width, 4 * width, 8 * width, 8 * width]
        layers: list[nn.Module] = []
        for stage in range(_NUM_STAGES):
            out_ch = channels[stage + 1]
            layers += [
                nn.Conv2d(channels[stage], out_ch, 3, stride=2, padding=1),
                nn.GroupNorm(min(8, out_ch), out_ch),
                nn.GELU(),
            ]
        self.backbone = nn.Sequential(*layers)
        grid = bev_size_px
        for _ in range(_NUM_STAGES):
            grid = math.ceil(grid / 2)
        self.grid_size = (grid, grid)
        self.proj = nn.Linear(channels[-1], out_dim)

    @property
    def num_tokens(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    def forward(self, lidar_bev: torch.Tensor) -> torch.Tensor:
        feature_map = self.backbone(lidar_bev)  # (B, C, g, g)
        return self.proj(feature_map.flatten(2).transpose(1, 2))
