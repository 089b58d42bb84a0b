"""Run by test_training_ddp.py under `torchrun`: trains with the tiny config and writes this
rank's final weights to OUT/rank<R>.pt so the test can compare the ranks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from min2real.training.config import TrainConfig
from min2real.training.trainer import train


def main(argv: list[str]) -> int:
    config_path, run_dir, *overrides = argv
    result = train(TrainConfig.load(config_path, overrides), run_dir)
    rank = int(os.environ["RANK"])
    state = {name: value.detach().clone() for name, value in result.model.state_dict().items()}
    torch.save(
        {"weights": state, "world_size": result.world_size, "step": result.step}, Path(run_dir) / f"rank{rank}.pt"
    )
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
