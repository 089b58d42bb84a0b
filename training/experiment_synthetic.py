"""The synthetic sim-to-real experiment of docs/experiments.md.

Writes a synthetic two-domain dataset (sim: flat-coloured CARLA-layout frames with LiDAR;
real: textured, colour-cast, blurred, noisy NAVSIM-layout frames without LiDAR, on new scenery),
trains baseline, augment, min2real and mix_min2real from training/tiny.yaml with the same
budget (steps, batch, learning rate, seed), and prints a Markdown table of the validation
metrics on the target (real) domain: ADE, FDE, steering accuracy, discriminator accuracy, plus
sim-domain ADE and the turn/straight split for context.

    .venv/bin/python training/experiment_synthetic.py --out out/experiment_synthetic
    .venv/bin/python training/experiment_synthetic.py --out out/experiment_synthetic --table-only

Every run directory keeps its config, checkpoints, TensorBoard logs and metrics JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("baseline", "augment", "min2real", "mix_min2real")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "experiment_synthetic")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=250, help="optimiser steps per variant (same for all)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--train-frames", type=int, default=240, help="labelled frames per domain (training)")
    parser.add_argument("--val-frames", type=int, default=96, help="labelled frames per domain (validation)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (data seeds are fixed: train 0, val 1)")
    parser.add_argument("--num-threads", type=int, default=0, help="CPU threads (0 = torch default)")
    parser.add_argument("--table-only", action="store_true", help="only print the table of existing runs")
    return parser.parse_args(argv)


def write_data(out: Path, train_frames: int, val_frames: int) -> dict[str, dict[str, Path]]:
    from min2real.contract import TINY_CONTRACT
    from min2real.data.synthetic import write_synthetic_dataset

    roots = {}
    for split, seed, frames in (("train", 0, train_frames), ("val", 1, val_frames)):
        folder = out / "data" / split
        if not (folder / "synthetic.json").is_file():
            write_synthetic_dataset(
                folder,
                seed=seed,
                frames=frames,
                routes=4,
                sim_image_size=(512, 192),
                real_image_size=(640, 360),
                contract=TINY_CONTRACT,
            )
        roots[split] = {"sim": folder / "carla", "real": folder / "navsim"}
    return roots


def train_variant(variant: str, roots: dict, args: argparse.Namespace) -> None:
    from min2real.training.config import TrainConfig, paper_variant_overrides
    from min2real.training.trainer import train

    overrides = [
        f"data.sim_roots=[{roots['train']['sim']}]",
        f"data.real_roots=[{roots['train']['real']}]",
        f"data.val_sim_roots=[{roots['val']['sim']}]",
        f"data.val_real_roots=[{roots['val']['real']}]",
        *paper_variant_overrides(variant),
        f"train.max_steps={args.steps}",
        f"train.batch_size={args.batch_size}",
        f"train.lr={args.lr}",
        f"train.seed={args.seed}",
        f"train.num_threads={args.num_threads}",
        "train.warmup_steps=20",
        "train.val_at_start=true",
        f"train.val_interval={args.steps}",
        f"train.checkpoint_interval={args.steps}",
        "train.log_interval=20",
        "train.num_workers=0",
        "train.epochs=1000",
    ]
    config = TrainConfig.load(REPO / "training" / "tiny.yaml", overrides)
    started = time.perf_counter()
    train(config, args.out / "runs" / variant)
    print(f"{variant}: {args.steps} steps in {time.perf_counter() - started:.0f} s", flush=True)


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(out: Path, variants: list[str]) -> str:
    header = (
        "| variant | real ADE (m) | real FDE (m) | real ADE turns / straight (m) | real steer acc. | "
        "disc. acc. (real / sim) | sim ADE (m) | real ADE at init (m) |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    rows = [header]
    for variant in variants:
        records = sorted((out / "runs" / variant / "metrics").glob("step_*.json"))
        if len(records) < 2:
            rows.append(f"| {variant} | (not run) |||||||")
            continue
        init = json.loads(records[0].read_text())["metrics"]
        final = json.loads(records[-1].read_text())["metrics"]
        real, sim = final["real"], final["sim"]
        rows.append(
            f"| {variant} | {_fmt(real['ade_m'])} | {_fmt(real['fde_m'])} | "
            f"{_fmt(real['turn']['ade_m'])} / {_fmt(real['straight']['ade_m'])} | {_fmt(real.get('steer_accuracy'))} | "
            f"{_fmt(real['discriminator_accuracy'])} / {_fmt(sim['discriminator_accuracy'])} | {_fmt(sim['ade_m'])} | "
            f"{_fmt(init['real']['ade_m'])} |"
        )
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not args.table_only:
        if args.num_threads:
            import torch

            torch.set_num_threads(args.num_threads)
        roots = write_data(args.out, args.train_frames, args.val_frames)
        for variant in args.variants:
            train_variant(variant, roots, args)
    print(table(args.out, args.variants))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
