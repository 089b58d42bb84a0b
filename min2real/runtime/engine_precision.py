"""How TensorRT builds a graph, per TensorRT generation: pure rules, no TensorRT import.

TensorRT 11 builds strongly typed networks only. It removed the weak-typing API that TensorRT 10
still has (BuilderFlag.FP16 / INT8 / OBEY_PRECISION_CONSTRAINTS, IInt8EntropyCalibrator2 and
IBuilderConfig.int8_calibrator, ILayer.precision / set_output_type, Builder.platform_has_fast_fp16):
reduced precision comes from the ONNX graph's own types (a `min2real quantize` FP16 graph) and
INT8 from its explicit Q/DQ nodes (a `min2real quantize` INT8 graph). So:

    graph precision   requested         TensorRT 10                      TensorRT 11
    fp32              fp32              fp32 engine                      fp32 engine (strongly typed)
    fp32              none / fp16 /     weak typing: FP16 (+ INT8 with   refused: make a typed graph
                      int8              entropy calibration), FP32 pins  (`min2real quantize`) and build it
    fp16 / int8       none / the same   strongly typed: the graph's      strongly typed: the graph's
                                        types, no precision flags        types
    fp16 / int8       another           refused: the graph's types decide

Without a requested precision an engine is the typed graph's precision, and fp16 for an FP32
graph (the default since TensorRT 10, which the runtime looks for; on TensorRT 11 that default
is refused with the command that makes the FP16 graph). The engine precision names the engine
file and is part of the engine cache key, beside the graph precision.
"""

from __future__ import annotations

from dataclasses import dataclass

from min2real.contract import GRAPH_PRECISIONS

STRONG_TYPING_ONLY_MAJOR = 11  # the first TensorRT major without weak typing
MIN_TENSORRT_MAJOR = 10


class EnginePrecisionError(ValueError):
    """The requested precision cannot be built from this graph with this TensorRT."""


@dataclass(frozen=True)
class BuildPlan:
    """What the builder does.

    engine_precision: "fp32" | "fp16" | "int8" (file name, cache key).
    graph_precision: the ONNX graph's own precision (ArtifactMetadata.precision).
    strongly_typed: the network takes its types from the graph (NetworkDefinitionCreationFlag.
        STRONGLY_TYPED on TensorRT 10; always so on 11); no precision flags, no layer pins.
    builder_flags: trt.BuilderFlag names to set (TensorRT 10 weak typing only).
    pin_fp32: pin normalisation / softmax / reduce layers to FP32 (weak typing only).
    calibrate: INT8 entropy calibration on dataset samples (TensorRT 10 weak typing only).
    """

    engine_precision: str
    graph_precision: str
    strongly_typed: bool
    builder_flags: tuple[str, ...] = ()
    pin_fp32: bool = False
    calibrate: bool = False


def tensorrt_major(version: str) -> int:
    """10 for "10.3.0"; a version that does not start with a number is an error naming it."""
    head = str(version).split(".")[0]
    if not head.isdigit():
        raise EnginePrecisionError(f"TensorRT version {version!r} does not start with a major number")
    return int(head)


def strong_typing_only(tensorrt_version: str) -> bool:
    return tensorrt_major(tensorrt_version) >= STRONG_TYPING_ONLY_MAJOR


def default_engine_precision(graph_precision: str) -> str:
    """The engine precision when none is asked for: a typed graph's own, fp16 for an FP32 graph."""
    if graph_precision not in GRAPH_PRECISIONS:
        raise EnginePrecisionError(f"graph precision {graph_precision!r}; expected one of {GRAPH_PRECISIONS}")
    return "fp16" if graph_precision == "fp32" else graph_precision


def typed_graph_command(onnx_name: str, precision: str) -> str:
    """The command that makes the typed graph TensorRT 11 needs for `precision`."""
    stem = onnx_name[: -len(".onnx")] if onnx_name.endswith(".onnx") else onnx_name
    calib = " --calib DATA_DIR" if precision == "int8" else ""
    return f"min2real quantize {onnx_name} --precision {precision}{calib} --out {stem}.{precision}.onnx"


def plan_build(graph_precision: str, requested: str | None, tensorrt_version: str, onnx_name: str) -> BuildPlan:
    """The build for a graph of `graph_precision` at `requested` (None: the graph's) on this
    TensorRT (module docstring). Raises EnginePrecisionError with what to do instead."""
    major = tensorrt_major(tensorrt_version)
    if major < MIN_TENSORRT_MAJOR:
        raise EnginePrecisionError(f"TensorRT {tensorrt_version} is too old; min2real needs TensorRT 10 or 11")
    precision = default_engine_precision(graph_precision) if requested is None else requested
    if precision not in GRAPH_PRECISIONS:
        raise EnginePrecisionError(f"engine precision {precision!r}; expected one of {GRAPH_PRECISIONS}")
    strong_only = major >= STRONG_TYPING_ONLY_MAJOR
    if graph_precision != "fp32":
        if precision != graph_precision:
            raise EnginePrecisionError(
                f"{onnx_name} is a {graph_precision} graph: its own types decide the engine's precision, so it "
                f"builds a {graph_precision} engine (omit --precision). For {precision}, make that graph from the "
                f"FP32 export: `{typed_graph_command('MODEL.onnx', precision)}`"
                if precision != "fp32"
                else f"{onnx_name} is a {graph_precision} graph; build the FP32 export for an fp32 engine"
            )
        return BuildPlan(precision, graph_precision, strongly_typed=True)
    if precision == "fp32":
        return BuildPlan("fp32", "fp32", strongly_typed=strong_only)
    if strong_only:
        raise EnginePrecisionError(
            f"TensorRT {tensorrt_version} builds strongly typed networks only: it has no FP16/INT8 builder flags "
            f"and no INT8 calibrator, so an {precision} engine needs an {precision} graph. Export a typed graph "
            f"with `{typed_graph_command(onnx_name, precision)}` and build that one (without --precision), "
            f"or build {onnx_name} with --precision fp32"
        )
    if precision == "fp16":
        return BuildPlan("fp16", "fp32", False, ("FP16", "OBEY_PRECISION_CONSTRAINTS"), pin_fp32=True)
    return BuildPlan("int8", "fp32", False, ("FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"), True, calibrate=True)
