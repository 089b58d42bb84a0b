"""The domain-shift monitor's cost: the same graph with and without its outputs, side by side.

    .venv/bin/python -m benchmarks.bench_monitor [--model models/bundled/min2real_tiny_sim.onnx] [--rounds 30]

Attaches the monitor (min2real.monitor.attach: OOD score, and a discriminator MLP of the training
size (D -> 256 -> 256 -> 1, random weights: its cost does not depend on them) for the domain logit)
to `--model`, statistics over random-input frames (values do not change the cost), then times
OnnxRuntimeBackend.infer (the product path at its defaults) on both graphs, interleaved round by
round so load changes on a shared machine hit both alike, and prints the median per-frame times
and the monitor's share, against the target of < 3 % of the graph's time. The bundled model is
the worst case for that share: its ~18 monitor nodes cost ONNX Runtime a few microseconds each
whatever their size, the score's whitening grows with D^2 (E + 18 + 32 values: 146 here, 434 for
ViT-S: ~0.4 MFLOP against the real-size graph's ~30 GFLOP), the summaries with the tokens and the
eighth of the image's pixels they sample. On a machine others load, repeat the run: the share
moves by a few points between runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_SHARE = 0.03
DISCRIMINATOR_HIDDEN = 256  # ModelConfig.discriminator_hidden's default


def _median_ms(backend, inputs, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend.infer(inputs)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    from min2real.contract import example_inputs
    from min2real.monitor.attach import attach_monitor
    from min2real.monitor.graph import feature_dim, locate_features
    from min2real.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from min2real.runtime.onnx_metadata import read_onnx_metadata
    from min2real_ros.cli.demo import bundled_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(bundled_model_path()), help="exported ONNX without monitor outputs")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds")
    parser.add_argument("--repeats", type=int, default=20, help="inferences per graph per round")
    args = parser.parse_args(argv)

    import onnx

    metadata = read_onnx_metadata(args.model)
    names = set(metadata.input_shapes)
    frames = [
        {k: v for k, v in example_inputs(metadata.contract, 1, seed=seed).items() if k in names} for seed in range(48)
    ]
    dim = feature_dim(onnx.load(args.model), locate_features(onnx.load(args.model)))
    rng = np.random.default_rng(0)
    hidden = DISCRIMINATOR_HIDDEN
    discriminator = [
        (rng.normal(0, 0.05, (hidden, dim)), np.zeros(hidden)),
        (rng.normal(0, 0.05, (hidden, hidden)), np.zeros(hidden)),
        (rng.normal(0, 0.05, (1, hidden)), np.zeros(1)),
    ]
    with tempfile.TemporaryDirectory() as folder:
        monitored = Path(folder) / "monitored.onnx"
        attach_monitor(
            args.model,
            monitored,
            train_inputs=frames[:24],
            heldout_inputs=frames[24:],
            provenance={"statistics": {"data": "random inputs (benchmark)"}},
            discriminator=[(w.astype(np.float32), b.astype(np.float32)) for w, b in discriminator],
        )
        plain_backend, monitor_backend = OnnxRuntimeBackend(args.model), OnnxRuntimeBackend(monitored)
        inputs = frames[0]
        plain, with_monitor = [], []
        for _ in range(args.rounds):
            plain.append(_median_ms(plain_backend, inputs, args.repeats))
            with_monitor.append(_median_ms(monitor_backend, inputs, args.repeats))
    plain_ms, monitor_ms = statistics.median(plain), statistics.median(with_monitor)
    share = (monitor_ms - plain_ms) / plain_ms
    print(
        f"model {args.model} (features D = {dim}), {args.rounds} rounds x {args.repeats} inferences, ONNX Runtime CPU"
    )
    print(f"  graph without monitor   {plain_ms:8.3f} ms per frame (median)")
    print(f"  graph with monitor      {monitor_ms:8.3f} ms per frame (OOD score + domain logit)")
    print(f"  monitor share           {share:+8.2%} of the graph's time (target < {TARGET_SHARE:.0%})")
    return 0 if share < TARGET_SHARE else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
