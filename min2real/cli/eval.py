"""`min2real eval`: open-loop evaluation report of one or more runs on a data directory.

    min2real eval --checkpoint runs/min2real/last.pt --data data/val --out reports/val
    min2real eval --model sim.onnx,real.onnx --checkpoint base.pt --name exported --name baseline \
        --data data/val --out reports/compare.md

Each --checkpoint or --model adds one run (in command-line order); --model takes a comma-separated
list of exported graphs forming one run (a "sim" graph for virtual samples, a "real" graph for
real ones). The data directory may hold CARLA Garage routes and/or an OpenScene/NAVSIM root.

--monitor adds the domain-shift monitor report (min2real.evaluation.monitor_report) for every
exported ONNX graph with the monitor outputs: <report dir>/monitor/<model stem>/monitor.md.
"""

from __future__ import annotations

import argparse

HELP = "open-loop evaluation (ADE/FDE, L2 per horizon, steering, discriminator, situations) with a Markdown report"


class _AppendRun(argparse.Action):
    """Collect --checkpoint / --model in command-line order as (kind, value)."""

    def __call__(self, parser, namespace, values, option_string=None):
        runs = list(getattr(namespace, "runs", None) or [])
        runs.append((self.const, values))
        namespace.runs = runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(runs=[])
    parser.add_argument(
        "--checkpoint",
        action=_AppendRun,
        const="checkpoint",
        dest="runs",
        metavar="CKPT",
        help="training checkpoint (.pt); repeat to compare runs",
    )
    parser.add_argument(
        "--model",
        action=_AppendRun,
        const="model",
        dest="runs",
        metavar="FILE[,FILE]",
        help="exported graph(s) (.onnx/.engine/.plan) for one run; repeat to compare runs",
    )
    parser.add_argument(
        "--name", action="append", default=[], help="run names, in the order of the runs (default: file stems)"
    )
    parser.add_argument("--data", required=True, help="data directory (CARLA Garage routes and/or a NAVSIM root)")
    parser.add_argument(
        "--out", required=True, help="report directory, or a .md path (figures/ and metrics.json go beside it)"
    )
    parser.add_argument(
        "--real-split", default=None, help="NAVSIM split under navsim_logs/ (default: every split found)"
    )
    parser.add_argument(
        "--navsim-camera", default="front", choices=("front", "stitch"), help="real-domain camera input"
    )
    parser.add_argument("--max-samples", type=int, default=None, help="at most this many samples per domain and run")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--backend", default="auto", help="exported-model backend: auto, onnxruntime, tensorrt, torch")
    parser.add_argument("--device", default="cpu", help="torch device for checkpoints (cpu, cuda, cuda:1)")
    parser.add_argument(
        "--camera-fov", type=float, default=110.0, help="camera horizontal FOV for the image overlays (deg)"
    )
    parser.add_argument("--camera-mount", default="-1.5,0,2.0", help="camera x,y,z in base_link for the overlays (m)")
    parser.add_argument(
        "--camera-horizon",
        type=float,
        default=0.5,
        help="horizon row of the overlay camera as a fraction of the image height (synthetic data: 0.42)",
    )
    parser.add_argument("--examples", type=int, default=4, help="example frames per domain in the report")
    parser.add_argument(
        "--monitor",
        action="store_true",
        help="domain-shift monitor report (AUROC per shift and corruption, false alarms) for ONNX graphs with it",
    )
    parser.add_argument(
        "--closed-loop-results",
        action="append",
        default=[],
        metavar="RESULTS_JSON",
        help="closed-loop results.json of the monitor model (repeat: sim and real look) for the per-route "
        "correlation of the score with the driving score",
    )
    parser.add_argument("--monitor-frames", type=int, default=300, help="held-out frames per look for --monitor")


def run(args: argparse.Namespace) -> int:
    import sys

    from min2real.evaluation import open_loop as E
    from min2real.evaluation.report import write_report

    if not args.runs:
        print("min2real eval: give at least one --checkpoint or --model", file=sys.stderr)
        return 2
    if args.name and len(args.name) != len(args.runs):
        print(
            f"min2real eval: {len(args.name)} --name for {len(args.runs)} runs; give one per run or none",
            file=sys.stderr,
        )
        return 2
    try:
        mount = tuple(float(v) for v in args.camera_mount.split(","))
        if len(mount) != 3:
            raise ValueError
    except ValueError:
        print(f"min2real eval: --camera-mount {args.camera_mount!r}; expected x,y,z in metres", file=sys.stderr)
        return 2

    datasets: dict[str, object] = {}  # one opened data directory per contract
    runs, metrics = [], []
    for position, (kind, value) in enumerate(args.runs):
        name = args.name[position] if args.name else None
        if kind == "checkpoint":
            predictor = E.CheckpointPredictor(value, name=name, device=args.device)
        else:
            predictor = E.ExportedPredictor(
                [path for path in value.split(",") if path], name=name, backend=args.backend
            )
        key = predictor.contract.to_json()
        if key not in datasets:
            datasets[key] = E.open_data_dir(args.data, predictor.contract, args.real_split, args.navsim_camera)
        run_result = E.run_predictor(predictor, datasets[key], args.batch_size, args.max_samples)
        runs.append(run_result)
        metrics.append(E.compute_metrics(run_result))
        summary = ", ".join(
            f"{domain}: ADE {m['ade_m']:.3f} m FDE {m['fde_m']:.3f} m, steering macro-F1 {m['steer_macro_f1']:.3f} "
            f"balanced accuracy {m['steer_balanced_accuracy']:.3f} (predicts {', '.join(m['steer_predicted_classes'])}; "
            f"{m['num_samples']} labelled)"
            for domain, m in metrics[-1].items()
            if isinstance(m, dict) and m.get("ade_m") is not None
        )
        print(f"{run_result.name}: {summary or 'no labelled samples'}")
    names = [run_result.name for run_result in runs]
    if len(set(names)) != len(names):
        print(f"min2real eval: run names {names} are not unique; pass --name per run", file=sys.stderr)
        return 2
    path = write_report(
        args.out,
        runs,
        metrics,
        data_description=str(args.data),
        camera_fov_deg=args.camera_fov,
        camera_mount_m=mount,
        examples_per_domain=args.examples,
        camera_horizon_fraction=args.camera_horizon,
    )
    print(f"report: {path}")
    if args.monitor:
        return _monitor_reports(args, [value for kind, value in args.runs if kind == "model"], path.parent)
    return 0


def _monitor_reports(args: argparse.Namespace, model_lists: list[str], report_dir) -> int:
    from pathlib import Path

    from min2real.evaluation.monitor_report import monitor_report
    from min2real.runtime.onnx_metadata import read_onnx_metadata

    models = [Path(p) for value in model_lists for p in value.split(",") if p.endswith(".onnx")]
    monitored = [p for p in models if "ood_score" in read_onnx_metadata(p).output_shapes]
    if not monitored:
        print("min2real eval --monitor: no --model ONNX graph has the monitor outputs (min2real monitor / export)")
        return 2
    for model in monitored:
        document = monitor_report(
            model,
            args.data,
            report_dir / "monitor" / model.stem,
            max_frames=args.monitor_frames,
            closed_loop_results=args.closed_loop_results or None,
        )
        print(
            f"monitor {model.name}: look shift AUROC {document['look_shift']['auroc_ood_score']:.3f}, "
            f"false alarms {document['false_alarms_per_frame']:.2%} per frame; "
            f"report: {report_dir / 'monitor' / model.stem / 'monitor.md'}"
        )
    return 0
