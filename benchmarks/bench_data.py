"""Data loading benchmark: samples/s per DataLoader worker for each domain at the contract's size,
against the training step it has to keep up with.

    .venv/bin/python -m benchmarks.bench_data [--frames 24] [--data DIR] [--tiny] [--no-model]

Writes a small synthetic dataset (CARLA Garage layout 1024 x 384 with LiDAR, NAVSIM layout
640 x 360) unless --data points at one, then times per domain:
  * one worker's rate: `dataset[i]` in this process (decode, crop/resize, BEV, labels), which is
    what each DataLoader worker does per sample;
  * a real DataLoader with num_workers=1 and collate_samples (adds worker IPC and batching).
Then, if min2real.models.model exists, a forward+backward of the "min2real" variant at batch 1
(random weights, this machine's device) and the number of workers that step needs.
Timings are medians on a shared machine: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TIMM_FUSED_ATTN", "0")


def _rate(dataset, count: int) -> float:
    """Samples/s of `dataset[i]` in this process over `count` samples (cycling), after a warm-up."""
    dataset[0]
    start = time.perf_counter()
    for index in range(count):
        dataset[index % len(dataset)]
    return count / (time.perf_counter() - start)


def _loader_rate(dataset, count: int, batch: int = 8) -> float:
    from torch.utils.data import DataLoader

    from min2real.data import collate_samples, worker_init_fn

    loader = DataLoader(
        dataset, batch_size=batch, collate_fn=collate_samples, num_workers=1, worker_init_fn=worker_init_fn
    )
    seen, start = 0, None
    for batch_data in loader:
        if start is None:  # skip the worker start-up and the first batch
            start = time.perf_counter()
            continue
        seen += len(batch_data.get("image", ()))
        if seen >= count:
            break
    return seen / (time.perf_counter() - start) if start and seen else float("nan")


def _train_step_s(contract, repeats: int = 3) -> float | None:
    if importlib.util.find_spec("min2real.models.model") is None:
        return None
    import torch

    from min2real import contract as C
    from min2real.models.model import build_model
    from min2real.models.variants import variant_config

    model = build_model(variant_config("min2real"), contract)
    model.train()
    inputs = {name: torch.zeros(shape) for name, shape in contract.input_shapes(1).items()}
    inputs[C.INPUT_COMMAND][:, C.COMMAND_STRAIGHT] = 1.0
    domain = torch.tensor([C.DOMAIN_SIM])
    parameters = [p for p in model.parameters() if p.requires_grad]

    def step():
        outputs = model(inputs, domain)
        loss = sum(value.float().sum() for key, value in outputs.items() if value.requires_grad)
        loss.backward()
        for parameter in parameters:
            parameter.grad = None

    step()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24, help="labelled frames per domain to generate")
    parser.add_argument("--data", default=None, help="an existing dataset folder (carla/ and navsim/ as synth writes)")
    parser.add_argument("--samples", type=int, default=40, help="samples timed per measurement")
    parser.add_argument("--tiny", action="store_true", help="tiny contract and images")
    parser.add_argument("--no-model", action="store_true", help="skip the training step measurement")
    args = parser.parse_args(argv)

    import cv2

    from min2real import contract as C
    from min2real.data import CarlaGarageDataset, NavsimDataset
    from min2real.data.synthetic import write_synthetic_dataset

    cv2.setNumThreads(1)  # one worker = one core
    contract = C.TINY_CONTRACT if args.tiny else C.DEFAULT_CONTRACT
    with tempfile.TemporaryDirectory(prefix="min2real-bench-data-") as scratch:
        root = Path(args.data) if args.data else Path(scratch)
        if not args.data:
            start = time.perf_counter()
            sizes = ((256, 96), (256, 144)) if args.tiny else ((1024, 384), (640, 360))
            write_synthetic_dataset(
                root,
                seed=0,
                frames=args.frames,
                routes=1,
                sim_image_size=sizes[0],
                real_image_size=sizes[1],
                contract=contract,
            )
            print(f"generated {args.frames} labelled frames per domain in {time.perf_counter() - start:.1f} s")
        datasets = {
            "sim (CARLA Garage, 1024x384 jpg + laz)": CarlaGarageDataset([root / "carla"], contract),
            "real (NAVSIM, 640x360 jpg, LiDAR zeroed)": NavsimDataset(root / "navsim", "trainval", contract),
        }
        print(
            f"contract: camera {contract.camera_width}x{contract.camera_height}, BEV {contract.bev_num_channels}x"
            f"{contract.bev_size_px}x{contract.bev_size_px}"
        )
        rates = {}
        for name, dataset in datasets.items():
            rate = _rate(dataset, args.samples)
            loader = _loader_rate(dataset, args.samples)
            rates[name] = rate
            through = (
                f"{loader:.1f} samples/s"
                if loader == loader
                else f"n/a ({len(dataset)} samples: fewer than two batches; generate more --frames)"
            )
            print(
                f"{name} ({len(dataset)} samples): {rate:.1f} samples/s per worker in-process, {through} through a "
                f"1-worker DataLoader (batch 8, collate_samples)"
            )
    if args.no_model:
        return 0
    step_s = _train_step_s(contract)
    if step_s is None:
        print("training step: unavailable (min2real.models.model is not importable)")
        return 0
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    slowest = min(rates.values())
    print(
        f"training step (min2real variant, forward+backward, batch 1, random weights, {device}): {1e3 * step_s:.0f} ms "
        f"= {1 / step_s:.2f} samples/s"
    )
    print(
        f"workers needed to keep up at batch B: ceil(B / step_s / {slowest:.1f}) -> batch 1: "
        f"{math.ceil(1 / step_s / slowest)}; one worker supplies {slowest * step_s:.1f}x what this step consumes"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
