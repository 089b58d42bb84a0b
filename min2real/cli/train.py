"""`min2real train`: train a Min2Real variant from a YAML config into a run directory.

Single process:  min2real train --config training/min2real.yaml --out runs/min2real
Several GPUs:    torchrun --nproc_per_node 8 -m min2real.cli train --config ... --out ...
Resume:          min2real train --out runs/min2real --resume     (uses RUN/config.yaml)
CPU smoke run:   min2real train --config training/tiny.yaml --out runs/tiny --set model.variant=baseline
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "train a model variant (training/<variant>.yaml) into a run directory; DDP under torchrun"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="training config YAML (omit with --resume to reuse RUN/config.yaml)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="run directory (config, checkpoints, TensorBoard, metrics)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, value parsed as YAML (repeatable), e.g. --set train.lr=3e-4",
    )
    parser.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints/last.pt")


def run(args: argparse.Namespace) -> int:
    from min2real.models.checkpoint import CheckpointError
    from min2real.training.config import ConfigError, TrainConfig
    from min2real.training.trainer import LAST_CHECKPOINT, TrainingError, train

    config_path = args.config
    if config_path is None:
        if not args.resume:
            print("min2real train: --config is required (it may be omitted only with --resume)", file=sys.stderr)
            return 2
        config_path = args.out / "config.yaml"
    if args.resume and not (args.out / "checkpoints" / LAST_CHECKPOINT).is_file():
        print(
            f"min2real train: --resume but {args.out / 'checkpoints' / LAST_CHECKPOINT} does not exist", file=sys.stderr
        )
        return 2
    try:
        config = TrainConfig.load(config_path, args.overrides)
        result = train(config, args.out, resume=args.resume)
    except (ConfigError, TrainingError, CheckpointError) as error:
        print(f"min2real train: {error}", file=sys.stderr)
        return 2
    finally:
        _leave_process_group()
    if result.world_size == 1 or _rank() == 0:
        print(f"min2real train: {result.step} steps, {result.epoch} epochs done; run directory {result.run_dir}")
    return 0


def _rank() -> int:
    import os

    return int(os.environ.get("RANK", "0"))


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
