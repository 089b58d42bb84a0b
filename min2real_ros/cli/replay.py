"""`min2real replay BAG --model FILE --out DIR`: a recorded drive through the real nodes.

A subcommand of the `min2real` command contributed by min2real_ros (entry point group
`min2real.commands` in setup.py), so the ROS-free core never imports the ROS side.
"""

from __future__ import annotations

import argparse
import sys

HELP = "replay a rosbag2 bag (sqlite3/MCAP) through the driver and controller nodes; write an output bag, overlays, plots, summary"


def _parameter(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"driver parameter {text!r} is not NAME=VALUE (e.g. max_image_age_s=0.5)")
    import yaml

    return name.strip(), yaml.safe_load(value)


def add_topic_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", default="ego_vehicle", help="CARLA ROS bridge role name (topics /carla/<role>/...)")
    parser.add_argument("--camera-id", default="rgb_front", help="camera sensor id (/carla/<role>/<id>/image)")
    parser.add_argument("--lidar-id", default="lidar", help="LiDAR sensor id (/carla/<role>/<id>)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory (or its .mcap / .db3 file)")
    parser.add_argument("--model", required=True, help="exported min2real model (.onnx, or .engine with its .json)")
    parser.add_argument(
        "--out", required=True, help="output directory (output_bag/, contact_sheet.png, summary.json, ...)"
    )
    parser.add_argument(
        "--timing",
        choices=("bag", "fast"),
        default="bag",
        help="bag: messages at their bag times (x --rate; a slow node drops frames, counted) | "
        "fast: as fast as the node keeps up, every frame processed (default bag)",
    )
    parser.add_argument("--rate", type=float, default=1.0, help="bag timing scaled by this factor (1.0 = real time)")
    parser.add_argument(
        "--backend", default="auto", help="driver backend parameter (auto, onnxruntime-cpu, tensorrt, ...)"
    )
    parser.add_argument("--domain", default="sim", choices=("sim", "real"), help="domain the model was exported for")
    add_topic_arguments(parser)
    parser.add_argument(
        "--no-lidar", action="store_true", help="do not replay LiDAR (the driver feeds an all-zero BEV)"
    )
    parser.add_argument(
        "--control-output",
        default="twist",
        choices=("twist", "carla", "ackermann"),
        help="controller output type (carla/ackermann need carla_msgs/ackermann_msgs)",
    )
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many camera frames")
    parser.add_argument(
        "--frame-timeout", type=float, default=10.0, help="seconds to wait for the driver per frame (--timing fast)"
    )
    parser.add_argument("--tiles", type=int, default=12, help="overlay frames on the contact sheet")
    parser.add_argument("--video", action="store_true", help="also write overlays.mp4 with every frame")
    parser.add_argument(
        "--param",
        type=_parameter,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a driver node parameter (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def options_from_args(args: argparse.Namespace, bag: str, model: str, out: str):
    from min2real_ros.replay.replay import ReplayOptions
    from min2real_ros.replay.synth_bag import BridgeTopics

    return ReplayOptions(
        bag=bag,
        model=model,
        out=out,
        timing=args.timing,
        rate=args.rate,
        backend=args.backend,
        domain=args.domain,
        topics=BridgeTopics(args.role, args.camera_id, args.lidar_id),
        use_lidar=not args.no_lidar,
        control_output=args.control_output,
        frame_timeout_s=args.frame_timeout,
        max_frames=args.max_frames,
        tiles=args.tiles,
        video=args.video,
        progress=not args.no_progress,
        driver_parameters=dict(args.param),
    )


def run_replay(options) -> int:
    """Run a replay, print the summary table; 2 on an unusable bag/model, 1 when nothing was predicted."""
    from min2real_ros.replay.bag import BagError
    from min2real_ros.replay.replay import ReplayError, replay
    from min2real_ros.replay.report import format_summary

    try:
        result = replay(options)
    except (BagError, ReplayError) as error:
        print(f"min2real replay: {error}", file=sys.stderr)
        return 2
    print(f"replayed {options.bag} with {options.model}:")
    print(format_summary(result.summary))
    if not result.summary["predictions_out"]:
        print(
            f"min2real replay: the driver published no prediction; last refusal: {result.summary['last_refusal']}; "
            f"last error: {result.summary['last_error']}",
            file=sys.stderr,
        )
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    return run_replay(options_from_args(args, args.bag, args.model, args.out))
