"""V2R adapter: a convolutional encoder-decoder with a bottleneck, for virtual images only.

It maps a normalised camera image (B, 3, camera_height, camera_width) to DINOv2's input
(B, 3, dino_height, dino_width), in the same normalised space. "Minimal" transfer: the output
is `resize(image) + delta(image)` with the last decoder convolution zero-initialised, so at
initialisation the adapter returns exactly the resized image (what the real-image path feeds
DINOv2) and training starts from the plain pipeline.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def resize_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W) to (B, C, height, width); a no-op when the size matches.

    Static output size (no pos-embed interpolation, no dynamic shapes in an exported graph).
    """
    if tuple(image.shape[-2:]) == (height, width):
        return image
    return F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False)


class V2RAdapter(nn.Module):
    """Encoder (3 stride-2 convs) -> 1x1 bottleneck of `bottleneck` channels -> decoder that
    upsamples to the DINOv2 input size; residual around the whole thing.

    Input (B, 3, in_h, in_w) normalised RGB; output (B, 3, out_h, out_w) normalised RGB.
    """

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int], width: int = 32, bottleneck: int = 128) -> None:
        super().__init__()
        self.in_hw = (int(in_hw[0]), int(in_hw[1]))
        self.out_hw = (int(out_hw[0]), int(out_hw[1]))
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(4 * width, bottleneck, 1),  # the bottleneck
            nn.GELU(),
        )
        self.expand = nn.Sequential(nn.Conv2d(bottleneck, 4 * width, 1), nn.GELU())
        out_h, out_w = self.out_hw
        # Decoder stages at 1/4, 1/2 and full DINOv2 input size (explicit sizes: 602 is not a power of 2 multiple).
        self.decoder_sizes = (
            (math.ceil(out_h / 4), math.ceil(out_w / 4)),
            (math.ceil(out_h / 2), math.ceil(out_w / 2)),
            (out_h, out_w),
        )
        self.up1 = nn.Sequential(nn.Conv2d(4 * width, 2 * width, 3, padding=1), nn.GELU())
        self.up2 = nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1), nn.GELU())
        self.to_rgb = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.to_rgb.weight)  # identity (plain resize) at initialisation
        nn.init.zeros_(self.to_rgb.bias)

    def delta(self, image: torch.Tensor) -> torch.Tensor:
        """The learned correction (B, 3, out_h, out_w) added to the resized image."""
        x = self.expand(self.encoder(image))
        x = self.up1(F.interpolate(x, size=self.decoder_sizes[0], mode="bilinear", align_corners=False))
        x = self.up2(F.interpolate(x, size=self.decoder_sizes[1], mode="bilinear", align_corners=False))
        return self.to_rgb(F.interpolate(x, size=self.decoder_sizes[2], mode="bilinear", align_corners=False))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1] != 3 or tuple(image.shape[-2:]) != self.in_hw:
            raise ValueError(
                f"V2R adapter input has shape {tuple(image.shape)}; expected (B, 3, {self.in_hw[0]}, {self.in_hw[1]})"
            )
        return resize_to(image, *self.out_hw) + self.delta(image)
