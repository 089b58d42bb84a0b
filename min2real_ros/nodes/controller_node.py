"""Controller node: waypoints (nav_msgs/Path in the vehicle frame) + speed -> vehicle command.

    ros2 run min2real controller_node --ros-args --params-file config/controller_node.param.yaml \\
        -r ~/input/waypoints:=/min2real_driver/output/waypoints -r ~/output/control:=/carla/ego_vehicle/vehicle_control_cmd

Runs CARLA Garage's PID controller (runtime.controller.WaypointController, constants from
parameters) at `control_rate_hz` on the latest waypoints and speed.

Inputs (relative, remapped at launch): ~/input/waypoints nav_msgs/Path (the driver's
~/output/waypoints), ~/input/speed std_msgs/Float32 m/s (speed_source speedometer) or
~/input/odometry nav_msgs/Odometry (speed_source odometry), and ~/input/target_speed
geometry_msgs/Vector3Stamped (the driver's ~/output/target_speed, published by models with the
target-speed head), its x paired with the Path by stamp (Watchdog.target_speed_mps). By default
(`speed_from` waypoints_head_stop) the waypoints' spacing sets the speed and the car comes to a
full stop once each time the head starts saying stop (stop lines need one); with `head` the
head's speed is the speed to drive, as Garage's TransFuser++ does; with `waypoints`, and for any
model without the head, the waypoints' spacing alone.
Output ~/output/control, one of (`output_type`; min2real.runtime.vehicle_commands defines each):
  carla      carla_msgs/CarlaEgoVehicleControl (steer in [-1, 1], positive = RIGHT; needs carla_msgs)
  ackermann  ackermann_msgs/AckermannDrive (unstamped, as carla_ackermann_control subscribes it:
             steering_angle = wheel angle rad, positive = LEFT; speed = target speed m/s)
  twist      geometry_msgs/Twist as carla_twist_to_control reads it (linear.x = 10 x throttle,
             angular.z = wheel angle rad, positive = LEFT; all-zero = full brake)
A selected type whose package is not installed is a clear error at start.

Watchdog (runtime.controller.Watchdog): a Path stamped more than `future_stamp_tolerance_s` ahead
of the node clock is refused; the node brakes fully (and resets the PID windows) when the newest
waypoints are older than `waypoint_timeout_s` by their stamp (the camera stamp, so pipeline
latency counts) or by their receipt time, whatever their stamps say, or when the speed is older
than `speed_timeout_s`.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Vector3Stamped
from nav_msgs.msg import Odometry, Path
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from std_msgs.msg import Float32

from min2real.runtime.controller import (
    FULL_BRAKE,
    SPEED_FROM,
    ControllerConfig,
    ControlStep,
    PIDGains,
    Watchdog,
    WatchdogLimits,
    WaypointController,
)
from min2real.runtime.types import VehicleControl
from min2real.runtime.vehicle_commands import ackermann_from_control, carla_control_fields, twist_from_control
from min2real_ros import qos
from min2real_ros.conversions import MessageError, odometry_speed_mps, path_to_xy, stamp_to_seconds
from min2real_ros.parameters import ParameterSpec as P
from min2real_ros.parameters import declare, refusal

NODE_NAME = "min2real_controller"
OUTPUT_TYPES = ("carla", "ackermann", "twist")
GAIN_RANGE = {"low": 0.0, "high": 100.0}
WINDOW_RANGE = {"low": 1, "high": 1000}

PARAMETERS: dict[str, P] = {
    "waypoints_frame_id": P(
        "base_link", "frame the waypoints must be in (a Path in another frame is refused)", read_only=True
    ),
    "speed_source": P(
        "speedometer",
        "speedometer (~/input/speed std_msgs/Float32) | odometry (~/input/odometry twist.linear.x)",
        choices=("speedometer", "odometry"),
        read_only=True,
    ),
    "output_type": P(
        "carla",
        "~/output/control type: carla | ackermann | twist (runtime.vehicle_commands)",
        choices=OUTPUT_TYPES,
        read_only=True,
    ),
    "control_rate_hz": P(20.0, "control loop rate (CARLA Garage runs at 20 Hz)", low=0.1, high=1000.0, read_only=True),
    "waypoint_timeout_s": P(
        0.5, "watchdog: full brake when the waypoints are older than this (stamp or receipt)", low=1e-3, high=60.0
    ),
    "speed_timeout_s": P(0.5, "watchdog: full brake when the speed is older than this", low=1e-3, high=60.0),
    "future_stamp_tolerance_s": P(
        0.1, "watchdog: refuse a Path (or odometry) stamped further ahead of the node clock", low=0.0, high=60.0
    ),
    "waypoint_dt_s": P(
        0.5, "spacing of the waypoints in seconds (the model contract's waypoint_dt_s)", low=0.01, high=10.0
    ),
    "turn_kp": P(1.25, "turn PID (Garage)", **GAIN_RANGE),
    "turn_ki": P(0.75, "", **GAIN_RANGE),
    "turn_kd": P(0.3, "", **GAIN_RANGE),
    "turn_window": P(20, "", **WINDOW_RANGE),
    "speed_kp": P(5.0, "speed PID (Garage)", **GAIN_RANGE),
    "speed_ki": P(0.5, "", **GAIN_RANGE),
    "speed_kd": P(1.0, "", **GAIN_RANGE),
    "speed_window": P(20, "", **WINDOW_RANGE),
    "aim_distance_fast_m": P(3.0, "aim distance at desired speed >= aim_distance_threshold_mps", low=0.1, high=100.0),
    "aim_distance_slow_m": P(2.25, "aim distance below it", low=0.1, high=100.0),
    "aim_distance_threshold_mps": P(5.5, "", low=0.0, high=100.0),
    "brake_speed_mps": P(0.4, "brake when the desired speed is below this", low=0.0, high=100.0),
    "brake_ratio": P(1.1, "brake when speed > brake_ratio * desired speed", low=1.0, high=10.0),
    "clip_delta_mps": P(0.25, "speed error clip", low=0.0, high=100.0),
    "clip_throttle": P(0.75, "throttle clip", low=0.0, high=1.0),
    "speed_from": P(
        "waypoints_head_stop",
        "desired speed of a model with the target-speed head: waypoints_head_stop (the waypoints' spacing, and a "
        "full stop once each time ~/input/target_speed says stop) | head (Garage's rule on ~/input/target_speed) | "
        "waypoints (their spacing only)",
        choices=SPEED_FROM,
    ),
    "head_stop_standstill_mps": P(
        0.05, "waypoints_head_stop: below this speed the head's stop counts as made", low=0.001, high=0.999
    ),
    "max_steering_angle_deg": P(
        70.0, "ackermann/twist: wheel angle at |steer| = 1 (CARLA default vehicles: 70)", low=1.0, high=90.0
    ),
}


def controller_config_from_parameters(get: Any) -> ControllerConfig:
    """ControllerConfig from a parameter getter `get(name) -> value`."""
    return ControllerConfig(
        turn=PIDGains(float(get("turn_kp")), float(get("turn_ki")), float(get("turn_kd")), int(get("turn_window"))),
        speed=PIDGains(
            float(get("speed_kp")), float(get("speed_ki")), float(get("speed_kd")), int(get("speed_window"))
        ),
        aim_distance_fast_m=float(get("aim_distance_fast_m")),
        aim_distance_slow_m=float(get("aim_distance_slow_m")),
        aim_distance_threshold_mps=float(get("aim_distance_threshold_mps")),
        brake_speed_mps=float(get("brake_speed_mps")),
        brake_ratio=float(get("brake_ratio")),
        clip_delta_mps=float(get("clip_delta_mps")),
        clip_throttle=float(get("clip_throttle")),
        waypoint_dt_s=float(get("waypoint_dt_s")),
        speed_from=str(get("speed_from")),
        head_stop_standstill_mps=float(get("head_stop_standstill_mps")),
    )


def watchdog_limits_from_parameters(get: Any) -> WatchdogLimits:
    return WatchdogLimits(
        float(get("waypoint_timeout_s")), float(get("speed_timeout_s")), float(get("future_stamp_tolerance_s"))
    )


CARLA_MSGS_HINT = (
    "carla_msgs is not in the Humble/Jazzy distributions (no ros-<distro>-carla-msgs package): build it "
    "from source in your workspace (git clone https://github.com/carla-simulator/ros-carla-msgs into src/, "
    "colcon build --packages-select carla_msgs) or run the CARLA ROS bridge container that ships it "
    "(docs/deployment.md, 'CARLA ROS bridge on Humble/Jazzy'), source it"
)


def import_output_type(output_type: str) -> Any:
    """The ROS message class for `output_type`, or a clear error naming the missing package."""
    if output_type == "carla":
        try:
            from carla_msgs.msg import CarlaEgoVehicleControl
        except ImportError as error:
            raise RuntimeError(
                "output_type 'carla' needs the ROS package carla_msgs (CarlaEgoVehicleControl), which is not "
                f"importable. {CARLA_MSGS_HINT}; or set output_type to 'ackermann' or 'twist'"
            ) from error
        return CarlaEgoVehicleControl
    if output_type == "ackermann":
        try:
            from ackermann_msgs.msg import AckermannDrive
        except ImportError as error:
            raise RuntimeError(
                "output_type 'ackermann' needs the ROS package ackermann_msgs, which is not installed: "
                "install ros-<distro>-ackermann-msgs and source it, or set output_type to 'twist'"
            ) from error
        return AckermannDrive
    if output_type == "twist":
        from geometry_msgs.msg import Twist

        return Twist
    raise ValueError(f"parameter output_type={output_type!r}; expected one of {OUTPUT_TYPES}")


class ControllerNode(Node):
    """Waypoints + speed -> PID -> vehicle command, with a stale- and future-input watchdog."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare(self, PARAMETERS)
        self._values = {name: self.get_parameter(name).value for name in PARAMETERS}
        get = self._values.__getitem__
        self.controller = WaypointController(controller_config_from_parameters(get))
        self.watchdog = Watchdog(watchdog_limits_from_parameters(get))
        self.output_type = str(get("output_type"))
        self._message_type = import_output_type(self.output_type)
        self._max_steer_rad = math.radians(float(get("max_steering_angle_deg")))
        self._waypoints_frame_id = str(get("waypoints_frame_id")).strip("/")
        self._lock = threading.Lock()
        self.last_control: VehicleControl = FULL_BRAKE
        self.last_step: ControlStep | None = None
        self.watchdog_reason: str | None = "no waypoints yet"
        self.malformed = 0
        self.refused_future = 0
        self.last_refusal: str | None = None
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.create_subscription(Path, "~/input/waypoints", self._on_waypoints, qos.reliable_qos(1))
        # The target-speed head's speed (driver ~/output/target_speed; models without the head publish none).
        self.create_subscription(Vector3Stamped, "~/input/target_speed", self._on_target_speed, qos.reliable_qos(1))
        if str(get("speed_source")) == "speedometer":
            self.create_subscription(Float32, "~/input/speed", self._on_speed, qos_profile_sensor_data)
        else:
            self.create_subscription(Odometry, "~/input/odometry", self._on_odometry, qos_profile_sensor_data)
        self._publisher = self.create_publisher(self._message_type, "~/output/control", 1)
        self.output_topic = self._publisher.topic_name
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0 / float(get("control_rate_hz")), self._control_cycle)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"publishing {self._message_type.__name__} on {self.output_topic}")

    def _on_set_parameters(self, parameters: list) -> SetParametersResult:
        reason = refusal(PARAMETERS, parameters)
        values = dict(self._values)
        values.update({p.name: p.value for p in parameters if p.name in PARAMETERS})
        if reason is None:
            try:
                config = controller_config_from_parameters(values.__getitem__)
                limits = watchdog_limits_from_parameters(values.__getitem__)
            except ValueError as error:
                reason = str(error)
        if reason is not None:
            self.get_logger().warning(f"parameter change refused: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        with self._lock:
            self._values = values
            if config != self.controller.config:
                self.controller = WaypointController(config)  # new gains start with empty PID windows
            self.watchdog.limits = limits
            self._max_steer_rad = math.radians(float(values["max_steering_angle_deg"]))
        return SetParametersResult(successful=True)

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _refuse(self, what: str, reason: str) -> None:
        self.last_refusal = reason
        self.get_logger().warning(f"refused {what}: {reason}", throttle_duration_sec=2.0)

    def _on_waypoints(self, msg: Path) -> None:
        try:
            frame = msg.header.frame_id.strip("/")
            if frame != self._waypoints_frame_id:
                # A route or a map-frame path here would be steered at as if it were ego-relative.
                raise MessageError(
                    f"waypoints Path is in frame {msg.header.frame_id!r}; expected "
                    f"{self._waypoints_frame_id!r} (the vehicle frame the driver publishes in)"
                )
            waypoints = path_to_xy(msg, name="waypoints")
        except MessageError as error:
            self.malformed += 1
            self._refuse("waypoints", str(error))
            return
        with self._lock:
            reason = self.watchdog.offer_waypoints(waypoints, stamp_to_seconds(msg.header.stamp), self._now_s())
        if reason is not None:
            self.refused_future += 1
            self._refuse("waypoints", reason)

    def _on_target_speed(self, msg: Vector3Stamped) -> None:
        with self._lock:
            reason = self.watchdog.offer_target_speed(
                float(msg.vector.x), stamp_to_seconds(msg.header.stamp), self._now_s()
            )
        if reason is not None:
            self.malformed += 1
            self._refuse("target speed", reason)

    def _on_speed(self, msg: Float32) -> None:
        if not math.isfinite(msg.data):
            self.malformed += 1
            return
        now_s = self._now_s()  # std_msgs/Float32 has no stamp: its age is the receipt time
        with self._lock:
            self.watchdog.offer_speed(float(msg.data), now_s, now_s)

    def _on_odometry(self, msg: Odometry) -> None:
        try:
            speed = odometry_speed_mps(msg)
        except MessageError:
            self.malformed += 1
            return
        with self._lock:
            reason = self.watchdog.offer_speed(speed, stamp_to_seconds(msg.header.stamp), self._now_s())
        if reason is not None:
            self._refuse("odometry", reason)

    def _control_cycle(self) -> None:
        now_s = self._now_s()
        with self._lock:
            reason, waypoints, speed = self.watchdog.check(now_s)
            target_speed = self.watchdog.target_speed_mps()
            controller = self.controller
        step: ControlStep | None = None
        if reason is None:
            try:
                step = controller.compute(waypoints, speed, target_speed)
            except ValueError as error:
                reason = f"controller refused the input: {error}"
        if reason is not None or step is None:
            if self.watchdog_reason is None:
                self.get_logger().warning(f"full brake: {reason}", throttle_duration_sec=2.0)
            controller.reset()
            self.last_step = None
            self.last_control = FULL_BRAKE
        else:
            self.last_step = step
            self.last_control = step.control
        self.watchdog_reason = reason
        self._publisher.publish(self._command_message(step))

    def _command_message(self, step: ControlStep | None) -> Any:
        msg = self._message_type()
        if self.output_type == "carla":
            msg.header.stamp = self.get_clock().now().to_msg()
            for key, value in carla_control_fields(self.last_control).items():
                setattr(msg, key, value)
        elif self.output_type == "ackermann":
            speed = 0.0 if step is None else step.desired_speed_mps
            drive = ackermann_from_control(self.last_control, speed, self._max_steer_rad)
            msg.steering_angle, msg.speed = drive.steering_angle_rad, drive.speed_mps
            msg.acceleration, msg.jerk = drive.acceleration_mps2, drive.jerk_mps3
        else:
            msg.linear.x, msg.angular.z = twist_from_control(self.last_control, self._max_steer_rad)
        return msg

    def _publish_diagnostics(self) -> None:
        status = DiagnosticStatus(name=f"{self.get_name()}: controller", hardware_id=self.output_type)
        if self.watchdog_reason is None:
            status.level, status.message = DiagnosticStatus.OK, "following waypoints"
        else:
            status.level, status.message = DiagnosticStatus.ERROR, f"full brake: {self.watchdog_reason}"
        control = self.last_control
        status.values = [
            KeyValue(key=key, value=str(value))
            for key, value in {
                "steer": f"{control.steer:.3f}",
                "throttle": f"{control.throttle:.3f}",
                "brake": f"{control.brake:.3f}",
                "desired_speed_mps": "n/a" if self.last_step is None else f"{self.last_step.desired_speed_mps:.2f}",
                "output_topic": self.output_topic,
                "malformed_waypoints": self.malformed,
                "refused_future_stamps": self.refused_future,
                "last_refusal": self.last_refusal or "",
            }.items()
        ]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self._diagnostics.publish(array)


def main(args: list[str] | None = None) -> int:
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=args)
    try:
        node = ControllerNode()
    except (RuntimeError, ValueError) as error:
        rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {error}")
        rclpy.try_shutdown()
        return 1
    try:
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
