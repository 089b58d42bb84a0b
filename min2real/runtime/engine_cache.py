"""TensorRT engine cache rules: pure functions, no TensorRT import.

A serialized TensorRT engine only runs on the TensorRT version and GPU model it was built for,
and only means what it meant if it came from the same ONNX file, precision and input shapes.
The common failure modes of ROS 2 TensorRT nodes are loading a stale engine blindly (caches
keyed by file path only), rebuilding on every start (cache directory not writable) and version
mismatch errors deep inside TensorRT. So every engine carries an `EngineCacheKey` in its
sidecar `<engine>.json` (ONNX hash, TensorRT version, GPU, engine precision, input shapes, the
graph's own precision), and `decide` compares it with the key wanted on this machine:

    no cached engine            -> "build" (allowed) or "refuse"
    keys equal                  -> "load"
    any field differs           -> "build" (allowed) or "refuse", the reasons name each field

Cache directory: the configured one when writable, else the user cache directory
(`$XDG_CACHE_HOME/min2real/engines` or `~/.cache/min2real/engines`) with a log line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from min2real.files import atomic_write_bytes

LOGGER = logging.getLogger("min2real.engine_cache")

PRECISIONS = ("fp32", "fp16", "int8")
ACTIONS = ("load", "build", "refuse")
SIDECAR_SUFFIX = ".json"
ENGINE_SUFFIX = ".engine"


class EngineCacheError(RuntimeError):
    """A cached engine cannot be used (the message names what differs and how to rebuild)."""


@dataclass(frozen=True)
class EngineCacheKey:
    """Everything a serialized engine depends on.

    onnx_sha256: hash of the ONNX file the engine was built from.
    tensorrt_version: e.g. "10.3.0" (engines are not portable across TensorRT versions).
    gpu_name / compute_capability: e.g. "NVIDIA Orin" / "8.7" (nor across GPU models).
    precision: "fp32" | "fp16" | "int8": the engine's.
    input_shapes: ((tensor name, (dim, ...)), ...) sorted by name; for a dynamic batch the
        shape holds the largest batch the engine's optimisation profile accepts.
    graph_precision: the ONNX graph's own precision ("fp32" as exported, "fp16" / "int8" from
        `min2real quantize`); sidecars written before it was recorded came from fp32 graphs.
    """

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    input_shapes: Any  # given as a mapping or pairs; stored as sorted ((name, shape), ...) pairs
    graph_precision: str = "fp32"

    def __post_init__(self) -> None:
        for name, value in (("engine", self.precision), ("graph", self.graph_precision)):
            if value not in PRECISIONS:
                raise ValueError(f"{name} precision {value!r} is not supported; expected one of {PRECISIONS}")
        normalised = tuple(
            sorted((str(name), tuple(int(d) for d in shape)) for name, shape in _items(self.input_shapes))
        )
        object.__setattr__(self, "input_shapes", normalised)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self.input_shapes)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["input_shapes"] = {name: list(shape) for name, shape in self.input_shapes}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> EngineCacheKey:
        fields = [f.name for f in dataclasses.fields(cls)]
        missing = [name for name in fields if name not in data and name != "graph_precision"]
        if missing:
            raise EngineCacheError(f"engine cache key lacks fields {missing}; expected {fields}")
        return cls(**{name: data[name] for name in fields if name in data})

    def digest(self) -> str:
        """Stable sha256 of the key (for logs and file-level comparisons)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def differences(self, other: EngineCacheKey) -> list[str]:
        """Human-readable list of fields that differ: "field: cached value -> wanted value"."""
        labels = {
            "onnx_sha256": "ONNX file hash",
            "tensorrt_version": "TensorRT version",
            "gpu_name": "GPU model",
            "compute_capability": "GPU compute capability",
            "precision": "precision",
            "input_shapes": "input shapes",
            "graph_precision": "graph precision",
        }
        result = []
        for name, label in labels.items():
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                if name == "input_shapes":
                    mine, theirs = dict(mine), dict(theirs)
                result.append(f"{label} ({name}): cached {mine!r} -> wanted {theirs!r}")
        return result


def _items(shapes) -> list:
    return list(shapes.items()) if isinstance(shapes, dict) else list(shapes)


@dataclass(frozen=True)
class Decision:
    """What to do with a cache entry: action "load" | "build" | "refuse", and why."""

    action: str
    reasons: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"cache decision action {self.action!r}; expected one of {ACTIONS}")

    def explain(self) -> str:
        return f"{self.action}: " + ("; ".join(self.reasons) if self.reasons else "cached engine matches")


def decide(cached_key: EngineCacheKey | None, wanted_key: EngineCacheKey, allow_rebuild: bool) -> Decision:
    """The cache rule. `cached_key` is the key in the existing engine's sidecar (None when there
    is no engine or no readable sidecar: an engine without its key is never loaded)."""
    reasons: tuple[str, ...]
    if cached_key is None:
        reasons = ("no cached engine with a readable key sidecar",)
    else:
        reasons = tuple(cached_key.differences(wanted_key))
        if not reasons:
            return Decision("load", ())
    return Decision("build" if allow_rebuild else "refuse", reasons)


# ---- files -------------------------------------------------------------------------------------
def engine_file_name(onnx_path: str | Path, precision: str) -> str:
    """Cache file name of the engine built from `onnx_path` at `precision`: `<stem>.<precision>.engine`.

    Stable across TensorRT versions and GPUs on purpose: a stale engine is found, compared and
    replaced (or refused with the differences named) instead of piling up beside new ones.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"engine precision {precision!r} is not supported; expected one of {PRECISIONS}")
    return f"{Path(onnx_path).stem}.{precision}{ENGINE_SUFFIX}"


def sidecar_path(engine_path: str | Path) -> Path:
    """`<engine>.json`: the ArtifactMetadata and cache key that travel with an engine."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + SIDECAR_SUFFIX)


def write_sidecar(engine_path: str | Path, metadata_json: str, key: EngineCacheKey, extra: dict | None = None) -> Path:
    """Atomically write the sidecar of `engine_path` (metadata JSON string + cache key)."""
    payload = {"metadata": json.loads(metadata_json), "cache_key": key.to_dict(), **(extra or {})}
    path = sidecar_path(engine_path)
    atomic_write_bytes(path, json.dumps(payload, indent=2, sort_keys=True).encode())
    return path


def read_sidecar(engine_path: str | Path) -> tuple[str, EngineCacheKey] | None:
    """(metadata JSON string, cache key) of an engine, or None when the sidecar is missing.

    A sidecar that exists but cannot be parsed raises EngineCacheError naming the file.
    """
    path = sidecar_path(engine_path)
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
        return json.dumps(payload["metadata"], sort_keys=True), EngineCacheKey.from_dict(payload["cache_key"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise EngineCacheError(f"engine sidecar {path} is unreadable ({error}); rebuild the engine") from error


def cached_key_of(engine_path: str | Path) -> EngineCacheKey | None:
    """The key of an existing engine; None when the engine or its sidecar is missing or unreadable."""
    if not Path(engine_path).is_file():
        return None
    try:
        found = read_sidecar(engine_path)
    except EngineCacheError as error:
        LOGGER.warning("%s", error)
        return None
    return None if found is None else found[1]


# ---- cache directory -----------------------------------------------------------------------------
def user_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/min2real/engines`, else `~/.cache/min2real/engines`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "min2real" / "engines"


def directory_is_writable(path: str | Path) -> bool:
    """Create `path` if needed and prove it writable by creating a file (os.access lies for root
    on read-only mounts and says nothing about directories that do not exist yet)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".min2real-write-probe-"):
            pass
    except OSError:
        return False
    return True


def resolve_cache_dir(configured: str | Path | None, logger: logging.Logger | None = None) -> Path:
    """The engine cache directory to use: `configured` when it is (or can be made) writable,
    otherwise the user cache directory, with a log line saying so. Raises EngineCacheError when
    neither is writable (an engine that cannot be cached would be rebuilt on every start)."""
    logger = logger or LOGGER
    fallback = user_cache_dir()
    if configured is not None and str(configured) != "":
        configured = Path(configured).expanduser()
        if directory_is_writable(configured):
            return configured
        logger.warning(
            "engine cache directory %s is not writable; using the user cache directory %s instead", configured, fallback
        )
    if directory_is_writable(fallback):
        return fallback
    raise EngineCacheError(
        f"no writable engine cache directory: configured {configured!s}, user cache {fallback}; "
        "set a writable cache directory (or XDG_CACHE_HOME)"
    )


def engine_search_dirs(onnx_path: str | Path, cache_dir: str | Path | None = None) -> list[Path]:
    """Where an engine for `onnx_path` may be, in the order `build_engine` writes it: the
    configured cache directory, beside the ONNX, then the user cache directory (the fallback for
    unwritable directories). The one search order of the runtime and the command line."""
    dirs = [Path(cache_dir).expanduser()] if cache_dir not in (None, "") else []
    return [*dirs, Path(onnx_path).parent, user_cache_dir()]


def find_cached_engine(onnx_path: str | Path, precision: str, cache_dirs: Sequence[str | Path | None]) -> Path | None:
    """First existing `<stem>.<precision>.engine` among `cache_dirs` (read-only lookup: a
    deployment may ship prebuilt engines in a read-only directory)."""
    name = engine_file_name(onnx_path, precision)
    for directory in cache_dirs:
        if directory is None or str(directory) == "":
            continue
        candidate = Path(directory).expanduser() / name
        if candidate.is_file():
            return candidate
    return None
