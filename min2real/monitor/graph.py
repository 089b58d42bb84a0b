"""ONNX graph surgery for the monitor (onnx + numpy, no torch).

`locate_features` finds the features the heads read: the one rank-2 (B, D) tensor the image backbone
hands to the rest of the network (the dynamo exporter records each node's module scope, e.g.
"model.image_backbone"); the discriminator reads them. `locate_block_tokens` finds the first ViT
block's output tokens. `attach_summary_nodes` appends the summaries the score reads
(monitor.summaries: those tokens, the camera image and where its edges are), `with_outputs` exposes tensors (to compute
statistics), and `attach_monitor_nodes` appends the score (and, given the discriminator's weights, its
logit) as optional outputs with standard ops only (Concat, Sub, MatMul, ReduceL2; Gemm, Mul, Erf, Add), so
ONNX Runtime and TensorRT run them as they run the rest of the graph.
"""

from __future__ import annotations

import math

import numpy as np

from min2real.contract import INPUT_IMAGE, OUTPUT_DOMAIN_LOGIT, OUTPUT_OOD_SCORE
from min2real.monitor.statistics import FeatureStatistics, MonitorError, ScorePart
from min2real.monitor.summaries import TOKEN_SUMMARY, image_summary_nodes, token_summary_nodes

BACKBONE_SCOPE = "model.image_backbone"
FIRST_BLOCK_SCOPE = "model.image_backbone.vit.blocks.0"
SCOPE_KEY = "pkg.torch.onnx.name_scopes"
PREFIX = "monitor"  # names of the nodes and initializers this module adds


def _scopes(node) -> str:
    return next((entry.value for entry in node.metadata_props if entry.key == SCOPE_KEY), "")


def _in_backbone(node) -> bool:
    return f"'{BACKBONE_SCOPE}'" in _scopes(node)


def locate_features(model) -> str:
    """Name of the (B, D) image-feature tensor the heads read in an exported min2real graph.

    Raises MonitorError when the graph carries no module scopes (exported with the legacy
    exporter) or when not exactly one rank-2 tensor leaves the image backbone."""
    import onnx

    graph = model.graph
    if not any(_scopes(node) for node in graph.node):
        raise MonitorError(
            "the graph records no module scopes (pkg.torch.onnx.name_scopes); the monitor needs a graph "
            "exported with the dynamo exporter (min2real export --exporter dynamo, the default)"
        )
    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {
        value.name: len(value.type.tensor_type.shape.dim)
        for value in (*inferred.graph.value_info, *inferred.graph.output)
        if value.type.tensor_type.HasField("shape")
    }
    produced = {output: node for node in graph.node for output in node.output}
    leaving = {
        name
        for node in graph.node
        if not _in_backbone(node)
        for name in node.input
        if name in produced and _in_backbone(produced[name])
    }
    candidates = sorted(name for name in leaving if ranks.get(name) == 2)
    if len(candidates) != 1:
        raise MonitorError(
            f"expected one (B, D) feature tensor leaving {BACKBONE_SCOPE!r}; found {candidates} "
            f"(all tensors leaving it: {sorted(leaving)})"
        )
    return candidates[0]


def locate_block_tokens(model) -> str:
    """Name of the first ViT block's output tokens (B, 1 + N, E) in an exported min2real graph: the
    output of the last node in FIRST_BLOCK_SCOPE (the block's second residual add). Raises
    MonitorError for a graph without that block (e.g. the ResNet backbone)."""
    in_block = [node for node in model.graph.node if f"'{FIRST_BLOCK_SCOPE}'" in _scopes(node)]
    if not in_block:
        raise MonitorError(
            f"the graph has no {FIRST_BLOCK_SCOPE!r} nodes; the monitor scores the first block of a ViT "
            "image backbone (the min2real DINOv2 slot), which this graph lacks"
        )
    name = in_block[-1].output[0]
    if len(_dims(model, name) or ()) != 3:
        raise MonitorError(f"{FIRST_BLOCK_SCOPE!r} ends in {name!r}, not a (B, tokens, E) tensor")
    return name


def _dims(model, name: str) -> tuple[int, ...] | None:
    """Shape of tensor `name` from ONNX shape inference (0 for an unknown dim), or None."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    for value in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input):
        if value.name == name and value.type.tensor_type.HasField("shape"):
            return tuple(int(dim.dim_value) for dim in value.type.tensor_type.shape.dim)
    return None


def feature_dim(model, features_name: str) -> int:
    """D of the (B, D) features tensor (from ONNX shape inference)."""
    dims = _dims(model, features_name)
    if dims is None or len(dims) != 2 or dims[1] <= 0:
        raise MonitorError(f"the size of feature tensor {features_name!r} is not known from the graph")
    return dims[1]


def with_outputs(model, names: list[str]):
    """A copy of `model` that also outputs the (B, D) float32 tensors `names`, for statistics."""
    import onnx

    tapped = onnx.ModelProto()
    tapped.CopyFrom(model)
    for name in names:
        tapped.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [None, feature_dim(model, name)])
        )
    return tapped


def _builders(model):
    """node(op, inputs, name, **attributes) and constant(name, value), naming everything PREFIX.name."""
    from onnx import helper, numpy_helper

    graph = model.graph

    def constant(name: str, value: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(value), f"{PREFIX}.{name}"))
        return f"{PREFIX}.{name}"  # constants and node outputs get distinct names

    def node(op: str, inputs: list[str], name: str, **attributes) -> str:
        graph.node.append(helper.make_node(op, inputs, [f"{PREFIX}.{name}"], name=f"{PREFIX}.{name}", **attributes))
        return f"{PREFIX}.{name}"

    return node, constant


def _image_shape(model) -> tuple[int, int, int]:
    """(C, H, W) of the graph's image input."""
    dims = _dims(model, INPUT_IMAGE)
    if dims is None or len(dims) != 4 or min(dims[1:]) < 1:
        raise MonitorError(f"graph input {INPUT_IMAGE!r} has shape {dims}; expected (B, C, H, W)")
    return dims[1], dims[2], dims[3]


def attach_summary_nodes(model) -> dict[str, str]:
    """Append the summaries the score reads (monitor.summaries) to `model` in place; returns
    {TOKEN_SUMMARY / IMAGE_SUMMARY / STRUCTURE_SUMMARY: tensor name}, each (B, D) float32."""
    existing = {output.name for output in model.graph.output}
    if existing & {OUTPUT_OOD_SCORE, OUTPUT_DOMAIN_LOGIT}:
        raise MonitorError(f"the graph already has monitor outputs {sorted(existing)}; attach to a graph without them")
    tokens = locate_block_tokens(model)
    node, constant = _builders(model)
    return {
        TOKEN_SUMMARY: token_summary_nodes(node, constant, tokens),
        **image_summary_nodes(node, constant, INPUT_IMAGE, *_image_shape(model)),
    }


def _batch_dim(model) -> int | str:
    first = model.graph.output[0].type.tensor_type.shape.dim[0]
    return int(first.dim_value) if first.HasField("dim_value") else (first.dim_param or "batch")


def attach_monitor_nodes(
    model,
    summaries: dict[str, str],
    parts: list[ScorePart],
    features_name: str | None = None,
    discriminator: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> FeatureStatistics:
    """Append OUTPUT_OOD_SCORE over `parts` (read from the `summaries` tensors of
    attach_summary_nodes; statistics.combined_scores is its reference) and, with `discriminator`
    layers [(weight (out, in), bias (out,))...] joined by exact GELUs on `features_name`,
    OUTPUT_DOMAIN_LOGIT, to `model` in place, both (B,) float32. Returns the score's stored statistics
    (the concatenated means, the scaled block-diagonal whitening) for the metadata's checksum."""
    import onnx
    from onnx import TensorProto, helper

    graph = model.graph
    batch = _batch_dim(model)
    node, constant = _builders(model)
    for part in parts:
        dim = feature_dim(model, summaries[part.name])
        if part.statistics.dim != dim:
            raise MonitorError(f"{part.name} statistics are over {part.statistics.dim} features; the graph's has {dim}")
    # One Sub / MatMul / ReduceL2 over the concatenated parts: part k's whitening columns scaled by
    # 1 / sqrt(D_k * parts * reference_k^2), so the sum of squares is the mean over parts of (score / reference)^2.
    mean = np.concatenate([part.statistics.mean for part in parts]).astype(np.float32)
    whitening = np.zeros((mean.size, mean.size), dtype=np.float32)
    offset = 0
    for part in parts:
        dim = part.statistics.dim
        scale = 1.0 / math.sqrt(dim * len(parts) * part.reference**2)
        whitening[offset : offset + dim, offset : offset + dim] = part.statistics.whitening * scale
        offset += dim
    joined = node("Concat", [summaries[part.name] for part in parts], "summaries", axis=-1)
    centered = node("Sub", [joined, constant("feature_mean", mean)], "centered")
    whitened = node("MatMul", [centered, constant("whitening", whitening)], "whitened")
    graph.node.append(
        helper.make_node(
            "ReduceL2",
            [whitened, constant("last_axis", np.array([-1], dtype=np.int64))],
            [OUTPUT_OOD_SCORE],
            name=f"{PREFIX}.score",
            keepdims=0,
        )
    )
    graph.output.append(helper.make_tensor_value_info(OUTPUT_OOD_SCORE, TensorProto.FLOAT, [batch]))

    if discriminator:
        if features_name is None:
            raise MonitorError("the discriminator needs the features it reads (features_name)")
        hidden = features_name
        for index, (weight, bias) in enumerate(discriminator):
            hidden = node(
                "Gemm",
                [
                    hidden,
                    constant(f"discriminator_{index}.weight", np.asarray(weight, np.float32)),
                    constant(f"discriminator_{index}.bias", np.asarray(bias, np.float32)),
                ],
                f"discriminator_{index}",
                transB=1,
            )
            if index < len(discriminator) - 1:  # exact GELU: x * 0.5 * (1 + erf(x / sqrt(2)))
                scaled = node(
                    "Mul",
                    [hidden, constant(f"gelu_{index}.scale_value", np.float32(1 / math.sqrt(2)))],
                    f"gelu_{index}.scaled",
                )
                erf = node("Erf", [scaled], f"gelu_{index}.erf")
                shifted = node(
                    "Add", [erf, constant(f"gelu_{index}.one_value", np.float32(1.0))], f"gelu_{index}.shifted"
                )
                half = node(
                    "Mul", [hidden, constant(f"gelu_{index}.half_value", np.float32(0.5))], f"gelu_{index}.half"
                )
                hidden = node("Mul", [half, shifted], f"gelu_{index}.out")
        graph.node.append(
            helper.make_node(
                "Squeeze",
                [hidden, constant("squeeze_axis", np.array([1], dtype=np.int64))],
                [OUTPUT_DOMAIN_LOGIT],
                name=f"{PREFIX}.domain_logit",
            )
        )
        graph.output.append(helper.make_tensor_value_info(OUTPUT_DOMAIN_LOGIT, TensorProto.FLOAT, [batch]))
    onnx.checker.check_model(model, full_check=True)
    return FeatureStatistics(mean, whitening, 0.0, parts[0].statistics.num_frames)
