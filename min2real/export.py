"""ONNX export of a Min2Real checkpoint, with metadata and a parity check that fails loudly.

    checkpoint -> model_from_checkpoint -> model.deploy(domain) -> torch.onnx.export (opset 18,
    fixed contract sizes, batch 1 or a dynamic batch) -> metadata_props[METADATA_KEY] =
    ArtifactMetadata.to_json() -> onnx.checker -> ONNX Runtime (CPU) vs PyTorch on random inputs
    and dataset samples: max |error| per output against a stated tolerance; above it: an error.

The "sim" graph is V2R adapter + DINOv2 + heads (simulator images); the "real" graph skips the
adapter (real camera images). DINOv2 is built at the contract's fixed input size (no
positional-embedding interpolation in the graph) and `deploy` disables timm's fused attention,
so the graph holds only standard ONNX ops (checked: any custom-domain or fused attention op is an
export error, since TensorRT and other runtimes reject them).

The metadata also names the camera the training images were recorded with (`source_camera`,
before the contract's crop/resize): a deployment (the CARLA leaderboard agent, the CARLA ROS
launch) requests exactly that camera, so objects appear at the size the model learnt them.
`source_camera_from_checkpoint` reads it from the checkpoint's training config and data.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TIMM_FUSED_ATTN", "0")  # before timm is imported anywhere in this process

import numpy as np  # noqa: E402
import torch  # noqa: E402

from min2real.contract import (  # noqa: E402
    CARLA_GARAGE_CAMERA,
    DOMAINS,
    INPUT_NAMES,
    METADATA_KEY,
    ArtifactMetadata,
    CameraSpec,
    Contract,
    ContractError,
    example_inputs,
)
from min2real.data import load_dataset_samples, sample_to_inputs  # noqa: E402
from min2real.data.config import parse_camera  # noqa: E402
from min2real.models.artifact import artifact_metadata  # noqa: E402

LOGGER = logging.getLogger("min2real.export")

DEFAULT_OPSET = 18
MIN_OPSET = 17  # LayerNormalization is an ONNX op from 17 on (TensorRT's normalization layer)
EXPORTERS = ("dynamo", "legacy")
# Absolute tolerances per output: waypoints in metres, steering logits (pre-softmax).
DEFAULT_TOLERANCES = {"waypoints": 1e-3, "steer_logits": 1e-3, "target_speed_logits": 1e-3}
# Ops that TensorRT or other runtimes reject / that mean fused attention slipped into the graph.
FORBIDDEN_OPS = ("Attention", "MultiHeadAttention", "ScaledDotProductAttention", "GroupQueryAttention")


class ExportError(RuntimeError):
    """Export produced a graph that fails its checks (parity, ops, opset)."""


@dataclass
class ExportReport:
    """What an export produced and how well the ONNX graph matches PyTorch.

    max_abs_error: {output name: max |onnxruntime - torch|} over all checked inputs.
    """

    path: Path
    metadata: ArtifactMetadata
    max_abs_error: dict[str, float]
    tolerances: dict[str, float]
    num_random_inputs: int
    num_dataset_inputs: int
    op_types: tuple[str, ...]
    exporter: str
    monitor: object = None  # min2real.monitor.attach.MonitorReport when the monitor was attached

    def summary(self) -> str:
        lines = [
            f"exported {self.metadata.variant} ({self.metadata.domain} graph) -> {self.path} "
            f"[{self.exporter} exporter, {len(self.op_types)} op types]",
        ]
        if self.max_abs_error:
            checked = f"{self.num_random_inputs} random + {self.num_dataset_inputs} dataset inputs"
            for name, error in self.max_abs_error.items():
                lines.append(
                    f"  {name}: max abs error {error:.3g} (tolerance {self.tolerances[name]:.3g}) over {checked}"
                )
        else:
            lines.append("  parity not verified (verify=False)")
        if self.monitor is not None:
            lines.append(f"  {self.monitor.summary()}")
        return "\n".join(lines)


def _synthetic_summary(root: Path) -> dict | None:
    """The synthetic generator's synthetic.json for a sim root it wrote (the root, or a folder above it)."""
    for folder in (root, *list(root.parents)[:3]):
        summary = folder / "synthetic.json"
        if summary.is_file():
            return json.loads(summary.read_text())
    return None


def source_camera_from_checkpoint(checkpoint: dict | None, contract: Contract) -> CameraSpec | None:
    """The camera the checkpoint's simulator training images were recorded with, or None.

    From the training config's data section (`train_config.data`): its `sim_camera`
    (WIDTHxHEIGHT@FOV_DEG) when it names one; else for `sim_roots` written by the
    synthetic generator (a synthetic.json beside them) the synthetic world's camera; else, for
    CARLA Garage data, Garage's recording camera (1024 x 256, 110 degrees, the leaderboard's lens).
    None when the model saw no simulator images or its roots are not on this machine (the camera
    cannot be told; pass `source_camera` to export_onnx then).
    """
    data = ((checkpoint or {}).get("train_config") or {}).get("data") or {}
    if data.get("sim_camera"):
        return parse_camera(data["sim_camera"])
    roots = [Path(str(root)) for root in data.get("sim_roots") or []]
    if not roots:
        return None
    present = [root for root in roots if root.exists()]
    if not present:
        LOGGER.warning(
            "source camera unknown: the training sim_roots %s are not on this machine; pass source_camera", roots
        )
        return None
    summaries = [_synthetic_summary(root) for root in present]
    if all(summary is None for summary in summaries):
        return CARLA_GARAGE_CAMERA
    if any(summary is None for summary in summaries):
        raise ContractError(
            f"sim_roots {roots} mix synthetic data (synthetic.json beside them) and data without it (CARLA "
            "Garage's camera): the camera cannot be told; train with data.sim_camera=WIDTHxHEIGHT@FOV_DEG, or "
            "export with --source-camera"
        )
    sizes = {tuple(summary["domains"]["sim"]["image_size"]) for summary in summaries if summary}
    if len(sizes) != 1:
        raise ContractError(f"synthetic sim_roots {roots} hold images of sizes {sorted(sizes)}; expected one")
    return synthetic_source_camera(sizes.pop(), contract)


def synthetic_source_camera(image_size: tuple[int, int], contract: Contract) -> CameraSpec:
    """The synthetic world's camera for its sim images of `image_size` (width, height) px."""
    from min2real.data.synthetic.render import make_camera

    width, height = image_size
    camera = make_camera((width, height), contract)
    fov_deg = math.degrees(2.0 * math.atan(0.5 * width / camera.focal_px))
    return CameraSpec(int(width), int(height), fov_deg)


def _torch_outputs(module, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        outputs = module(*(torch.from_numpy(inputs[name]) for name in INPUT_NAMES))
    return {name: tensor.float().numpy() for name, tensor in zip(module.output_names, outputs)}


def verify_onnx(
    module,
    onnx_path: str | Path,
    input_batches: Iterable[dict[str, np.ndarray]],
    tolerances: dict[str, float] | None = None,
) -> dict[str, float]:
    """ONNX Runtime (CPU) vs `module` (the deploy module) on each input dict.

    Returns {output: max abs error}; raises ExportError naming every output above its tolerance.
    """
    import onnxruntime

    tolerances = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    graph_inputs = [i.name for i in session.get_inputs()]
    names = list(module.output_names)
    errors = dict.fromkeys(names, 0.0)
    count = 0
    for inputs in input_batches:
        reference = _torch_outputs(module, inputs)
        got = dict(zip(names, session.run(names, {name: inputs[name] for name in graph_inputs})))
        for name in names:
            if got[name].shape != reference[name].shape:
                raise ExportError(
                    f"ONNX output {name!r} has shape {got[name].shape}; PyTorch gives {reference[name].shape}"
                )
            if not np.isfinite(got[name]).all():
                raise ExportError(f"ONNX output {name!r} has non-finite values")
            errors[name] = max(errors[name], float(np.abs(got[name] - reference[name]).max()))
        count += 1
    if count == 0:
        raise ExportError("ONNX verification got no inputs to compare")
    above = {name: error for name, error in errors.items() if not error <= tolerances[name]}
    if above:
        details = ", ".join(f"{name}: {error:.3g} > {tolerances[name]:.3g}" for name, error in above.items())
        raise ExportError(
            f"ONNX Runtime differs from PyTorch above tolerance for {onnx_path} ({details}); not deployable"
        )
    return errors


def _export_graph(module, contract: Contract, path: Path, *, dynamic_batch: bool, opset: int, exporter: str) -> None:
    # A batch of 2 for dynamic exports keeps the tracer from specialising the batch to 1.
    example = example_inputs(contract, 2 if dynamic_batch else 1, seed=0)
    args = tuple(torch.from_numpy(example[name]) for name in INPUT_NAMES)
    output_names = list(module.output_names)
    options = dict(input_names=list(INPUT_NAMES), output_names=output_names, opset_version=opset)
    if exporter == "dynamo":
        options.update(dynamo=True, external_data=False, verbose=False)
        if dynamic_batch:
            batch = torch.export.Dim("batch", min=1, max=1024)
            options["dynamic_shapes"] = {name: {0: batch} for name in INPUT_NAMES}
    else:
        options.update(dynamo=False)
        if dynamic_batch:
            options["dynamic_axes"] = {name: {0: "batch"} for name in (*INPUT_NAMES, *output_names)}
    torch.onnx.export(module, args, str(path), **options)


def export_model(
    model,
    contract: Contract,
    domain: str,
    out: str | Path,
    *,
    checkpoint: dict | None = None,
    checkpoint_sha256: str = "",
    dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET,
    exporter: str = "dynamo",
    verify: bool = True,
    num_random: int = 2,
    verify_samples: Iterable[dict] | None = None,
    tolerances: dict[str, float] | None = None,
    source_camera: CameraSpec | None = None,
) -> ExportReport:
    """Export an in-memory Min2Real model's `domain` graph to `out` (see module docstring).

    verify_samples: dataset sample dicts (shared sample convention) compared in addition to
    `num_random` random inputs. source_camera: the camera the training images were recorded
    with (metadata `source_camera`). Raises ExportError on a failed check (the file is removed).
    """
    if domain not in DOMAINS:
        raise ContractError(f"export domain {domain!r} is not supported; expected one of {DOMAINS}")
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old; min2real needs opset >= {MIN_OPSET} (LayerNormalization)")
    if exporter not in EXPORTERS:
        raise ExportError(f"exporter {exporter!r} is not supported; expected one of {EXPORTERS}")
    import onnx

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    module = model.deploy(domain).eval()
    temporary = out.with_name(f".{out.name}.partial")
    try:
        _export_graph(module, contract, temporary, dynamic_batch=dynamic_batch, opset=opset, exporter=exporter)
        proto = onnx.load(str(temporary))
        graph_inputs = [value.name for value in proto.graph.input]
        metadata = artifact_metadata(
            model,
            checkpoint,
            contract,
            domain,
            checkpoint_sha256,
            dynamic_batch=dynamic_batch,
            input_names=graph_inputs,
            extra={"opset": opset, "exporter": exporter},
        )
        metadata = dataclasses.replace(metadata, source_camera=source_camera)
        _check_graph(proto, opset)
        del proto.metadata_props[:]
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, metadata.to_json()
        proto.doc_string = f"min2real {metadata.variant} '{domain}' graph; see metadata_props[{METADATA_KEY!r}]"
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(temporary))
        op_types = tuple(sorted({node.op_type for node in proto.graph.node}))
        errors: dict[str, float] = {}
        num_dataset = 0
        if verify:
            batches = [example_inputs(contract, 3 if dynamic_batch else 1, seed=1 + i) for i in range(num_random)]
            dataset_batches = [sample_to_inputs(sample) for sample in (verify_samples or ())]
            num_dataset = len(dataset_batches)
            errors = verify_onnx(module, temporary, batches + dataset_batches, tolerances)
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    report = ExportReport(
        path=out,
        metadata=metadata,
        max_abs_error=errors,
        tolerances={**DEFAULT_TOLERANCES, **(tolerances or {})},
        num_random_inputs=num_random if verify else 0,
        num_dataset_inputs=num_dataset,
        op_types=op_types,
        exporter=exporter,
    )
    LOGGER.info("%s", report.summary())
    return report


def _check_graph(proto, opset: int) -> None:
    """No custom-domain ops, no fused attention, the default-domain opset as asked."""
    custom = sorted(
        {f"{node.domain}::{node.op_type}" for node in proto.graph.node if node.domain not in ("", "ai.onnx")}
    )
    if custom:
        raise ExportError(f"exported graph has custom-domain ops {custom}; TensorRT and plain ONNX Runtime reject them")
    fused = sorted({node.op_type for node in proto.graph.node if node.op_type in FORBIDDEN_OPS})
    if fused:
        raise ExportError(f"exported graph has fused attention ops {fused}; build the model with TIMM_FUSED_ATTN=0")
    default_opsets = [entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")]
    if not default_opsets or default_opsets[0] < MIN_OPSET:
        raise ExportError(f"exported graph has opset {default_opsets}; expected >= {MIN_OPSET}")


def export_onnx(
    checkpoint: str | Path,
    domain: str,
    out: str | Path,
    *,
    dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET,
    exporter: str = "dynamo",
    verify: bool = True,
    verify_data: str | Path | None = None,
    verify_samples: int = 8,
    tolerances: dict[str, float] | None = None,
    source_camera: CameraSpec | None = None,
    monitor_data: str | Path | None = None,
    monitor_heldout: str | Path | None = None,
) -> ExportReport:
    """`min2real export`: checkpoint -> `out` ONNX of the `domain` graph, verified (see module docstring).

    monitor_data / monitor_heldout: training / held-out in-distribution data folders: with both, the
    graph gains the domain-shift monitor outputs (min2real.monitor; its report in `report.monitor`).

    source_camera: the training images' camera; default: read from the checkpoint for "sim"
    graphs (`source_camera_from_checkpoint`), none for "real" graphs (a real vehicle's camera is
    not a simulator's to request)."""
    from min2real.files import file_sha256
    from min2real.models.checkpoint import model_from_checkpoint

    if (monitor_data is None) != (monitor_heldout is None):
        raise ExportError("the monitor needs both monitor_data (training frames) and monitor_heldout (held-out frames)")
    model, checkpoint_dict, contract = model_from_checkpoint(checkpoint, map_location="cpu")
    samples = None
    if verify and verify_data is not None:
        samples = load_dataset_samples(verify_data, contract, domain, verify_samples)
    report = export_model(
        model,
        contract,
        domain,
        out,
        checkpoint=checkpoint_dict,
        checkpoint_sha256=file_sha256(checkpoint),
        dynamic_batch=dynamic_batch,
        opset=opset,
        exporter=exporter,
        verify=verify,
        verify_samples=samples,
        tolerances=tolerances,
        source_camera=source_camera
        if source_camera is not None or domain != "sim"
        else source_camera_from_checkpoint(checkpoint_dict, contract),
    )
    if monitor_data is not None and monitor_heldout is not None:
        from min2real.monitor.from_model import add_monitor_to_export

        report.monitor = add_monitor_to_export(model, domain, out, monitor_data, monitor_heldout)
    return report
