"""`min2real model info`: parameter counts, contract and FLOPs of a model variant or training config."""

from __future__ import annotations

import argparse
import json
import os

HELP = "inspect the Min2Real network (model info --config <variant name | training YAML> [--tiny]): parameters, adapter bottleneck, FLOPs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="model_action", metavar="ACTION")
    info = actions.add_parser(
        "info",
        help="per-module parameter counts (total, trainable), the contract and FLOPs at the contract's input size",
    )
    info.add_argument(
        "--config",
        required=True,
        help="a variant name (e.g. min2real, baseline, ablation_adapter) or a training YAML with a 'model:' mapping "
        "(variant + overrides) and optionally 'contract:' (Contract fields, or 'tiny')",
    )
    info.add_argument(
        "--tiny", action="store_true", help="CPU-test-size network and, unless the YAML sets one, TINY_CONTRACT"
    )


def run(args: argparse.Namespace) -> int:
    if getattr(args, "model_action", None) != "info":
        print("usage: min2real model info --config <variant name | training YAML> [--tiny]")
        return 2
    config, contract = load_model_spec(args.config, tiny=args.tiny)
    print(model_info_text(config, contract))
    return 0


def load_model_spec(spec: str, tiny: bool = False):
    """Variant name or training YAML path -> (ModelConfig, Contract)."""
    from min2real.contract import DEFAULT_CONTRACT, TINY_CONTRACT
    from min2real.models.variants import VARIANTS, model_config_from_mapping, variant_config

    default_contract = TINY_CONTRACT if tiny else DEFAULT_CONTRACT
    if not (spec.endswith((".yaml", ".yml")) or os.path.isfile(spec)):
        if spec not in VARIANTS:
            raise SystemExit(
                f"--config {spec!r} is neither a YAML file nor a model variant; variants: {sorted(VARIANTS)}"
            )
        return variant_config(spec, tiny=tiny), default_contract
    import yaml

    if not os.path.isfile(spec):
        raise SystemExit(f"--config {spec!r}: file not found")
    with open(spec, encoding="utf-8") as stream:
        document = yaml.safe_load(stream) or {}
    if not isinstance(document, dict) or "model" not in document:
        raise SystemExit(
            f"--config {spec!r} has no 'model:' mapping (expected model: {{variant: <name>, ...overrides}})"
        )
    config = model_config_from_mapping(document["model"], tiny=tiny)
    contract_spec = document.get("contract")
    if contract_spec is None:
        return config, default_contract
    # The training config's own reading of `contract:` ("tiny", "default", or Contract fields on
    # top of an optional `preset`, as `--set contract.<field>=...` writes it), so the two agree.
    from min2real.training.config import ConfigError, TrainConfig

    try:
        contract = TrainConfig(contract=contract_spec).build_contract()
    except (ConfigError, ValueError) as error:
        raise SystemExit(f"--config {spec!r}: {error}") from error
    return config, contract


def adapter_bottleneck_text(model) -> str:
    """One line on the V2R adapter's bottleneck: its shape, size and compression ratio."""
    adapter = getattr(model, "adapter", None)
    if adapter is None:
        return "V2R adapter: none"
    channels, height, width = adapter.bottleneck_shape
    in_h, in_w = adapter.in_hw
    return (
        f"V2R adapter bottleneck: {channels} x {height} x {width} = {adapter.bottleneck_size:,} values per image "
        f"(1/16 resolution), compression ratio {adapter.compression_ratio:.3f} of the 3 x {in_h} x {in_w} = "
        f"{3 * in_h * in_w:,} input values ({1 / adapter.compression_ratio:.1f}x); identity path: none; "
        f"low-capacity skip: {'on' if adapter.skip else 'off'}"
    )


def model_info_text(config, contract) -> str:
    """Parameter table, contract JSON and FLOPs (batch 1) of the model `config` builds."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from min2real.models.model import build_model

    model = build_model(config, contract)
    lines = [f"model variant {config.variant!r}  weights {json.dumps(model.weights_provenance())}", ""]
    lines.append(f"{'module':<22}{'parameters':>14}{'trainable':>14}")
    total = trainable = 0
    for name, child in model.named_children():
        count = sum(p.numel() for p in child.parameters())
        grad = sum(p.numel() for p in child.parameters() if p.requires_grad)
        total, trainable = total + count, trainable + grad
        lines.append(f"{name:<22}{count:>14,}{grad:>14,}")
    lines.append(f"{'total':<22}{total:>14,}{trainable:>14,}")
    lines += ["", adapter_bottleneck_text(model), "", f"contract {contract.to_json()}", ""]

    inputs = [torch.zeros(shape) for shape in contract.input_shapes(batch=1).values()]
    for domain in ("sim", "real"):
        graph = model.deploy(domain)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            graph(*inputs)
        per_module = {
            key.split(".")[-1]: sum(counts.values())
            for key, counts in counter.get_flop_counts().items()
            if key.count(".") == 2  # DeployModule.model.<child>
        }
        detail = ", ".join(f"{name} {flops / 1e9:.3f}" for name, flops in per_module.items())
        lines.append(f"FLOPs ({domain} graph, batch 1): {counter.get_total_flops() / 1e9:.3f} GFLOP  [{detail}]")
    return "\n".join(lines)
