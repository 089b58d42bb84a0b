"""Add the monitor to an exported ONNX graph: statistics over training frames, calibration on
held-out in-distribution frames, metadata (no torch; `min2real export --monitor-data` and
`min2real monitor attach` call it).

    graph --attach_summary_nodes--> summaries of N training frames (ONNX Runtime) --fit--> statistics
      --attach_monitor_nodes--> graph + ood_score (+ domain_logit) --held-out frames--> thresholds
      --> metadata: output_shapes gains the outputs, extra["monitor"] says how and from what
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from min2real.contract import (
    DYNAMIC_DIM,
    METADATA_KEY,
    OUTPUT_DOMAIN_LOGIT,
    OUTPUT_OOD_SCORE,
    ArtifactMetadata,
    ContractError,
)
from min2real.files import atomic_write_bytes
from min2real.monitor.graph import attach_monitor_nodes, attach_summary_nodes, locate_features, with_outputs
from min2real.monitor.statistics import MonitorError, combined_scores, fit_score_part, threshold_at

LOGGER = logging.getLogger("min2real.monitor")

# WARN at the score 0.5 % of the held-out frames exceed (chosen on validation drives: at 1 %, 2.2 % of
# the 5-frame windows of the synth-val-empty routes the bundled model drove cleanly were at WARN; at
# 0.5 %, 0.2 %), ERROR at 0.1 %.
DEFAULT_FALSE_ALARM_RATES = {"warn": 0.005, "error": 0.001}
SCORE_PARITY_TOLERANCE = 1e-3  # relative, graph vs the numpy reference
METHOD = (
    "ood_score = sqrt(mean over three parts of (part score / its median training-frame score)^2); part score = "
    "Mahalanobis distance / sqrt(D) to the training-frame mean under a Ledoit-Wolf shrunk covariance; parts: "
    "token_summary (first ViT block's tokens: L2 norm over the tokens), image_summary (camera image sampled every "
    "4th pixel: per channel the pixel p, its step right dx and down dy; mean |p|, |dx|, |dy| and log(S + sum of "
    "their squares) over the S samples) and structure_summary (the samples in 6 x 8 regions: per region "
    "log(1 + mean of |dx| + |dy| summed over the channels)); domain_logit = the training discriminator on the "
    "features the heads read (pre-sigmoid, real > 0)"
)


@dataclass(frozen=True)
class MonitorReport:
    """What attach_monitor did: the output path, the metadata's `extra["monitor"]` entry."""

    path: Path
    monitor: dict

    def summary(self) -> str:
        calibration = self.monitor["calibration"]
        thresholds = calibration[OUTPUT_OOD_SCORE]
        outputs = ", ".join(self.monitor["outputs"])
        return (
            f"monitor attached -> {self.path} [{outputs}]: statistics over {self.monitor['statistics']['frames']} "
            f"training frames (shrinkage {self.monitor['statistics']['shrinkage']}); thresholds from "
            f"{calibration['frames']} held-out frames: WARN {thresholds['warn']:.3f} "
            f"({calibration['false_alarm_rate']['warn']:.2%} false alarms), ERROR {thresholds['error']:.3f} "
            f"({calibration['false_alarm_rate']['error']:.2%}); held-out frames above WARN: "
            f"{calibration['heldout_above_warn']:.2%}"
        )


def read_metadata(model) -> ArtifactMetadata:
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            return ArtifactMetadata.from_json(entry.value)
    raise ContractError(f"the ONNX graph carries no {METADATA_KEY!r} metadata; export it with `min2real export`")


def _write_metadata(model, metadata: ArtifactMetadata) -> None:
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            entry.value = metadata.to_json()


def run_graph(model_bytes: bytes, input_batches: Sequence[dict[str, np.ndarray]], names: Sequence[str]) -> dict:
    """ONNX Runtime (CPU, the graph as stored) over batches of graph inputs -> {name: concatenated (N, ...)}."""
    import onnxruntime

    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    graph_inputs = [value.name for value in session.get_inputs()]
    collected: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for inputs in input_batches:
        values = session.run(list(names), {name: inputs[name] for name in graph_inputs})
        for name, value in zip(names, values):
            collected[name].append(np.asarray(value))
    if not input_batches:
        raise MonitorError("no frames to run the graph on")
    return {name: np.concatenate(values, axis=0) for name, values in collected.items()}


def graph_summaries(
    model, summaries: dict[str, str], input_batches: Sequence[dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """{part name: its (N, D) summary values on `input_batches`} for a graph with attach_summary_nodes."""
    tapped = with_outputs(model, list(summaries.values()))
    values = run_graph(tapped.SerializeToString(), input_batches, list(summaries.values()))
    return {part: values[name].astype(np.float32) for part, name in summaries.items()}


def attach_monitor(
    model_path: str | Path,
    out: str | Path,
    *,
    train_inputs: Sequence[dict[str, np.ndarray]],
    heldout_inputs: Sequence[dict[str, np.ndarray]],
    provenance: dict,
    discriminator: list[tuple[np.ndarray, np.ndarray]] | None = None,
    false_alarm_rates: dict[str, float] | None = None,
) -> MonitorReport:
    """Write `out`: the graph at `model_path` with the monitor outputs, calibrated (module docstring).

    train_inputs / heldout_inputs: batches of graph inputs (contract.INPUT_NAMES arrays) of training
    frames (statistics) and held-out in-distribution frames (thresholds); provenance: where they came
    from (recorded in the metadata); discriminator: its layers [(weight, bias), ...] or None.
    false_alarm_rates: {"warn": rate, "error": lower rate} on held-out frames (DEFAULT_FALSE_ALARM_RATES).
    """
    import onnx

    rates = {**DEFAULT_FALSE_ALARM_RATES, **(false_alarm_rates or {})}
    if not rates["error"] < rates["warn"]:
        raise MonitorError(f"false-alarm rates {rates}: the ERROR rate must be below the WARN rate")
    model = onnx.load(str(model_path))
    metadata = read_metadata(model)
    features_name = locate_features(model) if discriminator else None
    summaries = attach_summary_nodes(model)
    train_features = graph_summaries(model, summaries, train_inputs)
    parts = [fit_score_part(name, values) for name, values in train_features.items()]
    stored = attach_monitor_nodes(model, summaries, parts, features_name, discriminator)
    outputs = [OUTPUT_OOD_SCORE] + ([OUTPUT_DOMAIN_LOGIT] if discriminator else [])
    model_bytes = model.SerializeToString()

    check = run_graph(model_bytes, train_inputs[:8], [OUTPUT_OOD_SCORE])[OUTPUT_OOD_SCORE]
    reference = combined_scores({name: values[: len(check)] for name, values in train_features.items()}, parts)
    error = float(np.max(np.abs(check - reference) / np.maximum(reference, 1e-6)))
    if not error <= SCORE_PARITY_TOLERANCE:
        raise MonitorError(f"the graph's {OUTPUT_OOD_SCORE} differs from the numpy reference by {error:.3g} (relative)")

    heldout = run_graph(model_bytes, heldout_inputs, outputs)
    scores = heldout[OUTPUT_OOD_SCORE]
    warn, warn_how = threshold_at(scores, rates["warn"])
    error_threshold, error_how = threshold_at(scores, rates["error"])
    train_scores = combined_scores(train_features, parts)
    monitor = {
        "method": METHOD,
        "outputs": outputs,
        "features": {
            part.name: {
                "tensor": summaries[part.name],
                "dim": part.statistics.dim,
                "reference": round(part.reference, 6),
            }
            for part in parts
        },
        "statistics": {
            "frames": parts[0].statistics.num_frames,
            "shrinkage": {part.name: round(part.statistics.shrinkage, 6) for part in parts},
            "sha256": stored.sha256(),
            "stored_as": "graph initializers monitor.feature_mean (the parts' means, concatenated) and "
            "monitor.whitening (block diagonal: part k's whitening / sqrt(D_k * parts * reference_k^2))",
            "train_score_mean": round(float(train_scores.mean()), 4),
            **provenance.get("statistics", {}),
        },
        "calibration": {
            "frames": int(scores.size),
            "false_alarm_rate": rates,
            OUTPUT_OOD_SCORE: {
                "warn": round(warn, 6),
                "error": round(max(error_threshold, warn), 6),
                "warn_from": warn_how,
                "error_from": error_how,
                "heldout_median": round(float(np.median(scores)), 6),
            },
            "heldout_above_warn": round(float(np.mean(scores > warn)), 6),
            **provenance.get("calibration", {}),
        },
    }
    if discriminator:
        logits = heldout[OUTPUT_DOMAIN_LOGIT]
        monitor["calibration"][OUTPUT_DOMAIN_LOGIT] = {
            "heldout_mean": round(float(logits.mean()), 6),
            "heldout_std": round(float(logits.std()), 6),
        }
    batch = metadata.output_shapes[next(iter(metadata.output_shapes))][0]
    shapes = {**metadata.output_shapes, **{name: (batch if batch == DYNAMIC_DIM else 1,) for name in outputs}}
    extra = {**metadata.extra, "monitor": monitor}
    _write_metadata(model, dataclasses.replace(metadata, output_shapes=shapes, extra=extra))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, model.SerializeToString())
    report = MonitorReport(out, monitor)
    LOGGER.info("%s", report.summary())
    return report


def inputs_from_data(
    data_dir: str | Path, metadata: ArtifactMetadata, limit: int, seed: int = 0, domain: str | None = None
) -> list[dict[str, np.ndarray]]:
    """Up to `limit` frames of `data_dir` (the graph's domain unless `domain`) as batch-1 graph inputs."""
    from min2real.data import load_dataset_samples, sample_to_inputs

    samples = load_dataset_samples(data_dir, metadata.contract, domain or metadata.domain, limit, seed=seed)
    names = set(metadata.input_shapes)
    return [{k: v for k, v in sample_to_inputs(sample).items() if k in names} for sample in samples]


def attach_monitor_from_data(
    model_path: str | Path,
    out: str | Path,
    train_data: str | Path,
    heldout_data: str | Path,
    *,
    max_train_frames: int = 2400,
    max_heldout_frames: int = 2000,
    discriminator: list[tuple[np.ndarray, np.ndarray]] | None = None,
    discriminator_source: str = "",
    false_alarm_rates: dict[str, float] | None = None,
) -> MonitorReport:
    """attach_monitor with frames from two dataset folders (`min2real data synth` / Garage / NAVSIM
    layouts) of the graph's domain: `train_data` (statistics) and `heldout_data` (thresholds)."""
    from min2real.runtime.onnx_metadata import read_onnx_metadata

    metadata = read_onnx_metadata(model_path)
    if OUTPUT_OOD_SCORE in metadata.output_shapes:
        raise MonitorError(f"{model_path} already has monitor outputs; attach to a graph without them")
    train = inputs_from_data(train_data, metadata, max_train_frames, seed=0)
    heldout = inputs_from_data(heldout_data, metadata, max_heldout_frames, seed=1)
    provenance = {
        "statistics": {"data": str(train_data), "domain": metadata.domain},
        "calibration": {"data": str(heldout_data), "domain": metadata.domain},
    }
    if discriminator:
        provenance["statistics"]["discriminator"] = discriminator_source or "given"
    return attach_monitor(
        model_path,
        out,
        train_inputs=train,
        heldout_inputs=heldout,
        provenance=provenance,
        discriminator=discriminator,
        false_alarm_rates=false_alarm_rates,
    )
