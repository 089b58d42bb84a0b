"""TensorRT 10 / 11 backend: a prebuilt engine with its sidecar, named tensors and execute_async_v3
(the runtime API both generations share; what TensorRT 11 removed is on the build side,
min2real.runtime.engine_precision).

Needs the `tensorrt` (10.x or 11.x) and `cuda-python` packages and a CUDA GPU; never imports torch. The
engine is built by `min2real build-engine` (min2real.runtime.engine_build), never here.
"""

from __future__ import annotations

import ctypes
import dataclasses
from pathlib import Path

import numpy as np

from min2real.contract import OUTPUT_NAMES, ArtifactMetadata, Contract, ContractError, concrete_shape
from min2real.files import file_sha256
from min2real.runtime import engine_cache
from min2real.runtime.backends.base import Backend
from min2real.runtime.engine_cache import EngineCacheError, EngineCacheKey


def _import_tensorrt():
    try:
        import tensorrt
    except ImportError as error:
        raise ImportError(
            "the TensorRT backend needs the TensorRT 10 or 11 Python package 'tensorrt' (JetPack: 10.x; "
            "`pip install 'min2real[tensorrt]'`) and a CUDA GPU; use an .onnx model with ONNX Runtime instead"
        ) from error
    if int(tensorrt.__version__.split(".")[0]) < 10:
        raise ImportError(
            f"TensorRT {tensorrt.__version__} is too old; min2real needs TensorRT 10 or 11 (named tensors, execute_async_v3)"
        )
    return tensorrt


def _import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python layout
        except ImportError as error:
            raise ImportError(
                "the TensorRT backend needs NVIDIA's 'cuda-python' package (cuda.bindings.runtime)"
            ) from error
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


def wanted_engine_key(
    cached: EngineCacheKey, platform: dict[str, str], onnx_sha256: str | None = None
) -> EngineCacheKey:
    """The key this machine needs for an engine built as `cached` says: same precision and shapes,
    this machine's TensorRT and GPU, and (when the ONNX is at hand) its current hash."""
    return dataclasses.replace(
        cached,
        tensorrt_version=platform["tensorrt_version"],
        gpu_name=platform["gpu_name"],
        compute_capability=platform["compute_capability"],
        onnx_sha256=cached.onnx_sha256 if onnx_sha256 is None else onnx_sha256,
    )


class TensorRTBackend(Backend):
    """A TensorRT 10 / 11 engine with its sidecar `<engine>.json` (metadata + cache key).

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
        self._batch: int | None = None
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
            cuda_call(
                cudart,
                cudart.cudaMemcpyAsync(
                    self._device[name], self._host[name].ctypes.data, array.nbytes, h2d, self._stream
                ),
            )
        start, end = self._events
        cuda_call(cudart, cudart.cudaEventRecord(start, self._stream))
        if not self._context.execute_async_v3(int(self._stream or 0)):
            raise RuntimeError(f"TensorRT execute_async_v3 failed for {self.engine_path}")
        cuda_call(cudart, cudart.cudaEventRecord(end, self._stream))
        shapes = {name: tuple(self._context.get_tensor_shape(name)) for name in self._outputs}
        for name in self._outputs:
            nbytes = int(np.prod(shapes[name])) * 4
            cuda_call(
                cudart,
                cudart.cudaMemcpyAsync(self._host[name].ctypes.data, self._device[name], nbytes, d2h, self._stream),
            )
        cuda_call(cudart, cudart.cudaStreamSynchronize(self._stream))
        self.last_gpu_ms = float(cuda_call(cudart, cudart.cudaEventElapsedTime(start, end)))
        # Copies: the pinned host buffers are reused by the next frame.
        return {
            name: self._host[name][: int(np.prod(shapes[name]))].reshape(shapes[name]).copy() for name in self._outputs
        }

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
