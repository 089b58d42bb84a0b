"""Inference latency per backend at batch 1, measured side by side.

    .venv/bin/python -m benchmarks.bench_inference [--iterations 20] [--domain real] [--tiny] [--json OUT]

Builds the real-size Min2Real network (ViT-S/14 DINOv2 + heads, random weights: latency does not
depend on the weights) at the default contract (camera 384 x 1024, DINOv2 input 224 x 602),
exports its graph to ONNX (verified against PyTorch), then times, interleaved iteration by
iteration so that load changes on a shared machine hit every backend alike:

    torch eager CPU                 the deploy module under torch.inference_mode
    ONNX Runtime CPU                OnnxRuntimeBackend (CPU provider)
    policy (ONNX Runtime CPU)       DrivingPolicy.predict: contract pre-processing + inference + decoding
    torch eager CUDA / ONNX Runtime CUDA / TensorRT fp16   only where a GPU (and TensorRT) exist;
                                    otherwise a "not available here: <reason>" line

CPU rows use the same thread count (--threads). Prints p50 / p99 per row and the ONNX Runtime / PyTorch ratio on this CPU. With few iterations
p99 is close to the maximum. Numbers are recorded in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TIMM_FUSED_ATTN", "0")

import numpy as np  # noqa: E402


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    values = np.asarray(samples_ms)
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99)), "n": len(values)}


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return (time.perf_counter() - start) * 1e3


def _cuda_sync_timed(torch, function) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    function()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3


def run(
    iterations: int | None,
    domain: str,
    tiny: bool,
    exporter: str,
    warmup: int,
    budget_s: float = 45.0,
    threads: int = 0,
) -> dict:
    """iterations: rounds over all backends; None = as many as fit in `budget_s` (at least 3).
    threads: CPU threads for both torch and ONNX Runtime (0 = all CPUs)."""
    import onnxruntime
    import torch

    from min2real.contract import DEFAULT_CONTRACT, TINY_CONTRACT, example_inputs
    from min2real.export import export_model
    from min2real.models.model import build_model
    from min2real.models.variants import variant_config
    from min2real.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from min2real.runtime.policy import DrivingPolicy
    from min2real.runtime.types import FrameInputs

    contract = TINY_CONTRACT if tiny else DEFAULT_CONTRACT
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(variant_config("min2real", tiny=tiny), contract).eval()
    module = model.deploy(domain)
    notes: dict[str, str] = {}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="min2real-bench-") as directory:
        onnx_path = Path(directory) / f"min2real_{domain}.onnx"
        start = time.perf_counter()
        report = export_model(model, contract, domain, onnx_path, exporter=exporter, num_random=1)
        export_s = time.perf_counter() - start
        print(report.summary())
        print(f"export + verification: {export_s:.1f} s")

        cpu = dict(providers=["CPUExecutionProvider"], intra_op_threads=threads, warmup=warmup)
        ort_cpu = OnnxRuntimeBackend(onnx_path, **cpu)
        policy = DrivingPolicy(OnnxRuntimeBackend(onnx_path, **cpu))
        inputs = example_inputs(ort_cpu.contract, seed=1, names=ort_cpu.input_shapes)
        torch_args = [
            torch.from_numpy(inputs[name].copy()) for name in ("image", "lidar_bev", "target_point", "speed", "command")
        ]
        rng = np.random.default_rng(0)
        frame = FrameInputs(
            image_rgb=rng.integers(0, 256, (contract.camera_height, contract.camera_width, 3), dtype=np.uint8),
            lidar_points_ego=rng.uniform(-30, 30, (30_000, 3)).astype(np.float32),
            speed_mps=5.0,
            target_point_ego=np.array([10.0, 0.5]),
            command=1,
        )

        def torch_cpu():
            with torch.inference_mode():
                module(*torch_args)

        rows = {
            "torch eager CPU": torch_cpu,
            "ONNX Runtime CPU": lambda: ort_cpu.infer(inputs),
            "policy.predict (ONNX Runtime CPU)": lambda: policy.predict(frame),
        }
        timers = {name: _timed for name in rows}
        closers = []

        if torch.cuda.is_available():
            module_cuda = model.deploy(domain).cuda()
            args_cuda = [tensor.cuda() for tensor in torch_args]

            def torch_cuda():
                with torch.inference_mode():
                    module_cuda(*args_cuda)

            rows["torch eager CUDA"] = torch_cuda
            timers["torch eager CUDA"] = lambda function: _cuda_sync_timed(torch, function)
        else:
            notes["torch eager CUDA"] = "not available here: torch.cuda.is_available() is False"

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            try:  # the CUDA provider must really start (no silent CPU fall back timed as "CUDA")
                ort_cuda = OnnxRuntimeBackend(
                    onnx_path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"], warmup=warmup
                )
            except RuntimeError as error:
                notes["ONNX Runtime CUDA"] = f"not available here: {error}"
            else:
                rows["ONNX Runtime CUDA"] = lambda: ort_cuda.infer(inputs)
                timers["ONNX Runtime CUDA"] = _timed
        else:
            notes["ONNX Runtime CUDA"] = (
                f"not available here: onnxruntime providers are {onnxruntime.get_available_providers()} (needs onnxruntime-gpu)"
            )

        try:
            import tensorrt  # noqa: F401

            if not torch.cuda.is_available():
                raise ImportError("no CUDA GPU")
        except ImportError as error:
            notes["TensorRT fp16"] = f"not available here: {error}"
        else:
            from min2real.runtime.backends.tensorrt_backend import TensorRTBackend
            from min2real.runtime.engine_build import build_engine

            built = build_engine(onnx_path, "fp16", cache_dir=directory)
            print(built.summary())
            engine = TensorRTBackend(built.engine_path, warmup=warmup)
            closers.append(engine.close)
            rows["TensorRT fp16"] = lambda: engine.infer(inputs)
            timers["TensorRT fp16"] = _timed

        for function in rows.values():  # warm-up (first calls allocate and pick kernels)
            for _ in range(warmup):
                function()
        samples: dict[str, list[float]] = {name: [] for name in rows}
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        rounds = 0
        while (rounds < iterations) if iterations else (rounds < 3 or time.perf_counter() - start < budget_s):
            for name, function in rows.items():  # interleaved: every backend sees the same machine state
                samples[name].append(timers[name](function))
            rounds += 1
        for name, values in samples.items():
            results[name] = _percentiles(values)
        results["policy.predict (ONNX Runtime CPU)"]["preprocess_ms_last"] = policy.predict(frame).preprocess_ms
        for close in closers:
            close()

    ratio = results["ONNX Runtime CPU"]["p50_ms"] / results["torch eager CPU"]["p50_ms"]
    return {
        "config": {
            "variant": "min2real",
            "domain": domain,
            "tiny": tiny,
            "exporter": exporter,
            "camera": [contract.camera_height, contract.camera_width],
            "dino_input": [contract.dino_height, contract.dino_width],
            "iterations": rounds,
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "results": results,
        "not_available": notes,
        "onnxruntime_over_torch_cpu_p50": ratio,
    }


def print_table(summary: dict) -> None:
    config = summary["config"]
    print(
        f"\nmin2real {config['domain']} graph, camera {config['camera'][0]}x{config['camera'][1]}, "
        f"DINOv2 input {config['dino_input'][0]}x{config['dino_input'][1]}, batch 1, {config['iterations']} iterations "
        f"(torch {config['torch']}, onnxruntime {config['onnxruntime']}, {config['torch_threads']} of {config['cpu_count']} CPUs, "
        f"load average {config['load_average_1min'][0]:.1f} -> {config['load_average_1min'][1]:.1f}"
        + (f", {config['cuda_device']}" if config["cuda_device"] else "")
        + ")"
    )
    print(f"{'backend':36s} {'p50 ms':>9s} {'p99 ms':>9s}")
    for name, values in summary["results"].items():
        print(f"{name:36s} {values['p50_ms']:9.1f} {values['p99_ms']:9.1f}")
    for name, note in summary["not_available"].items():
        print(f"{name:36s} {note}")
    print(f"ONNX Runtime CPU / torch eager CPU (p50): {summary['onnxruntime_over_torch_cpu_p50']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="rounds over all backends (default: as many as fit in --budget seconds, at least 3)",
    )
    parser.add_argument("--budget", type=float, default=45.0, help="seconds of timing when --iterations is not given")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--domain",
        choices=("sim", "real"),
        default="real",
        help="'real' (the vehicle graph, no adapter; default) or 'sim' (with the V2R adapter)",
    )
    parser.add_argument(
        "--exporter",
        choices=("dynamo", "legacy"),
        default="legacy",
        help="legacy exports the real-size graph in seconds; both give the same ops",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for torch and ONNX Runtime alike (default 0 = all CPUs); on a shared, "
        "loaded machine 1 avoids OpenMP oversubscription dominating torch's timings",
    )
    parser.add_argument("--tiny", action="store_true", help="tiny contract and model (smoke run)")
    parser.add_argument("--json", default=None, help="also write the results as JSON to this path")
    args = parser.parse_args(argv)
    summary = run(args.iterations, args.domain, args.tiny, args.exporter, args.warmup, args.budget, args.threads)
    print_table(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
