"""`min2real model info` and the variant / training-YAML config resolution."""

from __future__ import annotations

import argparse
import re

import pytest
import yaml

from min2real.cli import COMMANDS
from min2real.cli import model as model_command
from min2real.contract import TINY_CONTRACT
from min2real.models.variants import VARIANTS, model_config_from_mapping, variant_config


def run_info(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    model_command.add_arguments(parser)
    return model_command.run(parser.parse_args(argv))


def test_model_subcommand_is_registered():
    assert COMMANDS["model"] == "model"


def test_model_info_prints_parameters_contract_and_flops(capsys):
    assert run_info(["info", "--config", "min2real", "--tiny"]) == 0
    text = capsys.readouterr().out
    # Frozen DINOv2: all parameters, none trainable.
    row = re.search(r"^image_backbone\s+([\d,]+)\s+([\d,]+)$", text, re.MULTILINE)
    assert row and int(row.group(1).replace(",", "")) > 0 and row.group(2) == "0"
    adapter = re.search(r"^adapter\s+([\d,]+)\s+([\d,]+)$", text, re.MULTILINE)
    assert adapter and adapter.group(1) == adapter.group(2)
    from min2real.models.model import build_model

    model = build_model(variant_config("min2real", tiny=True), TINY_CONTRACT)
    total = re.search(r"^total\s+([\d,]+)\s+([\d,]+)$", text, re.MULTILINE)
    assert int(total.group(1).replace(",", "")) == sum(p.numel() for p in model.parameters())
    assert int(total.group(2).replace(",", "")) == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert TINY_CONTRACT.to_json() in text
    # The V2R adapter's bottleneck: its shape, size and compression ratio against the camera image.
    bottleneck = re.search(r"bottleneck: (\d+) x (\d+) x (\d+) = ([\d,]+) values .* ratio ([\d.]+)", text)
    assert bottleneck, text
    channels, height, width = (int(bottleneck.group(k)) for k in (1, 2, 3))
    assert (channels, height, width) == (128, 6, 16) and int(bottleneck.group(4).replace(",", "")) == 128 * 6 * 16
    assert float(bottleneck.group(5)) == pytest.approx(128 * 6 * 16 / (3 * 96 * 256), abs=1e-3)
    flops = {
        m.group(1): float(m.group(2)) for m in re.finditer(r"FLOPs \((\w+) graph, batch 1\): ([\d.]+) GFLOP", text)
    }
    assert set(flops) == {"sim", "real"} and flops["sim"] > flops["real"] > 0  # the adapter costs FLOPs


def test_model_info_reads_a_training_yaml(tmp_path, capsys):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"model": {"variant": "ablation_adapter", "feature_dim": 32}, "contract": "tiny"}))
    config, contract = model_command.load_model_spec(str(path), tiny=True)
    assert (config.variant, config.feature_dim, config.use_adapter, config.use_discriminator) == (
        "ablation_adapter",
        32,
        True,
        False,
    )
    assert contract == TINY_CONTRACT
    assert run_info(["info", "--config", str(path), "--tiny"]) == 0
    assert "model variant 'ablation_adapter'" in capsys.readouterr().out

    path.write_text(yaml.safe_dump({"model": {"variant": "baseline"}, "contract": TINY_CONTRACT.to_dict()}))
    config, contract = model_command.load_model_spec(str(path))
    assert config == VARIANTS["baseline"] and contract == TINY_CONTRACT

    # The contract as the training config writes it after `--set contract.num_waypoints=4` on "tiny".
    path.write_text(
        yaml.safe_dump({"model": {"variant": "baseline"}, "contract": {"preset": "tiny", "num_waypoints": 4}})
    )
    config, contract = model_command.load_model_spec(str(path))
    assert contract.num_waypoints == 4 and contract.differences(TINY_CONTRACT) == ["num_waypoints: 4 != 8"]
    path.write_text(yaml.safe_dump({"model": {"variant": "baseline"}, "contract": {"num_waypoint": 4}}))
    with pytest.raises(SystemExit, match="num_waypoint"):
        model_command.load_model_spec(str(path))


def test_bad_specs_are_named():
    with pytest.raises(SystemExit, match="neither a YAML file nor a model variant"):
        model_command.load_model_spec("min3real")
    with pytest.raises(KeyError, match="unknown"):
        variant_config("min3real")
    with pytest.raises(ValueError, match=r"overrides \['feature_dims'\]"):
        variant_config("min2real", feature_dims=3)
    with pytest.raises(ValueError, match="needs a 'variant' key"):
        model_config_from_mapping({"feature_dim": 3})
    with pytest.raises(ValueError, match="V2R adapter needs image_backbone='dinov2'"):
        variant_config("baseline", use_adapter=True)
