"""Pieces every loader shares: problem records, robust file readers and the sample builder.

A sample is a dict of numpy arrays in the contract's form (see `build_sample`). A loader that
meets broken data (missing frame, truncated JPEG, corrupt .laz, bad JSON, refused pickle) does
not raise: it logs a warning and returns a `DataProblem` in place of the sample. The record is
plain data, so it survives DataLoader worker processes; `collate_samples` (mixed.py) moves it
into the batch's "problems" list and `DataProblems` counts and summarises them at epoch end.
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from min2real import contract as C

LOG = logging.getLogger("min2real.data")

# The target point of a real-domain (NAVSIM) sample and of the synthetic generator: the point
# of the future route this far ahead along the path (CARLA routes space target points ~30 m
# apart, the paper says). NAVSIM logs carry no route, so the logged future path stands in for it.
TARGET_POINT_DISTANCE_M = C.NO_ROUTE_TARGET_DISTANCE_M

# Synthetic drive seeds in this range belong to the stand-in extractor (min2real.training.pretrain:
# its pretraining and probe drives); training and evaluation data never use them (`data synth` refuses).
EXTRACTOR_SEEDS = range(1_000_000, 2_000_000)

# Problem kinds (the first word of every report line).
MISSING_FILE = "missing_file"
BAD_IMAGE = "bad_image"
BAD_LIDAR = "bad_lidar"
BAD_JSON = "bad_json"
BAD_MEASUREMENT = "bad_measurement"
BAD_LOG = "bad_log"
UNSAFE_PICKLE = "unsafe_pickle"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class DataProblem:
    """One broken piece of data: what kind, which file, what was wrong (picklable plain data)."""

    kind: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.message}"


class DataError(Exception):
    """Raised inside a loader for broken data; the loader turns it into a `DataProblem`."""

    def __init__(self, kind: str, path: str | Path, message: str) -> None:
        super().__init__(f"{kind}: {path}: {message}")
        self.problem = DataProblem(kind, str(path), message)


class DataProblems:
    """Counts problems by kind and keeps a few examples of each; `summary()` is the epoch report.

    Feed it the `problems` list of every collated batch (`update_from_batch`) or single records.
    Under DDP, merge the ranks' `counts_by_kind()` (e.g. all_reduce) before printing.
    """

    def __init__(self, max_examples_per_kind: int = 3) -> None:
        self._counts: Counter[str] = Counter()
        self._examples: dict[str, list[str]] = {}
        self._max_examples = max_examples_per_kind

    def add(self, problem: DataProblem) -> None:
        self._counts[problem.kind] += 1
        examples = self._examples.setdefault(problem.kind, [])
        if len(examples) < self._max_examples:
            examples.append(f"{problem.path}: {problem.message}")

    def extend(self, problems: Iterable[DataProblem]) -> None:
        for problem in problems:
            self.add(problem)

    def update_from_batch(self, batch: dict) -> None:
        self.extend(batch.get("problems", ()))

    def merge(self, other: DataProblems) -> None:
        self._counts.update(other._counts)
        for kind, examples in other._examples.items():
            mine = self._examples.setdefault(kind, [])
            mine.extend(examples[: max(0, self._max_examples - len(mine))])

    def counts_by_kind(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def __len__(self) -> int:
        return self.total

    def summary(self) -> str:
        if not self._counts:
            return "data problems: none"
        lines = [
            f"data problems: {self.total} skipped ({', '.join(f'{k} {v}' for k, v in self.counts_by_kind().items())})"
        ]
        for kind in sorted(self._examples):
            for example in self._examples[kind]:
                lines.append(f"  {kind}: {example}")
        return "\n".join(lines)

    def clear(self) -> None:
        self._counts.clear()
        self._examples.clear()


def problem_from_exception(error: BaseException, path: str | Path, kind: str = UNKNOWN) -> DataProblem:
    """A `DataProblem` for an exception raised while loading `path` (DataError keeps its own kind)."""
    if isinstance(error, DataError):
        return error.problem
    return DataProblem(kind, str(path), f"{type(error).__name__}: {error}")


def warn_problem(problem: DataProblem) -> DataProblem:
    LOG.warning("skipping broken sample: %s", problem)
    return problem


# ---- readers ------------------------------------------------------------------------------------
def read_json_gz(path: str | Path) -> dict:
    """A gzip-compressed JSON object (CARLA Garage measurements/results). DataError on any damage."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError as error:
        raise DataError(MISSING_FILE, path, "file does not exist") from error
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(BAD_JSON, path, f"not a readable gzip JSON file ({type(error).__name__}: {error})") from error
    if not isinstance(data, dict):
        raise DataError(BAD_JSON, path, f"top level is {type(data).__name__}; expected a JSON object")
    return data


def read_image_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a JPEG or PNG. A truncated JPEG (no end-of-image marker) is an
    error: OpenCV would otherwise decode it silently with the missing rows filled grey."""
    import cv2

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as error:
        raise DataError(MISSING_FILE, path, "file does not exist") from error
    except OSError as error:
        raise DataError(BAD_IMAGE, path, f"cannot read ({error})") from error
    if data[:2] == b"\xff\xd8":
        if b"\xff\xd9" not in data[-64:]:
            raise DataError(BAD_IMAGE, path, f"JPEG is truncated ({len(data)} bytes, no end-of-image marker)")
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if b"IEND" not in data[-16:]:
            raise DataError(BAD_IMAGE, path, f"PNG is truncated ({len(data)} bytes, no IEND chunk)")
    else:
        raise DataError(BAD_IMAGE, path, "not a JPEG or PNG file")
    image_bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image_bgr is None or image_bgr.ndim != 3:
        raise DataError(BAD_IMAGE, path, "OpenCV could not decode the image")
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)


def write_image_rgb(path: str | Path, image_rgb: np.ndarray, jpeg_quality: int = 92) -> None:
    import cv2

    ok, encoded = cv2.imencode(
        Path(path).suffix or ".jpg",
        cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality],
    )
    if not ok:
        raise OSError(f"OpenCV could not encode image {path}")
    Path(path).write_bytes(encoded.tobytes())


# ---- the sample ---------------------------------------------------------------------------------
SAMPLE_KEYS = (
    C.INPUT_IMAGE,
    C.INPUT_LIDAR_BEV,
    C.INPUT_TARGET_POINT,
    C.INPUT_SPEED,
    C.INPUT_COMMAND,
    C.TARGET_WAYPOINTS,
    C.TARGET_STEER_CLASS,
    C.TARGET_SPEED_CLASS,
    C.SAMPLE_DOMAIN,
    C.SAMPLE_HAS_LABELS,
)


def build_sample(
    image_rgb: np.ndarray,
    lidar_points_ego: np.ndarray | None,
    target_point_ego: np.ndarray,
    speed_mps: float,
    command: int,
    waypoints_ego: np.ndarray,
    domain: str,
    has_labels: bool,
    contract: C.Contract,
    target_speed_class: int = -1,
) -> dict[str, np.ndarray]:
    """One training sample in the contract's form (all frames REP 103 ego, metres).

    image_rgb: (H, W, 3) uint8 RGB of any size -> `image` (3, camera_height, camera_width) uint8.
    lidar_points_ego: (N, >=3) or None (-> all-zero BEV, the paper's real-domain input).
    target_point_ego (2,), speed_mps, command (contract COMMANDS index), waypoints_ego (T, 2).
    `steer_class` follows the contract's rule on `waypoints_ego`; `target_speed_class` indexes
    contract.TARGET_SPEEDS_MPS (contract.target_speed_class), -1 where the data has no such label.
    """
    if domain not in C.DOMAINS:
        raise ValueError(f"sample domain {domain!r} is not supported; expected one of {C.DOMAINS}")
    camera = C.prepare_camera_rgb(image_rgb, contract)
    if lidar_points_ego is None:
        bev = np.zeros((contract.bev_num_channels, contract.bev_size_px, contract.bev_size_px), dtype=np.float32)
    else:
        bev = C.lidar_bev_from_points(lidar_points_ego, contract)
    waypoints = np.asarray(waypoints_ego, dtype=np.float32)
    if waypoints.shape != (contract.num_waypoints, 2):
        raise ValueError(f"waypoints have shape {waypoints.shape}; expected ({contract.num_waypoints}, 2)")
    return {
        C.INPUT_IMAGE: np.ascontiguousarray(camera.transpose(2, 0, 1)),
        C.INPUT_LIDAR_BEV: bev,
        C.INPUT_TARGET_POINT: np.asarray(target_point_ego, dtype=np.float32).reshape(2),
        C.INPUT_SPEED: np.asarray([speed_mps], dtype=np.float32),
        C.INPUT_COMMAND: C.command_one_hot(command, contract),
        C.TARGET_WAYPOINTS: waypoints,
        C.TARGET_STEER_CLASS: np.asarray(C.steer_class_from_waypoints(waypoints, contract), dtype=np.int64),
        C.TARGET_SPEED_CLASS: np.asarray(target_speed_class, dtype=np.int64),
        C.SAMPLE_DOMAIN: np.asarray(C.DOMAINS.index(domain), dtype=np.int64),
        C.SAMPLE_HAS_LABELS: np.asarray(bool(has_labels)),
    }


def point_along_path(path_xy: np.ndarray, distance_m: float) -> np.ndarray | None:
    """The point `distance_m` along the polyline `path_xy` (N, 2) from its first point, linearly
    interpolated; None when the polyline is shorter than that."""
    path = np.asarray(path_xy, dtype=np.float64)
    if len(path) < 2:
        return None
    travelled = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    if travelled[-1] < distance_m:
        return None
    return np.array([np.interp(distance_m, travelled, path[:, 0]), np.interp(distance_m, travelled, path[:, 1])])
