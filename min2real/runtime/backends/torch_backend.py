"""PyTorch backend: a min2real checkpoint run in torch (development, parity checks, GPUs without
TensorRT). The only backend that imports torch, and only when it is created."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from min2real.contract import INPUT_NAMES, Contract, ContractError
from min2real.files import file_sha256
from min2real.runtime.backends.base import Backend


class TorchBackend(Backend):
    """A min2real checkpoint run in PyTorch (development, parity checks, GPUs without TensorRT).

    A checkpoint holds both graphs, so `domain` ("sim" with the V2R adapter, "real" without) must
    be given. The only backend that imports torch (through min2real.models' checkpoint reader).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        domain: str | None = None,
        contract: Contract | None = None,
        device: str = "cpu",
        warmup: int = 1,
    ) -> None:
        if domain is None:
            raise ContractError(
                f"checkpoint {path} holds both the 'sim' and the 'real' graph; pass domain='sim' or domain='real'"
            )
        import torch

        from min2real.models.artifact import artifact_metadata
        from min2real.models.checkpoint import model_from_checkpoint

        self._torch = torch
        self.device = torch.device(device)
        model, checkpoint, model_contract = model_from_checkpoint(path, map_location="cpu")
        self.metadata = artifact_metadata(model, checkpoint, model_contract, domain, file_sha256(path))
        if domain == "sim":  # the training camera, as `min2real export` writes it into an ONNX model
            from min2real.export import source_camera_from_checkpoint

            camera = source_camera_from_checkpoint(checkpoint, model_contract)
            self.metadata = dataclasses.replace(self.metadata, source_camera=camera)
        self._check_requested(domain, contract)
        self.module = model.deploy(domain).to(self.device).eval()
        # Positional inputs in contract order (metadata dicts may be key-sorted after JSON).
        self._input_order = [name for name in INPUT_NAMES if name in self.metadata.input_shapes]
        self.name = f"torch-{self.device.type}"
        self._warm_up(warmup)

    def _run(self, inputs: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        del batch
        torch = self._torch
        with torch.inference_mode():
            args = [torch.from_numpy(inputs[name]).to(self.device) for name in self._input_order]
            outputs = self.module(*args)
        return {name: tensor.float().cpu().numpy() for name, tensor in zip(self.module.output_names, outputs)}
