"""The synthetic sim-to-real experiment of docs/experiments.md: the paper's six Table I variants and
the Fig. 6 ablations, at equal budget, over several seeds, with the stand-in foundation model.

Every run is a full-size recipe (training/<name>.yaml, the one source of its training settings)
shrunk by `min2real.training.recipes.load_miniature`: tiny network, TINY_CONTRACT, the stand-in
extractor (models/extractor/) frozen in the DINOv2 slot, the synthetic roots below, a fixed
number of steps. Data: sim (CARLA Garage layout, LiDAR) and real-look (NAVSIM layout, no LiDAR)
drives of the training seed; validation on drives of another seed, per domain.

    nice -n 10 .venv/bin/python training/experiment_synthetic.py --out out/experiment
    .venv/bin/python training/experiment_synthetic.py --out out/experiment --table-only

Runs that finished are kept (out/experiment/runs/<recipe>/seed<k>/) and skipped when the script is
started again, so an interrupted experiment continues where it stopped. The tables (Markdown) go
to stdout and OUT/results.md, the numbers to OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RECIPES = (
    "baseline",
    "augment",
    "min2real",
    "mixdata",
    "mix_min2real",
    "full",
    "ablation_augment",
    "ablation_adapter",
    "ablation_discriminator",
    "ablation_steer_head",
    "ablation_extractor",
    "min2real_turns",
)
# Data seeds of this experiment (never the extractor's reserved seeds).
TRAIN_DATA_SEED, VAL_DATA_SEED = 20, 21
SIM_IMAGE_SIZE, REAL_IMAGE_SIZE = (256, 96), (320, 180)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "experiment")
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (>= 3 for mean/std)")
    parser.add_argument("--steps", type=int, default=200, help="optimiser steps per run (the same for all)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--train-frames", type=int, default=480, help="labelled frames per domain (training)")
    parser.add_argument("--val-frames", type=int, default=144, help="labelled frames per domain (validation)")
    parser.add_argument("--routes", type=int, default=8, help="routes (= NAVSIM logs) per domain (training)")
    parser.add_argument(
        "--num-threads", type=int, default=1, help="CPU threads per run (1 is fastest on a busy machine)"
    )
    parser.add_argument(
        "--extractor", type=Path, default=None, help="stand-in extractor file (default: the shipped one)"
    )
    parser.add_argument(
        "--closed-loop-routes",
        type=int,
        default=4,
        help="synth-longest6 routes driven per run and look (0: open loop only); the first 6 = one per town and condition",
    )
    parser.add_argument("--table-only", action="store_true", help="only print the tables of finished runs")
    return parser.parse_args(argv)


def write_data(out: Path, args: argparse.Namespace) -> dict[str, dict[str, Path]]:
    from min2real.contract import TINY_CONTRACT
    from min2real.data.synthetic import write_synthetic_dataset
    from min2real.data.synthetic.scenario import CONDITION_NAMES

    roots = {}
    plan = (
        ("train", TRAIN_DATA_SEED, args.train_frames, args.routes),
        ("val", VAL_DATA_SEED, args.val_frames, max(2, args.routes // 3)),
    )
    for split, seed, frames, routes in plan:
        folder = out / "data" / split
        if not (folder / "synthetic.json").is_file():
            started = time.perf_counter()
            write_synthetic_dataset(
                folder,
                seed=seed,
                frames=frames,
                routes=routes,
                sim_image_size=SIM_IMAGE_SIZE,
                real_image_size=REAL_IMAGE_SIZE,
                contract=TINY_CONTRACT,
                conditions=CONDITION_NAMES,  # the closed loop's six daylight / weather conditions
            )
            print(f"data {split}: seed {seed}, {frames} frames per domain in {time.perf_counter() - started:.0f} s")
        roots[split] = {"sim": folder / "carla", "real": folder / "navsim"}
    return roots


def run_dir(out: Path, recipe: str, seed: int) -> Path:
    return out / "runs" / recipe / f"seed{seed}"


def final_record(path: Path) -> dict | None:
    records = sorted((path / "metrics").glob("step_*.json"))
    if len(records) < 2:
        return None
    return json.loads(records[-1].read_text())


def train_run(recipe: str, seed: int, roots: dict, args: argparse.Namespace) -> None:
    import torch

    from min2real.training.recipes import load_miniature
    from min2real.training.trainer import train

    path = run_dir(args.out, recipe, seed)
    if final_record(path) is not None:
        return
    config = load_miniature(
        recipe,
        roots["train"],
        roots["val"],
        args.steps,
        batch_size=args.batch_size,
        seed=seed,
        lr=args.lr,
        extractor_file=args.extractor,
        overrides=[f"train.num_threads={args.num_threads}"],
    )
    started = time.perf_counter()
    torch.set_num_threads(args.num_threads)
    train(config, path)
    (path / "seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    print(f"{recipe} seed {seed}: {args.steps} steps in {time.perf_counter() - started:.0f} s", flush=True)


def closed_loop_run(recipe: str, seed: int, args: argparse.Namespace) -> None:
    """Export the run's best.pt (the selection rule's checkpoint) and drive it closed loop: the sim
    graph (V2R adapter) on sim-look routes, the real graph (no adapter, as deployed) on real-look routes."""
    import subprocess

    path = run_dir(args.out, recipe, seed)
    if not args.closed_loop_routes or final_record(path) is None:
        return
    checkpoint = path / "checkpoints" / "best.pt"
    if not checkpoint.is_file():
        checkpoint = path / "checkpoints" / "last.pt"
    minirealcli = [sys.executable, "-m", "min2real.cli"]
    for domain in ("sim", "real"):
        out = path / "closed_loop" / domain
        if (out / "results.json").is_file():
            continue
        model = path / f"model_{domain}.onnx"
        if not model.is_file():
            subprocess.run(
                [*minirealcli, "export", "--checkpoint", str(checkpoint), "--domain", domain, "--out", str(model)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        if out.exists():  # an interrupted drive: start the route set again
            import shutil

            shutil.rmtree(out)
        subprocess.run(
            [
                *minirealcli,
                "closed-loop",
                "--model",
                str(model),
                "--routes",
                str(args.closed_loop_routes),
                "--domain",
                domain,
                "--out",
                str(out),
                "--tiles",
                "0",
                "--no-progress",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    print(f"{recipe} seed {seed}: closed loop done", flush=True)


def closed_loop_scores(path: Path) -> dict[str, float | None]:
    scores: dict[str, float | None] = {}
    for domain in ("sim", "real"):
        results = path / "closed_loop" / domain / "results.json"
        if not results.is_file():
            scores[domain] = None
            continue
        routes = json.loads(results.read_text())["routes"]
        scores[domain] = sum(route["driving_score"] for route in routes) / len(routes)
    return scores


# ---- tables -------------------------------------------------------------------------------------
METRICS = {
    # column name: (domain, path into the domain's metrics)
    "real ADE": ("real", ("ade_m",)),
    "real FDE": ("real", ("fde_m",)),
    "real ADE turn": ("real", ("turn", "ade_m")),
    "real ADE straight": ("real", ("straight", "ade_m")),
    "real steer macro-F1": ("real", ("steer_macro_f1",)),
    "real steer bal. acc.": ("real", ("steer_balanced_accuracy",)),
    "disc. acc. real": ("real", ("discriminator_accuracy",)),
    "sim ADE": ("sim", ("ade_m",)),
    "sim ADE turn": ("sim", ("turn", "ade_m")),
    "sim steer macro-F1": ("sim", ("steer_macro_f1",)),
    "disc. acc. sim": ("sim", ("discriminator_accuracy",)),
}


CLOSED_LOOP = ("DS sim-look", "DS real-look")  # mean driving score over the run's closed-loop routes


def _value(record: dict, domain: str, path: tuple[str, ...]):
    node = record["metrics"].get(domain, {})
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def summarise(out: Path, recipes: list[str], seeds: list[int]) -> dict:
    summary: dict = {}
    for recipe in recipes:
        values: dict[str, list[float]] = {name: [] for name in [*METRICS, *CLOSED_LOOP]}
        done = []
        for seed in seeds:
            record = final_record(run_dir(out, recipe, seed))
            if record is None:
                continue
            done.append(seed)
            for name, (domain, path) in METRICS.items():
                value = _value(record, domain, path)
                if value is not None:
                    values[name].append(float(value))
            for domain, score in closed_loop_scores(run_dir(out, recipe, seed)).items():
                if score is not None:
                    values[f"DS {domain}-look"].append(score)
        summary[recipe] = {"seeds": done, "values": values}
    return summary


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.2f}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.2f} ± {std:.2f}"


def tables(summary: dict) -> str:
    groups = (
        (
            "Open loop, real-look validation drives (the target domain)",
            [n for n in METRICS if n.startswith(("real", "disc. acc. real"))],
        ),
        ("Open loop, sim validation drives", [n for n in METRICS if n.startswith(("sim", "disc. acc. sim"))]),
        ("Closed loop, synth-longest6 routes (driving score 0..100)", list(CLOSED_LOOP)),
    )
    lines = []
    for title, columns in groups:
        lines += [
            f"### {title}",
            "",
            "| recipe | seeds | " + " | ".join(columns) + " |",
            "|---" * (len(columns) + 2) + "|",
        ]
        for recipe, entry in summary.items():
            cells = [_mean_std(entry["values"][name]) for name in columns]
            lines.append(f"| {recipe} | {len(entry['seeds'])} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(
        "mean ± sample standard deviation over training seeds; ADE/FDE in metres over 4 s; DS = route completion "
        "x infraction penalty per route, averaged over the routes, then over seeds (sim graph on sim-look routes, "
        "real graph on real-look routes)."
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        roots = write_data(args.out, args)
        for seed in args.seeds:  # seed-major: every recipe gets its first seed before any gets its third
            for recipe in args.recipes:
                train_run(recipe, seed, roots, args)
                closed_loop_run(recipe, seed, args)
    summary = summarise(args.out, args.recipes, args.seeds)
    text = tables(summary)
    (args.out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "results.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
