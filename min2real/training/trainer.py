"""The trainer: one loop a newcomer reads top to bottom (`train` at the end of this file); its data
(datasets, sampler, loaders) is in `loaders.py`, the torchrun / DDP set-up and the RNG states in
`distributed.py`.

Started plainly (`min2real train ...`) it runs on one device (CUDA if present, else CPU).
Started by `torchrun` (which sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT) it joins the
process group (NCCL on GPU, gloo on CPU), wraps the model in DistributedDataParallel, gives every
rank its own slice of each epoch through the sampler, and lets rank 0 alone log, validate and
write checkpoints. Multi-node runs use torchrun's standard rendezvous (see the README).

Run directory (RUN):
    config.yaml                 the resolved training config
    checkpoints/last.pt         written atomically every `checkpoint_interval` steps and at the end
    checkpoints/best.pt         lowest validation ADE on the selection domain (TrainConfig.selection_domain:
                                sim for {S} variants, real held-out trainval logs for {S, R} variants)
    metrics/step_XXXXXXXX.json  one file per validation
    tensorboard/                SummaryWriter event files

Resume (`--resume`) continues from checkpoints/last.pt: model, optimizer, scheduler, scaler,
step, the position inside the epoch and every rank's RNG states. With `train.deterministic`
on CPU the resumed run reproduces the uninterrupted run's weights exactly (a test pins it):
the sampler is seeded by (seed, epoch) and skips the batches already done, DataLoader workers
are seeded from (seed, epoch, rank), and the noise augmentation draws from a generator seeded by
(seed, rank, step), so nothing depends on how many steps ran in this process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from min2real.contract import DOMAIN_SIM, INPUT_LIDAR_BEV, SAMPLE_DOMAIN
from min2real.data.common import DataProblems
from min2real.evaluation.metrics import MetricsAccumulator, flatten_metrics
from min2real.models.checkpoint import load_checkpoint, load_weights_into
from min2real.training.augment import add_gaussian_noise
from min2real.training.checkpoint import save_checkpoint
from min2real.training.config import TrainConfig
from min2real.training.distributed import (
    DistributedContext,
    capture_rng_state,
    configure_determinism,
    every_rank_has_samples,
    gather_rng_states,
    resolve_device,
    restore_rng_state,
    seed_everything,
    setup_distributed,
)
from min2real.training.errors import TrainingError
from min2real.training.loaders import (
    build_datasets,
    build_train_sampler,
    make_train_loader,
    model_inputs,
    seed_worker,
    steps_per_epoch,
    to_device,
)
from min2real.training.losses import compute_losses

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
# Changing these between a run and its resume cannot change the weights it produces.
RESUME_SAFE_KEYS = {
    "train.num_workers",
    "train.log_interval",
    "train.progress_bar",
    "train.val_interval",
    "train.checkpoint_interval",
    "train.val_batch_size",
    "train.num_threads",
    "train.val_at_start",
    "data.cache_dir",
    "data.sim_camera",  # export metadata (the recording camera), not a training input
}


# ---- optimiser and schedule ---------------------------------------------------------------------
def warmup_cosine(step: int, total_steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """LR multiplier: linear warm-up from ~0 to 1 over `warmup_steps`, then cosine to `min_lr_ratio`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over trainable parameters; no weight decay on biases and norm scales (1-D tensors).
    Frozen parameters (DINOv2) are left out."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    if not decay and not no_decay:
        raise TrainingError("the model has no trainable parameters")
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def needs_unused_parameter_search(model_config, loss_weights, requested: bool = False) -> bool:
    """Whether DistributedDataParallel must look for parameters a step left without a gradient
    (`find_unused_parameters`); without it DDP stops with "Expected to have finished reduction in
    the prior iteration" on the second step. Parameters go unused when
      * the model has the V2R adapter: a batch without sim samples skips it;
      * a head exists but its loss weight is 0 (steering head with loss.steer_ce=0, discriminator
        with loss.domain_bce=0, every driving part with loss.waypoint_l1=0).
    The search costs a graph traversal per step, so it is only on when one of these holds (or
    train.ddp_find_unused_parameters asks for it)."""
    return bool(
        requested
        or model_config.use_adapter
        or (model_config.use_steer_head and loss_weights.steer_ce == 0)
        or (model_config.use_discriminator and loss_weights.domain_bce == 0)
        or loss_weights.waypoint_l1 == 0
    )


# ---- validation ---------------------------------------------------------------------------------
@torch.no_grad()
def validate(model, val_set, config: TrainConfig, contract, device: torch.device, autocast) -> dict:
    """Per-domain metrics over the validation set (rank 0, the unwrapped model, eval mode)."""
    from min2real.data import batch_size, collate_samples

    was_training = model.training
    model.eval()
    loader = DataLoader(
        val_set,
        batch_size=config.train.val_batch_size,
        shuffle=False,
        num_workers=config.train.num_workers,
        collate_fn=collate_samples,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(0),
    )
    accumulator = MetricsAccumulator(contract)
    for batch in loader:
        if batch_size(batch) == 0:
            continue
        batch = to_device(batch, device)
        with autocast():
            outputs = model(model_inputs(batch, config.train.channels_last), batch[SAMPLE_DOMAIN])
        accumulator.add(outputs, batch)
    model.train(was_training)
    return accumulator.compute()


def selection_ade(report: dict, domain: str) -> float | None:
    """Model selection metric: the validation ADE of `domain` (TrainConfig.selection_domain)."""
    if domain in report and report[domain].get("ade_m") is not None:
        return report[domain]["ade_m"]
    return None


def drop_sim_lidar(
    lidar_bev: torch.Tensor, domain: torch.Tensor, probability: float, generator: torch.Generator
) -> torch.Tensor:
    """Zero the BEV (B, C, S, S) of each sim sample with `probability`, so the heads learn from the
    all-zero BEV real samples carry too (real BEVs are zero already and stay so)."""
    drop = torch.rand(lidar_bev.shape[0], generator=generator, device=lidar_bev.device) < probability
    drop = drop & (domain.to(lidar_bev.device) == DOMAIN_SIM)
    return torch.where(drop[:, None, None, None], torch.zeros_like(lidar_bev), lidar_bev)


# ---- run directory ------------------------------------------------------------------------------
def _differing_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}.{key}" if prefix else str(key)
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys.extend(_differing_keys(a, b, name))
        elif a != b:
            keys.append(name)
    return keys


def check_resume_config(saved: dict, config: TrainConfig) -> None:
    differing = [key for key in _differing_keys(saved, config.to_dict()) if key not in RESUME_SAFE_KEYS]
    if differing:
        raise TrainingError(
            f"--resume: the config differs from the checkpoint's in {differing}; resuming with them changed would not "
            "continue the same run (start a new run directory, or resume without --config to use the stored one)"
        )


@dataclass
class TrainState:
    step: int = 0  # optimiser steps done
    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches done in the current epoch
    best_metric: float | None = None


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    epoch: int
    metrics: dict
    model: torch.nn.Module  # the unwrapped model (for tests and notebooks)
    world_size: int


def _checkpoint_payload(
    model, optimizer, scheduler, scaler, state, config, model_config, contract, rng_states, context
):
    return {
        "model": model.state_dict(),
        "model_config": model_config.to_dict(),
        "contract": contract.to_dict(),
        "train_config": config.to_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "step": state.step,
        "epoch": state.epoch,
        "rng": {**rng_states[0], "per_rank": rng_states},
        "extra": {
            "batch_in_epoch": state.batch_in_epoch,
            "best_metric": state.best_metric,
            "world_size": context.world_size,
            "weights_provenance": {key: str(value) for key, value in model.weights_provenance().items()},
            "variant": model_config.variant,
        },
    }


def _log_scalars(writer, values: dict[str, float], step: int) -> None:
    if writer is None:
        return
    for name, value in values.items():
        writer.add_scalar(name, value, step)


def index_problems_report(datasets: dict) -> str:
    """What the datasets skipped while indexing (missing frame files, unreadable route results,
    refused or damaged NAVSIM logs): those frames never become samples, so the epoch reports
    cannot count them. `datasets` maps a name ("train", "val") to a dataset or None."""
    lines = []
    for name, dataset in datasets.items():
        problems = getattr(dataset, "problems", None) if dataset is not None else None
        if problems is not None and problems.total:
            lines.append(f"{name} data, skipped while indexing: {problems.summary()}")
    return "\n".join(lines)


def _report_problems(problems, context: DistributedContext, writer, state) -> None:
    """End of epoch: say what broken data was skipped (every rank reports its own share)."""
    if problems.total:
        from tqdm import tqdm

        prefix = f"rank {context.rank}: " if context.is_distributed else ""
        tqdm.write(f"epoch {state.epoch}: {prefix}{problems.summary()}")
    if writer is not None:
        writer.add_scalar("data/skipped_samples", problems.total, state.step)
    problems.clear()


# ---- the training loop --------------------------------------------------------------------------
def train(config: TrainConfig, run_dir: str | Path, resume: bool = False) -> TrainResult:
    """Train `config` into `run_dir` (optionally resuming from run_dir/checkpoints/last.pt)."""
    from min2real.models.model import build_model

    run_dir = Path(run_dir)
    checkpoint_dir = run_dir / "checkpoints"
    cfg = config.train
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    configure_determinism(cfg.deterministic)
    device_kind = "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    context = setup_distributed(device_kind)
    device = resolve_device(cfg.device, context)
    seed_everything(cfg.seed + context.rank)

    # -- model, data, optimiser --
    contract, model_config = config.build_contract(), config.model_config()
    model = build_model(model_config, contract).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_set, val_set = build_datasets(config, contract, model_config)
    skipped_at_index = index_problems_report({"training": train_set, "validation": val_set})
    if skipped_at_index and context.is_main:
        print(skipped_at_index, flush=True)
    sampler = build_train_sampler(train_set, config, context)
    batches_per_epoch = steps_per_epoch(sampler, config, context)
    total_steps = cfg.max_steps or cfg.epochs * batches_per_epoch
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total_steps, cfg.warmup_steps, cfg.min_lr_ratio)
    )
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if cfg.amp_dtype == "bfloat16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    def autocast():
        return torch.autocast("cuda", dtype=amp_dtype) if use_amp else contextlib.nullcontext()

    loss_weights = config.loss if model_config.use_steer_head else dataclasses.replace(config.loss, steer_ce=0.0)

    if cfg.init_checkpoint and not resume:  # a resumed run's weights come from last.pt
        load_weights_into(model, cfg.init_checkpoint, contract)

    # -- resume --
    state = TrainState()
    if resume:
        checkpoint = load_checkpoint(checkpoint_dir / LAST_CHECKPOINT, map_location="cpu")
        check_resume_config(checkpoint["train_config"], config)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        extra = checkpoint["extra"]
        state = TrainState(checkpoint["step"], checkpoint["epoch"], extra["batch_in_epoch"], extra["best_metric"])
        per_rank = checkpoint["rng"]["per_rank"]
        if len(per_rank) != context.world_size:
            raise TrainingError(
                f"--resume: the checkpoint was written by {len(per_rank)} process(es), this run has {context.world_size}; "
                "resume with the same number of processes"
            )
        restore_rng_state(per_rank[context.rank], device)
        del checkpoint

    # -- DDP / compile --
    trained_model = model
    if context.is_distributed:
        trained_model = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=needs_unused_parameter_search(
                model_config, loss_weights, cfg.ddp_find_unused_parameters
            ),
        )
    if cfg.compile:
        trained_model = torch.compile(trained_model)
    noise_generator = torch.Generator(device=device)

    # -- rank 0 bookkeeping --
    writer, progress = None, None
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=state.step if resume else None)
        progress = tqdm(
            total=total_steps, initial=state.step, disable=not cfg.progress_bar, unit="step", dynamic_ncols=True
        )

    def save(name: str) -> None:
        rng_states = gather_rng_states(context, device)  # collective: every rank takes part
        if context.is_main:
            payload = _checkpoint_payload(
                model, optimizer, scheduler, scaler, state, config, model_config, contract, rng_states, context
            )
            save_checkpoint(checkpoint_dir / name, payload)

    validated_at_step = -1
    selection_domain = config.selection_domain()

    def run_validation() -> dict:
        nonlocal validated_at_step
        validated_at_step = state.step
        report = {}
        if context.is_main and val_set is not None:
            report = validate(model, val_set, config, contract, device, autocast)
            (run_dir / "metrics").mkdir(exist_ok=True)
            record = {"step": state.step, "epoch": state.epoch, "variant": model_config.variant, "metrics": report}
            (run_dir / "metrics" / f"step_{state.step:08d}.json").write_text(
                json.dumps(record, indent=2), encoding="utf-8"
            )
            _log_scalars(writer, flatten_metrics(report, "val"), state.step)
            metric = selection_ade(report, selection_domain)
            if metric is not None and (state.best_metric is None or metric < state.best_metric):
                state.best_metric = metric
                save_checkpoint(
                    checkpoint_dir / BEST_CHECKPOINT,
                    _checkpoint_payload(
                        model,
                        optimizer,
                        scheduler,
                        scaler,
                        state,
                        config,
                        model_config,
                        contract,
                        [capture_rng_state(device)],
                        context,
                    ),
                )
        if context.is_distributed:
            dist.barrier()
        return report

    def log_step(losses, grad_norm, samples: int, seconds: float) -> None:
        values = {f"train/{name}": float(value) for name, value in losses.parts.items()}
        values.update(
            {
                "train/loss": float(losses.total.detach()),
                "train/lr": scheduler.get_last_lr()[0],
                "train/grad_norm": float(grad_norm),
                "train/samples_per_s": samples / max(seconds, 1e-9),
                "train/grl_coefficient": model.grl_coefficient,
            }
        )
        _log_scalars(writer, values, state.step)
        progress.set_postfix(loss=f"{values['train/loss']:.3f}", samples_s=f"{values['train/samples_per_s']:.1f}")

    # -- the loop --
    model.train()
    last_report: dict = {}
    if cfg.val_at_start and state.step == 0:
        last_report = run_validation()
    problems = DataProblems()
    samples_since_log, time_of_log = 0, time.perf_counter()
    while state.step < total_steps and state.epoch < cfg.epochs:
        loader = make_train_loader(train_set, sampler, config, context, state.epoch, state.batch_in_epoch, device)
        for batch in loader:
            state.batch_in_epoch += 1
            problems.update_from_batch(batch)
            if not every_rank_has_samples(batch, context, device):
                continue  # broken samples only (reported at epoch end); all ranks skip together
            batch = to_device(batch, device)
            inputs = model_inputs(batch, cfg.channels_last)
            if cfg.noise_augmentation:  # the paper's Gaussian noise, both domains, level ~ U[0, max]
                noise_generator.manual_seed(cfg.seed * 1_000_003 + context.rank * 1_000_000_007 + state.step)
                inputs["image"], _ = add_gaussian_noise(inputs["image"], cfg.noise_max_level, noise_generator)
            if cfg.lidar_dropout > 0 and INPUT_LIDAR_BEV in inputs:
                noise_generator.manual_seed(cfg.seed * 1_000_033 + context.rank * 1_000_000_009 + state.step)
                inputs[INPUT_LIDAR_BEV] = drop_sim_lidar(
                    inputs[INPUT_LIDAR_BEV], batch[SAMPLE_DOMAIN], cfg.lidar_dropout, noise_generator
                )
            model.set_training_progress(state.step / total_steps)  # GRL coefficient schedule

            with autocast():
                outputs = trained_model(inputs, batch[SAMPLE_DOMAIN])
            losses = compute_losses(outputs, batch, loss_weights)

            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses.total).backward()
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm or float("inf"))
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            state.step += 1
            samples_since_log += batch[SAMPLE_DOMAIN].shape[0] * context.world_size

            if context.is_main and (state.step % cfg.log_interval == 0 or state.step == total_steps):
                log_step(losses, grad_norm, samples_since_log, time.perf_counter() - time_of_log)
                samples_since_log, time_of_log = 0, time.perf_counter()
            if progress is not None:
                progress.update(1)
            if cfg.val_interval and state.step % cfg.val_interval == 0:
                last_report = run_validation()
            if cfg.checkpoint_interval and state.step % cfg.checkpoint_interval == 0:
                save(LAST_CHECKPOINT)
            if state.step >= total_steps:
                break
        if state.batch_in_epoch >= batches_per_epoch:  # the epoch ran to its end
            state.epoch += 1
            state.batch_in_epoch = 0
            _report_problems(problems, context, writer, state)
            if not cfg.val_interval:
                last_report = run_validation()
            if not cfg.checkpoint_interval:
                save(LAST_CHECKPOINT)

    # -- the end: a final validation (unless the last step just ran one) and checkpoint --
    if val_set is not None and validated_at_step != state.step:
        last_report = run_validation()
    save(LAST_CHECKPOINT)
    if progress is not None:
        progress.close()
    if writer is not None:
        writer.close()
    if context.is_distributed:
        dist.barrier()
    return TrainResult(run_dir, state.step, state.epoch, last_report, model, context.world_size)
