"""Frozen DINOv2 ViT feature extractor (timm), with the one place that loads its weights.

The ViT is created at a fixed image size (contract.dino_height x contract.dino_width), so the
exported graph has a fixed token grid and no runtime position-embedding interpolation. It is
always frozen (requires_grad False) and always in eval mode, even inside `model.train()`;
gradients still flow *through* it to the V2R adapter.

Weight sources (ModelConfig.dinov2_weights), recorded as the provenance string:
  "none"             random init (tests, tiny models)                -> "none"
  "timm_pretrained"  timm's pretrained tag (needs the model hub)     -> "timm_pretrained:<name>.<tag>"
  "official"         Meta's dinov2_vit*14_pretrain.pth layout       -> "official:<path>"
  "timm_file"        a local timm state dict (.pth/.safetensors)    -> "timm_file:<path>"
"""

from __future__ import annotations

import os

import torch
from torch import nn

from min2real.contract import Contract
from min2real.models.config import DINOV2_WEIGHT_SOURCES, ModelConfig

DINOV2_PRETRAINED_TAG = "lvd142m"


def create_dinov2(config: ModelConfig, contract: Contract) -> tuple[nn.Module, str]:
    """Build the timm DINOv2 ViT at the contract's DINOv2 input size and load its weights.

    Returns (vit, provenance). The ViT has no classifier head (num_classes=0) and a fixed
    img_size; its patch size must equal `contract.patch_size`.
    """
    import timm

    if not config.dinov2_name.endswith("dinov2"):
        raise ValueError(
            f"model config dinov2_name={config.dinov2_name!r} is not a timm DINOv2 model; expected e.g. "
            "vit_small_patch14_dinov2, vit_base_patch14_dinov2, vit_large_patch14_dinov2 or a *_reg4_dinov2 variant"
        )
    # LayerScale starts at 1.0, not timm's DINOv2 default 1e-5: a random-init ViT with 1e-5 is nearly an
    # identity map (its CLS token is the same for every image, std ~2e-6). Loaded weights overwrite the
    # gammas either way (the module structure, and so the state dict keys, are the same).
    kwargs = dict(
        img_size=(contract.dino_height, contract.dino_width),
        num_classes=0,
        dynamic_img_size=False,
        init_values=1.0,
    )
    kwargs.update(config.dinov2_overrides)
    if config.dinov2_weights == "timm_pretrained":
        name = f"{config.dinov2_name}.{DINOV2_PRETRAINED_TAG}"
        try:
            vit = timm.create_model(name, pretrained=True, **kwargs)
        except Exception as error:  # hub unreachable, no cache: say what to do instead
            raise RuntimeError(
                f"could not download timm pretrained weights for {name!r} ({error}); without model-hub access "
                "use dinov2_weights='official' with a local dinov2_vit*14_pretrain.pth or 'timm_file'"
            ) from error
        provenance = f"timm_pretrained:{name}"
    else:
        vit = timm.create_model(config.dinov2_name, pretrained=False, **kwargs)
        provenance = load_dinov2_weights(vit, config.dinov2_weights, config.dinov2_checkpoint)
    patch = vit.patch_embed.patch_size
    if tuple(patch) != (contract.patch_size, contract.patch_size):
        raise ValueError(
            f"DINOv2 {config.dinov2_name!r} has patch size {tuple(patch)}; the contract expects {contract.patch_size}"
        )
    return vit, provenance


def load_dinov2_weights(vit: nn.Module, source: str, checkpoint_path: str = "") -> str:
    """Load local weights into a timm DINOv2 `vit`; returns the provenance string.

    `source` "none" leaves the random init. "official" expects Meta's layout (mask_token,
    blocks.N.ls1.gamma, ...; register models: register_tokens); "timm_file" a timm state dict.
    Both go through timm's `checkpoint_filter_fn`, which converts the official layout and
    resamples the position embedding from the checkpoint's grid (37 x 37 for 518 px) to the
    ViT's fixed grid once, here. Loading is strict: any missing or unexpected key is an error.
    """
    if source == "none":
        return "none"
    if source not in ("official", "timm_file"):
        raise ValueError(
            f"DINOv2 weight source {source!r} cannot be loaded from a file; expected one of {DINOV2_WEIGHT_SOURCES}"
        )
    from timm.models.vision_transformer import checkpoint_filter_fn

    if not checkpoint_path or not os.path.isfile(checkpoint_path):
        raise FileNotFoundError(f"DINOv2 checkpoint {checkpoint_path!r} (dinov2_weights={source!r}) does not exist")
    if checkpoint_path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state_dict = load_file(checkpoint_path, device="cpu")
    else:
        state_dict = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, dict):
        raise ValueError(
            f"DINOv2 checkpoint {checkpoint_path!r} holds a {type(state_dict).__name__}; expected a state dict"
        )
    is_official = "mask_token" in state_dict
    if source == "official" and not is_official:
        raise ValueError(
            f"DINOv2 checkpoint {checkpoint_path!r} lacks 'mask_token', so it is not in the official Meta layout "
            "(dinov2_vit*14_pretrain.pth); use dinov2_weights='timm_file' for timm state dicts"
        )
    if source == "timm_file" and is_official:
        raise ValueError(
            f"DINOv2 checkpoint {checkpoint_path!r} is in the official Meta layout (has 'mask_token'); "
            "use dinov2_weights='official'"
        )
    converted = checkpoint_filter_fn(dict(state_dict), vit)
    result = vit.load_state_dict(converted, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"DINOv2 checkpoint {checkpoint_path!r} does not fit {type(vit).__name__} "
            f"(embed_dim {vit.embed_dim}, depth {len(vit.blocks)}): missing keys {result.missing_keys[:8]}, "
            f"unexpected keys {result.unexpected_keys[:8]}"
        )
    return f"{source}:{checkpoint_path}"


class DinoV2Extractor(nn.Module):
    """Frozen DINOv2: (B, 3, dino_h, dino_w) normalised RGB -> (patch tokens, features).

    tokens (B, N, E) are the final-norm patch tokens (N = grid_h * grid_w, row-major);
    features (B, 2E) are [CLS token, mean of patch tokens] (the DINOv2 linear-probe feature).
    """

    def __init__(self, vit: nn.Module, provenance: str) -> None:
        super().__init__()
        self.vit = vit
        self.provenance = provenance
        for parameter in self.vit.parameters():
            parameter.requires_grad_(False)
        self.vit.eval()

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(self.vit.patch_embed.grid_size)

    @property
    def token_dim(self) -> int:
        return self.vit.embed_dim

    @property
    def features_dim(self) -> int:
        return 2 * self.vit.embed_dim

    def train(self, mode: bool = True) -> DinoV2Extractor:
        super().train(mode)
        self.vit.eval()  # frozen: never in training mode (no dropout/drop-path)
        return self

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.vit.forward_features(image)  # (B, prefix + N, E), after the final norm
        prefix = self.vit.num_prefix_tokens
        patch_tokens = tokens[:, prefix:]
        features = torch.cat([tokens[:, 0], patch_tokens.mean(dim=1)], dim=-1)
        return patch_tokens, features
