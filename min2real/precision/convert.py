"""`min2real quantize`: an exported FP32 graph -> a typed FP16 or INT8 graph beside it, its
metadata saying so and how, checked against the FP32 graph on dataset inputs.

    read the FP32 graph and its metadata -> rewrite.to_fp16 / rewrite.to_int8 (calibrated on
    dataset samples) -> same input/output types? -> metadata: precision + extra["precision_recipe"]
    -> onnx.checker (full) -> parity.compare_graphs on ONNX Runtime CPU -> above the tolerance:
    QuantizeError, nothing written; else the file, written atomically.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from min2real.contract import METADATA_KEY, ArtifactMetadata, ContractError, example_inputs
from min2real.precision.options import (
    DEFAULT_CALIB_SAMPLES,
    DEFAULT_CALIBRATION_METHOD,
    DEFAULT_TOLERANCES,
    PRECISIONS,
)
from min2real.precision.parity import ParityReport, compare_graphs
from min2real.precision.rewrite import QuantizeError, calibration_record, tensor_types, to_fp16, to_int8

LOGGER = logging.getLogger("min2real.quantize")

__all__ = ["QuantizeError", "QuantizeReport", "quantize_onnx"]


@dataclass
class QuantizeReport:
    path: Path
    source: Path
    metadata: ArtifactMetadata
    parity: ParityReport | None
    tolerances: dict[str, float]
    seconds: float

    def summary(self) -> str:
        recipe = self.metadata.extra.get("precision_recipe", {})
        lines = [
            f"{self.metadata.precision} graph {self.path} from {self.source} in {self.seconds:.1f} s "
            f"({recipe.get('method', '?')})"
        ]
        if self.parity is None:
            lines.append("  parity not verified (verify=False)")
        else:
            lines.append("  against the FP32 graph (ONNX Runtime CPU):")
            lines.extend(self.parity.lines())
        return "\n".join(lines)


def _software_versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__}


# ---- the command ----------------------------------------------------------------------------------
def _dataset_batches(data_dir, metadata: ArtifactMetadata, limit: int, names) -> list[dict[str, np.ndarray]]:
    from min2real.data import load_dataset_samples, sample_to_inputs

    samples = load_dataset_samples(data_dir, metadata.contract, metadata.domain, limit)
    return [{name: value for name, value in sample_to_inputs(sample).items() if name in names} for sample in samples]


def quantize_onnx(
    onnx_path: str | Path,
    precision: str,
    out: str | Path,
    *,
    calib_data: str | Path | None = None,
    calib_samples: int = DEFAULT_CALIB_SAMPLES,
    calib_method: str = DEFAULT_CALIBRATION_METHOD,
    verify: bool = True,
    verify_data: str | Path | None = None,
    verify_samples: int = 64,
    tolerances: dict[str, float] | None = None,
) -> QuantizeReport:
    """`onnx_path` (an FP32 `min2real export`) -> `out` at `precision`, its metadata saying so and
    how, checked against the FP32 graph on `verify_data` samples (else random contract inputs).
    Raises QuantizeError (nothing written) on a failed step or an error above tolerance."""
    import onnx

    from min2real.runtime.onnx_metadata import read_onnx_metadata

    if precision not in PRECISIONS:
        raise QuantizeError(f"precision {precision!r}; expected one of {PRECISIONS} (fp32 is what export writes)")
    onnx_path, out = Path(onnx_path), Path(out)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model {onnx_path} does not exist")
    if onnx_path.resolve() == out.resolve():
        raise QuantizeError(f"--out {out} is the source graph; write the {precision} graph beside it")
    metadata = read_onnx_metadata(onnx_path)
    if metadata.precision != "fp32":
        raise QuantizeError(f"{onnx_path} is already a {metadata.precision} graph; quantize the FP32 export")
    start = time.perf_counter()
    proto = onnx.load(str(onnx_path))
    names = [value.name for value in proto.graph.input]
    if precision == "fp16":
        converted, recipe = to_fp16(proto)
    else:
        if calib_data is None:
            raise QuantizeError("int8 needs calibration data: --calib DATA_DIR (samples of the training data)")
        calibration = _dataset_batches(calib_data, metadata, calib_samples, names)
        converted, recipe = to_int8(proto, calibration, calib_method)
        recipe["calibration"] = calibration_record(calib_data, calibration, calib_samples)
    types = tensor_types(converted.graph)
    if types != tensor_types(proto.graph):
        raise QuantizeError(f"the {precision} graph changed its input/output types: {types}")
    recipe.update(source_sha256=_sha256(onnx_path), software=_software_versions())
    new_metadata = dataclasses.replace(
        metadata, precision=precision, extra={**metadata.extra, "precision_recipe": recipe}
    )
    del converted.metadata_props[:]
    entry = converted.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, new_metadata.to_json()
    converted.doc_string = f"min2real {metadata.variant} '{metadata.domain}' graph, {precision}; see metadata_props"
    onnx.checker.check_model(converted, full_check=True)

    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.partial")
    tolerance = {**DEFAULT_TOLERANCES[precision], **(tolerances or {})}
    parity = None
    try:
        onnx.save(converted, str(temporary))
        if verify:
            if verify_data is not None:
                batches, source = _dataset_batches(verify_data, metadata, verify_samples, names), str(verify_data)
            else:
                batches = [example_inputs(metadata.contract, 1, seed=seed, names=names) for seed in range(4)]
                source = "random contract inputs"
            parity = compare_graphs(onnx_path, temporary, batches, source)
            above = parity.above(tolerance)
            if above:
                details = ", ".join(f"{name}: {error:.3g} > {tolerance[name]:.3g}" for name, error in above.items())
                raise QuantizeError(f"the {precision} graph differs from FP32 above tolerance ({details})")
        os.replace(temporary, out)
    except ContractError as error:
        raise QuantizeError(str(error)) from error
    finally:
        temporary.unlink(missing_ok=True)
    report = QuantizeReport(out, onnx_path, new_metadata, parity, tolerance, time.perf_counter() - start)
    LOGGER.info("%s", report.summary())
    return report


def _sha256(path: Path) -> str:
    from min2real.files import file_sha256

    return file_sha256(path)
