"""Controller node: waypoints (nav_msgs/Path in base_link) + speed -> vehicle command.

`ros2 run min2real controller_node --ros-args --params-file config/controller_node.param.yaml`

Runs CARLA Garage's PID controller (runtime.controller.WaypointController, constants from
parameters) at `control_rate_hz` on the latest waypoints and speed, and publishes one of
(`output_type` parameter):
  carla      carla_msgs/CarlaEgoVehicleControl on /carla/<role_name>/vehicle_control_cmd
             (steer in [-1, 1], positive = RIGHT; needs the carla_msgs package)
  ackermann  ackermann_msgs/AckermannDrive (unstamped, as carla_ackermann_control subscribes it:
             steering_angle = wheel angle rad, positive = LEFT; speed = target speed m/s)
  twist      geometry_msgs/Twist as carla_twist_to_control reads it (linear.x = 10 x throttle,
             angular.z = wheel angle rad, positive = LEFT; all-zero = full brake)
(min2real.runtime.vehicle_commands defines each encoding.)
A selected type whose package is not installed is a clear error at start.

Watchdog: when the newest waypoints are older than `waypoint_timeout_s` (by their stamp, which
is the camera stamp, so pipeline latency counts) or the speed is older than `speed_timeout_s`,
the node commands a full brake (zero speed for ackermann/twist) and resets the PID windows.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import Odometry, Path
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import Float32

from min2real.runtime.controller import (
    FULL_BRAKE,
    ControllerConfig,
    ControlStep,
    PIDGains,
    WaypointController,
)
from min2real.runtime.types import VehicleControl
from min2real.runtime.vehicle_commands import ackermann_from_control, carla_control_fields, twist_from_control
from min2real_ros.conversions import MessageError, odometry_speed_mps, path_to_xy, stamp_to_seconds

NODE_NAME = "min2real_controller"

PARAMETERS: dict[str, tuple[Any, str]] = {
    "waypoints_topic": ("/min2real_driver/waypoints", "nav_msgs/Path in base_link from the driver node"),
    "waypoints_frame_id": ("base_link", "frame the waypoints must be in (a Path in another frame is rejected)"),
    "speed_source": ("speedometer", "speedometer (std_msgs/Float32) | odometry (twist.linear.x)"),
    "speed_topic": ("/carla/ego_vehicle/speedometer", "std_msgs/Float32 m/s"),
    "odometry_topic": ("/carla/ego_vehicle/odometry", "nav_msgs/Odometry"),
    "output_type": ("carla", "carla | ackermann | twist"),
    "role_name": ("ego_vehicle", "CARLA role: output on /carla/<role_name>/vehicle_control_cmd"),
    "output_topic": ("", "override the output topic (empty: the type's default)"),
    "control_rate_hz": (20.0, "control loop rate (CARLA Garage runs at 20 Hz)"),
    "waypoint_timeout_s": (0.5, "watchdog: full brake when the waypoints are older than this"),
    "speed_timeout_s": (0.5, "watchdog: full brake when the speed is older than this"),
    "waypoint_dt_s": (0.5, "spacing of the waypoints in seconds (the model contract's waypoint_dt_s)"),
    "turn_kp": (1.25, "turn PID (Garage)"),
    "turn_ki": (0.75, ""),
    "turn_kd": (0.3, ""),
    "turn_window": (20, ""),
    "speed_kp": (5.0, "speed PID (Garage)"),
    "speed_ki": (0.5, ""),
    "speed_kd": (1.0, ""),
    "speed_window": (20, ""),
    "aim_distance_fast_m": (3.0, "aim distance at desired speed >= aim_distance_threshold_mps"),
    "aim_distance_slow_m": (2.25, "aim distance below it"),
    "aim_distance_threshold_mps": (5.5, ""),
    "brake_speed_mps": (0.4, "brake when the desired speed is below this"),
    "brake_ratio": (1.1, "brake when speed > brake_ratio * desired speed"),
    "clip_delta_mps": (0.25, "speed error clip"),
    "clip_throttle": (0.75, "throttle clip"),
    "max_steering_angle_deg": (70.0, "ackermann/twist: wheel angle at |steer| = 1 (CARLA default vehicles: 70)"),
}

OUTPUT_TYPES = ("carla", "ackermann", "twist")


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
    )


def import_output_type(output_type: str) -> Any:
    """The ROS message class for `output_type`, or a clear error naming the missing package."""
    if output_type == "carla":
        try:
            from carla_msgs.msg import CarlaEgoVehicleControl
        except ImportError as error:
            raise RuntimeError(
                "output_type 'carla' needs the ROS package carla_msgs (CarlaEgoVehicleControl), which is not "
                "installed: build carla-simulator/ros-bridge (or install ros-<distro>-carla-msgs) and source it, "
                "or set output_type to 'ackermann' or 'twist'"
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
    """Waypoints + speed -> PID -> vehicle command, with a stale-input watchdog."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        get = lambda name: self.get_parameter(name).value  # noqa: E731
        self.controller = WaypointController(controller_config_from_parameters(get))
        self.output_type = str(get("output_type"))
        self._message_type = import_output_type(self.output_type)
        default_topic = {
            "carla": f"/carla/{get('role_name')}/vehicle_control_cmd",
            "ackermann": f"/carla/{get('role_name')}/ackermann_cmd",
            "twist": f"/carla/{get('role_name')}/twist",
        }[self.output_type]
        self.output_topic = str(get("output_topic")) or default_topic
        self._max_steer_rad = math.radians(float(get("max_steering_angle_deg")))
        self._waypoint_timeout_s = float(get("waypoint_timeout_s"))
        self._speed_timeout_s = float(get("speed_timeout_s"))
        self._waypoints_frame_id = str(get("waypoints_frame_id")).strip("/")
        self._lock = threading.Lock()
        self._waypoints: tuple[np.ndarray, float] | None = None  # (T, 2) base_link, stamp seconds
        self._speed: tuple[float, float] | None = None  # m/s, stamp seconds
        self.last_control: VehicleControl = FULL_BRAKE
        self.last_step: ControlStep | None = None
        self.watchdog_reason: str | None = "no waypoints yet"
        self.malformed = 0

        path_qos = QoSProfile(
            depth=1,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
        )
        self.create_subscription(Path, str(get("waypoints_topic")), self._on_waypoints, path_qos)
        speed_source = str(get("speed_source"))
        if speed_source == "speedometer":
            self.create_subscription(Float32, str(get("speed_topic")), self._on_speed, qos_profile_sensor_data)
        elif speed_source == "odometry":
            self.create_subscription(Odometry, str(get("odometry_topic")), self._on_odometry, qos_profile_sensor_data)
        else:
            raise ValueError(f"parameter speed_source={speed_source!r}; expected 'speedometer' or 'odometry'")
        self._publisher = self.create_publisher(self._message_type, self.output_topic, 1)
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        rate_hz = float(get("control_rate_hz"))
        if rate_hz <= 0:
            raise ValueError(f"parameter control_rate_hz={rate_hz}; expected > 0")
        self.create_timer(1.0 / rate_hz, self._control_cycle)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"publishing {self._message_type.__name__} on {self.output_topic}")

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

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
            self.get_logger().warning(f"rejected waypoints: {error}", throttle_duration_sec=2.0)
            return
        with self._lock:
            self._waypoints = (waypoints, stamp_to_seconds(msg.header.stamp))

    def _on_speed(self, msg: Float32) -> None:
        if math.isfinite(msg.data):
            with self._lock:
                self._speed = (float(msg.data), self._now_s())

    def _on_odometry(self, msg: Odometry) -> None:
        try:
            speed = odometry_speed_mps(msg)
        except MessageError:
            self.malformed += 1
            return
        with self._lock:
            self._speed = (speed, stamp_to_seconds(msg.header.stamp))

    def _watchdog(self, now_s: float) -> str | None:
        if self._waypoints is None:
            return "no waypoints yet"
        age = now_s - self._waypoints[1]
        if age > self._waypoint_timeout_s:
            return f"waypoints are {age:.3f} s old (limit {self._waypoint_timeout_s} s)"
        if self._speed is None:
            return "no speed yet"
        age = now_s - self._speed[1]
        if age > self._speed_timeout_s:
            return f"speed is {age:.3f} s old (limit {self._speed_timeout_s} s)"
        return None

    def _control_cycle(self) -> None:
        now_s = self._now_s()
        with self._lock:
            reason = self._watchdog(now_s)
            waypoints = None if self._waypoints is None else self._waypoints[0]
            speed = None if self._speed is None else self._speed[0]
        step: ControlStep | None = None
        if reason is None:
            try:
                step = self.controller.compute(waypoints, speed)
            except ValueError as error:
                reason = f"controller refused the input: {error}"
        if reason is not None:
            if self.watchdog_reason is None:
                self.get_logger().warning(f"full brake: {reason}", throttle_duration_sec=2.0)
            self.controller.reset()
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
            }.items()
        ]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self._diagnostics.publish(array)


def main(args: list[str] | None = None) -> int:
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=args)
    try:
        node = ControllerNode()
    except (RuntimeError, ValueError) as error:
        rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {error}")
        rclpy.try_shutdown()
        return 1
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
