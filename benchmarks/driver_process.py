"""driver_node in its own process (started from its console script), fed one frame at a time by
this process over real DDS: the node-latency row of `bench_inference`.

One frame = speed, target point and a 30k-point LiDAR sweep, then a CARLA-bridge bgra8 camera
image, all stamped now (system clock, which the node's clock also reads); the latency is the
camera stamp -> the driver's Path for that stamp received here. Only one frame is in flight, so
the latency is the node's full path (DDS transport both ways, message conversion, pre-processing,
inference, publishing) without queueing. Needs `source scripts/ros_env.sh` (the Fast DDS
large-data profile and a private ROS domain).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DRIVER = "min2real_bench_driver"
PREFIX = "/min2real_bench"
INPUTS_LEAD_S = 0.03  # LiDAR, speed and target are published this long before the camera


def console_script(name: str) -> str:
    """The console script installed beside this interpreter (pip install -e . puts them there)."""
    path = Path(sys.executable).with_name(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"console script {name} is not installed next to {sys.executable}; "
            "run .venv/bin/pip install -q --no-deps --no-build-isolation -e ."
        )
    return str(path)


def require_ros_environment() -> None:
    missing = [name for name in ("ROS_DOMAIN_ID", "FASTRTPS_DEFAULT_PROFILES_FILE") if not os.environ.get(name)]
    if missing:
        raise RuntimeError(
            f"the node-latency benchmark needs the project's ROS environment ({', '.join(missing)} unset): "
            "run it after `source scripts/ros_env.sh` (or pass --no-node)"
        )


class DriverProcess:
    """driver_node (console script) on `model_path`, remapped onto this feeder's topics, plus the
    feeder node here. Use as a context manager; `frame_latency_ms()` times one frame."""

    def __init__(
        self,
        model_path: str | Path,
        domain: str,
        image_hw: tuple[int, int] = (384, 1024),
        lidar_points: int = 30_000,
        startup_timeout_s: float = 300.0,
    ) -> None:
        require_ros_environment()
        self.model_path, self.domain = str(model_path), domain
        self.image_hw, self.lidar_points = image_hw, lidar_points
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile("w+", prefix="min2real-bench-driver-", suffix=".log")  # noqa: SIM115

    # ---- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> DriverProcess:
        self._start_feeder()
        args = [
            console_script("driver_node"),
            "--ros-args",
            "-r", f"__node:={DRIVER}",
            "-r", f"~/input/camera:={PREFIX}/camera",
            "-r", f"~/input/lidar:={PREFIX}/lidar",
            "-r", f"~/input/speed:={PREFIX}/speed",
            "-r", f"~/input/target_point:={PREFIX}/target_point",
            "-p", f"model_path:={self.model_path}",
            "-p", f"domain:={self.domain}",
            "-p", "backend:=onnxruntime-cpu",
            "-p", "target_source:=target_point",
            "-p", "mount_source:=parameters",
            # One frame at a time, at no fixed rate: no rate expectations; generous ages so a loaded
            # machine measures slow frames instead of refusing them.
            "-p", "expected_camera_rate_hz:=0.0",
            "-p", "expected_lidar_rate_hz:=0.0",
            "-p", "expected_speed_rate_hz:=0.0",
            "-p", "expected_target_rate_hz:=0.0",
            "-p", "max_image_age_s:=30.0",
            "-p", "max_lidar_skew_s:=1.0",
            "-p", "max_speed_age_s:=30.0",
            "-p", "max_target_age_s:=30.0",
            "-p", "processing_time_warn_ms:=60000.0",
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ))
        try:
            self._wait_until_predicting()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if getattr(self, "node", None) is not None:
            self.executor.shutdown()
            self.node.destroy_node()
            self.context.try_shutdown()
            self.node = None
        self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        self._log.seek(0)
        return "".join(self._log.readlines()[-lines:])

    # ---- feeding ------------------------------------------------------------------------------
    def _start_feeder(self) -> None:
        import rclpy
        from geometry_msgs.msg import PointStamped
        from nav_msgs.msg import Path as PathMsg
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image, PointCloud2, PointField
        from std_msgs.msg import Float32

        from min2real_ros.conversions import rgb_to_image_fields, ros_uint8_array, xyz_to_pointcloud2_fields

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node("min2real_bench_feeder", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        node = self.node
        self.camera_pub = node.create_publisher(Image, f"{PREFIX}/camera", 10)  # reliable, as the CARLA bridge
        self.lidar_pub = node.create_publisher(PointCloud2, f"{PREFIX}/lidar", qos_profile_sensor_data)
        self.speed_pub = node.create_publisher(Float32, f"{PREFIX}/speed", qos_profile_sensor_data)
        self.target_pub = node.create_publisher(PointStamped, f"{PREFIX}/target_point", qos_profile_sensor_data)
        self.received_ns: dict[int, int] = {}  # camera stamp (ns) -> receipt time (ns)
        self.unanswered = 0

        def on_path(msg: PathMsg) -> None:
            stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            self.received_ns[stamp_ns] = time.time_ns()

        node.create_subscription(PathMsg, f"/{DRIVER}/output/waypoints", on_path, 10)

        rng = np.random.default_rng(0)
        fields = rgb_to_image_fields(rng.integers(0, 256, (*self.image_hw, 3), dtype=np.uint8), "bgra8")
        image = Image()
        image.header.frame_id = "ego_vehicle/rgb_front"
        image.height, image.width, image.encoding = fields.height, fields.width, fields.encoding
        image.is_bigendian, image.step, image.data = fields.is_bigendian, fields.step, ros_uint8_array(fields.data)
        self.image = image
        points = rng.uniform([-30, -30, -2.4], [30, 30, 0.5], (self.lidar_points, 3)).astype(np.float32)
        cloud = xyz_to_pointcloud2_fields(points)
        lidar = PointCloud2()
        lidar.header.frame_id = "ego_vehicle/lidar"
        lidar.height, lidar.width, lidar.is_bigendian = cloud.height, cloud.width, cloud.is_bigendian
        lidar.fields = [
            PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in cloud.fields
        ]
        lidar.point_step, lidar.row_step, lidar.is_dense = cloud.point_step, cloud.row_step, cloud.is_dense
        lidar.data = ros_uint8_array(cloud.data)
        self.lidar = lidar
        self.speed = Float32(data=5.0)
        self.target = PointStamped()
        self.target.header.frame_id = "base_link"
        self.target.point.x, self.target.point.y = 20.0, 1.0

    def _publish_frame(self) -> int:
        """Speed, target point and LiDAR first, then (after INPUTS_LEAD_S, so that they have
        arrived: DDS does not order messages across topics) the camera. Returns its stamp in ns."""
        from builtin_interfaces.msg import Time

        def stamp_now() -> tuple[int, Time]:
            now_ns = time.time_ns()
            return now_ns, Time(sec=now_ns // 1_000_000_000, nanosec=now_ns % 1_000_000_000)

        _, stamp = stamp_now()
        self.lidar.header.stamp = self.target.header.stamp = stamp
        self.speed_pub.publish(self.speed)
        self.target_pub.publish(self.target)
        self.lidar_pub.publish(self.lidar)
        time.sleep(INPUTS_LEAD_S)
        camera_ns, self.image.header.stamp = stamp_now()
        self.camera_pub.publish(self.image)  # the node takes the frame when its camera arrives
        return camera_ns

    def _wait_until_predicting(self) -> None:
        """Publish a frame every 0.5 s until the driver (loading and warming up its model) answers."""
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"driver_node exited with {self.process.returncode}:\n{self.log_tail()}")
            self._publish_frame()
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                self.executor.spin_once(timeout_sec=0.05)
            if self.received_ns:
                return
        raise RuntimeError(f"driver_node published no Path within {self.startup_timeout_s:.0f} s:\n{self.log_tail()}")

    def frame_latency_ms(self, timeout_s: float = 20.0, attempts: int = 3) -> float:
        """One frame: camera stamp -> its Path received here, in milliseconds. A frame without a
        Path within `timeout_s` (refused: e.g. its LiDAR arrived after the camera on a loaded
        machine) is counted in `unanswered` and sent again, at most `attempts` times."""
        for _ in range(attempts):
            stamp_ns = self._publish_frame()
            deadline = time.monotonic() + timeout_s
            while stamp_ns not in self.received_ns and time.monotonic() < deadline:
                self.executor.spin_once(timeout_sec=0.01)
            if stamp_ns in self.received_ns:
                return (self.received_ns.pop(stamp_ns) - stamp_ns) * 1e-6
            self.unanswered += 1
        raise RuntimeError(f"{attempts} frames in a row got no Path within {timeout_s} s:\n{self.log_tail()}")
