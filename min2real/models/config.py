"""Model configuration: one dataclass, named presets per variant live in `variants.py`.

A variant changes this config, never a code path. Training settings (data mix, noise
augmentation, loss weights, optimiser) live in the training config (training/*.yaml),
which names a model variant and may override fields of this one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

IMAGE_BACKBONES = ("dinov2", "resnet")
DINOV2_WEIGHT_SOURCES = ("none", "timm_pretrained", "official", "timm_file")
GRL_SCHEDULES = ("constant", "dann")


@dataclass
class ModelConfig:
    variant: str = "min2real"
    # Image path: "dinov2" = (V2R adapter +) frozen DINOv2 ViT (Min2Real);
    # "resnet" = TransFuser-style trainable timm ResNet (baseline / augment / mixdata).
    image_backbone: str = "dinov2"
    dinov2_name: str = "vit_small_patch14_dinov2"
    # Where DINOv2 weights come from, recorded in checkpoints and exported metadata:
    # "none" (random init, tests only), "timm_pretrained" (needs the model hub),
    # "official" (local Meta checkpoint, dinov2_vits14_pretrain.pth layout),
    # "timm_file" (local timm state dict).
    dinov2_weights: str = "none"
    dinov2_checkpoint: str = ""
    # Architecture overrides for small random-init test models, e.g.
    # {"embed_dim": 48, "depth": 2, "num_heads": 2}. Empty for the real network.
    dinov2_overrides: dict = field(default_factory=dict)
    resnet_name: str = "resnet34"
    resnet_pretrained: bool = False
    # timm ResNet constructor overrides for small test models, e.g. {"channels": [16, 32, 64, 128], "stem_width": 16}.
    resnet_overrides: dict = field(default_factory=dict)
    # V2R adapter (virtual images only): encoder-decoder through `adapter_bottleneck` channels at
    # 1/16 of the camera resolution, no identity path; `adapter_skip` adds a low-capacity skip
    # (the input at 1/8 resolution, 3 channels), an ablation switch.
    use_adapter: bool = True
    adapter_bottleneck: int = 128
    adapter_width: int = 32
    adapter_skip: bool = False
    # Domain discriminator on the image features through a gradient reversal layer. With DINOv2
    # the reversed gradient reaches the V2R adapter; with the ResNet path (the Fig. 6 ablation
    # "discriminator only") it reaches the trainable ResNet, as in DANN.
    use_discriminator: bool = True
    discriminator_hidden: int = 256
    grl_schedule: str = "dann"  # "constant" | "dann": 2 / (1 + exp(-10 p)) - 1, p = training progress
    grl_coefficient: float = 1.0  # constant value, or the DANN schedule's maximum
    # LiDAR BEV branch (real samples carry an all-zero BEV, as in the paper).
    use_lidar: bool = True
    lidar_width: int = 32
    # Heads.
    use_steer_head: bool = True  # the paper's 3-class "trajectory predictor" (linear on normalised image features)
    # Optional conditioning of the steering head: the driving command (one-hot) and the target point
    # (ego m / 30 m) join the normalised image features before its linear layer.
    steer_use_command: bool = False
    steer_use_target_point: bool = False
    # CARLA Garage TransFuser++'s target-speed classification head (contract.TARGET_SPEEDS_MPS) on the
    # fused feature; exported as the optional output target_speed_logits.
    use_target_speed_head: bool = False
    # False: no head sees the ego speed (the graph keeps the input and reads it as 0 m/s). A model that
    # sees its own standstill learns to keep standing, since the expert mostly stands where it stood a
    # moment before (the inertia problem of behaviour cloning, Codevilla et al., ICCV 2019).
    use_speed_input: bool = True
    use_command: bool = True
    feature_dim: int = 256
    fusion_heads: int = 4  # heads of the cross-attention that pools image (+ BEV) tokens
    gru_hidden: int = 64

    def __post_init__(self) -> None:
        checks = (
            ("image_backbone", IMAGE_BACKBONES),
            ("dinov2_weights", DINOV2_WEIGHT_SOURCES),
            ("grl_schedule", GRL_SCHEDULES),
        )
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise ValueError(f"model config {name}={getattr(self, name)!r}; expected one of {allowed}")
        if self.image_backbone == "resnet" and self.use_adapter:
            raise ValueError(
                "model config: the V2R adapter needs image_backbone='dinov2' (it produces DINOv2's input image)"
            )
        if self.feature_dim % self.fusion_heads:
            raise ValueError(
                f"model config feature_dim={self.feature_dim} must be divisible by fusion_heads={self.fusion_heads}"
            )
        if self.adapter_bottleneck <= 0 or self.adapter_width <= 0:
            raise ValueError(
                f"model config adapter_bottleneck={self.adapter_bottleneck}, adapter_width={self.adapter_width}; "
                "expected positive channel counts"
            )
        if self.dinov2_weights in ("official", "timm_file") and not self.dinov2_checkpoint:
            raise ValueError(f"model config dinov2_weights={self.dinov2_weights!r} needs dinov2_checkpoint=<path>")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"model config has unknown keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)
