"""`min2real synth-bag --out DIR`: a synthetic drive as a rosbag2 bag in the CARLA ROS bridge layout
(the bags `min2real replay` plays). Contributed by min2real_ros (entry point group `min2real.commands`)."""

from __future__ import annotations

import argparse
import sys

from min2real.cli.data import image_size_arg

HELP = "write a synthetic drive as a rosbag2 bag in the CARLA ROS bridge layout (MCAP or sqlite3)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    parser.add_argument(
        "--storage",
        choices=("mcap", "sqlite3", "both"),
        default="mcap",
        help="storage plugin; 'both' writes OUT_mcap and OUT_sqlite3",
    )
    parser.add_argument("--frames", type=int, default=100, help="camera frames (default 100)")
    parser.add_argument("--rate-hz", type=float, default=10.0, help="camera/LiDAR rate (default 10 Hz)")
    parser.add_argument("--image-size", type=image_size_arg, default=(512, 192), help="camera WxH (default 512x192)")
    parser.add_argument("--seed", type=int, default=0, help="drive seed (route, objects, speed profile)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from min2real_ros.replay.bag import BagError, inspect_bag
    from min2real_ros.replay.synth_bag import write_synthetic_bag

    storages = ("mcap", "sqlite3") if args.storage == "both" else (args.storage,)
    for storage in storages:
        out = Path(f"{args.out}_{storage}") if args.storage == "both" else Path(args.out)
        try:
            result = write_synthetic_bag(
                out, storage, args.frames, args.seed, args.rate_hz, args.image_size, progress=True
            )
        except (BagError, ValueError) as error:
            print(f"min2real synth-bag: {error}", file=sys.stderr)
            return 2
        info = inspect_bag(result.path)
        print(
            f"wrote {result.path} ({storage}): {result.num_frames} frames over {result.duration_s:.1f} s, "
            f"{args.image_size[0]}x{args.image_size[1]} bgra8 camera"
        )
        print(info.describe_topics())
    return 0
