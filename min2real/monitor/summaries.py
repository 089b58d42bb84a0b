"""Per-frame summaries the monitor scores (numpy reference + the ONNX nodes that compute them).

    tokens (B, 1 + N, E) of the first ViT block:   [mean over the N patch tokens (E),
                                                    L2 norm over the N patch tokens (E)]    -> (B, 2E)
    camera image (B, C, H, W), the graph's input, sampled every STRIDE_PX pixels in both directions:
        per channel the pixels p, the steps to their right neighbours dx and to those below dy;
        [mean p (C), mean |dx| (C), mean |dy| (C), std p (C)]                               -> (B, 4C)

The token summary keeps what the pooled vector averages away (with the mean, the norm gives the
patches' spread: texture, rendering look); the image summary is the camera-health part: exposure
(mean), contrast (std), sharpness and noise (the steps between neighbouring pixels: a blur lowers
them, noise raises them). Sampling every STRIDE_PX-th pixel (and its two neighbours) reads an
eighth of the image, so the monitor stays cheap next to the graph. Standard ops only (Slice,
ReduceMean, ReduceL2, Sub, Mul, Abs, Max, Sqrt, Concat), so ONNX Runtime and TensorRT run them as
they run the rest of the graph.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TOKEN_SUMMARY = "token_summary"
IMAGE_SUMMARY = "image_summary"
STRIDE_PX = 4  # the image summary samples every STRIDE_PX-th row and column


def token_summary(tokens: np.ndarray) -> np.ndarray:
    """(B, 1 + N, E) tokens (CLS first) -> (B, 2E) float32 [patch mean, patch L2 norm]."""
    patches = np.asarray(tokens, dtype=np.float32)[:, 1:]
    return np.concatenate([patches.mean(axis=1), np.sqrt((patches**2).sum(axis=1))], axis=-1)


def _sample_rows_cols(height: int, width: int) -> tuple[int, int]:
    """How many sampled rows / columns have a neighbour below / to the right inside the image."""
    return (height - 2) // STRIDE_PX + 1, (width - 2) // STRIDE_PX + 1


def image_summary(images: np.ndarray) -> np.ndarray:
    """(B, C, H, W) images -> (B, 4C) float32 [mean p, mean |dx|, mean |dy|, std p] per channel over
    the pixels p sampled every STRIDE_PX rows and columns from the top left (module docstring)."""
    images = np.asarray(images, dtype=np.float32)
    rows, cols = _sample_rows_cols(*images.shape[2:])
    end_row, end_col = rows * STRIDE_PX, cols * STRIDE_PX
    pixels = images[:, :, 0:end_row:STRIDE_PX, 0:end_col:STRIDE_PX]
    right = images[:, :, 0:end_row:STRIDE_PX, 1:end_col:STRIDE_PX]
    below = images[:, :, 1:end_row:STRIDE_PX, 0:end_col:STRIDE_PX]
    axes = (2, 3)
    return np.concatenate(
        [
            pixels.mean(axis=axes),
            np.abs(right - pixels).mean(axis=axes),
            np.abs(below - pixels).mean(axis=axes),
            pixels.std(axis=axes),
        ],
        axis=-1,
    )


# node(op, inputs, name, **attributes) -> output name; constant(name, value) -> initializer name
NodeFn = Callable[..., str]
ConstantFn = Callable[[str, np.ndarray], str]


def token_summary_nodes(node: NodeFn, constant: ConstantFn, tokens: str) -> str:
    """Append the nodes of token_summary on `tokens` (B, 1 + N, E); returns the (B, 2E) output."""
    patches = node(
        "Slice",
        [
            tokens,
            constant("token.start", np.array([1], dtype=np.int64)),
            constant("token.end", np.array([np.iinfo(np.int64).max], dtype=np.int64)),
            constant("token.axis", np.array([1], dtype=np.int64)),
        ],
        "token.patches",
    )
    axis = constant("token.reduce_axis", np.array([1], dtype=np.int64))
    mean = node("ReduceMean", [patches, axis], "token.mean", keepdims=0)
    norm = node("ReduceL2", [patches, axis], "token.norm", keepdims=0)
    return node("Concat", [mean, norm], TOKEN_SUMMARY, axis=-1)


def image_summary_nodes(node: NodeFn, constant: ConstantFn, image: str, height: int, width: int) -> str:
    """Append the nodes of image_summary on `image` (B, C, height, width); returns the (B, 4C) output.
    std p = sqrt(max(E[p^2] - E[p]^2, 0))."""
    rows, cols = _sample_rows_cols(height, width)
    ends = constant("image.ends", np.array([rows * STRIDE_PX, cols * STRIDE_PX], dtype=np.int64))
    spatial = constant("image.spatial_axes", np.array([2, 3], dtype=np.int64))
    steps = constant("image.steps", np.array([STRIDE_PX, STRIDE_PX], dtype=np.int64))

    def sample(row: int, col: int, name: str) -> str:
        starts = constant(f"image.{name}.starts", np.array([row, col], dtype=np.int64))
        return node("Slice", [image, starts, ends, spatial, steps], f"image.{name}")

    pixels, right, below = sample(0, 0, "pixels"), sample(0, 1, "right"), sample(1, 0, "below")

    def mean_abs_step(neighbour: str, name: str) -> str:
        step = node("Abs", [node("Sub", [neighbour, pixels], f"image.{name}")], f"image.{name}.abs")
        return node("ReduceMean", [step, spatial], f"image.{name}.mean_abs", keepdims=0)

    mean = node("ReduceMean", [pixels, spatial], "image.mean", keepdims=0)
    mean_square = node("ReduceMean", [node("Mul", [pixels, pixels], "image.sq"), spatial], "image.mean_sq", keepdims=0)
    variance = node("Sub", [mean_square, node("Mul", [mean, mean], "image.mean_squared")], "image.variance")
    zero = constant("image.zero", np.array(0.0, dtype=np.float32))
    std = node("Sqrt", [node("Max", [variance, zero], "image.variance_clipped")], "image.std")
    return node("Concat", [mean, mean_abs_step(right, "dx"), mean_abs_step(below, "dy"), std], IMAGE_SUMMARY, axis=-1)
