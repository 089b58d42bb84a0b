"""`min2real pretrain`: make the stand-in foundation model (min2real.training.pretrain).

    min2real pretrain --out models/extractor                            # the shipped extractor
    min2real pretrain --out /tmp/x --set steps=50 --set drives=4 --set probe_drives=4   # a quick look

Renders real-look synthetic drives from the reserved seeds, pretrains a small ViT by masked
auto-encoding (no labels, no sim images), saves it as a timm state dict (safetensors), runs the
linear probe against a random-init ViT and writes OUT/pretrain.json and the card OUT/README.md.
Settings are the fields of `PretrainConfig`; `--set key=value` overrides one (value parsed as YAML).
"""

from __future__ import annotations

import argparse

HELP = "pretrain the stand-in foundation model (MAE ViT on unlabelled real-look images) with its card"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (weights, pretrain.json, README.md)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a PretrainConfig field (repeatable), e.g. --set steps=2400",
    )
    parser.add_argument("--no-card", action="store_true", help="do not (re)write OUT/README.md")


def run(args: argparse.Namespace) -> int:
    import shlex
    import sys
    from pathlib import Path

    from min2real.training.pretrain import PretrainConfig, pretrain, write_card

    try:
        config = PretrainConfig.from_overrides(args.overrides)
        config.validate()
    except ValueError as error:
        print(f"min2real pretrain: {error}", file=sys.stderr)
        return 2
    command = " ".join(
        ["min2real pretrain", "--out", shlex.quote(str(args.out))] + [f"--set {shlex.quote(o)}" for o in args.overrides]
    )
    result = pretrain(config, args.out, log=lambda text: print(text, flush=True))
    probe = result.probe
    print(
        f"min2real pretrain: {result.weights_path} (sha256 {result.sha256[:16]}...), linear probe balanced accuracy "
        f"{probe['stand_in']['features']['balanced_accuracy']:.3f} "
        f"(random init {probe['random_init']['features']['balanced_accuracy']:.3f})"
    )
    if not args.no_card:
        print(f"card: {write_card(Path(args.out), command)}")
    return 0
