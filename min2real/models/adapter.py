"""V2R adapter: a convolutional encoder-decoder through a real bottleneck, for virtual images only.

It maps a normalised camera image (B, 3, camera_height, camera_width) to DINOv2's input
(B, 3, dino_height, dino_width), in the same normalised space. As the paper's Fig. 2: the image
is compressed to the bottleneck (`bottleneck` channels at 1/16 of the camera resolution: for the
paper's 384 x 1024 camera, 128 x 24 x 64 = 196,608 values, 1/6 of the 1,179,648 input values) and
expanded again to a size that fits DINOv2. Everything the adapter outputs passes through that
bottleneck: there is no full-resolution identity path. `skip=True` adds a low-capacity skip (the
input averaged over 8 x 8 pixel blocks, 3 channels at 1/8 resolution = 1/64 of the input values,
upsampled), an ablation switch, off by default.

"Minimal" transfer is asked of the adapter by a training penalty on its distance to the plain
resized input (`loss.adapter_identity`, see min2real.training.losses), not built into its
architecture: the decoder must learn to reproduce what DINOv2 needs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ENCODER_STAGES = 4  # stride-2 stages: the bottleneck is at 1/16 of the camera resolution
SKIP_POOL = 8  # the optional skip's block size (1/8 resolution)


def resize_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W) to (B, C, height, width); a no-op when the size matches.

    Static output size (no pos-embed interpolation, no dynamic shapes in an exported graph).
    """
    if tuple(image.shape[-2:]) == (height, width):
        return image
    return F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False)


def bottleneck_hw(in_hw: tuple[int, int]) -> tuple[int, int]:
    """Spatial size of the bottleneck for a camera of `in_hw` (each 3x3 stride-2 conv with padding 1
    gives ceil(size / 2))."""
    height, width = in_hw
    for _ in range(ENCODER_STAGES):
        height, width = math.ceil(height / 2), math.ceil(width / 2)
    return height, width


def _stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
        nn.GroupNorm(min(8, out_channels), out_channels),
        nn.GELU(),
    )


class V2RAdapter(nn.Module):
    """Encoder (4 stride-2 conv stages) -> 1x1 conv to `bottleneck` channels (the bottleneck) ->
    decoder (1x1 expand, three 3x3 conv stages at 1/8, 1/4, 1/2 of the DINOv2 input size, a 3x3
    conv to RGB at full size) [+ the low-capacity skip when `skip`].

    Input (B, 3, in_h, in_w) normalised RGB; output (B, 3, out_h, out_w) normalised RGB.
    """

    def __init__(
        self,
        in_hw: tuple[int, int],
        out_hw: tuple[int, int],
        width: int = 32,
        bottleneck: int = 128,
        skip: bool = False,
    ) -> None:
        super().__init__()
        self.in_hw = (int(in_hw[0]), int(in_hw[1]))
        self.out_hw = (int(out_hw[0]), int(out_hw[1]))
        self.bottleneck_channels = int(bottleneck)
        self.skip = bool(skip)
        channels = [3, width, 2 * width, 4 * width, 4 * width]
        self.encoder = nn.Sequential(*[_stage(channels[i], channels[i + 1], 2) for i in range(ENCODER_STAGES)])
        self.to_bottleneck = nn.Conv2d(channels[-1], bottleneck, 1)
        self.expand = nn.Sequential(nn.Conv2d(bottleneck, 4 * width, 1), nn.GELU())
        out_h, out_w = self.out_hw
        # Decoder stages at 1/8, 1/4 and 1/2 of the DINOv2 input size, then full size (explicit
        # sizes: 602 is not a multiple of 8).
        self.decoder_sizes = tuple((math.ceil(out_h / f), math.ceil(out_w / f)) for f in (8, 4, 2)) + ((out_h, out_w),)
        self.decoder = nn.ModuleList(
            [_stage(4 * width, 2 * width, 1), _stage(2 * width, width, 1), _stage(width, width, 1)]
        )
        self.to_rgb = nn.Conv2d(width, 3, 3, padding=1)

    @property
    def bottleneck_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the latent every output passes through."""
        return (self.bottleneck_channels, *bottleneck_hw(self.in_hw))

    @property
    def bottleneck_size(self) -> int:
        """Values per image in the bottleneck."""
        channels, height, width = self.bottleneck_shape
        return channels * height * width

    @property
    def compression_ratio(self) -> float:
        """Bottleneck values / input image values (3 x in_h x in_w); < 1 compresses."""
        return self.bottleneck_size / (3 * self.in_hw[0] * self.in_hw[1])

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, in_h, in_w) -> the bottleneck (B, bottleneck, in_h / 16, in_w / 16)."""
        return self.to_bottleneck(self.encoder(image))

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """The bottleneck -> (B, 3, out_h, out_w), without the skip."""
        x = self.expand(latent)
        for size, stage in zip(self.decoder_sizes, self.decoder):
            x = stage(F.interpolate(x, size=size, mode="bilinear", align_corners=False))
        x = F.interpolate(x, size=self.decoder_sizes[-1], mode="bilinear", align_corners=False)
        return self.to_rgb(x)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1] != 3 or tuple(image.shape[-2:]) != self.in_hw:
            raise ValueError(
                f"V2R adapter input has shape {tuple(image.shape)}; expected (B, 3, {self.in_hw[0]}, {self.in_hw[1]})"
            )
        output = self.decode(self.encode(image))
        if self.skip:
            coarse = F.avg_pool2d(image, SKIP_POOL, ceil_mode=True)
            output = output + resize_to(coarse, *self.out_hw)
        return output
