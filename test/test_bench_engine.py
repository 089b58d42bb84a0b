"""benchmarks.bench_engine, the engine check a user runs on a GPU: its measurement on CPU (ONNX
Runtime standing in for the engine) and its verdict on a wrong engine (the TensorRT stand-in's
engine computes something else than the graph) and on TensorRT 11's refusal."""

from __future__ import annotations

import json

import pytest
from test_tensorrt_logic import install_stand_ins

from benchmarks import bench_engine
from min2real.paths import data_file

BUNDLED = data_file("models", "bundled/min2real_tiny_sim.onnx")


def test_check_measures_parity_and_latency_of_any_backend():
    from min2real.contract import TINY_CONTRACT, example_inputs
    from min2real.runtime.backends import load_backend
    from min2real.runtime.onnx_metadata import read_onnx_metadata

    graph_outputs = read_onnx_metadata(BUNDLED).output_shapes  # every output the graph has is compared
    assert {"waypoints", "steer_logits"} <= set(graph_outputs)
    backend = load_backend(BUNDLED, backend="onnxruntime-cpu")
    batches = [example_inputs(TINY_CONTRACT, 1, seed=seed) for seed in range(3)]
    results = bench_engine.check(backend, BUNDLED, BUNDLED, batches, rounds=4)
    backend.close()
    # The same graph on the same runtime: the load-time ViT rewrite is the only difference.
    for row in ("engine", "graph_on_cpu"):
        outputs = results[row]["outputs"]
        assert set(outputs) == set(graph_outputs) and results[row]["steer_agreement"] == 1.0
        assert outputs["waypoints"]["max_abs"] < 1e-4
    assert results["graph_on_cpu"]["outputs"]["waypoints"]["max_abs"] == 0.0
    assert set(results["latency"]) == {"engine wall", "engine GPU", "graph, ONNX Runtime CPU"}
    assert results["latency"]["engine wall"]["median_ms"] > 0


@pytest.fixture
def fake_gpu(monkeypatch):
    return install_stand_ins(monkeypatch)


def test_a_wrong_engine_fails_the_check(fake_gpu, tmp_path, capsys):
    from min2real.contract import TINY_CONTRACT

    fake_gpu["engine_spec"] = {
        "inputs": {name: shape for name, shape in TINY_CONTRACT.input_shapes(1).items()},
        "outputs": {name: shape for name, shape in TINY_CONTRACT.output_shapes(1).items()},
        "max_batch": 1,
    }
    out = tmp_path / "check.json"
    args = [str(BUNDLED), "--precision", "fp32", "--cache-dir", str(tmp_path), "--samples", "2", "--rounds", "2"]
    assert bench_engine.main([*args, "--json", str(out)]) == 1
    results = json.loads(out.read_text())
    assert results["platform"]["gpu_name"] == "Fake GPU" and results["tolerances"]["waypoints"] == 1e-3
    assert results["above_tolerance"]["waypoints"] > 0.1  # the stand-in engine is not the graph
    assert "above tolerance" in capsys.readouterr().err

    fake_gpu["set_version"]("11.4.0")
    assert bench_engine.main([str(BUNDLED), "--cache-dir", str(tmp_path / "11")]) == 1
    assert "min2real quantize" in capsys.readouterr().err
