"""Killing a training run mid-epoch (SIGKILL) and resuming it reproduces the weights of the
uninterrupted run for the same number of steps (CPU, deterministic config)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from training_helpers import REPO, TINY_CONFIG, data_overrides, write_synthetic

from min2real.models.checkpoint import load_checkpoint

# 48 sim + 48 real samples per epoch at batch 8 -> 6 steps per epoch (sim_real_ratio 0.5); 3 epochs.
# Checkpoints every 4 steps land inside epochs (steps 4, 8, 16 are mid-epoch).
TOTAL_STEPS = 18
CHECKPOINT_INTERVAL = 4


def _command(run_dir, train_roots, *extra):
    overrides = data_overrides(train_roots) + [
        "model.variant=full",
        "train.noise_augmentation=true",
        "data.real_driving_labels=true",
        "data.samples_per_epoch=48",
        "train.batch_size=8",
        "train.epochs=3",
        "train.deterministic=true",
        "train.num_threads=1",
        "train.num_workers=0",
        "train.progress_bar=false",
        "train.log_interval=3",
        f"train.checkpoint_interval={CHECKPOINT_INTERVAL}",
    ]
    command = [sys.executable, "-m", "min2real.cli", "train", "--config", str(TINY_CONFIG), "--out", str(run_dir)]
    for override in overrides:
        command += ["--set", override]
    return command + list(extra)


@pytest.mark.slow
def test_kill_and_resume_reproduces_uninterrupted_weights(tmp_path):
    train_roots = write_synthetic(tmp_path / "data", seed=3, frames=48)
    env = dict(os.environ, OMP_NUM_THREADS="1")

    reference = subprocess.run(
        _command(tmp_path / "reference", train_roots), cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert reference.returncode == 0, reference.stderr[-3000:]

    # Start the same run and SIGKILL it as soon as its first checkpoint exists.
    interrupted_dir = tmp_path / "interrupted"
    last = interrupted_dir / "checkpoints" / "last.pt"
    process = subprocess.Popen(
        _command(interrupted_dir, train_roots),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not last.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = load_checkpoint(last)
    assert 0 < killed_at["step"] < TOTAL_STEPS
    assert killed_at["extra"]["batch_in_epoch"] > 0, "the kill should land inside an epoch"

    resumed = subprocess.run(
        _command(interrupted_dir, train_roots, "--resume"),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected = load_checkpoint(tmp_path / "reference" / "checkpoints" / "last.pt")
    actual = load_checkpoint(last)
    assert expected["step"] == actual["step"] == TOTAL_STEPS
    differing = [name for name, value in expected["model"].items() if not torch.equal(value, actual["model"][name])]
    assert not differing, f"resumed weights differ from the uninterrupted run in {differing[:5]}"
    assert expected["optimizer"]["state"].keys() == actual["optimizer"]["state"].keys()
    first = next(iter(expected["optimizer"]["state"]))
    assert torch.equal(expected["optimizer"]["state"][first]["exp_avg"], actual["optimizer"]["state"][first]["exp_avg"])


def test_resume_refuses_a_changed_config(tmp_path):
    from min2real.training.config import TrainConfig
    from min2real.training.trainer import TrainingError, check_resume_config

    config = TrainConfig.load(TINY_CONFIG)
    saved = config.to_dict()
    changed = TrainConfig.load(TINY_CONFIG, ["train.lr=0.5", "train.num_workers=3"])
    with pytest.raises(TrainingError, match=r"\['train.lr'\]"):
        check_resume_config(saved, changed)
    check_resume_config(saved, TrainConfig.load(TINY_CONFIG, ["train.num_workers=3"]))  # harmless change
