"""Inference backends behind one interface: `infer(inputs) -> outputs` in the contract's terms.

    .engine / .plan      -> TensorRTBackend   (tensorrt + cuda-python; no torch)
    .onnx                -> OnnxRuntimeBackend (TensorRT / CUDA execution providers when present,
                            else CPU, logged; "onnxruntime-cpu|cuda|tensorrt" pin the provider and
                            refuse ONNX Runtime's silent CPU fall back; no torch), or
                            TensorRTBackend on a prebuilt cached engine when backend="tensorrt"
    .pt / .pth / .ckpt   -> TorchBackend      (a min2real checkpoint; the only place torch is used)

Every backend is created once: sessions, engines, CUDA buffers, streams and events live as long
as the backend, and a warm-up inference runs at load so the first real frame is not the slow
one. Every backend knows its `ArtifactMetadata` (contract, variant, domain, shapes) and refuses
to load when the caller asked for another domain or contract. Inputs are validated by name,
shape and dtype before they reach an accelerator: a wrong tensor is a ContractError naming it.
"""

from __future__ import annotations

import abc
import ctypes
import dataclasses
import logging
from pathlib import Path

import numpy as np

from min2real.models.contract import (
    INPUT_COMMAND,
    INPUT_IMAGE,
    INPUT_LIDAR_BEV,
    INPUT_NAMES,
    METADATA_KEY,
    OUTPUT_NAMES,
    ArtifactMetadata,
    Contract,
    ContractError,
    command_one_hot,
    file_sha256,
)
from min2real_ros.runtime import engine_cache
from min2real_ros.runtime.engine_cache import EngineCacheError, EngineCacheKey

LOGGER = logging.getLogger("min2real.runtime")

# "onnxruntime-cpu" / "-cuda" / "-tensorrt" pin ONNX Runtime's execution provider: the session must
# run on it (a GPU provider that ONNX Runtime cannot load, e.g. missing CUDA/cuDNN libraries, is an
# error, not a silent fall back to the CPU). "onnxruntime" / "auto" take the best available provider
# and log which one is active.
ORT_BACKEND_PROVIDERS = {
    "onnxruntime-cpu": ["CPUExecutionProvider"],
    "onnxruntime-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "onnxruntime-tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
BACKENDS = ("auto", "onnxruntime", *ORT_BACKEND_PROVIDERS, "tensorrt", "torch")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
ENGINE_SUFFIXES = (".engine", ".plan")
ONNX_SUFFIXES = (".onnx",)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
DYNAMIC_DIM = -1  # metadata shape entry of a dynamic (batch) dimension


# ---- interface -----------------------------------------------------------------------------------
class Backend(abc.ABC):
    """One loaded model. Subclasses set `name`, `metadata` and implement `_run`."""

    name: str = "backend"
    metadata: ArtifactMetadata

    @property
    def contract(self) -> Contract:
        return self.metadata.contract

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Expected input shapes; DYNAMIC_DIM (-1) marks a dynamic batch dimension."""
        return self.metadata.input_shapes

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """inputs: {name: float32 array of the metadata's shape} -> {output name: float32 array}.

        Raises ContractError naming the tensor when a name, shape or dtype is wrong.
        """
        batch = validate_inputs(inputs, self.input_shapes)
        outputs = self._run(inputs, batch)
        for name in OUTPUT_NAMES:
            if name not in outputs:
                raise ContractError(f"{self.name} backend returned no output {name!r}; got {sorted(outputs)}")
        return outputs

    @abc.abstractmethod
    def _run(self, inputs: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        """Run the validated inputs through the model (each backend's own engine)."""

    def close(self) -> None:  # noqa: B027  (backends without device memory have nothing to release)
        """Release sessions and device memory (idempotent)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Shared by constructors: refuse a mismatched model before any warm-up.
    def _check_requested(self, domain: str | None, contract: Contract | None) -> None:
        self.metadata.check_compatible(domain=domain, contract=contract)

    def _warm_up(self, iterations: int) -> None:
        if iterations <= 0:
            return
        inputs = example_inputs(self.metadata)
        for _ in range(iterations):
            self.infer(inputs)


def validate_inputs(inputs: dict[str, np.ndarray], expected_shapes: dict[str, tuple[int, ...]]) -> int:
    """Check names, shapes (DYNAMIC_DIM matches any size >= 1, the same batch for all inputs) and
    dtype (float32, C-contiguous not required). Returns the batch size."""
    if not isinstance(inputs, dict):
        raise ContractError(f"model inputs must be a dict of name -> array; got {type(inputs).__name__}")
    missing = sorted(set(expected_shapes) - set(inputs))
    unexpected = sorted(set(inputs) - set(expected_shapes))
    if missing or unexpected:
        raise ContractError(
            f"model inputs do not match the graph: missing {missing}, unexpected {unexpected}; "
            f"expected exactly {sorted(expected_shapes)}"
        )
    batch = None
    for name, expected in expected_shapes.items():
        array = inputs[name]
        if not isinstance(array, np.ndarray):
            raise ContractError(f"model input {name!r} is a {type(array).__name__}; expected a numpy float32 array")
        if array.dtype != np.float32:
            raise ContractError(f"model input {name!r} has dtype {array.dtype}; expected float32")
        shape_ok = array.ndim == len(expected) and all(
            (want == DYNAMIC_DIM and got >= 1) or got == want for got, want in zip(array.shape, expected)
        )
        if not shape_ok:
            shown = tuple("B" if d == DYNAMIC_DIM else d for d in expected)
            raise ContractError(f"model input {name!r} has shape {array.shape}; expected {shown}")
        if batch is None:
            batch = array.shape[0]
        elif array.shape[0] != batch:
            raise ContractError(f"model input {name!r} has batch {array.shape[0]}; the other inputs have batch {batch}")
    return int(batch or 1)


def concrete_shape(shape: tuple[int, ...], batch: int = 1) -> tuple[int, ...]:
    return tuple(batch if d == DYNAMIC_DIM else int(d) for d in shape)


def example_inputs(metadata: ArtifactMetadata, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Plausible float32 inputs of the metadata's shapes (warm-up, parity checks, benchmarks):
    an image in 0..255, a sparse BEV in [0, 1], a target 10 m ahead, 5 m/s, command 'unknown'."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for name, shape in metadata.input_shapes.items():
        shape = concrete_shape(shape, batch)
        if name == INPUT_IMAGE:
            array = rng.uniform(0.0, 255.0, shape)
        elif name == INPUT_LIDAR_BEV:
            array = np.where(rng.random(shape) < 0.05, rng.random(shape), 0.0)
        elif name == INPUT_COMMAND:
            array = np.broadcast_to(command_one_hot(None, metadata.contract), shape)
        elif shape[-1] == 2:  # target point, ego frame metres
            array = np.broadcast_to(np.array([10.0, 0.5]), shape)
        else:  # speed m/s
            array = np.full(shape, 5.0)
        inputs[name] = np.array(array, dtype=np.float32, order="C")  # a writable copy, never a broadcast view
    return inputs


# ---- ONNX Runtime -------------------------------------------------------------------------------
def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(
            "the ONNX Runtime backend needs the 'onnxruntime' package (or 'onnxruntime-gpu' for CUDA/TensorRT)"
        ) from error
    return onnxruntime


def metadata_from_onnx_session(session, path: str | Path) -> ArtifactMetadata:
    """ArtifactMetadata stored in an ONNX model's metadata_props (read through ONNX Runtime, so
    the vehicle needs no `onnx` package)."""
    custom = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in custom:
        raise ContractError(
            f"ONNX model {path} carries no {METADATA_KEY!r} metadata; export it with `min2real export` "
            "so the runtime knows its contract and domain"
        )
    return ArtifactMetadata.from_json(custom[METADATA_KEY])


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime session over an exported `.onnx` (created once, warmed up at load).

    providers: None = best available of TensorRT, CUDA, CPU (in that order; a GPU provider that
    fails to start is logged as a warning); or an explicit list whose first provider must become
    active (ONNX Runtime's silent fall back to the CPU is an error then).
    The TensorRT execution provider caches its engines in the resolved engine cache directory.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        domain: str | None = None,
        contract: Contract | None = None,
        providers: list[str] | None = None,
        device_id: int = 0,
        intra_op_threads: int = 0,
        warmup: int = 1,
        cache_dir: str | Path | None = None,
        fp16: bool = False,
    ) -> None:
        ort = _import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model {self.path} does not exist")
        available = ort.get_available_providers()
        explicit = bool(providers)
        wanted = list(providers) if explicit else [p for p in GPU_PROVIDERS if p in available] + ["CPUExecutionProvider"]
        unknown = [p for p in wanted if p not in available]
        if unknown:
            raise RuntimeError(
                f"ONNX Runtime providers {unknown} were asked for but are not available here (available: {available}); "
                "GPU providers need the 'onnxruntime-gpu' package and a CUDA GPU"
            )
        provider_options = []
        for provider in wanted:
            if provider == "TensorrtExecutionProvider":
                trt_cache = engine_cache.resolve_cache_dir(cache_dir or self.path.parent, LOGGER)
                provider_options.append({
                    "device_id": device_id,
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(trt_cache),
                    "trt_fp16_enable": fp16,
                })
            elif provider == "CUDAExecutionProvider":
                provider_options.append({"device_id": device_id})
            else:
                provider_options.append({})
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            options.intra_op_num_threads = int(intra_op_threads)
        self.session = ort.InferenceSession(
            str(self.path), sess_options=options, providers=wanted, provider_options=provider_options
        )
        self.metadata = metadata_from_onnx_session(self.session, self.path)
        self._check_requested(domain, contract)
        graph_inputs = {i.name for i in self.session.get_inputs()}
        if graph_inputs != set(self.metadata.input_shapes):
            raise ContractError(
                f"ONNX model {self.path} inputs {sorted(graph_inputs)} differ from its metadata "
                f"{sorted(self.metadata.input_shapes)}; re-export it"
            )
        self._output_names = [o.name for o in self.session.get_outputs()]
        self.active_providers = list(self.session.get_providers())
        check_active_providers(wanted, self.active_providers, explicit, self.path)
        active = self.active_providers[0]
        self.name = {
            "TensorrtExecutionProvider": "onnxruntime-tensorrt",
            "CUDAExecutionProvider": "onnxruntime-cuda",
        }.get(active, "onnxruntime-cpu")
        self._warm_up(warmup)

    def _run(self, inputs: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        del batch
        values = self.session.run(self._output_names, inputs)
        return dict(zip(self._output_names, values))

    def close(self) -> None:
        self.__dict__.pop("session", None)


def check_active_providers(wanted: list[str], active: list[str], explicit: bool, path) -> None:
    """ONNX Runtime falls back to the CPU with only a log line of its own when a GPU provider
    fails to initialise (missing CUDA/cuDNN libraries, no GPU). Asked-for providers (`explicit`):
    the first one must be active, else RuntimeError. Automatic choice: a warning naming the
    provider that was wanted and the one that runs."""
    if not active:
        raise RuntimeError(f"ONNX Runtime session for {path} has no active execution provider")
    if active[0] == wanted[0]:
        LOGGER.info("ONNX Runtime runs %s on %s", path, ", ".join(active))
        return
    message = (
        f"ONNX Runtime could not start {wanted[0]} for {path} and fell back to {active[0]} "
        "(see ONNX Runtime's log above: CUDA / cuDNN / TensorRT libraries missing or mismatched?)"
    )
    if explicit:
        raise RuntimeError(message + "; refusing to run on another provider than the one asked for")
    LOGGER.warning("%s", message)


# ---- TensorRT -----------------------------------------------------------------------------------
def _import_tensorrt():
    try:
        import tensorrt
    except ImportError as error:
        raise ImportError(
            "the TensorRT backend needs the TensorRT 10 Python package 'tensorrt' (JetPack / "
            "`pip install tensorrt`) and a CUDA GPU; use an .onnx model with ONNX Runtime instead"
        ) from error
    if int(tensorrt.__version__.split(".")[0]) < 10:
        raise ImportError(f"TensorRT {tensorrt.__version__} is too old; min2real needs TensorRT 10 (named tensors, execute_async_v3)")
    return tensorrt


def _import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python layout
        except ImportError as error:
            raise ImportError("the TensorRT backend needs NVIDIA's 'cuda-python' package (cuda.bindings.runtime)") from error
    return cudart


def cuda_call(cudart, result):
    """Unpack a cuda-python call result `(err, *values)`, raising on any CUDA error."""
    err, values = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        name = cudart.cudaGetErrorString(err)[1]
        raise RuntimeError(f"CUDA error {err}: {name.decode() if isinstance(name, bytes) else name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def tensorrt_platform(device_id: int = 0) -> dict[str, str]:
    """{"tensorrt_version", "gpu_name", "compute_capability"} of this machine (the engine cache
    key's platform fields). Imports tensorrt and cuda-python."""
    trt = _import_tensorrt()
    cudart = _import_cudart()
    props = cuda_call(cudart, cudart.cudaGetDeviceProperties(device_id))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return {
        "tensorrt_version": trt.__version__,
        "gpu_name": name.rstrip("\x00").strip(),
        "compute_capability": f"{props.major}.{props.minor}",
    }


def wanted_engine_key(cached: EngineCacheKey, platform: dict[str, str], onnx_sha256: str | None = None) -> EngineCacheKey:
    """The key this machine needs for an engine built as `cached` says: same precision and shapes,
    this machine's TensorRT and GPU, and (when the ONNX is at hand) its current hash."""
    changes = dict(platform)
    if onnx_sha256 is not None:
        changes["onnx_sha256"] = onnx_sha256
    return dataclasses.replace(cached, **changes)


class TensorRTBackend(Backend):
    """A TensorRT 10 engine with its sidecar `<engine>.json` (metadata + cache key).

    The sidecar's key is compared with this machine's TensorRT version and GPU (with the ONNX
    file's hash when `onnx_path` is given, and with `precision` when given) before the engine is
    deserialized; a mismatch is
    refused with the differences named (build engines with `min2real build-engine`). Pinned host
    buffers, device buffers, one CUDA stream and two events are created here, once; inference
    uses named tensors and `execute_async_v3`.
    """

    def __init__(
        self,
        engine_path: str | Path,
        *,
        domain: str | None = None,
        contract: Contract | None = None,
        onnx_path: str | Path | None = None,
        precision: str | None = None,
        device_id: int = 0,
        warmup: int = 3,
    ) -> None:
        self.engine_path = Path(engine_path)
        self._device_buffers: list = []
        self._host_buffers: list = []
        self._stream = None
        self._events: list = []
        if not self.engine_path.is_file():
            raise FileNotFoundError(f"TensorRT engine {self.engine_path} does not exist")
        sidecar = engine_cache.read_sidecar(self.engine_path)
        if sidecar is None:
            raise EngineCacheError(
                f"TensorRT engine {self.engine_path} has no sidecar {engine_cache.sidecar_path(self.engine_path).name}; "
                "an engine whose TensorRT version, GPU and source ONNX are unknown is never loaded. "
                "Rebuild it with `min2real build-engine MODEL.onnx`"
            )
        metadata_json, cached_key = sidecar
        self.metadata = ArtifactMetadata.from_json(metadata_json)
        self._check_requested(domain, contract)

        trt = _import_tensorrt()
        cudart = self._cudart = _import_cudart()
        cuda_call(cudart, cudart.cudaSetDevice(device_id))
        onnx_hash = file_sha256(onnx_path) if onnx_path else None
        wanted = wanted_engine_key(cached_key, tensorrt_platform(device_id), onnx_hash)
        if precision is not None:  # the caller's precision, not whatever the file turns out to hold
            wanted = dataclasses.replace(wanted, precision=precision)
        decision = engine_cache.decide(cached_key, wanted, allow_rebuild=False)
        if decision.action != "load":
            raise EngineCacheError(
                f"TensorRT engine {self.engine_path} does not fit this machine: {'; '.join(decision.reasons)}. "
                f"Rebuild it here with `min2real build-engine {onnx_path or 'MODEL.onnx'} --precision {wanted.precision}`"
            )
        self.key = wanted

        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self._engine is None:
            raise EngineCacheError(f"TensorRT could not deserialize {self.engine_path} (see the TensorRT log above)")
        self._context = self._engine.create_execution_context()
        self._setup_tensors(trt, cudart)
        self._stream = cuda_call(cudart, cudart.cudaStreamCreate())
        self._events = [cuda_call(cudart, cudart.cudaEventCreate()) for _ in range(2)]
        self.name = "tensorrt"
        self.last_gpu_ms = float("nan")
        self._warm_up(warmup)

    def _setup_tensors(self, trt, cudart) -> None:
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if set(inputs) != set(self.metadata.input_shapes) or not set(OUTPUT_NAMES) <= set(outputs):
            raise ContractError(
                f"TensorRT engine {self.engine_path} tensors (inputs {inputs}, outputs {outputs}) do not match "
                f"its metadata (inputs {sorted(self.metadata.input_shapes)}, outputs {list(OUTPUT_NAMES)})"
            )
        # Largest batch the engine's profile accepts (fixed-shape engines: their batch).
        self.max_batch = 1
        for name in inputs:
            shape = tuple(engine.get_tensor_shape(name))
            if shape[0] == -1:
                self.max_batch = max(self.max_batch, int(engine.get_tensor_profile_shape(name, 0)[2][0]))
            else:
                self.max_batch = max(self.max_batch, int(shape[0]))
        self._batch = None
        self._set_batch(self.max_batch)
        self._host: dict[str, np.ndarray] = {}
        self._device: dict[str, int] = {}
        self._inputs, self._outputs = inputs, outputs
        for name in names:
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            if dtype != np.float32:
                raise ContractError(f"TensorRT engine tensor {name!r} is {dtype}; min2real engines keep float32 I/O")
            shape = tuple(self._context.get_tensor_shape(name))
            nbytes = int(np.prod(shape)) * dtype.itemsize
            host_ptr = cuda_call(cudart, cudart.cudaMallocHost(nbytes))
            self._host_buffers.append(host_ptr)
            host = np.ctypeslib.as_array(ctypes.cast(host_ptr, ctypes.POINTER(ctypes.c_float)), (nbytes // 4,))
            device_ptr = cuda_call(cudart, cudart.cudaMalloc(nbytes))
            self._device_buffers.append(device_ptr)
            self._host[name] = host
            self._device[name] = int(device_ptr)
            self._context.set_tensor_address(name, int(device_ptr))

    def _set_batch(self, batch: int) -> None:
        if batch == self._batch:
            return
        if batch > self.max_batch:
            raise ContractError(f"batch {batch} exceeds the TensorRT engine's maximum batch {self.max_batch}")
        for name, shape in self.metadata.input_shapes.items():
            if self._engine.get_tensor_shape(name)[0] == -1:
                self._context.set_input_shape(name, concrete_shape(shape, batch))
        self._batch = batch

    def _run(self, inputs: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        cudart = self._cudart
        self._set_batch(batch)
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self._inputs:
            array = inputs[name]
            self._host[name][: array.size] = array.reshape(-1)
            cuda_call(cudart, cudart.cudaMemcpyAsync(
                self._device[name], self._host[name].ctypes.data, array.nbytes, h2d, self._stream
            ))
        start, end = self._events
        cuda_call(cudart, cudart.cudaEventRecord(start, self._stream))
        if not self._context.execute_async_v3(int(self._stream)):
            raise RuntimeError(f"TensorRT execute_async_v3 failed for {self.engine_path}")
        cuda_call(cudart, cudart.cudaEventRecord(end, self._stream))
        shapes = {name: tuple(self._context.get_tensor_shape(name)) for name in self._outputs}
        for name in self._outputs:
            nbytes = int(np.prod(shapes[name])) * 4
            cuda_call(cudart, cudart.cudaMemcpyAsync(
                self._host[name].ctypes.data, self._device[name], nbytes, d2h, self._stream
            ))
        cuda_call(cudart, cudart.cudaStreamSynchronize(self._stream))
        self.last_gpu_ms = float(cuda_call(cudart, cudart.cudaEventElapsedTime(start, end)))
        # Copies: the pinned host buffers are reused by the next frame.
        return {name: self._host[name][: int(np.prod(shapes[name]))].reshape(shapes[name]).copy() for name in self._outputs}

    def close(self) -> None:
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        for event in self._events:
            cudart.cudaEventDestroy(event)
        if self._stream is not None:
            cudart.cudaStreamDestroy(self._stream)
        for pointer in self._device_buffers:
            cudart.cudaFree(pointer)
        for pointer in self._host_buffers:
            cudart.cudaFreeHost(pointer)
        self._events, self._stream, self._device_buffers, self._host_buffers = [], None, [], []
        for attribute in ("_context", "_engine", "_runtime"):
            self.__dict__.pop(attribute, None)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: cuda-python may already be gone
            pass


# ---- PyTorch ------------------------------------------------------------------------------------
class TorchBackend(Backend):
    """A min2real checkpoint run in PyTorch (development, parity checks, GPUs without TensorRT).

    A checkpoint holds both graphs, so `domain` ("sim" with the V2R adapter, "real" without) must
    be given. The only backend that imports torch (through min2real.models' checkpoint reader).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        domain: str | None = None,
        contract: Contract | None = None,
        device: str = "cpu",
        warmup: int = 1,
    ) -> None:
        if domain is None:
            raise ContractError(
                f"checkpoint {path} holds both the 'sim' and the 'real' graph; pass domain='sim' or domain='real'"
            )
        import torch

        from min2real.models.artifact import artifact_metadata
        from min2real.models.checkpoint import model_from_checkpoint
        from min2real.models.contract import file_sha256

        self._torch = torch
        self.device = torch.device(device)
        model, checkpoint, model_contract = model_from_checkpoint(path, map_location="cpu")
        self.metadata = artifact_metadata(model, checkpoint, model_contract, domain, file_sha256(path))
        self._check_requested(domain, contract)
        self.module = model.deploy(domain).to(self.device).eval()
        # Positional inputs in contract order (metadata dicts may be key-sorted after JSON).
        self._input_order = [name for name in INPUT_NAMES if name in self.metadata.input_shapes]
        self.name = f"torch-{self.device.type}"
        self._warm_up(warmup)

    def _run(self, inputs: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        del batch
        torch = self._torch
        with torch.inference_mode():
            args = [torch.from_numpy(inputs[name]).to(self.device) for name in self._input_order]
            waypoints, steer_logits = self.module(*args)
        return {
            OUTPUT_NAMES[0]: waypoints.float().cpu().numpy(),
            OUTPUT_NAMES[1]: steer_logits.float().cpu().numpy(),
        }


# ---- selection ----------------------------------------------------------------------------------
def backend_kind_for(path: str | Path, backend: str = "auto") -> str:
    """Which backend class serves `path` ("onnxruntime" | "tensorrt" | "torch"), from its suffix
    and the requested backend. Raises ValueError for unknown suffixes and impossible pairs."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not supported; expected one of {BACKENDS}")
    suffix = Path(path).suffix.lower()
    if suffix in ENGINE_SUFFIXES:
        natural, allowed = "tensorrt", ("tensorrt",)
    elif suffix in ONNX_SUFFIXES:
        natural, allowed = "onnxruntime", ("onnxruntime", *ORT_BACKEND_PROVIDERS, "tensorrt")
    elif suffix in CHECKPOINT_SUFFIXES:
        natural, allowed = "torch", ("torch",)
    else:
        raise ValueError(
            f"model file {path} has suffix {suffix!r}; expected .engine/.plan (TensorRT), .onnx (ONNX Runtime) "
            f"or {'/'.join(CHECKPOINT_SUFFIXES)} (PyTorch checkpoint)"
        )
    if backend == "auto":
        return natural
    if backend not in allowed:
        raise ValueError(f"backend {backend!r} cannot run {path}; a {suffix} file runs on {allowed}")
    return "onnxruntime" if backend in ORT_BACKEND_PROVIDERS else backend


def _tensorrt_engine_for_onnx(onnx_path: Path, options: dict) -> Path:
    """The cached engine built from `onnx_path` (searched in cache_dir, the user cache and beside
    the ONNX). The runtime never builds engines itself: missing or stale ones are refused by
    TensorRTBackend with the build command to run."""
    precision = options.setdefault("precision", "fp16")  # TensorRTBackend checks it against the sidecar
    cache_dir = options.pop("cache_dir", None)
    dirs = [cache_dir, engine_cache.user_cache_dir(), onnx_path.parent]
    found = engine_cache.find_cached_engine(onnx_path, precision, dirs)
    if found is None:
        searched = ", ".join(str(d) for d in dirs if d)
        command = f"min2real build-engine {onnx_path} --precision {precision}"
        if cache_dir:
            command += f" --cache-dir {cache_dir}"
        raise EngineCacheError(f"no {precision} TensorRT engine for {onnx_path} in {searched}; build it with `{command}`")
    return found


def load_backend(
    path: str | Path,
    backend: str = "auto",
    *,
    domain: str | None = None,
    contract: Contract | None = None,
    **options,
) -> Backend:
    """Open `path` with the backend its suffix (or `backend`) calls for; see the module docstring.

    backend: "auto" | "onnxruntime" (best provider, logged) | "onnxruntime-cpu" | "onnxruntime-cuda" |
    "onnxruntime-tensorrt" (that provider or an error) | "tensorrt" | "torch".
    domain / contract: what the caller expects; a model exported for something else is refused.
    options go to the backend (e.g. providers=, device_id=, warmup=, device=, precision= and
    cache_dir= for TensorRT from an .onnx).
    """
    path = Path(path)
    kind = backend_kind_for(path, backend)
    if kind == "onnxruntime":
        if backend in ORT_BACKEND_PROVIDERS:
            if options.get("providers") and list(options["providers"]) != ORT_BACKEND_PROVIDERS[backend]:
                raise ValueError(f"backend {backend!r} sets the providers; got providers={options['providers']!r} as well")
            options["providers"] = ORT_BACKEND_PROVIDERS[backend]
        return OnnxRuntimeBackend(path, domain=domain, contract=contract, **options)
    if kind == "tensorrt":
        onnx_path = None
        if path.suffix.lower() in ONNX_SUFFIXES:
            onnx_path, path = path, _tensorrt_engine_for_onnx(path, options)
        elif "onnx_path" in options:
            onnx_path = options.pop("onnx_path")
        return TensorRTBackend(path, domain=domain, contract=contract, onnx_path=onnx_path, **options)
    return TorchBackend(path, domain=domain, contract=contract, **options)


__all__ = [
    "BACKENDS",
    "Backend",
    "ORT_BACKEND_PROVIDERS",
    "OnnxRuntimeBackend",
    "TensorRTBackend",
    "TorchBackend",
    "backend_kind_for",
    "example_inputs",
    "load_backend",
    "tensorrt_platform",
    "validate_inputs",
]

