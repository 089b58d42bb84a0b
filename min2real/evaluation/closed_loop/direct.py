"""Direct mode: the driving stack called in this process, doing exactly what the nodes do.

A lock-step tick in ROS mode is: the simulator publishes odometry, speedometer (std_msgs/Float32),
LiDAR (PointCloud2 in the LiDAR frame) and the camera image; driver_node turns odometry + the
route (reduced to Garage's plan, `RoutePlanner.set_dense_route`) into a target point and a
command (runtime.route.RoutePlanner), moves the LiDAR points into base_link
(runtime.mounts.Mount), assembles the frame
(runtime.frame_assembly.FrameAssembler) and runs the policy; controller_node runs the Garage PID
(runtime.controller.WaypointController) on the Path and the speed and publishes a Twist
(runtime.vehicle_commands), which the simulator decodes into the vehicle's control.

`DriverMirror` and `ControllerMirror` make the same calls on the same values, including what the
messages do to them (the speed is a float32, the yaw goes through a quaternion, LiDAR points are
moved into the LiDAR frame and back in float32, the command through a Twist), so direct and ROS
mode drive the same trajectory on the same route. Tests pin that equality.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from min2real.contract import Contract, ContractError, yaw_from_quaternion_wxyz
from min2real.data.synthetic.render import LIDAR_HEIGHT_M
from min2real.evaluation.closed_loop.expert import ExpertParams, RouteExpert
from min2real.evaluation.closed_loop.simulator import ClosedLoopSimulator, Observation
from min2real.runtime.controller import FULL_BRAKE, ControllerConfig, WaypointController
from min2real.runtime.domain_monitor import ScoreSummary, monitor_for
from min2real.runtime.frame_assembly import CameraFrame, FrameAssembler, FreshnessLimits
from min2real.runtime.mounts import Mount
from min2real.runtime.recovery import CreepConfig, StuckCreep
from min2real.runtime.route import RoutePlanner
from min2real.runtime.speed_head import confidence_weighted_target_speed
from min2real.runtime.types import VehicleControl
from min2real.runtime.vehicle_commands import control_from_twist, twist_from_control

# The LiDAR sits LIDAR_HEIGHT_M above base_link (the renderer casts its rays from there), as
# CARLA Garage mounts it (0, 0, 2.5); the driver node's lidar_mount_* defaults say the same.
LIDAR_MOUNT_XYZ_M = (0.0, 0.0, float(LIDAR_HEIGHT_M))
MAX_STEER_ANGLE_DEG = 70.0  # the controller node's max_steering_angle_deg = the simulated vehicle's
ROUTE_MIN_DISTANCE_M, ROUTE_MAX_DISTANCE_M = 7.5, 50.0  # driver node defaults (CARLA Garage)


def lock_step_freshness(tick_s: float, use_lidar: bool) -> FreshnessLimits:
    """The driver's freshness limits in lock step: half a tick, so an input of the previous tick
    is never used for this tick's camera frame (the frame is refused and sent again instead)."""
    half = 0.5 * float(tick_s)
    return FreshnessLimits(
        max_image_age_s=half,
        max_lidar_skew_s=half,
        max_speed_age_s=half,
        max_target_age_s=half,
        require_lidar=use_lidar,
    )


def lidar_points_in_sensor_frame(points_ego: np.ndarray) -> np.ndarray:
    """(N, 4) base_link points -> (N, 4) float32 in the LiDAR frame (what the bridge publishes)."""
    points = np.asarray(points_ego, dtype=np.float32).copy()
    points[:, :3] -= np.asarray(LIDAR_MOUNT_XYZ_M, dtype=np.float32)
    return points


def yaw_through_quaternion(yaw_rad: float) -> float:
    """The yaw a node reads back from an Odometry quaternion (z = sin(yaw/2), w = cos(yaw/2))."""
    quaternion = np.array([math.cos(yaw_rad / 2.0), 0.0, 0.0, math.sin(yaw_rad / 2.0)])
    return float(yaw_from_quaternion_wxyz(quaternion))


@dataclass(frozen=True)
class TickOutput:
    """One tick of a stack: the decoded vehicle command (None: none arrived, lock-step timeout),
    the waypoints it followed ((T, 2) base_link) and the target point ((2,) base_link), if any."""

    control: VehicleControl | None
    waypoints_ego: np.ndarray | None = None
    target_point_ego: np.ndarray | None = None
    detail: str = ""


class Stack(Protocol):
    """A driving stack the episode loop drives: direct (this module) or ROS (min2real_ros.sim).
    `needs_sensors`: render camera (+ LiDAR) each tick; an optional `report() -> dict` adds the
    stack's own counters to the route's result."""

    needs_sensors: bool

    def start(self, sim: ClosedLoopSimulator) -> None: ...

    def control(self, observation: Observation) -> TickOutput: ...

    def close(self) -> None: ...


class ControllerMirror:
    """controller_node in lock step: Garage's PID on the Path + speedometer, out through a Twist."""

    def __init__(
        self, contract: Contract | None, config: ControllerConfig | None = None, creep: CreepConfig | None = None
    ) -> None:
        waypoint_dt = contract.waypoint_dt_s if contract is not None else ControllerConfig().waypoint_dt_s
        self.config = config or ControllerConfig(waypoint_dt_s=float(waypoint_dt))
        self.controller = WaypointController(self.config)
        self.max_steer_rad = math.radians(MAX_STEER_ANGLE_DEG)
        # Garage's creep when stuck (runtime.recovery); None: off, as in the controller node.
        self.creep = StuckCreep(creep) if creep is not None else None

    def command(
        self,
        waypoints_ego: np.ndarray,
        speed_mps: float,
        target_speed_mps: float | None = None,
        lidar_points_ego: np.ndarray | None = None,
        dt_s: float = 0.0,
    ) -> VehicleControl:
        """`target_speed_mps`: the driver's ~/output/target_speed x (models with the target-speed head);
        `lidar_points_ego` / `dt_s`: the creep's safety-box check and cycle time (when the creep is on)."""
        speed = float(np.float32(speed_mps))  # std_msgs/Float32
        try:
            waypoints = np.asarray(waypoints_ego, dtype=np.float64)
            control = self.controller.compute(waypoints, speed, target_speed_mps).control
        except ValueError:
            self.controller.reset()  # the node's watchdog: full brake, PID windows reset
            control = FULL_BRAKE
        if self.creep is not None:
            control = self.creep.apply(control, speed, dt_s, lidar_points_ego)
        linear_x, angular_z = twist_from_control(control, self.max_steer_rad)
        return control_from_twist(linear_x, angular_z, self.max_steer_rad)


class DriverMirror:
    """driver_node in lock step: route + odometry -> target point, frame assembly, the policy."""

    def __init__(self, policy: Any, tick_s: float, use_lidar: bool) -> None:
        self.policy = policy
        self.use_lidar = use_lidar
        self.assembler = FrameAssembler(lock_step_freshness(tick_s, use_lidar))
        self.planner = RoutePlanner(ROUTE_MIN_DISTANCE_M, ROUTE_MAX_DISTANCE_M)
        self.lidar_mount = Mount.from_xyz_rpy(*LIDAR_MOUNT_XYZ_M)
        metadata = getattr(policy, "metadata", None)
        self.monitor = monitor_for(metadata) if metadata is not None else None  # the node's defaults
        self.monitor_summary: ScoreSummary | None = None
        self.target_speed_mps: float | None = None  # what ~/output/target_speed carried for the last frame
        self.lidar_points_ego: np.ndarray | None = None  # the last frame's LiDAR in base_link (the creep's check)

    def reset(self, route_xy: np.ndarray) -> None:
        """The dense route as the driver receives it (reduced to Garage's plan, commands from its geometry)."""
        self.planner.set_dense_route(np.asarray(route_xy, dtype=np.float64))
        if self.monitor is not None:
            self.monitor.reset()
            self.monitor_summary = ScoreSummary()

    def predict(self, observation: Observation) -> tuple[np.ndarray | None, np.ndarray | None, str]:
        """(waypoints (T, 2) float32 base_link, target point (2,), "") or (None, target, reason)."""
        stamp = observation.time_s
        state = observation.state
        step = self.planner.step(state.xy, yaw_through_quaternion(state.yaw_rad))
        self.assembler.update_target(step.target_point_ego, stamp)
        self.assembler.update_command(step.command, stamp)  # the route's command (no command topic)
        self.assembler.update_speed(float(np.float32(state.speed_mps)), stamp)
        if self.use_lidar:
            if observation.lidar_points_ego is None:
                raise ValueError("the driver uses LiDAR but the observation has none (render it)")
            points = self.lidar_mount.transform_points(lidar_points_in_sensor_frame(observation.lidar_points_ego))
            self.assembler.update_lidar(points, stamp)
        if observation.image_rgb is None:
            raise ValueError("the driver needs the camera image but the observation has none (render it)")
        result = self.assembler.assemble(CameraFrame(observation.image_rgb, None, stamp), stamp)
        if result.frame is None:
            return None, step.target_point_ego, str(result.reason)
        try:
            prediction = self.policy.predict(result.frame)
        except ContractError as error:
            return None, step.target_point_ego, f"frame failed: {error}"
        if self.monitor is not None and self.monitor_summary is not None and prediction.ood_score is not None:
            reading = self.monitor.update(stamp, prediction.ood_score, prediction.domain_logit)
            self.monitor_summary.add(reading.ood_score, reading.level)
        waypoints = np.asarray(prediction.waypoints_ego)
        self.lidar_points_ego = result.frame.lidar_points_ego
        probs = getattr(prediction, "target_speed_probs", None)
        self.target_speed_mps = None if probs is None else confidence_weighted_target_speed(probs)
        return waypoints, result.frame.target_point_ego, ""


class DirectPolicyStack:
    """A model (runtime.policy.DrivingPolicy) + the controller, in this process."""

    needs_sensors = True

    def __init__(
        self,
        policy: Any,
        tick_s: float,
        use_lidar: bool,
        creep: CreepConfig | None = None,
        speed_from: str = ControllerConfig.speed_from,
    ) -> None:
        self.driver = DriverMirror(policy, tick_s, use_lidar)
        config = ControllerConfig(waypoint_dt_s=float(policy.contract.waypoint_dt_s), speed_from=speed_from)
        self.controller = ControllerMirror(policy.contract, config, creep=creep)
        self.tick_s = float(tick_s)

    def start(self, sim: ClosedLoopSimulator) -> None:
        self.driver.reset(sim.scenario.route_xy)

    def control(self, observation: Observation) -> TickOutput:
        waypoints, target, reason = self.driver.predict(observation)
        if waypoints is None:
            # The driver publishes nothing for this frame: in lock step no command comes.
            return TickOutput(None, None, target, f"driver: {reason}")
        driver = self.driver
        control = self.controller.command(
            waypoints, observation.state.speed_mps, driver.target_speed_mps, driver.lidar_points_ego, self.tick_s
        )
        return TickOutput(control, waypoints, target)

    def report(self) -> dict[str, Any]:
        """The route's domain-shift monitor summary (a graph with the monitor) and the creep's counters
        (when it is on); else nothing."""
        report: dict[str, Any] = {}
        summary = self.driver.monitor_summary
        if summary is not None:
            report["monitor"] = summary.summary()
        creep = self.controller.creep
        if creep is not None:
            report.update(creeps=creep.creeps, creep_held_by_obstacle=creep.blocked_by_obstacle)
        return report

    def close(self) -> None:
        return None


class ExpertStack:
    """The route-following expert's waypoints + the same controller, in this process."""

    needs_sensors = False

    def __init__(self, contract: Contract, params: ExpertParams | None = None) -> None:
        """params: the expert's (default ExpertParams(); yield_to_traffic=False: the old lane follower)."""
        self.contract = contract
        self.params = params
        self.controller = ControllerMirror(contract)
        self.expert: RouteExpert | None = None
        self.sim: ClosedLoopSimulator | None = None

    def start(self, sim: ClosedLoopSimulator) -> None:
        self.sim = sim
        self.expert = RouteExpert(
            sim.scenario, self.contract.num_waypoints, self.contract.waypoint_dt_s, self.params, sim.traffic
        )

    def waypoints(self, observation: Observation) -> np.ndarray:
        if self.expert is None or self.sim is None:
            raise RuntimeError("ExpertStack.start was not called")
        progress = self.sim.judge.position_s_m
        self.expert.update(self.sim.tick_s, progress, observation.state.speed_mps)
        return self.expert.waypoints_ego(observation.state, progress)

    def control(self, observation: Observation) -> TickOutput:
        waypoints = self.waypoints(observation)
        return TickOutput(self.controller.command(waypoints, observation.state.speed_mps), waypoints)

    def report(self) -> dict[str, Any]:
        """The traffic the expert met (results.json's per-route `stack`)."""
        if self.expert is None or self.sim is None or self.sim.traffic is None:
            return {}
        return {"interactions": self.expert.interaction_counts()}

    def close(self) -> None:
        return None
