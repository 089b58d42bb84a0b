"""OpenScene / NAVSIM logs (the real domain): `navsim_logs/<split>/<log>.pkl` + `sensor_blobs/<split>/`.

Each log is a list of per-frame dicts at 2 Hz, loaded with the restricted unpickler
(`safe_pickle.load_navsim_log`). Per sample: the front camera CAM_F0 (or NAVSIM TransFuser's
left/front/right stitch), future waypoints from the logged ego poses (ego2global translation
and w,x,y,z rotation, a right-handed world; no axis flip is needed), speed from
ego_dynamic_state, the driving command (NAVSIM's one-hot left/forward/right/unknown is the
contract's order) and a target point. Logs carry no route and a NAVSIM agent gets none at test
time, only the command, so by default (`target_point="straight_ahead"`) the target point is the
contract's NO_ROUTE_TARGET_POINT_EGO, exactly what the NAVSIM agent feeds the model; the turn
intent comes from the command. `target_point="future_path"` instead takes the point of the logged
future path `target_point_distance_m` ahead, a route-like target for data that will be deployed
with a route (it reveals where the ego went, so do not score on NAVSIM with it). Frames whose
log does not reach the waypoint horizon (and, in future_path mode only, that distance) are not
samples.

Which frames are indexed: NAVSIM's scene filter (`SceneFilter`, read from the devkit's
`train_test_split/scene_filter/*.yaml` by `load_scene_filter`) keeps only the named logs and
frame tokens, and a frame is indexed only when its camera images (and, with `use_lidar`, its
point cloud) exist under `sensor_blobs/<split>/`: the standard navtrain download ships every
trainval log but sensor blobs only for navtrain frames. Every drop is counted in `self.stats`
and reported in one log line when the dataset is built (`describe()`).

The LiDAR BEV is all zeros, as in the paper, unless `use_lidar=True` reads the merged point
cloud (`lidar_path`, PCD) and moves it to the ego frame with the log's lidar2ego pose.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from min2real import contract as C
from min2real.data.common import (
    BAD_LIDAR,
    BAD_LOG,
    LOG,
    MISSING_FILE,
    TARGET_POINT_DISTANCE_M,
    UNSAFE_PICKLE,
    DataError,
    DataProblem,
    DataProblems,
    build_sample,
    point_along_path,
    problem_from_exception,
    read_image_rgb,
    warn_problem,
)
from min2real.data.safe_pickle import UnsafePickleError, load_navsim_log

CAMERA_MODES = ("front", "stitch")
TARGET_POINT_MODES = ("straight_ahead", "future_path")
_STITCH_CAMERAS = ("CAM_L0", "CAM_F0", "CAM_R0")


@dataclass(frozen=True)
class SceneFilter:
    """NAVSIM's scene filter, the part that selects data (navsim.common.dataclasses.SceneFilter):
    `log_names` keeps only those logs (file name without .pkl), `tokens` only frames with those
    tokens (NAVSIM's scene token is the token of the scene's current frame); None keeps all.

    NAVSIM's other keys (num_history_frames, num_future_frames, frame_interval, has_route,
    max_scenes) shape its scenes, not which logged frames exist: this loader makes one sample per
    frame with the contract's horizon, so it does not apply them.
    """

    log_names: list[str] | None = None
    tokens: list[str] | None = None

    def __post_init__(self) -> None:
        for name in ("log_names", "tokens"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, (str, bytes)) or not all(isinstance(item, str) for item in value)
            ):
                raise ValueError(f"SceneFilter.{name} is {value!r}; expected a list of strings or None")


def load_scene_filter(path: str | Path) -> SceneFilter:
    """A NAVSIM scene filter YAML -> `SceneFilter` (keys log_names and tokens; null = all).

    Takes the devkit's `config/common/train_test_split/scene_filter/<name>.yaml`, or the split
    file one folder up (`train_test_split/<name>.yaml`), whose `defaults: [{scene_filter: <name>}]`
    names the filter file beside it.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"NAVSIM scene filter {path} does not exist") from error
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # navtrain.yaml lists ~100k tokens
    try:
        config = yaml.load(text, Loader=loader)
    except yaml.YAMLError as error:
        raise ValueError(f"NAVSIM scene filter {path} is not valid YAML ({error})") from error
    if not isinstance(config, dict):
        raise ValueError(f"NAVSIM scene filter {path} holds {type(config).__name__}; expected a mapping")
    if "log_names" not in config and "tokens" not in config:
        names = [item["scene_filter"] for item in config.get("defaults") or [] if isinstance(item, dict)]
        if len(names) == 1:
            return load_scene_filter(path.parent / "scene_filter" / f"{names[0]}.yaml")
        raise ValueError(
            f"NAVSIM scene filter {path} has neither log_names nor tokens (nor a defaults entry "
            "'scene_filter: <name>'); expected a file like train_test_split/scene_filter/navtrain.yaml"
        )
    try:
        return SceneFilter(log_names=config.get("log_names"), tokens=config.get("tokens"))
    except (TypeError, ValueError) as error:
        raise ValueError(f"NAVSIM scene filter {path}: {error}") from error


class _FileIndex:
    """Which files exist, one directory listing per folder (not one stat per file)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._listings: dict[str, frozenset[str]] = {}

    def exists(self, relative: str) -> bool:
        folder, _, name = relative.rpartition("/")
        listing = self._listings.get(folder)
        if listing is None:
            try:
                listing = frozenset(os.listdir(self.root / folder))
            except (FileNotFoundError, NotADirectoryError):
                listing = frozenset()
            self._listings[folder] = listing
        return name in listing


# NAVSIM TransFuser's stitch crop of 1920 x 1080 images: 28 rows top and bottom, 416 columns
# on each side of the side cameras; as fractions so any image size works.
def _rotation_from_quaternion_wxyz(quaternion: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(quaternion, dtype=np.float64) / np.linalg.norm(quaternion)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


_PCD_TYPES = {
    ("F", 4): "<f4",
    ("F", 8): "<f8",
    ("U", 1): "<u1",
    ("U", 2): "<u2",
    ("U", 4): "<u4",
    ("I", 1): "<i1",
    ("I", 2): "<i2",
    ("I", 4): "<i4",
    ("U", 8): "<u8",
    ("I", 8): "<i8",
}


def read_pcd_xyz(path: str | Path) -> np.ndarray:
    """(N, 3) float64 x, y, z of a PCD file (DATA ascii, binary or binary_compressed)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as error:
        raise DataError(MISSING_FILE, path, "file does not exist") from error
    header: dict[str, list[str]] = {}
    offset = 0
    while "DATA" not in header:
        end = data.find(b"\n", offset)
        if end < 0:
            raise DataError(BAD_LIDAR, path, "PCD header has no DATA line")
        line = data[offset:end].decode("ascii", errors="replace").strip()
        offset = end + 1
        if line and not line.startswith("#"):
            key, *values = line.split()
            header[key.upper()] = values
    try:
        fields = header["FIELDS"]
        sizes = [int(v) for v in header["SIZE"]]
        types = header["TYPE"]
        counts = [int(v) for v in header.get("COUNT", ["1"] * len(fields))]
        num_points = int(header["POINTS"][0])
        dtype = np.dtype(
            [
                (f"{name}_{i}" if count > 1 else name, _PCD_TYPES[(kind, size)], (count,) if count > 1 else ())
                for i, (name, size, kind, count) in enumerate(zip(fields, sizes, types, counts))
            ]
        )
    except (KeyError, ValueError, IndexError) as error:
        raise DataError(BAD_LIDAR, path, f"PCD header is malformed ({error})") from error
    if not {"x", "y", "z"} <= set(dtype.names):
        raise DataError(BAD_LIDAR, path, f"PCD fields {fields} lack x, y, z")
    mode = header["DATA"][0].lower()
    body = data[offset:]
    if mode == "binary":
        if len(body) < num_points * dtype.itemsize:
            raise DataError(
                BAD_LIDAR,
                path,
                f"PCD is truncated: {len(body)} bytes for {num_points} points of {dtype.itemsize} bytes",
            )
        cloud = np.frombuffer(body, dtype=dtype, count=num_points)
        columns = [cloud[name] for name in ("x", "y", "z")]
    elif mode == "ascii":
        try:
            table = np.loadtxt(body.decode("ascii").splitlines(), dtype=np.float64, ndmin=2)
        except ValueError as error:
            raise DataError(BAD_LIDAR, path, f"PCD ascii data is malformed ({error})") from error
        columns = [table[:, dtype.names.index(name)] for name in ("x", "y", "z")]
    elif mode == "binary_compressed":
        try:
            import lzf
        except ImportError as error:
            raise DataError(
                BAD_LIDAR, path, "PCD is binary_compressed (LZF); install the 'python-lzf' package to read it"
            ) from error
        compressed, uncompressed = np.frombuffer(body[:8], dtype="<u4")
        raw = lzf.decompress(body[8 : 8 + int(compressed)], int(uncompressed))
        if raw is None or len(raw) != uncompressed:
            raise DataError(BAD_LIDAR, path, "PCD LZF data is corrupt")
        columns, start = [], 0
        for name in dtype.names:  # column-major: each field's values are contiguous
            field_dtype = dtype.fields[name][0]
            values = np.frombuffer(raw, dtype=field_dtype, count=num_points, offset=start)
            start += num_points * field_dtype.itemsize
            if name in ("x", "y", "z"):
                columns.append((name, values))
        columns = [values for _, values in sorted(columns, key=lambda item: "xyz".index(item[0]))]
    else:
        raise DataError(
            BAD_LIDAR, path, f"PCD DATA mode {mode!r} is not supported; expected ascii, binary or binary_compressed"
        )
    return np.stack([np.asarray(c, dtype=np.float64) for c in columns], axis=1)


# NAVSIM logs have no expert target speed: the driver's own next logged speed stands in for it, and
# "brake" is standing / stopping (next speed under this) or decelerating harder than this.
LOGGED_STOP_SPEED_MPS = 0.5
LOGGED_BRAKE_DECELERATION_MPS2 = 1.0


def logged_target_speed_class(times_s: np.ndarray, speeds_mps: np.ndarray, index: int) -> int:
    """contract.target_speed_class of frame `index` from the logged speeds: the next frame's speed
    is the target; brake when it is under LOGGED_STOP_SPEED_MPS or the deceleration to it exceeds
    LOGGED_BRAKE_DECELERATION_MPS2. -1 (no label) for a log's last frame."""
    if index + 1 >= len(speeds_mps):
        return -1
    now_mps, next_mps = float(speeds_mps[index]), float(speeds_mps[index + 1])
    dt_s = max(float(times_s[index + 1] - times_s[index]), 1e-3)
    brake = next_mps < LOGGED_STOP_SPEED_MPS or (now_mps - next_mps) / dt_s > LOGGED_BRAKE_DECELERATION_MPS2
    return C.target_speed_class(next_mps, brake)


class NavsimDataset:
    """Map-style dataset of OpenScene/NAVSIM frames -> contract samples (domain "real").

    `__getitem__` returns a sample dict or a `DataProblem` (logged; counted in `self.problems`).
    Logs that cannot be read (refused pickle globals, damaged files, missing keys) are skipped
    at construction and counted in `self.index_problems`. `scene_filter` keeps only NAVSIM's
    selected logs/tokens; frames without their sensor files on disk are not indexed. Counts of
    every kind of drop are in `self.stats` (see `describe()`, logged once at construction).
    """

    domain = C.DOMAINS[C.DOMAIN_REAL]

    def __init__(
        self,
        root: str | Path,
        split: str = "trainval",
        contract: C.Contract = C.DEFAULT_CONTRACT,
        camera: str = "front",
        use_lidar: bool = False,
        driving_labels: bool = True,
        target_point_distance_m: float = TARGET_POINT_DISTANCE_M,
        target_point: str = "straight_ahead",
        scene_filter: SceneFilter | None = None,
    ) -> None:
        if target_point not in TARGET_POINT_MODES:
            raise ValueError(
                f"NAVSIM target_point {target_point!r} is not supported; expected one of {TARGET_POINT_MODES}"
            )
        if camera not in CAMERA_MODES:
            raise ValueError(f"NAVSIM camera {camera!r} is not supported; expected one of {CAMERA_MODES}")
        self.root = Path(root)
        self.split = split
        self.contract = contract
        self.camera = camera
        self.use_lidar = use_lidar
        self.has_labels = driving_labels
        logs_dir = self.root / "navsim_logs" / split
        if not logs_dir.is_dir():
            raise FileNotFoundError(
                f"NAVSIM logs folder {logs_dir} does not exist; expected <root>/navsim_logs/<split>/*.pkl"
            )
        self.blobs_dir = self.root / "sensor_blobs" / split
        self.index_problems = DataProblems()
        self.problems = DataProblems()
        self.scene_filter = scene_filter
        self.target_point_mode = target_point
        self.stats = {
            "logs": 0,
            "logs_filtered": 0,
            "logs_used": 0,
            "frames": 0,
            "frames_filtered": 0,
            "frames_without_sensors": 0,
            "frames_without_future": 0,
        }
        cameras = _STITCH_CAMERAS if camera == "stitch" else ("CAM_F0",)
        blobs = _FileIndex(self.blobs_dir)
        wanted_logs = None if scene_filter is None or scene_filter.log_names is None else set(scene_filter.log_names)
        wanted_tokens = None if scene_filter is None or scene_filter.tokens is None else set(scene_filter.tokens)
        image_paths, lidar_paths, lidar_poses = [], [], []
        targets, waypoints, speeds, commands, speed_classes = [], [], [], [], []
        for log_path in sorted(logs_dir.glob("*.pkl")):
            self.stats["logs"] += 1
            if wanted_logs is not None and log_path.stem not in wanted_logs:
                self.stats["logs_filtered"] += 1
                continue
            try:
                log = self._parse_log(log_path, cameras)
            except UnsafePickleError as error:
                self.index_problems.add(warn_problem(DataProblem(UNSAFE_PICKLE, str(log_path), str(error))))
                continue
            except (
                pickle.UnpicklingError,
                EOFError,
                OSError,
                ValueError,
                KeyError,
                TypeError,
                IndexError,
                AttributeError,
            ) as error:
                self.index_problems.add(warn_problem(problem_from_exception(error, log_path, BAD_LOG)))
                continue
            self.stats["frames"] += len(log["times"])
            used = 0
            for i in range(len(log["times"])):
                if wanted_tokens is not None and log["tokens"][i] not in wanted_tokens:
                    self.stats["frames_filtered"] += 1
                    continue
                sensor_files = list(log["images"][i]) + ([log["lidar_paths"][i]] if use_lidar else [])
                if not all(path and blobs.exists(path) for path in sensor_files):
                    self.stats["frames_without_sensors"] += 1
                    continue
                future = C.future_waypoints_from_poses(log["times"], log["positions"], i, log["yaws"][i], contract)
                if future is None:
                    self.stats["frames_without_future"] += 1
                    continue
                if target_point == "future_path":
                    # Only a route-like target needs the logged path to reach target_point_distance_m.
                    target_world = point_along_path(log["positions"][i:], target_point_distance_m)
                    if target_world is None:
                        self.stats["frames_without_future"] += 1
                        continue
                    targets.append(C.world_to_ego_xy(target_world[None], log["positions"][i], log["yaws"][i])[0])
                else:
                    targets.append(np.array(C.NO_ROUTE_TARGET_POINT_EGO))
                waypoints.append(future)
                speeds.append(log["speeds"][i])
                speed_classes.append(logged_target_speed_class(log["times"], log["speeds"], i))
                commands.append(log["commands"][i])
                image_paths.append(log["images"][i])
                lidar_paths.append(log["lidar_paths"][i])
                lidar_poses.append(log["lidar2ego"][i])
                used += 1
            self.stats["logs_used"] += used > 0
        n = len(targets)
        # numpy arrays, not lists of Python objects: DataLoader workers share them without copying.
        self.image_paths = np.array(image_paths, dtype=np.bytes_).reshape(n, len(cameras))
        self.lidar_paths = np.array(lidar_paths, dtype=np.bytes_).reshape(n)
        self.lidar2ego = np.array(lidar_poses, dtype=np.float64).reshape(n, 4, 4)
        self.target_points = np.array(targets, dtype=np.float32).reshape(n, 2)
        self.waypoints = np.array(waypoints, dtype=np.float32).reshape(n, contract.num_waypoints, 2)
        self.speeds = np.array(speeds, dtype=np.float32).reshape(n)
        self.commands = np.array(commands, dtype=np.int64).reshape(n)
        self.target_speed_classes = np.array(speed_classes, dtype=np.int64).reshape(n)
        dropped = self.stats["frames_without_sensors"] + self.index_problems.total
        (LOG.warning if dropped else LOG.info)("%s", self.describe())

    def describe(self) -> str:
        """One line: what was indexed and why frames were dropped (logged at construction)."""
        s = self.stats
        filtered = (
            ""
            if self.scene_filter is None
            else f", scene filter dropped {s['logs_filtered']} logs and {s['frames_filtered']} frames"
        )
        sensors = "camera images" + (" or point cloud" if self.use_lidar else "")
        future = "waypoint horizon" + (" or target distance" if self.target_point_mode == "future_path" else "")
        return (
            f"NAVSIM {self.split} at {self.root}: {len(self)} samples from {s['frames']} frames of "
            f"{s['logs_used']}/{s['logs']} logs{filtered}; dropped {s['frames_without_sensors']} frames "
            f"whose {sensors} are missing under {self.blobs_dir}, {s['frames_without_future']} frames "
            f"short of the {future}, {self.index_problems.total} unreadable logs"
        )

    def _parse_log(self, log_path: Path, cameras: tuple[str, ...]) -> dict:
        frames = load_navsim_log(log_path)
        if not frames:
            raise ValueError("log holds no frames")
        frames = sorted(frames, key=lambda frame: int(frame["timestamp"]))
        times = np.array([int(f["timestamp"]) for f in frames], dtype=np.float64) * 1e-6
        positions = np.array([np.asarray(f["ego2global_translation"], dtype=np.float64)[:2] for f in frames])
        yaws = C.yaw_from_quaternion_wxyz(
            np.array([np.asarray(f["ego2global_rotation"], dtype=np.float64) for f in frames])
        )
        speeds = np.array([float(np.hypot(*np.asarray(f["ego_dynamic_state"], dtype=np.float64)[:2])) for f in frames])
        commands = []
        for frame in frames:
            one_hot = np.asarray(frame["driving_command"], dtype=np.float64).reshape(-1)
            commands.append(
                int(np.argmax(one_hot)) if one_hot.sum() > 0 and len(one_hot) == len(C.COMMANDS) else C.COMMAND_UNKNOWN
            )
        tokens = [str(f["token"]) for f in frames]
        images = [[str(f["cams"][name]["data_path"]) for name in cameras] for f in frames]
        lidar_paths = [str(f.get("lidar_path", "")) for f in frames]
        lidar2ego = []
        for frame in frames:
            pose = np.eye(4)
            if self.use_lidar:
                pose[:3, :3] = _rotation_from_quaternion_wxyz(frame["lidar2ego_rotation"])
                pose[:3, 3] = np.asarray(frame["lidar2ego_translation"], dtype=np.float64)[:3]
            lidar2ego.append(pose)
        return {
            "times": times,
            "tokens": tokens,
            "positions": positions,
            "yaws": yaws,
            "speeds": speeds,
            "commands": commands,
            "images": images,
            "lidar_paths": lidar_paths,
            "lidar2ego": lidar2ego,
        }

    def __len__(self) -> int:
        return len(self.target_points)

    def __getitem__(self, index: int) -> dict[str, np.ndarray] | DataProblem:
        paths = [self.blobs_dir / p.decode() for p in self.image_paths[index]]
        try:
            images = [read_image_rgb(path) for path in paths]
            image = C.stitch_navsim_cameras(*images) if self.camera == "stitch" else images[0]
            lidar_ego = None
            if self.use_lidar:
                lidar_path = self.lidar_paths[index].decode()
                if not lidar_path:
                    raise DataError(MISSING_FILE, paths[0], "frame has no lidar_path but use_lidar=True")
                points = read_pcd_xyz(self.blobs_dir / lidar_path)
                pose = self.lidar2ego[index]
                lidar_ego = points @ pose[:3, :3].T + pose[:3, 3]
            return build_sample(
                image,
                lidar_ego,
                self.target_points[index],
                float(self.speeds[index]),
                int(self.commands[index]),
                self.waypoints[index],
                self.domain,
                self.has_labels,
                self.contract,
                int(self.target_speed_classes[index]),
            )
        except DataError as error:
            problem = error.problem
        except ValueError as error:
            problem = problem_from_exception(error, paths[0], BAD_LOG)
        self.problems.add(problem)
        return warn_problem(problem)
