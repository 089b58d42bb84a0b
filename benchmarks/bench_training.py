"""Training throughput of a recipe (default: the bundled model's, training/bundled.yaml), the
previous data path and the current one side by side in one run.

    python -m benchmarks.bench_training [--config training/bundled.yaml] [--steps 40] [--repeats 2]

"before": every sample decoded from its files when drawn (gzip JSON measurements, JPEG, LAZ, BEV),
the conv layers in the default layout and the frozen extractor's backward pass run for every
sample. "after": the recipe as written (decoded-sample cache, channels-last layout) and the
extractor's backward only where the adapter needs it (the model's default). The two alternate
`--repeats` times so load from other processes hits both alike. Per path it prints steps/s (wall
clock), the CPU time per step of this process, and the data pipeline's share of a step (time
spent waiting for the next batch), then the step's parts for the current path: data, adapter,
extractor, the other model parts (LiDAR, fusion, heads, discriminator), losses, backward,
optimiser. Needs the recipe's data (the commands at the top of the recipe); the cache is built
before timing (its one-off cost is printed).

CUDA: the trainer runs AMP (train.amp) and pinned-memory loaders there; this benchmark times the
CPU path only (`--device cpu`), as the recipe trains.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from collections import defaultdict
from pathlib import Path

import torch

from min2real.contract import INPUT_LIDAR_BEV, SAMPLE_DOMAIN
from min2real.models.model import build_model
from min2real.training.config import TrainConfig
from min2real.training.distributed import DistributedContext, configure_determinism, seed_everything
from min2real.training.loaders import build_datasets, build_train_sampler, make_train_loader, model_inputs
from min2real.training.losses import compute_losses
from min2real.training.trainer import build_optimizer, drop_sim_lidar

PARTS = ("adapter", "image_backbone", "lidar_encoder", "measurement_encoder", "fusion", "waypoint_head")
PARTS += ("steer_head", "target_speed_head", "discriminator")


def path_config(config: TrainConfig, current: bool) -> TrainConfig:
    if current:
        return config
    data = dataclasses.replace(config.data, cache_dir="")
    train = dataclasses.replace(config.train, channels_last=False)
    return dataclasses.replace(config, data=data, train=train)


class PartTimer:
    """Forward wall time of each named model part (hooks), in seconds."""

    def __init__(self, model) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._start: dict[str, float] = {}
        for name in PARTS:
            module = getattr(model, name, None)
            if module is not None:
                module.register_forward_pre_hook(lambda *_, n=name: self._start.__setitem__(n, time.perf_counter()))
                module.register_forward_hook(lambda *_, n=name: self._stop(n))

    def _stop(self, name: str) -> None:
        self.seconds[name] += time.perf_counter() - self._start[name]


def run_path(config: TrainConfig, current: bool, steps: int, warmup: int) -> dict:
    config = path_config(config, current)
    cfg = config.train
    torch.set_num_threads(cfg.num_threads or torch.get_num_threads())
    configure_determinism(cfg.deterministic)
    seed_everything(cfg.seed)
    contract, model_config = config.build_contract(), config.model_config()
    model = build_model(model_config, contract)
    model.frozen_features_without_grad = current
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    train_set, _ = build_datasets(config, contract, model_config)
    context = DistributedContext()
    sampler = build_train_sampler(train_set, config, context)
    loader = make_train_loader(train_set, sampler, config, context, 0, 0, torch.device("cpu"))
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    generator = torch.Generator()
    parts = PartTimer(model)
    totals: dict[str, float] = defaultdict(float)
    batches = iter(loader)
    for step in range(warmup + steps):
        if step == warmup:
            totals.clear()
            parts.seconds.clear()
        wall, cpu = time.perf_counter(), time.process_time()
        batch = next(batches)
        t_data, c_data = time.perf_counter(), time.process_time()
        inputs = model_inputs(batch, cfg.channels_last)
        if cfg.lidar_dropout > 0 and INPUT_LIDAR_BEV in inputs:
            generator.manual_seed(step)
            inputs[INPUT_LIDAR_BEV] = drop_sim_lidar(
                inputs[INPUT_LIDAR_BEV], batch[SAMPLE_DOMAIN], cfg.lidar_dropout, generator
            )
        outputs = model(inputs, batch[SAMPLE_DOMAIN])
        t_forward = time.perf_counter()
        losses = compute_losses(outputs, batch, config.loss)
        t_loss = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        t_backward = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm or float("inf"))
        optimizer.step()
        end, c_end = time.perf_counter(), time.process_time()
        totals["data"] += t_data - wall
        totals["forward"] += t_forward - t_data
        totals["losses"] += t_loss - t_forward
        totals["backward"] += t_backward - t_loss
        totals["optimizer"] += end - t_backward
        totals["step"] += end - wall
        totals["cpu_step"] += c_end - cpu
        totals["cpu_data"] += c_data - cpu
    return {"totals": dict(totals), "parts": dict(parts.seconds), "steps": steps}


def merge(runs: list[dict]) -> dict:
    merged: dict = {"totals": defaultdict(float), "parts": defaultdict(float), "steps": 0}
    for run in runs:
        merged["steps"] += run["steps"]
        for key in ("totals", "parts"):
            for name, value in run[key].items():
                merged[key][name] += value
    return merged


def report(results: dict[str, dict]) -> str:
    lines = [
        f"{'path':<8} {'steps/s':>8} {'step ms':>8} {'CPU ms/step':>12} {'data ms':>8} {'data share':>11} "
        f"{'data share (CPU)':>17}"
    ]
    for name, result in results.items():
        t, n = result["totals"], result["steps"]
        lines.append(
            f"{name:<8} {n / t['step']:>8.2f} {1e3 * t['step'] / n:>8.1f} {1e3 * t['cpu_step'] / n:>12.1f} "
            f"{1e3 * t['data'] / n:>8.1f} {100 * t['data'] / t['step']:>10.1f}% {100 * t['cpu_data'] / t['cpu_step']:>16.1f}%"
        )
    before, after = results["before"]["totals"], results["after"]["totals"]
    lines.append(
        f"speed-up per step: {before['step'] / after['step']:.2f}x wall clock, "
        f"{before['cpu_step'] / after['cpu_step']:.2f}x CPU time"
    )
    for name, result in results.items():
        t, n = result["totals"], result["steps"]
        parts = ", ".join(f"{part} {1e3 * seconds / n:.1f}" for part, seconds in result["parts"].items())
        lines.append(
            f"{name} step parts (ms, wall): data {1e3 * t['data'] / n:.1f} | forward {1e3 * t['forward'] / n:.1f} "
            f"({parts}) | losses {1e3 * t['losses'] / n:.1f} | backward {1e3 * t['backward'] / n:.1f} | "
            f"optimizer {1e3 * t['optimizer'] / n:.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="training/bundled.yaml")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per path and repeat")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="before/after alternations")
    args = parser.parse_args(argv)
    config = TrainConfig.load(args.config, ["train.device=cpu"])
    if not config.data.cache_dir:
        parser.error(f"{args.config} names no data.cache_dir: its current path is the uncached one")
    start = time.perf_counter()
    model_config = config.model_config()
    build_datasets(config, config.build_contract(), model_config)  # builds the cache when absent
    cache_s = time.perf_counter() - start
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for _ in range(args.repeats):
        runs["before"].append(run_path(config, False, args.steps, args.warmup))
        runs["after"].append(run_path(config, True, args.steps, args.warmup))
    print(
        f"training step, {args.config}: batch {config.train.batch_size}, {config.train.num_threads or 'default'} "
        f"thread(s), {config.train.num_workers} loader worker(s); CPU {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}; {args.repeats} x {args.steps} steps per path"
    )
    print(f"data.cache_dir {Path(config.data.cache_dir)}: ready in {cache_s:.1f} s (built once per data and contract)")
    print(report({name: merge(result) for name, result in runs.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
