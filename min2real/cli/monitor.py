"""`min2real monitor`: add the domain-shift monitor to an already exported ONNX graph.

    min2real monitor models/bundled/min2real_tiny_sim.onnx --train-data data/bundled/train \\
        --heldout-data data/bundled/calib --out out/bundled_monitor_sim.onnx

For a graph whose checkpoint is not at hand (the bundled model ships none): the OOD score only,
since the discriminator is not part of an exported graph. With the checkpoint, prefer
`min2real export --monitor-data ... --monitor-heldout ...`, which adds the discriminator's logit too.
"""

from __future__ import annotations

import argparse

HELP = "add the domain-shift monitor (OOD score, calibrated thresholds) to an exported ONNX graph"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="exported model (.onnx) from `min2real export`, without monitor outputs")
    parser.add_argument("--train-data", required=True, help="data folder of the model's training frames (statistics)")
    parser.add_argument(
        "--heldout-data", required=True, help="held-out in-distribution data folder (WARN / ERROR thresholds)"
    )
    parser.add_argument("--out", required=True, help="output .onnx path")
    parser.add_argument("--max-train-frames", type=int, default=2400, help="training frames for the statistics")
    parser.add_argument("--max-heldout-frames", type=int, default=2000, help="held-out frames for the thresholds")
    parser.add_argument(
        "--warn-rate",
        type=float,
        help="false-alarm rate of WARN on held-out frames (default: min2real.monitor.attach.DEFAULT_FALSE_ALARM_RATES, "
        "0.005)",
    )
    parser.add_argument(
        "--error-rate",
        type=float,
        help="false-alarm rate of ERROR, below the WARN rate (default: DEFAULT_FALSE_ALARM_RATES, 0.001)",
    )


def run(args: argparse.Namespace) -> int:
    from min2real.contract import ContractError
    from min2real.monitor.attach import attach_monitor_from_data
    from min2real.monitor.statistics import MonitorError

    try:
        report = attach_monitor_from_data(
            args.model,
            args.out,
            args.train_data,
            args.heldout_data,
            max_train_frames=args.max_train_frames,
            max_heldout_frames=args.max_heldout_frames,
            false_alarm_rates={
                level: rate
                for level, rate in (("warn", args.warn_rate), ("error", args.error_rate))
                if rate is not None
            },
        )
    except (MonitorError, ContractError, FileNotFoundError, ValueError) as error:
        print(f"monitor failed: {error}")
        return 1
    print(report.summary())
    return 0
