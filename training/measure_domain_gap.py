"""Sim-to-real measures (docs/experiments.md) of trained checkpoints on the same held-out frames:
the features before and after the V2R adapter against real-look features (discriminator accuracy,
proxy A-distance, linear CKA, MMD², action probes). The experiment runs the same measure per run
(`min2real.experiments.jobs.domain_gap_stage`); this measures any checkpoints, e.g. the bundled
model's rounds:

    .venv/bin/python training/measure_domain_gap.py runs/ns6d/checkpoints/best.pt --out out/domain_gap.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="min2real checkpoints (.pt) with one contract")
    parser.add_argument("--out", type=Path, required=True, help="JSON: {checkpoint: measures}")
    parser.add_argument("--probe-drives", type=int, default=12, help="held-out drives (as the experiment's default)")
    parser.add_argument("--probe-frames", type=int, default=16, help="frames per drive, each in both looks")
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.checkpoints if not path.is_file()]
    if missing:
        parser.error(f"checkpoint(s) not found: {', '.join(missing)}; expected min2real .pt checkpoints")

    from min2real.evaluation.domain_features import measure_model, probe_frames
    from min2real.models.checkpoint import model_from_checkpoint

    frames, first_contract, report = None, None, {}
    for path in args.checkpoints:
        model, _, contract = model_from_checkpoint(path)
        if frames is None:
            frames, first_contract = probe_frames(contract, args.probe_drives, args.probe_frames), contract
        elif contract != first_contract:
            parser.error(f"{path} has another contract than {args.checkpoints[0]}; expected one contract for all")
        report[str(path)] = measure_model(model.eval(), frames)
        after = report[str(path)]["after_adapter"]
        print(f"{path}: {json.dumps(report[str(path)]['before_adapter'])}\n  after the adapter: {json.dumps(after)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
