"""The input/output contract shared by training and runtime (numpy only; never imports torch).

Everything both sides do to data lives here once: camera crop/resize and channel order,
normalisation, the LiDAR BEV histogram, the ego frame convention (and the single CARLA -> ROS
conversion), target point / speed / command inputs, waypoint count and spacing, steering
classes and the rule that derives them from a future trajectory, tensor names and the artifact
metadata schema. An exported model carries `Contract.to_json()` so the runtime configures
itself from the model and the two can never drift apart.

Frames: the ego frame is ROS REP 103 `base_link`: x forward, y left, z up, metres, origin on
the ground under the rear axle / vehicle reference point. CARLA Garage data use x forward,
y right; `carla_to_rep103` is the only place that flips it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

import numpy as np

CONTRACT_VERSION = 1

# Tensor names of the exported graph (inputs and outputs), shared by export and runtime.
INPUT_IMAGE = "image"  # (B, 3, camera_height, camera_width) float32, RGB, 0..255 (the graph normalises)
INPUT_LIDAR_BEV = "lidar_bev"  # (B, C, bev_size, bev_size) float32 in [0, 1]
INPUT_TARGET_POINT = "target_point"  # (B, 2) float32, ego frame (REP 103), metres
INPUT_SPEED = "speed"  # (B, 1) float32, metres per second
INPUT_COMMAND = "command"  # (B, 4) float32 one-hot, see COMMANDS
OUTPUT_WAYPOINTS = "waypoints"  # (B, num_waypoints, 2) float32, ego frame (REP 103), metres
OUTPUT_STEER_LOGITS = "steer_logits"  # (B, 3) float32, see STEER_CLASSES
# Optional outputs: a graph has one iff its metadata's output_shapes lists it (older graphs lack them).
# The domain-shift monitor (min2real.monitor, docs/deployment.md; read with `optional_output`):
OUTPUT_DOMAIN_LOGIT = "domain_logit"  # (B,) float32 discriminator logit on the heads' features, "real" > 0
OUTPUT_OOD_SCORE = "ood_score"  # (B,) float32 whitened distance of those features to training statistics
# The target-speed head (read with `decode_target_speed`):
OUTPUT_TARGET_SPEED_LOGITS = "target_speed_logits"  # (B, len(TARGET_SPEEDS_MPS)) float32

# Target / bookkeeping keys of a training sample (datasets produce them, losses consume them).
TARGET_WAYPOINTS = "waypoints"  # (T, 2) float32 ego frame (REP 103), metres
TARGET_STEER_CLASS = "steer_class"  # int64, see STEER_CLASSES
TARGET_SPEED_CLASS = "target_speed_class"  # int64 index into TARGET_SPEEDS_MPS; -1 = no label
SAMPLE_DOMAIN = "domain"  # int64: DOMAIN_SIM or DOMAIN_REAL (string names in DOMAINS)
SAMPLE_HAS_LABELS = "has_labels"  # bool: the sample may train the driving heads
DOMAIN_SIM, DOMAIN_REAL = 0, 1

INPUT_NAMES = (INPUT_IMAGE, INPUT_LIDAR_BEV, INPUT_TARGET_POINT, INPUT_SPEED, INPUT_COMMAND)
OUTPUT_NAMES = (OUTPUT_WAYPOINTS, OUTPUT_STEER_LOGITS)
DYNAMIC_DIM = -1  # shape entry of a dynamic (batch) dimension in artifact metadata

# Steering classes (the paper's 3-class "trajectory predictor"). Published as std_msgs/Int8.
STEER_STRAIGHT, STEER_LEFT, STEER_RIGHT = 0, 1, 2
STEER_CLASSES = ("straight", "left", "right")

# The expert's target speed as classes (CARLA Garage TransFuser++, team_code/config.py): class 0
# is the brake action, the others the expert's walker / junction / free-road speeds in m/s.
TARGET_SPEEDS_MPS = (0.0, 2.0, 5.0, 8.0)
_TARGET_SPEED_BINS_MPS = np.array([2.1, 5.1])  # Garage: each non-zero speed + 0.1 (the top class is open)


def target_speed_class(target_speed_mps: float, brake: bool) -> int:
    """Garage's label (data.py get_indices_speed_angle): 0 when the expert brakes, else the
    speed's bin among TARGET_SPEEDS_MPS[1:] (< 2.1 -> 1, < 5.1 -> 2, else 3)."""
    if not math.isfinite(target_speed_mps):
        raise ValueError(f"target speed {target_speed_mps} m/s is not finite")
    if brake:
        return 0
    return 1 + int(np.digitize(float(target_speed_mps), _TARGET_SPEED_BINS_MPS))


# Driving command, NAVSIM's one-hot of 4. CARLA's 6 route commands map onto it below.
COMMANDS = ("left", "straight", "right", "unknown")
COMMAND_LEFT, COMMAND_STRAIGHT, COMMAND_RIGHT, COMMAND_UNKNOWN = 0, 1, 2, 3
# CARLA RoadOption values (1-based as in agents.navigation.local_planner.RoadOption):
# 1 LEFT, 2 RIGHT, 3 STRAIGHT, 4 LANEFOLLOW, 5 CHANGELANELEFT, 6 CHANGELANERIGHT; -1 VOID.
CARLA_ROAD_OPTION_TO_COMMAND = {
    1: COMMAND_LEFT,
    2: COMMAND_RIGHT,
    3: COMMAND_STRAIGHT,
    4: COMMAND_STRAIGHT,
    5: COMMAND_LEFT,
    6: COMMAND_RIGHT,
    -1: COMMAND_STRAIGHT,  # VOID: CARLA Garage reads it as LANEFOLLOW (transfuser_utils.command_to_one_hot)
}

# Target point when there is no route (NAVSIM gives agents only the driving command): a point
# straight ahead at this distance. NAVSIM training samples use the same point by default, so
# training and the NAVSIM agent see the same input (see training.data.navsim).
NO_ROUTE_TARGET_DISTANCE_M = 30.0
NO_ROUTE_TARGET_POINT_EGO = (NO_ROUTE_TARGET_DISTANCE_M, 0.0)

# ImageNet statistics: DINOv2 and the timm ResNet were both pretrained with them.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


class ContractError(ValueError):
    """An input does not satisfy the contract (the message names the input and what was expected)."""


@dataclass(frozen=True)
class Contract:
    """What a Min2Real model consumes and produces. Defaults follow the paper and CARLA Garage.

    Camera: the model sees a `camera_height x camera_width` RGB image (paper: 384 x 1024).
    Any source image is scaled to cover that size (aspect preserved) and centre-cropped.

    DINOv2 input: the adapter output (or the real image) is resized inside the graph to
    `dino_height x dino_width`, multiples of the ViT patch (14). Default 224 x 602: 16 x 43 =
    688 tokens keep the aspect of 384 x 1024 (2.69 vs 2.67) and cost ~29.6 GFLOP for ViT-S/14
    (measured, see docs/facts), which an embedded GPU (Jetson Orin class, FP16 TensorRT) runs
    well inside the 50 ms budget of 20 Hz; the full 378 x 1022 (27 x 73 = 1971 tokens) would
    cost ~3x the FLOPs with attention growing quadratically in the token count.

    Waypoints: `num_waypoints` future positions every `waypoint_dt_s` seconds. 8 x 0.5 s (4 s)
    is served by NAVSIM's 2 Hz poses directly (its 8-pose trajectory) and by CARLA Garage's
    4 Hz frames (every second frame); TransFuser's 4 x 0.5 s is its prefix.
    """

    version: int = CONTRACT_VERSION
    camera_height: int = 384
    camera_width: int = 1024
    dino_height: int = 224
    dino_width: int = 602
    patch_size: int = 14
    mean_rgb: tuple[float, float, float] = IMAGENET_MEAN_RGB
    std_rgb: tuple[float, float, float] = IMAGENET_STD_RGB
    # LiDAR BEV (CARLA Garage): square grid centred on the ego vehicle.
    bev_size_px: int = 256
    bev_pixels_per_meter: float = 4.0
    bev_range_m: float = 32.0
    bev_hist_max_per_pixel: float = 5.0
    bev_split_height_m: float = 0.2
    bev_max_height_m: float = 100.0
    bev_channels: tuple[str, ...] = ("above",)  # subset of ("below", "above"), in this order
    # Trajectory.
    num_waypoints: int = 8
    waypoint_dt_s: float = 0.5
    # Steering class rule (see steer_class_from_waypoints).
    steer_turn_threshold_deg: float = 20.0
    steer_min_travel_m: float = 2.0
    num_commands: int = len(COMMANDS)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for name in ("dino_height", "dino_width"):
            value = getattr(self, name)
            if value <= 0 or value % self.patch_size:
                raise ContractError(
                    f"contract {name}={value} must be a positive multiple of the patch size {self.patch_size}"
                )
        if self.bev_size_px != round(2 * self.bev_range_m * self.bev_pixels_per_meter):
            raise ContractError(
                f"contract bev_size_px={self.bev_size_px} must equal 2 * bev_range_m * bev_pixels_per_meter "
                f"= {2 * self.bev_range_m * self.bev_pixels_per_meter:g}"
            )
        unknown = set(self.bev_channels) - {"below", "above"}
        if unknown or not self.bev_channels:
            raise ContractError(
                f"contract bev_channels={self.bev_channels!r}; expected a non-empty subset of ('below', 'above')"
            )

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def horizon_s(self) -> float:
        return self.num_waypoints * self.waypoint_dt_s

    @property
    def waypoint_times_s(self) -> np.ndarray:
        """(num_waypoints,) seconds into the future of each waypoint."""
        return self.waypoint_dt_s * np.arange(1, self.num_waypoints + 1, dtype=np.float64)

    @property
    def bev_num_channels(self) -> int:
        return len(self.bev_channels)

    def input_shapes(self, batch: int = 1) -> dict[str, tuple[int, ...]]:
        """Shapes of the exported graph's inputs (all float32)."""
        return {
            INPUT_IMAGE: (batch, 3, self.camera_height, self.camera_width),
            INPUT_LIDAR_BEV: (batch, self.bev_num_channels, self.bev_size_px, self.bev_size_px),
            INPUT_TARGET_POINT: (batch, 2),
            INPUT_SPEED: (batch, 1),
            INPUT_COMMAND: (batch, self.num_commands),
        }

    def output_shapes(self, batch: int = 1) -> dict[str, tuple[int, ...]]:
        return {
            OUTPUT_WAYPOINTS: (batch, self.num_waypoints, 2),
            OUTPUT_STEER_LOGITS: (batch, len(STEER_CLASSES)),
        }

    # ---- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["mean_rgb"] = list(self.mean_rgb)
        data["std_rgb"] = list(self.std_rgb)
        data["bev_channels"] = list(self.bev_channels)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> Contract:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ContractError(f"contract has unknown fields {unknown}; this min2real knows {sorted(known)}")
        if data.get("version", CONTRACT_VERSION) != CONTRACT_VERSION:
            raise ContractError(f"contract version {data.get('version')} is not supported; expected {CONTRACT_VERSION}")
        values = dict(data)
        for key in ("mean_rgb", "std_rgb", "bev_channels"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> Contract:
        return cls.from_dict(json.loads(text))

    def differences(self, other: Contract) -> list[str]:
        """Human-readable list of fields that differ (empty when compatible)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            f"{key}: {mine[key]!r} != {theirs[key]!r}"
            for key in sorted(mine)
            if key != "extra" and mine[key] != theirs[key]
        ]


DEFAULT_CONTRACT = Contract()


# ---- camera -----------------------------------------------------------------------------------
def camera_crop_box(source_hw: tuple[int, int], contract: Contract = DEFAULT_CONTRACT) -> tuple[int, int, int, int]:
    """Crop box (top, left, height, width) in source pixels whose aspect equals the contract's.

    The box is centred; the crop is then resized to camera_height x camera_width.
    """
    src_h, src_w = int(source_hw[0]), int(source_hw[1])
    if src_h <= 0 or src_w <= 0:
        raise ContractError(f"camera image size {src_h}x{src_w} is empty; expected a positive height and width")
    target_aspect = contract.camera_width / contract.camera_height
    if src_w / src_h > target_aspect:  # wider than the contract: crop columns
        crop_h, crop_w = src_h, int(round(src_h * target_aspect))
    else:  # taller: crop rows
        crop_h, crop_w = int(round(src_w / target_aspect)), src_w
    top, left = (src_h - crop_h) // 2, (src_w - crop_w) // 2
    return top, left, crop_h, crop_w


def prepare_camera_rgb(image_rgb: np.ndarray, contract: Contract = DEFAULT_CONTRACT) -> np.ndarray:
    """Any-size RGB uint8 image (H, W, 3) -> (camera_height, camera_width, 3) uint8 RGB.

    Centre crop to the contract's aspect, then resize (area interpolation when shrinking).
    Callers convert BGR/BGRA/mono to RGB first (runtime.image_conversion does it for ROS messages).
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ContractError(
            f"camera image has shape {image_rgb.shape} dtype {image_rgb.dtype}; expected (H, W, 3) uint8 RGB"
        )
    import cv2  # OpenCV does the resize in C; imported here so the contract stays importable without it.

    top, left, crop_h, crop_w = camera_crop_box(image_rgb.shape[:2], contract)
    crop = image_rgb[top : top + crop_h, left : left + crop_w]
    size = (contract.camera_width, contract.camera_height)
    if crop.shape[:2] == (contract.camera_height, contract.camera_width):
        return np.ascontiguousarray(crop)
    shrinking = crop_h > contract.camera_height
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


# NAVSIM TransFuser's camera panorama: rows cropped by 28/1080 of the height on both sides, the
# side cameras by 416/1920 of the width on their outer sides (navsim/agents/transfuser).
NAVSIM_STITCH_ROW_CROP, NAVSIM_STITCH_SIDE_CROP = 28 / 1080, 416 / 1920


def stitch_navsim_cameras(left_rgb: np.ndarray, front_rgb: np.ndarray, right_rgb: np.ndarray) -> np.ndarray:
    """CAM_L0 | CAM_F0 | CAM_R0 (each (H, W, 3) RGB, same size) -> NAVSIM TransFuser's panorama
    (H', W_l + W_f + W_r, 3), before the contract's crop/resize. Training samples and the NAVSIM
    agent both stitch here."""
    height, width = front_rgb.shape[:2]
    if left_rgb.shape != front_rgb.shape or right_rgb.shape != front_rgb.shape:
        raise ContractError(
            f"NAVSIM stitch cameras differ in size: CAM_L0 {left_rgb.shape}, CAM_F0 {front_rgb.shape}, "
            f"CAM_R0 {right_rgb.shape}; expected three (H, W, 3) images of one size"
        )
    rows = round(NAVSIM_STITCH_ROW_CROP * height)
    cols = round(NAVSIM_STITCH_SIDE_CROP * width)
    band = slice(rows, height - rows)
    return np.ascontiguousarray(
        np.concatenate(
            [left_rgb[band, cols : width - cols], front_rgb[band], right_rgb[band, cols : width - cols]], axis=1
        )
    )


def image_to_input(image_rgb: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) RGB uint8/float 0..255 -> (..., 3, H, W) float32 0..255 (graph input layout).

    The exported graph normalises with the contract's mean/std itself (first op of the model),
    so training (which adds noise on the 0..255 image first) and runtime cannot disagree.
    """
    if image_rgb.shape[-1] != 3:
        raise ContractError(f"image has shape {image_rgb.shape}; expected (..., H, W, 3) RGB")
    return np.ascontiguousarray(np.moveaxis(image_rgb, -1, -3), dtype=np.float32)


def denormalize_image(image_chw: np.ndarray, contract: Contract = DEFAULT_CONTRACT) -> np.ndarray:
    """Normalised (..., 3, H, W) float (e.g. the V2R adapter's output) -> (..., H, W, 3) uint8 RGB, for plots."""
    hwc = np.moveaxis(np.asarray(image_chw, dtype=np.float32), -3, -1)
    rgb = hwc * np.asarray(contract.std_rgb, np.float32) + np.asarray(contract.mean_rgb, np.float32)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class CameraSpec:
    """A pinhole camera as CARLA's camera blueprint describes it: image size in pixels and the
    horizontal field of view `fov_deg` (CARLA's `fov`; square pixels, principal point centred).
    `lens`: further CARLA blueprint attributes the images were rendered with (lens circle,
    chromatic aberration), empty when none were set.

    The model never sees this camera as is: `prepare_camera_rgb` centre-crops it to the
    contract's aspect and scales the crop to camera_width x camera_height, which multiplies the
    focal length. `model_input_focal_length_px` gives the result; two cameras whose values agree
    show objects at the same size to the model.
    """

    width_px: int
    height_px: int
    fov_deg: float
    lens: dict = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        sizes = (self.width_px, self.height_px)
        if any(not float(size).is_integer() or size <= 0 for size in sizes):
            raise ContractError(
                f"camera size {self.width_px}x{self.height_px}; expected positive whole numbers of pixels"
            )
        if not 0.0 < float(self.fov_deg) < 180.0:
            raise ContractError(f"camera fov_deg {self.fov_deg}; expected a horizontal field of view in (0, 180)")

    @property
    def focal_length_px(self) -> float:
        """Focal length in pixels of the full image: (width / 2) / tan(fov / 2)."""
        return 0.5 * self.width_px / math.tan(math.radians(self.fov_deg) / 2.0)

    def model_input_focal_length_px(self, contract: Contract = DEFAULT_CONTRACT) -> float:
        """Focal length in pixels of the image the model sees (after the contract's crop and resize)."""
        _, _, _, crop_w = camera_crop_box((self.height_px, self.width_px), contract)
        return self.focal_length_px * contract.camera_width / crop_w

    def model_input_fov_deg(self, contract: Contract = DEFAULT_CONTRACT) -> float:
        """Horizontal field of view of the contract's crop of this camera."""
        _, _, _, crop_w = camera_crop_box((self.height_px, self.width_px), contract)
        return math.degrees(2.0 * math.atan(0.5 * crop_w / self.focal_length_px))

    def carla_attributes(self) -> dict:
        """CARLA camera blueprint attributes (objects.json / blueprint.set_attribute) of this camera."""
        size = {"image_size_x": int(self.width_px), "image_size_y": int(self.height_px), "fov": float(self.fov_deg)}
        return {**size, **dict(sorted(self.lens.items()))}

    def to_dict(self) -> dict:
        return {
            "width_px": int(self.width_px),
            "height_px": int(self.height_px),
            "fov_deg": float(self.fov_deg),
            "lens": dict(self.lens),
        }

    @classmethod
    def from_dict(cls, data: dict) -> CameraSpec:
        known = {"width_px", "height_px", "fov_deg", "lens"}
        if not isinstance(data, dict) or not {"width_px", "height_px", "fov_deg"} <= set(data) or set(data) - known:
            raise ContractError(f"camera {data!r}; expected a mapping of width_px, height_px, fov_deg (and lens)")
        return cls(int(data["width_px"]), int(data["height_px"]), float(data["fov_deg"]), dict(data.get("lens") or {}))


# The lens attributes CARLA Garage's leaderboard (and leaderboard 1.0) apply to every camera it
# spawns (leaderboard/autoagents/agent_wrapper*.py); leaderboard 2.x sets none.
CARLA_LEADERBOARD_1_CAMERA_LENS = {
    "lens_circle_multiplier": 3.0,
    "lens_circle_falloff": 3.0,
    "chromatic_aberration_intensity": 0.5,
    "chromatic_aberration_offset": 0.0,
}
# The camera CARLA Garage records its training data with (team_code/config.py camera_width,
# camera_height, camera_fov), spawned through that leaderboard.
CARLA_GARAGE_CAMERA = CameraSpec(1024, 256, 110.0, dict(CARLA_LEADERBOARD_1_CAMERA_LENS))


# ---- frames -------------------------------------------------------------------------------------
def carla_to_rep103(points_carla: np.ndarray) -> np.ndarray:
    """CARLA axes (x forward, y right, z up) -> REP 103 (x forward, y left, z up).

    The one place in min2real that flips CARLA's y axis. Works on (..., 2) and (..., 3)
    arrays of positions; the same flip applies to CARLA yaw angles (use `-yaw`).
    """
    dtype = np.float64 if np.asarray(points_carla).dtype == np.float64 else np.float32
    points: np.ndarray = np.array(points_carla, dtype=dtype)
    if points.shape[-1] not in (2, 3):
        raise ContractError(f"points have shape {points.shape}; expected (..., 2) or (..., 3)")
    points[..., 1] = -points[..., 1]
    return points


def world_to_ego_xy(points_world_xy: np.ndarray, ego_xy_world: np.ndarray, ego_yaw_rad: float) -> np.ndarray:
    """(N, 2) positions in a right-handed world frame -> ego frame (REP 103) of a pose at
    `ego_xy_world` with heading `ego_yaw_rad` (counter-clockwise from world x)."""
    cos_yaw, sin_yaw = math.cos(ego_yaw_rad), math.sin(ego_yaw_rad)
    delta = np.asarray(points_world_xy, dtype=np.float64) - np.asarray(ego_xy_world, dtype=np.float64)
    # R^T @ delta with R = [[c, -s], [s, c]]
    x_ego = cos_yaw * delta[..., 0] + sin_yaw * delta[..., 1]
    y_ego = -sin_yaw * delta[..., 0] + cos_yaw * delta[..., 1]
    return np.stack([x_ego, y_ego], axis=-1)


def yaw_from_quaternion_wxyz(quaternion_wxyz: np.ndarray) -> np.ndarray:
    """Heading (rotation about z) of quaternions given as (..., 4) w, x, y, z."""
    q = np.asarray(quaternion_wxyz, dtype=np.float64)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


# ---- LiDAR BEV ----------------------------------------------------------------------------------
def lidar_bev_from_points(points_ego: np.ndarray, contract: Contract = DEFAULT_CONTRACT) -> np.ndarray:
    """(N, >=3) LiDAR points in the ego frame (REP 103, metres) -> (C, S, S) float32 in [0, 1].

    Row 0 is the far front (x = +range), column 0 the far left (y = +range): the BEV reads like
    a map with the vehicle heading up. Per-pixel point counts are clipped at
    `bev_hist_max_per_pixel` and divided by it (CARLA Garage). Channel "below" counts points with
    z <= split height, "above" the rest up to `bev_max_height_m`. Non-finite points are dropped.
    """
    points = np.asarray(points_ego)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ContractError(f"LiDAR points have shape {points.shape}; expected (N, 3+) x, y, z in the ego frame")
    size = contract.bev_size_px
    bev = np.zeros((contract.bev_num_channels, size, size), dtype=np.float32)
    if points.shape[0] == 0:
        return bev
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    rows = np.floor((contract.bev_range_m - x) * contract.bev_pixels_per_meter)
    cols = np.floor((contract.bev_range_m - y) * contract.bev_pixels_per_meter)
    valid = (
        (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size) & np.isfinite(z) & (z <= contract.bev_max_height_m)
    )
    flat = rows[valid].astype(np.int64) * size + cols[valid].astype(np.int64)
    above = z[valid] > contract.bev_split_height_m
    for channel, name in enumerate(contract.bev_channels):
        counts = np.bincount(flat[above if name == "above" else ~above], minlength=size * size)
        bev[channel] = np.minimum(counts, contract.bev_hist_max_per_pixel).reshape(size, size)
    bev *= np.float32(1.0 / contract.bev_hist_max_per_pixel)
    return bev


# ---- inputs -------------------------------------------------------------------------------------
def command_one_hot(command: int | None, contract: Contract = DEFAULT_CONTRACT) -> np.ndarray:
    """Command index (see COMMANDS) or None (unknown) -> (num_commands,) float32 one-hot."""
    index = COMMAND_UNKNOWN if command is None else int(command)
    if not 0 <= index < contract.num_commands:
        raise ContractError(
            f"driving command {command!r} is out of range; expected 0..{contract.num_commands - 1} {COMMANDS}"
        )
    one_hot = np.zeros(contract.num_commands, dtype=np.float32)
    one_hot[index] = 1.0
    return one_hot


def concrete_shape(shape: tuple[int, ...], batch: int = 1) -> tuple[int, ...]:
    """A metadata shape with DYNAMIC_DIM replaced by `batch`."""
    return tuple(batch if d == DYNAMIC_DIM else int(d) for d in shape)


def example_inputs(
    contract: Contract = DEFAULT_CONTRACT, batch: int = 1, seed: int = 0, names=INPUT_NAMES
) -> dict[str, np.ndarray]:
    """Random float32 graph inputs of the contract's shapes (warm-up, export parity, benchmarks):
    image 0..255, a sparse BEV in [0, 1], target point within +-30 m, speed 0..15 m/s, a random
    one-hot command. `names` picks the inputs (a graph without LiDAR has no lidar_bev)."""
    rng = np.random.default_rng(seed)
    shapes = contract.input_shapes(batch)
    bev_shape = shapes[INPUT_LIDAR_BEV]
    command = np.zeros(shapes[INPUT_COMMAND], np.float32)
    command[np.arange(batch), rng.integers(0, contract.num_commands, batch)] = 1.0
    inputs = {
        INPUT_IMAGE: rng.uniform(0, 255, shapes[INPUT_IMAGE]).astype(np.float32),
        INPUT_LIDAR_BEV: np.where(rng.random(bev_shape) < 0.05, rng.random(bev_shape), 0.0).astype(np.float32),
        INPUT_TARGET_POINT: rng.uniform(-30, 30, shapes[INPUT_TARGET_POINT]).astype(np.float32),
        INPUT_SPEED: rng.uniform(0, 15, shapes[INPUT_SPEED]).astype(np.float32),
        INPUT_COMMAND: command,
    }
    return {name: inputs[name] for name in INPUT_NAMES if name in set(names)}


# ---- trajectory -> steering class ---------------------------------------------------------------
def steer_class_from_waypoints(waypoints_ego: np.ndarray, contract: Contract = DEFAULT_CONTRACT) -> np.ndarray:
    """(..., T, 2) future waypoints in the ego frame -> (...,) int64 steering class.

    Rule: the heading of the trajectory's end, i.e. the direction from the waypoint at half
    the horizon to the last waypoint, relative to the current heading. Above
    +steer_turn_threshold_deg is LEFT (y left in REP 103), below the negative threshold RIGHT,
    else STRAIGHT. A trajectory that travels less than steer_min_travel_m (standing, creeping)
    is STRAIGHT: its heading is noise. A lane change ends parallel to the start and stays
    STRAIGHT; a turn at an intersection ends ~90 degrees off and is LEFT/RIGHT.
    """
    waypoints = np.asarray(waypoints_ego, dtype=np.float64)
    if waypoints.ndim < 2 or waypoints.shape[-1] != 2 or waypoints.shape[-2] < 2:
        raise ContractError(f"waypoints have shape {waypoints.shape}; expected (..., T>=2, 2)")
    last = waypoints[..., -1, :]
    middle = waypoints[..., (waypoints.shape[-2] - 1) // 2, :]
    direction = last - middle
    heading_deg = np.degrees(np.arctan2(direction[..., 1], direction[..., 0]))
    travel_m = np.linalg.norm(last, axis=-1)
    short_segment = np.linalg.norm(direction, axis=-1) < 0.5
    # When the end segment is too short to carry a heading, use the direction of the last point.
    heading_deg = np.where(short_segment, np.degrees(np.arctan2(last[..., 1], last[..., 0])), heading_deg)
    classes = np.full(heading_deg.shape, STEER_STRAIGHT, dtype=np.int64)
    classes[heading_deg > contract.steer_turn_threshold_deg] = STEER_LEFT
    classes[heading_deg < -contract.steer_turn_threshold_deg] = STEER_RIGHT
    classes[travel_m < contract.steer_min_travel_m] = STEER_STRAIGHT
    return classes


def future_waypoints_from_poses(
    times_s: np.ndarray,
    positions_world_xy: np.ndarray,
    current_index: int,
    current_yaw_rad: float,
    contract: Contract = DEFAULT_CONTRACT,
    max_time_error_s: float = 0.15,
) -> np.ndarray | None:
    """Future waypoints (num_waypoints, 2) in the ego frame of frame `current_index`.

    `times_s` (T,) are the frames' timestamps, `positions_world_xy` (T, 2) their positions in a
    right-handed world frame. For each waypoint time the nearest later frame is taken; None when
    the log does not reach the horizon or a frame is off by more than `max_time_error_s`.
    """
    times = np.asarray(times_s, dtype=np.float64)
    wanted = times[current_index] + contract.waypoint_times_s
    indices = np.searchsorted(times, wanted - 1e-6)
    if indices[-1] >= len(times):
        return None
    if np.any(np.abs(times[indices] - wanted) > max_time_error_s):
        return None
    positions = np.asarray(positions_world_xy, dtype=np.float64)
    return world_to_ego_xy(positions[indices], positions[current_index], current_yaw_rad).astype(np.float32)


# ---- outputs ------------------------------------------------------------------------------------
def decode_outputs(
    outputs: dict[str, np.ndarray], contract: Contract = DEFAULT_CONTRACT
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Graph outputs -> (waypoints_ego (B, T, 2) float32, steer_class (B,) int64, steer_probs (B, 3)).

    Raises ContractError on wrong shapes or non-finite values: nothing non-finite is ever published.
    """
    for name in OUTPUT_NAMES:
        if name not in outputs:
            raise ContractError(f"model output {name!r} is missing; got {sorted(outputs)}")
    waypoints = np.asarray(outputs[OUTPUT_WAYPOINTS], dtype=np.float32)
    logits = np.asarray(outputs[OUTPUT_STEER_LOGITS], dtype=np.float32)
    if waypoints.ndim != 3 or waypoints.shape[1:] != (contract.num_waypoints, 2):
        raise ContractError(
            f"model output {OUTPUT_WAYPOINTS!r} has shape {waypoints.shape}; expected (B, {contract.num_waypoints}, 2)"
        )
    if logits.ndim != 2 or logits.shape[1] != len(STEER_CLASSES):
        raise ContractError(
            f"model output {OUTPUT_STEER_LOGITS!r} has shape {logits.shape}; expected (B, {len(STEER_CLASSES)})"
        )
    if not (np.isfinite(waypoints).all() and np.isfinite(logits).all()):
        raise ContractError("model outputs contain non-finite values (NaN/inf); the prediction is discarded")
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = shifted / shifted.sum(axis=1, keepdims=True)
    return waypoints, probs.argmax(axis=1).astype(np.int64), probs


def optional_output(outputs: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    """An optional per-frame scalar output (OUTPUT_DOMAIN_LOGIT, OUTPUT_OOD_SCORE) as (B,) float32,
    or None when the graph does not have it. Raises ContractError on a wrong shape or non-finite values."""
    if name not in outputs:
        return None
    values = np.asarray(outputs[name], dtype=np.float32)
    if values.ndim != 1:
        raise ContractError(f"model output {name!r} has shape {values.shape}; expected (B,)")
    if not np.isfinite(values).all():
        raise ContractError(f"model output {name!r} has non-finite values; the prediction is discarded")
    return values


def decode_target_speed(outputs: dict[str, np.ndarray]) -> np.ndarray | None:
    """The optional target-speed output -> (B, len(TARGET_SPEEDS_MPS)) class probabilities, or None
    when the graph has no such output. ContractError on a wrong shape or non-finite values."""
    if OUTPUT_TARGET_SPEED_LOGITS not in outputs:
        return None
    logits = np.asarray(outputs[OUTPUT_TARGET_SPEED_LOGITS], dtype=np.float32)
    if logits.ndim != 2 or logits.shape[1] != len(TARGET_SPEEDS_MPS):
        raise ContractError(
            f"model output {OUTPUT_TARGET_SPEED_LOGITS!r} has shape {logits.shape}; "
            f"expected (B, {len(TARGET_SPEEDS_MPS)}) over {TARGET_SPEEDS_MPS} m/s"
        )
    if not np.isfinite(logits).all():
        raise ContractError(f"model output {OUTPUT_TARGET_SPEED_LOGITS!r} is not finite; the prediction is discarded")
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


# ---- artifact metadata --------------------------------------------------------------------------
METADATA_KEY = "min2real.metadata"  # ONNX metadata_props key; engines carry a <engine>.json sidecar
DOMAINS = ("sim", "real")
# Numeric precision of an exported graph's own tensor types: "fp32" (as exported), "fp16" (a
# strongly typed mixed FP16/FP32 graph) or "int8" (explicit Q/DQ), made by `min2real quantize`.
GRAPH_PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class ArtifactMetadata:
    """What an exported model says about itself. `domain` "sim" = graph with the V2R adapter
    (simulator images), "real" = without it (real camera images)."""

    contract: Contract
    variant: str
    domain: str
    weights: dict  # provenance: {"dinov2": "official:/path" | "timm_pretrained" | "none", ...}
    checkpoint_sha256: str
    package_versions: dict
    input_shapes: dict
    output_shapes: dict
    extra: dict = field(default_factory=dict)
    # The camera the training images were recorded with (before the contract's crop/resize), so a
    # deployment can request the same one; None in artifacts exported before it was recorded.
    source_camera: CameraSpec | None = None
    # The graph's own numeric types (GRAPH_PRECISIONS); how a reduced-precision graph was made is
    # in extra["precision_recipe"] (min2real.precision). Older artifacts: "fp32".
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ContractError(f"artifact domain {self.domain!r} is not supported; expected one of {DOMAINS}")
        if self.precision not in GRAPH_PRECISIONS:
            raise ContractError(f"artifact precision {self.precision!r}; expected one of {GRAPH_PRECISIONS}")

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["contract"] = self.contract.to_dict()
        data["source_camera"] = None if self.source_camera is None else self.source_camera.to_dict()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ArtifactMetadata:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ContractError(f"artifact metadata is not valid JSON: {error}") from error
        optional = ("extra", "source_camera", "precision")
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and f.name not in optional]
        if missing:
            raise ContractError(f"artifact metadata lacks fields {missing}")
        data["contract"] = Contract.from_dict(data["contract"])
        if data.get("source_camera") is not None:
            data["source_camera"] = CameraSpec.from_dict(data["source_camera"])
        data["input_shapes"] = {k: tuple(v) for k, v in data["input_shapes"].items()}
        data["output_shapes"] = {k: tuple(v) for k, v in data["output_shapes"].items()}
        return cls(**data)

    def check_compatible(self, domain: str | None = None, contract: Contract | None = None) -> None:
        """Refuse a model that does not match what the caller asked for (clear message)."""
        if domain is not None and domain != self.domain:
            raise ContractError(
                f"model was exported for domain {self.domain!r} but {domain!r} was requested "
                "('sim' graphs include the V2R adapter for simulator images, 'real' graphs do not)"
            )
        if contract is not None:
            diffs = contract.differences(self.contract)
            if diffs:
                raise ContractError("model contract does not match the requested contract: " + "; ".join(diffs))


# A small contract for CPU tests, smoke training runs and the bundled demo model: same
# semantics (frames, waypoint spec, steering rule), smaller images and BEV.
TINY_CONTRACT = Contract(
    camera_height=96,
    camera_width=256,
    dino_height=56,
    dino_width=154,
    bev_size_px=64,
    bev_pixels_per_meter=2.0,
    bev_range_m=16.0,
)
