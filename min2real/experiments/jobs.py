"""One (recipe, seed) job of the synthetic experiment, and running many of them in parallel.

A job trains the recipe's miniature, exports both graphs of its best.pt (the checkpoint its
family's selection rule chose on the validation drives, docs/training.md), drives the selection
routes (synth-val) and the test routes (synth-longest6) in both looks, each look with the graph
the paper deploys there (sim graph with the V2R adapter on the sim look, real graph without it on
the real look), and measures the sim-to-real gap on frozen features. Every stage writes its own
result file and is skipped when that file exists, so a killed experiment continues where it
stopped and a finished run is never trained or tested again. timing.json keeps each stage's
wall time (the cost model of docs/experiments.md reads it).
"""

from __future__ import annotations

import json
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from min2real.experiments.plan import LOOKS, SIM_IMAGE_SIZE, Plan

TRAINED_FILE = "trained.json"
DOMAIN_GAP_FILE = "domain_gap.json"
TIMING_FILE = "timing.json"


def _write_json(path: Path, document: dict) -> None:
    """Atomically (temp file + rename): a killed job never leaves a half-written result behind."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(partial, path)


def _record_time(run: Path, stage: str, seconds: float) -> None:
    path = run / TIMING_FILE
    timing = json.loads(path.read_text()) if path.is_file() else {}
    timing[stage] = round(seconds, 2)
    _write_json(path, timing)


def best_checkpoint(run: Path) -> Path:
    best = run / "checkpoints" / "best.pt"
    if not best.is_file():
        raise FileNotFoundError(f"{best} does not exist; the run's selection rule chose no checkpoint")
    return best


def train_stage(plan: Plan, recipe: str, seed: int, roots: dict) -> None:
    import torch

    from min2real.training.recipes import load_miniature
    from min2real.training.trainer import train

    run = plan.run_dir(recipe, seed)
    if (run / TRAINED_FILE).is_file():
        return
    config = load_miniature(
        recipe,
        roots["train"],
        roots["val"],
        plan.steps,
        batch_size=plan.batch_size,
        seed=seed,
        lr=plan.lr,
        extractor_file=plan.extractor,
        overrides=[
            f"train.num_threads={plan.num_threads}",
            "train.channels_last=true",
            # six validations and checkpoints per run, as the bundled recipe: best.pt is chosen
            # among them, and a killed run resumes from the last one
            f"train.val_interval={max(1, plan.steps // 6)}",
            f"train.checkpoint_interval={max(1, plan.steps // 6)}",
            f"data.cache_dir={plan.cache_dir()}",
            *plan.data_overrides(recipe),
        ],
    )
    started = time.perf_counter()
    torch.set_num_threads(plan.num_threads)
    resumed = (run / "checkpoints" / "last.pt").is_file()
    result = train(config, run, resume=resumed)
    seconds = time.perf_counter() - started
    if result.step != plan.steps:
        raise RuntimeError(f"{recipe} seed {seed} stopped at step {result.step}; expected {plan.steps}")
    # a resumed run's time covers only its last part: kept, but not used for the cost per step
    _record_time(run, "train_resumed_s" if resumed else "train_s", seconds)
    _write_json(run / TRAINED_FILE, {"steps": plan.steps, "selects_on": config.selection_domain()})
    print(f"{recipe} seed {seed}: {plan.steps} steps in {seconds:.0f} s", flush=True)


def export_stage(plan: Plan, recipe: str, seed: int) -> dict[str, Path]:
    from min2real.contract import TINY_CONTRACT
    from min2real.export import export_onnx, synthetic_source_camera

    run = plan.run_dir(recipe, seed)
    # every run trained on the synthetic world's sim camera (both --train-data choices): named, not
    # inferred from the data folders (the bundled rounds' folders need not carry synthetic.json)
    camera = synthetic_source_camera(SIM_IMAGE_SIZE, TINY_CONTRACT)
    models = {look: run / f"model_{look}.onnx" for look in LOOKS}
    started = time.perf_counter()
    exported = False
    for look, model in models.items():
        if model.is_file():
            continue
        partial = model.with_name(f"model_{look}.partial.onnx")
        export_onnx(best_checkpoint(run), look, partial, exporter=plan.exporter, source_camera=camera)
        os.replace(partial, model)
        exported = True
    if exported:
        _record_time(run, "export_s", time.perf_counter() - started)
    return models


def drive(model: Path, route_set: str, look: str, results: Path) -> dict:
    """Drive `route_set` closed loop in the `look` world with the exported `model` (direct mode,
    as `min2real closed-loop --model M --routes R --domain L` does); write results.json."""
    from min2real.evaluation.closed_loop.direct import DirectPolicyStack
    from min2real.evaluation.closed_loop.routes import route_set as named_routes
    from min2real.evaluation.closed_loop.run import rendering_camera, run_route_set, write_results
    from min2real.evaluation.closed_loop.simulator import TICK_S
    from min2real.runtime.policy import load_policy

    label, specs = named_routes(route_set)
    policy = load_policy(str(model), domain=look)
    try:
        use_lidar = look == "sim" and "lidar_bev" in policy.backend.input_shapes
        camera = rendering_camera(policy.contract, look)
        document = run_route_set(
            specs,
            lambda spec: DirectPolicyStack(policy, TICK_S, use_lidar),
            look,
            camera,
            use_lidar,
            None,
            label,
            str(model),
            "direct",
            tiles=0,
            progress=False,
            extra={"tick_s": TICK_S, "model_domain": policy.metadata.domain, "backend": policy.backend_name},
        )
    finally:
        policy.close()
    partial = results.with_name(".results.json.partial")
    write_results(partial, document)
    os.replace(partial, results)
    return document


def closed_loop_stage(plan: Plan, recipe: str, seed: int, models: dict[str, Path]) -> None:
    run = plan.run_dir(recipe, seed)
    for route_set, stage in ((plan.val_set, "val"), (plan.test_set, "test")):
        for look in LOOKS:
            results = plan.closed_loop_dir(recipe, seed, route_set, look) / "results.json"
            if results.is_file():
                continue  # the test set is driven once: a finished drive is never repeated
            results.parent.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            document = drive(models[look], route_set, look, results)
            _record_time(run, f"closed_loop_{stage}_{look}_s", time.perf_counter() - started)
            print(
                f"{recipe} seed {seed}: {route_set} {look} look DS {document['driving_score_mean']:.1f}",
                flush=True,
            )


def domain_gap_stage(plan: Plan, recipe: str, seed: int) -> None:
    from min2real.evaluation.domain_features import measure_model, probe_frames
    from min2real.models.checkpoint import model_from_checkpoint

    run = plan.run_dir(recipe, seed)
    if (run / DOMAIN_GAP_FILE).is_file():
        return
    started = time.perf_counter()
    model, _, contract = model_from_checkpoint(best_checkpoint(run))
    report = measure_model(model, probe_frames(contract, plan.probe_drives, plan.probe_frames))
    _write_json(run / DOMAIN_GAP_FILE, report)
    _record_time(run, "domain_gap_s", time.perf_counter() - started)


def run_job(plan: Plan, recipe: str, seed: int, roots: dict) -> tuple[str, int, str | None]:
    """Every stage of one job; (recipe, seed, None) or (recipe, seed, the error's traceback)."""
    import torch

    torch.set_num_threads(plan.num_threads)
    try:
        train_stage(plan, recipe, seed, roots)
        models = export_stage(plan, recipe, seed)
        closed_loop_stage(plan, recipe, seed, models)
        domain_gap_stage(plan, recipe, seed)
    except Exception:  # reported by run_all, which fails the experiment after the other jobs
        return recipe, seed, traceback.format_exc()
    return recipe, seed, None


def job_order(plan: Plan) -> list[tuple[str, int]]:
    """Seed-major, baseline first: every recipe gets its first seed before any gets its second,
    and the baseline's budget check (synth-val DS) is known as early as possible."""
    recipes = sorted(plan.trained_recipes, key=lambda name: name != "baseline")
    return [(recipe, seed) for seed in plan.seeds for recipe in recipes]


def run_all(plan: Plan, roots: dict) -> list[str]:
    """Run every job, `plan.jobs` at a time (one process each); returns the failures' reports."""
    failures = []

    def report(recipe: str, seed: int, error: str | None) -> None:
        if error is not None:  # said at once (a long experiment's log shows it when it happens)
            failures.append(f"{recipe} seed {seed} failed:\n{error}")
            print(f"{recipe} seed {seed} FAILED: {error.strip().splitlines()[-1]}", flush=True)

    order = job_order(plan)
    if plan.jobs == 1:
        for recipe, seed in order:
            report(*run_job(plan, recipe, seed, roots))
    else:
        # spawn, one job per worker: each job gets a fresh interpreter (no forked torch thread
        # pools, no shared state, and the code as it is when the job starts: a worker kept from an
        # earlier job would mix the modules it had loaded with ones edited since)
        context = get_context("spawn")
        with ProcessPoolExecutor(max_workers=plan.jobs, mp_context=context, max_tasks_per_child=1) as pool:
            futures = [pool.submit(run_job, plan, recipe, seed, roots) for recipe, seed in order]
            for future in as_completed(futures):
                report(*future.result())
    return failures
