"""Camera corruptions at five severities, vectorised over a batch (numpy; no per-pixel loops).

Each takes images (N, 3, H, W) float32 RGB 0..255 (the graph's `image` input) and a severity
1..5 and returns new images of the same shape, clipped to 0..255:

    gaussian_noise  additive N(0, sigma) per pixel and channel, sigma 16 / 32 / 48 / 64 / 96
    blur            separable box blur, kernel 5 / 9 / 15 / 21 / 31 px (a defocused or wet lens)
    brightness      gain 1.5 / 2 / 2.5 / 3 / 4 (over-exposure, glare)
    occlusion       a grey patch over 5 / 10 / 15 / 20 / 30 % of the image centre (dirt, a sticker)
    camera_shift    the camera rolled by 1.5 / 3 / 4.5 / 6 / 9 degrees and pitched (the view moved
                    down) by 3 / 6 / 9 / 12 / 18 % of the height: a knocked mount (edges replicated)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

SEVERITIES = (1, 2, 3, 4, 5)
NOISE_SIGMA = (16.0, 32.0, 48.0, 64.0, 96.0)
BLUR_KERNEL_PX = (5, 9, 15, 21, 31)
BRIGHTNESS_GAIN = (1.5, 2.0, 2.5, 3.0, 4.0)
OCCLUDED_SHARE = (0.05, 0.10, 0.15, 0.20, 0.30)
ROLL_DEG = (1.5, 3.0, 4.5, 6.0, 9.0)
PITCH_SHARE = (0.03, 0.06, 0.09, 0.12, 0.18)
OCCLUSION_GREY = 90.0


def _level(values: tuple, severity: int):
    if severity not in SEVERITIES:
        raise ValueError(f"corruption severity {severity!r}; expected one of {SEVERITIES}")
    return values[severity - 1]


def _check(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images have shape {images.shape}; expected (N, 3, H, W) float32 RGB 0..255")
    return images


def gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    images = _check(images)
    noise = rng.normal(0.0, _level(NOISE_SIGMA, severity), images.shape).astype(np.float32)
    return np.clip(images + noise, 0.0, 255.0)


def _box_filter(images: np.ndarray, kernel: int, axis: int) -> np.ndarray:
    pad = [(0, 0)] * images.ndim
    pad[axis] = (kernel // 2, kernel // 2)
    padded = np.pad(images, pad, mode="edge")
    cumulative = np.cumsum(padded, axis=axis, dtype=np.float64)
    zero_shape = list(cumulative.shape)
    zero_shape[axis] = 1
    cumulative = np.concatenate([np.zeros(zero_shape), cumulative], axis=axis)
    size = images.shape[axis]
    upper = np.take(cumulative, np.arange(kernel, kernel + size), axis=axis)
    lower = np.take(cumulative, np.arange(size), axis=axis)
    return ((upper - lower) / kernel).astype(np.float32)


def blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    del rng
    kernel = _level(BLUR_KERNEL_PX, severity)
    return _box_filter(_box_filter(_check(images), kernel, axis=2), kernel, axis=3)


def brightness(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    del rng
    return np.clip(_check(images) * _level(BRIGHTNESS_GAIN, severity), 0.0, 255.0)


def occlusion(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    del rng
    images = _check(images).copy()
    height, width = images.shape[2:]
    side = math.sqrt(_level(OCCLUDED_SHARE, severity))
    patch_h, patch_w = max(1, round(height * side)), max(1, round(width * side))
    top, left = (height - patch_h) // 2, (width - patch_w) // 2
    images[:, :, top : top + patch_h, left : left + patch_w] = OCCLUSION_GREY
    return images


def camera_shift(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    del rng
    images = _check(images)
    height, width = images.shape[2:]
    roll = math.radians(_level(ROLL_DEG, severity))
    shift_px = _level(PITCH_SHARE, severity) * height
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    # Output pixel -> source pixel: rotate about the centre, then look `shift_px` higher up (view moved down).
    source_x = cx + math.cos(roll) * (cols - cx) - math.sin(roll) * (rows - cy)
    source_y = cy + math.sin(roll) * (cols - cx) + math.cos(roll) * (rows - cy) - shift_px
    source_x = np.clip(np.rint(source_x), 0, width - 1).astype(np.intp)
    source_y = np.clip(np.rint(source_y), 0, height - 1).astype(np.intp)
    return images[:, :, source_y, source_x]


CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": gaussian_noise,
    "blur": blur,
    "brightness": brightness,
    "occlusion": occlusion,
    "camera_shift": camera_shift,
}


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """`CORRUPTIONS[name]` at `severity` (1..5) on (N, 3, H, W) float32 images; a fixed seed per call."""
    if name not in CORRUPTIONS:
        raise ValueError(f"corruption {name!r} is not known; expected one of {sorted(CORRUPTIONS)}")
    return CORRUPTIONS[name](images, severity, np.random.default_rng(seed))
