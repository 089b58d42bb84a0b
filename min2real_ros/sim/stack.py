"""ROS mode: the real driver_node and controller_node, each in its own process, in lock step.

The nodes are started from their console scripts (`node_commands` is the one place that names
their parameters, topics and remappings) with use_sim_time, and this process is the only /clock.
One tick k of the simulator, like the CARLA ROS bridge with
synchronous_mode_wait_for_vehicle_control_command (the next tick only after this tick's command):

  1. /clock = sensor time s_k (LEAD before the controller's timer boundary B_k = START + k * tick)
  2. odometry + speedometer (+ LiDAR in the sim look), camera_info, then the camera image,
     all stamped s_k
  3. wait for the driver's Path stamped s_k. The driver's freshness limits are half a tick, so a
     frame assembled with an input of the previous tick is refused, never predicted; a refused
     (or lost) frame is published again, with this tick's odometry, speed and LiDAR, after
     max(frame_retry_min_s, 5 x the median Path latency) (idempotent: same stamps, same data)
  4. /clock = B_k + LAG: the controller's timer (control_rate_hz = 1 / tick, boundaries at
     multiples of the tick since it started at time 0) fires exactly once, on that Path
  5. wait for its Twist, decode it (runtime.vehicle_commands.control_from_twist), step the vehicle

No command within `command_timeout_s` (wall) ends the route with a command_timeout infraction.
A shadow copy of the controller and of the route planner checks every tick that the nodes used
this tick's Path, speed and odometry (`stats()`: mismatches must be 0; the equality test against
direct mode relies on it). The expert in ROS mode publishes its Path in the driver's place; only
the controller node runs then.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from min2real.contract import OUTPUT_TARGET_SPEED_LOGITS, Contract
from min2real.data.synthetic.render import PinholeCamera
from min2real.evaluation.closed_loop.direct import (
    LIDAR_MOUNT_XYZ_M,
    MAX_STEER_ANGLE_DEG,
    ROUTE_MAX_DISTANCE_M,
    ROUTE_MIN_DISTANCE_M,
    ControllerMirror,
    TickOutput,
    lidar_points_in_sensor_frame,
    lock_step_freshness,
    yaw_through_quaternion,
)
from min2real.evaluation.closed_loop.expert import RouteExpert
from min2real.evaluation.closed_loop.simulator import ClosedLoopSimulator, Observation
from min2real.runtime.controller import ControllerConfig
from min2real.runtime.domain_monitor import ScoreSummary
from min2real.runtime.route import RoutePlanner
from min2real.runtime.vehicle_commands import control_from_twist
from min2real_ros.replay.synth_bag import BridgeTopics
from min2real_ros.sim.bridge import BridgeSimNode

DRIVER_NODE_NAME = "min2real_driver"
CONTROLLER_NODE_NAME = "min2real_controller"


class LockStepError(RuntimeError):
    """ROS mode cannot run (a node does not start, the graph does not connect)."""


@dataclass(frozen=True)
class LockStepTiming:
    """Sim-time offsets (ns) around each tick's controller boundary and wall-clock waits (s)."""

    start_s: float = 10.0  # B_0; a multiple of the tick
    sensor_lead_ns: int = 2_000_000  # sensors stamped 2 ms before the boundary
    control_lag_ns: int = 1_000_000  # the control clock 1 ms after it
    settle_s: float = 0.003  # between the clock, the other sensors and the camera
    path_settle_s: float = 0.005  # between the driver's Path and the control clock
    frame_retry_min_s: float = 0.15  # a frame is sent again after max(this, 5 x the median Path latency)
    clock_retry_s: float = 1.0
    startup_timeout_s: float = 90.0


def _executable(name: str) -> str:
    """A console script of this install (next to the running interpreter first, then PATH)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise LockStepError(
            f"console script {name!r} not found next to {sys.executable} or on PATH; install the package "
            "(pip install -e . or colcon build) so driver_node and controller_node exist"
        )
    return found


def node_commands(
    topics: BridgeTopics,
    tick_s: float,
    contract: Contract,
    model: Path | None,
    backend: str,
    model_domain: str,
    use_lidar: bool,
    speed_from: str = ControllerConfig.speed_from,
) -> dict[str, list[str]]:
    """argv of each node process (the driver only with a model): the one place naming their
    parameters and remapping their ~/input/*, ~/output/* topics onto the bridge's (the launch
    files' own remappings, min2real_ros.launch_support)."""
    from min2real_ros.launch_support import carla_control_topic, carla_driver_remappings, controller_remappings

    freshness = lock_step_freshness(tick_s, use_lidar)
    rate_hz = 1.0 / tick_s

    def ros_args(node_name: str, remaps: list[tuple[str, str]], values: dict[str, Any]) -> list[str]:
        args = ["--ros-args", "-r", f"__node:={node_name}"]
        for name, target in remaps:
            args += ["-r", f"{name}:={target}"]
        for name, value in values.items():
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            args += ["-p", f"{name}:={text}"]
        return args

    controller_remaps = controller_remappings(
        DRIVER_NODE_NAME, topics.speedometer, topics.odometry, carla_control_topic(topics.role, "twist")
    )
    commands = {
        "controller": [_executable("controller_node")]
        + ros_args(
            CONTROLLER_NODE_NAME,
            controller_remaps,
            {
                "use_sim_time": True,
                "output_type": "twist",
                "control_rate_hz": rate_hz,
                "speed_source": "speedometer",
                "waypoint_dt_s": float(contract.waypoint_dt_s),
                "max_steering_angle_deg": MAX_STEER_ANGLE_DEG,
                "speed_from": speed_from,
            },
        )
    }
    if model is not None:
        commands["driver"] = [_executable("driver_node")] + ros_args(
            DRIVER_NODE_NAME,
            carla_driver_remappings(topics.role, topics.camera_id, topics.lidar_id),
            {
                "use_sim_time": True,
                "model_path": str(model),
                "backend": backend,
                "domain": model_domain,
                "use_lidar": use_lidar,
                "mount_source": "parameters",
                "lidar_mount_x": LIDAR_MOUNT_XYZ_M[0],
                "lidar_mount_y": LIDAR_MOUNT_XYZ_M[1],
                "lidar_mount_z": LIDAR_MOUNT_XYZ_M[2],
                "speed_source": "speedometer",
                "target_source": "route",
                "route_min_distance_m": ROUTE_MIN_DISTANCE_M,
                "route_max_distance_m": ROUTE_MAX_DISTANCE_M,
                "max_image_age_s": freshness.max_image_age_s,
                "max_lidar_skew_s": freshness.max_lidar_skew_s,
                "max_speed_age_s": freshness.max_speed_age_s,
                "max_target_age_s": freshness.max_target_age_s,
                "require_lidar": use_lidar,
                "expected_camera_rate_hz": rate_hz,
                "expected_lidar_rate_hz": rate_hz if use_lidar else 0.0,
                "expected_speed_rate_hz": rate_hz,
                "expected_target_rate_hz": rate_hz,
                "debug_markers": True,
                "autostart": True,
            },
        )
    return commands


class NodeProcesses:
    """The node processes of one route (started from their console scripts, logs to files)."""

    def __init__(self, commands: dict[str, list[str]], log_dir: Path, label: str) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        for name, argv in commands.items():
            log = log_dir / f"{label}_{name}.log"
            self.logs[name] = log
            with open(log, "wb") as handle:
                self.processes[name] = subprocess.Popen(
                    argv, stdout=handle, stderr=subprocess.STDOUT, env=os.environ.copy()
                )

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = self.logs[name].read_text(errors="replace")[-1500:]
                raise LockStepError(f"{name} node exited with code {process.returncode}; its log ends:\n{tail}")

    def stop(self, timeout_s: float = 10.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5.0)


@dataclass
class LockStepStats:
    frames_resent: int = 0
    clocks_resent: int = 0
    unexpected_commands: int = 0
    controller_mismatches: int = 0
    target_mismatches: int = 0
    targets_checked: int = 0
    target_speeds: int = 0  # frames whose ~/output/target_speed reached the shadow controller
    max_tick_wall_s: float = 0.0
    startup_s: float = 0.0
    # Wall seconds per tick, summed: publishing (clock, sensors, settles), waiting for the driver's
    # Path (inference included), waiting for the controller's command.
    publish_s: float = 0.0
    driver_s: float = 0.0
    controller_s: float = 0.0
    first_mismatch: str = ""
    ticks: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {key: (round(value, 3) if isinstance(value, float) else value) for key, value in self.__dict__.items()}


@dataclass
class RosStackFactory:
    """Makes one RosStack per route; owns the simulator's ROS node across routes."""

    model: Path | None
    backend: str
    model_domain: str
    contract: Contract
    use_lidar: bool
    tick_s: float
    camera: PinholeCamera | None
    command_timeout_s: float = 20.0
    log_dir: Path = Path("out/closed_loop_logs")
    # The controller node's speed_from; with a model that has the target-speed head the shadow
    # controller gets the driver's ~/output/target_speed of each frame as the node does
    # (model_has_speed_head None: read from the model's metadata).
    speed_from: str = ControllerConfig.speed_from
    model_has_speed_head: bool | None = None
    topics: BridgeTopics = field(default_factory=BridgeTopics)
    timing: LockStepTiming = field(default_factory=LockStepTiming)
    _bridge: BridgeSimNode | None = None

    def __post_init__(self) -> None:
        if abs(round(self.timing.start_s / self.tick_s) * self.tick_s - self.timing.start_s) > 1e-9:
            raise ValueError(f"lock-step start {self.timing.start_s} s is not a multiple of the tick {self.tick_s} s")
        if self.model_has_speed_head is None:
            self.model_has_speed_head = False
            if self.model is not None:
                from min2real.runtime.policy import load_policy

                policy = load_policy(str(self.model), backend=self.backend)
                self.model_has_speed_head = OUTPUT_TARGET_SPEED_LOGITS in policy.metadata.output_shapes
                policy.close()

    def bridge(self) -> BridgeSimNode:
        if self._bridge is None:
            from min2real_ros.launch_support import carla_control_topic

            self._bridge = BridgeSimNode(
                self.topics,
                f"/{DRIVER_NODE_NAME}/output/waypoints",
                f"/{DRIVER_NODE_NAME}/output/markers",
                carla_control_topic(self.topics.role, "twist"),
                expert=self.model is None,
                driver_domain_shift_topic=f"/{DRIVER_NODE_NAME}/output/domain_shift",
                driver_target_speed_topic=f"/{DRIVER_NODE_NAME}/output/target_speed"
                if self.model_has_speed_head
                else "",
            )
        return self._bridge

    def stack(self, spec: Any) -> RosStack:
        return RosStack(self, str(spec.name).split("/")[-1])

    def close(self) -> None:
        if self._bridge is not None:
            self._bridge.close()
            self._bridge = None


class RosStack:
    """One route through the real nodes (see the module docstring for the protocol)."""

    def __init__(self, factory: RosStackFactory, label: str) -> None:
        self.factory = factory
        self.label = label
        self.expert_mode = factory.model is None
        self.needs_sensors = not self.expert_mode
        self.bridge = factory.bridge()
        self.timing = factory.timing
        self.tick_ns = int(round(factory.tick_s * 1e9))
        self.start_ns = int(round(self.timing.start_s * 1e9))
        self.shadow_controller = ControllerMirror(
            factory.contract,
            ControllerConfig(waypoint_dt_s=float(factory.contract.waypoint_dt_s), speed_from=factory.speed_from),
        )
        self.shadow_planner = RoutePlanner(ROUTE_MIN_DISTANCE_M, ROUTE_MAX_DISTANCE_M)
        self.stats = LockStepStats()
        self.processes: NodeProcesses | None = None
        self.expert: RouteExpert | None = None
        self.sim: ClosedLoopSimulator | None = None
        self._pending_target_check: tuple[int, np.ndarray] | None = None
        self._latencies_s: list[float] = []  # camera published -> Path received, last 50 frames

    # ---- times ---------------------------------------------------------------------------------
    def sensor_ns(self, tick: int) -> int:
        return self.start_ns + tick * self.tick_ns - self.timing.sensor_lead_ns

    def control_ns(self, tick: int) -> int:
        return self.start_ns + tick * self.tick_ns + self.timing.control_lag_ns

    # ---- start / stop --------------------------------------------------------------------------
    def start(self, sim: ClosedLoopSimulator) -> None:
        started = time.monotonic()
        self.sim = sim
        factory = self.factory
        route_xy = sim.scenario.route_xy
        self.shadow_planner.set_dense_route(route_xy)
        if self.expert_mode:
            contract = factory.contract
            self.expert = RouteExpert(sim.scenario, contract.num_waypoints, contract.waypoint_dt_s, world=sim.traffic)
        # The route first (latched): a node that starts later still gets it.
        self.bridge.publish_route(route_xy, self.sensor_ns(0))
        self.bridge.clear_commands()
        commands = node_commands(
            factory.topics,
            factory.tick_s,
            factory.contract,
            factory.model,
            factory.backend,
            factory.model_domain,
            factory.use_lidar,
            factory.speed_from,
        )
        self.processes = NodeProcesses(commands, factory.log_dir, self.label)
        try:
            self._wait_for_graph()
            self._warm_up()
        except BaseException:
            self.close()
            raise
        self.bridge.take_domain_shift()  # the warm-up frames are not the route's
        self.stats.startup_s = time.monotonic() - started

    def _wait_for_graph(self) -> None:
        bridge = self.bridge
        deadline = time.monotonic() + self.timing.startup_timeout_s
        while time.monotonic() < deadline:
            assert self.processes is not None
            self.processes.check_alive()
            missing = []
            if bridge.publishers_on(bridge.command_topic) == 0:
                missing.append(f"controller output {bridge.command_topic}")
            if self.expert_mode:
                if bridge.subscribers("expert_waypoints") == 0:
                    missing.append("controller waypoints subscription")
                if bridge.subscribers("speedometer") == 0:
                    missing.append("controller speedometer subscription")
            else:
                if bridge.publishers_on(bridge.driver_waypoints_topic) == 0:
                    missing.append(f"driver output {bridge.driver_waypoints_topic}")
                names = ["camera", "speedometer", "odometry", "route"] + (["lidar"] if self.factory.use_lidar else [])
                missing += [f"driver subscription to {name}" for name in names if bridge.subscribers(name) == 0]
                if bridge.subscribers("speedometer") < 2:
                    missing.append("controller speedometer subscription")
            if not missing:
                self._check_alone()
                return
            time.sleep(0.05)
        raise LockStepError(
            f"the closed-loop ROS graph did not connect within {self.timing.startup_timeout_s} s: missing {missing}; "
            f"node logs in {self.factory.log_dir} (check ROS_DOMAIN_ID / scripts/ros_env.sh)"
        )

    def _check_alone(self) -> None:
        """This run's nodes must be the only ones on its topics: another graph on the same
        ROS_DOMAIN_ID (a second run, a test) would feed them its clock, Paths or commands."""
        bridge = self.bridge
        counts = {
            "/clock": bridge.publishers_on("/clock"),
            bridge.command_topic: bridge.publishers_on(bridge.command_topic),
        }
        counts[bridge.driver_waypoints_topic] = bridge.publishers_on(bridge.driver_waypoints_topic)
        crowded = {topic: count for topic, count in counts.items() if count > 1}
        if crowded:
            raise LockStepError(
                f"other publishers share this run's topics {crowded} on ROS_DOMAIN_ID "
                f"{os.environ.get('ROS_DOMAIN_ID', '0')}; run closed loop on a domain of its own "
                "(export ROS_DOMAIN_ID=<unused 1..101>, scripts/ros_env.sh picks one per shell)"
            )

    def _warm_up(self) -> None:
        """A first clock before tick 0: the controller's timer fires once (no waypoints yet: full
        brake, PID reset) and its next boundary becomes B_0; that command is dropped."""
        warm_ns = self.start_ns - self.tick_ns // 2
        deadline = time.monotonic() + self.timing.startup_timeout_s
        while time.monotonic() < deadline:
            self.bridge.publish_clock(warm_ns)
            if self.bridge.wait(lambda: len(self.bridge.commands) > 0, self.timing.clock_retry_s):
                time.sleep(0.1)
                self.bridge.clear_commands()
                return
            assert self.processes is not None
            self.processes.check_alive()
        raise LockStepError(
            f"the controller node sent no command for the warm-up clock within {self.timing.startup_timeout_s} s"
        )

    def close(self) -> None:
        if self.processes is not None:
            self.processes.stop()
            self.processes = None

    # ---- one tick ------------------------------------------------------------------------------
    def _publish_sensors(self, observation: Observation, stamp_ns: int) -> None:
        state = observation.state
        bridge = self.bridge
        bridge.publish_vehicle_state(stamp_ns, state.x_m, state.y_m, state.yaw_rad, state.speed_mps)
        if not self.expert_mode:
            if self.factory.use_lidar:
                if observation.lidar_points_ego is None:
                    raise ValueError("ROS mode publishes LiDAR but the observation has none")
                bridge.publish_lidar(stamp_ns, lidar_points_in_sensor_frame(observation.lidar_points_ego))
            if observation.image_rgb is None or self.factory.camera is None:
                raise ValueError("ROS mode publishes the camera but the observation has no image")
            time.sleep(self.timing.settle_s)
            bridge.publish_camera(stamp_ns, observation.image_rgb, self.factory.camera.intrinsics)

    def _check_target(self, stamp_ns: int, drop_earlier: bool = False) -> None:
        """The target point the driver used for frame `stamp_ns` (its debug marker) against the
        shadow route planner's, once the marker arrived."""
        pending = self._pending_target_check
        if pending is None or pending[0] != stamp_ns:
            return
        used = self.bridge.take_target(stamp_ns, drop_earlier)
        if used is None:
            return
        self._pending_target_check = None
        self.stats.targets_checked += 1
        if not np.array_equal(used, pending[1].astype(np.float64)):
            self.stats.target_mismatches += 1
            self.stats.first_mismatch = self.stats.first_mismatch or (
                f"tick {self.stats.ticks}: driver target {used.tolist()} != expected {pending[1].tolist()}"
            )

    def control(self, observation: Observation) -> TickOutput:
        started = time.monotonic()
        tick, bridge, timing = observation.tick, self.bridge, self.timing
        state = observation.state
        stamp_ns = self.sensor_ns(tick)
        deadline = started + self.factory.command_timeout_s
        expected_target = self.shadow_planner.step(state.xy, yaw_through_quaternion(state.yaw_rad)).target_point_ego
        if self._pending_target_check is not None:
            self._check_target(self._pending_target_check[0])

        bridge.publish_clock(stamp_ns)
        time.sleep(timing.settle_s)
        target_speed_mps: float | None = None
        if self.expert_mode:
            assert self.expert is not None and self.sim is not None
            progress = self.sim.judge.position_s_m
            self.expert.update(self.factory.tick_s, progress, state.speed_mps)
            waypoints = self.expert.waypoints_ego(state, progress).astype(np.float64)
            self._publish_sensors(observation, stamp_ns)
            bridge.publish_expert_waypoints(waypoints, stamp_ns)
            time.sleep(timing.path_settle_s)
        else:
            retry_s = max(timing.frame_retry_min_s, 5.0 * float(np.median(self._latencies_s or [0.0])))
            while True:
                sent = time.monotonic()
                self._publish_sensors(observation, stamp_ns)
                self.stats.publish_s += time.monotonic() - sent
                wait_s = min(retry_s, max(0.0, deadline - time.monotonic()))
                waited = time.monotonic()
                found = bridge.wait(lambda: stamp_ns in bridge.paths, wait_s)
                self.stats.driver_s += time.monotonic() - waited
                if found:
                    self._latencies_s.append(time.monotonic() - sent)
                    del self._latencies_s[:-50]
                    break
                if time.monotonic() >= deadline:
                    return TickOutput(None, None, expected_target, f"no driver Path for frame {stamp_ns} ns")
                assert self.processes is not None
                self.processes.check_alive()
                self.stats.frames_resent += 1
            waypoints = bridge.take_path(stamp_ns)
            if self.factory.model_has_speed_head:  # published with the Path, from the same frame
                bridge.wait(lambda: stamp_ns in bridge.target_speeds, max(0.0, deadline - time.monotonic()))
                target_speed_mps = bridge.take_target_speed(stamp_ns)
                self.stats.target_speeds += target_speed_mps is not None
            self._pending_target_check = (stamp_ns, expected_target)
            self._check_target(stamp_ns, drop_earlier=True)
            time.sleep(timing.path_settle_s)

        self.stats.unexpected_commands += bridge.clear_commands()
        control_started = time.monotonic()
        command = None
        while command is None:
            bridge.publish_clock(self.control_ns(tick))
            wait_s = min(timing.clock_retry_s, max(0.0, deadline - time.monotonic()))
            if bridge.wait(lambda: len(bridge.commands) > 0, wait_s):
                command = bridge.take_command()
            elif time.monotonic() >= deadline:
                return TickOutput(None, waypoints, expected_target, f"no controller command for tick {tick}")
            else:
                self.stats.clocks_resent += 1
        self.stats.controller_s += time.monotonic() - control_started
        control = control_from_twist(command[0], command[1], math.radians(MAX_STEER_ANGLE_DEG))
        expected = self.shadow_controller.command(waypoints, state.speed_mps, target_speed_mps)
        if expected != control:
            self.stats.controller_mismatches += 1
            self.stats.first_mismatch = self.stats.first_mismatch or (
                f"tick {tick}: controller sent {control}, expected {expected} from this tick's Path"
            )
        self.stats.ticks += 1
        self.stats.max_tick_wall_s = max(self.stats.max_tick_wall_s, time.monotonic() - started)
        return TickOutput(control, waypoints.astype(np.float32), expected_target)

    def report(self) -> dict[str, Any]:
        """The lock-step counters, and the route's domain-shift monitor summary (a monitor model)."""
        report = self.stats.as_dict()
        readings = self.bridge.take_domain_shift()
        if readings:
            report["monitor"] = ScoreSummary.of(readings).summary()
        return report
