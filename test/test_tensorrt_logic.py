"""The TensorRT backend and engine builder run against a stand-in of the TensorRT 10 / 11 and
cuda-python API (host memory plays device memory, a numpy function plays the network). This checks
our side of the calls (named tensors, buffers allocated once, dynamic batch, sidecar checks, the
build-only cache flow, FP32 pins) on machines without a GPU; test_tensorrt.py runs the real thing.
The stand-in has each generation's build API: TensorRT 10's weak typing (precision flags, layer
pins, the entropy calibrator) and STRONGLY_TYPED networks; TensorRT 11 without any of the weak
typing API, every network strongly typed (test_tensorrt_generations.py).
"""

from __future__ import annotations

import ctypes
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from min2real.contract import TINY_CONTRACT, ArtifactMetadata, ContractError

T = TINY_CONTRACT.num_waypoints


# ---- cuda-python stand-in ---------------------------------------------------------------------
class _Handle:
    def __init__(self, value: int) -> None:
        self.value = value

    def __int__(self) -> int:
        return self.value


def _fake_cudart(state: dict):
    cudart = types.SimpleNamespace()
    cudart.cudaError_t = types.SimpleNamespace(cudaSuccess=0)
    cudart.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
    buffers = state.setdefault("buffers", {})

    def allocate(nbytes):
        buffer = ctypes.create_string_buffer(int(nbytes))
        address = ctypes.addressof(buffer)
        buffers[address] = buffer
        state["allocations"] = state.get("allocations", 0) + 1
        return 0, address

    def free(address):
        buffers.pop(int(address), None)
        return (0,)

    def memcpy(dst, src, nbytes, kind, stream=None):
        ctypes.memmove(int(dst), int(src), int(nbytes))
        return (0,)

    cudart.cudaMalloc = allocate
    cudart.cudaMallocHost = allocate
    cudart.cudaFree = free
    cudart.cudaFreeHost = free
    cudart.cudaMemcpyAsync = memcpy
    cudart.cudaMemcpy = memcpy
    cudart.cudaSetDevice = lambda device: (0,)
    cudart.cudaStreamCreate = lambda: (0, _Handle(7))
    cudart.cudaStreamDestroy = lambda stream: (0,)
    cudart.cudaStreamSynchronize = lambda stream: (0,)
    cudart.cudaEventCreate = lambda: (0, _Handle(9))
    cudart.cudaEventDestroy = lambda event: (0,)
    cudart.cudaEventRecord = lambda event, stream: (0,)
    cudart.cudaEventElapsedTime = lambda start, end: (0, 1.25)
    cudart.cudaGetErrorString = lambda err: (0, b"fake error")
    props = types.SimpleNamespace(name=b"Fake GPU", major=8, minor=7)
    cudart.cudaGetDeviceProperties = lambda device: (0, props)
    return cudart


# ---- TensorRT stand-in ---------------------------------------------------------------------------
def _fake_tensorrt(state: dict, version: str = "10.3.0"):
    trt = types.SimpleNamespace(__version__=version)
    weak_typing = int(version.split(".")[0]) < 11  # TensorRT 11 removed the weak-typing API
    trt.float32, trt.float16, trt.int32 = "float32", "float16", "int32"
    trt.nptype = lambda dtype: {"float32": np.float32, "float16": np.float16, "int32": np.int32}[dtype]
    trt.TensorIOMode = types.SimpleNamespace(INPUT="input", OUTPUT="output")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    if weak_typing:  # TensorRT 10: EXPLICIT_BATCH (ignored) = 0, STRONGLY_TYPED = 1
        trt.BuilderFlag = types.SimpleNamespace(
            FP16="FP16", INT8="INT8", OBEY_PRECISION_CONSTRAINTS="OBEY", TF32="TF32"
        )
        trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
    else:  # TensorRT 11: no precision flags; STRONGLY_TYPED = 0, deprecated and ignored
        trt.BuilderFlag = types.SimpleNamespace(TF32="TF32")
        trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=0)

    class Logger:
        WARNING = 2

        def __init__(self, severity=None) -> None:
            del severity

    class Engine:
        def __init__(self, spec: dict) -> None:
            self.spec = spec  # {"inputs": {name: shape}, "outputs": {name: shape}}; -1 = dynamic batch
            self.names = list(spec["inputs"]) + list(spec["outputs"])

        @property
        def num_io_tensors(self) -> int:
            return len(self.names)

        def get_tensor_name(self, index):
            return self.names[index]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name in self.spec["inputs"] else trt.TensorIOMode.OUTPUT

        def get_tensor_shape(self, name):
            return tuple({**self.spec["inputs"], **self.spec["outputs"]}[name])

        def get_tensor_dtype(self, name):
            return trt.float32

        def get_tensor_profile_shape(self, name, profile):
            shape = self.spec["inputs"][name]
            return [(1, *shape[1:]), (1, *shape[1:]), (self.spec["max_batch"], *shape[1:])]

        def create_execution_context(self):
            return Context(self)

    class Context:
        def __init__(self, engine: Engine) -> None:
            self.engine = engine
            self.addresses: dict[str, int] = {}
            self.batch = None

        def set_input_shape(self, name, shape):
            self.batch = shape[0]
            state.setdefault("input_shapes_set", []).append((name, tuple(shape)))
            return True

        def get_tensor_shape(self, name):
            shape = self.engine.get_tensor_shape(name)
            return (self.batch, *shape[1:]) if shape[0] == -1 else shape

        def set_tensor_address(self, name, address):
            self.addresses[name] = int(address)
            return True

        def _view(self, name):
            shape = self.get_tensor_shape(name)
            pointer = ctypes.cast(self.addresses[name], ctypes.POINTER(ctypes.c_float))
            return np.ctypeslib.as_array(pointer, (int(np.prod(shape)),)).reshape(shape)

        def execute_async_v3(self, stream_handle):
            assert isinstance(stream_handle, int)
            target, command = self._view("target_point"), self._view("command")
            fractions = (np.arange(1, T + 1, dtype=np.float32) / T)[None, :, None]
            self._view("waypoints")[...] = target[:, None, :] * fractions
            self._view("steer_logits")[...] = command[:, :3]
            state["executions"] = state.get("executions", 0) + 1
            return True

    class Runtime:
        def __init__(self, logger) -> None:
            del logger

        def deserialize_cuda_engine(self, data: bytes):
            import json

            return Engine(json.loads(data.decode()))

    # Builder side.
    class Layer:
        def __init__(self, type_name: str, dtype: str, strongly_typed: bool) -> None:
            self.type = types.SimpleNamespace(name=type_name)
            self.num_outputs = 1
            self._dtype = dtype
            self._precision = None
            self.strongly_typed = strongly_typed
            self.output_types = {}

        def get_output(self, index):
            return types.SimpleNamespace(dtype=self._dtype)

        def _typed_by_hand(self):
            if not weak_typing:
                raise AttributeError("TensorRT 11 removed ILayer.precision / set_output_type")
            if self.strongly_typed:
                raise RuntimeError("setting layer precision is not allowed in a strongly typed network")

        @property
        def precision(self):
            return self._precision

        @precision.setter
        def precision(self, value):
            self._typed_by_hand()
            self._precision = value

        def set_output_type(self, index, dtype):
            self._typed_by_hand()
            self.output_types[index] = dtype

    class Network:
        def __init__(self, strongly_typed: bool) -> None:
            self.strongly_typed = strongly_typed
            kinds = [
                ("CONVOLUTION", "float32"),
                ("NORMALIZATION", "float32"),
                ("SOFTMAX", "float32"),
                ("REDUCE", "int32"),
                ("MATRIX_MULTIPLY", "float32"),
            ]
            self.layers = [Layer(name, dtype, strongly_typed) for name, dtype in kinds]
            state["network"] = self

        @property
        def num_layers(self):
            return len(self.layers)

        def get_layer(self, index):
            return self.layers[index]

    class OnnxParser:
        def __init__(self, network, logger) -> None:
            self.num_errors = 0

        def parse_from_file(self, path):
            state["parsed"] = path
            return Path(path).is_file()

    class Config:
        def __init__(self) -> None:
            self.flags: set = set()
            self.pools: dict = {}
            self.profiles: list = []
            state["config"] = self

        def __setattr__(self, name, value):
            if not weak_typing and name in ("int8_calibrator",):
                raise AttributeError("TensorRT 11 removed IBuilderConfig.int8_calibrator")
            object.__setattr__(self, name, value)

        def set_memory_pool_limit(self, pool, size):
            self.pools[pool] = size

        def set_flag(self, flag):
            self.flags.add(flag)

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)

    class Profile:
        def __init__(self) -> None:
            self.shapes = {}

        def set_shape(self, name, smallest, optimal, largest):
            self.shapes[name] = (tuple(smallest), tuple(optimal), tuple(largest))

    class Builder:
        def __init__(self, logger) -> None:
            del logger

        def create_network(self, flags):
            # Explicit batch is the only mode since TensorRT 10; 11 has no other flag than the ignored STRONGLY_TYPED.
            strongly = 1 << trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED
            assert flags in (0, strongly), f"unexpected network flags {flags}"
            state["network_flags"] = flags
            return Network(strongly_typed=not weak_typing or flags == strongly)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            import json

            state["builds"] = state.get("builds", 0) + 1
            calibrator = getattr(config, "int8_calibrator", None)
            if calibrator is not None and calibrator.read_calibration_cache() is None:
                names = list(state["engine_spec"]["inputs"])
                assert calibrator.get_batch_size() == 1
                while (pointers := calibrator.get_batch(names)) is not None:
                    assert len(pointers) == len(names) and all(isinstance(p, int) for p in pointers)
                    state["calibration_batches"] = state.get("calibration_batches", 0) + 1
                calibrator.write_calibration_cache(b"calibration table")
            return json.dumps(state["engine_spec"]).encode()

    class IInt8EntropyCalibrator2:
        def __init__(self) -> None:
            pass

    trt.Logger, trt.Runtime, trt.Builder, trt.OnnxParser = Logger, Runtime, Builder, OnnxParser
    if weak_typing:  # gone in TensorRT 11
        Builder.platform_has_fast_fp16 = True
        trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    return trt


@pytest.fixture
def fake_gpu(monkeypatch):
    """Install the stand-ins as `tensorrt` and `cuda.bindings.runtime`; returns the shared state."""
    return install_stand_ins(monkeypatch)


def install_stand_ins(monkeypatch) -> dict:
    """The stand-ins as `tensorrt` (10.3.0; state["set_version"] swaps it) and `cuda.bindings.runtime`."""
    state: dict = {}
    cudart = _fake_cudart(state)
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    cuda = types.ModuleType("cuda")
    cuda.bindings = bindings
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(state))
    state["set_version"] = lambda version: monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(state, version))
    return state


def _metadata(batch: int, precision: str = "fp32") -> ArtifactMetadata:
    return ArtifactMetadata(
        precision=precision,
        contract=TINY_CONTRACT,
        variant="min2real",
        domain="real",
        weights={},
        checkpoint_sha256="",
        package_versions={},
        input_shapes=TINY_CONTRACT.input_shapes(batch),
        output_shapes=TINY_CONTRACT.output_shapes(batch),
    )


def _onnx_with_metadata(tmp_path, batch: int, precision: str = "fp32") -> Path:
    """A file that read_onnx_metadata accepts (an ONNX model proto carrying the metadata of a
    graph of `precision`)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    entry = proto.metadata_props.add()
    entry.key, entry.value = "min2real.metadata", _metadata(batch, precision).to_json()
    path = tmp_path / ("tiny_real.onnx" if precision == "fp32" else f"tiny_real.{precision}.onnx")
    onnx.save(proto, str(path))
    return path


def _inputs(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    from min2real.contract import example_inputs

    inputs = example_inputs(TINY_CONTRACT, batch=batch, seed=seed, names=_metadata(batch).input_shapes)
    inputs["target_point"] = np.random.default_rng(seed).uniform(-10, 10, (batch, 2)).astype(np.float32)
    return inputs


def _expected_waypoints(target: np.ndarray) -> np.ndarray:
    return target[:, None, :] * (np.arange(1, T + 1, dtype=np.float32) / T)[None, :, None]


def _spec(batch_dim: int, max_batch: int = 1) -> dict:
    return {
        "inputs": {name: (batch_dim, *shape[1:]) for name, shape in TINY_CONTRACT.input_shapes(1).items()},
        "outputs": {name: (batch_dim, *shape[1:]) for name, shape in TINY_CONTRACT.output_shapes(1).items()},
        "max_batch": max_batch,
    }


def test_build_engine_then_cache_hit_then_rebuild_on_tensorrt_upgrade(fake_gpu, tmp_path):
    from min2real.runtime import engine_cache
    from min2real.runtime.engine_build import build_engine

    fake_gpu["engine_spec"] = _spec(1)
    onnx_path = _onnx_with_metadata(tmp_path, 1)
    first = build_engine(onnx_path, "fp16", cache_dir=tmp_path / "engines", workspace_mb=256)
    assert first.built and fake_gpu["builds"] == 1
    assert first.engine_path == tmp_path / "engines" / "tiny_real.fp16.engine"
    key = engine_cache.read_sidecar(first.engine_path)[1]
    assert (key.tensorrt_version, key.gpu_name, key.compute_capability) == ("10.3.0", "Fake GPU", "8.7")
    config, network = fake_gpu["config"], fake_gpu["network"]
    assert config.pools == {"workspace": 256 << 20}
    assert {"FP16", "OBEY"} <= config.flags and "INT8" not in config.flags
    pinned = [layer.type.name for layer in network.layers if layer.precision == "float32"]
    assert pinned == ["NORMALIZATION", "SOFTMAX"]  # the int32 (shape) reduce is left alone

    second = build_engine(onnx_path, "fp16", cache_dir=tmp_path / "engines")
    assert not second.built and fake_gpu["builds"] == 1  # cache hit

    fake_gpu["set_version"]("10.7.0")
    with pytest.raises(engine_cache.EngineCacheError, match=r"TensorRT version .*'10\.3\.0' -> wanted '10\.7\.0'"):
        build_engine(onnx_path, "fp16", cache_dir=tmp_path / "engines", allow_rebuild=False)
    third = build_engine(onnx_path, "fp16", cache_dir=tmp_path / "engines")
    assert third.built and fake_gpu["builds"] == 2 and "TensorRT version" in third.decision.reasons[0]


def test_int8_without_calibration_data_or_cache_is_an_error(fake_gpu, tmp_path):
    from min2real.runtime.engine_build import EngineBuildError, build_engine

    fake_gpu["engine_spec"] = _spec(1)
    with pytest.raises(EngineBuildError, match="int8 needs calibration data"):
        build_engine(_onnx_with_metadata(tmp_path, 1), "int8", cache_dir=tmp_path)


def test_int8_calibrates_on_dataset_samples_and_reuses_the_cache(fake_gpu, tmp_path, monkeypatch):
    from min2real import data as data_lib
    from min2real.runtime import engine_build as engine_lib

    sample = {name: np.zeros(shape[1:], np.float32) for name, shape in TINY_CONTRACT.input_shapes(1).items()}
    monkeypatch.setattr(data_lib, "load_dataset_samples", lambda data_dir, contract, domain, limit: [sample] * limit)
    fake_gpu["engine_spec"] = _spec(1)
    onnx_path = _onnx_with_metadata(tmp_path, 1)
    built = engine_lib.build_engine(onnx_path, "int8", cache_dir=tmp_path, calib_data=tmp_path, calib_samples=5)
    assert fake_gpu["calibration_batches"] == 5
    assert {"INT8", "FP16", "OBEY"} <= fake_gpu["config"].flags
    caches = list(tmp_path.glob("tiny_real-*.int8.calib"))
    assert len(caches) == 1 and caches[0].read_bytes() == b"calibration table"
    assert not fake_gpu["buffers"]  # the calibrator's device buffers are freed after the build
    # Rebuild without data: the calibration cache is reused, no batch is read again.
    rebuilt = engine_lib.build_engine(onnx_path, "int8", cache_dir=tmp_path, force=True)
    assert rebuilt.built and fake_gpu["calibration_batches"] == 5
    assert built.engine_path == rebuilt.engine_path


def test_tensorrt_backend_runs_named_tensors_with_buffers_made_once(fake_gpu, tmp_path):
    from min2real.runtime.backends import load_backend
    from min2real.runtime.backends.tensorrt_backend import TensorRTBackend
    from min2real.runtime.engine_build import build_engine

    fake_gpu["engine_spec"] = _spec(1)
    onnx_path = _onnx_with_metadata(tmp_path, 1)
    built = build_engine(onnx_path, "fp32", cache_dir=tmp_path)
    backend = load_backend(onnx_path, backend="tensorrt", precision="fp32", cache_dir=str(tmp_path), domain="real")
    assert (
        isinstance(backend, TensorRTBackend) and backend.name == "tensorrt" and backend.engine_path == built.engine_path
    )
    allocations = fake_gpu["allocations"]
    for seed in range(3):
        inputs = _inputs(1, seed)
        outputs = backend.infer(inputs)
        np.testing.assert_allclose(outputs["waypoints"], _expected_waypoints(inputs["target_point"]), rtol=1e-6)
        np.testing.assert_array_equal(outputs["steer_logits"], inputs["command"][:, :3])
    assert fake_gpu["allocations"] == allocations  # nothing allocated per frame
    assert backend.last_gpu_ms == 1.25
    first = backend.infer(_inputs(1, 0))["waypoints"]
    backend.infer(_inputs(1, 1))
    assert not np.allclose(first, backend.infer(_inputs(1, 1))["waypoints"])  # outputs are copies, not reused buffers
    with pytest.raises(ContractError, match="'speed' has shape"):
        backend.infer({**_inputs(1), "speed": np.zeros((1, 2), np.float32)})
    with pytest.raises(ContractError, match="exported for domain 'real' but 'sim'"):
        load_backend(built.engine_path, domain="sim")
    backend.close()
    assert not fake_gpu["buffers"]  # every host and device buffer freed


def test_tensorrt_backend_dynamic_batch(fake_gpu, tmp_path):
    from min2real.runtime.backends import load_backend
    from min2real.runtime.engine_build import build_engine

    fake_gpu["engine_spec"] = _spec(-1, max_batch=4)
    onnx_path = _onnx_with_metadata(tmp_path, -1)
    built = build_engine(onnx_path, "fp16", cache_dir=tmp_path, max_batch=4)
    profile = fake_gpu["config"].profiles[0]
    assert profile.shapes["image"] == ((1, 3, 96, 256), (1, 3, 96, 256), (4, 3, 96, 256))
    backend = load_backend(built.engine_path)
    assert backend.max_batch == 4
    inputs = _inputs(3, seed=2)
    np.testing.assert_allclose(
        backend.infer(inputs)["waypoints"], _expected_waypoints(inputs["target_point"]), rtol=1e-6
    )
    with pytest.raises(ContractError, match="batch 5 exceeds the TensorRT engine's maximum batch 4"):
        backend.infer(_inputs(5))
    backend.close()


def test_tensorrt_backend_refuses_an_engine_from_another_gpu(fake_gpu, tmp_path):
    import dataclasses

    from min2real.runtime import engine_cache
    from min2real.runtime.backends import load_backend
    from min2real.runtime.engine_build import build_engine

    fake_gpu["engine_spec"] = _spec(1)
    onnx_path = _onnx_with_metadata(tmp_path, 1)
    built = build_engine(onnx_path, "fp16", cache_dir=tmp_path)
    metadata_json, key = engine_cache.read_sidecar(built.engine_path)
    engine_cache.write_sidecar(built.engine_path, metadata_json, dataclasses.replace(key, gpu_name="NVIDIA Orin"))
    with pytest.raises(
        engine_cache.EngineCacheError, match=r"GPU model .*'NVIDIA Orin' -> wanted 'Fake GPU'.*build-engine"
    ):
        load_backend(built.engine_path)
    # The ONNX beside the engine changed since the build: refused as well.
    engine_cache.write_sidecar(built.engine_path, metadata_json, key)
    import onnx

    changed = onnx.load(str(onnx_path))
    changed.doc_string = "re-exported"
    onnx.save(changed, str(onnx_path))
    with pytest.raises(engine_cache.EngineCacheError, match="ONNX file hash"):
        load_backend(onnx_path, backend="tensorrt", cache_dir=str(tmp_path))


def test_policy_on_the_tensorrt_backend(fake_gpu, tmp_path):
    from min2real.runtime.engine_build import build_engine
    from min2real.runtime.policy import load_policy
    from min2real.runtime.types import FrameInputs

    fake_gpu["engine_spec"] = _spec(1)
    built = build_engine(_onnx_with_metadata(tmp_path, 1), "fp16", cache_dir=tmp_path)
    policy = load_policy(str(built.engine_path), domain="real")
    prediction = policy.predict(FrameInputs(np.zeros((200, 400, 3), np.uint8), None, 2.0, np.array([8.0, 4.0]), 0))
    assert policy.backend_name == "tensorrt"
    np.testing.assert_allclose(prediction.waypoints_ego[-1], [8.0, 4.0], rtol=1e-6)
    assert prediction.steer_class == 0  # command 'left' one-hot -> logits (1, 0, 0) in the stand-in network


def test_tensorrt_backend_refuses_an_engine_of_another_precision_than_asked(fake_gpu, tmp_path):
    """The file name says fp16, the sidecar says int8 (a copied / renamed engine): refused."""
    import shutil

    from min2real.runtime import engine_cache
    from min2real.runtime.backends import load_backend
    from min2real.runtime.engine_build import build_engine

    fake_gpu["engine_spec"] = _spec(1)
    onnx_path = _onnx_with_metadata(tmp_path, 1)
    cache = tmp_path / "engines"
    built = build_engine(onnx_path, "fp32", cache_dir=cache)
    renamed = cache / "tiny_real.fp16.engine"
    shutil.copy(built.engine_path, renamed)
    shutil.copy(engine_cache.sidecar_path(built.engine_path), engine_cache.sidecar_path(renamed))
    with pytest.raises(engine_cache.EngineCacheError, match=r"precision \(precision\): cached 'fp32' -> wanted 'fp16'"):
        load_backend(onnx_path, backend="tensorrt", precision="fp16", cache_dir=str(cache))
    with pytest.raises(engine_cache.EngineCacheError, match="--precision fp16"):
        load_backend(renamed, precision="fp16")
    backend = load_backend(onnx_path, backend="tensorrt", precision="fp32", cache_dir=str(cache))
    assert backend.key.precision == "fp32"
    backend.close()
