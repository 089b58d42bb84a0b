"""The experiment's write-up: Markdown tables, the figure (DS per recipe with intervals, per look),
the cost model, and the section it replaces in docs/experiments.md (between the markers)."""

from __future__ import annotations

import math
from pathlib import Path

from min2real.experiments.plan import BASELINE, ISSUE_BUDGET_STEPS, LOOKS, SAME_RUNS, Plan
from min2real.experiments.results import GAP_MEASURES, OPEN_LOOP
from min2real.training.recipes import ABLATION_RECIPES, TABLE_I_RECIPES

DOCS_BEGIN = "<!-- experiment-synthetic:begin -->"
DOCS_END = "<!-- experiment-synthetic:end -->"
# The issue's budget (issue 24): the bundled recipe's steps and data, 11 recipes x 3 seeds, all of
# synth-val (12 routes) and synth-longest6 (36 routes) in both looks.
ISSUE_SEEDS, ISSUE_ROUTES = 3, (12 + 36) * len(LOOKS)
ISSUE_RECIPES = (*TABLE_I_RECIPES, *ABLATION_RECIPES)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _mean_std(entry: dict | None, digits: int = 2) -> str:
    if entry is None:
        return "-"
    std = entry.get("std")
    return _fmt(entry["mean"], digits) + (f" ± {_fmt(std, digits)}" if std is not None else "")


def closed_loop_table(table: dict[str, dict]) -> list[str]:
    lines = [
        "| recipe | seeds x routes | DS mean ± std (seeds) | DS 95 % interval | Δ vs baseline [95 % interval] | claimed |",
        "|---|---|---|---|---|---|",
    ]
    for recipe, entry in table.items():
        interval = entry["interval"]
        difference = entry["difference"]
        if recipe == BASELINE:
            delta, claimed = "(reference)", "-"
        elif difference is None:
            delta, claimed = "- (no baseline seed)", "-"
        else:
            delta, claimed = _delta(difference)
        std = f" ± {entry['std']:.1f}" if entry["std"] is not None else ""
        lines.append(
            f"| {recipe} | {len(entry['seeds'])} x {entry['routes']} | {entry['mean']:.1f}{std} | "
            f"[{interval['low']:.1f}, {interval['high']:.1f}] | {delta} | {claimed} |"
        )
    return lines


def _delta(difference: dict | None) -> tuple[str, str]:
    """(estimate [interval], claimed) of a paired difference."""
    if difference is None:
        return "- (no seed driven by both)", "-"
    delta = f"{difference['estimate']:+.1f} [{difference['low']:+.1f}, {difference['high']:+.1f}]"
    return delta, ("better" if difference["low"] > 0 else "worse") if difference["claimed"] else "no"


def comparison_table(rows_by_look: dict[str, list[dict]]) -> list[str]:
    """One line per paper comparison: the paired difference in each look."""
    lines = [
        "| recipe vs reference | what differs | seeds x routes | "
        + " | ".join(f"Δ {look} look [95 % interval] | claimed" for look in rows_by_look)
        + " |",
        "|---|---|---|" + "---|---|" * len(rows_by_look),
    ]
    looks = list(rows_by_look)
    for index, row in enumerate(rows_by_look[looks[0]]):
        cells, size = [], "-"
        for look in looks:
            difference = rows_by_look[look][index]["difference"]
            cells += list(_delta(difference))
            if difference is not None and size == "-":
                size = f"{len(difference['seeds'])} x {difference['cells'] // len(difference['seeds'])}"
        lines.append(f"| {row['recipe']} vs {row['reference']} | {row['what']} | {size} | " + " | ".join(cells) + " |")
    return lines


def open_loop_table(table: dict[str, dict]) -> list[str]:
    lines = [
        "| recipe | seeds | selected at step | " + " | ".join(OPEN_LOOP) + " |",
        "|---|---|---|" + "---|" * len(OPEN_LOOP),
    ]
    for recipe, entry in table.items():
        steps = ", ".join(str(step) for step in entry["selected_steps"])
        cells = [_mean_std(entry[column]) for column in OPEN_LOOP]
        lines.append(f"| {recipe} | {entry['seeds']} | {steps} | " + " | ".join(cells) + " |")
    return lines


GAP_COLUMNS = {
    "discriminator_accuracy": "disc. acc.",
    "proxy_a_distance": "proxy A-dist.",
    "linear_cka": "CKA",
    "rbf_mmd2": "MMD²",
    "probe_steer_real_bal_acc": "steer probe (real)",
    "probe_target_speed_real_bal_acc": "speed probe (real)",
}


def domain_gap_table(table: dict[str, dict]) -> list[str]:
    lines = [
        "| recipe | features | " + " | ".join(GAP_COLUMNS[name] for name in GAP_MEASURES) + " |",
        "|---|---|" + "---|" * len(GAP_MEASURES),
    ]
    for recipe, entry in table.items():
        for stage, label in (("before_adapter", "sim plain vs real"), ("after_adapter", "sim adapted vs real")):
            if entry.get(stage) is None:
                continue
            cells = [_mean_std(entry[stage][name]) for name in GAP_MEASURES]
            lines.append(f"| {recipe} | {label} | " + " | ".join(cells) + " |")
    return lines


def figure(results: dict, path: Path) -> Path | None:
    """DS per recipe with its 95 % interval, one panel per look, on the test routes (selection
    routes hollow beside them)."""
    from min2real.evaluation import figures

    closed_loop = results["closed_loop"]
    if not any(closed_loop["test"][look] or closed_loop["val"][look] for look in LOOKS):
        return None
    plt = figures.pyplot()
    recipes = list(dict.fromkeys(r for stage in closed_loop.values() for look in LOOKS for r in stage[look]))
    fig, axes = plt.subplots(1, len(LOOKS), figsize=(5.5 * len(LOOKS), 0.45 * len(recipes) + 1.6), sharey=True)
    for ax, look in zip(axes, LOOKS):
        for offset, stage, style in ((-0.15, "test", "o"), (0.15, "val", "s")):
            table = closed_loop[stage][look]
            ys = [i + offset for i, recipe in enumerate(recipes) if recipe in table]
            entries = [table[recipe] for recipe in recipes if recipe in table]
            if not entries:
                continue
            means = [entry["mean"] for entry in entries]
            errors = [
                [m - e["interval"]["low"] for m, e in zip(means, entries)],
                [e["interval"]["high"] - m for m, e in zip(means, entries)],
            ]
            ax.errorbar(
                means,
                ys,
                xerr=errors,
                fmt=style,
                mfc="none" if stage == "val" else None,
                capsize=3,
                label=f"{results['route_sets'][stage]} ({'test' if stage == 'test' else 'selection'})",
            )
        ax.set_title(f"{look} look ({look} graph)")
        ax.set_xlabel("driving score (mean, 95 % bootstrap interval over routes x seeds)")
        ax.set_xlim(0, 100)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(recipes)), recipes)
    axes[0].invert_yaxis()
    axes[-1].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"budget {results['budget_key']}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cost_model(plan: Plan, timing: dict, cores: tuple[int, ...] = (2, 16, 64)) -> list[str]:
    """The issue budget's cost from this plan's measured stage times (one process per core): each
    of the issue's recipes at the step time measured for its image backbone (the mean of all
    measured runs where its backbone was not measured)."""
    from min2real.experiments.results import image_backbone

    mean, by_backbone = timing["mean_s"], timing["step_s_by_backbone"]
    if not by_backbone:
        return ["No finished run yet: nothing to extrapolate from."]
    fallback = mean["train_s"] / plan.steps
    drive_s = [seconds for stage, seconds in mean.items() if stage.startswith("closed_loop_")]
    routes_here = _route_count(plan.val_set) + _route_count(plan.test_set)
    route_s = sum(drive_s) / (routes_here * len(LOOKS)) if drive_s else 0.0
    other_s = mean.get("export_s", 0.0) + mean.get("domain_gap_s", 0.0)
    runs_s = [
        ISSUE_BUDGET_STEPS * by_backbone.get(image_backbone(recipe), fallback) + ISSUE_ROUTES * route_s + other_s
        for recipe in ISSUE_RECIPES
        if SAME_RUNS.get(recipe) not in ISSUE_RECIPES
        for _ in range(ISSUE_SEEDS)
    ]
    total_s = sum(runs_s)
    per_step = ", ".join(f"{backbone} {seconds:.2f} s" for backbone, seconds in sorted(by_backbone.items()))
    data = (
        "the bundled model's data, written by training/bundled_dagger.sh (not counted here)"
        if plan.train_data == "bundled"
        else "the data: " + ", ".join(f"{split} {_fmt(seconds, 0)} s" for split, seconds in timing["data_s"].items())
    )
    return [
        f"Wall time of this experiment's runs: {timing['total_s'] / 60:.0f} min in all (the sum of every stage of "
        f"every finished run), plus {data}.",
        "",
        f"Measured here ({timing['runs']} runs of {plan.steps} steps): per training step (validations and the "
        f"one-off sample cache included) {per_step}; {route_s:.1f} s per closed-loop route drive; "
        f"{other_s:.0f} s export + sim-to-real measures per run.",
        "",
        f"Extrapolated to the issue's budget ({len(runs_s)} runs of {ISSUE_BUDGET_STEPS} steps, {ISSUE_ROUTES} route "
        f"drives each, at these per-step and per-route times): {total_s / 3600:.0f} CPU-hours; wall time with "
        + ", ".join(f"--jobs {n}: {_makespan(runs_s, n) / 3600:.1f} h" for n in cores)
        + " (runs scheduled longest first"
        + ("" if plan.train_data == "bundled" else "; plus the data, written once")
        + ").",
    ]


def _makespan(runs_s: list[float], workers: int) -> float:
    """Wall time of running `runs_s` on `workers` processes, each run to the least loaded one."""
    loads = [0.0] * workers
    for seconds in sorted(runs_s, reverse=True):
        loads[loads.index(min(loads))] += seconds
    return max(loads)


def _route_count(route_set: str) -> int:
    from min2real.evaluation.closed_loop.routes import route_set as named_routes

    return len(named_routes(route_set)[1])


def command_line(plan: Plan) -> str:
    parts = [
        "nice -n 19 .venv/bin/python training/experiment_synthetic.py",
        f"--out {plan.out}",
        f"--jobs {plan.jobs}",
        "--recipes " + " ".join(plan.recipes),
        "--seeds " + " ".join(str(seed) for seed in plan.seeds),
        f"--steps {plan.steps} --batch-size {plan.batch_size} --lr {plan.lr:g}",
        *(
            [f"--train-data bundled --data-root {plan.data_root}"]
            if plan.train_data == "bundled"
            else [
                "--train-data synthetic",
                f"--train-frames {plan.train_frames} --train-routes {plan.train_routes}",
                f"--val-frames {plan.val_frames} --val-routes {plan.val_routes}",
                f"--traffic {plan.traffic:g} --obstacles {plan.obstacles:g}",
            ]
        ),
        f"--val-set {plan.val_set} --test-set {plan.test_set}",
        f"--probe-drives {plan.probe_drives} --probe-frames {plan.probe_frames}",
        *([f"--exporter {plan.exporter}"] if plan.exporter != "dynamo" else []),
    ]
    return " \\\n    ".join(parts)


def markdown(plan: Plan, results: dict, figure_link: str | None) -> str:
    gate = results["budget_gate"]
    at_issue_budget = (
        plan.steps >= ISSUE_BUDGET_STEPS
        and len(plan.seeds) >= ISSUE_SEEDS
        and set(ISSUE_RECIPES) <= set(plan.recipes)
        and plan.train_data == "bundled"  # the bundled recipe's data scale (the expert drives alone fail the gate)
        and (plan.val_set, plan.test_set) == ("synth-val", "synth-longest6")
    )
    if gate["baseline_val_sim_ds"] is None:
        verdict = "not measured yet (no baseline drive on the selection routes)."
    elif gate["met"]:
        verdict = "met."
    else:
        verdict = "**not met**: the baseline does not drive at this budget, so driving differences are differences in failing."
    lines = [
        f"Budget `{results['budget_key']}`: "
        + (
            "the issue's budget."
            if at_issue_budget
            else f"**below the issue's budget** ({plan.steps} steps, {len(plan.seeds)} seed(s), "
            f"{plan.val_set} / {plan.test_set}); these numbers are not the issue's result."
        ),
        "",
        f"Runs trained: {results['timing']['runs']} of {len(plan.trained_recipes) * len(plan.seeds)} "
        f"({len(plan.trained_recipes)} recipes x {len(plan.seeds)} seeds); a table with fewer is a partial result.",
        *[
            f"{recipe} is reported from {SAME_RUNS[recipe]}'s runs (its recipe differs only in the variant's name)."
            for recipe in plan.recipes
            if recipe not in plan.trained_recipes
        ],
        "",
        "Budget check (baseline sim-look DS on the selection routes >= "
        f"{gate['threshold']:.0f}): {_fmt(gate['baseline_val_sim_ds'])} -> {verdict}",
        "",
        "```",
        command_line(plan),
        "```",
        "",
    ]
    for stage, title in (("test", "Test routes, driven once"), ("val", "Selection routes")):
        for look in LOOKS:
            table = results["closed_loop"][stage][look]
            if table:
                lines += [
                    f"#### {title}: {results['route_sets'][stage]}, {look} look ({look} graph)",
                    "",
                    *closed_loop_table(table),
                    "",
                ]
    for stage, title in (("test", "test routes"), ("val", "selection routes")):
        rows = results.get("comparisons", {}).get(stage, {})
        if rows and any(rows.values()):
            lines += [
                f"#### The paper's comparisons, paired: {results['route_sets'][stage]} ({title}), each look "
                "driven by its graph",
                "",
                *comparison_table(rows),
                "",
            ]
    if results.get("open_loop"):
        lines += [
            "#### Open loop: validation drives, the checkpoint each family's rule selected (mean ± std over seeds)",
            "",
            *open_loop_table(results["open_loop"]),
            "",
        ]
    if figure_link:
        lines += [f"![DS per recipe with 95 % intervals, per look]({figure_link})", ""]
    if results["domain_gap"]:
        frames = next(iter(results["domain_gap"].values())).get("frames") or {}
        lines += [
            f"#### Sim-to-real measures on frozen features ({frames.get('pairs', '?')} held-out frame pairs, "
            f"{frames.get('drives', '?')} drives; mean ± std over seeds)",
            "",
            *domain_gap_table(results["domain_gap"]),
            "",
        ]
    lines += ["#### Wall time and cost", "", *cost_model(plan, results["timing"]), ""]
    return "\n".join(lines)


def write_docs(path: Path, section: str) -> None:
    """Replace the text between the experiment markers of `path` with `section`."""
    text = path.read_text()
    if DOCS_BEGIN not in text or DOCS_END not in text:
        raise ValueError(f"{path} has no {DOCS_BEGIN} ... {DOCS_END} markers; add them where the results go")
    head, rest = text.split(DOCS_BEGIN, 1)
    _, tail = rest.split(DOCS_END, 1)
    path.write_text(f"{head}{DOCS_BEGIN}\n{section}\n{DOCS_END}{tail}")
