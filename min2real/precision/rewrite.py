"""The graph rewrites of `min2real quantize`: FP32 graph -> strongly typed FP16, or -> INT8 Q/DQ.

    fp16  onnxruntime.transformers.float16.convert_float_to_float16 with keep_io_types and an
          explicit block list; Cast nodes at every FP16/FP32 boundary make every tensor's type
          explicit, which is what TensorRT's strongly typed build reads. Kept in FP32:
            - statistics: LayerNormalization / InstanceNormalization (the LiDAR encoder's
              GroupNorm) / Softmax / Reduce* (means and variances over 96-650 values lose digits
              and can overflow in FP16);
            - the BEV histogram input: the nodes reading `lidar_bev` (point counts per cell);
            - the outputs: graph inputs and outputs stay float32, and the nodes that write the
              outputs run in FP32.
          FP32 nodes read the FP32 originals of their weights and graph inputs (no FP16 round trip).
    int8  onnxruntime.quantization.quantize_static in QDQ format, TensorRT's explicit-quantization
          form: symmetric signed INT8 (zero point 0), weights per output channel, activations
          per tensor calibrated on dataset samples (percentile by default), biases left FP32.
          Quantized: the Conv / MatMul / Gemm nodes with a constant weight that depend on the
          camera / LiDAR only (the sensor encoders), except the V2R adapter (INT8_FP32_WEIGHTS);
          everything else (the measurement encoder, fusion, heads, and the FP32 nodes above) runs
          in FP32 between the Q/DQ pairs.

Why not NVIDIA ModelOpt (AutoCast / ONNX PTQ, NVIDIA's recommendation): `nvidia-modelopt[onnx]`
pulls in onnxruntime-gpu (it replaces our onnxruntime), cupy-cuda12x, CUDA toolkit wheels and
torch with CUDA: gigabytes, and a different ONNX Runtime, on the export side of a CPU project.
ONNX Runtime's own tools come with the onnxruntime we pin and do both jobs; a ModelOpt graph
(FP16 from AutoCast, Q/DQ from modelopt.onnx.quantization) builds on the same engine path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from min2real.contract import INPUT_IMAGE, INPUT_LIDAR_BEV
from min2real.precision.options import (
    CALIBRATION_METHODS,
    DEFAULT_CALIBRATION_METHOD,
    FP32_INPUTS,
    FP32_OPS,
    INT8_FP32_WEIGHTS,
    INT8_OPS,
)


class QuantizeError(RuntimeError):
    """A reduced-precision graph could not be made, or differs from FP32 above tolerance."""


# ---- graph helpers --------------------------------------------------------------------------------
def name_nodes(graph) -> None:
    """Give every unnamed node a unique name (block lists and reports name nodes)."""
    taken = {node.name for node in graph.node if node.name}
    for index, node in enumerate(graph.node):
        if not node.name:
            candidate = f"{node.op_type}_{index}"
            while candidate in taken:
                candidate += "_"
            node.name = candidate
            taken.add(candidate)


def fp32_nodes(graph) -> list[str]:
    """Names of the nodes kept in FP32 (module docstring): statistics ops, readers of the BEV
    histogram input, writers of the graph outputs."""
    outputs = {output.name for output in graph.output}
    kept = []
    for node in graph.node:
        if (
            node.op_type in FP32_OPS
            or any(name in FP32_INPUTS for name in node.input)
            or any(name in outputs for name in node.output)
        ):
            kept.append(node.name)
    return kept


def tensor_types(graph) -> dict[str, int]:
    """{graph input/output name: ONNX elem_type}."""
    return {value.name: value.type.tensor_type.elem_type for value in (*graph.input, *graph.output)}


# ---- FP16 -----------------------------------------------------------------------------------------
def to_fp16(proto) -> tuple[object, dict]:
    """(strongly typed mixed FP16/FP32 ModelProto, recipe) of an FP32 ModelProto."""
    from onnxruntime.transformers import float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    name_nodes(proto.graph)
    keep = fp32_nodes(proto.graph)
    converted = float16.convert_float_to_float16(
        proto,
        keep_io_types=True,
        op_block_list=[*float16.DEFAULT_OP_BLOCK_LIST, *FP32_OPS],
        node_block_list=keep,
    )
    _restore_fp32_reads(converted, proto)
    OnnxModel(converted).topological_sort()  # the converter appends its input Casts at the end
    # The exporter's value_info for initializers goes stale where a weight stayed FP32: drop it.
    constants = {init.name for init in converted.graph.initializer}
    kept_info = [value for value in converted.graph.value_info if value.name not in constants]
    del converted.graph.value_info[:]
    converted.graph.value_info.extend(kept_info)
    counts = _precision_counts(converted.graph)
    recipe = {
        "method": "onnxruntime.transformers.float16.convert_float_to_float16 (keep_io_types)",
        "fp32_ops": list(FP32_OPS),
        "fp32_inputs_read_in_fp32": list(FP32_INPUTS),
        "fp32_nodes": keep,
        "io_types": "float32",
        **counts,
    }
    return converted, recipe


def _restore_fp32_reads(converted, original) -> None:
    """Where the converter rounds an FP32 value to FP16 and casts it back for an FP32 node (a
    weight of a blocked node, a graph input such as the BEV histogram), read the FP32 original."""
    from onnx import TensorProto, numpy_helper

    graph = converted.graph
    fp32_weights = {init.name: init for init in original.graph.initializer if init.data_type == TensorProto.FLOAT}
    inputs = {value.name for value in graph.input}
    producers = {output: node for node in graph.node for output in node.output}
    renamed: dict[str, str] = {}
    dropped = []
    for node in graph.node:
        to = next((attribute.i for attribute in node.attribute if attribute.name == "to"), None)
        if node.op_type != "Cast" or to != TensorProto.FLOAT:
            continue
        source = node.input[0]
        before = producers.get(source)
        if source in fp32_weights:  # an FP16 copy of an FP32 weight: the FP32 weight itself
            graph.initializer.append(
                numpy_helper.from_array(numpy_helper.to_array(fp32_weights[source]), node.output[0])
            )
            dropped.append(node)
        elif before is not None and before.op_type == "Cast" and before.input[0] in inputs:  # an FP32 graph input
            renamed[node.output[0]] = before.input[0]
            dropped.append(node)
    for node in dropped:
        graph.node.remove(node)
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in renamed:
                node.input[index] = renamed[name]
    used = {name for node in graph.node for name in node.input} | {value.name for value in graph.output}
    for node in [node for node in graph.node if node.op_type == "Cast" and not set(node.output) & used]:
        graph.node.remove(node)  # input Casts nothing reads any more
    for init in [init for init in graph.initializer if init.name not in used]:
        graph.initializer.remove(init)  # FP16 copies only the restored reads used


def _precision_counts(graph) -> dict[str, int]:
    """Nodes computing in FP16 (any FP16 input), in FP32, and the Cast nodes at the boundaries."""
    from onnx import TensorProto

    types = {value.name: value.type.tensor_type.elem_type for value in graph.value_info}
    types.update(tensor_types(graph))
    types.update({init.name: init.data_type for init in graph.initializer})
    casts = sum(node.op_type == "Cast" for node in graph.node)
    fp16 = sum(
        node.op_type != "Cast" and any(types.get(name) == TensorProto.FLOAT16 for name in node.input)
        for node in graph.node
    )
    return {"nodes_fp16": int(fp16), "nodes_other": len(graph.node) - casts - int(fp16), "cast_nodes": casts}


# ---- INT8 -----------------------------------------------------------------------------------------
def sensor_only_nodes(graph) -> set[str]:
    """Nodes that depend on the camera or LiDAR inputs and on none of the measurement inputs
    (target point, speed, command): the sensor encoders, where the compute is. Everything that
    reads a measurement (its encoder, the fusion, the heads) is a small MLP / GRU whose few-valued
    inputs (a one-hot command beside metres and m/s) one per-tensor INT8 scale cannot resolve."""
    sensors = {INPUT_IMAGE, INPUT_LIDAR_BEV}
    origins: dict[str, set[str]] = {value.name: {value.name} for value in graph.input}
    result = set()
    for node in graph.node:  # topologically sorted (onnx.checker)
        seen: set[str] = set()
        for name in node.input:
            seen |= origins.get(name, set())
        for name in node.output:
            origins[name] = seen
        if seen and seen <= sensors:
            result.add(node.name)
    return result


def int8_nodes(graph) -> list[str]:
    """Conv / MatMul / Gemm nodes with a constant weight (their second input) in the sensor
    encoders (`sensor_only_nodes`), minus the FP32 nodes and the INT8_FP32_WEIGHTS layers."""
    constants = {init.name for init in graph.initializer}
    keep = set(fp32_nodes(graph))
    sensor = sensor_only_nodes(graph)
    return [
        node.name
        for node in graph.node
        if node.op_type in INT8_OPS
        and len(node.input) > 1
        and node.input[1] in constants
        and not node.input[1].startswith(INT8_FP32_WEIGHTS)
        and node.name in sensor
        and node.name not in keep
    ]


def to_int8(
    proto, calibration: Sequence[dict[str, np.ndarray]], method: str = DEFAULT_CALIBRATION_METHOD
) -> tuple[object, dict]:
    """(Q/DQ INT8 ModelProto, recipe) of an FP32 ModelProto, calibrated on `calibration`."""
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if method not in CALIBRATION_METHODS:
        raise QuantizeError(f"calibration method {method!r}; expected one of {CALIBRATION_METHODS}")
    if not calibration:
        raise QuantizeError("int8 needs calibration samples (--calib DATA_DIR)")
    name_nodes(proto.graph)
    nodes = int8_nodes(proto.graph)
    inputs = [value.name for value in proto.graph.input]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(calibration)

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {name: batch[name] for name in inputs}

    calibrate = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[method]
    with tempfile.TemporaryDirectory(prefix="min2real-int8-") as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        onnx.save(proto, str(source))
        quantize_static(
            str(source),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_quantize=nodes,
            calibrate_method=calibrate,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
        )
        quantized = onnx.load(str(target))
    recipe = {
        "method": f"onnxruntime.quantization.quantize_static (QDQ, symmetric INT8, per-channel weights, {method})",
        "quantized_ops": list(INT8_OPS),
        "quantized_scope": "Conv/MatMul/Gemm with constant weights fed by camera/LiDAR only (sensor encoders)",
        "fp32_weights": list(INT8_FP32_WEIGHTS),
        "quantized_nodes": len(nodes),
        "fp32_nodes": fp32_nodes(proto.graph),
        "q_dq_nodes": sum(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in quantized.graph.node),
        "io_types": "float32",
    }
    return quantized, recipe


def calibration_record(data_dir: str | Path, batches: Sequence[dict[str, np.ndarray]], limit: int) -> dict:
    """What the INT8 scales were calibrated on: the dataset, how samples were drawn, a digest."""
    data_dir = Path(data_dir)
    digest = hashlib.sha256()
    for batch in batches:
        for name in sorted(batch):
            digest.update(np.ascontiguousarray(batch[name]).tobytes())
    record: dict = {
        "data": str(data_dir),
        "samples": len(batches),
        "requested": limit,
        "draw": "min2real.data.load_dataset_samples: frames drawn without replacement (numpy seed 0), in dataset order",
        "inputs_sha256": digest.hexdigest(),
    }
    for folder in (data_dir, *list(data_dir.parents)[:2]):
        summary = folder / "synthetic.json"
        if summary.is_file():
            written = json.loads(summary.read_text())
            record["synthetic"] = {key: written[key] for key in ("seed", "frames", "routes") if key in written}
            break
    return record
