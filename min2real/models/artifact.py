"""The metadata an exported artifact (or a PyTorch backend) carries about itself.

Built from a model, its checkpoint and the contract; serialised by contract.ArtifactMetadata.
Lives beside the model (not in training) because the runtime's PyTorch backend builds it too.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable

from min2real.contract import DOMAINS, DYNAMIC_DIM, INPUT_NAMES, ArtifactMetadata, Contract, ContractError

PACKAGES = ("min2real", "torch", "timm", "onnx", "onnxruntime", "numpy")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages an exported graph depends on ("absent" when missing)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def artifact_metadata(
    model,
    checkpoint: dict | None,
    contract: Contract,
    domain: str,
    checkpoint_sha256: str,
    *,
    dynamic_batch: bool = False,
    input_names: Iterable[str] = INPUT_NAMES,
    extra: dict | None = None,
) -> ArtifactMetadata:
    """The metadata an exported artifact (or a TorchBackend) carries about itself.

    weights: the model config's weight settings (from the checkpoint when given) plus
    model.weights_provenance(). Shapes: the contract's at batch 1, or DYNAMIC_DIM for a dynamic batch.
    """
    if domain not in DOMAINS:
        raise ContractError(f"export domain {domain!r} is not supported; expected one of {DOMAINS}")
    config = (checkpoint or {}).get("model_config") or model.config.to_dict()
    weights = {
        "dinov2_name": config.get("dinov2_name"),
        "dinov2_weights": config.get("dinov2_weights"),
        "dinov2_checkpoint": config.get("dinov2_checkpoint"),
        "resnet_name": config.get("resnet_name"),
        "resnet_pretrained": config.get("resnet_pretrained"),
        "provenance": model.weights_provenance(),
    }
    batch = DYNAMIC_DIM if dynamic_batch else 1
    names = set(input_names)
    input_shapes = {name: shape for name, shape in contract.input_shapes(batch).items() if name in names}
    info = {"model_config": config, "dynamic_batch": dynamic_batch}
    if checkpoint:
        info["checkpoint_step"] = checkpoint.get("step")
        info["checkpoint_epoch"] = checkpoint.get("epoch")
    info.update(extra or {})
    return ArtifactMetadata(
        contract=contract,
        variant=config.get("variant", "unknown"),
        domain=domain,
        weights=weights,
        checkpoint_sha256=checkpoint_sha256,
        package_versions=package_versions(),
        input_shapes=input_shapes,
        output_shapes=model.output_shapes(batch),
        extra=info,
    )
