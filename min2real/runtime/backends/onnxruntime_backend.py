"""ONNX Runtime backend: one session over an exported `.onnx`, created once and warmed up.

"onnxruntime-cpu" / "-cuda" / "-tensorrt" pin ONNX Runtime's execution provider: the session must
run on it (a GPU provider that ONNX Runtime cannot load, e.g. missing CUDA/cuDNN libraries, is an
error, not a silent fall back to the CPU). "onnxruntime" / "auto" take the best available provider
and log which one is active. Never imports torch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from min2real.contract import Contract, ContractError
from min2real.runtime import engine_cache
from min2real.runtime.backends.base import Backend
from min2real.runtime.onnx_metadata import metadata_from_onnx_session

LOGGER = logging.getLogger("min2real.runtime")

ORT_BACKEND_PROVIDERS = {
    "onnxruntime-cpu": ["CPUExecutionProvider"],
    "onnxruntime-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "onnxruntime-tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(
            "the ONNX Runtime backend needs the 'onnxruntime' package (or 'onnxruntime-gpu' for CUDA/TensorRT)"
        ) from error
    return onnxruntime


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime session over an exported `.onnx` (created once, warmed up at load).

    providers: None = best available of TensorRT, CUDA, CPU (in that order; a GPU provider that
    fails to start is logged as a warning); or an explicit list whose first provider must become
    active (ONNX Runtime's silent fall back to the CPU is an error then).
    The TensorRT execution provider caches its engines in the resolved engine cache directory.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        domain: str | None = None,
        contract: Contract | None = None,
        providers: list[str] | None = None,
        device_id: int = 0,
        intra_op_threads: int = 0,
        warmup: int = 1,
        cache_dir: str | Path | None = None,
        fp16: bool = False,
    ) -> None:
        ort = _import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model {self.path} does not exist")
        available = ort.get_available_providers()
        explicit = bool(providers)
        wanted = list(providers or ()) or [p for p in GPU_PROVIDERS if p in available] + ["CPUExecutionProvider"]
        unknown = [p for p in wanted if p not in available]
        if unknown:
            raise RuntimeError(
                f"ONNX Runtime providers {unknown} were asked for but are not available here (available: {available}); "
                "GPU providers need the 'onnxruntime-gpu' package and a CUDA GPU"
            )
        provider_options = []
        for provider in wanted:
            if provider == "TensorrtExecutionProvider":
                trt_cache = engine_cache.resolve_cache_dir(cache_dir or self.path.parent, LOGGER)
                provider_options.append(
                    {
                        "device_id": device_id,
                        "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": str(trt_cache),
                        "trt_fp16_enable": fp16,
                    }
                )
            elif provider == "CUDAExecutionProvider":
                provider_options.append({"device_id": device_id})
            else:
                provider_options.append({})
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            options.intra_op_num_threads = int(intra_op_threads)
        self.session = ort.InferenceSession(
            str(self.path), sess_options=options, providers=wanted, provider_options=provider_options
        )
        self.metadata = metadata_from_onnx_session(self.session, self.path)
        self._check_requested(domain, contract)
        graph_inputs = {i.name for i in self.session.get_inputs()}
        if graph_inputs != set(self.metadata.input_shapes):
            raise ContractError(
                f"ONNX model {self.path} inputs {sorted(graph_inputs)} differ from its metadata "
                f"{sorted(self.metadata.input_shapes)}; re-export it"
            )
        self._output_names = [o.name for o in self.session.get_outputs()]
        self.active_providers = list(self.session.get_providers())
        check_active_providers(wanted, self.active_providers, explicit, self.path)
        active = self.active_providers[0]
        self.name = {
            "TensorrtExecutionProvider": "onnxruntime-tensorrt",
            "CUDAExecutionProvider": "onnxruntime-cuda",
        }.get(active, "onnxruntime-cpu")
        self._warm_up(warmup)

    def _run(self, inputs: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        del batch
        values = self.session.run(self._output_names, inputs)
        return dict(zip(self._output_names, values))

    def close(self) -> None:
        self.__dict__.pop("session", None)


def check_active_providers(wanted: list[str], active: list[str], explicit: bool, path) -> None:
    """ONNX Runtime falls back to the CPU with only a log line of its own when a GPU provider
    fails to initialise (missing CUDA/cuDNN libraries, no GPU). Asked-for providers (`explicit`):
    the first one must be active, else RuntimeError. Automatic choice: a warning naming the
    provider that was wanted and the one that runs."""
    if not active:
        raise RuntimeError(f"ONNX Runtime session for {path} has no active execution provider")
    if active[0] == wanted[0]:
        LOGGER.info("ONNX Runtime runs %s on %s", path, ", ".join(active))
        return
    message = (
        f"ONNX Runtime could not start {wanted[0]} for {path} and fell back to {active[0]} "
        "(see ONNX Runtime's log above: CUDA / cuDNN / TensorRT libraries missing or mismatched?)"
    )
    if explicit:
        raise RuntimeError(message + "; refusing to run on another provider than the one asked for")
    LOGGER.warning("%s", message)
