"""`min2real build-engine` on both TensorRT generations, against the stand-in of their Python API
(test_tensorrt_logic's, which has TensorRT 10's weak typing and STRONGLY_TYPED networks and
TensorRT 11 without the weak-typing API): typed graphs build strongly typed on both, FP32 graphs
keep TensorRT 10's flags, TensorRT 11 refuses the flags with the command that makes a typed
graph, and the engine cache key and the runtime's engine lookup know the graph's precision."""

from __future__ import annotations

import numpy as np
import pytest
from test_tensorrt_logic import _expected_waypoints, _inputs, _onnx_with_metadata, _spec, install_stand_ins

from min2real.runtime import engine_cache
from min2real.runtime.engine_precision import EnginePrecisionError, plan_build


@pytest.fixture
def fake_gpu(monkeypatch):
    return install_stand_ins(monkeypatch)


@pytest.mark.parametrize("version", ["10.3.0", "11.4.0"])
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_typed_graphs_build_strongly_typed_without_precision_flags(fake_gpu, tmp_path, version, precision):
    from min2real.runtime.engine_build import build_engine

    fake_gpu["set_version"](version)
    fake_gpu["engine_spec"] = _spec(1)
    onnx_path = _onnx_with_metadata(tmp_path, 1, precision)
    built = build_engine(onnx_path, cache_dir=tmp_path)
    assert built.built and built.engine_path.name == f"tiny_real.{precision}.{precision}.engine"
    network, config = fake_gpu["network"], fake_gpu["config"]
    assert network.strongly_typed
    # TensorRT 10 opts in with 1 << STRONGLY_TYPED (= 1); on 11 every network is strongly typed.
    assert fake_gpu["network_flags"] == (1 << 1 if version.startswith("10.") else 0)
    assert config.flags == set() and not hasattr(config, "int8_calibrator")
    assert all(layer.precision is None for layer in network.layers)  # no pins: the graph's types decide
    key = engine_cache.read_sidecar(built.engine_path)[1]
    assert (key.precision, key.graph_precision, key.tensorrt_version) == (precision, precision, version)
    # Asking a typed graph for another precision is refused on either generation.
    other = "int8" if precision == "fp16" else "fp16"
    with pytest.raises(EnginePrecisionError, match=rf"is a {precision} graph.*min2real quantize MODEL.onnx"):
        build_engine(onnx_path, other, cache_dir=tmp_path)


@pytest.mark.parametrize("precision", [None, "fp16", "int8"])
def test_tensorrt11_refuses_weak_typing_with_the_command_that_makes_a_typed_graph(
    fake_gpu, tmp_path, precision, capsys
):
    from min2real.cli import main
    from min2real.runtime.engine_build import build_engine

    fake_gpu["set_version"]("11.4.0")
    fake_gpu["engine_spec"] = _spec(1)
    onnx_path = _onnx_with_metadata(tmp_path, 1)
    wanted = precision or "fp16"  # an FP32 graph's default engine
    command = f"min2real quantize tiny_real.onnx --precision {wanted}"
    with pytest.raises(EnginePrecisionError, match=r"TensorRT 11\.4\.0 builds strongly typed networks only") as error:
        build_engine(onnx_path, precision, cache_dir=tmp_path)
    assert command in str(error.value) and "--precision fp32" in str(error.value)
    assert ("--calib DATA_DIR" in str(error.value)) == (wanted == "int8")
    assert "builds" not in fake_gpu and not list(tmp_path.glob("*.engine"))  # refused before any build
    args = ["build-engine", str(onnx_path), "--cache-dir", str(tmp_path)]
    assert main(args + (["--precision", precision] if precision else [])) == 1
    assert command in capsys.readouterr().out


def test_fp32_graph_on_both_generations(fake_gpu, tmp_path):
    """fp32: TensorRT 10 keeps today's path (no flags, not strongly typed), 11 builds it strongly
    typed; TensorRT 10's fp16 of an FP32 graph keeps the flags and the FP32 pins."""
    from min2real.runtime.engine_build import build_engine

    fake_gpu["engine_spec"] = _spec(1)
    onnx_path = _onnx_with_metadata(tmp_path, 1)
    build_engine(onnx_path, "fp32", cache_dir=tmp_path / "10")
    assert fake_gpu["network_flags"] == 0 and not fake_gpu["network"].strongly_typed
    assert fake_gpu["config"].flags == set()
    weak = build_engine(onnx_path, cache_dir=tmp_path / "10")  # default of an FP32 graph: fp16, weak typing
    assert weak.engine_path.name == "tiny_real.fp16.engine" and {"FP16", "OBEY"} <= fake_gpu["config"].flags
    assert [layer.type.name for layer in fake_gpu["network"].layers if layer.precision == "float32"] == [
        "NORMALIZATION",
        "SOFTMAX",
    ]
    fake_gpu["set_version"]("11.4.0")
    strong = build_engine(onnx_path, "fp32", cache_dir=tmp_path / "11")
    assert strong.built and fake_gpu["network"].strongly_typed and fake_gpu["config"].flags == set()


def test_calibration_options_are_refused_where_nothing_is_calibrated(fake_gpu, tmp_path):
    from min2real.runtime.engine_build import EngineBuildError, build_engine

    fake_gpu["engine_spec"] = _spec(1)
    with pytest.raises(EngineBuildError, match=r"nothing to calibrate \(its Q/DQ scales were calibrated by"):
        build_engine(_onnx_with_metadata(tmp_path, 1, "int8"), calib_data=tmp_path, cache_dir=tmp_path)
    assert "builds" not in fake_gpu


def test_runtime_finds_the_typed_graphs_engine_and_runs_it_on_tensorrt11(fake_gpu, tmp_path):
    from min2real.runtime.backends import load_backend
    from min2real.runtime.engine_build import build_engine

    fake_gpu["set_version"]("11.4.0")
    fake_gpu["engine_spec"] = _spec(1)
    onnx_path = _onnx_with_metadata(tmp_path, 1, "fp16")
    built = build_engine(onnx_path, cache_dir=tmp_path)
    backend = load_backend(onnx_path, backend="tensorrt", cache_dir=str(tmp_path), domain="real")
    assert backend.engine_path == built.engine_path and backend.key.graph_precision == "fp16"
    inputs = _inputs(1, seed=3)
    np.testing.assert_allclose(
        backend.infer(inputs)["waypoints"], _expected_waypoints(inputs["target_point"]), rtol=1e-6
    )
    backend.close()
    # The FP32 graph's default engine (fp16) does not exist on TensorRT 11: the error names the
    # build command, which in turn names the quantize command (test above).
    with pytest.raises(
        engine_cache.EngineCacheError, match=r"no fp16 TensorRT engine .*build-engine .*--precision fp16"
    ):
        load_backend(_onnx_with_metadata(tmp_path, 1), backend="tensorrt", cache_dir=str(tmp_path))


def test_engine_cache_key_carries_the_graph_precision(fake_gpu, tmp_path):
    """Same engine precision from an FP32 graph (TensorRT 10 weak typing) and from an FP16
    graph: the keys differ by the graph precision, and older sidecars read as fp32 graphs."""
    import dataclasses
    import json

    from min2real.runtime.engine_build import build_engine

    fake_gpu["engine_spec"] = _spec(1)
    weak = build_engine(_onnx_with_metadata(tmp_path, 1), "fp16", cache_dir=tmp_path)
    key = engine_cache.read_sidecar(weak.engine_path)[1]
    assert key.graph_precision == "fp32"
    typed = dataclasses.replace(key, graph_precision="fp16")
    assert engine_cache.decide(key, typed, allow_rebuild=False).reasons == (
        "graph precision (graph_precision): cached 'fp32' -> wanted 'fp16'",
    )
    sidecar = engine_cache.sidecar_path(weak.engine_path)
    payload = json.loads(sidecar.read_text())
    del payload["cache_key"]["graph_precision"]  # a sidecar written before the field existed
    sidecar.write_text(json.dumps(payload))
    assert engine_cache.read_sidecar(weak.engine_path)[1] == key


@pytest.mark.parametrize(
    ("graph", "requested", "version", "expected"),
    [
        ("fp32", "fp32", "10.3.0", (False, ())),
        ("fp32", "fp16", "10.3.0", (False, ("FP16", "OBEY_PRECISION_CONSTRAINTS"))),
        ("fp32", "int8", "10.16.1", (False, ("FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"))),
        ("fp16", None, "10.3.0", (True, ())),
        ("int8", "int8", "10.3.0", (True, ())),
        ("fp32", "fp32", "11.0.0", (True, ())),
        ("int8", None, "11.4.0", (True, ())),
    ],
)
def test_build_plan_table(graph, requested, version, expected):
    plan = plan_build(graph, requested, version, "m.onnx")
    assert (plan.strongly_typed, plan.builder_flags) == expected
    assert plan.calibrate == ("INT8" in plan.builder_flags) and plan.pin_fp32 == bool(plan.builder_flags)


def test_build_plan_refuses_old_and_unreadable_versions():
    with pytest.raises(EnginePrecisionError, match="TensorRT 8.6.1 is too old"):
        plan_build("fp32", "fp16", "8.6.1", "m.onnx")
    with pytest.raises(EnginePrecisionError, match="does not start with a major number"):
        plan_build("fp32", "fp16", "unknown", "m.onnx")
