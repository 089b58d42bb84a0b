"""Named model configs: the six variants of the paper's Table I and the Fig. 6 ablations.

Model-side only. Variants that differ in training (noise augmentation, real driving labels,
loss weights) share a model config here; the training config (training/*.yaml) names the
variant and sets `train.noise_augmentation`, `data.real_driving_labels` and `loss.*`.
See docs/variants.md for the table and our reading of "trained on {S}".

  baseline       TransFuser-style: trainable ResNet image path + LiDAR BEV, GRU waypoints
  augment        baseline model (+ Gaussian noise 0..100 in training)
  min2real       V2R adapter + frozen DINOv2 + discriminator (GRL) + steering head + LiDAR
  mixdata        baseline model, trained on sim + real driving labels
  mix_min2real   min2real model, trained on sim + real driving labels
  full           min2real model, sim + real, + noise augmentation
Fig. 6 ablations: the baseline plus exactly one component.
  ablation_augment        baseline model (+ noise in training)
  ablation_adapter        the "V2R adapter + real extractor" pair: DINOv2 + adapter, no discriminator/steering head
  ablation_discriminator  baseline ResNet + discriminator through the GRL (DANN on the ResNet features)
  ablation_steer_head     baseline ResNet + the linear steering head
  ablation_extractor      frozen DINOv2 alone in place of the ResNet (reference for ablation_adapter)
"""

from __future__ import annotations

from min2real.models.config import ModelConfig

_BASELINE = dict(
    image_backbone="resnet",
    use_adapter=False,
    use_discriminator=False,
    use_steer_head=False,
    use_lidar=True,
)
_MIN2REAL = dict(
    image_backbone="dinov2",
    use_adapter=True,
    use_discriminator=True,
    use_steer_head=True,
    use_lidar=True,
)
_DINOV2_ONLY = dict(_MIN2REAL, use_adapter=False, use_discriminator=False, use_steer_head=False)

_VARIANT_FIELDS: dict[str, dict] = {
    "baseline": _BASELINE,
    "augment": _BASELINE,
    "min2real": _MIN2REAL,
    "mixdata": _BASELINE,
    "mix_min2real": _MIN2REAL,
    "full": _MIN2REAL,
    "ablation_augment": _BASELINE,
    "ablation_adapter": dict(_DINOV2_ONLY, use_adapter=True),
    "ablation_discriminator": dict(_BASELINE, use_discriminator=True),
    "ablation_steer_head": dict(_BASELINE, use_steer_head=True),
    "ablation_extractor": _DINOV2_ONLY,
}

TABLE_I_VARIANTS = ("baseline", "augment", "min2real", "mixdata", "mix_min2real", "full")
ABLATION_VARIANTS = tuple(name for name in _VARIANT_FIELDS if name.startswith("ablation_"))

VARIANTS: dict[str, ModelConfig] = {
    name: ModelConfig(variant=name, **fields) for name, fields in _VARIANT_FIELDS.items()
}

# The stand-in foundation model (models/extractor/README.md): a small ViT in timm's DINOv2 class,
# pretrained by `min2real pretrain` (masked auto-encoding) on unlabelled real-look synthetic images
# only. These model fields put it in the DINOv2 slot (frozen like DINOv2); the path is relative to
# the repository root (the working directory of the documented commands).
STAND_IN_EXTRACTOR_FILE = "models/extractor/vit_d96x4_mae_real_look.safetensors"
STAND_IN_EXTRACTOR = dict(
    dinov2_weights="timm_file",
    dinov2_checkpoint=STAND_IN_EXTRACTOR_FILE,
    dinov2_overrides={"embed_dim": 96, "depth": 4, "num_heads": 3},
)

# CPU-test size: a 2-block, 48-dim ViT (random init, LayerScale 1.0), a quarter-width resnet18 and narrow adapter / heads. With TINY_CONTRACT a
# batch of 4 runs forward + backward in a fraction of a second on one core.
TINY_OVERRIDES = dict(
    dinov2_overrides={"embed_dim": 48, "depth": 2, "num_heads": 2},
    resnet_name="resnet18",
    resnet_overrides={"channels": [16, 32, 64, 128], "stem_width": 16},
    adapter_width=8,
    adapter_bottleneck=128,  # the paper's 128 channels (at 1/16 resolution: 1/6 of the camera image's values)
    discriminator_hidden=32,
    lidar_width=8,
    feature_dim=64,
    gru_hidden=32,
)


def variant_config(name: str, tiny: bool = False, **overrides) -> ModelConfig:
    """The named variant's ModelConfig, optionally tiny (CPU tests) and with field overrides."""
    if name not in VARIANTS:
        raise KeyError(f"model variant {name!r} is unknown; expected one of {sorted(VARIANTS)}")
    fields = VARIANTS[name].to_dict()
    if tiny:
        fields.update(TINY_OVERRIDES)
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"model config overrides {unknown} are unknown; known keys: {sorted(fields)}")
    fields.update(overrides)
    return ModelConfig.from_dict(fields)


def model_config_from_mapping(mapping: dict, tiny: bool = False) -> ModelConfig:
    """A training config's `model:` mapping ({"variant": name, <field>: value, ...}) -> ModelConfig.

    `tiny: true` inside the mapping is the same as tiny=True.
    """
    if not isinstance(mapping, dict) or "variant" not in mapping:
        raise ValueError(f"model config mapping {mapping!r} needs a 'variant' key naming one of {sorted(VARIANTS)}")
    overrides = dict(mapping)
    name = overrides.pop("variant")
    tiny = bool(overrides.pop("tiny", False)) or tiny
    return variant_config(name, tiny=tiny, **overrides)
