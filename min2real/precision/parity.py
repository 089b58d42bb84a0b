"""A reduced-precision graph against its FP32 graph, both run by ONNX Runtime (CPU) on the same
inputs: per output the max and 99th-percentile |difference| (element-wise: waypoints in metres,
logits in logit units), and how often the steering class (argmax of steer_logits) agrees.

Honest limits of a CPU measurement: ONNX Runtime's CPU provider runs the FP16 nodes that have no
FP16 kernel through casts it inserts (FP32 arithmetic between FP16-rounded tensors), and the
INT8 Q/DQ graph through its integer kernels; a TensorRT engine picks its own kernels, so the
engine's parity is measured on the GPU (`min2real engine-check`, docs/deployment.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from min2real.contract import OUTPUT_STEER_LOGITS


@dataclass(frozen=True)
class OutputParity:
    """|candidate - reference| over every element of one output across all inputs."""

    max_abs: float
    p99_abs: float

    def to_dict(self) -> dict[str, float]:
        return {"max_abs": self.max_abs, "p99_abs": self.p99_abs}


@dataclass(frozen=True)
class ParityReport:
    outputs: dict[str, OutputParity]
    steer_agreement: float  # share of inputs whose steering class (argmax) agrees
    num_inputs: int
    inputs_from: str  # where the inputs came from (dataset directory or "random")

    def to_dict(self) -> dict:
        return {
            "outputs": {name: parity.to_dict() for name, parity in self.outputs.items()},
            "steer_agreement": self.steer_agreement,
            "num_inputs": self.num_inputs,
            "inputs_from": self.inputs_from,
        }

    def lines(self) -> list[str]:
        lines = [
            f"  {name}: max |error| {parity.max_abs:.3g}, p99 {parity.p99_abs:.3g}"
            for name, parity in self.outputs.items()
        ]
        lines.append(
            f"  steering class agreement {self.steer_agreement:.1%} over {self.num_inputs} inputs ({self.inputs_from})"
        )
        return lines

    def above(self, tolerances: dict[str, float]) -> dict[str, float]:
        """{output: max |error|} of the outputs whose max |error| exceeds its tolerance."""
        return {
            name: parity.max_abs
            for name, parity in self.outputs.items()
            if name in tolerances and not parity.max_abs <= tolerances[name]
        }


def cpu_session(path: str | Path):
    """An ONNX Runtime CPU session of `path` (one thread pool, default graph optimisations)."""
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_graph(session, batches: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every output of `session` on each input dict, concatenated along the batch axis."""
    names = [output.name for output in session.get_outputs()]
    inputs = [graph_input.name for graph_input in session.get_inputs()]
    collected: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for batch in batches:
        for name, value in zip(names, session.run(names, {name: batch[name] for name in inputs})):
            collected[name].append(np.asarray(value, dtype=np.float32))
    return {name: np.concatenate(values) for name, values in collected.items()}


def compare_outputs(
    reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], inputs_from: str
) -> ParityReport:
    """Parity of the outputs both graphs have; a non-finite candidate output is infinitely far."""
    outputs = {}
    num_inputs = 0
    for name in reference:
        if name not in candidate:
            continue
        if candidate[name].shape != reference[name].shape:
            raise ValueError(f"output {name!r}: shape {candidate[name].shape}; FP32 graph {reference[name].shape}")
        error = np.abs(candidate[name].astype(np.float64) - reference[name].astype(np.float64))
        error[~np.isfinite(error)] = np.inf
        outputs[name] = OutputParity(float(error.max()), float(np.percentile(error, 99)))
        num_inputs = len(reference[name])
    agreement = float("nan")
    if OUTPUT_STEER_LOGITS in reference and OUTPUT_STEER_LOGITS in candidate:
        agree = reference[OUTPUT_STEER_LOGITS].argmax(-1) == candidate[OUTPUT_STEER_LOGITS].argmax(-1)
        agreement = float(agree.mean())
    return ParityReport(outputs, agreement, num_inputs, inputs_from)


def compare_graphs(
    reference_path: str | Path,
    candidate_path: str | Path,
    batches: Sequence[dict[str, np.ndarray]],
    inputs_from: str,
) -> ParityReport:
    """Run both graphs on `batches` with ONNX Runtime CPU and compare (see module docstring)."""
    if not batches:
        raise ValueError("parity needs at least one input")
    reference = run_graph(cpu_session(reference_path), batches)
    candidate = run_graph(cpu_session(candidate_path), batches)
    return compare_outputs(reference, candidate, inputs_from)
