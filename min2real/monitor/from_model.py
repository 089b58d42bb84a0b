"""The export-time side of the monitor that needs the PyTorch model: the discriminator's weights
for the graph, and a parity check of the monitor outputs against PyTorch. The only module of
min2real.monitor that touches torch (lazily, in `check_against_model`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from min2real.contract import INPUT_NAMES, OUTPUT_DOMAIN_LOGIT, OUTPUT_OOD_SCORE
from min2real.monitor.attach import MonitorReport, attach_monitor_from_data, inputs_from_data, run_graph
from min2real.monitor.statistics import MonitorError

PARITY_TOLERANCE = 1e-3  # absolute, domain logit (ONNX Runtime vs PyTorch)


def discriminator_layers(model) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """The trained discriminator as [(weight (out, in), bias (out,)), ...] (Linear layers joined by
    exact GELUs), or None for a model without one. Raises MonitorError for another layout."""
    discriminator = getattr(model, "discriminator", None)
    if discriminator is None:
        return None
    layers = list(discriminator.classifier)
    kinds = [type(layer).__name__ for layer in layers]
    expected = ["Linear", "GELU"] * (len(layers) // 2) + ["Linear"]
    if kinds != expected or any(getattr(layer, "approximate", "none") != "none" for layer in layers):
        raise MonitorError(f"discriminator layers {kinds}; the monitor graph supports Linear/GELU(exact) stacks")
    return [
        (layer.weight.detach().cpu().numpy().astype(np.float32), layer.bias.detach().cpu().numpy().astype(np.float32))
        for layer in layers
        if kinds[layers.index(layer)] == "Linear"
    ]


def check_against_model(model, domain: str, onnx_path: str | Path, inputs: list[dict[str, np.ndarray]]) -> float:
    """Max |ONNX Runtime - PyTorch| of the domain logit on `inputs` (0.0 without a discriminator);
    raises MonitorError above PARITY_TOLERANCE."""
    import torch

    discriminator = getattr(model, "discriminator", None)
    if discriminator is None:
        return 0.0
    got = run_graph(Path(onnx_path).read_bytes(), inputs, [OUTPUT_DOMAIN_LOGIT])[OUTPUT_DOMAIN_LOGIT]
    module = model.deploy(domain).eval()
    reference = []
    with torch.inference_mode():
        for batch in inputs:
            tensors = [torch.from_numpy(batch[name]) if name in batch else torch.zeros(0) for name in INPUT_NAMES]
            features = module.model._predict(*tensors, sim_index=None, all_sim=module.apply_adapter)["features"]
            reference.append(discriminator.classifier(features).squeeze(-1).numpy())
    error = float(np.abs(got - np.concatenate(reference)).max())
    if not error <= PARITY_TOLERANCE:
        raise MonitorError(
            f"the graph's {OUTPUT_DOMAIN_LOGIT} differs from PyTorch by {error:.3g} > {PARITY_TOLERANCE}"
        )
    return error


def add_monitor_to_export(
    model, domain: str, onnx_path: str | Path, train_data: str | Path, heldout_data: str | Path, **options
) -> MonitorReport:
    """`min2real export --monitor-data`: attach the monitor (with the checkpoint's discriminator) to
    the graph just exported at `onnx_path`, in place, and check its domain logit against PyTorch."""
    report = attach_monitor_from_data(
        onnx_path,
        onnx_path,
        train_data,
        heldout_data,
        discriminator=discriminator_layers(model),
        discriminator_source="the checkpoint's domain discriminator",
        **options,
    )
    from min2real.runtime.onnx_metadata import read_onnx_metadata

    check_against_model(
        model, domain, onnx_path, inputs_from_data(heldout_data, read_onnx_metadata(onnx_path), 4, seed=2)
    )
    if OUTPUT_OOD_SCORE not in report.monitor["outputs"]:
        raise MonitorError(f"the monitor graph lacks {OUTPUT_OOD_SCORE}")
    return report
