"""Domain discriminator on image features, behind a gradient reversal layer."""

from __future__ import annotations

import torch
from torch import nn

from min2real.models.grl import grad_reverse


class DomainDiscriminator(nn.Module):
    """MLP (features_dim -> hidden -> hidden -> 1) predicting "real" (1) vs "sim" (0).

    `forward(features, coefficient)` passes the features through the GRL first, so the loss
    BCE(logits, domain) trains `classifier` normally and sends `-coefficient` times its gradient
    upstream. `classifier` alone is the discriminator without reversal.
    """

    def __init__(self, features_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.classifier = nn.Sequential(
            nn.Linear(features_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, features: torch.Tensor, coefficient: float | torch.Tensor) -> torch.Tensor:
        """(B, D) features -> (B,) pre-sigmoid logits, "real" = 1."""
        return self.classifier(grad_reverse(features, coefficient)).squeeze(-1)
