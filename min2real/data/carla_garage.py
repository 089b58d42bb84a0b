"""CARLA Garage routes (the virtual domain): `rgb/%04d.jpg`, `lidar/%04d.laz`, `measurements/%04d.json.gz`.

A route folder is any folder holding a `measurements/` folder; `roots` may name route folders,
scenario folders of routes, or whole dataset trees. As CARLA Garage does, only routes whose
`results.json.gz` has `scores.score_composed` == 100 are used (configurable) and a route
without that file is treated as crashed and skipped (configurable).

Per sample: the camera image (contract crop/resize), the LiDAR BEV of the frame's point cloud
(stored in the ego frame, CARLA axes), the target point and speed from the measurement, the
route command (CARLA RoadOption -> contract command), future waypoints from later frames'
`ego_matrix` at the contract's spacing (4 Hz frames: every second frame for 0.5 s) and the
steering class from the contract's rule. CARLA's axes (left-handed world, ego y right) become
the contract's REP 103 frame in `_to_contract_frame` only, through `contract.carla_to_rep103`.

Two CARLA Garage habits, both constructor options:
- `skip_first_s`: frames in the first seconds of each route are not samples. Garage skips 2.5 s
  (`config.skip_first`, GARAGE_SKIP_FIRST_S): its first LiDAR frames hold only half a sweep.
  Default 0 (the synthetic world's routes are whole from frame 0); set it for data Garage recorded.
- `augmented_view_probability`: Garage also records a camera shifted sideways by
  `augmentation_translation` metres (CARLA y, right) and turned by `augmentation_rotation`
  degrees (CARLA yaw, right) into `rgb_augmented/`, and trains on it with probability 0.5
  (`config.augment_percentage`, GARAGE_AUGMENTED_VIEW_PROBABILITY) with every label moved into
  the shifted camera's frame (data.py augment_target_point / get_waypoints / align): here the
  waypoints, the target point and the LiDAR points. Default 0 (off). The draw uses Python's
  `random`, which DataLoader seeds per worker.

DAgger recordings (`min2real dagger`): a learner drove, so the driven future is not a label. Each
measurement then carries `expert_waypoints` ((num_waypoints, 2), CARLA ego axes): the expert's
plan from that visited state, used instead of the later frames' poses (no future frames needed),
and results.json.gz says `"labels": "expert_at_visited_state"`: such a route is used whatever the
learner's driving score, because its labels never contain the learner's mistakes (Garage's score
filter guards against an expert's failed drive, whose driven future would be a bad label).
"""

from __future__ import annotations

import math
import os
import random
import re
from pathlib import Path

import numpy as np

from min2real import contract as C
from min2real.data.common import (
    BAD_LIDAR,
    BAD_MEASUREMENT,
    MISSING_FILE,
    DataError,
    DataProblem,
    DataProblems,
    build_sample,
    problem_from_exception,
    read_image_rgb,
    read_json_gz,
    warn_problem,
)

_FRAME_FILE = re.compile(r"^(\d+)\.(jpg|png|laz|json\.gz)$")

# CARLA Garage's defaults (team_code/config.py): skip_first = int(2.5 * carla_fps) // data_save_freq
# frames of each route; augment_percentage of samples use the augmented camera.
GARAGE_SKIP_FIRST_S = 2.5
GARAGE_AUGMENTED_VIEW_PROBABILITY = 0.5
# DAgger recordings: the per-frame expert label and the route-level marker in results.json.gz.
EXPERT_WAYPOINTS_KEY = "expert_waypoints"
RESULTS_LABELS_KEY = "labels"
EXPERT_AT_VISITED_STATE = "expert_at_visited_state"


def find_route_dirs(roots: list[str | Path]) -> list[Path]:
    """Every folder under `roots` (or a root itself) that holds a `measurements/` folder, sorted."""
    found: set[Path] = set()
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"CARLA Garage root {root} is not a directory; expected a folder of route folders")
        for current, dirs, _ in os.walk(root):
            if "measurements" in dirs:
                found.add(Path(current))
                dirs[:] = []  # a route folder holds no further routes
            else:
                dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(found)


def read_laz_xyz(path: str | Path) -> np.ndarray:
    """(N, 3) float64 points of a .laz/.las file. DataError when missing or corrupt."""
    import laspy

    if not Path(path).is_file():
        raise DataError(MISSING_FILE, path, "file does not exist")
    try:
        # The single-threaded lazrs backend: DataLoader workers already run in parallel, and the
        # parallel backend's thread pool deadlocks in a worker forked after the parent read a file.
        return np.asarray(laspy.read(str(path), laz_backend=laspy.LazBackend.Lazrs).xyz, dtype=np.float64)
    except Exception as error:  # laspy/lazrs raise many types for damaged files; all mean "corrupt"
        raise DataError(
            BAD_LIDAR, path, f"not a readable LAS/LAZ point cloud ({type(error).__name__}: {error})"
        ) from error


def _to_contract_frame(
    measurements: list[dict], lidar_xyz_carla: np.ndarray | None, path: Path
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray | None]:
    """The single CARLA -> contract conversion of this loader.

    measurements[0] is the current frame, the rest its future frames. Returns positions (K, 2) in
    a right-handed world (CARLA's world with y flipped), the current yaw in that world, the
    target point in the REP 103 ego frame and the LiDAR points in the REP 103 ego frame.
    """
    try:
        matrices = np.array([m["ego_matrix"] for m in measurements], dtype=np.float64)
        target_carla = np.asarray(measurements[0]["target_point"], dtype=np.float64).reshape(2)
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(BAD_MEASUREMENT, path, f"ego_matrix/target_point missing or malformed ({error})") from error
    if matrices.shape[1:] != (4, 4) or not np.isfinite(matrices).all():
        raise DataError(
            BAD_MEASUREMENT, path, f"ego_matrix has shape {matrices.shape[1:]}; expected a finite 4x4 matrix"
        )
    positions_world = C.carla_to_rep103(matrices[:, :2, 3])
    forward_world = C.carla_to_rep103(matrices[0, :2, 0])  # the vehicle's x axis in the world
    yaw_world = float(np.arctan2(forward_world[1], forward_world[0]))
    target_ego = C.carla_to_rep103(target_carla)
    lidar_ego = None if lidar_xyz_carla is None else C.carla_to_rep103(lidar_xyz_carla)
    return positions_world, yaw_world, target_ego, lidar_ego


def _expert_waypoints(value: object, contract: C.Contract, path: Path) -> np.ndarray:
    """A measurement's `expert_waypoints` (CARLA ego axes) -> (num_waypoints, 2) in REP 103."""
    try:
        waypoints = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(BAD_MEASUREMENT, path, f"expert_waypoints is not a numeric array ({error})") from error
    if waypoints.shape != (contract.num_waypoints, 2) or not np.isfinite(waypoints).all():
        raise DataError(
            BAD_MEASUREMENT,
            path,
            f"expert_waypoints has shape {waypoints.shape}; expected finite ({contract.num_waypoints}, 2) "
            "for this contract",
        )
    return C.carla_to_rep103(waypoints)


def augmented_view_pose(translation_m: float, rotation_deg: float) -> tuple[np.ndarray, float]:
    """Pose of Garage's augmented camera in the REP 103 ego frame: (origin (2,), yaw rad).

    `translation_m` / `rotation_deg` are the measurement's augmentation_translation (CARLA ego y,
    right) and augmentation_rotation (CARLA yaw, degrees, positive turns right).
    """
    origin = C.carla_to_rep103(np.array([0.0, float(translation_m)]))
    return origin, -math.radians(float(rotation_deg))


def to_augmented_view(points_ego: np.ndarray, translation_m: float, rotation_deg: float) -> np.ndarray:
    """(..., 2) or (N, >=3) points in the REP 103 ego frame -> the frame of Garage's augmented
    camera (CARLA Garage data.py: R(yaw)^T (p - (0, y))); z and further columns are unchanged."""
    origin, yaw = augmented_view_pose(translation_m, rotation_deg)
    points = np.array(points_ego, dtype=np.float64)
    points[..., :2] = C.world_to_ego_xy(points[..., :2], origin, yaw)
    return points


class CarlaGarageDataset:
    """Map-style dataset of CARLA Garage frames -> contract samples (domain "sim"; `domain="real"`
    for the synthetic world's real-look DAgger recordings, `min2real dagger --look real`: real
    driving labels in this layout, read with use_lidar=False as every real sample).

    `__getitem__` returns a sample dict, or a `DataProblem` for a broken frame (logged, counted
    in `self.problems` in this process; `collate_samples` carries it to the batch).
    Index-time findings (missing files, unreadable results) are in `self.index_problems`;
    route and frame counts in `self.stats`.
    """

    domain = C.DOMAINS[C.DOMAIN_SIM]

    def __init__(
        self,
        roots: list[str | Path] | str | Path,
        contract: C.Contract = C.DEFAULT_CONTRACT,
        require_perfect_score: bool = True,
        skip_crashed_routes: bool = True,
        use_lidar: bool = True,
        frame_rate_hz: float = 4.0,
        has_labels: bool = True,
        skip_first_s: float = 0.0,
        augmented_view_probability: float = 0.0,
        domain: str = C.DOMAINS[C.DOMAIN_SIM],
    ) -> None:
        if isinstance(roots, (str, Path)):
            roots = [roots]
        if domain not in C.DOMAINS:
            raise ValueError(f"CARLA Garage dataset domain {domain!r}; expected one of {C.DOMAINS}")
        self.domain = domain
        if not 0.0 <= augmented_view_probability <= 1.0:
            raise ValueError(
                f"augmented_view_probability {augmented_view_probability} is not a probability; expected 0..1 "
                f"(CARLA Garage uses {GARAGE_AUGMENTED_VIEW_PROBABILITY})"
            )
        if not skip_first_s >= 0.0:
            raise ValueError(f"skip_first_s {skip_first_s} is negative; expected >= 0 (CARLA Garage skips 2.5 s)")
        self.augmented_view_probability = float(augmented_view_probability)
        self.skip_first_frames = int(round(skip_first_s * frame_rate_hz))
        self.contract = contract
        self.use_lidar = use_lidar
        self.frame_rate_hz = frame_rate_hz
        self.has_labels = has_labels
        stride = contract.waypoint_dt_s * frame_rate_hz
        if abs(stride - round(stride)) > 1e-6 or round(stride) < 1:
            raise ValueError(
                f"waypoint spacing {contract.waypoint_dt_s} s is not a whole number of {frame_rate_hz} Hz frames"
            )
        self.frame_stride = round(stride)
        self.index_problems = DataProblems()
        self.problems = DataProblems()
        self.stats = {
            "routes": 0,
            "routes_used": 0,
            "routes_imperfect": 0,
            "routes_crashed": 0,
            "routes_expert_labelled": 0,
            "frames": 0,
            "frames_skipped_at_start": 0,
            "frames_without_future": 0,
        }
        self.route_dirs: list[str] = []
        samples: list[tuple[int, int]] = []
        for route_dir in find_route_dirs(list(roots)):
            self.stats["routes"] += 1
            allowed, expert_labelled = self._route_allowed(route_dir, require_perfect_score, skip_crashed_routes)
            if not allowed:
                continue
            frames = self._index_route(route_dir, needs_future=not expert_labelled)
            if frames:
                samples.extend((len(self.route_dirs), frame) for frame in frames)
                self.route_dirs.append(str(route_dir))
                self.stats["routes_used"] += 1
        self.samples = np.array(samples, dtype=np.int64).reshape(-1, 2)  # (route index, frame number)

    def _route_allowed(
        self, route_dir: Path, require_perfect_score: bool, skip_crashed_routes: bool
    ) -> tuple[bool, bool]:
        """(whether the route's frames are used, whether it is a DAgger recording labelled by the expert)."""
        results = route_dir / "results.json.gz"
        if not results.is_file():
            self.stats["routes_crashed"] += 1
            return not skip_crashed_routes, False
        try:
            document = read_json_gz(results)
            score = float(document["scores"]["score_composed"])
        except (DataError, KeyError, TypeError, ValueError) as error:
            self.index_problems.add(warn_problem(problem_from_exception(error, results, "bad_json")))
            self.stats["routes_crashed"] += 1
            return not skip_crashed_routes, False
        if document.get(RESULTS_LABELS_KEY) == EXPERT_AT_VISITED_STATE:
            self.stats["routes_expert_labelled"] += 1
            return True, True
        if score < 100.0:
            self.stats["routes_imperfect"] += 1
            return not require_perfect_score, False
        return True, False

    def _index_route(self, route_dir: Path, needs_future: bool = True) -> list[int]:
        def numbers(sub: str, suffixes: tuple[str, ...]) -> set[int]:
            folder = route_dir / sub
            if not folder.is_dir():
                return set()
            found = set()
            for name in os.listdir(folder):
                match = _FRAME_FILE.match(name)
                if match and match.group(2) in suffixes:
                    found.add(int(match.group(1)))
            return found

        measurements = numbers("measurements", ("json.gz",))
        images = numbers("rgb", ("jpg", "png"))
        lidars = numbers("lidar", ("laz",)) if self.use_lidar else None
        kinds = [("measurements", measurements, ".json.gz"), ("rgb", images, ".jpg")]
        if lidars is not None:
            kinds.append(("lidar", lidars, ".laz"))
        if self.augmented_view_probability > 0:
            kinds.append(("rgb_augmented", numbers("rgb_augmented", ("jpg", "png")), ".jpg"))
        every = set().union(*(found for _, found, _ in kinds))
        usable = []
        first = min(every, default=0)
        for frame in sorted(every):
            self.stats["frames"] += 1
            if frame < first + self.skip_first_frames:
                self.stats["frames_skipped_at_start"] += 1
                continue
            missing = [f"{sub}/{frame:04d}{suffix}" for sub, found, suffix in kinds if frame not in found]
            if missing:
                for name in missing:
                    self.index_problems.add(
                        warn_problem(DataProblem(MISSING_FILE, str(route_dir / name), "frame file is missing"))
                    )
                continue
            future = [frame + k * self.frame_stride for k in range(1, self.contract.num_waypoints + 1)]
            if needs_future and not all(f in measurements for f in future):
                self.stats["frames_without_future"] += 1
                continue
            usable.append(frame)
        return usable

    def __len__(self) -> int:
        return len(self.samples)

    def _paths(self, index: int) -> tuple[Path, int]:
        route_index, frame = self.samples[index]
        return Path(self.route_dirs[route_index]), int(frame)

    def draw_view(self) -> bool:
        """Whether the next draw reads Garage's augmented camera (Python's `random`, per worker)."""
        return self.augmented_view_probability > 0 and random.random() < self.augmented_view_probability

    def __getitem__(self, index: int) -> dict[str, np.ndarray] | DataProblem:
        return self.load(index, self.draw_view())

    def load(self, index: int, augmented: bool = False) -> dict[str, np.ndarray] | DataProblem:
        """Sample `index` from the recorded camera, or (`augmented`) from Garage's shifted and
        rotated camera with its labels moved into that camera's frame."""
        route_dir, frame = self._paths(index)
        measurement_path = route_dir / "measurements" / f"{frame:04d}.json.gz"
        try:
            current = read_json_gz(measurement_path)
            expert_waypoints = current.get(EXPERT_WAYPOINTS_KEY) if isinstance(current, dict) else None
            frames = [frame + k * self.frame_stride for k in range(self.contract.num_waypoints + 1)]
            if expert_waypoints is not None:
                frames = frames[:1]  # labelled by the expert at this state: no future poses needed
            measurements = [current] + [
                read_json_gz(route_dir / "measurements" / f"{f:04d}.json.gz") for f in frames[1:]
            ]
            camera_dir = route_dir / ("rgb_augmented" if augmented else "rgb")
            image_path = camera_dir / f"{frame:04d}.jpg"
            if not image_path.is_file() and (camera_dir / f"{frame:04d}.png").is_file():
                image_path = camera_dir / f"{frame:04d}.png"
            image = read_image_rgb(image_path)
            lidar_carla = read_laz_xyz(route_dir / "lidar" / f"{frame:04d}.laz") if self.use_lidar else None
            positions, yaw, target_ego, lidar_ego = _to_contract_frame(measurements, lidar_carla, measurement_path)
            current = measurements[0]
            try:
                speed = float(current["speed"])
                road_option = int(current["command"])
                speed_class = (
                    C.target_speed_class(float(current["target_speed"]), bool(current["brake"]))
                    if "target_speed" in current and "brake" in current
                    else -1
                )
            except (KeyError, TypeError, ValueError) as error:
                raise DataError(
                    BAD_MEASUREMENT,
                    measurement_path,
                    f"speed/command/target_speed/brake missing or malformed ({error})",
                ) from error
            if road_option not in C.CARLA_ROAD_OPTION_TO_COMMAND:
                raise DataError(
                    BAD_MEASUREMENT,
                    measurement_path,
                    f"command {road_option} is not a CARLA RoadOption; expected one of {sorted(C.CARLA_ROAD_OPTION_TO_COMMAND)}",
                )
            if expert_waypoints is not None:
                waypoints = _expert_waypoints(expert_waypoints, self.contract, measurement_path)
            else:
                times = np.asarray(frames, dtype=np.float64) / self.frame_rate_hz
                waypoints = C.future_waypoints_from_poses(times, positions, 0, yaw, self.contract)
            if waypoints is None:
                raise DataError(BAD_MEASUREMENT, measurement_path, "future frames do not reach the waypoint horizon")
            if augmented:
                try:
                    translation_m = float(current["augmentation_translation"])
                    rotation_deg = float(current["augmentation_rotation"])
                except (KeyError, TypeError, ValueError) as error:
                    raise DataError(
                        BAD_MEASUREMENT,
                        measurement_path,
                        f"augmentation_translation/augmentation_rotation missing or malformed ({error}); "
                        "expected the metres and degrees of the rgb_augmented camera",
                    ) from error
                waypoints = to_augmented_view(waypoints, translation_m, rotation_deg)
                target_ego = to_augmented_view(target_ego, translation_m, rotation_deg)
                if lidar_ego is not None:
                    lidar_ego = to_augmented_view(lidar_ego, translation_m, rotation_deg)
            return build_sample(
                image,
                lidar_ego,
                target_ego,
                speed,
                C.CARLA_ROAD_OPTION_TO_COMMAND[road_option],
                waypoints,
                self.domain,
                self.has_labels,
                self.contract,
                speed_class,
            )
        except DataError as error:
            problem = error.problem
        except (KeyError, TypeError, ValueError, IndexError) as error:
            problem = problem_from_exception(error, measurement_path, BAD_MEASUREMENT)
        self.problems.add(problem)
        return warn_problem(problem)
