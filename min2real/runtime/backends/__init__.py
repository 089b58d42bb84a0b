"""Inference backends behind one interface: `infer(inputs) -> outputs` in the contract's terms.

    .engine / .plan      -> TensorRTBackend   (tensorrt_backend: tensorrt + cuda-python; no torch)
    .onnx                -> OnnxRuntimeBackend (TensorRT / CUDA execution providers when present,
                            else CPU, logged; "onnxruntime-cpu|cuda|tensorrt" pin the provider and
                            refuse ONNX Runtime's silent CPU fall back; no torch), or
                            TensorRTBackend on a prebuilt cached engine when backend="tensorrt"
    .pt / .pth / .ckpt   -> TorchBackend      (a min2real checkpoint; the only place torch is used)

Every backend is created once: sessions, engines, CUDA buffers, streams and events live as long
as the backend, and a warm-up inference runs at load so the first real frame is not the slow
one. Every backend knows its `ArtifactMetadata` (contract, variant, domain, shapes) and refuses
to load when the caller asked for another domain or contract. Inputs are validated by name,
shape and dtype before they reach an accelerator: a wrong tensor is a ContractError naming it.
"""

from __future__ import annotations

from pathlib import Path

from min2real.contract import Contract
from min2real.runtime import engine_cache
from min2real.runtime.backends.base import Backend
from min2real.runtime.backends.onnxruntime_backend import ORT_BACKEND_PROVIDERS
from min2real.runtime.engine_cache import EngineCacheError

BACKENDS = ("auto", "onnxruntime", *ORT_BACKEND_PROVIDERS, "tensorrt", "torch")
ENGINE_SUFFIXES = (".engine", ".plan")
ONNX_SUFFIXES = (".onnx",)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def backend_kind_for(path: str | Path, backend: str = "auto") -> str:
    """Which backend class serves `path` ("onnxruntime" | "tensorrt" | "torch"), from its suffix
    and the requested backend. Raises ValueError for unknown suffixes and impossible pairs."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not supported; expected one of {BACKENDS}")
    suffix = Path(path).suffix.lower()
    allowed: tuple[str, ...]
    if suffix in ENGINE_SUFFIXES:
        natural, allowed = "tensorrt", ("tensorrt",)
    elif suffix in ONNX_SUFFIXES:
        natural, allowed = "onnxruntime", ("onnxruntime", *ORT_BACKEND_PROVIDERS, "tensorrt")
    elif suffix in CHECKPOINT_SUFFIXES:
        natural, allowed = "torch", ("torch",)
    else:
        raise ValueError(
            f"model file {path} has suffix {suffix!r}; expected .engine/.plan (TensorRT), .onnx (ONNX Runtime) "
            f"or {'/'.join(CHECKPOINT_SUFFIXES)} (PyTorch checkpoint)"
        )
    if backend == "auto":
        return natural
    if backend not in allowed:
        raise ValueError(f"backend {backend!r} cannot run {path}; a {suffix} file runs on {allowed}")
    return "onnxruntime" if backend in ORT_BACKEND_PROVIDERS else backend


def _tensorrt_engine_for_onnx(onnx_path: Path, options: dict) -> Path:
    """The cached engine built from `onnx_path` (searched as `engine_cache.engine_search_dirs` says). The runtime never builds engines itself: missing or stale ones are refused by
    TensorRTBackend with the build command to run."""
    if options.get("precision") is None:  # a quantized graph's own, fp16 for an FP32 graph (build-engine's default)
        from min2real.runtime.engine_precision import default_engine_precision
        from min2real.runtime.onnx_metadata import read_onnx_metadata

        options["precision"] = default_engine_precision(read_onnx_metadata(onnx_path).precision)
    precision = options["precision"]  # TensorRTBackend checks it against the sidecar
    cache_dir = options.pop("cache_dir", None)
    dirs = engine_cache.engine_search_dirs(onnx_path, cache_dir)
    found = engine_cache.find_cached_engine(onnx_path, precision, dirs)
    if found is None:
        searched = ", ".join(str(d) for d in dirs)
        command = f"min2real build-engine {onnx_path} --precision {precision}"
        if cache_dir:
            command += f" --cache-dir {cache_dir}"
        raise EngineCacheError(
            f"no {precision} TensorRT engine for {onnx_path} in {searched}; build it with `{command}`"
        )
    return found


def load_backend(
    path: str | Path,
    backend: str = "auto",
    *,
    domain: str | None = None,
    contract: Contract | None = None,
    **options,
) -> Backend:
    """Open `path` with the backend its suffix (or `backend`) calls for; see the module docstring.

    backend: "auto" | "onnxruntime" (best provider, logged) | "onnxruntime-cpu" | "onnxruntime-cuda" |
    "onnxruntime-tensorrt" (that provider or an error) | "tensorrt" | "torch".
    domain / contract: what the caller expects; a model exported for something else is refused.
    options go to the backend (e.g. providers=, device_id=, warmup=, device=, precision= and
    cache_dir= for TensorRT from an .onnx).
    """
    path = Path(path)
    kind = backend_kind_for(path, backend)
    if kind == "onnxruntime":
        if backend in ORT_BACKEND_PROVIDERS:
            if options.get("providers") and list(options["providers"]) != ORT_BACKEND_PROVIDERS[backend]:
                raise ValueError(
                    f"backend {backend!r} sets the providers; got providers={options['providers']!r} as well"
                )
            options["providers"] = ORT_BACKEND_PROVIDERS[backend]
        from min2real.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, domain=domain, contract=contract, **options)
    if kind == "tensorrt":
        onnx_path = None
        if path.suffix.lower() in ONNX_SUFFIXES:
            onnx_path, path = path, _tensorrt_engine_for_onnx(path, options)
        elif "onnx_path" in options:
            onnx_path = options.pop("onnx_path")
        from min2real.runtime.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(path, domain=domain, contract=contract, onnx_path=onnx_path, **options)
    from min2real.runtime.backends.torch_backend import TorchBackend

    return TorchBackend(path, domain=domain, contract=contract, **options)
