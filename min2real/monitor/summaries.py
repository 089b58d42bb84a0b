"""Per-frame summaries the monitor scores (numpy reference + the ONNX nodes that compute them).

    tokens (B, 1 + N, E) of the first ViT block:  [CLS (E), mean over the N patch tokens (E),
                                                   std over the N patch tokens (E)]       -> (B, 3E)
    camera image (B, 3, H, W), the graph's input: per channel [mean, std, mean |d/dx|, mean |d/dy|]
                                                   (exposure, contrast, sharpness / noise) -> (B, 12)

The token summary keeps what the pooled vector averages away (how the patches spread: texture,
rendering look); the image summary is the camera-health part (a blurred, noisy or over-exposed
image). Both are affine-invariant per channel under the Mahalanobis score, so the raw 0..255 input
serves as well as the normalised one. Standard ops only (Gather, Slice, ReduceMean, Sub, Mul, Sqrt,
Abs, Concat), so ONNX Runtime and TensorRT run them as they run the rest of the graph.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TOKEN_SUMMARY = "token_summary"
IMAGE_SUMMARY = "image_summary"


def token_summary(tokens: np.ndarray) -> np.ndarray:
    """(B, 1 + N, E) tokens (CLS first) -> (B, 3E) float32 [CLS, patch mean, patch std]."""
    tokens = np.asarray(tokens, dtype=np.float32)
    patches = tokens[:, 1:]
    return np.concatenate([tokens[:, 0], patches.mean(axis=1), patches.std(axis=1)], axis=-1)


def image_summary(images: np.ndarray) -> np.ndarray:
    """(B, 3, H, W) images -> (B, 12) float32 [per-channel mean, std, mean |dx|, mean |dy|]."""
    images = np.asarray(images, dtype=np.float32)
    return np.concatenate(
        [
            images.mean(axis=(2, 3)),
            images.std(axis=(2, 3)),
            np.abs(np.diff(images, axis=3)).mean(axis=(2, 3)),
            np.abs(np.diff(images, axis=2)).mean(axis=(2, 3)),
        ],
        axis=-1,
    )


# node(op, inputs, name, **attributes) -> output name; constant(name, value) -> initializer name
NodeFn = Callable[..., str]
ConstantFn = Callable[[str, np.ndarray], str]


def _mean_and_std(node: NodeFn, constant: ConstantFn, x: str, axes: list[int], name: str) -> tuple[str, str]:
    """Population mean and std of `x` over `axes` (keepdims 0), as token_summary / image_summary."""
    axes_name = constant(f"{name}.axes", np.array(axes, dtype=np.int64))
    mean_keep = node("ReduceMean", [x, axes_name], f"{name}.mean_keep", keepdims=1)
    centered = node("Sub", [x, mean_keep], f"{name}.centered")
    variance = node("ReduceMean", [node("Mul", [centered, centered], f"{name}.sq"), axes_name], f"{name}.var", keepdims=0)
    mean = node("ReduceMean", [x, axes_name], f"{name}.mean", keepdims=0)
    return mean, node("Sqrt", [variance], f"{name}.std")


def _slice(node: NodeFn, constant: ConstantFn, x: str, start: int, end: int, axis: int, name: str) -> str:
    return node(
        "Slice",
        [
            x,
            constant(f"{name}.start", np.array([start], dtype=np.int64)),
            constant(f"{name}.end", np.array([end], dtype=np.int64)),
            constant(f"{name}.axis", np.array([axis], dtype=np.int64)),
        ],
        name,
    )


def token_summary_nodes(node: NodeFn, constant: ConstantFn, tokens: str) -> str:
    """Append the nodes of token_summary on `tokens` (B, 1 + N, E); returns the (B, 3E) output."""
    big = np.iinfo(np.int64).max
    cls = node("Gather", [tokens, constant("token.cls_index", np.array(0, dtype=np.int64))], "token.cls", axis=1)
    patches = _slice(node, constant, tokens, 1, big, 1, "token.patches")
    mean, std = _mean_and_std(node, constant, patches, [1], "token.patch")
    return node("Concat", [cls, mean, std], TOKEN_SUMMARY, axis=-1)


def image_summary_nodes(node: NodeFn, constant: ConstantFn, image: str) -> str:
    """Append the nodes of image_summary on `image` (B, 3, H, W); returns the (B, 12) output."""
    big = np.iinfo(np.int64).max
    mean, std = _mean_and_std(node, constant, image, [2, 3], "image")
    pixel_axes = constant("image.pixel_axes", np.array([2, 3], dtype=np.int64))
    gradients = []
    for axis, label in ((3, "dx"), (2, "dy")):
        ahead = _slice(node, constant, image, 1, big, axis, f"image.{label}.ahead")
        behind = _slice(node, constant, image, 0, -1, axis, f"image.{label}.behind")
        step = node("Abs", [node("Sub", [ahead, behind], f"image.{label}.diff")], f"image.{label}.abs")
        gradients.append(node("ReduceMean", [step, pixel_axes], f"image.{label}.mean", keepdims=0))
    return node("Concat", [mean, std, *gradients], IMAGE_SUMMARY, axis=-1)
