"""TensorRT: build engines from a tiny exported ONNX, cache them, run them through the runtime.

Needs TensorRT 10 or 11 and a CUDA GPU: skipped with the reason elsewhere (test/conftest.py). The
cache rules and both generations' build paths are tested without TensorRT in test_engine_cache.py,
test_tensorrt_logic.py and test_tensorrt_generations.py.
"""

from __future__ import annotations

import os

os.environ.setdefault("TIMM_FUSED_ATTN", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from min2real.contract import TINY_CONTRACT  # noqa: E402

pytestmark = pytest.mark.tensorrt


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    import torch

    from min2real.export import export_model
    from min2real.models.model import build_model
    from min2real.models.variants import variant_config

    torch.manual_seed(0)
    model = build_model(variant_config("min2real", tiny=True), TINY_CONTRACT).eval()
    directory = tmp_path_factory.mktemp("trt")
    return export_model(model, TINY_CONTRACT, "real", directory / "tiny_real.onnx", num_random=1).path


@pytest.fixture(scope="module")
def tiny_fp16_onnx(tiny_onnx):
    """The strongly typed FP16 graph of tiny_onnx (`min2real quantize`): what TensorRT 11 builds."""
    from min2real.precision.convert import quantize_onnx

    return quantize_onnx(tiny_onnx, "fp16", tiny_onnx.with_name("tiny_real.fp16.onnx")).path


@pytest.mark.parametrize(
    ("graph", "precision", "tolerance"),
    [("fp32", "fp32", 1e-3), ("fp16", None, 5e-2), ("fp32", "fp16", 5e-2)],
    ids=["fp32", "typed-fp16", "weak-fp16"],
)
def test_engine_build_cache_and_parity(tiny_onnx, tiny_fp16_onnx, tmp_path, graph, precision, tolerance):
    import tensorrt

    from min2real.contract import example_inputs
    from min2real.runtime import engine_cache
    from min2real.runtime.backends import load_backend
    from min2real.runtime.backends.tensorrt_backend import TensorRTBackend
    from min2real.runtime.engine_build import build_engine
    from min2real.runtime.engine_precision import strong_typing_only

    if graph == "fp32" and precision == "fp16" and strong_typing_only(tensorrt.__version__):
        pytest.skip("TensorRT 11 has no weak typing (its refusal: test_tensorrt_generations.py)")
    onnx_path = tiny_fp16_onnx if graph == "fp16" else tiny_onnx
    first = build_engine(onnx_path, precision, cache_dir=tmp_path, workspace_mb=1024)
    assert first.built and first.engine_path == tmp_path / f"{onnx_path.stem}.{first.key.precision}.engine"
    assert engine_cache.read_sidecar(first.engine_path)[1] == first.key and first.key.graph_precision == graph
    second = build_engine(onnx_path, precision, cache_dir=tmp_path, workspace_mb=1024)
    assert not second.built and second.decision.action == "load"  # cache hit, no rebuild

    reference = load_backend(tiny_onnx, providers=["CPUExecutionProvider"])  # the FP32 graph
    engine = load_backend(onnx_path, backend="tensorrt", precision=precision, cache_dir=str(tmp_path), domain="real")
    assert isinstance(engine, TensorRTBackend) and engine.name == "tensorrt"
    for seed in range(3):
        inputs = example_inputs(reference.contract, seed=seed, names=reference.input_shapes)
        got, expected = engine.infer(inputs), reference.infer(inputs)
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], atol=tolerance, err_msg=f"{precision} {name}")
    assert engine.last_gpu_ms > 0
    engine.close()


def test_stale_engine_is_refused_by_the_runtime_and_rebuilt_by_the_builder(tiny_onnx, tmp_path):
    import dataclasses

    from min2real.runtime import engine_cache
    from min2real.runtime.backends import load_backend
    from min2real.runtime.engine_build import build_engine
    from min2real.runtime.engine_cache import EngineCacheError

    built = build_engine(tiny_onnx, "fp32", cache_dir=tmp_path, workspace_mb=1024)
    metadata_json, key = engine_cache.read_sidecar(built.engine_path)
    engine_cache.write_sidecar(built.engine_path, metadata_json, dataclasses.replace(key, tensorrt_version="9.0.0"))
    with pytest.raises(EngineCacheError, match=r"TensorRT version .*'9\.0\.0'"):
        load_backend(built.engine_path)
    with pytest.raises(EngineCacheError, match="rebuilding is not allowed"):
        build_engine(tiny_onnx, "fp32", cache_dir=tmp_path, allow_rebuild=False)
    rebuilt = build_engine(tiny_onnx, "fp32", cache_dir=tmp_path, workspace_mb=1024)
    assert rebuilt.built and any("TensorRT version" in reason for reason in rebuilt.decision.reasons)
    load_backend(built.engine_path).close()


def test_policy_on_tensorrt(tiny_fp16_onnx, tmp_path):
    from min2real.runtime.engine_build import build_engine
    from min2real.runtime.policy import load_policy
    from min2real.runtime.types import FrameInputs

    build_engine(tiny_fp16_onnx, cache_dir=tmp_path, workspace_mb=1024)  # TensorRT 10 or 11: the typed graph
    policy = load_policy(str(tiny_fp16_onnx), backend="tensorrt", cache_dir=str(tmp_path), domain="real")
    frame = FrameInputs(np.full((480, 640, 3), 120, np.uint8), None, 3.0, np.array([8.0, 1.0]), 2)
    prediction = policy.predict(frame)
    assert policy.backend_name == "tensorrt"
    assert (
        prediction.waypoints_ego.shape == (TINY_CONTRACT.num_waypoints, 2)
        and np.isfinite(prediction.waypoints_ego).all()
    )
