"""A labelled drive through traffic: the expert drove the scenario closed loop (recorded tick by tick
by `min2real.evaluation.closed_loop.record`), and frames are rendered from that recording.

The ego's progress along the route in time is the expert's, so it keeps its distance, yields,
and stops for red lights and pedestrians; its pose is the route's lane centre at that progress,
as in every synthetic drive, so the waypoint labels stay exact. Each frame shows the actors and
the lights as they were at that tick and carries the expert's target speed and brake, the next
light's state and the actors' boxes (`FrameTraffic`), which the writers turn into Garage
measurements and boxes and NAVSIM annotations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from min2real import contract as C
from min2real.data.synthetic.drive import NAVSIM_CAMERAS, FrameTraffic, SyntheticDrive
from min2real.data.synthetic.render import SIM, Boxes, make_camera, side_camera_yaw
from min2real.data.synthetic.scenario import Scenario


@dataclass
class TrafficRecording:
    """Per tick (T ticks of `tick_s`): the ego's route progress route_s_m and speed_mps, the
    expert's target_speed_mps and brake, the next light's state and distance, the boxes drawn
    (traffic + lights) and the actors (FrameTraffic's arrays, without the expert's fields)."""

    tick_s: float
    route_s_m: np.ndarray
    speed_mps: np.ndarray
    target_speed_mps: np.ndarray
    brake: np.ndarray
    light_state: list[str]
    light_distance_m: np.ndarray
    boxes: list[Boxes]
    actors: list[dict[str, np.ndarray]]
    driving_score: float
    # DAgger recordings (a learner drove): the visited pose (T, 3: x, y, yaw; world) and the
    # expert's waypoints from it (T, num_waypoints, 2; base_link). None: the expert drove on the
    # lane centre, and the labels are its driven future.
    pose_world: np.ndarray | None = None
    expert_waypoints_ego: np.ndarray | None = None

    @property
    def duration_s(self) -> float:
        return (len(self.route_s_m) - 1) * self.tick_s

    def tick_at(self, time_s: float) -> int:
        return int(np.clip(round(time_s / self.tick_s), 0, len(self.route_s_m) - 1))

    def s_at(self, time_s: np.ndarray | float) -> np.ndarray:
        times = self.tick_s * np.arange(len(self.route_s_m))
        return np.interp(np.asarray(time_s, dtype=np.float64), times, self.route_s_m)

    def speed_at(self, time_s: float) -> float:
        return float(self.speed_mps[self.tick_at(time_s)])


class TrafficDrive(SyntheticDrive):
    """A SyntheticDrive whose timing, moving boxes and traffic labels come from a recording."""

    def __init__(
        self,
        scenario: Scenario,
        recording: TrafficRecording,
        domain: str = SIM,
        image_size: tuple[int, int] = (1024, 384),
        contract: C.Contract = C.DEFAULT_CONTRACT,
        cameras: Sequence[str] = ("CAM_F0",),
        lidar: bool | None = None,
    ) -> None:
        if domain not in C.DOMAINS:
            raise ValueError(f"synthetic domain {domain!r} is not supported; expected one of {C.DOMAINS}")
        unknown = set(cameras) - set(NAVSIM_CAMERAS)
        if unknown or "CAM_F0" not in cameras:
            raise ValueError(f"synthetic cameras {tuple(cameras)} must include CAM_F0 and be among {NAVSIM_CAMERAS}")
        self.scenario = scenario
        self.recording = recording
        self.seed = scenario.seed
        self.domain = domain
        self.contract = contract
        self.lidar = (domain == SIM) if lidar is None else bool(lidar)
        self.route = scenario.route
        self.obstacle = scenario.obstacle
        self.condition = scenario.condition.name
        self.timing = recording
        self.route_world_xy = scenario.lane_pose_at(np.arange(0.0, scenario.route_s_m[-1], 1.0))[0]
        self._route_steps = {}
        self.renderer = scenario.renderer(domain)
        front = make_camera(image_size, contract)
        self.cameras = {"CAM_F0": front}
        if "CAM_L0" in cameras:
            self.cameras["CAM_L0"] = make_camera(image_size, contract, side_camera_yaw(front))
        if "CAM_R0" in cameras:
            self.cameras["CAM_R0"] = make_camera(image_size, contract, -side_camera_yaw(front))

    def pose_at_s(self, s_m: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        return self.scenario.lane_pose_at(s_m)

    def dynamic_boxes(self, time_s: float) -> Boxes | None:
        return self.recording.boxes[self.recording.tick_at(time_s)]

    def frame_traffic(self, time_s: float) -> FrameTraffic | None:
        rec, tick = self.recording, self.recording.tick_at(time_s)
        return FrameTraffic(
            float(rec.target_speed_mps[tick]),
            bool(rec.brake[tick]),
            rec.light_state[tick],
            float(rec.light_distance_m[tick]),
            **rec.actors[tick],
        )


class VisitedStateDrive(TrafficDrive):
    """A drive that a learner (or a mix of learner and expert) drove closed loop (`min2real dagger`):
    frames are rendered at the poses it visited, with the world as it was at that tick, and each is
    labelled with the expert's plan from that state (`recording.pose_world`,
    `recording.expert_waypoints_ego`, `recording.target_speed_mps` / `brake`), so every recorded
    frame is labelled and no tail of future frames is needed. The target point and command come
    from the route the driver was given (`scenario.route_xy`) and the visited poses."""

    waypoints_from_expert = True

    def __init__(
        self,
        scenario: Scenario,
        recording: TrafficRecording,
        domain: str = SIM,
        image_size: tuple[int, int] = (1024, 384),
        contract: C.Contract = C.DEFAULT_CONTRACT,
    ) -> None:
        if recording.pose_world is None or recording.expert_waypoints_ego is None:
            raise ValueError(
                "VisitedStateDrive needs a recording with pose_world and expert_waypoints_ego (a DAgger drive)"
            )
        expected = (len(recording.route_s_m), contract.num_waypoints, 2)
        if recording.expert_waypoints_ego.shape != expected:
            raise ValueError(
                f"recording expert_waypoints_ego has shape {recording.expert_waypoints_ego.shape}; expected {expected}"
            )
        super().__init__(scenario, recording, domain, image_size, contract)
        self.route_world_xy = np.asarray(scenario.route_xy, dtype=np.float64)

    def frames_with_tail(self, num_labelled: int, rate_hz: float) -> int:
        if abs(rate_hz * self.recording.tick_s - 1.0) > 1e-9 or num_labelled > len(self.recording.route_s_m):
            raise ValueError(
                f"a visited-state drive has {len(self.recording.route_s_m)} frames at {1 / self.recording.tick_s:g} Hz; "
                f"asked for {num_labelled} at {rate_hz:g} Hz"
            )
        return num_labelled

    def labellable_frames(self, num_labelled: int, rate_hz: float) -> int:
        return self.frames_with_tail(num_labelled, rate_hz)  # every visited state has its expert labels

    def pose_at_time(self, time_s: float) -> tuple[np.ndarray, float]:
        assert self.recording.pose_world is not None
        x, y, yaw = self.recording.pose_world[self.recording.tick_at(time_s)]
        return np.array([x, y], dtype=np.float64), float(yaw)

    def waypoints_at(self, time_s: float, yaw: float) -> np.ndarray:
        assert self.recording.expert_waypoints_ego is not None
        return self.recording.expert_waypoints_ego[self.recording.tick_at(time_s)].astype(np.float32)
