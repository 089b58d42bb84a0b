"""A TensorRT engine against its ONNX graph, on a GPU: parity and latency, side by side in one run.

    .venv/bin/python -m benchmarks.bench_engine MODEL.onnx [--reference FP32.onnx] [--data DIR]
        [--samples 64] [--precision P] [--cache-dir DIR] [--rounds 200] [--json OUT]

MODEL.onnx is the graph the engine is built from: an FP32 export, or a `min2real quantize` fp16 /
int8 graph (then --reference names the FP32 export it was made from). The engine is built, or the
cached one reused (`min2real build-engine` rules: TensorRT 10 or 11), and then, on the same inputs
(dataset samples with --data, else random contract inputs):

    parity    per output max and p99 |engine - FP32 graph| (ONNX Runtime CPU runs the FP32 graph),
              the steering class agreement, and beside it MODEL.onnx on ONNX Runtime CPU against
              the same reference (what `min2real quantize` verified without a GPU): the engine's
              own kernels are the difference between the two rows;
    latency   TensorRTBackend.infer wall time and GPU time (CUDA events), and MODEL.onnx on ONNX
              Runtime CPU, interleaved round by round; median / p90 / p99 ms and the GPU's name.

Exit status 1 when the engine differs from the FP32 graph above the tolerance (default: the one
`min2real quantize` holds the graph to, 1e-3 for fp32), or when TensorRT or a GPU is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _percentiles(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {
        "median_ms": float(np.median(array)),
        "p90_ms": float(np.percentile(array, 90)),
        "p99_ms": float(np.percentile(array, 99)),
    }


def engine_outputs(backend, batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every output of `backend` (any min2real Backend) on each batch, concatenated."""
    collected: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        for name, value in backend.infer(batch).items():
            collected.setdefault(name, []).append(np.asarray(value, dtype=np.float32))
    return {name: np.concatenate(values) for name, values in collected.items()}


def check(backend, graph_path: Path, reference_path: Path, batches: list[dict[str, np.ndarray]], rounds: int) -> dict:
    """Parity of `backend` and of `graph_path` (ONNX Runtime CPU) against `reference_path`, and
    their latency interleaved over `rounds` (module docstring). `backend` is the engine's
    TensorRTBackend on a GPU; any Backend works (the tests use ONNX Runtime)."""
    from min2real.precision.parity import compare_outputs, cpu_session, run_graph

    source = f"{len(batches)} inputs"
    reference = run_graph(cpu_session(reference_path), batches)
    graph_session = cpu_session(graph_path)
    results = {
        "engine": compare_outputs(reference, engine_outputs(backend, batches), source).to_dict(),
        "graph_on_cpu": compare_outputs(reference, run_graph(graph_session, batches), source).to_dict(),
    }
    names = [value.name for value in graph_session.get_inputs()]
    times: dict[str, list[float]] = {"engine wall": [], "engine GPU": [], "graph, ONNX Runtime CPU": []}
    for index in range(rounds):
        batch = batches[index % len(batches)]
        start = time.perf_counter()
        backend.infer(batch)
        times["engine wall"].append((time.perf_counter() - start) * 1e3)
        times["engine GPU"].append(float(getattr(backend, "last_gpu_ms", float("nan"))))
        start = time.perf_counter()
        graph_session.run(None, {name: batch[name] for name in names})
        times["graph, ONNX Runtime CPU"].append((time.perf_counter() - start) * 1e3)
    results["latency"] = {name: _percentiles(values) for name, values in times.items()}
    return results


def _batches(args, metadata, names) -> tuple[list[dict[str, np.ndarray]], str]:
    from min2real.contract import example_inputs

    if args.data is None:
        return [example_inputs(metadata.contract, 1, seed=s, names=names) for s in range(args.samples)], "random"
    from min2real.data import load_dataset_samples, sample_to_inputs

    samples = load_dataset_samples(args.data, metadata.contract, metadata.domain, args.samples)
    return [{k: v for k, v in sample_to_inputs(s).items() if k in names} for s in samples], str(args.data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("onnx", help="the graph the engine is built from (FP32 export or a quantized graph)")
    parser.add_argument("--reference", default=None, help="the FP32 export (default: ONNX itself, if FP32)")
    parser.add_argument("--data", default=None, help="dataset directory whose samples are compared")
    parser.add_argument("--samples", type=int, default=64, help="inputs compared (default 64)")
    parser.add_argument("--precision", default=None, help="engine precision (default: build-engine's)")
    parser.add_argument("--cache-dir", default=None, help="engine cache directory (default: beside the ONNX)")
    parser.add_argument("--rounds", type=int, default=200, help="timed rounds (default 200)")
    parser.add_argument("--tolerance", type=float, default=None, help="max |error| allowed per output")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    from min2real.precision.options import DEFAULT_TOLERANCES
    from min2real.runtime.onnx_metadata import read_onnx_metadata

    onnx_path = Path(args.onnx)
    metadata = read_onnx_metadata(onnx_path)
    if args.reference is None and metadata.precision != "fp32":
        print(f"{onnx_path} is a {metadata.precision} graph: name its FP32 export with --reference", file=sys.stderr)
        return 2
    reference = Path(args.reference) if args.reference else onnx_path
    try:
        from min2real.runtime.backends.tensorrt_backend import TensorRTBackend, tensorrt_platform
        from min2real.runtime.engine_build import build_engine

        platform = tensorrt_platform()
        built = build_engine(onnx_path, args.precision, cache_dir=args.cache_dir)
        backend = TensorRTBackend(built.engine_path, onnx_path=onnx_path, precision=built.key.precision)
    except (ImportError, RuntimeError, ValueError) as error:
        print(f"no engine to check here: {error}", file=sys.stderr)
        return 1
    batches, source = _batches(args, metadata, list(metadata.input_shapes))
    results = check(backend, onnx_path, reference, batches, args.rounds)
    backend.close()
    results.update(platform=platform, inputs_from=source, build=built.summary())
    precision = built.key.precision
    tolerance = args.tolerance
    bounds = DEFAULT_TOLERANCES.get(precision, {}) if tolerance is None else {}
    limits = {name: bounds.get(name, 1e-3) if tolerance is None else tolerance for name in results["engine"]["outputs"]}
    above = {n: p["max_abs"] for n, p in results["engine"]["outputs"].items() if not p["max_abs"] <= limits[n]}
    results["tolerances"], results["above_tolerance"] = limits, above
    print(json.dumps(results, indent=2, sort_keys=True))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, sort_keys=True))
    if above:
        print(f"engine differs from the FP32 graph above tolerance: {above} (limits {limits})", file=sys.stderr)
    return 1 if above else 0


if __name__ == "__main__":
    sys.exit(main())
