"""In-process checks of the trainer's DDP and determinism set-up (no torchrun, one gloo rank)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from min2real.contract import TINY_CONTRACT
from min2real.models.model import build_model
from min2real.models.variants import variant_config
from min2real.training.config import LossSection
from min2real.training.distributed import configure_determinism
from min2real.training.losses import compute_losses
from min2real.training.trainer import needs_unused_parameter_search


@pytest.fixture
def single_rank_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _batch(batch: int = 2):
    torch.manual_seed(0)
    inputs = {name: torch.rand(shape) for name, shape in TINY_CONTRACT.input_shapes(batch).items()}
    inputs["image"] = inputs["image"] * 255.0
    targets = {
        "waypoints": torch.rand(batch, TINY_CONTRACT.num_waypoints, 2),
        "steer_class": torch.zeros(batch, dtype=torch.int64),
        "domain": torch.zeros(batch, dtype=torch.int64),
        "has_labels": torch.ones(batch, dtype=torch.bool),
    }
    return inputs, targets


@pytest.mark.parametrize(
    ("variant", "loss"),
    [
        ("ablation_steer_head", LossSection(steer_ce=0.0)),  # the steering head gets no gradient
        ("ablation_discriminator", LossSection(domain_bce=0.0)),  # the discriminator gets none
    ],
)
def test_ddp_steps_with_a_zero_weighted_head(single_rank_group, variant, loss):
    """A head whose loss weight is 0 leaves parameters without gradients; DDP must search for
    them or its second step fails ("Expected to have finished reduction in the prior iteration")."""
    config = variant_config(variant, tiny=True)
    assert needs_unused_parameter_search(config, loss)
    assert not needs_unused_parameter_search(config, LossSection())  # no search cost when all heads train
    model = torch.nn.parallel.DistributedDataParallel(
        build_model(config, TINY_CONTRACT), find_unused_parameters=needs_unused_parameter_search(config, loss)
    )
    inputs, targets = _batch()
    for _ in range(2):
        outputs = model(inputs, targets["domain"])
        compute_losses(outputs, targets, loss).total.backward()


def test_adapter_models_always_search_for_unused_parameters():
    # A batch without sim samples skips the V2R adapter.
    assert needs_unused_parameter_search(variant_config("min2real", tiny=True), LossSection())
    assert needs_unused_parameter_search(variant_config("baseline", tiny=True), LossSection(), requested=True)


def test_deterministic_mode_warns_for_ops_without_a_deterministic_cuda_kernel():
    """The adapter's bilinear upsampling has no deterministic CUDA backward: strict mode would stop
    a GPU run at its first step, so deterministic training only warns for such ops; turning the
    option off restores the non-deterministic defaults for later runs in the process."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        configure_determinism(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        configure_determinism(False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def test_process_group_waits_long_enough_for_rank0_validation(monkeypatch):
    """Under torchrun the other ranks wait in a barrier while rank 0 validates; the group's timeout
    must outlast a long validation (NCCL's default of 10 minutes does not)."""
    import datetime

    from min2real.training import distributed

    calls = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    context = distributed.setup_distributed("cpu")
    assert (context.rank, context.world_size, context.is_main) == (1, 2, False)
    assert calls == [{"backend": "gloo", "timeout": distributed.DISTRIBUTED_TIMEOUT}]
    assert distributed.DISTRIBUTED_TIMEOUT >= datetime.timedelta(minutes=30)
