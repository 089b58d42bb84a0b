"""`min2real closed-loop --model FILE | --policy expert --routes NAME|N --domain sim|real [--ros] --out DIR`

Drives the synthetic world's routes closed loop and scores them like the CARLA leaderboard
(min2real.evaluation.closed_loop): route completion, infractions, driving score per route and
mean +- std; writes DIR/results.json, DIR/routes/<route>/top_down.png and contact_sheet.png.

Direct mode (default): the policy and the controller are called in this process (fast, for
many routes). `--ros`: the real driver_node and controller_node run in their own processes,
started from their console scripts, and this process publishes what the CARLA ROS bridge
publishes, in lock step (min2real_ros.sim). Both give the same score on the same route.

A subcommand of `min2real` registered by min2real_ros (entry point group `min2real.commands`);
direct mode needs no ROS (rclpy is imported only with --ros).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from min2real.runtime.controller import SPEED_FROM, ControllerConfig

HELP = "drive synthetic routes closed loop (direct, or --ros through the real nodes) and score them like Longest6"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", help="exported min2real model (.onnx, .engine with its .json, .pt)")
    who.add_argument("--policy", choices=("expert",), help="expert: the route-following oracle, same controller")
    parser.add_argument(
        "--routes",
        default="synth-longest6",
        help="route set name (synth-longest6, synth-val for model selection, synth-short: with traffic; synth-longest6-empty, synth-val-empty, synth-short-empty: the same roads without), a count N (first N of synth-longest6) or NAME:N",
    )
    parser.add_argument("--domain", choices=("sim", "real"), default="sim", help="the world's look (default sim)")
    parser.add_argument("--ros", action="store_true", help="run the real driver and controller nodes (lock step)")
    parser.add_argument("--out", required=True, help="output directory (results.json, routes/<route>/*.png)")
    parser.add_argument("--backend", default="auto", help="policy backend (auto, onnxruntime-cpu, tensorrt, ...)")
    parser.add_argument("--image-size", default=None, help="camera WxH (default: the model's training size)")
    parser.add_argument("--tiles", type=int, default=12, help="tiles on each route's contact sheet (0: none)")
    parser.add_argument("--video", action="store_true", help="also write routes/<route>/video.mp4 (5 Hz)")
    parser.add_argument(
        "--command-timeout", type=float, default=20.0, help="--ros: seconds to wait for a tick's command"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--creep-after",
        type=float,
        default=None,
        metavar="S",
        help="direct --model runs: Garage's creep after standing S seconds with the LiDAR safety box empty "
        "(min2real.runtime.recovery; off by default, Garage uses 55 s)",
    )
    parser.add_argument(
        "--speed-from",
        choices=SPEED_FROM,
        default=None,
        help="--model runs (direct, or --ros: the controller node's speed_from parameter): the desired speed of a "
        "model with the target-speed head, from its waypoints, from the head (Garage's rule) or from the waypoints "
        f"with a full stop each time the head says stop (default: the controller's, {ControllerConfig().speed_from})",
    )


def _image_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 16 or int(height) < 16:
        raise SystemExit(f"min2real closed-loop: --image-size {text!r}; expected WxH, e.g. 256x96")
    return int(width), int(height)


def run(args: argparse.Namespace) -> int:
    return closed_loop(args)[0]


def run_with_arguments(argv: list[str]) -> tuple[int, dict | None]:
    """`min2real closed-loop ARGV...` from Python (the demo): (exit code, results.json or None)."""
    parser = argparse.ArgumentParser(prog="min2real closed-loop")
    add_arguments(parser)
    return closed_loop(parser.parse_args(argv))


def closed_loop(args: argparse.Namespace) -> tuple[int, dict | None]:
    """Run the command; (exit code, the results document when the routes ran)."""
    from min2real import contract as C
    from min2real.evaluation.closed_loop.direct import DirectPolicyStack, ExpertStack
    from min2real.evaluation.closed_loop.report import format_summary
    from min2real.evaluation.closed_loop.routes import route_set
    from min2real.evaluation.closed_loop.run import rendering_camera, run_route_set
    from min2real.evaluation.closed_loop.simulator import TICK_S

    try:
        label, specs = route_set(args.routes)
    except ValueError as error:
        print(f"min2real closed-loop: {error}", file=sys.stderr)
        return 2, None
    out = Path(args.out)
    if (out / "results.json").exists():
        print(f"min2real closed-loop: {out}/results.json exists; choose a new --out or remove it", file=sys.stderr)
        return 2, None
    image_size = _image_size(args.image_size)
    use_lidar = args.domain == "sim"
    creep = None
    if args.creep_after is not None:
        from min2real.runtime.recovery import CreepConfig

        if args.ros or not args.model:
            print("min2real closed-loop: --creep-after runs only with --model in direct mode", file=sys.stderr)
            return 2, None
        try:
            creep = CreepConfig(stuck_after_s=args.creep_after)
        except ValueError as error:
            print(f"min2real closed-loop: --creep-after: {error}", file=sys.stderr)
            return 2, None
    if args.speed_from is not None and not args.model:
        print("min2real closed-loop: --speed-from needs --model (the expert has no target-speed head)", file=sys.stderr)
        return 2, None
    speed_from = args.speed_from or ControllerConfig().speed_from
    mode = "ros" if args.ros else "direct"
    extra: dict = {"tick_s": TICK_S, "speed_from": speed_from}
    if args.creep_after is not None:
        extra["creep_after_s"] = args.creep_after
    policy = None
    if args.model:
        model = Path(args.model)
        if not model.is_file():
            print(f"min2real closed-loop: model {model} does not exist; expected an exported model", file=sys.stderr)
            return 2, None
        from min2real.runtime.policy import load_policy

        try:
            policy = load_policy(str(model), backend=args.backend)
        except (ValueError, RuntimeError, OSError) as error:
            print(f"min2real closed-loop: cannot load {model}: {error}", file=sys.stderr)
            return 2, None
        contract = policy.contract
        meta = policy.metadata
        policy_name = str(model)
        from min2real.files import file_sha256

        extra.update(
            model_domain=meta.domain,
            model_variant=meta.variant,
            model_sha256=file_sha256(model),
            backend=policy.backend_name,
        )
        if meta.domain != args.domain:
            print(
                f"note: {model} is the {meta.domain!r} graph; driving the {args.domain} look with it "
                f"(export the {args.domain!r} graph of the checkpoint for the paper's deployment)",
                file=sys.stderr,
            )
        if "lidar_bev" not in policy.backend.input_shapes:
            use_lidar = False
    else:
        contract = C.DEFAULT_CONTRACT
        policy_name = "expert"
    camera = rendering_camera(contract, args.domain, image_size)

    if args.ros:
        import signal

        # A terminated run still stops the node processes it started (the finally blocks below).
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        try:
            from min2real_ros.sim import LockStepError, RosStackFactory
        except ImportError as error:
            print(f"min2real closed-loop --ros needs rclpy and the ROS messages: {error}", file=sys.stderr)
            return 2, None
        if policy is not None:
            policy.close()  # the driver node loads its own copy
        factory = RosStackFactory(
            model=Path(args.model) if args.model else None,
            backend=args.backend,
            model_domain=extra.get("model_domain", args.domain),
            contract=contract,
            use_lidar=use_lidar,
            tick_s=TICK_S,
            camera=camera,
            command_timeout_s=args.command_timeout,
            log_dir=out / "logs",
            speed_from=speed_from,
            model_has_speed_head=policy is not None and C.OUTPUT_TARGET_SPEED_LOGITS in policy.metadata.output_shapes,
        )
        make_stack = factory.stack
    elif policy is not None:
        make_stack = lambda spec: DirectPolicyStack(policy, TICK_S, use_lidar, creep, speed_from)  # noqa: E731
    else:
        make_stack = lambda spec: ExpertStack(contract)  # noqa: E731

    try:
        document = run_route_set(
            specs,
            make_stack,
            args.domain,
            camera,
            use_lidar,
            out,
            label,
            policy_name,
            mode,
            tiles=args.tiles,
            video=args.video,
            progress=not args.no_progress,
            extra=extra,
        )
    except Exception as error:
        if args.ros and isinstance(error, LockStepError):
            print(f"min2real closed-loop --ros: {error}", file=sys.stderr)
            return 1, None
        raise
    finally:
        if args.ros:
            factory.close()
        elif policy is not None:
            policy.close()
    print(f"closed loop: {label}, {policy_name}, {args.domain} look, {mode} mode")
    print(format_summary(document))
    print(f"results: {out / 'results.json'}; plots: {out / 'routes'}/<route>/top_down.png, contact_sheet.png")
    return 0, document
