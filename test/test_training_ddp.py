"""A two-process torchrun run (gloo, CPU) trains, and both ranks hold identical weights after
their steps, although each rank saw different samples (DDP averaged the gradients)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from training_helpers import REPO, TINY_CONFIG, data_overrides, write_synthetic

from min2real.models.model import build_model
from min2real.training.config import TrainConfig


@pytest.mark.slow
def test_two_process_torchrun_keeps_ranks_identical(tmp_path):
    train_roots = write_synthetic(tmp_path / "data", seed=5, frames=32)
    run_dir = tmp_path / "run"
    overrides = data_overrides(train_roots) + [
        "model.variant=min2real",
        "train.max_steps=2",
        "train.batch_size=4",
        "train.lr=1e-2",
        "train.warmup_steps=0",
        "train.noise_augmentation=true",
        "train.num_threads=1",
        "train.num_workers=0",
        "train.progress_bar=false",
        "train.log_interval=1",
    ]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(REPO / "test" / "training_ddp_worker.py"),
        str(TINY_CONFIG),
        str(run_dir),
        *overrides,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]

    rank0 = torch.load(run_dir / "rank0.pt", weights_only=True)
    rank1 = torch.load(run_dir / "rank1.pt", weights_only=True)
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["step"] == rank1["step"] == 2
    differing = [name for name in rank0["weights"] if not torch.equal(rank0["weights"][name], rank1["weights"][name])]
    assert not differing, f"ranks disagree after DDP steps in {differing[:5]}"

    # The weights moved away from the initialisation (rank 0 seeds torch with train.seed before building).
    config = TrainConfig.load(TINY_CONFIG, overrides)
    torch.manual_seed(config.train.seed)
    initial = build_model(config.model_config(), config.build_contract()).state_dict()
    trainable = [name for name, value in initial.items() if value.is_floating_point() and "adapter" in name]
    assert trainable and any(not torch.equal(initial[name], rank0["weights"][name]) for name in trainable)
    assert (run_dir / "checkpoints" / "last.pt").is_file() and not (run_dir / "rank2.pt").exists()
