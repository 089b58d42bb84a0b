"""`min2real demo --out DIR`: the main job in one command (README command 1 runs it).

Writes a synthetic CARLA-bridge bag, replays it through the real driver and controller nodes with
the bundled model (models/bundled/min2real_tiny_sim.onnx, found by `min2real.paths`), prints
where the outputs are and the summary, then drives one route of the synthetic world closed loop
through the same nodes in lock step (`min2real closed-loop --ros`) and prints its driving score.
The bundled model is a tiny network trained on synthetic data so this runs anywhere; it does not
drive a car (its closed-loop score says so).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HELP = "write the sample bag and replay it through the nodes with the bundled model (README command 1)"

BUNDLED_MODEL = "min2real_tiny_sim.onnx"
_MARKER = ".min2real-demo"


def bundled_model_path() -> Path:
    """Where the bundled model is (the checkout's models/bundled, or share/min2real/models/bundled)."""
    from min2real.paths import data_folder

    return data_folder("models") / "bundled" / BUNDLED_MODEL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="out/demo", help="output directory (default out/demo; replaced on re-runs)")
    parser.add_argument("--model", default=None, help=f"model to replay with (default: the bundled {BUNDLED_MODEL})")
    parser.add_argument(
        "--frames", type=int, default=100, help="frames in the sample bag (default 100 = 10 s at 10 Hz)"
    )
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="sample bag storage")
    parser.add_argument("--seed", type=int, default=0, help="synthetic drive seed")
    parser.add_argument("--fast", action="store_true", help="replay as fast as the node keeps up (default: bag timing)")
    parser.add_argument("--video", action="store_true", help="also write an MP4 of every overlay frame")
    parser.add_argument(
        "--closed-loop-routes",
        default="synth-short:1",
        help="closed-loop routes driven through the real nodes after the replay (default synth-short:1; 'none' skips)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _prepare_out(out: Path) -> None:
    """Re-runs replace a previous demo's directory; anything else already there is refused."""
    if out.exists():
        if not (out / _MARKER).is_file():
            if any(out.iterdir()):
                raise SystemExit(f"min2real demo: {out} exists and was not written by the demo; choose another --out")
        else:
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text("written by `min2real demo`; re-running the demo replaces this directory\n")


def run(args: argparse.Namespace) -> int:
    from min2real_ros.cli.replay import run_replay
    from min2real_ros.replay.replay import ReplayOptions
    from min2real_ros.replay.synth_bag import write_synthetic_bag

    model = Path(args.model) if args.model else bundled_model_path()
    if not model.is_file():
        print(
            f"min2real demo: model {model} is missing; the bundled model ships with the package "
            "(models/bundled/); models/bundled/README.md has the command that regenerates it",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    _prepare_out(out)
    bag = out / "sample_bag"
    closed_loop = str(args.closed_loop_routes).lower() != "none"
    steps = 3 if closed_loop else 2
    print(
        f"== 1/{steps} writing the sample bag: {args.frames} frames of a synthetic drive, CARLA ROS bridge layout ({args.storage})"
    )
    result = write_synthetic_bag(bag, args.storage, args.frames, args.seed, progress=not args.no_progress)
    print(f"   {result.path}: {result.num_frames} camera frames over {result.duration_s:.1f} s")
    print(f"== 2/{steps} replaying it through the driver and controller nodes with {model}")
    options = ReplayOptions(
        bag=bag,
        model=model,
        out=out / "replay",
        timing="fast" if args.fast else "bag",
        video=args.video,
        progress=not args.no_progress,
    )
    code = run_replay(options)
    if code == 0 and closed_loop:
        code = _closed_loop(args, model, out)
    if code == 0:
        folders = "sample_bag/, replay/" + (", closed_loop/" if closed_loop else "")
        print(
            f"demo outputs are in {out}/ ({folders}). The bundled model is a tiny network trained on "
            "synthetic data: real driving needs real DINOv2 weights and real data (README)."
        )
    return code


def _closed_loop(args: argparse.Namespace, model: Path, out: Path) -> int:
    """Step 3: drive route(s) of the synthetic world closed loop through the real driver and
    controller nodes (lock step) and print the driving score next to the replay summary."""
    from min2real_ros.cli.closed_loop import run_with_arguments

    print(f"== 3/3 driving {args.closed_loop_routes} closed loop through the driver and controller nodes (lock step)")
    argv = ["--model", str(model), "--routes", str(args.closed_loop_routes), "--ros", "--out", str(out / "closed_loop")]
    code, document = run_with_arguments(argv + (["--no-progress"] if args.no_progress else []))
    if code != 0 or document is None:
        return code
    for route in document["routes"]:
        print(
            f"   closed loop {route['name']} ({route['condition']}): driving score {route['driving_score']:.1f} = "
            f"route completion {route['route_completion']:.1f} x infraction penalty {route['infraction_penalty']:.2f} "
            f"({route['outcome']}); {route['ticks']} ticks in {route['wall_s']:.0f} s"
        )
    return 0
