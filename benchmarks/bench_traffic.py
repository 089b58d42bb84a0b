"""Closed-loop traffic benchmark: what moving traffic costs a direct-mode route, side by side.

    .venv/bin/python -m benchmarks.bench_traffic [--routes 3] [--ticks 300] [--model FILE] [--domain sim]

Drives the first N routes of synth-longest6 with the bundled model in direct mode (render camera +
LiDAR, driver and controller mirrors, vehicle, judge) twice per route, interleaved: the empty world
(synth-longest6-empty) and the same road with its traffic (actors, lights, pedestrians stepped
every tick, drawn in the camera and hit by the LiDAR). Each run is the same number of ticks (the
route's first `--ticks`, or until the judge ends it), so the ratio is per tick, the cost of the
world and not of a route that takes longer because the car waits at a red light; each world runs
--repeats times, alternating, and the fastest run counts (a shared machine's load only adds). The
issue's budget: the world with traffic slows a route down by at most 1.5x. Read the ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time


def _ms_per_tick(spec, policy, domain: str, ticks: int) -> float:
    from min2real.evaluation.closed_loop import TICK_S, ClosedLoopSimulator, DirectPolicyStack
    from min2real.evaluation.closed_loop.run import rendering_camera

    use_lidar = domain == "sim"
    sim = ClosedLoopSimulator(spec.scenario(), domain, rendering_camera(policy.contract, domain), use_lidar)
    stack = DirectPolicyStack(policy, TICK_S, use_lidar)
    stack.start(sim)
    start = time.perf_counter()
    count = 0
    while not sim.done and count < ticks:
        output = stack.control(sim.observe())
        if output.control is None:
            break
        sim.step(output.control)
        count += 1
    return 1e3 * (time.perf_counter() - start) / max(count, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", type=int, default=3)
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--model", default="models/bundled/min2real_tiny_sim.onnx")
    parser.add_argument("--domain", choices=("sim", "real"), default="sim")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per world; the fastest counts")
    args = parser.parse_args(argv)

    from min2real.evaluation.closed_loop import route_set
    from min2real.runtime.policy import load_policy

    policy = load_policy(args.model, domain=args.domain)
    ratios = []
    print(f"{'route':<32} {'empty ms/tick':>14} {'traffic ms/tick':>16} {'ratio':>6}")
    for spec in route_set(f"synth-longest6:{args.routes}")[1]:
        times: dict[str, list[float]] = {"empty": [], "traffic": []}
        for _ in range(args.repeats):  # alternating, the fastest of each: least disturbed by other load
            times["empty"].append(_ms_per_tick(dataclasses.replace(spec, traffic=0.0), policy, args.domain, args.ticks))
            times["traffic"].append(_ms_per_tick(spec, policy, args.domain, args.ticks))
        empty, busy = min(times["empty"]), min(times["traffic"])
        ratios.append(busy / empty)
        print(f"{spec.name:<32} {empty:14.2f} {busy:16.2f} {busy / empty:6.2f}", flush=True)
    print(f"traffic / empty, median over {len(ratios)} routes: {statistics.median(ratios):.2f}x (budget 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
