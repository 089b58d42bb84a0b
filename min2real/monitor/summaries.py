"""Per-frame summaries the monitor scores (numpy reference + the ONNX nodes that compute them).

    tokens (B, T, E) of the first ViT block (CLS and patches):  L2 norm over the T tokens     -> (B, E)
    camera image (B, C, H, W), the graph's input, sampled every STRIDE_PX[0]-th row and STRIDE_PX[1]-th column:
        per channel the pixels p, the steps to their right neighbours dx and to those below dy, and
        the rising steps dx+ = max(dx, 0), dy+; the samples cut into REGION_GRID regions (a remainder
        at the bottom / right is left out)
        image summary:      per channel log(1 + the mean over the samples of p, dx+, dy+,
                            (dx - STEP_FLOOR)+ and (dy - STEP_FLOOR)+)                        -> (B, 5C)
        structure summary:  per region log(1 + mean over its samples of the sum over channels
                            of dx+ + dy+)                                                    -> (B, regions)

The token summary is the feature-space part: per embedding dimension the root of the tokens' summed
squares, which moves with their mean and with their spread (texture, rendering look, what is in the
scene), both of which the pooled vector the heads read partly averages away. The image summary is
the camera-health part: exposure (mean p), edges and noise (mean rising step: over an image about
half the mean |step|) and sharpness (the mean step above a floor of STEP_FLOOR grey levels: a blur
spreads an edge over many pixels, which keeps the sum of its steps but brings each under the floor;
noise raises both). The structure summary says where in the image the edges are: a patch that has
lost its structure (dirt or a sticker on the lens, a flat occluder) or gained some (noise) shows in
its region even when the whole-image averages hardly move. Rising steps only, not |step|: at this
sampling an occluder's border adds a step when a sampled pixel pair straddles it, which depends on
where the border falls, and steps of one sign halve that (with |steps| the structure part's mean
fell from a 5 % to a 10 % occlusion on validation frames and in the tests). The logs make the
heavy-tailed energies about Gaussian for the Mahalanobis distance.

In the graph every summary of the image is one chain of standard ops (ONNX Runtime and TensorRT run
them as they run the rest of the graph): one grouped Conv (2 x 2 kernel, strides STRIDE_PX, fixed
weights and biases) + Relu gives, per channel, p, dx+, dy+, (dx - STEP_FLOOR)+ and (dy - STEP_FLOOR)+
at every sample; an AveragePool takes their means per region; Flatten, one Gemm (the fixed linear
map from the region means to the whole-image and per-region means, bias 1) and Log give both
summaries in one (B, 5C + regions) tensor: the image summary's columns, then the
structure summary's. It reads 3 pixels in 64 (one sample in 64) and takes 6 nodes (ONNX Runtime
runs the Conv and Relu as one kernel): on a small graph the monitor's cost is ONNX Runtime's
per-node overhead, not its arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from min2real.monitor.statistics import MonitorError

TOKEN_SUMMARY = "token_summary"
IMAGE_SUMMARY = "image_summary"
STRUCTURE_SUMMARY = "structure_summary"
IMAGE_TENSOR = "image_summaries"  # the graph tensor holding IMAGE_SUMMARY's then STRUCTURE_SUMMARY's columns
STRIDE_PX = (8, 8)  # the image summaries sample every 8th row and every 8th column
REGION_GRID = (4, 8)  # regions (rows, columns) of the structure summary; 24 x 32 px each on a 96 x 256 image
STEP_FLOOR = 4.0  # grey levels (of 0..255) a step must exceed to count toward sharpness
IMAGE_STATISTICS = 5  # per channel: p, dx+, dy+, (dx - floor)+, (dy - floor)+
# The Conv's outputs per channel, rectified, one per image statistic: (weight on p, on its right
# neighbour, on the one below; bias). The second and third (dx+, dy+) also make the structure summary.
RECTIFIED_FILTERS = (
    (1.0, 0.0, 0.0, 0.0),
    (-1.0, 1.0, 0.0, 0.0),
    (-1.0, 0.0, 1.0, 0.0),
    (-1.0, 1.0, 0.0, -STEP_FLOOR),
    (-1.0, 0.0, 1.0, -STEP_FLOOR),
)
STRUCTURE_FILTERS = (1, 2)  # the filters whose sum is dx+ + dy+


def token_summary(tokens: np.ndarray) -> np.ndarray:
    """(B, T, E) tokens -> (B, E) float32, their L2 norm over the T tokens."""
    tokens = np.asarray(tokens, dtype=np.float32)
    return np.sqrt((tokens**2).sum(axis=1))


def sample_grid(height: int, width: int) -> tuple[int, int]:
    """How many sampled rows / columns have a neighbour below / to the right inside the image."""
    return (height - 2) // STRIDE_PX[0] + 1, (width - 2) // STRIDE_PX[1] + 1


def region_size(height: int, width: int) -> tuple[int, int]:
    """Sampled rows / columns per structure region."""
    rows, cols = sample_grid(height, width)
    if rows < REGION_GRID[0] or cols < REGION_GRID[1]:
        raise MonitorError(
            f"a {height} x {width} image gives {rows} x {cols} samples every {STRIDE_PX} px (rows, columns); the structure "
            f"summary needs at least {REGION_GRID[0]} x {REGION_GRID[1]}"
        )
    return rows // REGION_GRID[0], cols // REGION_GRID[1]


def image_summary_dims(channels: int) -> dict[str, int]:
    """{IMAGE_SUMMARY: D, STRUCTURE_SUMMARY: D}, in the order of their columns in IMAGE_TENSOR."""
    return {IMAGE_SUMMARY: IMAGE_STATISTICS * channels, STRUCTURE_SUMMARY: REGION_GRID[0] * REGION_GRID[1]}


def image_summaries(images: np.ndarray) -> dict[str, np.ndarray]:
    """(B, C, H, W) images -> {IMAGE_SUMMARY: (B, 5C), STRUCTURE_SUMMARY: (B, regions)} float32, over
    the pixels sampled every STRIDE_PX (rows, columns) from the top left that fall in the regions
    (module docstring)."""
    images = np.asarray(images, dtype=np.float32)
    batch, channels, height, width = images.shape
    region_rows, region_cols = region_size(height, width)
    end_row, end_col = REGION_GRID[0] * region_rows * STRIDE_PX[0], REGION_GRID[1] * region_cols * STRIDE_PX[1]
    row_step, col_step = STRIDE_PX
    pixels = images[:, :, 0:end_row:row_step, 0:end_col:col_step]
    right = images[:, :, 0:end_row:row_step, 1 : end_col + 1 : col_step] - pixels
    below = images[:, :, 1 : end_row + 1 : row_step, 0:end_col:col_step] - pixels
    rises = [np.maximum(step - floor, 0.0) for floor in (0.0, STEP_FLOOR) for step in (right, below)]
    statistics = [values.mean(axis=(2, 3)) for values in (pixels, *rises)]
    image = np.log1p(np.stack(statistics, axis=-1).reshape(batch, IMAGE_STATISTICS * channels))
    steps = (rises[0] + rises[1]).sum(axis=1).reshape(batch, REGION_GRID[0], region_rows, REGION_GRID[1], region_cols)
    structure = np.log1p(steps.mean(axis=(2, 4)).reshape(batch, -1))
    return {IMAGE_SUMMARY: image.astype(np.float32), STRUCTURE_SUMMARY: structure.astype(np.float32)}


# node(op, inputs, name, **attributes) -> output name; constant(name, value) -> initializer name
NodeFn = Callable[..., str]
ConstantFn = Callable[[str, np.ndarray], str]


def token_summary_nodes(node: NodeFn, constant: ConstantFn, tokens: str) -> str:
    """Append the nodes of token_summary on `tokens` (B, T, E); returns the (B, E) output."""
    axis = constant("token.reduce_axis", np.array([1], dtype=np.int64))
    return node("ReduceL2", [tokens, axis], TOKEN_SUMMARY, keepdims=0)


def sampling_filters(channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights (F C, 1, 2, 2) and biases (F C,) float32 of the grouped sampling Conv, F =
    len(RECTIFIED_FILTERS) outputs per input channel (channel k's are outputs F k .. F k + F - 1)."""
    filters = np.asarray(RECTIFIED_FILTERS, dtype=np.float32)
    kernel = np.zeros((len(filters), 1, 2, 2), dtype=np.float32)
    kernel[:, 0, 0, 0], kernel[:, 0, 0, 1], kernel[:, 0, 1, 0] = filters[:, 0], filters[:, 1], filters[:, 2]
    return np.tile(kernel, (channels, 1, 1, 1)), np.tile(filters[:, 3], channels)


def summary_map(channels: int) -> np.ndarray:
    """(F C regions, 5C + regions) float32: the flattened region means of the rectified filters ->
    the image statistics (the mean over the regions) and the per-region sums of the step filters."""
    filters, regions = len(RECTIFIED_FILTERS), REGION_GRID[0] * REGION_GRID[1]
    mapping = np.zeros((channels, filters, regions, IMAGE_STATISTICS * channels + regions), dtype=np.float32)
    for channel in range(channels):
        for index in range(filters):
            mapping[channel, index, :, IMAGE_STATISTICS * channel + index] = 1.0 / regions
        for index in STRUCTURE_FILTERS:
            mapping[channel, index, :, IMAGE_STATISTICS * channels :] = np.eye(regions, dtype=np.float32)
    return mapping.reshape(channels * filters * regions, -1)


def image_summary_nodes(node: NodeFn, constant: ConstantFn, image: str, channels: int, height: int, width: int) -> str:
    """Append the nodes of image_summaries on `image` (B, channels, height, width); returns the
    (B, 5C + regions) output: IMAGE_SUMMARY's columns, then STRUCTURE_SUMMARY's."""
    region = [int(size) for size in region_size(height, width)]
    weights, biases = sampling_filters(channels)
    samples = node(
        "Conv",
        [image, constant("image.sampling_weights", weights), constant("image.sampling_biases", biases)],
        "image.samples",
        kernel_shape=[2, 2],
        strides=list(STRIDE_PX),
        group=channels,
    )  # (B, F C, rows, cols)
    rectified = node("Relu", [samples], "image.rectified")
    regions = node("AveragePool", [rectified], "image.regions", kernel_shape=region, strides=region)
    flat = node("Flatten", [regions], "image.region_means", axis=1)
    mapping = summary_map(channels)
    plus_one = node(
        "Gemm",
        [flat, constant("image.summary_map", mapping), constant("image.one", np.ones(mapping.shape[1], np.float32))],
        "image.means_plus_one",
    )
    return node("Log", [plus_one], IMAGE_TENSOR)
