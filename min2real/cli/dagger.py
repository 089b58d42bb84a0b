"""`min2real dagger`: one round of closed-loop data aggregation (DAgger) with the current model.

    min2real dagger --model M.onnx|.pt --out DIR --seed S (--beta B | --round I [--beta0 1 --decay 0.5])
                    [--routes N] [--conditions all] [--obstacles SHARE] [--traffic DENSITY]
                    [--segment-s 1.0] [--route-length 180]

Drives the model in the synthetic closed loop (the simulator, traffic and direct-mode stack of
`min2real closed-loop`) on `data synth --seed S`'s sim routes (training towns only: the judge's
route sets and the held-out data seeds are refused), the expert taking over per segment with
probability beta, and writes DIR/carla/dagger/route_XXX (CARLA Garage layout, sim look, every
frame labelled by the expert at the visited state) and DIR/dagger.json (per-route DS, frames,
beta). Retrain on the aggregate (docs/training.md "DAgger"):

    min2real train --config training/bundled.yaml --out runs/dagger1 \\
        --set 'data.sim_roots=[data/bundled/train/carla, DIR/carla]' \\
        --set train.init_checkpoint=runs/bundled/checkpoints/best.pt

`--look real` drives the model's real graph in the real look on the seed's real routes and writes
DIR/real_look/dagger/: real driving labels, for {S, R} recipes only
(`--set 'data.real_look_roots=[DIR/real_look]' --set data.real_driving_labels=true`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from min2real.runtime.controller import SPEED_FROM, ControllerConfig

HELP = "closed-loop data aggregation (DAgger): drive the model on training towns, record expert labels"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from min2real.data.synthetic.traffic_plan import DEFAULT_TRAFFIC_DENSITY
    from min2real.evaluation.closed_loop.dagger import DEFAULT_DECAY, DEFAULT_SEGMENT_S
    from min2real.evaluation.closed_loop.routes import ROUTE_LENGTH_M

    parser.add_argument("--model", required=True, help="the current model: exported sim graph (.onnx, .engine) or .pt")
    parser.add_argument("--out", required=True, help="output folder (carla/dagger/route_XXX, dagger.json, routes/)")
    parser.add_argument(
        "--seed",
        type=int,
        required=True,
        help="training data seed: route r is `data synth --seed S`'s sim route r (10 = the bundled training towns); "
        "closed-loop route seeds and the held-out data seeds (11 val, 12 test) are refused",
    )
    parser.add_argument("--routes", type=int, default=6, help="routes to drive (default 6)")
    beta = parser.add_mutually_exclusive_group(required=True)
    beta.add_argument("--beta", type=float, help="probability that the expert drives a segment (0: the model only)")
    beta.add_argument("--round", type=int, help="DAgger round i >= 1: beta = beta0 * decay**i (round 0 = data synth)")
    parser.add_argument("--beta0", type=float, default=1.0, help="schedule start (with --round; default 1)")
    parser.add_argument(
        "--decay", type=float, default=DEFAULT_DECAY, help=f"schedule decay (with --round; default {DEFAULT_DECAY})"
    )
    parser.add_argument(
        "--segment-s",
        type=float,
        default=DEFAULT_SEGMENT_S,
        help=f"seconds between expert / model draws (default {DEFAULT_SEGMENT_S}; 0.05 = every tick)",
    )
    parser.add_argument(
        "--conditions", default="", help="appearance conditions cycled over the routes, as data synth ('all': six)"
    )
    parser.add_argument(
        "--obstacles", type=float, default=0.0, metavar="SHARE", help="share of routes past a parked car"
    )
    parser.add_argument(
        "--traffic",
        type=float,
        default=DEFAULT_TRAFFIC_DENSITY,
        metavar="DENSITY",
        help=f"traffic density (default {DEFAULT_TRAFFIC_DENSITY:g}, the judged one; 0: the empty world)",
    )
    parser.add_argument(
        "--route-length",
        type=float,
        default=ROUTE_LENGTH_M,
        help=f"scored route length in m (default {ROUTE_LENGTH_M:g})",
    )
    parser.add_argument(
        "--speed-from",
        choices=SPEED_FROM,
        default=ControllerConfig().speed_from,
        help="the model's desired speed when it drives (a model with the target-speed head), as closed-loop's "
        f"--speed-from (default: the controller's, {ControllerConfig().speed_from})",
    )
    parser.add_argument(
        "--look",
        choices=("sim", "real"),
        default="sim",
        help="sim (default): the sim graph, sim-look labels (DIR/carla); real: the real graph in the real look, "
        "real driving labels for {S, R} recipes only (DIR/real_look)",
    )
    parser.add_argument("--backend", default="auto", help="policy backend (auto, onnxruntime-cpu, torch, ...)")
    parser.add_argument("--no-figures", action="store_true", help="no routes/<route>/top_down.png")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _fail(message: str) -> int:
    print(f"min2real dagger: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from min2real.cli.data import parse_conditions
    from min2real.evaluation.closed_loop.dagger import LOOK_FOLDERS, beta_for_round, dagger_routes, run_round

    out = Path(args.out)
    if (out / "dagger.json").exists():
        return _fail(f"{out}/dagger.json exists; choose a new --out for each round (the aggregate lists them all)")
    if not 0.0 <= args.traffic <= 3.0:
        return _fail(f"--traffic {args.traffic}; expected a density in 0..3 (1 = the judged one)")
    try:
        if args.round is not None:
            if args.round < 1:
                raise ValueError(f"--round {args.round}; expected >= 1 (round 0 is the expert's data, `data synth`)")
            beta = beta_for_round(args.round, args.beta0, args.decay)
        else:
            beta = float(args.beta)
            if not 0.0 <= beta <= 1.0:
                raise ValueError(f"--beta {beta}; expected a probability in [0, 1]")
        specs = dagger_routes(
            args.seed,
            args.routes,
            parse_conditions(args.conditions),
            args.obstacles,
            args.traffic,
            args.route_length,
            args.look,
        )
    except ValueError as error:
        return _fail(str(error))
    model = Path(args.model)
    if not model.is_file():
        return _fail(f"--model {model} does not exist; expected an exported model (.onnx, .engine) or a .pt checkpoint")
    from min2real.files import file_sha256
    from min2real.runtime.policy import load_policy

    try:
        # The look's own graph: the sim graph records sim-look labels, the real graph real ones.
        policy = load_policy(str(model), domain=args.look, backend=args.backend)
    except (ValueError, RuntimeError, OSError) as error:
        return _fail(f"cannot load --model {model} for the {args.look} look (--look {args.look}): {error}")
    use_lidar = args.look == "sim" and "lidar_bev" in policy.backend.input_shapes
    extra = {
        "model": str(model),
        "model_sha256": file_sha256(model),
        "model_variant": policy.metadata.variant,
        "seed": args.seed,
        "round": args.round,
        "beta0": args.beta0 if args.round is not None else None,
        "decay": args.decay if args.round is not None else None,
        "traffic": args.traffic,
        "arguments": {key: value for key, value in vars(args).items() if not key.startswith("_") and key != "command"},
    }
    try:
        document = run_round(
            specs,
            policy,
            out,
            beta,
            args.segment_s,
            use_lidar=use_lidar,
            figures=not args.no_figures,
            progress=not args.no_progress,
            policy_name=str(model),
            extra=extra,
            speed_from=args.speed_from,
            look=args.look,
        )
    except ValueError as error:
        return _fail(str(error))
    finally:
        policy.close()
    folder = out / LOOK_FOLDERS[args.look]
    for route in document["routes"]:
        print(
            f"{route['name']}: DS {route['driving_score']:.1f} RC {route['route_completion']:.1f} {route['outcome']}, "
            f"{route['frames_recorded']} frames, model drove {100 * route['model_share']:.0f}%"
        )
    print(
        f"dagger: beta {beta:g}, {len(specs)} routes, DS {document['driving_score_mean']:.1f} +- "
        f"{document['driving_score_std']:.1f}, {document['frames_recorded']} frames at 4 Hz -> {folder}"
    )
    target = "data.sim_roots" if args.look == "sim" else "data.real_look_roots (with data.real_driving_labels: true)"
    print(f"summary: {out / 'dagger.json'}; add {folder} to {target} to train on the aggregate")
    return 0
