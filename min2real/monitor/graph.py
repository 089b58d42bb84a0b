"""ONNX graph surgery for the monitor (onnx + numpy, no torch).

`locate_features` finds the features the heads read: the one rank-2 (B, D) tensor the image backbone
hands to the rest of the network (the dynamo exporter records each node's module scope, e.g.
"model.image_backbone"). `with_features_output` exposes it (to compute statistics), and
`attach_monitor_nodes` appends the score (and, given the discriminator's weights, its logit) as
optional outputs with standard ops only (Sub, MatMul, Mul, ReduceMean, Sqrt, Gemm, Erf), so
ONNX Runtime and TensorRT run them as they run the rest of the graph.
"""

from __future__ import annotations

import math

import numpy as np

from min2real.contract import OUTPUT_DOMAIN_LOGIT, OUTPUT_OOD_SCORE
from min2real.monitor.statistics import FeatureStatistics, MonitorError

BACKBONE_SCOPE = "model.image_backbone"
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


def feature_dim(model, features_name: str) -> int:
    """D of the (B, D) features tensor (from ONNX shape inference)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    for value in (*inferred.graph.value_info, *inferred.graph.output):
        if value.name == features_name:
            dims = value.type.tensor_type.shape.dim
            if len(dims) == 2 and dims[1].dim_value > 0:
                return int(dims[1].dim_value)
    raise MonitorError(f"the size of feature tensor {features_name!r} is not known from the graph")


def with_features_output(model, features_name: str):
    """A copy of `model` that also outputs `features_name` (float32 (B, D)), for statistics."""
    import onnx

    tapped = onnx.ModelProto()
    tapped.CopyFrom(model)
    tapped.graph.output.append(
        onnx.helper.make_tensor_value_info(
            features_name, onnx.TensorProto.FLOAT, [None, feature_dim(model, features_name)]
        )
    )
    return tapped


def _batch_dim(model) -> int | str:
    first = model.graph.output[0].type.tensor_type.shape.dim[0]
    return int(first.dim_value) if first.HasField("dim_value") else (first.dim_param or "batch")


def attach_monitor_nodes(
    model,
    features_name: str,
    statistics: FeatureStatistics,
    discriminator: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> None:
    """Append OUTPUT_OOD_SCORE (and, with `discriminator` layers [(weight (out, in), bias (out,))...]
    joined by exact GELUs, OUTPUT_DOMAIN_LOGIT) to `model` in place, both (B,) float32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    existing = {output.name for output in graph.output}
    if existing & {OUTPUT_OOD_SCORE, OUTPUT_DOMAIN_LOGIT}:
        raise MonitorError(f"the graph already has monitor outputs {sorted(existing)}; attach to a graph without them")
    dim = feature_dim(model, features_name)
    if statistics.dim != dim:
        raise MonitorError(f"statistics are over {statistics.dim} features; the graph's {features_name!r} has {dim}")
    batch = _batch_dim(model)

    def constant(name: str, value: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(value), f"{PREFIX}.{name}"))
        return f"{PREFIX}.{name}"  # constants and node outputs get distinct names below

    def node(op: str, inputs: list[str], name: str, **attributes) -> str:
        graph.node.append(helper.make_node(op, inputs, [f"{PREFIX}.{name}"], name=f"{PREFIX}.{name}", **attributes))
        return f"{PREFIX}.{name}"

    centered = node("Sub", [features_name, constant("feature_mean", statistics.mean)], "centered")
    whitened = node("MatMul", [centered, constant("whitening", statistics.whitening)], "whitened")
    squared = node("Mul", [whitened, whitened], "squared")
    mean_square = node(
        "ReduceMean", [squared, constant("last_axis", np.array([-1], dtype=np.int64))], "mean_square", keepdims=0
    )
    graph.node.append(helper.make_node("Sqrt", [mean_square], [OUTPUT_OOD_SCORE], name=f"{PREFIX}.score"))
    graph.output.append(helper.make_tensor_value_info(OUTPUT_OOD_SCORE, TensorProto.FLOAT, [batch]))

    if discriminator:
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
