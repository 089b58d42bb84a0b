"""TensorRT engine build (TensorRT 10 and 11 Python API) with the engine cache rules of
`min2real.runtime.engine_cache`.

    ONNX (+ its min2real metadata) -> engine_precision.plan_build (the graph's precision, the
    requested one, the TensorRT generation) -> trt.Builder / OnnxParser -> BuilderConfig:
      strongly typed (a `min2real quantize` fp16 / int8 graph, and everything on TensorRT 11): the
      network's types are the graph's (NetworkDefinitionCreationFlag.STRONGLY_TYPED on 10; always
      so on 11), no precision flags;
      weak typing (TensorRT 10, an FP32 graph lowered at build time): fp16: FP16 with
      normalisation / softmax / reduce layers pinned to FP32 (ViT LayerNorm and attention
      softmax overflow or lose accuracy in FP16) and OBEY_PRECISION_CONSTRAINTS; int8: INT8 +
      FP16 with the same FP32 pins, entropy calibration (IInt8EntropyCalibrator2) over dataset
      samples and a reusable calibration cache
    -> build_serialized_network -> <cache dir>/<stem>.<precision>.engine + sidecar <engine>.json
      (ArtifactMetadata + EngineCacheKey), both written atomically.

`build_engine` is the build-only mode that prebuilds engines for deployment: a cached engine
whose key matches is kept ("load"), a stale one is rebuilt (or, with allow_rebuild=False,
refused with the differences named). The runtime never builds: it loads what this wrote.
TensorRT and cuda-python are imported lazily; this module imports no torch at the top.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from min2real.contract import DYNAMIC_DIM, INPUT_NAMES, ArtifactMetadata, ContractError
from min2real.files import atomic_write_bytes, file_sha256
from min2real.runtime import engine_cache
from min2real.runtime.engine_cache import Decision, EngineCacheError, EngineCacheKey
from min2real.runtime.engine_precision import BuildPlan, plan_build, tensorrt_major

LOGGER = logging.getLogger("min2real.engine")

DEFAULT_WORKSPACE_MB = 4096
DEFAULT_CALIB_SAMPLES = 256
# TensorRT layer types (trt.LayerType member names) kept in FP32 under FP16/INT8.
FP32_LAYER_TYPES = ("NORMALIZATION", "SOFTMAX", "REDUCE")


class EngineBuildError(RuntimeError):
    """TensorRT could not parse or build the network (the message carries TensorRT's errors)."""


@dataclass(frozen=True)
class EngineBuildResult:
    engine_path: Path
    decision: Decision
    key: EngineCacheKey
    built: bool
    build_seconds: float

    def summary(self) -> str:
        if self.built:
            why = "; ".join(self.decision.reasons)
            return f"built {self.engine_path} ({self.key.precision}, {self.build_seconds:.1f} s) because: {why}"
        return f"cached engine {self.engine_path} is up to date ({self.key.precision}, TensorRT {self.key.tensorrt_version}, {self.key.gpu_name})"


# ---- pure helpers (tested without TensorRT) -----------------------------------------------------
def engine_input_shapes(metadata: ArtifactMetadata, max_batch: int = 1) -> dict[str, tuple[int, ...]]:
    """Concrete input shapes of the engine: the metadata's, with a dynamic batch set to `max_batch`.
    A fixed-batch ONNX cannot take another batch (re-export with --dynamic-batch)."""
    if max_batch < 1:
        raise ValueError(f"max_batch={max_batch}; expected >= 1")
    shapes = {}
    for name, shape in metadata.input_shapes.items():
        if shape[0] == DYNAMIC_DIM:
            shapes[name] = (max_batch, *shape[1:])
        elif max_batch != 1 and shape[0] != max_batch:
            raise ContractError(
                f"ONNX input {name!r} has a fixed batch {shape[0]}; max_batch={max_batch} needs an export with --dynamic-batch"
            )
        else:
            shapes[name] = tuple(shape)
    return shapes


def is_dynamic(metadata: ArtifactMetadata) -> bool:
    return any(shape[0] == DYNAMIC_DIM for shape in metadata.input_shapes.values())


def select_fp32_layers(layers: Sequence[tuple[str, bool]], precision: str) -> list[int]:
    """Indices of layers to pin to FP32: `layers` is [(trt.LayerType name, produces float32)].

    Under fp16/int8, normalisation, softmax and reduce layers with float outputs stay FP32;
    under fp32 nothing needs pinning.
    """
    if precision == "fp32":
        return []
    return [index for index, (type_name, is_float) in enumerate(layers) if type_name in FP32_LAYER_TYPES and is_float]


def calibration_cache_path(cache_dir: str | Path, onnx_path: str | Path, onnx_sha256: str) -> Path:
    """`<stem>-<sha16>.int8.calib`: scales belong to one ONNX graph, so the cache is keyed by its hash."""
    return Path(cache_dir) / f"{Path(onnx_path).stem}-{onnx_sha256[:16]}.int8.calib"


def calibration_batches(samples: Iterable[dict], input_names: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """Dataset samples (shared sample convention) -> batch-1 float32 input dicts of the graph's inputs."""
    batches = []
    for sample in samples:
        missing = [name for name in input_names if name not in sample]
        if missing:
            raise ContractError(f"calibration sample lacks inputs {missing}; it has {sorted(sample)}")
        batches.append(
            {name: np.ascontiguousarray(np.asarray(sample[name], dtype=np.float32)[None]) for name in input_names}
        )
    return batches


# ---- TensorRT ----------------------------------------------------------------------------------
def _make_entropy_calibrator(trt, cudart, batches: list[dict[str, np.ndarray]], cache_path: Path | None):
    """An IInt8EntropyCalibrator2 feeding `batches` (batch 1 each) from device buffers allocated once."""
    from min2real.runtime.backends.tensorrt_backend import cuda_call

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            first = batches[0] if batches else {}
            self.device = {name: cuda_call(cudart, cudart.cudaMalloc(array.nbytes)) for name, array in first.items()}

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            if self.index >= len(batches):
                return None
            batch = batches[self.index]
            self.index += 1
            kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            for name in names:
                array = batch[name]
                cuda_call(cudart, cudart.cudaMemcpy(self.device[name], array.ctypes.data, array.nbytes, kind))
            return [int(self.device[name]) for name in names]

        def read_calibration_cache(self):
            if cache_path is not None and cache_path.is_file():
                LOGGER.info("reusing INT8 calibration cache %s", cache_path)
                return cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            if cache_path is None:
                return
            atomic_write_bytes(cache_path, bytes(cache))
            LOGGER.info("wrote INT8 calibration cache %s", cache_path)

        def free(self) -> None:
            for pointer in self.device.values():
                cudart.cudaFree(pointer)
            self.device = {}

    return EntropyCalibrator()


def network_flags(trt, plan: BuildPlan) -> int:
    """`create_network` flags: STRONGLY_TYPED for a strongly typed plan on TensorRT 10; 0 on
    TensorRT 11, where every network is strongly typed (the flag is deprecated and ignored)."""
    if plan.strongly_typed and tensorrt_major(trt.__version__) < 11:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def _pin_fp32_layers(trt, network) -> int:
    """Weak typing: normalisation / softmax / reduce layers with float outputs run in FP32."""
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    described = [
        (layer.type.name, layer.num_outputs > 0 and layer.get_output(0).dtype == trt.float32) for layer in layers
    ]
    pinned = select_fp32_layers(described, "fp16")
    for index in pinned:
        layer = layers[index]
        layer.precision = trt.float32
        for output in range(layer.num_outputs):
            layer.set_output_type(output, trt.float32)
    return len(pinned)


def build_serialized_engine(
    onnx_path: str | Path,
    plan: BuildPlan,
    *,
    input_shapes: dict[str, tuple[int, ...]],
    dynamic: bool,
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    calibration: list[dict[str, np.ndarray]] | None = None,
    calibration_cache: Path | None = None,
) -> bytes:
    """Parse `onnx_path` and build a serialized engine as `plan` says (explicit batch)."""
    from min2real.runtime.backends.tensorrt_backend import _import_cudart, _import_tensorrt

    trt = _import_tensorrt()
    missing = [name for name in plan.builder_flags if not hasattr(trt.BuilderFlag, name)]
    if missing:
        raise EngineBuildError(
            f"TensorRT {trt.__version__} has no BuilderFlag {missing}: it builds strongly typed networks only"
        )
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, plan))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)

    profile = None
    if dynamic:
        profile = builder.create_optimization_profile()
        for name, shape in input_shapes.items():
            smallest = (1, *shape[1:])
            profile.set_shape(name, smallest, smallest, tuple(shape))  # optimise for batch 1 (one car, one frame)
        config.add_optimization_profile(profile)

    if "FP16" in plan.builder_flags and not getattr(builder, "platform_has_fast_fp16", True):
        LOGGER.warning("this GPU has no fast FP16; the %s engine may be slower than fp32", plan.engine_precision)
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if plan.pin_fp32:
        LOGGER.info("pinned %d normalisation/softmax/reduce layers to FP32", _pin_fp32_layers(trt, network))
    if plan.strongly_typed:
        LOGGER.info(
            "strongly typed network: the %s graph's own types decide each layer's precision", plan.graph_precision
        )

    calibrator = None
    if plan.calibrate:
        if not calibration and not (calibration_cache and calibration_cache.is_file()):
            raise EngineBuildError(
                f"int8 needs calibration data (--calib DATA_DIR) or an existing calibration cache ({calibration_cache})"
            )
        calibrator = _make_entropy_calibrator(trt, _import_cudart(), calibration or [], calibration_cache)
        config.int8_calibrator = calibrator
        if profile is not None:
            config.set_calibration_profile(profile)

    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.free()
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    return bytes(serialized)


def build_engine(
    onnx_path: str | Path,
    precision: str | None = None,
    *,
    cache_dir: str | Path | None = None,
    out: str | Path | None = None,
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    calib_data: str | Path | None = None,
    calib_samples: int = DEFAULT_CALIB_SAMPLES,
    calib_cache: str | Path | None = None,
    max_batch: int = 1,
    allow_rebuild: bool = True,
    force: bool = False,
    device_id: int = 0,
) -> EngineBuildResult:
    """Build-only mode: make sure an engine for `onnx_path` at `precision` exists for this
    machine. Returns what was done; raises EngineCacheError when a stale engine must not be rebuilt,
    EnginePrecisionError (a ValueError) when this TensorRT cannot build `precision` from this graph.

    precision: None = a typed graph's own, fp16 for an FP32 graph (engine_precision.plan_build).

    Engine path: `out`, else `<cache_dir or the ONNX's directory>/<stem>.<precision>.engine`
    (an unwritable directory falls back to the user cache directory with a log line).
    """
    from min2real.runtime.backends.tensorrt_backend import tensorrt_platform
    from min2real.runtime.onnx_metadata import read_onnx_metadata

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model {onnx_path} does not exist")
    metadata = read_onnx_metadata(onnx_path)
    shapes = engine_input_shapes(metadata, max_batch)
    platform = tensorrt_platform(device_id)
    plan = plan_build(metadata.precision, precision, platform["tensorrt_version"], onnx_path.name)
    precision = plan.engine_precision
    if (calib_data is not None or calib_cache is not None) and not plan.calibrate:
        raise EngineBuildError(
            f"--calib / --calib-cache calibrate TensorRT 10's INT8 build of an FP32 graph; this {precision} build "
            f"of the {plan.graph_precision} graph {onnx_path.name} has nothing to calibrate"
            + (" (its Q/DQ scales were calibrated by `min2real quantize`)" if plan.graph_precision == "int8" else "")
        )
    onnx_sha256 = file_sha256(onnx_path)
    wanted = EngineCacheKey(
        onnx_sha256=onnx_sha256,
        precision=precision,
        input_shapes=shapes,
        graph_precision=metadata.precision,
        **platform,
    )
    if out is not None:
        engine_path = Path(out)
        if not engine_cache.directory_is_writable(engine_path.parent):
            raise EngineCacheError(f"engine output directory {engine_path.parent} is not writable")
    else:
        directory = engine_cache.resolve_cache_dir(cache_dir if cache_dir is not None else onnx_path.parent, LOGGER)
        engine_path = directory / engine_cache.engine_file_name(onnx_path, precision)

    decision = engine_cache.decide(engine_cache.cached_key_of(engine_path), wanted, allow_rebuild)
    if decision.action == "load" and force:
        decision = Decision("build", ("rebuild forced",))
    if decision.action == "refuse":
        raise EngineCacheError(
            f"cached engine {engine_path} does not match and rebuilding is not allowed: {'; '.join(decision.reasons)}"
        )
    if decision.action == "load":
        result = EngineBuildResult(engine_path, decision, wanted, built=False, build_seconds=0.0)
        LOGGER.info("%s", result.summary())
        return result

    calibration = None
    calibration_cache = None
    if plan.calibrate:
        calibration_cache = (
            Path(calib_cache) if calib_cache else calibration_cache_path(engine_path.parent, onnx_path, onnx_sha256)
        )
        if calib_data is not None:
            from min2real.data import load_dataset_samples

            samples = load_dataset_samples(calib_data, metadata.contract, metadata.domain, calib_samples)
            calibration = calibration_batches(samples, [n for n in INPUT_NAMES if n in metadata.input_shapes])
    LOGGER.info("building %s engine for %s: %s", precision, onnx_path, decision.explain())
    start = time.perf_counter()
    serialized = build_serialized_engine(
        onnx_path,
        plan,
        input_shapes=shapes,
        dynamic=is_dynamic(metadata),
        workspace_mb=workspace_mb,
        calibration=calibration,
        calibration_cache=calibration_cache,
    )
    seconds = time.perf_counter() - start
    atomic_write_bytes(engine_path, serialized)
    build: dict[str, object] = {
        "workspace_mb": workspace_mb,
        "seconds": round(seconds, 1),
        "max_batch": max_batch,
        "strongly_typed": plan.strongly_typed,
        "builder_flags": list(plan.builder_flags),
    }
    if calibration_cache is not None:
        build["calibration_cache"] = str(calibration_cache)
    extra = {"onnx_path": str(onnx_path.resolve()), "build": build}
    engine_cache.write_sidecar(engine_path, metadata.to_json(), wanted, extra=extra)
    result = EngineBuildResult(engine_path, decision, wanted, built=True, build_seconds=seconds)
    LOGGER.info("%s", result.summary())
    return result


def describe_engine(engine_path: str | Path) -> str:
    """The sidecar of an engine as indented JSON (for `min2real build-engine --show`)."""
    found = engine_cache.read_sidecar(engine_path)
    if found is None:
        raise EngineCacheError(f"engine {engine_path} has no sidecar {engine_cache.sidecar_path(engine_path)}")
    metadata_json, key = found
    return json.dumps({"metadata": json.loads(metadata_json), "cache_key": key.to_dict()}, indent=2, sort_keys=True)
