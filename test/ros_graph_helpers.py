"""Helpers for in-process rclpy graph tests: a deterministic test-double policy, a harness node that
publishes CARLA-bridge-style messages, and bounded waits. Test code only (not product code)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np

from min2real.contract import TINY_CONTRACT, steer_class_from_waypoints
from min2real.runtime.types import Prediction
from min2real_ros.conversions import (
    rgb_to_image_fields,
    ros_uint8_array,
    xyz_to_pointcloud2_fields,
)


class CurveToTargetPolicy:
    """Test double for DrivingPolicy: waypoints along a circular arc through the target point
    (so a target on the left gives a left-curving path), steering class by the contract's rule."""

    def __init__(self, domain: str = "sim", contract=TINY_CONTRACT) -> None:
        self.contract = contract
        self.metadata = SimpleNamespace(variant="test-double", domain=domain, checkpoint_sha256="0" * 64)
        self.backend_name = "test-double"
        self.frames = []

    def predict(self, frame) -> Prediction:
        self.frames.append(frame)
        target = np.asarray(frame.target_point_ego, dtype=np.float64)
        distance_sq = float(target @ target)
        curvature = 2.0 * target[1] / max(distance_sq, 1e-6)  # circle through origin tangent to x
        arc_length = 4.0 * np.arange(1, self.contract.num_waypoints + 1)
        if abs(curvature) < 1e-6:
            waypoints = np.stack([arc_length, np.zeros_like(arc_length)], axis=1)
        else:
            radius = 1.0 / curvature
            angle = np.clip(arc_length / radius, -np.pi, np.pi)
            waypoints = np.stack([radius * np.sin(angle), radius * (1.0 - np.cos(angle))], axis=1)
        waypoints = waypoints.astype(np.float32)
        steer = int(steer_class_from_waypoints(waypoints, self.contract))
        probs = np.eye(3, dtype=np.float32)[steer]
        return Prediction(waypoints, steer, probs, preprocess_ms=0.1, inference_ms=0.2)


def factory_for(policy) -> Callable[[str, str, str], object]:
    def factory(model_path: str, domain: str, backend: str):
        del model_path, backend
        if policy.metadata.domain != domain:
            from min2real.contract import ContractError

            raise ContractError(
                f"model was exported for domain {policy.metadata.domain!r} but {domain!r} was requested"
            )
        return policy

    return factory


def wait_for(
    condition: Callable[[], bool], timeout_s: float, step: Callable[[], None] | None = None, period_s: float = 0.05
) -> bool:
    """Poll `condition` (calling `step` each period) until true or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if step is not None:
            step()
        if condition():
            return True
        time.sleep(period_s)
    return condition()


def left_turn_route_map(spacing_m: float = 1.0) -> np.ndarray:
    """(N, 2) map-frame route: 3 m straight along +x, then a 15 m-radius left turn."""
    straight = np.stack([np.arange(0.0, 3.0, spacing_m), np.zeros(int(3.0 / spacing_m))], axis=1)
    angles = np.arange(0.0, math.pi / 2, spacing_m / 15.0)
    turn = np.stack([3.0 + 15.0 * np.sin(angles), 15.0 * (1 - np.cos(angles))], axis=1)
    return np.vstack([straight, turn])


class Harness:
    """A node that publishes CARLA-bridge-style inputs and records what comes back."""

    def __init__(self, context, prefix: str, image_hw=(64, 160)) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import Twist, Vector3Stamped
        from nav_msgs.msg import Odometry, Path
        from rclpy.node import Node
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import Image, PointCloud2
        from std_msgs.msg import Float32, Float64, Int8

        self.node = Node(f"harness_{prefix}", context=context)
        self.prefix = prefix
        self.image_hw = image_hw
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        node = self.node
        # The CARLA bridge publishes images reliable, keep last 10 (camera.py: qos_profile=10).
        self.camera_pub = node.create_publisher(Image, f"/{prefix}/camera", 10)
        self.lidar_pub = node.create_publisher(PointCloud2, f"/{prefix}/lidar", qos_profile_sensor_data)
        self.speed_pub = node.create_publisher(Float32, f"/{prefix}/speedometer", qos_profile_sensor_data)
        self.odom_pub = node.create_publisher(Odometry, f"/{prefix}/odometry", qos_profile_sensor_data)
        self.route_pub = node.create_publisher(Path, f"/{prefix}/waypoints", latched)
        self.path_pub = node.create_publisher(Path, f"/{prefix}/driver/output/waypoints", 1)
        self.lock = threading.Lock()
        self.paths, self.steer, self.diagnostics, self.twists, self.processing = [], [], [], [], []
        self.probs = []
        self.sent_stamps = []

        def keep(store):
            def callback(msg):
                with self.lock:
                    store.append(msg)

            return callback

        node.create_subscription(Path, f"/{prefix}/driver/output/waypoints", keep(self.paths), 10)
        node.create_subscription(Int8, f"/{prefix}/driver/output/steer_class", keep(self.steer), 10)
        node.create_subscription(Vector3Stamped, f"/{prefix}/driver/output/steer_probabilities", keep(self.probs), 10)
        node.create_subscription(Float64, f"/{prefix}/driver/output/processing_time_ms", keep(self.processing), 10)
        node.create_subscription(DiagnosticArray, "/diagnostics", keep(self.diagnostics), 50)
        node.create_subscription(Twist, f"/{prefix}/twist", keep(self.twists), 10)
        self.Image, self.PointCloud2, self.Float32, self.Odometry, self.Path = (
            Image,
            PointCloud2,
            Float32,
            Odometry,
            Path,
        )

    def now_msg(self, offset_s: float = 0.0):
        from rclpy.time import Time

        now = self.node.get_clock().now()
        return Time(nanoseconds=now.nanoseconds + int(offset_s * 1e9), clock_type=now.clock_type).to_msg()

    def camera_msg(self, stamp, **override):
        rng = np.random.default_rng(0)
        rgb = rng.integers(0, 256, size=(*self.image_hw, 3), dtype=np.uint8)
        fields = rgb_to_image_fields(rgb, "bgra8")._asdict()
        fields.update(override)
        msg = self.Image()
        msg.header.stamp, msg.header.frame_id = stamp, "ego_vehicle/rgb_front"
        msg.height, msg.width, msg.encoding = fields["height"], fields["width"], fields["encoding"]
        msg.is_bigendian, msg.step = fields["is_bigendian"], fields["step"]
        msg.data = ros_uint8_array(fields["data"])
        return msg

    def lidar_msg(self, stamp, points=None, **override):
        from sensor_msgs.msg import PointField

        if points is None:
            rng = np.random.default_rng(1)
            points = rng.uniform([-10, -10, -2.4], [10, 10, 0.0], size=(500, 3)).astype(np.float32)
        fields = xyz_to_pointcloud2_fields(points)._asdict()
        fields.update(override)
        msg = self.PointCloud2()
        msg.header.stamp, msg.header.frame_id = stamp, "ego_vehicle/lidar"
        msg.height, msg.width = fields["height"], fields["width"]
        msg.fields = [
            PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in fields["fields"]
        ]
        msg.is_bigendian, msg.point_step, msg.row_step = (
            fields["is_bigendian"],
            fields["point_step"],
            fields["row_step"],
        )
        msg.data = ros_uint8_array(fields["data"])
        msg.is_dense = fields["is_dense"]
        return msg

    def odometry_msg(self, stamp, x=0.0, y=0.0, yaw=0.0, speed=3.0):
        msg = self.Odometry()
        msg.header.stamp, msg.header.frame_id, msg.child_frame_id = stamp, "map", "ego_vehicle"
        msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
        msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
        msg.twist.twist.linear.x = speed
        return msg

    def path_msg(self, xy, frame_id, stamp):
        from geometry_msgs.msg import PoseStamped

        msg = self.Path()
        msg.header.stamp, msg.header.frame_id = stamp, frame_id
        for x, y in np.asarray(xy, dtype=np.float64):
            pose = PoseStamped()
            pose.header = msg.header
            pose.pose.position.x, pose.pose.position.y = float(x), float(y)
            pose.pose.orientation.w = 1.0
            msg.poses.append(pose)
        return msg

    def publish_route(self, route_xy=None):
        self.route_pub.publish(
            self.path_msg(left_turn_route_map() if route_xy is None else route_xy, "map", self.now_msg())
        )

    def publish_inputs(self, camera_age_s: float = 0.0, camera=None, lidar=None, speed: float = 3.0):
        """One round of inputs, all stamped now (the camera `camera_age_s` in the past)."""
        stamp = self.now_msg()
        camera_stamp = self.now_msg(-camera_age_s) if camera_age_s else stamp
        self.lidar_pub.publish(lidar if lidar is not None else self.lidar_msg(stamp))
        self.speed_pub.publish(self.Float32(data=float(speed)))
        self.odom_pub.publish(self.odometry_msg(stamp, speed=speed))
        msg = camera if camera is not None else self.camera_msg(camera_stamp)
        with self.lock:
            self.sent_stamps.append((msg.header.stamp.sec, msg.header.stamp.nanosec))
        self.camera_pub.publish(msg)


def driver_remaps(prefix: str, **override) -> list[str]:
    """--ros-args remapping the driver's ~/input/* topics to the harness's CARLA-bridge-style ones."""
    topics = {
        "camera": f"/{prefix}/camera",
        "lidar": f"/{prefix}/lidar",
        "speed": f"/{prefix}/speedometer",
        "odometry": f"/{prefix}/odometry",
        "route": f"/{prefix}/waypoints",
    }
    topics.update(override)
    return remap_args({f"~/input/{name}": topic for name, topic in topics.items()})


def controller_remaps(prefix: str) -> list[str]:
    return remap_args(
        {
            "~/input/waypoints": f"/{prefix}/driver/output/waypoints",
            "~/input/speed": f"/{prefix}/speedometer",
            "~/output/control": f"/{prefix}/twist",
        }
    )


def remap_args(remaps: dict[str, str]) -> list[str]:
    args = ["--ros-args"]
    for source, target in remaps.items():
        args += ["-r", f"{source}:={target}"]
    return args


def driver_parameters(prefix: str, **extra):
    from rclpy.parameter import Parameter

    del prefix
    values = {
        "model_path": "test-double.onnx",
        "mount_source": "parameters",
        "diagnostics_period_s": 0.3,
        # the harness publishes when a test steps it, at no fixed rate: no rate expectations
        "expected_camera_rate_hz": 0.0,
        "expected_lidar_rate_hz": 0.0,
        "expected_speed_rate_hz": 0.0,
        "expected_target_rate_hz": 0.0,
        "max_image_age_s": 0.5,
        "debug_image": True,
        "debug_markers": True,
    }
    values.update(extra)
    return [Parameter(name, value=value) for name, value in values.items()]


def controller_parameters(prefix: str, **extra):
    from rclpy.parameter import Parameter

    del prefix
    values = {
        "output_type": "twist",
        "waypoint_timeout_s": 0.5,
    }
    values.update(extra)
    return [Parameter(name, value=value) for name, value in values.items()]


class Graph:
    """Nodes spun by one SingleThreadedExecutor in a background thread (rclpy 7.1's
    MultiThreadedExecutor busy-loops, ros2/rclpy#1452); the driver's inference has its own
    thread. Always torn down."""

    def __init__(self, context, prefix: str) -> None:
        from rclpy.executors import SingleThreadedExecutor

        self.context = context
        self.prefix = prefix
        self.executor = SingleThreadedExecutor(context=context)
        self.nodes = []
        self.harness = Harness(context, prefix)
        self.add(self.harness.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._running = True
        self._thread.start()

    def _spin(self) -> None:
        while self._running and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def driver(self, policy=None, activate: bool = True, remaps: dict | None = None, **params):
        from rclpy.lifecycle import TransitionCallbackReturn

        from min2real_ros.nodes.driver_node import DriverNode

        policy = policy or CurveToTargetPolicy()
        node = DriverNode(
            policy_factory=factory_for(policy),
            node_name="driver",
            namespace=f"/{self.prefix}",
            context=self.context,
            cli_args=driver_remaps(self.prefix, **(remaps or {})),
            parameter_overrides=driver_parameters(self.prefix, **params),
        )
        if activate:
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, node.configure_error
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        return self.add(node), policy

    def controller(self, **params):
        from min2real_ros.nodes.controller_node import ControllerNode

        return self.add(
            ControllerNode(
                node_name="controller",
                namespace=f"/{self.prefix}",
                context=self.context,
                cli_args=controller_remaps(self.prefix),
                parameter_overrides=controller_parameters(self.prefix, **params),
            )
        )

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=5)
        for node in reversed(self.nodes):
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()
