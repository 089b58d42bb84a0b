"""The synthetic sim-to-real experiment of docs/experiments.md (issue 24): the paper's six Table I
recipes and the Fig. 6 ablations, three seeds at the bundled recipe's budget, closed loop on
synth-val (selection) and synth-longest6 (test) in both looks, with statistics and sim-to-real
measures. The logic lives in `min2real.experiments` (plan, jobs, results, report).

    nice -n 19 .venv/bin/python training/experiment_synthetic.py --out out/experiment --jobs 16
    .venv/bin/python training/experiment_synthetic.py --out out/experiment --report-only --docs docs/experiments.md

Finished runs are kept (keyed by recipe, seed and budget) and skipped when started again.
"""

from __future__ import annotations

import sys

from min2real.experiments.synthetic import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
