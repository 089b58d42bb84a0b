"""The finished runs of a plan, gathered and reduced to statistics (min2real.evaluation.statistics):
per recipe, route set and look the driving scores as (seeds, routes) matrices, mean ± std over
seeds, the bootstrap interval over routes x seeds, and the paired difference against the baseline
(same seeds, same routes); the sim-to-real measures averaged over seeds; the stage wall times."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from min2real.evaluation.statistics import aligned_matrix, bootstrap_interval, mean_std, paired_difference
from min2real.experiments.jobs import DOMAIN_GAP_FILE, TIMING_FILE, TRAINED_FILE
from min2real.experiments.plan import BASELINE, BUDGET_GATE_DS, LOOKS, PAPER_COMPARISONS, Plan


def route_scores(results: Path) -> dict[str, float]:
    return {route["name"]: float(route["driving_score"]) for route in json.loads(results.read_text())["routes"]}


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def closed_loop_scores(plan: Plan, recipe: str, route_set: str, look: str) -> dict[int, dict[str, float]]:
    """{seed: {route: DS}} over the seeds whose drive finished."""
    scores = {}
    for seed in plan.seeds:
        results = plan.closed_loop_dir(recipe, seed, route_set, look) / "results.json"
        if results.is_file():
            scores[seed] = route_scores(results)
    return scores


def closed_loop_statistics(plan: Plan, route_set: str, look: str) -> dict[str, dict]:
    """Per recipe: seeds, routes, mean, std, bootstrap interval, and the paired difference to the
    baseline over the seeds both finished (claimed only where its interval excludes zero)."""
    baseline = closed_loop_scores(plan, BASELINE, route_set, look)
    table: dict[str, dict] = {}
    for recipe in plan.recipes:
        scores = closed_loop_scores(plan, recipe, route_set, look)
        if not scores:
            continue
        seeds = sorted(scores)
        routes = sorted(scores[seeds[0]])
        matrix = aligned_matrix(scores, seeds, routes)
        mean, std = mean_std(matrix)
        entry: dict = {
            "seeds": seeds,
            "routes": len(routes),
            "mean": mean,
            "std": None if math.isnan(std) else std,
            "interval": bootstrap_interval(matrix).as_dict(),
            "per_seed": matrix.mean(axis=1).tolist(),
            "difference": None,
        }
        if recipe != BASELINE:
            entry["difference"] = paired(scores, baseline)
        table[recipe] = entry
    return table


def paired(scores: dict[int, dict[str, float]], reference: dict[int, dict[str, float]]) -> dict | None:
    """scores - reference over the seeds both finished and the same routes, with its interval; None
    when they share no seed."""
    shared = [seed for seed in sorted(scores) if seed in reference]
    if not shared:
        return None
    routes = sorted(scores[shared[0]])
    difference = paired_difference(aligned_matrix(scores, shared, routes), aligned_matrix(reference, shared, routes))
    return {**difference.as_dict(), "seeds": shared}


def comparison_statistics(plan: Plan, route_set: str, look: str) -> list[dict]:
    """The paper's comparisons (plan.PAPER_COMPARISONS) whose two recipes this plan ran, paired."""
    rows = []
    for recipe, reference, what in PAPER_COMPARISONS:
        if recipe in plan.recipes and reference in plan.recipes:
            scores = closed_loop_scores(plan, recipe, route_set, look)
            difference = paired(scores, closed_loop_scores(plan, reference, route_set, look)) if scores else None
            rows.append({"recipe": recipe, "reference": reference, "what": what, "difference": difference})
    return rows


OPEN_LOOP = {
    # column: (domain, key) in the validation record of the checkpoint best.pt holds
    "real ADE (m)": ("real", "ade_m"),
    "real steer macro-F1": ("real", "steer_macro_f1"),
    "sim ADE (m)": ("sim", "ade_m"),
    "sim steer macro-F1": ("sim", "steer_macro_f1"),
}


def selected_record(run: Path) -> dict | None:
    """The validation record of the step best.pt was saved at (the first lowest ADE on the run's
    selection domain, as the trainer chose it)."""
    from min2real.training.trainer import selection_ade

    trained = _read(run / TRAINED_FILE)
    if trained is None:
        return None
    best, best_ade = None, None
    for path in sorted((run / "metrics").glob("step_*.json")):
        record = json.loads(path.read_text())
        ade = selection_ade(record["metrics"], trained["selects_on"])
        if ade is not None and (best_ade is None or ade < best_ade):
            best, best_ade = record, ade
    return best


def open_loop_statistics(plan: Plan) -> dict[str, dict]:
    """Per recipe: the selected checkpoint's validation metrics, mean and std over seeds."""
    table: dict[str, dict] = {}
    for recipe in plan.recipes:
        records = [r for seed in plan.seeds if (r := selected_record(plan.run_dir(recipe, seed))) is not None]
        if not records:
            continue
        entry: dict = {"seeds": len(records), "selected_steps": [record["step"] for record in records]}
        for column, (domain, key) in OPEN_LOOP.items():
            values = [float(v) for r in records if (v := r["metrics"].get(domain, {}).get(key)) is not None]
            entry[column] = _summary(values)
        table[recipe] = entry
    return table


def _summary(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else None}


GAP_MEASURES = (
    "discriminator_accuracy",
    "proxy_a_distance",
    "linear_cka",
    "rbf_mmd2",
    "probe_steer_real_bal_acc",
    "probe_target_speed_real_bal_acc",
)


def domain_gap_statistics(plan: Plan) -> dict[str, dict]:
    """Per recipe and stage (before / after the adapter): mean and std over seeds of each measure."""
    table: dict[str, dict] = {}
    for recipe in plan.recipes:
        reports = [
            report for seed in plan.seeds if (report := _read(plan.run_dir(recipe, seed) / DOMAIN_GAP_FILE)) is not None
        ]
        if not reports:
            continue
        entry: dict = {"seeds": len(reports)}
        for stage in ("before_adapter", "after_adapter"):
            parts = [report[stage] for report in reports if report.get(stage)]
            if not parts:
                entry[stage] = None
                continue
            entry[stage] = {}
            for name in GAP_MEASURES:
                values = [part[name] for part in parts if part.get(name) is not None]
                entry[stage][name] = (
                    None
                    if not values
                    else {
                        "mean": float(np.mean(values)),
                        "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                    }
                )
        entry["chance"] = {
            name: reports[0]["before_adapter"][f"probe_{name}_chance"] for name in ("steer", "target_speed")
        }
        entry["frames"] = reports[0].get("frames")
        table[recipe] = entry
    return table


def image_backbone(recipe: str) -> str:
    """The recipe's image backbone ("resnet" or "dinov2"): what a training step costs depends on it."""
    from min2real.training.recipes import load_recipe

    config = load_recipe(recipe, ["model.dinov2_weights=none", "model.resnet_pretrained=false"])
    return config.model_config().image_backbone


def timing_statistics(plan: Plan) -> dict:
    """Mean wall seconds per stage over the finished runs, training seconds per step by image
    backbone, and the data's generation time."""
    stages: dict[str, list[float]] = {}
    step_s: dict[str, list[float]] = {}
    runs, total_s = 0, 0.0
    for recipe in plan.trained_recipes:
        for seed in plan.seeds:
            timing = _read(plan.run_dir(recipe, seed) / TIMING_FILE)
            if timing is None or not (plan.run_dir(recipe, seed) / TRAINED_FILE).is_file():
                continue
            runs += 1
            total_s += sum(float(seconds) for seconds in timing.values())
            for stage, seconds in timing.items():
                stages.setdefault(stage, []).append(float(seconds))
            if "train_s" in timing:  # an uninterrupted training (see jobs.train_stage)
                step_s.setdefault(image_backbone(recipe), []).append(float(timing["train_s"]) / plan.steps)
    data = {}
    for split in ("train", "val"):
        seconds = plan.data_dir() / split / "seconds.txt"
        data[split] = float(seconds.read_text()) if seconds.is_file() else None
    return {
        "runs": runs,
        "total_s": total_s,
        "mean_s": {stage: float(np.mean(v)) for stage, v in stages.items()},
        "step_s_by_backbone": {backbone: float(np.mean(v)) for backbone, v in step_s.items()},
        "data_s": data,
    }


def budget_gate(closed_loop: dict) -> dict:
    """The issue's condition on the budget: the baseline's sim-look DS on the selection routes."""
    baseline = closed_loop.get("val", {}).get("sim", {}).get(BASELINE)
    mean = baseline["mean"] if baseline else None
    return {
        "threshold": BUDGET_GATE_DS,
        "baseline_val_sim_ds": mean,
        "met": mean is not None and mean >= BUDGET_GATE_DS,
    }


def gather(plan: Plan) -> dict:
    closed_loop = {
        stage: {look: closed_loop_statistics(plan, route_set, look) for look in LOOKS}
        for stage, route_set in (("val", plan.val_set), ("test", plan.test_set))
    }
    comparisons = {
        stage: {look: comparison_statistics(plan, route_set, look) for look in LOOKS}
        for stage, route_set in (("val", plan.val_set), ("test", plan.test_set))
    }
    return {
        "budget_key": plan.budget_key,
        "route_sets": {"val": plan.val_set, "test": plan.test_set},
        "closed_loop": closed_loop,
        "comparisons": comparisons,
        "budget_gate": budget_gate(closed_loop),
        "open_loop": open_loop_statistics(plan),
        "domain_gap": domain_gap_statistics(plan),
        "timing": timing_statistics(plan),
    }
