"""The assembled Min2Real network on tiny configs and TINY_CONTRACT."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from min2real.contract import (
    DOMAIN_REAL,
    DOMAIN_SIM,
    INPUT_LIDAR_BEV,
    INPUT_NAMES,
    TINY_CONTRACT,
    ContractError,
    steer_class_from_waypoints,
)
from min2real.models.model import build_model
from min2real.models.variants import TABLE_I_VARIANTS, VARIANTS, variant_config

CONTRACT = TINY_CONTRACT


def make_inputs(batch: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = {name: torch.rand(shape, generator=generator) for name, shape in CONTRACT.input_shapes(batch).items()}
    inputs["image"] = inputs["image"] * 255.0
    inputs["target_point"] = inputs["target_point"] * 20.0
    inputs["command"] = F.one_hot(torch.arange(batch) % 4, 4).float()
    return inputs


def tiny_model(name: str = "min2real", seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return build_model(variant_config(name, tiny=True, **overrides), CONTRACT)


MIXED_DOMAIN = torch.tensor([DOMAIN_SIM, DOMAIN_REAL, DOMAIN_SIM, DOMAIN_REAL])


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_produces_finite_outputs_of_the_contract_shapes(name):
    model = tiny_model(name).train()
    outputs = model(make_inputs(), MIXED_DOMAIN)
    assert outputs["waypoints"].shape == (4, CONTRACT.num_waypoints, 2)
    assert outputs["steer_logits"].shape == (4, 3)
    assert outputs["features"].shape[0] == 4 and outputs["features"].ndim == 2
    assert ("domain_logits" in outputs) == model.config.use_discriminator
    if model.config.use_discriminator:
        assert outputs["domain_logits"].shape == (4,)
    for value in outputs.values():
        assert torch.isfinite(value).all()
    assert model.config.variant == name


def test_table_i_variants_share_two_model_configs():
    def fields(name):
        return {k: v for k, v in VARIANTS[name].to_dict().items() if k != "variant"}

    assert fields("augment") == fields("baseline") == fields("mixdata")
    assert fields("min2real") == fields("mix_min2real") == fields("full")
    assert fields("baseline") != fields("min2real")
    assert set(TABLE_I_VARIANTS) <= set(VARIANTS)


def test_steer_logits_of_variants_without_the_head_follow_the_contract_rule():
    model = tiny_model("baseline").eval()
    assert model.steer_head is None
    with torch.no_grad():
        outputs = model(make_inputs(batch=4), MIXED_DOMAIN)
    expected = steer_class_from_waypoints(outputs["waypoints"].numpy(), CONTRACT)
    np.testing.assert_array_equal(outputs["steer_logits"].argmax(dim=1).numpy(), expected)


def _combined_loss(outputs, domain):
    waypoint_loss = outputs["waypoints"].abs().mean()
    steer_loss = F.cross_entropy(outputs["steer_logits"], torch.tensor([0, 1, 2, 0]))
    domain_loss = F.binary_cross_entropy_with_logits(outputs["domain_logits"], domain.float())
    return waypoint_loss + steer_loss + domain_loss


def test_optimizer_steps_leave_dinov2_bit_identical_and_change_the_adapter():
    model = tiny_model("min2real").train()
    model.set_training_progress(1.0)
    dinov2_before = {k: v.clone() for k, v in model.image_backbone.state_dict().items()}
    adapter_before = {k: v.clone() for k, v in model.adapter.state_dict().items()}
    # A naive optimiser over *all* parameters: frozen DINOv2 has no gradient, so it cannot move.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    inputs = make_inputs()
    for _ in range(3):
        optimizer.zero_grad()
        _combined_loss(model(inputs, MIXED_DOMAIN), MIXED_DOMAIN).backward()
        optimizer.step()
    for key, value in model.image_backbone.state_dict().items():
        assert torch.equal(value, dinov2_before[key]), key
    changed = [key for key, value in model.adapter.state_dict().items() if not torch.equal(value, adapter_before[key])]
    assert set(changed) == set(adapter_before)  # every adapter tensor moved


def test_discriminator_gradient_reaches_the_adapter_reversed_and_scaled():
    coefficient = 0.7
    model = tiny_model("min2real", grl_schedule="constant", grl_coefficient=coefficient).train()
    inputs, domain = make_inputs(), MIXED_DOMAIN
    adapter_parameters = list(model.adapter.parameters())

    outputs = model(inputs, domain)
    assert model.grl_coefficient == coefficient
    loss = F.binary_cross_entropy_with_logits(outputs["domain_logits"], domain.float())
    reversed_grads = torch.autograd.grad(loss, adapter_parameters)

    features = model(inputs, domain)["features"]
    plain_logits = model.discriminator.classifier(features).squeeze(-1)  # no GRL
    plain_loss = F.binary_cross_entropy_with_logits(plain_logits, domain.float())
    plain_grads = torch.autograd.grad(plain_loss, adapter_parameters)

    assert torch.allclose(outputs["domain_logits"], plain_logits)
    for reversed_grad, plain_grad in zip(reversed_grads, plain_grads):
        assert plain_grad.abs().max() > 0
        torch.testing.assert_close(reversed_grad, -coefficient * plain_grad, rtol=1e-5, atol=1e-8)


def test_dann_schedule_drives_the_coefficient():
    model = tiny_model("min2real", grl_schedule="dann", grl_coefficient=2.0)
    assert model.grl_coefficient == 0.0
    model.set_training_progress(0.5)
    assert model.grl_coefficient == pytest.approx(2.0 * (2.0 / (1.0 + np.exp(-5.0)) - 1.0))
    with pytest.raises(ValueError):
        model.set_training_progress(-0.1)


def test_dinov2_stays_in_eval_mode_and_frozen_after_model_train():
    model = tiny_model("min2real")
    model.train()
    assert model.training and model.adapter.training and model.waypoint_head.training
    assert not any(module.training for module in model.image_backbone.vit.modules())
    assert not any(parameter.requires_grad for parameter in model.image_backbone.parameters())
    # Gradient still flows through the frozen ViT to the adapter.
    model(make_inputs(), MIXED_DOMAIN)["waypoints"].sum().backward()
    assert model.adapter.encoder[0][0].weight.grad.abs().max() > 0


def test_adapter_runs_on_sim_samples_only():
    model = tiny_model("min2real").eval()
    inputs = make_inputs(batch=4)
    same_image = {name: value[:1].expand(4, *value.shape[1:]).contiguous() for name, value in inputs.items()}
    with torch.no_grad():
        mixed = model(same_image, MIXED_DOMAIN)["waypoints"]
        all_real = model(same_image, torch.full((4,), DOMAIN_REAL))["waypoints"]
        all_sim = model(same_image, torch.full((4,), DOMAIN_SIM))["waypoints"]
    assert not torch.allclose(all_sim, all_real)
    torch.testing.assert_close(mixed[1::2], all_real[1::2])
    torch.testing.assert_close(mixed[0::2], all_sim[0::2])


def test_deploy_graphs_match_forward_per_domain_and_use_plain_attention():
    model = tiny_model("min2real").train()
    inputs = make_inputs(batch=2)
    positional = [inputs[name] for name in INPUT_NAMES]
    for domain_name, domain_value in (("sim", DOMAIN_SIM), ("real", DOMAIN_REAL)):
        deployed = model.deploy(domain_name)
        assert not any(module.training for module in deployed.modules())
        assert all(not module.fused_attn for module in deployed.modules() if hasattr(module, "fused_attn"))
        with torch.no_grad():
            waypoints, steer_logits = deployed(*positional)
            model.eval()
            expected = model(inputs, torch.full((2,), domain_value))
            model.train()
        torch.testing.assert_close(waypoints, expected["waypoints"])
        torch.testing.assert_close(steer_logits, expected["steer_logits"])
    assert model.training  # deploy works on a copy
    with pytest.raises(ContractError, match="deploy domain"):
        model.deploy("carla")


def test_model_without_lidar_has_no_bev_branch_and_needs_no_bev_input():
    model = tiny_model("min2real", use_lidar=False).eval()
    assert model.lidar_encoder is None
    inputs = make_inputs(batch=2)
    del inputs[INPUT_LIDAR_BEV]
    outputs = model(inputs, torch.tensor([DOMAIN_SIM, DOMAIN_REAL]))
    assert outputs["waypoints"].shape == (2, CONTRACT.num_waypoints, 2)


def test_wrong_input_shape_is_named_in_the_error():
    model = tiny_model("min2real")
    inputs = make_inputs(batch=2)
    inputs["image"] = torch.zeros(2, 3, 64, 64)
    with pytest.raises(ContractError, match=r"'image' has shape \(2, 3, 64, 64\); expected \(2, 3, 96, 256\)"):
        model(inputs, torch.tensor([DOMAIN_SIM, DOMAIN_REAL]))


def test_seeds_make_builds_and_forward_passes_reproducible():
    inputs = make_inputs()
    outputs = []
    for seed in (5, 5, 6):
        model = tiny_model("min2real", seed=seed).eval()
        with torch.no_grad():
            outputs.append(model(inputs, MIXED_DOMAIN))
    for key in ("waypoints", "steer_logits", "features", "domain_logits"):
        assert torch.equal(outputs[0][key], outputs[1][key]), key
    assert not torch.equal(outputs[0]["waypoints"], outputs[2]["waypoints"])


def test_weights_provenance_names_the_used_backbone():
    assert tiny_model("min2real").weights_provenance() == {"dinov2": "none"}
    assert tiny_model("baseline").weights_provenance() == {"resnet": "none"}
