"""The domain-shift monitor's cost: its subgraph timed alone, side by side with the graph it watches.

    .venv/bin/python -m benchmarks.bench_monitor [--model models/bundled/min2real_tiny_sim.onnx] \\
        [--compare OLD_MONITOR.onnx ...] [--rounds 3] [--runs 300]
    .venv/bin/python -m benchmarks.bench_monitor --real-size [--rounds 3] [--runs 20]

`--real-size` builds the real-size Min2Real network instead (ViT-S/14 DINOv2 slot, default contract,
random weights, as benchmarks/bench_inference.py) and exports its sim graph (with the V2R adapter)
to a temporary folder, so the monitor's share is also known on the graph a vehicle runs.

Attaches the monitor (min2real.monitor.attach, the current recipe) to `--model`, statistics over
random-input frames (values do not change the cost), once with the OOD score only and once with a
discriminator MLP of the training size (D -> 256 -> 256 -> 1, random weights) for the domain logit.
From each monitored graph, and from each `--compare` graph (a monitor graph built by an earlier
recipe, e.g. `git show <commit>:models/bundled/min2real_tiny_sim_monitor.onnx > old.onnx`), it cuts
the monitor's subgraph (the camera image and the first ViT block's tokens [and the pooled features]
-> ood_score [and domain_logit]) and times it in an ONNX Runtime session with the product's options
(min2real.runtime.backends.onnxruntime_backend defaults: one thread per core, no spinning, all
graph optimisations), less a trivial one-node session's per-call overhead, against the plain graph
through OnnxRuntimeBackend.infer, and the whole monitored graph too. Every session is called in
turn, call by call, so load changes on a shared machine hit them alike; per round the 10th
percentile of each, and the monitor's share = subgraph / plain graph. Prints the load average, each
round and the median share over the rounds, the ratio to each `--compare` graph, and exits 1 when
the OOD score's share is not under the target of 3 %.

Why the subgraph alone: on the bundled graph (about 2 ms on 2 cores) the whole-graph difference moves
by several points between rounds on a loaded machine; the subgraph's time (its image-sized passes
and the second thread's wake-ups, not per-node overhead: 17 chained tiny ops cost 4 us) is steadier.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

TARGET_SHARE = 0.03
DISCRIMINATOR_HIDDEN = 256  # ModelConfig.discriminator_hidden's default


def _session(ort, model_bytes: bytes):
    from min2real.runtime.backends.onnxruntime_backend import session_options

    options = session_options(
        ort, intra_op_threads=0, inter_op_threads=1, allow_spinning=False, graph_optimization="all"
    )
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _trivial_graph() -> bytes:
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "trivial", [value], [])
    graph.output.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1]))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model.SerializeToString()


def monitor_subgraph(path: Path, folder: Path, image: np.ndarray) -> tuple[bytes, dict[str, np.ndarray], list[str]]:
    """The monitor's subgraph of the monitor graph at `path` (its inputs: the image, the first block's
    tokens, and the pooled features when it has the domain logit), inputs to time it with, its outputs."""
    import onnx

    from min2real.contract import INPUT_IMAGE, OUTPUT_DOMAIN_LOGIT, OUTPUT_OOD_SCORE
    from min2real.monitor.graph import _dims, feature_dim, locate_block_tokens, locate_features

    model = onnx.load(str(path))
    outputs = [o.name for o in model.graph.output if o.name in (OUTPUT_OOD_SCORE, OUTPUT_DOMAIN_LOGIT)]
    tokens = locate_block_tokens(model)
    rng = np.random.default_rng(0)
    feeds = {INPUT_IMAGE: image, tokens: rng.normal(size=(1, *(_dims(model, tokens) or ())[1:])).astype(np.float32)}
    if OUTPUT_DOMAIN_LOGIT in outputs:
        features = locate_features(model)
        feeds[features] = rng.normal(size=(1, feature_dim(model, features))).astype(np.float32)
    cut = folder / f"{path.stem}.subgraph.onnx"
    onnx.utils.extract_model(str(path), str(cut), list(feeds), outputs)
    return cut.read_bytes(), feeds, outputs


def time_rounds(calls: dict[str, Callable[[], object]], rounds: int, runs: int) -> list[dict[str, float]]:
    """Per round, the 10th percentile (us) of each call, the calls made in turn `runs` times, in a new
    random order each time (what runs just before a call, e.g. a whole graph that evicts the caches,
    changes its time by tens of microseconds)."""
    order, results = list(calls), []
    rng = random.Random(0)
    for _ in range(rounds):
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(runs):
            rng.shuffle(order)
            for name in order:
                call = calls[name]
                start = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - start) * 1e6)
        results.append({name: float(np.percentile(values, 10)) for name, values in times.items()})
    return results


def main(argv: list[str] | None = None) -> int:
    from min2real_ros.cli.demo import bundled_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(bundled_model_path()), help="exported ONNX without monitor outputs")
    parser.add_argument("--compare", action="append", default=[], help="a monitor graph of an earlier recipe")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (each: every session called in turn)")
    parser.add_argument("--runs", type=int, help="calls per session per round (default 300; 20 with --real-size)")
    parser.add_argument(
        "--real-size", action="store_true", help="time it on the real-size network's sim graph (exported here)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="min2real-bench-monitor-") as export_folder:
        if args.real_size:
            args.model = str(export_real_size_sim_graph(Path(export_folder)))
        args.runs = args.runs or (20 if args.real_size else 300)
        return measure(args)


def export_real_size_sim_graph(folder: Path) -> Path:
    """The real-size Min2Real network (random weights, default contract) exported as its sim graph."""
    import torch

    from min2real.contract import DEFAULT_CONTRACT
    from min2real.export import export_model
    from min2real.models.model import build_model
    from min2real.models.variants import variant_config

    torch.manual_seed(0)
    model = build_model(variant_config("min2real"), DEFAULT_CONTRACT).eval()
    path = folder / "min2real_sim.onnx"
    print(export_model(model, DEFAULT_CONTRACT, "sim", path, num_random=1).summary())
    return path


def measure(args: argparse.Namespace) -> int:
    import onnx
    import onnxruntime as ort

    from min2real.contract import example_inputs
    from min2real.monitor.attach import attach_monitor
    from min2real.monitor.graph import feature_dim, locate_features
    from min2real.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from min2real.runtime.onnx_metadata import read_onnx_metadata

    metadata = read_onnx_metadata(args.model)
    names = set(metadata.input_shapes)
    frames = [
        {k: v for k, v in example_inputs(metadata.contract, 1, seed=seed).items() if k in names} for seed in range(48)
    ]
    plain_model = onnx.load(args.model)
    dim = feature_dim(plain_model, locate_features(plain_model))
    rng = np.random.default_rng(0)
    sizes = [(DISCRIMINATOR_HIDDEN, dim), (DISCRIMINATOR_HIDDEN, DISCRIMINATOR_HIDDEN), (1, DISCRIMINATOR_HIDDEN)]
    discriminator = [(rng.normal(0, 0.05, size).astype(np.float32), np.zeros(size[0], np.float32)) for size in sizes]
    inputs = frames[0]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        graphs = {"score": folder / "score.onnx", "score + logit": folder / "score_logit.onnx"}
        for label, path in graphs.items():
            attach_monitor(
                args.model,
                path,
                train_inputs=frames[:24],
                heldout_inputs=frames[24:],
                provenance={"statistics": {"data": "random inputs (benchmark)"}},
                discriminator=discriminator if "logit" in label else None,
            )
        graphs.update({f"compare {index}": Path(path) for index, path in enumerate(args.compare, 1)})
        plain = OnnxRuntimeBackend(args.model)
        trivial = _session(ort, _trivial_graph())
        calls: dict[str, Callable[[], object]] = {
            "trivial": lambda: trivial.run(None, {"x": np.zeros(1, np.float32)}),
            "plain graph": lambda: plain.infer(inputs),
        }
        wholes = {"score": OnnxRuntimeBackend(graphs["score"])}
        wholes.update(
            {label: OnnxRuntimeBackend(path) for label, path in graphs.items() if label.startswith("compare")}
        )
        for label, backend in wholes.items():
            calls[f"graph + {label}"] = lambda backend=backend: backend.infer(inputs)
        for label, path in graphs.items():
            cut, feeds, outputs = monitor_subgraph(path, folder, inputs["image"])
            session = _session(ort, cut)
            calls[label] = lambda session=session, feeds=feeds, outputs=outputs: session.run(outputs, feeds)
        rounds = time_rounds(calls, args.rounds, args.runs)
    load_after = os.getloadavg()

    def share(result: dict[str, float], label: str) -> float:
        return (result[label] - result["trivial"]) / result["plain graph"]

    def whole(result: dict[str, float], label: str) -> float:
        return result[f"graph + {label}"] / result["plain graph"] - 1.0

    print(
        f"model {args.model} (features D = {dim}); ONNX Runtime CPU, {args.rounds} rounds x {args.runs} calls per "
        f"session in random order, 10th percentiles; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after ({os.cpu_count()} CPUs)"
    )
    for index, result in enumerate(rounds, 1):
        parts = ", ".join(
            f"{label} {result[label] - result['trivial']:.1f} us ({share(result, label):.2%})" for label in graphs
        )
        totals = ", ".join(f"{label} {whole(result, label):+.2%}" for label in wholes)
        print(
            f"  round {index}: plain graph {result['plain graph']:.0f} us; subgraphs alone: {parts}; whole graphs: {totals}"
        )
    shares = {label: statistics.median(share(result, label) for result in rounds) for label in graphs}
    for label, path in graphs.items():
        total = f", whole graph {statistics.median(whole(r, label) for r in rounds):+.2%}" if label in wholes else ""
        print(f"  {label:14s} median share {shares[label]:6.2%} of the plain graph's time{total}   ({path.name})")
    for label in graphs:
        if label.startswith("compare"):
            ratio = statistics.median(
                (result["score"] - result["trivial"]) / (result[label] - result["trivial"]) for result in rounds
            )
            print(f"  ratio score / {label} (subgraphs alone): {ratio:.2f}")
    met = shares["score"] < TARGET_SHARE
    print(f"  target: the OOD score under {TARGET_SHARE:.0%} of the graph's time: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
