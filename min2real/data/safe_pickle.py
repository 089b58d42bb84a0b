"""A restricted unpickler for NAVSIM / OpenScene logs (`navsim_logs/<split>/<log>.pkl`).

A pickle can name any importable callable and call it while loading, so a log from an untrusted
download could run code. These logs only ever contain plain containers, numbers, strings and
numpy arrays; `load_navsim_log` resolves exactly those globals from a fixed allow-list and
refuses anything else with an error that names the refused global. Never use `pickle.load`
directly on data files.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import io
import pickle
from pathlib import Path


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a global that is not on the allow-list (nothing was executed)."""


def _numpy_multiarray():
    # numpy >= 2 moved the private core to numpy._core; numpy 1.x pickles name numpy.core.
    try:
        return importlib.import_module("numpy._core.multiarray"), importlib.import_module("numpy._core.numeric")
    except ImportError:
        return importlib.import_module("numpy.core.multiarray"), importlib.import_module("numpy.core.numeric")


def _allowed_globals() -> dict[tuple[str, str], object]:
    import codecs
    import collections

    import numpy as np

    multiarray, numeric = _numpy_multiarray()
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "bytearray"): bytearray,
        ("builtins", "complex"): complex,
        ("builtins", "slice"): slice,
        ("collections", "OrderedDict"): collections.OrderedDict,
        # Protocol-2 pickles of bytes (e.g. numpy array buffers written by Python 2 era tools).
        ("_codecs", "encode"): codecs.encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = numeric._frombuffer
    # numpy scalar and dtype classes referenced by name (np.float64, np.dtypes.Float64DType, ...).
    for name in (
        "bool_",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
        "str_",
        "bytes_",
    ):
        allowed[("numpy", name)] = getattr(np, name)
    for name in dir(np.dtypes):
        if name.endswith("DType") and name not in ("ObjectDType", "VoidDType"):
            allowed[("numpy.dtypes", name)] = getattr(np.dtypes, name)
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals (plain containers, numbers, strings, numpy arrays)."""

    _allowed: dict[tuple[str, str], object] | None = None

    def __init__(self, file, source: str = "<pickle>") -> None:
        super().__init__(file)
        self._source = source
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        # Python 2 names (protocols 0-2), mapped as pickle.Unpickler's own find_class does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        found = self._allowed.get((module, name))  # type: ignore[union-attr]
        if found is None:
            raise UnsafePickleError(
                f"{self._source}: refused global '{module}.{name}'; NAVSIM logs may only contain plain "
                "containers, numbers, strings and numpy arrays (a pickle naming other globals could run code)"
            )
        return found

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._source}: refused persistent id {pid!r}; NAVSIM logs have none")


def safe_loads(data: bytes, source: str = "<bytes>"):
    """Unpickle `data` with the restricted allow-list (raises UnsafePickleError on anything else)."""
    return RestrictedUnpickler(io.BytesIO(data), source=source).load()


def load_navsim_log(path: str | Path) -> list[dict]:
    """A NAVSIM log: list of per-frame dicts. Raises UnsafePickleError for a refused global and
    ValueError when the pickle is not a list of dicts."""
    path = Path(path)
    with path.open("rb") as handle:
        frames = RestrictedUnpickler(handle, source=str(path)).load()
    if not isinstance(frames, list) or not all(isinstance(frame, dict) for frame in frames):
        raise ValueError(f"NAVSIM log {path} holds {type(frames).__name__}; expected a list of per-frame dicts")
    return frames
