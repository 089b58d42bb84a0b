"""Parts of the Min2Real network: V2R adapter, GRL, steering rule in torch, DINOv2 creation and weight loading."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from min2real.contract import DEFAULT_CONTRACT, TINY_CONTRACT, steer_class_from_waypoints
from min2real.models.adapter import V2RAdapter
from min2real.models.dinov2 import DinoV2Extractor, create_dinov2, load_dinov2_weights
from min2real.models.grl import grad_reverse, grl_coefficient
from min2real.models.heads import RULE_STEER_LOGIT, steer_logits_from_waypoints
from min2real.models.variants import variant_config


@pytest.mark.parametrize("contract", [DEFAULT_CONTRACT, TINY_CONTRACT], ids=["paper", "tiny"])
def test_adapter_bottleneck_has_the_stated_size(contract):
    """The paper's Fig. 2: the 384 x 1024 image is compressed to 128 channels before it is expanded."""
    adapter = V2RAdapter((contract.camera_height, contract.camera_width), (contract.dino_height, contract.dino_width))
    image = torch.randn(1, 3, contract.camera_height, contract.camera_width)
    latent = adapter.encode(image)
    assert tuple(latent.shape[1:]) == adapter.bottleneck_shape
    channels, height, width = adapter.bottleneck_shape
    assert channels == 128 and height == -(-contract.camera_height // 16) and width == -(-contract.camera_width // 16)
    assert adapter.bottleneck_size == latent[0].numel()
    assert adapter.compression_ratio == pytest.approx(latent[0].numel() / image[0].numel())
    assert adapter.compression_ratio == pytest.approx(1 / 6)  # 128 channels at 1/16 of 3 channels
    if contract is DEFAULT_CONTRACT:
        assert adapter.bottleneck_shape == (128, 24, 64) and adapter.bottleneck_size == 196_608
    assert adapter(image).shape == (1, 3, contract.dino_height, contract.dino_width)


def test_adapter_output_passes_through_the_bottleneck_only():
    """No identity path: two different images with the same bottleneck give the same output; the
    optional low-capacity skip (a flag) lets a coarse copy of the input around it."""
    torch.manual_seed(0)
    contract = TINY_CONTRACT
    sizes = ((contract.camera_height, contract.camera_width), (contract.dino_height, contract.dino_width))
    images = torch.randn(2, 3, contract.camera_height, contract.camera_width)
    for skip in (False, True):
        adapter = V2RAdapter(*sizes, width=8, skip=skip).eval()
        adapter.to_bottleneck.register_forward_hook(lambda module, args, output: torch.zeros_like(output))
        with torch.no_grad():
            first, second = adapter(images)
        assert torch.equal(first, second) != skip
    # The skip carries 3 channels at 1/8 resolution: far less than the bottleneck.
    assert 3 * (contract.camera_height // 8) * (contract.camera_width // 8) < V2RAdapter(*sizes).bottleneck_size


def test_adapter_rejects_wrong_input_size():
    adapter = V2RAdapter((96, 256), (56, 154), 8)
    with pytest.raises(ValueError, match=r"expected \(B, 3, 96, 256\)"):
        adapter(torch.zeros(1, 3, 56, 154))


def test_grad_reverse_negates_and_scales_the_gradient():
    features = torch.randn(5, 7, requires_grad=True)
    weights = torch.randn(5, 7)
    (grad_reverse(features, 0.3) * weights).sum().backward()
    assert torch.allclose(features.grad, -0.3 * weights)
    assert torch.equal(grad_reverse(features, 0.3), features)


def test_grl_schedules():
    assert grl_coefficient("constant", 0.5, 0.0) == 0.5
    assert grl_coefficient("dann", 1.0, 0.0) == 0.0
    assert grl_coefficient("dann", 2.0, 0.5) == pytest.approx(2.0 * (2.0 / (1.0 + math.exp(-5.0)) - 1.0))
    assert grl_coefficient("dann", 1.0, 1.0) == pytest.approx(0.99991, abs=1e-5)
    with pytest.raises(ValueError, match="outside"):
        grl_coefficient("dann", 1.0, 1.5)


def _random_trajectories(count: int, seed: int) -> np.ndarray:
    """Smooth trajectories with random speed and yaw rate (turns both ways, creeping, reversing) plus noise."""
    rng = np.random.default_rng(seed)
    steps = DEFAULT_CONTRACT.num_waypoints
    speed = rng.uniform(-1.0, 8.0, size=(count, 1)) * rng.choice([0.05, 1.0], size=(count, 1))
    yaw_rate = rng.uniform(-1.2, 1.2, size=(count, 1))
    yaw = yaw_rate * np.arange(1, steps + 1)[None, :] * 0.5
    step_xy = 0.5 * speed[..., None] * np.stack([np.cos(yaw), np.sin(yaw)], axis=-1)
    waypoints = np.cumsum(step_xy, axis=1) + rng.normal(scale=0.3, size=(count, steps, 2))
    return waypoints.astype(np.float32)


def test_torch_steer_rule_equals_the_contract_rule():
    waypoints = _random_trajectories(4000, seed=1)
    expected = steer_class_from_waypoints(waypoints, DEFAULT_CONTRACT)
    assert set(np.unique(expected)) == {0, 1, 2}  # all classes exercised
    logits = steer_logits_from_waypoints(torch.from_numpy(waypoints), DEFAULT_CONTRACT)
    np.testing.assert_array_equal(logits.argmax(dim=1).numpy(), expected)
    one_hot = np.eye(3, dtype=np.float32)[expected] * RULE_STEER_LOGIT
    np.testing.assert_array_equal(logits.numpy(), one_hot)


def _official_state_dict(embed_dim: int, depth: int, grid: int, registers: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the key names and shapes of Meta's dinov2_vit*14_pretrain.pth (random values)."""
    generator = torch.Generator().manual_seed(7)

    def rand(*shape):
        return torch.randn(*shape, generator=generator)

    hidden = 4 * embed_dim
    state = {
        "cls_token": rand(1, 1, embed_dim),
        "pos_embed": rand(1, 1 + grid * grid, embed_dim),
        "mask_token": rand(1, embed_dim),
        "patch_embed.proj.weight": rand(embed_dim, 3, 14, 14),
        "patch_embed.proj.bias": rand(embed_dim),
        "norm.weight": rand(embed_dim),
        "norm.bias": rand(embed_dim),
    }
    if registers:
        state["register_tokens"] = rand(1, registers, embed_dim)
    for n in range(depth):
        block = {
            "norm1.weight": (embed_dim,), "norm1.bias": (embed_dim,),
            "attn.qkv.weight": (3 * embed_dim, embed_dim), "attn.qkv.bias": (3 * embed_dim,),
            "attn.proj.weight": (embed_dim, embed_dim), "attn.proj.bias": (embed_dim,),
            "ls1.gamma": (embed_dim,),
            "norm2.weight": (embed_dim,), "norm2.bias": (embed_dim,),
            "mlp.fc1.weight": (hidden, embed_dim), "mlp.fc1.bias": (hidden,),
            "mlp.fc2.weight": (embed_dim, hidden), "mlp.fc2.bias": (embed_dim,),
            "ls2.gamma": (embed_dim,),
        }  # fmt: skip
        state.update({f"blocks.{n}.{key}": rand(*shape) for key, shape in block.items()})
    return state


@pytest.mark.parametrize("name,registers", [("vit_small_patch14_dinov2", 0), ("vit_small_patch14_reg4_dinov2", 4)])
def test_official_dinov2_checkpoint_loads_with_no_missing_or_unexpected_keys(tmp_path, name, registers):
    from timm.models.vision_transformer import checkpoint_filter_fn

    official = _official_state_dict(embed_dim=48, depth=2, grid=37, registers=registers)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(official, path)
    config = variant_config(
        "min2real", tiny=True, dinov2_name=name, dinov2_weights="official", dinov2_checkpoint=str(path)
    )
    vit, provenance = create_dinov2(config, TINY_CONTRACT)
    assert provenance == f"official:{path}"
    result = vit.load_state_dict(checkpoint_filter_fn(dict(official), vit), strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    loaded = vit.state_dict()
    assert torch.equal(loaded["blocks.1.ls1.gamma"], official["blocks.1.ls1.gamma"])
    assert torch.equal(loaded["blocks.0.attn.qkv.weight"], official["blocks.0.attn.qkv.weight"])
    grid_h, grid_w = TINY_CONTRACT.dino_height // 14, TINY_CONTRACT.dino_width // 14
    assert loaded["pos_embed"].shape[1] == grid_h * grid_w + (0 if registers else 1)  # resampled once, at load


def test_dinov2_checkpoint_of_the_wrong_layout_or_size_is_refused(tmp_path):
    official = _official_state_dict(embed_dim=48, depth=2, grid=37)
    official_path = tmp_path / "official.pth"
    torch.save(official, official_path)
    config = variant_config("min2real", tiny=True)
    vit, _ = create_dinov2(config, TINY_CONTRACT)
    with pytest.raises(ValueError, match="official Meta layout"):
        load_dinov2_weights(vit, "timm_file", str(official_path))
    del official["blocks.1.ls2.gamma"]
    torch.save(official, official_path)
    with pytest.raises(ValueError, match=r"missing keys \['blocks.1.ls2.gamma'\]"):
        load_dinov2_weights(vit, "official", str(official_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dinov2_weights(vit, "official", str(tmp_path / "absent.pth"))


def test_timm_file_dinov2_checkpoint_round_trips(tmp_path):
    torch.manual_seed(1)
    config = variant_config("min2real", tiny=True)
    source, _ = create_dinov2(config, TINY_CONTRACT)
    path = tmp_path / "dinov2_timm.pth"
    torch.save(source.state_dict(), path)
    target, provenance = create_dinov2(
        config.replace(dinov2_weights="timm_file", dinov2_checkpoint=str(path)), TINY_CONTRACT
    )
    assert provenance == f"timm_file:{path}"
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_dinov2_extractor_stays_frozen_in_eval_mode():
    extractor = DinoV2Extractor(*create_dinov2(variant_config("min2real", tiny=True), TINY_CONTRACT))
    extractor.train()
    assert extractor.training and not any(module.training for module in extractor.vit.modules())
    assert not any(parameter.requires_grad for parameter in extractor.parameters())
    tokens, features = extractor(torch.randn(2, 3, TINY_CONTRACT.dino_height, TINY_CONTRACT.dino_width))
    assert tokens.shape == (2, 4 * 11, 48) and features.shape == (2, 96)


def test_random_init_dinov2_is_not_degenerate():
    """timm's DINOv2 LayerScale init 1e-5 makes a random ViT an identity map whose CLS token is the
    same for every image; the extractor is built with LayerScale 1.0, so its features vary."""
    torch.manual_seed(0)
    extractor = DinoV2Extractor(*create_dinov2(variant_config("min2real", tiny=True), TINY_CONTRACT))
    assert all(float(block.ls1.gamma.min()) == 1.0 for block in extractor.vit.blocks)
    images = torch.randn(16, 3, TINY_CONTRACT.dino_height, TINY_CONTRACT.dino_width)
    _, features = extractor(images)
    cls_std = features[:, : extractor.token_dim].std(dim=0).mean()
    assert cls_std > 1e-2, f"CLS token std across images {cls_std:.2e}: a near-identity map"


def test_stand_in_extractor_loads_in_the_dinov2_slot_frozen():
    from min2real.models.model import build_model
    from min2real.models.variants import STAND_IN_EXTRACTOR, STAND_IN_EXTRACTOR_FILE
    from min2real.paths import data_file

    path = data_file("models", STAND_IN_EXTRACTOR_FILE.removeprefix("models/"))
    config = variant_config("min2real", tiny=True, **{**STAND_IN_EXTRACTOR, "dinov2_checkpoint": str(path)})
    model = build_model(config, TINY_CONTRACT)
    assert model.weights_provenance() == {"dinov2": f"timm_file:{path}"}
    assert not any(parameter.requires_grad for parameter in model.image_backbone.parameters())
    from safetensors.torch import load_file

    stored = load_file(str(path))
    loaded = model.image_backbone.vit.state_dict()
    assert set(stored) == set(loaded)
    assert all(torch.equal(stored[key], loaded[key]) for key in stored)
    # It was pretrained: its LayerScale gammas moved away from the 1.0 a random init starts with.
    assert any(float((block.ls1.gamma - 1.0).abs().max()) > 1e-3 for block in model.image_backbone.vit.blocks)


def test_real_size_default_vit_s14_has_a_16_by_43_token_grid():
    from min2real.models.model import build_model
    from min2real.models.variants import VARIANTS

    model = build_model(VARIANTS["min2real"], DEFAULT_CONTRACT)
    vit = model.image_backbone.vit
    assert model.image_backbone.grid_size == (16, 43)
    assert (vit.embed_dim, len(vit.blocks), vit.blocks[0].attn.num_heads) == (384, 12, 6)
    assert vit.pos_embed.shape == (1, 1 + 16 * 43, 384)
    assert model.weights_provenance() == {"dinov2": "none"}
