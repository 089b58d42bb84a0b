"""Decoded samples cached once: memory-mapped arrays keyed by the data and the contract.

A training step of the bundled recipe spent most of its time decoding (nine gzip JSON
measurements, a JPEG, a LAZ point cloud and the BEV histogram per sample, every time a sample
was drawn). The samples are pure functions of (index, camera view): CARLA Garage frames have two
views (the recorded and the shifted / rotated camera), NAVSIM frames one. `CachedSamples` decodes
every (index, view) once into `<cache_dir>/<name>-<key>/` (one .npy per sample key, shape
(N, views, ...), opened memory-mapped) and then serves samples from there, drawing the view with
the source's own `draw_view()` so the random stream, and therefore every batch, is what the
uncached dataset would give.

The key hashes everything a sample depends on: the dataset's options and index arrays, the
contract, the size and modification time of every file under the dataset's folders, and the
source code of the modules that build samples. Change any of them and a new cache is built; an
old one is never read for new data. Broken samples are cached as their `DataProblem`.

    train = MixedDomainDataset(CachedSamples(sim, "data/cache"), CachedSamples(real, "data/cache"))
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from min2real import contract as C
from min2real.data.common import SAMPLE_KEYS, DataProblem, DataProblems

LOG = logging.getLogger("min2real.data")
CACHE_FORMAT = 1
_PROBLEMS_FILE = "problems.json"
_COMPLETE_FILE = "complete.json"
# Modules whose code decides what a sample holds (each dataset's own module is added to these).
_SAMPLE_CODE_MODULES = ("min2real.contract", "min2real.data.common")


def _leaves(dataset) -> list:
    inner = getattr(dataset, "datasets", None)  # torch ConcatDataset
    return [dataset] if inner is None else [leaf for part in inner for leaf in _leaves(part)]


def _value_digest(value) -> object:
    """A JSON-able stand-in for one dataset attribute (None: the attribute does not define samples)."""
    if isinstance(value, np.ndarray):
        return [str(value.dtype), list(value.shape), hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()]
    if isinstance(value, (str, int, float, bool, Path)) or value is None:
        return str(value)
    if isinstance(value, C.Contract):
        return value.to_json()
    if isinstance(value, (list, tuple)) and all(isinstance(item, (str, int, float, Path)) for item in value):
        return [str(item) for item in value]
    return None


def _source_dirs(dataset) -> list[Path]:
    """The folders whose files a dataset reads (route folders; NAVSIM logs and sensor blobs)."""
    if hasattr(dataset, "route_dirs"):
        return [Path(route) for route in dataset.route_dirs]
    if hasattr(dataset, "blobs_dir"):
        return [Path(dataset.root) / "navsim_logs" / dataset.split, Path(dataset.blobs_dir)]
    raise TypeError(f"{type(dataset).__name__} is not a dataset the sample cache knows (CARLA Garage, NAVSIM)")


def _files_digest(folders: list[Path]) -> str:
    digest = hashlib.sha256()
    for folder in folders:
        for current, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                stat = os.stat(os.path.join(current, name))
                digest.update(
                    f"{os.path.relpath(os.path.join(current, name), folder)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode()
                )
    return digest.hexdigest()


def cache_key(dataset, views: int) -> str:
    """The hash naming a dataset's cache (see the module docstring for what goes in)."""
    leaves = _leaves(dataset)
    modules = set(_SAMPLE_CODE_MODULES) | {type(leaf).__module__ for leaf in leaves}
    identity = {
        "format": CACHE_FORMAT,
        "views": views,
        "length": len(dataset),
        "code": {
            name: hashlib.sha256(inspect.getsource(sys.modules[name]).encode()).hexdigest() for name in sorted(modules)
        },
        "leaves": [
            {
                "class": type(leaf).__name__,
                "attributes": {
                    name: digest
                    for name, value in sorted(vars(leaf).items())
                    if name not in ("stats",) and (digest := _value_digest(value)) is not None
                },
                "files": _files_digest(_source_dirs(leaf)),
            }
            for leaf in leaves
        ],
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


class CachedSamples:
    """`dataset`'s samples served from a memory-mapped cache under `cache_dir` (built on first use).

    dataset: a CarlaGarageDataset, a NavsimDataset or a ConcatDataset of NavsimDatasets. A dataset
    with `augmented_view_probability > 0` has two views per index; `__getitem__` draws it with
    `dataset.draw_view()` exactly as the dataset itself would. `load(index, augmented)` reads a view.
    """

    def __init__(self, dataset, cache_dir: str | Path, name: str, build_workers: int = 0) -> None:
        self.source = dataset
        self.domain = getattr(dataset, "domain", None)
        self.views = 2 if getattr(dataset, "augmented_view_probability", 0.0) > 0 else 1
        self.problems = DataProblems()
        self.index_problems = DataProblems()
        for leaf in _leaves(dataset):
            if hasattr(leaf, "index_problems"):
                self.index_problems.merge(leaf.index_problems)
        self.path = Path(cache_dir) / f"{name}-{cache_key(dataset, self.views)}"
        if not (self.path / _COMPLETE_FILE).is_file():
            self._build(build_workers)
        self.arrays = {key: np.load(self.path / f"{key}.npy", mmap_mode="r") for key in SAMPLE_KEYS}
        records = json.loads((self.path / _PROBLEMS_FILE).read_text(encoding="utf-8"))
        self.cached_problems = {
            (r["index"], r["view"]): DataProblem(r["kind"], r["path"], r["message"]) for r in records
        }

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, np.ndarray] | DataProblem:
        view = int(self.source.draw_view()) if self.views == 2 else 0
        return self.load(index, bool(view))

    def load(self, index: int, augmented: bool = False) -> dict[str, np.ndarray] | DataProblem:
        view = int(augmented)
        if view >= self.views:
            raise ValueError(f"sample cache {self.path} holds {self.views} view(s); view {view} was asked for")
        problem = self.cached_problems.get((int(index), view))
        if problem is not None:
            self.problems.add(problem)
            return problem
        return {key: np.asarray(array[index, view]) for key, array in self.arrays.items()}

    # ---- building -----------------------------------------------------------------------------
    def _decode(self, flat_index: int):
        index, view = divmod(flat_index, self.views)
        if self.views == 2:
            return self.source.load(index, bool(view))
        return self.source[index]

    def _build(self, workers: int) -> None:
        from torch.utils.data import DataLoader

        from min2real.data.mixed import worker_init_fn

        start = time.perf_counter()
        partial = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        count = len(self.source) * self.views
        loader = DataLoader(
            _Flat(self, count),
            batch_size=None,
            num_workers=workers,
            worker_init_fn=worker_init_fn,
            collate_fn=lambda sample: sample,
        )
        arrays: dict[str, np.ndarray] = {}
        problems = []
        for flat_index, sample in enumerate(loader):
            index, view = divmod(flat_index, self.views)
            if isinstance(sample, DataProblem):
                problems.append({"index": index, "view": view, **vars(sample)})
                continue
            if not arrays:
                for key in SAMPLE_KEYS:
                    value = np.asarray(sample[key])
                    arrays[key] = np.lib.format.open_memmap(
                        partial / f"{key}.npy",
                        mode="w+",
                        dtype=value.dtype,
                        shape=(len(self.source), self.views, *value.shape),
                    )
            for key in SAMPLE_KEYS:
                arrays[key][index, view] = sample[key]
        if not arrays:
            raise ValueError(f"sample cache {self.path}: every sample of the dataset is broken; nothing to cache")
        for array in arrays.values():
            array.flush()
        (partial / _PROBLEMS_FILE).write_text(json.dumps(problems), encoding="utf-8")
        seconds = time.perf_counter() - start
        (partial / _COMPLETE_FILE).write_text(json.dumps({"samples": count, "seconds": seconds}), encoding="utf-8")
        try:
            partial.rename(self.path)
        except OSError:  # another process finished the same cache first: theirs is identical
            shutil.rmtree(partial, ignore_errors=True)
        LOG.warning("sample cache: decoded %d samples into %s in %.1f s", count, self.path, seconds)


class _Flat:
    """(index, view) pairs as one flat map-style dataset, for the cache's build loader."""

    def __init__(self, cache: CachedSamples, count: int) -> None:
        self.cache, self.count = cache, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, flat_index: int):
        return self.cache._decode(flat_index)
