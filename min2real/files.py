"""File helpers shared by checkpoints, exported graphs, engines and their sidecars."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def file_sha256(path) -> str:
    """sha256 of a file (checkpoints, ONNX graphs), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path, write: Callable) -> Path:
    """Write a file through `write(binary_stream)` into a temporary file in the same directory,
    fsync, then os.replace: a reader (or a run killed mid-write) never sees a half-written
    checkpoint, engine or sidecar."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """`atomic_write` of a bytes object."""
    atomic_write(path, lambda stream: stream.write(data))
