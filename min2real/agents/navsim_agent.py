"""NAVSIM agent (navhard_two_stage, EPDMS) over the ROS-free runtime.

Hydra target: `min2real.agents.navsim_agent.Min2RealNavsimAgent` (see docs/evaluation.md for
the agent YAML and the `run_pdm_score.py` command line). The agent loads the exported model
with `runtime.policy.load_policy` (domain "real": OpenScene images skip the V2R adapter) and
returns NAVSIM's `Trajectory`: 8 poses (x, y, heading) every 0.5 s in the ego frame.

Pure logic (tested without navsim): AgentInput -> FrameInputs (front camera or the TransFuser
left/front/right stitch, speed from ego_velocity, driving command from the one-hot of 4, LiDAR
zeroed as in the paper), and waypoints -> poses (resampled to the NAVSIM sampling, heading from
consecutive waypoints). NAVSIM's ego frame is nuPlan's rear axle, x forward, y left: REP 103.

`navsim` / `nuplan` are imported only when `Min2RealNavsimAgent` is accessed.
"""

from __future__ import annotations

import numpy as np

from min2real.agents import lazy_agent_class
from min2real.contract import COMMAND_UNKNOWN, COMMANDS, NO_ROUTE_TARGET_POINT_EGO, Contract, stitch_navsim_cameras
from min2real.runtime.types import FrameInputs

ENTRY_POINT = "Min2RealNavsimAgent"
NAVSIM_NUM_POSES = 8
NAVSIM_INTERVAL_S = 0.5
CURRENT_FRAME_INDEX = 3  # NAVSIM agents see 4 history frames (2 s at 2 Hz); the last is "now"
CAMERA_MODES = ("front", "stitch")
_CAMERA_FIELDS = ("cam_f0", "cam_l0", "cam_l1", "cam_l2", "cam_r0", "cam_r1", "cam_r2", "cam_b0")
# NAVSIM gives an agent no route, only the driving command (which the model also receives): the
# target point is the contract's NO_ROUTE_TARGET_POINT_EGO, the same point NAVSIM training
# samples carry by default (training.data.navsim, target_point="straight_ahead").
DEFAULT_TARGET_POINT_EGO = NO_ROUTE_TARGET_POINT_EGO


class AgentDependencyError(ImportError):
    """navsim / nuplan-devkit are not importable."""


def sensor_config_fields(camera_mode: str = "front", frame_index: int = CURRENT_FRAME_INDEX) -> dict:
    """Keyword arguments of navsim's SensorConfig: the cameras the mode needs at the current
    frame only (loading sensors dominates NAVSIM's runtime), no LiDAR (zeroed as in the paper)."""
    if camera_mode not in CAMERA_MODES:
        raise ValueError(f"NAVSIM camera mode {camera_mode!r} is not supported; expected one of {CAMERA_MODES}")
    needed = {"cam_f0"} | ({"cam_l0", "cam_r0"} if camera_mode == "stitch" else set())
    fields = {name: ([frame_index] if name in needed else []) for name in _CAMERA_FIELDS}
    fields["lidar_pc"] = []
    return fields


def stitch_front_cameras(left_rgb: np.ndarray, front_rgb: np.ndarray, right_rgb: np.ndarray) -> np.ndarray:
    """NAVSIM TransFuser's left | front | right panorama, exactly as the NAVSIM training samples
    build it (contract.stitch_navsim_cameras)."""
    for name, image in (("cam_l0", left_rgb), ("cam_f0", front_rgb), ("cam_r0", right_rgb)):
        if image is None or np.asarray(image).ndim != 3 or np.asarray(image).shape[2] != 3:
            shape = None if image is None else np.asarray(image).shape
            raise ValueError(
                f"NAVSIM {name} image has shape {shape}; expected (H, W, 3) uint8 RGB (is it in the sensor config?)"
            )
    return stitch_navsim_cameras(np.asarray(left_rgb), np.asarray(front_rgb), np.asarray(right_rgb))


def command_from_one_hot(driving_command) -> int | None:
    """NAVSIM driving_command (4,) one-hot (left, forward, right, unknown) -> contract command
    index (same order, contract.COMMANDS), None when unknown or all zero."""
    one_hot = np.asarray(driving_command, dtype=np.float64).reshape(-1)
    if one_hot.shape[0] != len(COMMANDS):
        raise ValueError(
            f"NAVSIM driving_command has shape {one_hot.shape}; expected a one-hot of {len(COMMANDS)} {COMMANDS}"
        )
    if not one_hot.any():
        return None
    index = int(one_hot.argmax())
    return None if index == COMMAND_UNKNOWN else index


def frame_inputs_from_agent_input(
    agent_input,
    camera_mode: str = "front",
    target_point_ego: tuple[float, float] = DEFAULT_TARGET_POINT_EGO,
) -> FrameInputs:
    """navsim AgentInput (ego_statuses, cameras, lidars; the last entry is the current frame) ->
    FrameInputs. Camera images are (H, W, 3) uint8 RGB; ego_velocity (2,) m/s in the ego frame."""
    if not agent_input.ego_statuses or not agent_input.cameras:
        raise ValueError("NAVSIM agent input has no ego status or cameras; expected the history frames")
    status = agent_input.ego_statuses[-1]
    cameras = agent_input.cameras[-1]
    if camera_mode == "front":
        image = cameras.cam_f0.image
        if image is None:
            raise ValueError("NAVSIM cam_f0 image was not loaded; the agent's sensor config must request cam_f0")
        image_rgb = np.ascontiguousarray(image)
    elif camera_mode == "stitch":
        image_rgb = stitch_front_cameras(cameras.cam_l0.image, cameras.cam_f0.image, cameras.cam_r0.image)
    else:
        raise ValueError(f"NAVSIM camera mode {camera_mode!r} is not supported; expected one of {CAMERA_MODES}")
    if image_rgb.dtype != np.uint8:
        image_rgb = np.clip(image_rgb, 0, 255).astype(np.uint8)
    velocity = np.asarray(status.ego_velocity, dtype=np.float64).reshape(-1)
    return FrameInputs(
        image_rgb=image_rgb,
        lidar_points_ego=None,  # the real stream has no LiDAR in the paper: all-zero BEV
        speed_mps=float(np.hypot(velocity[0], velocity[1])),
        target_point_ego=np.asarray(target_point_ego, dtype=np.float32),
        command=command_from_one_hot(status.driving_command),
    )


def waypoints_to_poses(
    waypoints_ego: np.ndarray,
    contract: Contract,
    num_poses: int = NAVSIM_NUM_POSES,
    interval_s: float = NAVSIM_INTERVAL_S,
    min_segment_m: float = 0.05,
) -> np.ndarray:
    """(T, 2) REP 103 waypoints at contract.waypoint_times_s -> (num_poses, 3) float32 poses
    (x, y, heading rad, counter-clockwise = left) at interval_s, 2 * interval_s, ...

    Positions are interpolated along time from the ego origin at t = 0 (exact when the spacings
    agree, as for the default 8 x 0.5 s contract). Heading i is the direction of the segment
    from pose i - 1 (the origin for i = 0) to pose i; a segment shorter than `min_segment_m`
    (standing still) keeps the previous heading, starting from 0 (the current heading).
    """
    waypoints = np.asarray(waypoints_ego, dtype=np.float64)
    if waypoints.ndim != 2 or waypoints.shape != (contract.num_waypoints, 2) or not np.isfinite(waypoints).all():
        raise ValueError(
            f"waypoints have shape {waypoints.shape}; expected finite ({contract.num_waypoints}, 2) in the ego frame"
        )
    times = np.concatenate([[0.0], contract.waypoint_times_s])
    path = np.vstack([np.zeros((1, 2)), waypoints])
    wanted = interval_s * np.arange(1, num_poses + 1)
    if wanted[-1] > times[-1] + 1e-9:
        raise ValueError(
            f"the model predicts {times[-1]:.2f} s of waypoints but NAVSIM needs {wanted[-1]:.2f} s ({num_poses} x {interval_s} s)"
        )
    xy = np.stack([np.interp(wanted, times, path[:, 0]), np.interp(wanted, times, path[:, 1])], axis=-1)
    segments = np.diff(np.vstack([np.zeros((1, 2)), xy]), axis=0)
    heading = np.arctan2(segments[:, 1], segments[:, 0])
    moving = np.linalg.norm(segments, axis=1) >= min_segment_m
    # Forward-fill the heading over standing segments (index of the last moving segment so far).
    last_moving = np.maximum.accumulate(np.where(moving, np.arange(num_poses), -1))
    heading = np.where(last_moving >= 0, heading[np.maximum(last_moving, 0)], 0.0)
    return np.concatenate([xy, heading[:, None]], axis=1).astype(np.float32)


def _import_navsim():
    try:
        from navsim.agents.abstract_agent import AbstractAgent
        from navsim.common.dataclasses import SensorConfig, Trajectory
        from nuplan.planning.simulation.trajectory.trajectory_sampling import TrajectorySampling
    except ImportError as error:
        raise AgentDependencyError(
            f"the NAVSIM agent needs the `navsim` devkit (v2, with nuplan-devkit) installed ({error}); "
            "see docs/evaluation.md"
        ) from error
    return AbstractAgent, SensorConfig, Trajectory, TrajectorySampling


def _build_agent_class():
    AbstractAgent, SensorConfig, Trajectory, TrajectorySampling = _import_navsim()

    class Min2RealNavsimAgent(AbstractAgent):
        """Min2Real exported model as a NAVSIM agent (no training hooks: NAVSIM only scores it)."""

        def __init__(
            self,
            model_path: str,
            trajectory_sampling=None,
            backend: str = "auto",
            domain: str = "real",
            camera_mode: str = "front",
            target_point_ego: tuple[float, float] = DEFAULT_TARGET_POINT_EGO,
        ):
            sampling = trajectory_sampling or TrajectorySampling(
                time_horizon=NAVSIM_NUM_POSES * NAVSIM_INTERVAL_S, interval_length=NAVSIM_INTERVAL_S
            )
            super().__init__(trajectory_sampling=sampling, requires_scene=False)
            if camera_mode not in CAMERA_MODES:
                raise ValueError(f"NAVSIM camera mode {camera_mode!r} is not supported; expected one of {CAMERA_MODES}")
            self._model_path = str(model_path)
            self._backend = backend
            self._domain = domain
            self._camera_mode = camera_mode
            self._target_point_ego = tuple(float(v) for v in target_point_ego)
            self._policy = None

        def name(self) -> str:
            return self.__class__.__name__

        def initialize(self) -> None:
            from min2real.runtime.policy import load_policy

            self._policy = load_policy(self._model_path, domain=self._domain, backend=self._backend)

        def get_sensor_config(self):
            return SensorConfig(**sensor_config_fields(self._camera_mode))

        def compute_trajectory(self, agent_input):
            if self._policy is None:
                self.initialize()
            frame = frame_inputs_from_agent_input(agent_input, self._camera_mode, self._target_point_ego)
            prediction = self._policy.predict(frame)
            sampling = self._trajectory_sampling
            poses = waypoints_to_poses(
                prediction.waypoints_ego, self._policy.contract, sampling.num_poses, sampling.interval_length
            )
            return Trajectory(poses, sampling)

    Min2RealNavsimAgent.__module__ = __name__
    return Min2RealNavsimAgent


__getattr__ = lazy_agent_class(globals(), ENTRY_POINT, _build_agent_class)
