"""`min2real data`: make and validate datasets.

    min2real data synth --out DIR --seed S [--frames N] [--routes R] [--image-size WxH] [--tiny]
    min2real data check DIR [--contract tiny] [--limit N]
    min2real data split-logs --navsim-root DIR --split trainval --out DIR/filters [--val-fraction 0.1]

Each subcommand is one entry of SUBCOMMANDS (help, add_arguments, run): adding one is a
function pair and a line there. (`min2real synth-bag` writes rosbags; it lives in min2real_ros.)
"""

from __future__ import annotations

import argparse
import sys
import time

HELP = "synthetic two-domain data (synth) and dataset validation (check)"


def image_size_arg(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"image size {text!r} is not WIDTHxHEIGHT (e.g. 1024x384)") from error
    if width < 16 or height < 16:
        raise argparse.ArgumentTypeError(f"image size {text!r} is too small; expected at least 16x16")
    return width, height


def _contract(name: str):
    from min2real import contract as C

    if name == "tiny":
        return C.TINY_CONTRACT
    if name == "default":
        return C.DEFAULT_CONTRACT
    raise SystemExit(f"contract {name!r} is not known; expected 'default' or 'tiny'")


def parse_conditions(text: str) -> tuple[str, ...]:
    """--conditions: 'all' (the closed loop's six), a comma-separated list, or '' (the plain look: ())."""
    from min2real.data.synthetic.scenario import CONDITION_NAMES

    conditions = CONDITION_NAMES if text == "all" else tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = sorted(set(conditions) - set(CONDITION_NAMES))
    if unknown:
        raise ValueError(f"--conditions {unknown} are not known; expected 'all' or some of {CONDITION_NAMES}")
    return conditions


# ---- synth ----------------------------------------------------------------------------------------
def _synth_arguments(parser: argparse.ArgumentParser) -> None:
    from min2real.data.synthetic.traffic_plan import DEFAULT_TRAFFIC_DENSITY

    parser.add_argument("--out", required=True, help="output folder (carla/, navsim/, synthetic.json)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--frames", type=int, default=None, help="labelled frames per domain (default 300; 48 with --tiny)"
    )
    parser.add_argument(
        "--routes", type=int, default=None, help="routes (= NAVSIM logs) per domain (default 3; 2 with --tiny)"
    )
    parser.add_argument("--image-size", type=image_size_arg, default=None, help="sim camera WxH (default 1024x384)")
    parser.add_argument(
        "--real-image-size", type=image_size_arg, default=None, help="real camera WxH (default 640x360, 16:9)"
    )
    parser.add_argument(
        "--tiny", action="store_true", help="small images and few frames (tests, demo): tiny contract sizes"
    )
    parser.add_argument("--domains", default="sim,real", help="comma-separated subset of sim,real")
    parser.add_argument(
        "--real-cameras",
        choices=("front", "stitch"),
        default="front",
        help="stitch also writes CAM_L0/CAM_R0 for NAVSIM's panorama",
    )
    parser.add_argument("--real-lidar", action="store_true", help="also write real-domain merged point clouds (PCD)")
    parser.add_argument("--split", default="trainval", help="NAVSIM split folder name")
    parser.add_argument(
        "--conditions",
        default="",
        help="appearance conditions cycled over the routes: 'all' (the closed loop's six: noon, cloudy, wet, "
        "sunset, dusk, fog) or a comma-separated list; default: the plain look",
    )
    parser.add_argument(
        "--obstacles",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of routes that pass a car parked in the ego lane in the oncoming lane, as closed-loop "
        "routes do (0..1; default 0)",
    )
    parser.add_argument(
        "--traffic",
        type=float,
        default=DEFAULT_TRAFFIC_DENSITY,
        metavar="DENSITY",
        help="moving traffic, traffic lights and pedestrians, driven through by the closed-loop expert "
        f"(labels: its target speed and brake, boxes); 0: the empty world (default {DEFAULT_TRAFFIC_DENSITY:g}, "
        "the density synth-longest6 is judged at)",
    )


def _synth_run(args: argparse.Namespace) -> int:
    from min2real.data.common import EXTRACTOR_SEEDS
    from min2real.data.synthetic import write_synthetic_dataset

    if args.seed in EXTRACTOR_SEEDS:
        print(
            f"data synth: seed {args.seed} is reserved ({EXTRACTOR_SEEDS.start}..{EXTRACTOR_SEEDS.stop - 1}) for the stand-in extractor's "
            "pretraining and probe drives (min2real pretrain); training and evaluation data use other seeds",
            file=sys.stderr,
        )
        return 2

    contract = _contract("tiny" if args.tiny else "default")
    frames = args.frames or (48 if args.tiny else 300)
    routes = args.routes or (2 if args.tiny else 3)
    sim_size = args.image_size or ((256, 96) if args.tiny else (1024, 384))
    real_size = args.real_image_size or ((256, 144) if args.tiny else (640, 360))
    domains = tuple(d.strip() for d in args.domains.split(",") if d.strip())
    cameras = ("CAM_F0", "CAM_L0", "CAM_R0") if args.real_cameras == "stitch" else ("CAM_F0",)
    try:
        conditions = parse_conditions(args.conditions)
    except ValueError as error:
        print(f"data synth: {error}", file=sys.stderr)
        return 2
    if not 0.0 <= args.traffic <= 3.0:
        print(f"data synth: --traffic {args.traffic}; expected a density in 0..3 (1 = the judged one)", file=sys.stderr)
        return 2
    from min2real.evaluation.closed_loop.record import traffic_drive

    start = time.perf_counter()
    summary = write_synthetic_dataset(
        args.out,
        seed=args.seed,
        frames=frames,
        routes=routes,
        sim_image_size=sim_size,
        real_image_size=real_size,
        domains=domains,
        real_cameras=cameras,
        real_lidar=args.real_lidar,
        split=args.split,
        contract=contract,
        conditions=conditions,
        obstacle_share=args.obstacles,
        traffic=args.traffic,
        traffic_drive=traffic_drive,
    )
    elapsed = time.perf_counter() - start
    for domain, info in summary["domains"].items():
        layout = "CARLA Garage" if domain == "sim" else "NAVSIM"
        print(
            f"{domain}: {info['labelled_frames']} labelled frames ({info['frames_written']} written with route tails) "
            f"at {info['rate_hz']:g} Hz, {info['image_size'][0]}x{info['image_size'][1]}, {layout} layout"
            + (f", {info['routes_with_parked_car']} routes past a parked car" if info["routes_with_parked_car"] else "")
            + (
                f", {len(info['routes_cut_short'])} route(s) cut short where the expert's drive ended early"
                if info["routes_cut_short"]
                else ""
            )
        )
    print(f"wrote {args.out} in {elapsed:.1f} s")
    return 0


# ---- check ----------------------------------------------------------------------------------------
def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="a dataset folder: CARLA Garage routes and/or NAVSIM roots (navsim_logs/) below it")
    parser.add_argument("--contract", choices=("default", "tiny"), default="default")
    parser.add_argument("--split", default=None, help="NAVSIM split (default: every split found)")
    parser.add_argument("--limit", type=int, default=None, help="check at most N samples per domain (evenly spaced)")
    parser.add_argument(
        "--all-routes", action="store_true", help="also use CARLA routes below score 100 or without results"
    )


def _percent(counts, total: int) -> str:
    return " ".join(f"{name} {100.0 * count / max(total, 1):.1f}%" for name, count in counts)


def _check_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from min2real import contract as C
    from min2real.data import CarlaGarageDataset, DataProblems, NavsimDataset
    from min2real.data.carla_garage import find_route_dirs

    contract = _contract(args.contract)
    root = Path(args.dir)
    if not root.is_dir():
        print(f"data check: {root} is not a directory", file=sys.stderr)
        return 2
    datasets = []
    if find_route_dirs([root]):
        sim = CarlaGarageDataset(
            [root], contract, require_perfect_score=not args.all_routes, skip_crashed_routes=not args.all_routes
        )
        s = sim.stats
        datasets.append(
            (
                f"sim  (CARLA Garage): {s['routes']} routes ({s['routes_used']} used, {s['routes_imperfect']} below "
                f"score 100, {s['routes_crashed']} crashed, {s['routes_expert_labelled']} DAgger routes labelled by the "
                f"expert at visited states), {s['frames']} frames, {len(sim)} samples, "
                f"{s['frames_without_future']} frames without future",
                sim,
            )
        )
    navsim_roots = sorted({p.parent for p in root.rglob("navsim_logs") if p.is_dir()})
    for navsim_root in navsim_roots:
        splits = (
            [args.split]
            if args.split
            else sorted(p.name for p in (navsim_root / "navsim_logs").iterdir() if p.is_dir())
        )
        for split in splits:
            real = NavsimDataset(navsim_root, split, contract)
            s = real.stats
            datasets.append(
                (
                    f"real (NAVSIM {split} at {navsim_root}): {s['logs']} logs ({s['logs_used']} used), "
                    f"{s['frames']} frames, {len(real)} samples, {s['frames_without_future']} frames without future",
                    real,
                )
            )
    if not datasets:
        print(
            f"data check: no CARLA Garage routes (folders with measurements/) and no NAVSIM roots (navsim_logs/) under {root}",
            file=sys.stderr,
        )
        return 2
    print(
        f"min2real data check {root} (contract {args.contract}: camera {contract.camera_width}x{contract.camera_height}, "
        f"BEV {contract.bev_size_px}, {contract.num_waypoints} waypoints x {contract.waypoint_dt_s} s)"
    )
    problems = DataProblems()
    checked = {domain: [] for domain in C.DOMAINS}
    for line, dataset in datasets:
        print(line)
        problems.merge(dataset.index_problems)
        indices = np.arange(len(dataset))
        if args.limit is not None and len(indices) > args.limit:
            indices = np.linspace(0, len(dataset) - 1, args.limit).round().astype(int)
        for index in indices:
            sample = dataset[int(index)]
            if isinstance(sample, dict):
                checked[dataset.domain].append(sample)
            else:
                problems.add(sample)
    total_samples = 0
    for domain, samples in checked.items():
        if not samples:
            continue
        total_samples += len(samples)
        steer = np.bincount([int(s[C.TARGET_STEER_CLASS]) for s in samples], minlength=len(C.STEER_CLASSES))
        command = np.bincount([int(np.argmax(s[C.INPUT_COMMAND])) for s in samples], minlength=len(C.COMMANDS))
        speed = np.array([float(s[C.INPUT_SPEED][0]) for s in samples])
        reach = np.array([float(np.linalg.norm(s[C.TARGET_WAYPOINTS][-1])) for s in samples])
        lidar = np.mean([float(s[C.INPUT_LIDAR_BEV].any()) for s in samples])
        print(
            f"labels {domain}: {len(samples)} samples checked | steer {_percent(zip(C.STEER_CLASSES, steer), len(samples))} | "
            f"command {_percent(zip(C.COMMANDS, command), len(samples))} | speed mean {speed.mean():.1f} max {speed.max():.1f} m/s | "
            f"last waypoint at {reach.mean():.1f} m on average | LiDAR BEV non-empty in {100 * lidar:.0f}%"
        )
    print(problems.summary())
    if problems.total:
        return 1
    return 0 if total_samples else 2


# ---- split-logs -----------------------------------------------------------------------------------
def _split_logs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--navsim-root", required=True, help="OpenScene/NAVSIM root (navsim_logs/<split>/*.pkl)")
    parser.add_argument("--split", default="trainval", help="the split whose logs are divided (never a test split)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of the logs held out for validation")
    parser.add_argument("--base-filter", default=None, help="a NAVSIM scene filter to start from (e.g. navtrain.yaml)")
    parser.add_argument("--seed", type=int, default=0, help="which logs are held out")
    parser.add_argument("--out", required=True, help="folder for train_logs.yaml and val_logs.yaml")


def _split_logs_run(args: argparse.Namespace) -> int:
    """Two NAVSIM scene filters over disjoint logs of one split: train_logs.yaml / val_logs.yaml
    (data.real_scene_filter / data.val_real_scene_filter). Whole logs, so no scene of a held-out
    drive is seen in training."""
    from pathlib import Path

    import numpy as np
    import yaml

    from min2real.data.config import TEST_SPLITS

    if args.split in TEST_SPLITS:
        print(f"data split-logs: {args.split!r} is a test split; validation logs come from trainval", file=sys.stderr)
        return 2
    if not 0.0 < args.val_fraction < 1.0:
        print(f"data split-logs: --val-fraction {args.val_fraction}; expected a fraction in (0, 1)", file=sys.stderr)
        return 2
    logs_dir = Path(args.navsim_root) / "navsim_logs" / args.split
    names = sorted(path.stem for path in logs_dir.glob("*.pkl"))
    tokens = None
    if args.base_filter:
        from min2real.data.navsim import load_scene_filter

        base = load_scene_filter(args.base_filter)
        if base.log_names is not None:
            names = [name for name in names if name in set(base.log_names)]
        tokens = base.tokens
    if len(names) < 2:
        print(f"data split-logs: {len(names)} log(s) under {logs_dir}; expected at least 2 to split", file=sys.stderr)
        return 2
    order = np.random.default_rng(args.seed).permutation(len(names))
    held_out = max(1, int(round(args.val_fraction * len(names))))
    val = sorted(names[i] for i in order[:held_out])
    train = sorted(names[i] for i in order[held_out:])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, logs in (("train_logs", train), ("val_logs", val)):
        document = {"log_names": logs, "tokens": tokens}
        (out / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    print(
        f"data split-logs: {len(train)} training logs -> {out / 'train_logs.yaml'}, {len(val)} held out -> {out / 'val_logs.yaml'}"
    )
    return 0


SUBCOMMANDS = {
    "synth": ("render the synthetic two-domain dataset (CARLA Garage + NAVSIM layouts)", _synth_arguments, _synth_run),
    "check": ("validate a dataset and print counts, problems and label statistics", _check_arguments, _check_run),
    "split-logs": (
        "two NAVSIM scene filters over disjoint logs of a split (training / held-out validation)",
        _split_logs_arguments,
        _split_logs_run,
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    subparsers = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    for name, (help_text, add, run_fn) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        add(sub)
        sub.set_defaults(_data_run=run_fn)


def run(args: argparse.Namespace) -> int:
    return int(args._data_run(args))
