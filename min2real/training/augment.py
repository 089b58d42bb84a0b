"""Image augmentation: the paper's Gaussian noise, applied to both domains on the 0..255 image.

The paper draws "a randomized level of gaussian noise ranging from 0 to 100" per image: here the
level is the noise standard deviation in pixel units, drawn per sample from U[0, max_level],
added to the un-normalised RGB image (the graph input, 0..255) and clipped back to 0..255.
It runs on the batch on the training device (one vectorised op, no per-sample Python loop).
"""

from __future__ import annotations

import torch


def add_gaussian_noise(
    image_rgb: torch.Tensor,
    max_level: float = 100.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Add per-sample Gaussian noise to a batch of 0..255 RGB images.

    image_rgb: (B, 3, H, W) float, RGB, 0..255 (contract graph input, not normalised).
    max_level: largest noise standard deviation, pixel units (paper: 100).
    generator: random source on the image's device (pass one for reproducible runs).
    Returns (noisy image (B, 3, H, W) clipped to 0..255, noise std per sample (B,)).
    """
    if image_rgb.ndim != 4 or image_rgb.shape[1] != 3:
        raise ValueError(f"image batch has shape {tuple(image_rgb.shape)}; expected (B, 3, H, W) RGB 0..255")
    if not image_rgb.is_floating_point():
        raise ValueError(f"image batch has dtype {image_rgb.dtype}; expected a float tensor with values 0..255")
    if max_level < 0:
        raise ValueError(f"noise max_level={max_level}; expected >= 0 (pixel units)")
    batch = image_rgb.shape[0]
    level = torch.rand(batch, generator=generator, device=image_rgb.device, dtype=image_rgb.dtype) * max_level
    noise = torch.randn(image_rgb.shape, generator=generator, device=image_rgb.device, dtype=image_rgb.dtype)
    noisy = image_rgb + noise * level.view(batch, 1, 1, 1)
    return noisy.clamp_(0.0, 255.0), level
