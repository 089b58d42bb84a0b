"""CPU inference at its floor: the real-size graph against ONNX Runtime's own MatMul rate, and the
policy and the driver node against bare inference, measured side by side in one run.

    source scripts/ros_env.sh && .venv/bin/python -m benchmarks.bench_inference [--budget 120] [--json OUT]

Builds the real-size Min2Real network (ViT-S/14 DINOv2 + LiDAR encoder + fusion + heads, random
weights: latency does not depend on them) at the default contract (camera 384 x 1024, DINOv2 input
224 x 602 = 688 tokens), counts its FLOPs (torch's FlopCounterMode), exports the graph to ONNX
(parity with PyTorch checked) and loads it with the ONNX Runtime CPU backend at its defaults. Then,
round by round (interleaved, so load changes on a shared machine hit every row alike):

    MatMul reference     one ONNX Runtime MatMul of the ViT's MLP shape (688 x 384) @ (384 x 1536),
                         same session options: the rate this machine's GEMM reaches on these shapes
    bare inference       OnnxRuntimeBackend.infer on prepared inputs
    plain graph          the same without the ViT rewrites (fuse_vit=False: what they buy)
    policy.predict       DrivingPolicy: contract pre-processing + inference + decoding
    pre-processing       a 1024 x 384 bgra8 image -> RGB (the node's conversion) + the policy's input
                         filling (crop/resize, CHW float, a 30k-point LiDAR BEV, command one-hot)
    driver node          driver_node in its own process, fed here over DDS: camera stamp -> Path
                         (benchmarks.driver_process; skipped with --no-node)

and prints the three ratios with their targets (graph GFLOP/s over the MatMul rate >= 0.85,
policy.predict over bare inference <= 1.05, node latency over bare inference <= 1.10) and the
1-minute load average before and after.

    --options   a second phase timing each ONNX Runtime session option against the default
                (spinning on, 1 thread, no ViT rewrites, ORT_ENABLE_EXTENDED, parallel executor)
    --torch     a third phase: torch eager CPU against ONNX Runtime (kept out of the main rounds:
                OpenMP threads keep spinning after torch returns and would slow the next row)
    --tiny      tiny contract and model (smoke run)
Where a GPU exists, torch eager CUDA, ONNX Runtime CUDA and TensorRT fp16 (on TensorRT 11 from the
`min2real quantize` FP16 graph) are timed against each other in their own phase; elsewhere each
says why it is not available here. An engine's parity and latency against its ONNX graph:
benchmarks.bench_engine.
Numbers are recorded in docs/performance.md.
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

MATMUL_SHAPE = (688, 384, 1536)  # ViT-S MLP fc1 at 224 x 602: tokens x dim @ dim x 4 dim
MATMUL_REPEATS = 20  # per sample: ~the duration of a quarter of a frame, so every row sees the same load
TARGETS = {"graph_over_matmul": 0.85, "predict_over_bare": 1.05, "node_over_bare": 1.10}
ROW_MATMUL = "MatMul reference (per call)"
ROW_BARE = "ONNX Runtime CPU, bare inference"
ROW_UNFUSED = "  same, ViT not rewritten (fuse_vit=False)"
ROW_PREDICT = "policy.predict"
ROW_PREPROCESS = "pre-processing (bgra8 + 30k BEV)"
ROW_NODE = "driver_node (camera stamp -> Path)"


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    values = np.asarray(samples_ms)
    return {"p50_ms": float(np.percentile(values, 50)), "p90_ms": float(np.percentile(values, 90)), "n": len(values)}


def _timed_ms(function) -> float:
    start = time.perf_counter()
    function()
    return (time.perf_counter() - start) * 1e3


def _interleave(rows: dict, budget_s: float, min_rounds: int = 3) -> tuple[dict[str, list[float]], int]:
    """rows: name -> function returning its own time in ms. Rounds over all rows until the budget,
    each round in a new random order (a row never always follows the same neighbour, e.g. one
    whose thread pool is still spinning)."""
    samples: dict[str, list[float]] = {name: [] for name in rows}
    order = list(rows)
    shuffle = np.random.default_rng(0).shuffle
    start, rounds = time.perf_counter(), 0
    while rounds < min_rounds or time.perf_counter() - start < budget_s:
        shuffle(order)
        for name in order:
            samples[name].append(rows[name]())
        rounds += 1
    return samples, rounds


def matmul_reference(ort, backend_options: dict):
    """An ONNX Runtime session of one MatMul with a constant (pre-packed) weight, MATMUL_SHAPE, the
    backend's session options. Returns (session, feed, GFLOP per call)."""
    from onnx import TensorProto, helper, numpy_helper

    from min2real.runtime.backends.onnxruntime_backend import session_options

    m, k, n = MATMUL_SHAPE
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "weight")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["tokens", "weight"], ["out"])],
        "matmul_reference",
        [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [m, n])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    options = session_options(
        ort,
        intra_op_threads=backend_options.get("intra_op_threads", 0),
        inter_op_threads=backend_options.get("inter_op_threads", 1),
        allow_spinning=backend_options.get("allow_spinning", False),
        graph_optimization=backend_options.get("graph_optimization", "all"),
    )
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"tokens": rng.standard_normal((m, k)).astype(np.float32)}
    return session, feed, 2.0 * m * k * n / 1e9


def graph_gflop(module, contract) -> float:
    """FLOPs of one batch-1 forward of the deploy module (matmuls and convolutions, 2 per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    inputs = [torch.zeros(shape) for shape in contract.input_shapes(batch=1).values()]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*inputs)
    return counter.get_total_flops() / 1e9


def _bgra8_message(rgb: np.ndarray):
    from types import SimpleNamespace

    from min2real_ros.conversions import rgb_to_image_fields, ros_uint8_array

    fields = rgb_to_image_fields(rgb, "bgra8")
    return SimpleNamespace(**{**fields._asdict(), "data": ros_uint8_array(fields.data)})  # as rclpy delivers it


def run(args) -> dict:
    import onnxruntime
    import torch

    from min2real.contract import DEFAULT_CONTRACT, TINY_CONTRACT, example_inputs
    from min2real.export import export_model
    from min2real.models.model import build_model
    from min2real.models.variants import variant_config
    from min2real.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from min2real.runtime.policy import DrivingPolicy
    from min2real.runtime.types import FrameInputs
    from min2real_ros.conversions import image_to_rgb

    contract = TINY_CONTRACT if args.tiny else DEFAULT_CONTRACT
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    model = build_model(variant_config("min2real", tiny=args.tiny), contract).eval()
    gflop = graph_gflop(model.deploy(args.domain), contract)
    options = {"intra_op_threads": args.threads, "allow_spinning": args.spinning}
    summary: dict = {"results": {}, "ratios": {}, "notes": {}}
    with tempfile.TemporaryDirectory(prefix="min2real-bench-") as directory:
        onnx_path = Path(directory) / f"min2real_{args.domain}.onnx"
        start = time.perf_counter()
        report = export_model(model, contract, args.domain, onnx_path, exporter=args.exporter, num_random=1)
        print(report.summary())
        print(f"export + verification: {time.perf_counter() - start:.1f} s; graph work {gflop:.2f} GFLOP per frame")
        del model
        cpu = dict(providers=["CPUExecutionProvider"], warmup=args.warmup, **options)
        bare = OnnxRuntimeBackend(onnx_path, **cpu)
        unfused = OnnxRuntimeBackend(onnx_path, fuse_vit=False, **cpu)
        policy = DrivingPolicy(OnnxRuntimeBackend(onnx_path, **cpu))
        inputs = example_inputs(bare.contract, seed=1, names=bare.input_shapes)
        parity = max(
            float(np.abs(bare.infer(x)[name] - unfused.infer(x)[name]).max())
            for x in (inputs, example_inputs(bare.contract, seed=2, names=bare.input_shapes))
            for name in ("waypoints", "steer_logits")
        )
        print(
            f"ONNX Runtime {onnxruntime.__version__} CPU: {bare.fused_attention_blocks} attention blocks fused, "
            f"{bare.folded_layer_scales} LayerScales folded; max |rewritten - plain| output difference {parity:.2e}"
        )
        mm_session, mm_feed, mm_gflop = matmul_reference(onnxruntime, options)

        rng = np.random.default_rng(0)
        rgb = rng.integers(0, 256, (contract.camera_height, contract.camera_width, 3), dtype=np.uint8)
        message = _bgra8_message(rgb)
        points = rng.uniform([-30, -30, -2.4], [30, 30, 0.5], (30_000, 3)).astype(np.float32)

        def frame_from_message() -> FrameInputs:
            return FrameInputs(image_to_rgb(message), points, 5.0, np.array([20.0, 1.0]), 1)

        frame = frame_from_message()

        def matmul_ms() -> float:
            start = time.perf_counter()
            for _ in range(MATMUL_REPEATS):
                mm_session.run(None, mm_feed)
            return (time.perf_counter() - start) * 1e3 / MATMUL_REPEATS

        def preprocess_ms() -> float:
            start = time.perf_counter()
            policy._fill_inputs(frame_from_message())
            return (time.perf_counter() - start) * 1e3

        rows = {
            ROW_MATMUL: matmul_ms,
            ROW_BARE: lambda: _timed_ms(lambda: bare.infer(inputs)),
            ROW_UNFUSED: lambda: _timed_ms(lambda: unfused.infer(inputs)),
            ROW_PREDICT: lambda: _timed_ms(lambda: policy.predict(frame)),
            ROW_PREPROCESS: preprocess_ms,
        }
        driver = None
        if args.no_node:
            summary["notes"][ROW_NODE] = "skipped (--no-node)"
        else:
            from benchmarks.driver_process import DriverProcess

            start = time.perf_counter()
            driver = DriverProcess(onnx_path, args.domain, image_hw=(contract.camera_height, contract.camera_width))
            driver.__enter__()
            print(f"driver_node process answering after {time.perf_counter() - start:.1f} s")
            rows[ROW_NODE] = driver.frame_latency_ms
        try:
            for function in rows.values():  # warm-up
                for _ in range(max(1, args.warmup)):
                    function()
            load_before = os.getloadavg()[0]
            samples, rounds = _interleave(rows, args.budget)
            load_after = os.getloadavg()[0]
        finally:
            if driver is not None:
                driver.__exit__()
                summary["notes"]["driver_node frames without a Path (sent again)"] = str(driver.unanswered)
        results = {name: _percentiles(values) for name, values in samples.items()}
        summary["results"] = results
        bare_ms = results[ROW_BARE]["p50_ms"]
        achieved = gflop / (bare_ms * 1e-3)
        mm_rate = mm_gflop / (results[ROW_MATMUL]["p50_ms"] * 1e-3)
        ratios = {
            "graph_over_matmul": achieved / mm_rate,
            "predict_over_bare": results[ROW_PREDICT]["p50_ms"] / bare_ms,
        }
        if ROW_NODE in results:
            ratios["node_over_bare"] = results[ROW_NODE]["p50_ms"] / bare_ms
        summary["ratios"] = ratios
        summary["rates_gflops"] = {"graph": achieved, "matmul": mm_rate}
        summary["per_round"] = per_round_ratios(samples, gflop, mm_gflop)

        summary["gpu"] = gpu_phase(onnx_path, args.domain, args.tiny, contract, inputs, args.warmup, args.budget / 2)
        if args.options:
            summary["options"] = option_sweep(onnx_path, cpu, inputs, args.budget)
        if args.torch:
            summary["torch"] = torch_phase(args.domain, args.tiny, contract, bare, inputs, args.budget / 2)

    summary["config"] = {
        "domain": args.domain,
        "tiny": args.tiny,
        "exporter": args.exporter,
        "camera": [contract.camera_height, contract.camera_width],
        "dino_input": [contract.dino_height, contract.dino_width],
        "graph_gflop": gflop,
        "matmul_shape": list(MATMUL_SHAPE),
        "rounds": rounds,
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
        "cpu_count": os.cpu_count(),
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "backend_options": options,
        "fused_attention_blocks": bare.fused_attention_blocks,
        "folded_layer_scales": bare.folded_layer_scales,
        "rewritten_vs_plain_max_abs": parity,
    }
    return summary


def per_round_ratios(samples: dict[str, list[float]], gflop: float, mm_gflop: float) -> dict:
    """The ratios within each round (its rows ran within ~a second of each other), their medians,
    and the graph / MatMul ratio in the quietest rounds (the 10 % with the fastest MatMul, at
    least 3): a loaded machine slows the small MatMul calls and the graph differently."""
    bare, matmul = np.asarray(samples[ROW_BARE]), np.asarray(samples[ROW_MATMUL])
    graph_over_matmul = (gflop / bare) / (mm_gflop / matmul)
    medians = {
        "graph_over_matmul": float(np.median(graph_over_matmul)),
        "predict_over_bare": float(np.median(np.asarray(samples[ROW_PREDICT]) / bare)),
    }
    if ROW_NODE in samples:
        medians["node_over_bare"] = float(np.median(np.asarray(samples[ROW_NODE]) / bare))
    quiet = np.argsort(matmul)[: max(3, len(matmul) // 10)]
    return {
        "medians": medians,
        "quiet_rounds": int(len(quiet)),
        "quiet_graph_gflops": float(np.median(gflop / (bare[quiet] * 1e-3))),
        "quiet_matmul_gflops": float(np.median(mm_gflop / (matmul[quiet] * 1e-3))),
        "quiet_graph_over_matmul": float(np.median(graph_over_matmul[quiet])),
    }


# The alternatives each default was chosen against (OnnxRuntimeBackend keyword -> value).
OPTION_VARIANTS = {
    "default (threads per core, no spinning, fused, ORT_ENABLE_ALL, sequential)": {},
    "allow_spinning=True": {"allow_spinning": True},
    "allow_spinning=True, spin_duration_us=100": {"allow_spinning": True, "spin_duration_us": 100},
    "intra_op_threads=1": {"intra_op_threads": 1},
    "fuse_vit=False": {"fuse_vit": False},
    "graph_optimization='extended'": {"graph_optimization": "extended"},
    "inter_op_threads=2 (parallel executor)": {"inter_op_threads": 2},
}


def option_sweep(onnx_path: Path, cpu: dict, inputs: dict, budget_s: float) -> dict:
    """Each session option against the default, interleaved: wall p50, p50 / default p50 and the
    process CPU time per inference (robust to other processes' load; spinning shows up in it)."""
    from min2real.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    backends = {name: OnnxRuntimeBackend(onnx_path, **{**cpu, **change}) for name, change in OPTION_VARIANTS.items()}
    cpu_ms: dict[str, list[float]] = {name: [] for name in backends}

    def timed(name: str) -> float:
        wall, process = time.perf_counter(), time.process_time()
        backends[name].infer(inputs)
        cpu_ms[name].append((time.process_time() - process) * 1e3)
        return (time.perf_counter() - wall) * 1e3

    rows = {name: (lambda name=name: timed(name)) for name in backends}
    for function in rows.values():
        function()
    load_before = os.getloadavg()[0]
    samples, rounds = _interleave(rows, budget_s)
    results = {name: _percentiles(values) for name, values in samples.items()}
    default = results[next(iter(OPTION_VARIANTS))]["p50_ms"]
    for name, values in results.items():
        values["over_default"] = values["p50_ms"] / default
        values["cpu_p50_ms"] = float(np.median(cpu_ms[name][1:]))
    return {"rounds": rounds, "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)], **results}


def torch_phase(domain: str, tiny: bool, contract, bare, inputs: dict, budget_s: float) -> dict:
    """torch eager CPU against ONNX Runtime bare inference (its own interleaved phase)."""
    import torch

    from min2real.contract import INPUT_NAMES
    from min2real.models.model import build_model
    from min2real.models.variants import variant_config

    torch.manual_seed(0)
    module = build_model(variant_config("min2real", tiny=tiny), contract).eval().deploy(domain)
    torch_args = [torch.from_numpy(inputs[name].copy()) for name in INPUT_NAMES]

    def eager():
        with torch.inference_mode():
            module(*torch_args)

    rows = {"torch eager CPU": lambda: _timed_ms(eager), ROW_BARE: lambda: _timed_ms(lambda: bare.infer(inputs))}
    for function in rows.values():
        function()
    samples, rounds = _interleave(rows, budget_s)
    results = {name: _percentiles(values) for name, values in samples.items()}
    results["onnxruntime_over_torch_p50"] = results[ROW_BARE]["p50_ms"] / results["torch eager CPU"]["p50_ms"]
    results["rounds"] = rounds
    return results


def _cuda_timed_ms(torch, function) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    function()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3


def gpu_phase(onnx_path: Path, domain: str, tiny: bool, contract, inputs: dict, warmup: int, budget_s: float) -> dict:
    """torch eager CUDA, ONNX Runtime CUDA and TensorRT fp16 against each other, where a GPU (and
    TensorRT) exist; otherwise each row says why it is not available here."""
    import onnxruntime
    import torch

    from min2real.contract import INPUT_NAMES
    from min2real.models.model import build_model
    from min2real.models.variants import variant_config
    from min2real.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    rows: dict = {}
    notes: dict[str, str] = {}
    closers = []
    if torch.cuda.is_available():
        torch.manual_seed(0)
        module = build_model(variant_config("min2real", tiny=tiny), contract).eval().deploy(domain).cuda()
        args_cuda = [torch.from_numpy(inputs[name].copy()).cuda() for name in INPUT_NAMES]

        def eager_cuda():
            with torch.inference_mode():
                module(*args_cuda)

        rows["torch eager CUDA"] = lambda: _cuda_timed_ms(torch, eager_cuda)
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
            rows["ONNX Runtime CUDA"] = lambda: _timed_ms(lambda: ort_cuda.infer(inputs))
    else:
        notes["ONNX Runtime CUDA"] = (
            f"not available here: onnxruntime providers are {onnxruntime.get_available_providers()} "
            "(needs onnxruntime-gpu)"
        )
    try:
        import tensorrt

        if not torch.cuda.is_available():
            raise ImportError("no CUDA GPU")
    except ImportError as error:
        notes["TensorRT fp16"] = f"not available here: {error}"
    else:
        from min2real.runtime.backends.tensorrt_backend import TensorRTBackend
        from min2real.runtime.engine_build import build_engine
        from min2real.runtime.engine_precision import strong_typing_only

        graph = onnx_path
        if strong_typing_only(tensorrt.__version__):  # TensorRT 11: FP16 comes from an FP16 graph
            from min2real.precision.convert import quantize_onnx

            graph = quantize_onnx(onnx_path, "fp16", onnx_path.with_suffix(".fp16.onnx")).path
        built = build_engine(graph, "fp16", cache_dir=onnx_path.parent)
        print(built.summary())
        engine = TensorRTBackend(built.engine_path, warmup=warmup)
        closers.append(engine.close)
        rows["TensorRT fp16"] = lambda: _timed_ms(lambda: engine.infer(inputs))
    results: dict = {"not_available": notes}
    if rows:
        for function in rows.values():
            for _ in range(max(1, warmup)):
                function()
        samples, rounds = _interleave(rows, budget_s)
        results.update({name: _percentiles(values) for name, values in samples.items()})
        results["rounds"] = rounds
        results["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    for close in closers:
        close()
    return results


def print_summary(summary: dict) -> None:
    config, results, ratios = summary["config"], summary["results"], summary["ratios"]
    threads = config["backend_options"]["intra_op_threads"] or "default"
    print(
        f"\nmin2real {config['domain']} graph ({config['graph_gflop']:.1f} GFLOP), camera {config['camera'][0]}x"
        f"{config['camera'][1]}, DINOv2 input {config['dino_input'][0]}x{config['dino_input'][1]}, batch 1, "
        f"{config['rounds']} interleaved rounds; onnxruntime {config['onnxruntime']}, intra-op threads {threads} "
        f"of {config['cpu_count']} CPUs, spinning {config['backend_options']['allow_spinning']}; "
        f"1-min load average {config['load_average_1min'][0]:.2f} -> {config['load_average_1min'][1]:.2f}"
    )
    print(f"{'row':40s} {'p50 ms':>9s} {'p90 ms':>9s}")
    for name, values in results.items():
        print(f"{name:40s} {values['p50_ms']:9.2f} {values['p90_ms']:9.2f}")
    for name, note in summary["notes"].items():
        print(f"{name:40s} {note}")
    rates = summary["rates_gflops"]
    m, k, n = config["matmul_shape"]
    lines = {
        "graph_over_matmul": f"graph {rates['graph']:.0f} GFLOP/s over MatMul {m}x{k}x{n} {rates['matmul']:.0f} GFLOP/s",
        "predict_over_bare": "policy.predict over bare inference",
        "node_over_bare": "driver_node latency over bare inference",
    }
    for key, ratio in ratios.items():
        target = TARGETS[key]
        met = ratio >= target if key == "graph_over_matmul" else ratio <= target
        sign = ">=" if key == "graph_over_matmul" else "<="
        print(f"{lines[key]:62s} {ratio:6.3f}  (target {sign} {target:.2f}: {'met' if met else 'NOT met'})")
    rounds = summary["per_round"]
    medians = ", ".join(f"{key} {value:.3f}" for key, value in rounds["medians"].items())
    print(f"per-round medians (rows of a round run within ~1 s of each other): {medians}")
    print(
        f"quietest {rounds['quiet_rounds']} rounds (fastest MatMul): graph {rounds['quiet_graph_gflops']:.0f} GFLOP/s, "
        f"MatMul {rounds['quiet_matmul_gflops']:.0f} GFLOP/s, graph / MatMul {rounds['quiet_graph_over_matmul']:.3f}"
    )
    preprocess = results[ROW_PREPROCESS]["p50_ms"]
    print(
        f"{'pre-processing p50 (target <= 5 ms)':62s} {preprocess:6.2f} ms ({'met' if preprocess <= 5 else 'NOT met'})"
    )
    if "options" in summary:
        sweep = summary["options"]
        print(
            f"\nONNX Runtime session options ({sweep['rounds']} interleaved rounds, "
            f"load average {sweep['load_average_1min'][0]:.2f} -> {sweep['load_average_1min'][1]:.2f})"
        )
        for name, values in sweep.items():
            if isinstance(values, dict):
                print(
                    f"  {name:64s} {values['p50_ms']:9.1f} ms  x{values['over_default']:.3f}  "
                    f"CPU {values['cpu_p50_ms']:7.1f} ms"
                )
    gpu = summary.get("gpu", {})
    if any(isinstance(values, dict) and "p50_ms" in values for values in gpu.values()):
        print(f"\nGPU ({gpu['device']}, {gpu['rounds']} interleaved rounds)")
    for name, values in gpu.items():
        if isinstance(values, dict) and "p50_ms" in values:
            print(f"  {name:38s} {values['p50_ms']:9.2f} {values['p90_ms']:9.2f}")
    for name, note in gpu.get("not_available", {}).items():
        print(f"  {name:38s} {note}")
    if "torch" in summary:
        phase = summary["torch"]
        print(
            f"\ntorch eager CPU {phase['torch eager CPU']['p50_ms']:.1f} ms, ONNX Runtime {phase[ROW_BARE]['p50_ms']:.1f} ms "
            f"(p50, {phase['rounds']} rounds): ONNX Runtime / torch = {phase['onnxruntime_over_torch_p50']:.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=90.0, help="seconds of interleaved timing per phase")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--domain", choices=("sim", "real"), default="real", help="'real' (the vehicle graph; default) or 'sim'"
    )
    parser.add_argument("--exporter", choices=("dynamo", "legacy"), default="legacy", help="both give the same ops")
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = its default: one per core)"
    )
    parser.add_argument("--spinning", action="store_true", help="allow_spinning=True for the main rows")
    parser.add_argument("--no-node", action="store_true", help="skip the driver_node row (no ROS environment)")
    parser.add_argument("--options", action="store_true", help="also time each session option against the default")
    parser.add_argument("--torch", action="store_true", help="also time torch eager CPU against ONNX Runtime")
    parser.add_argument("--tiny", action="store_true", help="tiny contract and model (smoke run)")
    parser.add_argument("--json", default=None, help="also write the results as JSON to this path")
    args = parser.parse_args(argv)
    summary = run(args)
    print_summary(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
