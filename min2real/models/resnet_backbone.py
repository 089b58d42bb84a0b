"""TransFuser-style trainable image backbone (timm ResNet) for baseline / augment / mixdata."""

from __future__ import annotations

import torch
from torch import nn

from min2real.models.config import ModelConfig


class ResNetImageBackbone(nn.Module):
    """(B, 3, camera_h, camera_w) normalised RGB -> (tokens (B, N, C), features (B, C)).

    tokens are the last feature map (stride 32) flattened row-major; features its global
    average. Trainable; weights from timm's pretrained tag (needs the hub) or random init.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        import timm

        try:
            self.net = timm.create_model(
                config.resnet_name,
                pretrained=config.resnet_pretrained,
                num_classes=0,
                global_pool="",
                **config.resnet_overrides,
            )
        except Exception as error:
            if not config.resnet_pretrained:
                raise
            raise RuntimeError(
                f"could not load timm pretrained weights for {config.resnet_name!r} ({error}); "
                "set resnet_pretrained=False (random init) where the model hub is unreachable"
            ) from error
        self.provenance = f"timm_pretrained:{config.resnet_name}" if config.resnet_pretrained else "none"

    @property
    def token_dim(self) -> int:
        return self.net.num_features

    @property
    def features_dim(self) -> int:
        return self.net.num_features

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature_map = self.net.forward_features(image)  # (B, C, h, w)
        tokens = feature_map.flatten(2).transpose(1, 2)
        return tokens, tokens.mean(dim=1)
