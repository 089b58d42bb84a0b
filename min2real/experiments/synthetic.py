"""`training/experiment_synthetic.py`: the paper's Table I and Fig. 6 on the synthetic world.

    nice -n 19 .venv/bin/python training/experiment_synthetic.py --out out/experiment --jobs 16
    .venv/bin/python training/experiment_synthetic.py --out out/experiment --report-only --docs docs/experiments.md

Writes the data once, runs every (recipe, seed) job (`jobs`: train, export, closed loop on the
selection and test routes in both looks, sim-to-real measures) `--jobs` at a time, keeps whatever
finished, then gathers the statistics (`results`) into OUT/results.json, OUT/results.md and
OUT/figures/ds_per_recipe.png, and with `--docs FILE` into FILE between its experiment markers.
"""

from __future__ import annotations

import json
import shutil
import sys
import time

from min2real.experiments.jobs import run_all
from min2real.experiments.plan import parse_args, plan_from_args, write_data
from min2real.experiments.report import figure, markdown, write_docs
from min2real.experiments.results import gather

FIGURE_NAME = "ds_per_recipe.png"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plan = plan_from_args(args)
    plan.out.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    started = time.perf_counter()
    if not args.report_only:
        roots = write_data(plan)
        failures = run_all(plan, roots)
        print(
            f"experiment: {len(plan.trained_recipes) * len(plan.seeds)} jobs in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    results = gather(plan)
    (plan.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    figure_path = figure(results, plan.out / "figures" / FIGURE_NAME)
    link = figure_path.name if figure_path else None
    if args.docs is not None and figure_path is not None:
        # the figure goes beside the docs page, named by the budget (a reduced run never overwrites another's)
        target = args.docs.parent / "figures" / f"experiment_synthetic_{plan.budget_key}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(figure_path, target)
        link = f"figures/{target.name}"
    text = markdown(plan, results, link)
    (plan.out / "results.md").write_text(text + "\n")
    if args.docs is not None:
        write_docs(args.docs, text)
    print(text)
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0
