"""ONNX Runtime backend: one session over an exported `.onnx`, created once and warmed up.

"onnxruntime-cpu" / "-cuda" / "-tensorrt" pin ONNX Runtime's execution provider: the session must
run on it (a GPU provider that ONNX Runtime cannot load, e.g. missing CUDA/cuDNN libraries, is an
error, not a silent fall back to the CPU). "onnxruntime" / "auto" take the best available provider
and log which one is active. Never imports torch.

Session options (defaults chosen by measurement, docs/performance.md "CPU session options"):
  intra_op_threads   0 = ONNX Runtime's default, one thread per physical core (2 here): 1.6x faster
                     than 1 thread when the cores are free; while another process keeps a core
                     busy, 1 thread is ~10 % faster (no waiting for a descheduled partner).
  allow_spinning     False: idle pool threads sleep instead of busy-waiting for the next op
                     (session.intra_op.allow_spinning). Spinning is ~13 % faster on an otherwise
                     idle machine, 1.4x slower (and 1.5x the CPU time) as soon as other threads
                     (the node's executor, DDS, other processes) need the cores.
  spin_duration_us   None (ONNX Runtime's default); with allow_spinning, how long an idle pool
                     thread spins before it sleeps (session.intra_op.spin_duration_us): bounded
                     spinning hands the cores back between frames.
  inter_op_threads   1 = sequential execution: the graph is one chain; a parallel executor only
                     adds a second pool competing for the cores (1.5-1.6x slower).
  graph_optimization "all" (ORT_ENABLE_ALL: constant folding, Gelu and MatMul+Add fusions, NCHWc
                     convolutions), ONNX Runtime's default; "extended" measures the same.
  fuse_vit           True: on the CPU provider, timm's ViT attention is rewritten in memory into
                     com.microsoft.Attention nodes and LayerScale folded into its Linear before the
                     session is created (onnxruntime_fusion; the file on disk stays plain for
                     TensorRT), and ORT's SkipLayerNormFusion is off (its CPU kernel is 7x slower
                     than Add + LayerNormalization): 6-12 % faster, 4-11 % less CPU time. GPU
                     providers get the graph as exported.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from min2real.contract import Contract, ContractError
from min2real.runtime import engine_cache
from min2real.runtime.backends.base import Backend
from min2real.runtime.backends.onnxruntime_fusion import rewrite_vit
from min2real.runtime.onnx_metadata import metadata_from_onnx_session

LOGGER = logging.getLogger("min2real.runtime")

ORT_BACKEND_PROVIDERS = {
    "onnxruntime-cpu": ["CPUExecutionProvider"],
    "onnxruntime-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "onnxruntime-tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
# ONNX Runtime fusions the CPU path (fuse_vit) turns off: its SkipLayerNormalization CPU kernel takes
# 1.24 ms per (1, 688, 384) call where Add + LayerNormalization take 0.18 ms (ORT 1.32, measured
# in docs/performance.md), so fusing the residual Add into the next LayerNorm only costs time.
CPU_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
GRAPH_OPTIMIZATION_LEVELS = {  # option value -> onnxruntime.GraphOptimizationLevel member
    "disabled": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


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
    Session options: see the module docstring (each default is measured in docs/performance.md).
    `fused_attention_blocks` / `folded_layer_scales` say what the CPU session runs rewritten.
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
        inter_op_threads: int = 1,
        allow_spinning: bool = False,
        spin_duration_us: int | None = None,
        graph_optimization: str = "all",
        fuse_vit: bool = True,
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
        options = session_options(
            ort,
            intra_op_threads=intra_op_threads,
            inter_op_threads=inter_op_threads,
            allow_spinning=allow_spinning,
            spin_duration_us=spin_duration_us,
            graph_optimization=graph_optimization,
        )
        model: str | bytes = str(self.path)
        disabled_optimizers: list[str] = []
        self.fused_attention_blocks = self.folded_layer_scales = 0
        if fuse_vit and wanted[0] == "CPUExecutionProvider":
            disabled_optimizers = list(CPU_DISABLED_OPTIMIZERS)
            rewrite = rewrite_vit(self.path.read_bytes())
            model = rewrite.model_bytes
            self.fused_attention_blocks, self.folded_layer_scales = rewrite.attention_blocks, rewrite.layer_scales
            LOGGER.info(
                "%s for the CPU provider: %d of %d softmax attention layers fused into com.microsoft.Attention, "
                "%d LayerScales folded",
                self.path,
                rewrite.attention_blocks,
                rewrite.softmax_nodes,
                rewrite.layer_scales,
            )
        self.session = ort.InferenceSession(
            model,
            sess_options=options,
            providers=wanted,
            provider_options=provider_options,
            disabled_optimizers=disabled_optimizers,
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


def session_options(
    ort,
    *,
    intra_op_threads: int,
    inter_op_threads: int,
    allow_spinning: bool,
    graph_optimization: str,
    spin_duration_us: int | None = None,
):
    """onnxruntime.SessionOptions from the backend's options (see the module docstring); a bad
    value is a ValueError naming the option and what it accepts."""
    if graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
        raise ValueError(
            f"ONNX Runtime graph_optimization={graph_optimization!r}; expected one of {tuple(GRAPH_OPTIMIZATION_LEVELS)}"
        )
    for name, value, low in (("intra_op_threads", intra_op_threads, 0), ("inter_op_threads", inter_op_threads, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"ONNX Runtime {name}={value!r}; expected an integer >= {low}")
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION_LEVELS[graph_optimization]
    )
    options.intra_op_num_threads = intra_op_threads  # 0: one per physical core
    if inter_op_threads > 1:
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        options.inter_op_num_threads = inter_op_threads
    else:
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    spinning = "1" if allow_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
    if spin_duration_us is not None:
        if not allow_spinning:
            raise ValueError(f"ONNX Runtime spin_duration_us={spin_duration_us!r} needs allow_spinning=True")
        if isinstance(spin_duration_us, bool) or not isinstance(spin_duration_us, int) or spin_duration_us < 0:
            raise ValueError(f"ONNX Runtime spin_duration_us={spin_duration_us!r}; expected an integer >= 0")
        options.add_session_config_entry("session.intra_op.spin_duration_us", str(spin_duration_us))
    return options


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
