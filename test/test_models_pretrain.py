"""The stand-in extractor's pretraining (min2real pretrain) in miniature: the masked auto-encoder
learns (its loss falls), the encoder it saves loads in the DINOv2 slot, and the card and the
record name what was done. The shipped extractor's probe numbers are in models/extractor/."""

from __future__ import annotations

import json

import torch

from min2real.contract import TINY_CONTRACT
from min2real.files import file_sha256
from min2real.training.pretrain import PRETRAIN_SEED_BASE, PretrainConfig, pretrain, write_card


def test_pretrain_learns_saves_a_dinov2_slot_encoder_and_writes_its_card(tmp_path):
    config = PretrainConfig(
        drives=2,
        frames_per_drive=12,
        probe_drives=2,
        probe_frames_per_drive=8,
        steps=40,
        batch_size=16,
        warmup_steps=4,
        lr=2e-3,
        num_threads=1,
    )
    before = torch.get_num_threads()
    try:
        result = pretrain(config, tmp_path, log=lambda text: None, log_interval=10)
    finally:
        torch.set_num_threads(before)
    losses = [loss for _, loss in result.losses]
    assert losses[-1] < 0.85 * losses[0], losses  # per-patch normalised pixels: ~1.0 for a blind guess
    assert result.sha256 == file_sha256(result.weights_path)

    from min2real.models.model import build_model
    from min2real.models.variants import variant_config

    model_config = variant_config(
        "min2real",
        tiny=True,
        dinov2_weights="timm_file",
        dinov2_checkpoint=str(result.weights_path),
        dinov2_overrides=config.vit_overrides,
    )
    model = build_model(model_config, TINY_CONTRACT)
    assert not any(parameter.requires_grad for parameter in model.image_backbone.parameters())

    record = json.loads((tmp_path / "pretrain.json").read_text())
    assert record["pretrain_seeds"] == [PRETRAIN_SEED_BASE, PRETRAIN_SEED_BASE + 1]
    for reference in ("stand_in", "random_init"):
        for probe in ("features", "features_command"):
            assert 0.0 <= record["probe"][reference][probe]["balanced_accuracy"] <= 1.0
    card = write_card(tmp_path, "min2real pretrain --out x").read_text()
    assert result.sha256 in card and "balanced accuracy" in card
