"""`min2real export`: checkpoint -> ONNX ("sim" graph with the V2R adapter, "real" without),
with contract metadata and an ONNX Runtime vs PyTorch parity check that fails loudly."""

from __future__ import annotations

import argparse

HELP = "export a checkpoint's sim or real graph to ONNX (metadata + parity check)"


def _camera(text: str):
    """'1024x256@110' -> CameraSpec(1024, 256, 110.0) (horizontal FOV in degrees)."""
    from min2real.contract import ContractError
    from min2real.data.config import parse_camera

    try:
        return parse_camera(text)
    except ContractError as error:
        raise argparse.ArgumentTypeError(f"source camera: {error}") from error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="min2real checkpoint (.pt)")
    parser.add_argument(
        "--domain",
        required=True,
        choices=("sim", "real"),
        help="'sim': adapter + DINOv2 + heads (simulator); 'real': no adapter (vehicle)",
    )
    parser.add_argument("--out", required=True, help="output .onnx path")
    parser.add_argument("--dynamic-batch", action="store_true", help="dynamic batch dimension (default: batch 1)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17; default 18)")
    parser.add_argument(
        "--exporter",
        choices=("dynamo", "legacy"),
        default="dynamo",
        help="torch.onnx exporter (default dynamo; legacy = TorchScript tracing)",
    )
    parser.add_argument(
        "--verify-data", default=None, help="dataset directory whose samples are compared in addition to random inputs"
    )
    parser.add_argument("--verify-samples", type=int, default=8, help="dataset samples to compare (default 8)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="max abs error allowed per output (waypoints m, logits); default 1e-3",
    )
    parser.add_argument(
        "--source-camera",
        type=_camera,
        default=None,
        metavar="WxH@FOV",
        help="camera the training images were recorded with, e.g. 1024x256@110 (CARLA Garage); "
        "default: read from the checkpoint's training data for sim graphs",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the parity check (not for deployment)")
    parser.add_argument(
        "--monitor-data",
        default=None,
        help="training data folder: add the domain-shift monitor outputs, statistics over its frames (with --monitor-heldout)",
    )
    parser.add_argument(
        "--monitor-heldout",
        default=None,
        help="held-out in-distribution data folder: the monitor's WARN / ERROR thresholds are calibrated on it",
    )


def run(args: argparse.Namespace) -> int:
    import logging

    from min2real.export import DEFAULT_TOLERANCES, ExportError, export_onnx
    from min2real.monitor.statistics import MonitorError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    tolerances = None if args.tolerance is None else dict.fromkeys(DEFAULT_TOLERANCES, args.tolerance)
    try:
        report = export_onnx(
            args.checkpoint,
            args.domain,
            args.out,
            dynamic_batch=args.dynamic_batch,
            opset=args.opset,
            exporter=args.exporter,
            verify=not args.no_verify,
            verify_data=args.verify_data,
            verify_samples=args.verify_samples,
            tolerances=tolerances,
            source_camera=args.source_camera,
            monitor_data=args.monitor_data,
            monitor_heldout=args.monitor_heldout,
        )
    except (ExportError, MonitorError, FileNotFoundError, ValueError) as error:
        print(f"export failed: {error}")
        return 1
    print(report.summary())
    return 0
