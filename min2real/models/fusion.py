"""Fusion of image tokens, LiDAR BEV tokens and the measurements into one driving feature.

TransFuser fuses image and LiDAR features and pools them into one vector for its GRU head;
here a measurement-conditioned query cross-attends over [image tokens; BEV tokens] (plain
MatMul + Softmax, exportable to ONNX / TensorRT) and the result is joined with the global image
feature and the measurement embedding.
"""

from __future__ import annotations

import torch
from torch import nn


class MeasurementEncoder(nn.Module):
    """[target_point (B, 2) ego m, speed (B, 1) m/s, command (B, num_commands) one-hot] -> (B, D)."""

    def __init__(self, num_commands: int, out_dim: int, use_command: bool = True) -> None:
        super().__init__()
        self.use_command = use_command
        in_dim = 3 + (num_commands if use_command else 0)
        self.mlp = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    def forward(self, target_point: torch.Tensor, speed: torch.Tensor, command: torch.Tensor) -> torch.Tensor:
        parts = [target_point, speed] + ([command] if self.use_command else [])
        return self.mlp(torch.cat(parts, dim=-1))


class CrossAttentionPool(nn.Module):
    """Multi-head attention of one query (B, D) over tokens (B, N, D) -> (B, D)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        batch, num_tokens, dim = tokens.shape
        q = self.q(query).reshape(batch, self.heads, 1, self.head_dim)
        k, v = self.kv(tokens).reshape(batch, num_tokens, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attention = torch.softmax((q * self.head_dim**-0.5) @ k.transpose(-2, -1), dim=-1)  # (B, h, 1, N)
        pooled = (attention @ v).reshape(batch, dim)
        return self.proj(pooled)


class TokenFusion(nn.Module):
    """(image tokens, image features, BEV tokens or None, measurement embedding) -> (B, D) fused."""

    def __init__(
        self,
        image_token_dim: int,
        image_features_dim: int,
        num_lidar_tokens: int,
        dim: int,
        heads: int,
    ) -> None:
        super().__init__()
        self.image_proj = nn.Linear(image_token_dim, dim)
        self.image_type = nn.Parameter(torch.zeros(1, 1, dim))
        self.use_lidar = num_lidar_tokens > 0
        if self.use_lidar:
            # BEV tokens carry no position of their own (unlike DINOv2's): a learned embedding per cell.
            self.lidar_pos = nn.Parameter(torch.zeros(1, num_lidar_tokens, dim))
            nn.init.trunc_normal_(self.lidar_pos, std=0.02)
        self.norm = nn.LayerNorm(dim)
        self.query = nn.Parameter(torch.zeros(1, dim))
        self.attention = CrossAttentionPool(dim, heads)
        self.global_proj = nn.Linear(image_features_dim, dim)
        self.join = nn.Sequential(nn.Linear(3 * dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(
        self,
        image_tokens: torch.Tensor,
        image_features: torch.Tensor,
        lidar_tokens: torch.Tensor | None,
        measurements: torch.Tensor,
    ) -> torch.Tensor:
        tokens = self.image_proj(image_tokens) + self.image_type
        if self.use_lidar:
            if lidar_tokens is None:
                raise ValueError("fusion was built with a LiDAR branch but received no BEV tokens")
            tokens = torch.cat([tokens, lidar_tokens + self.lidar_pos], dim=1)
        attended = self.attention(self.query + measurements, self.norm(tokens))
        return self.join(torch.cat([attended, self.global_proj(image_features), measurements], dim=-1))
