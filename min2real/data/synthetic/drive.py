"""One exactly labelled synthetic drive: a route (geometry), a renderer (appearance) and frames at
any rate. The ego vehicle follows the right lane exactly, starting from rest, so the labels are
exact: future waypoints from the continuous trajectory, the steering class from the contract's
rule, and the target point and driving command exactly as the driver node derives them from the
dense route (`runtime.route.RoutePlanner`, CARLA Garage's semantics), so training inputs are what
the vehicle and the closed loop feed the model. Junctions where the ego stops carry painted stop
lines, and `augmented_view` renders CARLA Garage's shifted / rotated camera. Geometry and labels
depend only on the seed, so the same seed in the "sim" and the "real" domain differs in
appearance only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from min2real import contract as C
from min2real.data.common import TARGET_POINT_DISTANCE_M
from min2real.data.synthetic.geometry import (
    LANE_WIDTH_M,
    PATH_STEP_M,
    V_MAX_MPS,
    SyntheticRoute,
    _seed_tuple,
)
from min2real.data.synthetic.render import SIM, Boxes, SceneRenderer, make_camera, side_camera_yaw
from min2real.runtime.route import (
    ROAD_OPTION_LANEFOLLOW,
    ROAD_OPTION_LEFT,
    ROAD_OPTION_RIGHT,
    ROAD_OPTION_VOID,
    RoutePlanner,
    RouteStep,
)

# The CARLA RoadOption written to measurements for a planner command (a geometric plan has no STRAIGHT).
COMMAND_TO_ROAD_OPTION = {
    C.COMMAND_LEFT: ROAD_OPTION_LEFT,
    C.COMMAND_RIGHT: ROAD_OPTION_RIGHT,
    C.COMMAND_STRAIGHT: ROAD_OPTION_LANEFOLLOW,
    C.COMMAND_UNKNOWN: ROAD_OPTION_VOID,
}

CARLA_RATE_HZ = 4.0  # CARLA Garage saves frames at 4 Hz
NAVSIM_RATE_HZ = 2.0  # OpenScene / NAVSIM logs are 2 Hz
DEFAULT_SIM_IMAGE_SIZE = (1024, 384)  # (width, height), CARLA layout
DEFAULT_REAL_IMAGE_SIZE = (640, 360)  # 16:9 like NAVSIM's 1920 x 1080, smaller to stay fast
NAVSIM_CAMERAS = ("CAM_F0", "CAM_L0", "CAM_R0")


@dataclass
class SyntheticFrame:
    """One frame of a synthetic drive (all labels exact).

    image_rgb (H, W, 3) uint8 front camera; side_images: extra NAVSIM cameras (CAM_L0/CAM_R0)
    when requested. lidar_points_ego (N, 4) float32 x, y, z, intensity in REP 103 base_link
    (None for the real domain unless LiDAR was requested). pose_world (x, y, yaw) right-handed
    world. route_world (M, 2) dense route (1 m spacing), the same array for every frame of a
    drive. target_point_ego (2,), command (contract COMMANDS index), road_option (CARLA
    RoadOption of the same command), waypoints_ego (num_waypoints, 2), steer_class (contract).
    """

    index: int
    timestamp_s: float
    domain: str
    image_rgb: np.ndarray
    lidar_points_ego: np.ndarray | None
    pose_world: tuple[float, float, float]
    speed_mps: float
    route_world: np.ndarray
    target_point_ego: np.ndarray
    command: int
    road_option: int
    waypoints_ego: np.ndarray
    steer_class: int
    in_junction: bool
    side_images: dict[str, np.ndarray] = field(default_factory=dict)
    traffic: FrameTraffic | None = None  # drives with traffic: the expert's decision, the actors
    # True: waypoints_ego are the expert's plan from this (visited) state, not the driven future
    # (DAgger recordings); the Garage writer then stores them as the measurement's expert_waypoints.
    waypoints_from_expert: bool = False


@dataclass(frozen=True)
class FrameTraffic:
    """What a drive with traffic adds to a frame: the expert's target speed (m/s) and brake at this
    instant, the state of the next traffic light on the route ("green" | "yellow" | "red" | "none")
    and its distance (m, inf: none), and the actors: ids (A,), kinds (A,; traffic_plan.KIND_*),
    centre_xy (A, 2) world, yaw_rad (A,), speed_mps (A,), half_size_m (A, 2), height_m (A,)."""

    target_speed_mps: float
    brake: bool
    light_state: str
    light_distance_m: float
    ids: np.ndarray
    kinds: np.ndarray
    centre_xy: np.ndarray
    yaw_rad: np.ndarray
    speed_mps: np.ndarray
    half_size_m: np.ndarray
    height_m: np.ndarray


STOP_LINE_AFTER_JUNCTION_START_M = 0.5  # the line sits at the junction mouth
# CARLA Garage's augmented camera (config.py camera_translation/rotation_augmentation_min/max).
AUGMENTATION_TRANSLATION_M = 1.0
AUGMENTATION_ROTATION_DEG = 5.0


def stop_lines_world(route: SyntheticRoute) -> list[np.ndarray]:
    """(2, 2) world end points of a stop line across the ego lane (right edge to centre line) at
    the mouth of every junction where the route's ego timing stops (`stop_dwell_s > 0`)."""
    lines = []
    for junction in route.intersections:
        if junction.stop_dwell_s <= 0:
            continue
        s_line = route.path_s[junction.index_start] + STOP_LINE_AFTER_JUNCTION_START_M
        index = min(int(round(s_line / PATH_STEP_M)), len(route.path_s) - 1)
        yaw = route.path_yaw[index]
        left = np.array([-np.sin(yaw), np.cos(yaw)])
        right_edge = route.path_xy[index] - (0.5 * LANE_WIDTH_M - 0.2) * left
        centre_line = route.path_xy[index] + 0.5 * LANE_WIDTH_M * left
        lines.append(np.stack([right_edge, centre_line]))
    return lines


class SyntheticDrive:
    """One drive (route + appearance) that renders frames at any time.

    `duration_s` is the time the caller wants fully labelled; the route extends beyond it by the
    waypoint horizon and the target-point distance at any speed, so every frame up to
    `duration_s` has exact labels.
    """

    waypoints_from_expert = False  # see SyntheticFrame.waypoints_from_expert

    def __init__(
        self,
        seed: int | Sequence[int],
        duration_s: float,
        domain: str = SIM,
        image_size: tuple[int, int] = DEFAULT_SIM_IMAGE_SIZE,
        contract: C.Contract = C.DEFAULT_CONTRACT,
        cameras: Sequence[str] = ("CAM_F0",),
        lidar: bool | None = None,
        first_turn: str | None = None,
        condition: str | None = None,
        obstacle: bool = False,
    ) -> None:
        """condition: an appearance condition of the closed-loop scenarios (scenario.CONDITIONS:
        noon, cloudy, wet, sunset, dusk, fog) on top of the domain's look; None = as generated.
        obstacle: a car parked in the ego lane that the drive passes in the oncoming lane, as on the
        closed-loop routes (scenario.park_car_on_drive); `self.obstacle` is None when no straight
        stretch of the labelled part fits one."""
        if domain not in C.DOMAINS:
            raise ValueError(f"synthetic domain {domain!r} is not supported; expected one of {C.DOMAINS}")
        unknown = set(cameras) - set(NAVSIM_CAMERAS)
        if unknown or "CAM_F0" not in cameras:
            raise ValueError(f"synthetic cameras {tuple(cameras)} must include CAM_F0 and be among {NAVSIM_CAMERAS}")
        self.seed = _seed_tuple(seed)
        self.domain = domain
        self.contract = contract
        self.lidar = (domain == SIM) if lidar is None else bool(lidar)
        min_length = (duration_s + 2 * contract.horizon_s) * V_MAX_MPS + TARGET_POINT_DISTANCE_M + 40.0
        self.route = SyntheticRoute(self.seed, min_length, first_turn, start_from_rest=True)
        self.obstacle = None
        if obstacle:
            from min2real.data.synthetic.scenario import park_car_on_drive

            labelled_m = float(self.route.s_at(duration_s))
            self.obstacle = park_car_on_drive(self.route, labelled_m, np.random.default_rng((*self.seed, 7)))
        self.timing = self.route  # s_at(t), speed_at(t), duration_s: the ego's progress in time
        self.route_world_xy = self.route.route_world()
        # The target point and the command exactly as the driver node derives them from this dense
        # route (runtime.route.RoutePlanner: Garage's plan every ~50 m plus turns, commands from the
        # route's geometry, the previous target's command), stepped through every frame from the
        # start: training inputs then match what the vehicle (and the closed loop) feeds the model.
        self._route_steps: dict[float, tuple[RoutePlanner, list[RouteStep]]] = {}
        # Painted stop lines where the ego's timing stops, as the closed-loop scenarios paint them:
        # a model can only learn to stop at a junction it can see is a stop.
        if condition is not None:
            from min2real.data.synthetic.scenario import CONDITION_NAMES, CONDITIONS

            if condition not in CONDITIONS:
                raise ValueError(f"appearance condition {condition!r} is not known; expected one of {CONDITION_NAMES}")
        self.condition = condition
        self.renderer = SceneRenderer(
            self.route,
            domain,
            self.seed,
            CONDITIONS[condition] if condition is not None else None,
            stop_lines=stop_lines_world(self.route),
        )
        front = make_camera(image_size, contract)
        self.cameras = {"CAM_F0": front}
        if "CAM_L0" in cameras:
            self.cameras["CAM_L0"] = make_camera(image_size, contract, side_camera_yaw(front))
        if "CAM_R0" in cameras:
            self.cameras["CAM_R0"] = make_camera(image_size, contract, -side_camera_yaw(front))

    def _tail_frames(self, num_labelled: int, rate_hz: float) -> int | None:
        """Frames after the first `num_labelled` that labelling them needs, or None when the drive
        never gets there (the rule is in frames_with_tail's docstring)."""
        t_last = (num_labelled - 1) / rate_hz
        s_last = float(self.timing.s_at(t_last))
        times = t_last + np.arange(1, int(self.timing.duration_s * rate_hz)) / rate_hz
        s_future = self.timing.s_at(times)
        ok = (times >= t_last + self.contract.horizon_s - 1e-6) & (s_future >= s_last + TARGET_POINT_DISTANCE_M + 1.0)
        return int(np.argmax(ok)) + 1 if ok.any() else None

    def frames_with_tail(self, num_labelled: int, rate_hz: float) -> int:
        """Frames to write so that a loader can label the first `num_labelled` from later frames:
        the last labelled frame needs poses one horizon later and the route one target-point
        distance ahead."""
        tail = self._tail_frames(num_labelled, rate_hz)
        if tail is None:
            raise RuntimeError(
                f"synthetic drive {self.seed}: {num_labelled} frames at {rate_hz:g} Hz cannot all be labelled (the drive "
                f"ends at {self.timing.duration_s:.1f} s, {float(self.timing.s_at(self.timing.duration_s)):.0f} m along "
                "its route, before the last one's horizon and target point); label labellable_frames() of them"
            )
        return num_labelled + tail

    def labellable_frames(self, num_labelled: int, rate_hz: float) -> int:
        """How many of the first `num_labelled` frames can be labelled (0 to num_labelled): all of
        them unless the drive ended early, e.g. an expert that stood blocked until the judge ended
        its route. Earlier frames have more drive after them, so the count is found by bisection."""
        if self._tail_frames(num_labelled, rate_hz) is not None:
            return num_labelled
        low, high = 0, num_labelled  # frames low can be labelled (0 trivially), high cannot
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if self._tail_frames(middle, rate_hz) is not None else (low, middle)
        return low

    def frame(self, index: int, rate_hz: float) -> SyntheticFrame:
        contract = self.contract
        time_s = index / rate_hz
        s_now = float(self.timing.s_at(time_s))
        position, yaw = self.pose_at_time(time_s)
        waypoints = self.waypoints_at(time_s, yaw)
        route_step = self.route_step(index, rate_hz)
        _, in_junction = self.route.command_at(s_now)
        road_option = COMMAND_TO_ROAD_OPTION[route_step.command]
        frame_rng = np.random.default_rng((*self.seed, 4, C.DOMAINS.index(self.domain), index))
        dynamic = self.dynamic_boxes(time_s)
        images = {
            name: self.renderer.render(camera, position, yaw, frame_rng, dynamic)
            for name, camera in self.cameras.items()
        }
        return SyntheticFrame(
            index=index,
            timestamp_s=time_s,
            domain=self.domain,
            image_rgb=images.pop("CAM_F0"),
            lidar_points_ego=self.renderer.lidar(position, yaw, frame_rng, dynamic) if self.lidar else None,
            pose_world=(float(position[0]), float(position[1]), yaw),
            speed_mps=self.timing.speed_at(time_s),
            route_world=self.route_world_xy,
            target_point_ego=route_step.target_point_ego,
            command=route_step.command,
            road_option=road_option,
            waypoints_ego=waypoints,
            steer_class=int(C.steer_class_from_waypoints(waypoints, contract)),
            in_junction=in_junction,
            side_images=images,
            traffic=self.frame_traffic(time_s),
            waypoints_from_expert=self.waypoints_from_expert,
        )

    def pose_at_time(self, time_s: float) -> tuple[np.ndarray, float]:
        """The ego's pose (position (2,), yaw) at `time_s`: on its path at its progress then."""
        position, yaw = self.pose_at_s(float(self.timing.s_at(time_s)))
        return position, float(yaw)

    def waypoints_at(self, time_s: float, yaw: float) -> np.ndarray:
        """The waypoint labels (num_waypoints, 2) of the frame at `time_s` (ego yaw `yaw`): the
        driven future, exact from the continuous trajectory."""
        times = time_s + np.concatenate([[0.0], self.contract.waypoint_times_s])
        future_xy, _ = self.pose_at_s(self.timing.s_at(times))
        return C.future_waypoints_from_poses(times, future_xy, 0, yaw, self.contract)

    def pose_at_s(self, s_m: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """The ego's pose (position (..., 2), yaw (...)) at progress s along its path."""
        return self.route.pose_at_s(s_m)

    def dynamic_boxes(self, time_s: float) -> Boxes | None:
        """Moving things at `time_s` (none in a drive without traffic)."""
        return None

    def frame_traffic(self, time_s: float) -> FrameTraffic | None:
        """The traffic labels at `time_s` (None in a drive without traffic)."""
        return None

    def route_step(self, index: int, rate_hz: float) -> RouteStep:
        """The driver's RouteStep (target point in the ego frame, command) at frame `index` of the
        drive at `rate_hz`: the planner stepped through frames 0 .. index in order (cached)."""
        if rate_hz not in self._route_steps:
            planner = RoutePlanner()
            planner.set_dense_route(self.route_world_xy)
            self._route_steps[rate_hz] = (planner, [])
        planner, steps = self._route_steps[rate_hz]
        while len(steps) <= index:
            position, yaw = self.pose_at_time(len(steps) / rate_hz)
            steps.append(planner.step(position, yaw))
        return steps[index]

    def augmented_view(self, index: int, rate_hz: float) -> tuple[np.ndarray, float, float]:
        """CARLA Garage's augmented camera for frame `index`: the front camera of a vehicle shifted
        sideways by `translation_m` (CARLA y, right) and turned by `rotation_deg` (CARLA yaw, right),
        drawn as Garage draws them (uniform in +-AUGMENTATION_TRANSLATION_M, +-AUGMENTATION_ROTATION_DEG),
        deterministic per (seed, frame). Returns (image_rgb (H, W, 3) uint8, translation_m,
        rotation_deg); the loader moves the labels into that camera's frame (`to_augmented_view`)."""
        from min2real.data.carla_garage import augmented_view_pose

        rng = np.random.default_rng((*self.seed, 5, C.DOMAINS.index(self.domain), index))
        translation_m = float(rng.uniform(-AUGMENTATION_TRANSLATION_M, AUGMENTATION_TRANSLATION_M))
        rotation_deg = float(rng.uniform(-AUGMENTATION_ROTATION_DEG, AUGMENTATION_ROTATION_DEG))
        position, yaw = self.pose_at_time(index / rate_hz)
        origin_ego, yaw_offset = augmented_view_pose(translation_m, rotation_deg)
        cos_yaw, sin_yaw = np.cos(float(yaw)), np.sin(float(yaw))
        shifted = position + np.array(
            [cos_yaw * origin_ego[0] - sin_yaw * origin_ego[1], sin_yaw * origin_ego[0] + cos_yaw * origin_ego[1]]
        )
        image = self.renderer.render(
            self.cameras["CAM_F0"], shifted, float(yaw) + yaw_offset, rng, self.dynamic_boxes(index / rate_hz)
        )
        return image, translation_m, rotation_deg


def generate_drive(
    seed: int | Sequence[int],
    num_frames: int,
    domain: str = SIM,
    image_size: tuple[int, int] | None = None,
    rate_hz: float | None = None,
    contract: C.Contract = C.DEFAULT_CONTRACT,
    cameras: Sequence[str] = ("CAM_F0",),
    lidar: bool | None = None,
) -> Iterator[SyntheticFrame]:
    """Yield `num_frames` frames of one drive (all exactly labelled), at `rate_hz` (default 4 Hz
    sim / 2 Hz real) and `image_size` (width, height; default 1024 x 384 sim / 640 x 360 real).
    The same seed gives the same route, timing and labels in both domains."""
    rate_hz = rate_hz or (CARLA_RATE_HZ if domain == SIM else NAVSIM_RATE_HZ)
    image_size = image_size or (DEFAULT_SIM_IMAGE_SIZE if domain == SIM else DEFAULT_REAL_IMAGE_SIZE)
    drive = SyntheticDrive(seed, num_frames / rate_hz, domain, image_size, contract, cameras, lidar)
    for index in range(num_frames):
        yield drive.frame(index, rate_hz)
