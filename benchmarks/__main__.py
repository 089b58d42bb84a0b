"""`python -m benchmarks [NAME ...] [-- ARGS]`: run the benchmarks (all but `training` by default), each printing
its own side-by-side timings and ratios. `make bench` runs them all at their defaults.

    data       DataLoader samples/s per worker and domain vs the training step time
    inference  CPU inference at its floor: graph GFLOP/s over ONNX Runtime's MatMul rate, policy.predict
               and the driver node (own process, over DDS) over bare inference, pre-processing time
    nodes      message conversion cost against the cheapest numpy/cv2 operation
    monitor    the domain-shift monitor's outputs against the graph without them
    training   the bundled recipe's training step, previous data path vs current (steps/s, data share);
               needs the recipe's data, so it runs only when named: `python -m benchmarks training`
    traffic    a direct-mode closed-loop tick with moving traffic over the same tick in the empty world
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "data": "benchmarks.bench_data",
    "inference": "benchmarks.bench_inference",
    "nodes": "benchmarks.bench_nodes",
    "monitor": "benchmarks.bench_monitor",
    "training": "benchmarks.bench_training",
    "traffic": "benchmarks.bench_traffic",
}
BY_DEFAULT = ("data", "inference", "nodes", "monitor", "traffic")


def main(argv: list[str]) -> int:
    names, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; expected some of {sorted(BENCHMARKS)}", file=sys.stderr)
        return 2
    status = 0
    for name in names or list(BY_DEFAULT):
        print(f"\n===== benchmark: {name} =====", flush=True)
        status |= int(importlib.import_module(BENCHMARKS[name]).main(extra) or 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
