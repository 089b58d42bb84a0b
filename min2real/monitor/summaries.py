"""Per-frame summaries the monitor scores (numpy reference + the ONNX nodes that compute them).

    tokens (B, T, E) of the first ViT block (CLS and patches):  L2 norm over the T tokens     -> (B, E)
    camera image (B, C, H, W), the graph's input, sampled every STRIDE_PX pixels in both directions:
        per channel the pixels p, the steps to their right neighbours dx and to those below dy
        image summary:      per channel [mean |p|, mean |dx|, mean |dy|] and
                            [log(1 + mean p^2), log(1 + mean dx^2), log(1 + mean dy^2)]          -> (B, 6C)
        structure summary:  the sampled grid cut into REGION_GRID regions (a remainder at the bottom /
                            right is left out); per region log(1 + mean over its samples of the
                            sum over channels of |dx| + |dy|)                                    -> (B, regions)

The token summary is the feature-space part: per embedding dimension the root of the tokens' summed
squares, which moves with their mean and with their spread (texture, rendering look, what is in the
scene), both of which the pooled vector the heads read partly averages away. The image summary is
the camera-health part: exposure (mean p), contrast (mean p^2 with mean p), edges and noise (mean
|step|) and sharpness (the mean squared step: a blur spreads an edge over many pixels, which keeps
the sum of its |steps| but divides the sum of their squares by the blur width; noise raises both).
The structure summary says where in the image the edges are: a patch that has lost its structure
(dirt or a sticker on the lens, a flat occluder) or gained some (noise) shows in its region even
when the whole-image averages hardly move. Its regions span a quarter of the image height: finer rows (6, 8 or 12) separated a
15 % occlusion better on validation frames but scored a 20 % one lower than a 15 % one (the
occluder's edges fall differently on the grid); 4 rows rise with every severity. The logs make the
heavy-tailed energies about Gaussian for the Mahalanobis distance.

In the graph one grouped Conv (2 x 2 kernel, stride STRIDE_PX, fixed +-1 weights, one group per
channel) gives p, dx and dy at every sample: it reads an eighth of the image, so the monitor stays
cheap next to the graph. Standard ops only (ReduceL2, Conv, Abs, Mul, ReduceMean, Add,
Log, AveragePool, Flatten, Concat), so ONNX Runtime and TensorRT run them as they run the rest of
the graph.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from min2real.monitor.statistics import MonitorError

TOKEN_SUMMARY = "token_summary"
IMAGE_SUMMARY = "image_summary"
STRUCTURE_SUMMARY = "structure_summary"
STRIDE_PX = 4  # the image summaries sample every STRIDE_PX-th row and column
REGION_GRID = (4, 8)  # regions (rows, columns) of the structure summary; 24 x 32 px each on a 96 x 256 image


def token_summary(tokens: np.ndarray) -> np.ndarray:
    """(B, T, E) tokens -> (B, E) float32, their L2 norm over the T tokens."""
    tokens = np.asarray(tokens, dtype=np.float32)
    return np.sqrt((tokens**2).sum(axis=1))


def sample_grid(height: int, width: int) -> tuple[int, int]:
    """How many sampled rows / columns have a neighbour below / to the right inside the image."""
    return (height - 2) // STRIDE_PX + 1, (width - 2) // STRIDE_PX + 1


def region_size(height: int, width: int) -> tuple[int, int]:
    """Sampled rows / columns per structure region."""
    rows, cols = sample_grid(height, width)
    if rows < REGION_GRID[0] or cols < REGION_GRID[1]:
        raise MonitorError(
            f"a {height} x {width} image gives {rows} x {cols} samples every {STRIDE_PX} px; the structure "
            f"summary needs at least {REGION_GRID[0]} x {REGION_GRID[1]}"
        )
    return rows // REGION_GRID[0], cols // REGION_GRID[1]


def image_summaries(images: np.ndarray) -> dict[str, np.ndarray]:
    """(B, C, H, W) images -> {IMAGE_SUMMARY: (B, 6C), STRUCTURE_SUMMARY: (B, regions)} float32, over
    the pixels sampled every STRIDE_PX rows and columns from the top left (module docstring)."""
    images = np.asarray(images, dtype=np.float32)
    batch, channels, height, width = images.shape
    rows, cols = sample_grid(height, width)
    region_rows, region_cols = region_size(height, width)
    end_row, end_col = rows * STRIDE_PX, cols * STRIDE_PX
    pixels = images[:, :, 0:end_row:STRIDE_PX, 0:end_col:STRIDE_PX]
    right = images[:, :, 0:end_row:STRIDE_PX, 1:end_col:STRIDE_PX] - pixels
    below = images[:, :, 1:end_row:STRIDE_PX, 0:end_col:STRIDE_PX] - pixels
    # (B, 3C, rows, cols): p, dx, dy of channel 0, then of channel 1, ... (the graph's grouped Conv)
    samples = np.stack([pixels, right, below], axis=2).reshape(batch, 3 * channels, rows, cols)
    magnitudes = np.abs(samples)
    axes = (2, 3)
    image = np.concatenate([magnitudes.mean(axis=axes), np.log(1.0 + (samples * samples).mean(axis=axes))], axis=-1)
    steps = magnitudes[:, :, : REGION_GRID[0] * region_rows, : REGION_GRID[1] * region_cols]
    regions = steps.reshape(batch, 3 * channels, REGION_GRID[0], region_rows, REGION_GRID[1], region_cols)
    energy = (regions.mean(axis=(3, 5)) * step_channels(channels)[None, :, None, None]).sum(axis=1)
    structure = np.log(1.0 + energy.reshape(batch, -1))
    return {IMAGE_SUMMARY: image.astype(np.float32), STRUCTURE_SUMMARY: structure.astype(np.float32)}


# node(op, inputs, name, **attributes) -> output name; constant(name, value) -> initializer name
NodeFn = Callable[..., str]
ConstantFn = Callable[[str, np.ndarray], str]


def token_summary_nodes(node: NodeFn, constant: ConstantFn, tokens: str) -> str:
    """Append the nodes of token_summary on `tokens` (B, T, E); returns the (B, E) output."""
    axis = constant("token.reduce_axis", np.array([1], dtype=np.int64))
    return node("ReduceL2", [tokens, axis], TOKEN_SUMMARY, keepdims=0)


def sampling_kernel(channels: int) -> np.ndarray:
    """(3C, 1, 2, 2) float32 weights of the grouped sampling Conv: outputs 3k, 3k + 1, 3k + 2 are
    pixel p of channel k, its step to the right (dx) and its step down (dy)."""
    kernel = np.zeros((3 * channels, 1, 2, 2), dtype=np.float32)
    kernel[0::3, 0, 0, 0] = 1.0
    kernel[1::3, 0, 0, 1], kernel[1::3, 0, 0, 0] = 1.0, -1.0
    kernel[2::3, 0, 1, 0], kernel[2::3, 0, 0, 0] = 1.0, -1.0
    return kernel


def step_channels(channels: int) -> np.ndarray:
    """(3C,) float32: 1 for the dx and dy outputs of the sampling Conv, 0 for the pixels."""
    return np.tile(np.array([0.0, 1.0, 1.0], dtype=np.float32), channels)


def image_summary_nodes(
    node: NodeFn, constant: ConstantFn, image: str, channels: int, height: int, width: int
) -> dict[str, str]:
    """Append the nodes of image_summaries on `image` (B, channels, height, width); returns
    {IMAGE_SUMMARY: (B, 6C) output, STRUCTURE_SUMMARY: (B, regions) output}."""
    region = [int(size) for size in region_size(height, width)]
    samples = node(
        "Conv",
        [image, constant("image.sampling_kernel", sampling_kernel(channels))],
        "image.samples",
        kernel_shape=[2, 2],
        strides=[STRIDE_PX, STRIDE_PX],
        group=channels,
    )  # (B, 3C, rows, cols)
    magnitudes = node("Abs", [samples], "image.magnitudes")
    spatial = constant("image.spatial_axes", np.array([2, 3], dtype=np.int64))
    mean_magnitude = node("ReduceMean", [magnitudes, spatial], "image.mean_magnitude", keepdims=0)
    squares = node("Mul", [samples, samples], "image.squares")  # Mul + ReduceMean: 2x faster than ReduceSumSquare
    mean_square = node("ReduceMean", [squares, spatial], "image.mean_square", keepdims=0)
    one = constant("image.one", np.array(1.0, dtype=np.float32))
    log_square = node("Log", [node("Add", [mean_square, one], "image.mean_square_plus_one")], "image.log_square")
    image_summary = node("Concat", [mean_magnitude, log_square], IMAGE_SUMMARY, axis=-1)

    # the mean magnitudes per region, then 1 + their sum over the dx and dy outputs as a 1 x 1 Conv
    # (its bias is the 1 of log(1 + energy))
    regions = node("AveragePool", [magnitudes], "image.regions", kernel_shape=region, strides=region)
    energy = node(
        "Conv",
        [
            regions,
            constant("image.step_sum", step_channels(channels).reshape(1, 3 * channels, 1, 1)),
            constant("image.one_bias", np.ones(1, dtype=np.float32)),
        ],
        "image.region_energy_plus_one",
        kernel_shape=[1, 1],
    )
    structure = node("Flatten", [node("Log", [energy], "image.log_region_energy")], STRUCTURE_SUMMARY, axis=1)
    return {IMAGE_SUMMARY: image_summary, STRUCTURE_SUMMARY: structure}
