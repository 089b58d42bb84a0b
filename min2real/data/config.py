"""The one reading of a training config's `data:` section: `DataSection`.

The trainer (min2real.training.config.TrainConfig.data) and `min2real.data.datasets_from_config`
both take this dataclass; nothing else parses `data:`. Paths are relative to the working
directory unless absolute.

Split hygiene (the paper's NAVSIM numbers are on navhard_two_stage, i.e. OpenScene *test* logs):
no split of `TEST_SPLITS` may feed training or validation, because validation picks best.pt.
Real validation comes from trainval logs held out of training, chosen by a NAVSIM scene filter
(`val_real_scene_filter`, a YAML with log_names / tokens) with the training logs filtered by
another (`real_scene_filter`). When training and validation read the same root and split, both
filters are required, so the same logs cannot silently serve both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from min2real.contract import CameraSpec, ContractError

# OpenScene / NAVSIM test splits and the benchmark scene sets drawn from them (navtest, navhard,
# navhard_two_stage, the private leaderboards): never for training, never for checkpoint selection.
TEST_SPLITS = (
    "test",
    "navtest",
    "navhard",
    "navhard_two_stage",
    "private_test_e2e",
    "private_test_hard",
    "private_test_hard_two_stage",
    "warmup_two_stage",
)


def parse_camera(text: str) -> CameraSpec:
    """'1024x256@110' -> CameraSpec(1024, 256, 110.0): the WIDTHxHEIGHT@FOV_DEG notation (horizontal
    FOV) of data.sim_camera and `min2real export --source-camera`."""
    size, separator, fov = str(text).partition("@")
    width, _, height = size.lower().partition("x")
    try:
        if not separator:
            raise ValueError("no @FOV_DEG")
        return CameraSpec(int(width), int(height), float(fov))
    except (ValueError, ContractError) as error:
        raise ContractError(f"camera {text!r} is not WIDTHxHEIGHT@FOV_DEG (e.g. 1024x256@110): {error}") from error


def camera_text(camera: CameraSpec) -> str:
    """`camera` as parse_camera reads it (without the lens)."""
    return f"{camera.width_px}x{camera.height_px}@{float(camera.fov_deg):g}"


class DataConfigError(ValueError):
    """The `data:` section is invalid (the message names the key and what was expected)."""


@dataclass
class DataSection:
    """Where samples come from.

    sim_roots: CARLA Garage folders (routes, scenarios or whole trees) or synthetic `carla/` folders.
    real_roots: OpenScene/NAVSIM roots (each with navsim_logs/ and sensor_blobs/) or synthetic `navsim/` folders.
    real_split: NAVSIM split folder under navsim_logs/ and sensor_blobs/ (e.g. "trainval", "mini"; never a test split).
    real_scene_filter: NAVSIM scene filter YAML (log_names / tokens) selecting the training logs; "" = all.
    sim_real_ratio: sim:real draws per epoch when both are present (1.0 = equal, .inf = sim only, 0 = real only).
    real_look_roots: the synthetic world's real-look DAgger recordings (`min2real dagger --look real`:
        CARLA Garage layout, labelled by the expert at the visited states): real-domain samples with
        real driving labels (only with real_driving_labels: true, a {S, R} recipe), all-zero BEV.
    real_driving_labels: true = real samples also train the driving heads ("mix" variants, {S, R});
        false = real images only feed the domain discriminator (sim-supervised, {S}).
    use_real_lidar: false = real samples carry an all-zero BEV, as in the paper.
    real_camera: "front" (CAM_F0) or "stitch" (NAVSIM TransFuser's left/front/right panorama).
    real_target_point: "straight_ahead" (the contract's no-route point, what a NAVSIM agent gets) or
        "future_path" (the logged path 30 m ahead: route-like, but it reveals where the ego went).
    require_perfect_score / skip_crashed_routes: CARLA Garage route filters (score_composed 100, results file present).
    sim_skip_first_s: CARLA Garage skips each route's first 2.5 s (half-sweep LiDAR); 0 for whole routes.
    sim_augmented_view_probability: share of training draws taken from Garage's shifted / rotated camera
        (rgb_augmented, labels moved into it; Garage: 0.5); validation always reads the recorded camera.
    samples_per_epoch: draws per epoch (all ranks together); 0 = the training set's size.
    val_sim_roots / val_real_roots: held-out data, validated per domain, always with driving labels.
    val_real_split: NAVSIM split of val_real_roots; "" = real_split (never a test split).
    val_real_scene_filter: NAVSIM scene filter YAML selecting the validation logs; "" = all.
    sim_camera: the camera the simulator images were recorded with, WIDTHxHEIGHT@FOV_DEG (e.g.
        256x96@100); recorded in the checkpoint for export (the deployed camera's focal length is
        matched to it). "" = told at export from the sim_roots (synthetic.json beside them: the
        synthetic world's camera; none: CARLA Garage's 1024x256@110).
    cache_dir: folder of decoded-sample caches (min2real.data.sample_cache; keyed by the data, the
        contract and the sample code, built on first use); "" = decode every draw from the files.
    """

    sim_roots: list = field(default_factory=list)
    real_roots: list = field(default_factory=list)
    real_look_roots: list = field(default_factory=list)
    real_split: str = "trainval"
    real_scene_filter: str = ""
    sim_real_ratio: float = 1.0
    real_driving_labels: bool = False
    use_real_lidar: bool = False
    real_camera: str = "front"
    real_target_point: str = "straight_ahead"
    require_perfect_score: bool = True
    skip_crashed_routes: bool = True
    sim_skip_first_s: float = 0.0
    sim_augmented_view_probability: float = 0.0
    samples_per_epoch: int = 0
    val_sim_roots: list = field(default_factory=list)
    val_real_roots: list = field(default_factory=list)
    val_real_split: str = ""
    val_real_scene_filter: str = ""
    sim_camera: str = ""
    cache_dir: str = ""

    @property
    def validation_real_split(self) -> str:
        return self.val_real_split or self.real_split

    def validate(self) -> None:
        for name in ("sim_roots", "real_roots", "real_look_roots", "val_sim_roots", "val_real_roots"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [value])
            elif not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise DataConfigError(f"data.{name}={value!r}; expected a list of directory paths")
        if not float(self.sim_real_ratio) >= 0.0:
            raise DataConfigError(
                f"data.sim_real_ratio={self.sim_real_ratio}; expected a number >= 0 (.inf for sim only)"
            )
        if self.real_look_roots and not self.real_driving_labels:
            raise DataConfigError(
                f"data.real_look_roots {self.real_look_roots} are real-look driving labels (min2real dagger --look "
                "real); expected data.real_driving_labels: true (a {S, R} recipe) or no real_look_roots"
            )
        if self.real_camera not in ("front", "stitch"):
            raise DataConfigError(f"data.real_camera={self.real_camera!r}; expected 'front' or 'stitch'")
        if self.real_target_point not in ("straight_ahead", "future_path"):
            raise DataConfigError(
                f"data.real_target_point={self.real_target_point!r}; expected 'straight_ahead' or 'future_path'"
            )
        if not self.sim_skip_first_s >= 0.0:
            raise DataConfigError(f"data.sim_skip_first_s={self.sim_skip_first_s}; expected seconds >= 0 (Garage: 2.5)")
        if not 0.0 <= self.sim_augmented_view_probability <= 1.0:
            raise DataConfigError(
                f"data.sim_augmented_view_probability={self.sim_augmented_view_probability}; expected a probability "
                "(Garage: 0.5)"
            )
        if self.sim_camera:
            try:
                parse_camera(self.sim_camera)
            except ContractError as error:
                raise DataConfigError(f"data.sim_camera: {error}") from error
        if self.samples_per_epoch < 0:
            raise DataConfigError(f"data.samples_per_epoch={self.samples_per_epoch}; expected >= 0 (0 = dataset size)")
        if self.real_roots and self.real_split in TEST_SPLITS:
            raise DataConfigError(
                f"data.real_split={self.real_split!r} is a test split; training never reads test logs "
                "(use trainval, filtered with data.real_scene_filter)"
            )
        if self.val_real_roots and self.validation_real_split in TEST_SPLITS:
            raise DataConfigError(
                f"data.val_real_split={self.validation_real_split!r} is a test split, and validation selects "
                "checkpoints/best.pt: validate on trainval logs held out of training "
                "(data.val_real_split=trainval with data.val_real_scene_filter=<held-out logs>.yaml); "
                "score on navtest/navhard only with the final checkpoint"
            )
        if self.val_real_roots and self.real_roots and self._same_real_data():
            if not (self.real_scene_filter and self.val_real_scene_filter):
                raise DataConfigError(
                    f"data.val_real_roots {self.val_real_roots} read the same logs as data.real_roots (split "
                    f"{self.real_split!r}); set data.real_scene_filter (training logs) and data.val_real_scene_filter "
                    "(held-out logs) to disjoint NAVSIM scene filters"
                )
            if Path(self.real_scene_filter).resolve() == Path(self.val_real_scene_filter).resolve():
                raise DataConfigError(
                    f"data.real_scene_filter and data.val_real_scene_filter are the same file "
                    f"{self.real_scene_filter!r}; validation logs must be held out of training"
                )

    def _same_real_data(self) -> bool:
        train = {Path(root).resolve() for root in self.real_roots}
        val = {Path(root).resolve() for root in self.val_real_roots}
        return bool(train & val) and self.validation_real_split == self.real_split
