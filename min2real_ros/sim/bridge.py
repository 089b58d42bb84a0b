"""The simulator's ROS side: publishes what the CARLA ROS bridge publishes, hears what the stack sends.

Published (role `ego_vehicle`, names from min2real_ros.replay.synth_bag.BridgeTopics, docs/facts.md 2):
    /clock                                      rosgraph_msgs/Clock (this node is the time source)
    /carla/ego_vehicle/rgb_front/image          sensor_msgs/Image, bgra8
    /carla/ego_vehicle/rgb_front/camera_info    sensor_msgs/CameraInfo (the synthetic camera's K)
    /carla/ego_vehicle/lidar                    sensor_msgs/PointCloud2 x, y, z, intensity float32, LiDAR frame
    /carla/ego_vehicle/speedometer              std_msgs/Float32 m/s
    /carla/ego_vehicle/odometry                 nav_msgs/Odometry, frame map, child ego_vehicle
    /carla/ego_vehicle/waypoints                nav_msgs/Path, frame map, transient local (the route)
Subscribed:
    the controller's command                    geometry_msgs/Twist on /carla/ego_vehicle/twist
                                                (carla_twist_to_control's input; vehicle_commands
                                                decodes it)
    the driver's waypoints and markers          to hold the lock step and to record the run

Message fields come from min2real_ros.conversions (the code the nodes read them with). All
callbacks only store what arrived; the lock-step loop (stack.py) waits on them. The sensor
mounts reach the driver as its lidar_mount_* parameters (tf2_msgs is not a dependency here).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any

import numpy as np

from min2real_ros.conversions import (
    path_to_xy,
    rgb_to_image_fields,
    ros_uint8_array,
    stamp_to_seconds,
    xyz_to_pointcloud2_fields,
)
from min2real_ros.replay.synth_bag import BridgeTopics

NODE_NAME = "min2real_closed_loop_sim"


def _time_msg(stamp_ns: int) -> Any:
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class BridgeSimNode:
    """An rclpy node (on its own context) with the bridge's publishers and the stack's
    subscriptions; `spin` runs a SingleThreadedExecutor in a background thread."""

    def __init__(
        self,
        topics: BridgeTopics,
        driver_waypoints_topic: str,
        driver_markers_topic: str,
        command_topic: str,
        expert: bool = False,
        driver_domain_shift_topic: str = "",
        driver_target_speed_topic: str = "",
    ) -> None:
        """expert: publish the expert's waypoints on the driver's output topic (no driver node);
        driver_domain_shift_topic: the driver's monitor output, collected per route when given;
        driver_target_speed_topic: the driver's target-speed head output (models with the head),
        kept per camera stamp like the Path when given."""
        import rclpy
        from geometry_msgs.msg import Twist, Vector3Stamped
        from nav_msgs.msg import Odometry, Path
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        from std_msgs.msg import Float32
        from visualization_msgs.msg import MarkerArray

        self.topics = topics
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(NODE_NAME, context=self.context)
        reliable = QoSProfile(
            depth=10,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
        )
        latched = QoSProfile(
            depth=1,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        node = self.node
        self.publishers = {
            "clock": node.create_publisher(Clock, topics.clock, reliable),
            "camera": node.create_publisher(Image, topics.camera, reliable),
            "camera_info": node.create_publisher(CameraInfo, topics.camera_info, reliable),
            "lidar": node.create_publisher(PointCloud2, topics.lidar, reliable),
            "speedometer": node.create_publisher(Float32, topics.speedometer, reliable),
            "odometry": node.create_publisher(Odometry, topics.odometry, reliable),
            "route": node.create_publisher(Path, topics.route, latched),
        }
        if expert:  # the expert takes the driver's place on its output topic
            self.publishers["expert_waypoints"] = node.create_publisher(Path, driver_waypoints_topic, reliable)
        self._lock = threading.Condition()
        self.paths: dict[int, np.ndarray] = {}  # camera stamp ns -> (T, 2) waypoints
        self.targets: dict[int, np.ndarray] = {}  # camera stamp ns -> (2,) target point the driver used
        self.target_speeds: dict[int, float] = {}  # camera stamp ns -> the head's target speed (m/s)
        self.commands: deque[tuple[float, float]] = deque()  # (linear.x, angular.z) in arrival order
        self.commands_received = 0
        self.domain_shift: list[tuple[float, int]] = []  # (OOD score, monitor level) per driver frame
        self._subscriptions = [
            node.create_subscription(Twist, command_topic, self._on_command, reliable),
            node.create_subscription(Path, driver_waypoints_topic, self._on_path, reliable),
            node.create_subscription(MarkerArray, driver_markers_topic, self._on_markers, reliable),
        ]
        if driver_domain_shift_topic:
            self._subscriptions.append(
                node.create_subscription(Vector3Stamped, driver_domain_shift_topic, self._on_domain_shift, reliable)
            )
        if driver_target_speed_topic:
            self._subscriptions.append(
                node.create_subscription(Vector3Stamped, driver_target_speed_topic, self._on_target_speed, reliable)
            )
        self.command_topic = command_topic
        self.driver_waypoints_topic = driver_waypoints_topic
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(node)
        self._thread = threading.Thread(target=self._spin, name="min2real-sim-executor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    # ---- callbacks (executor thread) ---------------------------------------------------------
    def _on_command(self, msg: Any) -> None:
        with self._lock:
            self.commands.append((float(msg.linear.x), float(msg.angular.z)))
            self.commands_received += 1
            self._lock.notify_all()

    def _on_path(self, msg: Any) -> None:
        if msg.header.frame_id.strip("/") != "base_link" or not msg.poses:
            return
        with self._lock:
            self.paths[_stamp_ns(msg.header.stamp)] = path_to_xy(msg, name="driver waypoints")
            self._lock.notify_all()

    def _on_domain_shift(self, msg: Any) -> None:
        with self._lock:
            self.domain_shift.append((float(msg.vector.x), int(round(msg.vector.z))))

    def _on_target_speed(self, msg: Any) -> None:
        with self._lock:
            self.target_speeds[_stamp_ns(msg.header.stamp)] = float(msg.vector.x)
            self._lock.notify_all()

    def take_target_speed(self, stamp_ns: int) -> float | None:
        """The head's target speed for frame `stamp_ns` (dropping those of earlier frames), if it arrived."""
        with self._lock:
            for stamp in [s for s in self.target_speeds if s < stamp_ns]:
                del self.target_speeds[stamp]
            return self.target_speeds.pop(stamp_ns, None)

    def take_domain_shift(self) -> list[tuple[float, int]]:
        """The (OOD score, level) readings received since the last call."""
        with self._lock:
            readings, self.domain_shift = self.domain_shift, []
            return readings

    def _on_markers(self, msg: Any) -> None:
        for marker in msg.markers:
            if marker.ns == "min2real_target_point":
                with self._lock:
                    stamp = _stamp_ns(marker.header.stamp)
                    self.targets[stamp] = np.array([marker.pose.position.x, marker.pose.position.y])

    def wait(self, condition: Any, timeout_s: float) -> bool:
        """Wait until `condition()` (called under the lock) holds, at most timeout_s (wall)."""
        with self._lock:
            return self._lock.wait_for(condition, timeout=timeout_s)

    def take_path(self, stamp_ns: int) -> np.ndarray:
        """The driver's waypoints for frame `stamp_ns` (dropping those of earlier frames)."""
        with self._lock:
            for stamp in [s for s in self.paths if s < stamp_ns]:
                del self.paths[stamp]
            return self.paths.pop(stamp_ns)

    def take_target(self, stamp_ns: int, drop_earlier: bool = False) -> np.ndarray | None:
        """The target point the driver used for frame `stamp_ns`, if its marker arrived."""
        with self._lock:
            if drop_earlier:
                for stamp in [s for s in self.targets if s < stamp_ns]:
                    del self.targets[stamp]
            return self.targets.pop(stamp_ns, None)

    def take_command(self) -> tuple[float, float] | None:
        with self._lock:
            return self.commands.popleft() if self.commands else None

    def clear_commands(self) -> int:
        """Drop commands that arrived while none was expected; returns how many."""
        with self._lock:
            count = len(self.commands)
            self.commands.clear()
            return count

    # ---- publishing ----------------------------------------------------------------------------
    def publish_clock(self, stamp_ns: int) -> None:
        from rosgraph_msgs.msg import Clock

        self.publishers["clock"].publish(Clock(clock=_time_msg(stamp_ns)))

    def publish_route(self, route_xy_map: np.ndarray, stamp_ns: int) -> None:
        """The dense route (M, 2) in frame map, latched; each pose faces the next point."""
        self.publishers["route"].publish(self._path(route_xy_map, stamp_ns, "map"))

    @staticmethod
    def _path(points_xy: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
        from geometry_msgs.msg import PoseStamped
        from nav_msgs.msg import Path

        points = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        ahead = np.vstack([points[1:], points[-1:] + (points[-1:] - points[-2:-1] if len(points) > 1 else 1.0)])
        yaws = np.arctan2(ahead[:, 1] - points[:, 1], ahead[:, 0] - points[:, 0])
        path = Path()
        path.header.stamp = _time_msg(stamp_ns)
        path.header.frame_id = frame_id
        for (x, y), yaw in zip(points, yaws):
            pose = PoseStamped()
            pose.header = path.header
            pose.pose.position.x, pose.pose.position.y = float(x), float(y)
            pose.pose.orientation.z, pose.pose.orientation.w = math.sin(yaw / 2.0), math.cos(yaw / 2.0)
            path.poses.append(pose)
        return path

    def publish_expert_waypoints(self, waypoints_ego: np.ndarray, stamp_ns: int) -> None:
        """The expert's Path in base_link, on the driver's output topic (in place of the driver)."""
        self.publishers["expert_waypoints"].publish(self._path(waypoints_ego, stamp_ns, "base_link"))

    def publish_vehicle_state(self, stamp_ns: int, x: float, y: float, yaw: float, speed_mps: float) -> None:
        """Odometry (frame map, child = the vehicle frame) and the speedometer."""
        from nav_msgs.msg import Odometry
        from std_msgs.msg import Float32

        odometry = Odometry()
        odometry.header.stamp = _time_msg(stamp_ns)
        odometry.header.frame_id = "map"
        odometry.child_frame_id = self.topics.base_frame
        odometry.pose.pose.position.x, odometry.pose.pose.position.y = float(x), float(y)
        odometry.pose.pose.orientation.z = math.sin(yaw / 2.0)
        odometry.pose.pose.orientation.w = math.cos(yaw / 2.0)
        odometry.twist.twist.linear.x = float(speed_mps)
        self.publishers["odometry"].publish(odometry)
        self.publishers["speedometer"].publish(Float32(data=float(speed_mps)))

    def publish_lidar(self, stamp_ns: int, points_sensor_xyzi: np.ndarray) -> None:
        """(N, 4) float32 x, y, z, intensity in the LiDAR frame."""
        from sensor_msgs.msg import PointCloud2, PointField

        fields = xyz_to_pointcloud2_fields(points_sensor_xyzi[:, :3], points_sensor_xyzi[:, 3])
        cloud = PointCloud2()
        cloud.header.stamp = _time_msg(stamp_ns)
        cloud.header.frame_id = self.topics.lidar_frame
        cloud.height, cloud.width = fields.height, fields.width
        cloud.fields = [
            PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in fields.fields
        ]
        cloud.is_bigendian, cloud.point_step, cloud.row_step = fields.is_bigendian, fields.point_step, fields.row_step
        cloud.data = ros_uint8_array(fields.data)
        cloud.is_dense = fields.is_dense
        self.publishers["lidar"].publish(cloud)

    def publish_camera(self, stamp_ns: int, image_rgb: np.ndarray, intrinsics: np.ndarray) -> None:
        """CameraInfo then the bgra8 Image, both stamped `stamp_ns` in the camera frame."""
        from sensor_msgs.msg import CameraInfo, Image

        height, width = image_rgb.shape[:2]
        info = CameraInfo()
        info.header.stamp = _time_msg(stamp_ns)
        info.header.frame_id = self.topics.camera_frame
        info.height, info.width = int(height), int(width)
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        k = np.asarray(intrinsics, dtype=np.float64).reshape(3, 3)
        info.k = k.reshape(-1).tolist()
        info.r = np.eye(3).reshape(-1).tolist()
        info.p = np.concatenate([k, np.zeros((3, 1))], axis=1).reshape(-1).tolist()
        self.publishers["camera_info"].publish(info)
        fields = rgb_to_image_fields(np.ascontiguousarray(image_rgb), "bgra8")
        image = Image()
        image.header = info.header
        image.height, image.width, image.encoding = fields.height, fields.width, fields.encoding
        image.is_bigendian, image.step = fields.is_bigendian, fields.step
        image.data = ros_uint8_array(fields.data)
        self.publishers["camera"].publish(image)

    # ---- graph ---------------------------------------------------------------------------------
    def subscribers(self, name: str) -> int:
        return int(self.publishers[name].get_subscription_count())

    def publishers_on(self, topic: str) -> int:
        return int(self.node.count_publishers(topic))

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(timeout=5.0)


__all__ = ["NODE_NAME", "BridgeSimNode", "stamp_to_seconds"]
