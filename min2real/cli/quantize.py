"""`min2real quantize`: an exported FP32 ONNX -> a strongly typed FP16 or an explicit-quantization
(Q/DQ) INT8 ONNX, the graphs TensorRT 11 builds (and TensorRT 10 too), checked against the FP32
graph with ONNX Runtime CPU on dataset inputs. See min2real.precision and docs/deployment.md."""

from __future__ import annotations

import argparse

HELP = "make a strongly typed FP16 or Q/DQ INT8 ONNX from an exported FP32 ONNX (parity-checked)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from min2real.precision.options import (
        CALIBRATION_METHODS,
        DEFAULT_CALIB_SAMPLES,
        DEFAULT_CALIBRATION_METHOD,
        PRECISIONS,
    )

    parser.add_argument("onnx", help="FP32 model (.onnx) from `min2real export`")
    parser.add_argument("--precision", required=True, choices=PRECISIONS, help="the graph's new precision")
    parser.add_argument("--out", required=True, help="output .onnx path")
    parser.add_argument(
        "--calib", default=None, help="int8: dataset directory of training data to calibrate the scales on"
    )
    parser.add_argument(
        "--calib-samples",
        type=int,
        default=DEFAULT_CALIB_SAMPLES,
        help=f"int8: calibration samples, evenly drawn (default {DEFAULT_CALIB_SAMPLES})",
    )
    parser.add_argument(
        "--calib-method",
        choices=CALIBRATION_METHODS,
        default=DEFAULT_CALIBRATION_METHOD,
        help=f"int8: activation range estimate (default {DEFAULT_CALIBRATION_METHOD})",
    )
    parser.add_argument(
        "--verify-data",
        default=None,
        help="dataset directory whose samples both graphs run on (default: random contract inputs)",
    )
    parser.add_argument("--verify-samples", type=int, default=64, help="dataset samples compared (default 64)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="max |error| allowed per output against FP32 (default: fp16 0.05, int8 1.0; waypoints m, logits)",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the parity check (not for deployment)")


def run(args: argparse.Namespace) -> int:
    import logging

    from min2real.contract import OUTPUT_NAMES
    from min2real.precision.convert import QuantizeError, quantize_onnx

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    tolerances = None if args.tolerance is None else dict.fromkeys(OUTPUT_NAMES, args.tolerance)
    try:
        report = quantize_onnx(
            args.onnx,
            args.precision,
            args.out,
            calib_data=args.calib,
            calib_samples=args.calib_samples,
            calib_method=args.calib_method,
            verify=not args.no_verify,
            verify_data=args.verify_data,
            verify_samples=args.verify_samples,
            tolerances=tolerances,
        )
    except (QuantizeError, FileNotFoundError, ValueError) as error:
        print(f"quantize failed: {error}")
        return 1
    print(report.summary())
    return 0
