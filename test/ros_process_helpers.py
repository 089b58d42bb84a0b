"""driver_node and controller_node as their own processes (started from their console scripts), fed
by this process with CARLA-bridge-sized messages over real DDS, and the driver's own accounting of
every camera frame (read from its /diagnostics).

Also a measurement tool (docs/performance.md, "ROS transport"):

    source scripts/ros_env.sh                       # the shipped Fast DDS profile
    .venv/bin/python test/ros_process_helpers.py --rates 10 20 30 --seconds 10
    MIN2REAL_DDS_PROFILE=none bash -c 'source scripts/ros_env.sh && .venv/bin/python test/ros_process_helpers.py'

prints one JSON line per rate: frames sent, received, predicted, refused, dropped while busy,
lost in transport (stamp gaps + frames before the first / after the last received), and whether
the counts add up.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from min2real_ros.conversions import (  # noqa: E402
    rgb_to_image_fields,
    ros_uint8_array,
    xyz_to_pointcloud2_fields,
)

DRIVER = "min2real_driver"
PREFIX = "/feed"


def console_script(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    if not path.is_file():
        raise FileNotFoundError(f"console script {name} is not installed next to {sys.executable}")
    return str(path)


def start_nodes(
    model_path: Path, rate_hz: float, log_dir: Path, camera_qos: str = "reliable", camera_depth: int = 5
) -> list[subprocess.Popen]:
    """driver_node + controller_node from their console scripts, remapped onto this feeder's topics."""
    log_dir.mkdir(parents=True, exist_ok=True)
    driver_args = [
        console_script("driver_node"),
        "--ros-args",
        "-r", f"__node:={DRIVER}",
        "-r", f"~/input/camera:={PREFIX}/camera",
        "-r", f"~/input/lidar:={PREFIX}/lidar",
        "-r", f"~/input/speed:={PREFIX}/speed",
        "-r", f"~/input/odometry:={PREFIX}/odometry",
        "-r", f"~/input/route:={PREFIX}/route",
        "-p", f"model_path:={model_path}",
        "-p", "backend:=onnxruntime-cpu",
        "-p", "mount_source:=parameters",
        "-p", f"camera_qos:={camera_qos}",
        "-p", f"camera_qos_depth:={int(camera_depth)}",
        "-p", f"expected_camera_rate_hz:={float(rate_hz)}",
        "-p", f"expected_lidar_rate_hz:={float(rate_hz)}",
        "-p", f"expected_speed_rate_hz:={float(rate_hz)}",
        "-p", f"expected_target_rate_hz:={float(rate_hz)}",
        "-p", "diagnostics_period_s:=0.5",
    ]  # fmt: skip
    controller_args = [
        console_script("controller_node"),
        "--ros-args",
        "-r", f"~/input/waypoints:=/{DRIVER}/output/waypoints",
        "-r", f"~/input/speed:={PREFIX}/speed",
        "-r", f"~/output/control:={PREFIX}/control",
        "-p", "output_type:=twist",
    ]  # fmt: skip
    processes = []
    for name, args in (("driver", driver_args), ("controller", controller_args)):
        log = open(log_dir / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        processes.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ)))
    return processes


def stop_nodes(processes: list[subprocess.Popen]) -> list[int]:
    import signal

    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=20))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    return codes


@dataclass
class FeedResult:
    sent_stamps_s: list[float] = field(default_factory=list)
    driver_values: dict[str, str] = field(default_factory=dict)
    driver_reports: int = 0  # driver diagnostics messages received
    controls: int = 0
    paths: int = 0

    def accounting(self) -> dict:
        """Every frame sent: received (then predicted, refused, dropped while busy or failed),
        malformed, or lost (stamp gaps, or before the first / after the last received stamp)."""
        v = self.driver_values
        first = float(v["camera_first_stamp_s"]) if v.get("camera_first_stamp_s", "never") != "never" else math.inf
        last = float(v["camera_last_stamp_s"]) if v.get("camera_last_stamp_s", "never") != "never" else -math.inf
        sent = len(self.sent_stamps_s)
        head = sum(1 for s in self.sent_stamps_s if s < first - 1e-6)
        tail = sum(1 for s in self.sent_stamps_s if s > last + 1e-6)
        counts = {
            key: int(v.get(f"frames_{key}", 0)) for key in ("received", "published", "refused", "dropped", "lost")
        }
        counts["errors"] = int(v.get("inference_errors", 0))
        counts["malformed"] = int(v.get("malformed_camera", 0))
        lost = counts["lost"] + head + tail
        return {
            "sent": sent,
            **counts,
            "lost_total": lost,
            "lost_head": head,
            "lost_tail": tail,
            "received_adds_up": counts["received"]
            == counts["published"] + counts["refused"] + counts["dropped"] + counts["errors"],
            "sent_adds_up": sent == counts["received"] + counts["malformed"] + lost,
            "controls": self.controls,
            "paths_received_here": self.paths,
            "last_refusal": v.get("last_refusal", ""),
            "diagnostics": v.get("_message", ""),
        }


class Feeder:
    """Publishes camera (bgra8, reliable keep-last 10 as the CARLA bridge), LiDAR, speed, odometry
    and a latched route; collects the driver's diagnostics, its Paths and the controller's Twists."""

    def __init__(self, image_hw: tuple[int, int] = (384, 1024), lidar_points: int = 30_000) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped, Twist
        from nav_msgs.msg import Odometry, Path
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import Image, PointCloud2, PointField
        from std_msgs.msg import Float32

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node("min2real_feeder", context=self.context)
        node = self.node
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self.camera_pub = node.create_publisher(Image, f"{PREFIX}/camera", 10)
        self.lidar_pub = node.create_publisher(PointCloud2, f"{PREFIX}/lidar", qos_profile_sensor_data)
        self.speed_pub = node.create_publisher(Float32, f"{PREFIX}/speed", qos_profile_sensor_data)
        self.odom_pub = node.create_publisher(Odometry, f"{PREFIX}/odometry", qos_profile_sensor_data)
        self.route_pub = node.create_publisher(Path, f"{PREFIX}/route", latched)
        self.lock = threading.Lock()
        self.result = FeedResult()

        def on_diagnostics(array):
            for status in array.status:
                if status.name.startswith(DRIVER):
                    values = {kv.key: kv.value for kv in status.values}
                    values["_message"] = status.message
                    with self.lock:
                        self.result.driver_values = values
                        self.result.driver_reports += 1

        def on_control(_msg):
            with self.lock:
                self.result.controls += 1

        def on_path(_msg):
            with self.lock:
                self.result.paths += 1

        node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 20)
        node.create_subscription(Twist, f"{PREFIX}/control", on_control, 10)
        node.create_subscription(Path, f"/{DRIVER}/output/waypoints", on_path, 10)

        rng = np.random.default_rng(0)
        fields = rgb_to_image_fields(rng.integers(0, 256, (*image_hw, 3), dtype=np.uint8), "bgra8")
        image = Image()
        image.header.frame_id = "ego_vehicle/rgb_front"
        image.height, image.width, image.encoding = fields.height, fields.width, fields.encoding
        image.is_bigendian, image.step, image.data = fields.is_bigendian, fields.step, ros_uint8_array(fields.data)
        self.image = image
        cloud = xyz_to_pointcloud2_fields(
            rng.uniform([-30, -30, -2.4], [30, 30, 0.5], (lidar_points, 3)).astype(np.float32)
        )
        lidar = PointCloud2()
        lidar.header.frame_id = "ego_vehicle/lidar"
        lidar.height, lidar.width, lidar.is_bigendian = cloud.height, cloud.width, cloud.is_bigendian
        lidar.fields = [
            PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in cloud.fields
        ]
        lidar.point_step, lidar.row_step, lidar.is_dense = cloud.point_step, cloud.row_step, cloud.is_dense
        lidar.data = ros_uint8_array(cloud.data)
        self.lidar = lidar
        self.Float32, self.Odometry = Float32, Odometry
        route = Path()
        route.header.frame_id = "map"
        for x in np.arange(0.0, 400.0, 1.0):
            pose = PoseStamped()
            pose.header.frame_id = "map"
            pose.pose.position.x = float(x)
            pose.pose.orientation.w = 1.0
            route.poses.append(pose)
        self.route = route
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(node)
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # the context shut down under us
                return

    def now_s(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def wait_for_driver(self, timeout_s: float) -> bool:
        """Until the driver is up (diagnostics arrive) and subscribes to the camera, plus a second:
        this side sees the driver's reader before the driver has matched this writer (discovery
        runs both ways), and a volatile reader never gets what was written before it matched."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                up = bool(self.result.driver_values)
            if up and self.camera_pub.get_subscription_count() > 0 and self.lidar_pub.get_subscription_count() > 0:
                time.sleep(1.0)
                return True
            time.sleep(0.1)
        return False

    def feed(self, rate_hz: float, seconds: float, speed_mps: float = 3.0) -> None:
        """Publish `rate_hz` x `seconds` ticks. Stamps are the nominal tick times (a sensor clock),
        so a late tick shows up as an older frame, never as a gap in the stamps."""
        from builtin_interfaces.msg import Time

        self.route.header.stamp = Time(sec=int(self.now_s()))
        self.route_pub.publish(self.route)
        period = 1.0 / rate_hz
        start = self.now_s() + 0.2
        for tick in range(int(round(rate_hz * seconds))):
            stamp_s = start + tick * period
            delay = stamp_s - self.now_s()
            if delay > 0:
                time.sleep(delay)
            stamp = Time(sec=int(stamp_s), nanosec=int(round((stamp_s % 1.0) * 1e9)) % 1_000_000_000)
            self.lidar.header.stamp = stamp
            self.lidar_pub.publish(self.lidar)
            self.speed_pub.publish(self.Float32(data=float(speed_mps)))
            odometry = self.Odometry()
            odometry.header.stamp, odometry.header.frame_id, odometry.child_frame_id = stamp, "map", "ego_vehicle"
            odometry.pose.pose.position.x = speed_mps * tick * period
            odometry.pose.pose.orientation.w = 1.0
            odometry.twist.twist.linear.x = float(speed_mps)
            self.odom_pub.publish(odometry)
            self.image.header.stamp = stamp
            self.camera_pub.publish(self.image)
            self.result.sent_stamps_s.append(stamp.sec + stamp.nanosec * 1e-9)

    def settle(self, timeout_s: float, quiet_reports: int = 6) -> dict:
        """Wait until the driver has finished with every frame it received and its counters have
        stopped moving over its diagnostics messages (counted, not timed: on a loaded machine its
        diagnostics timer runs late, and a stale report would count the last frames as lost): two
        reports when the last frame sent has arrived, `quiet_reports` otherwise. Returns the
        accounting."""
        deadline = time.monotonic() + timeout_s
        previous, reports_at_change = None, 0
        while time.monotonic() < deadline:
            with self.lock:
                accounting = self.result.accounting() if self.result.driver_values else None
                reports = self.result.driver_reports
            key = (
                None if accounting is None else (accounting["received"], accounting["published"], accounting["refused"])
            )
            if key != previous:
                previous, reports_at_change = key, reports
            elif accounting is not None and accounting["received_adds_up"]:
                quiet = reports - reports_at_change  # reports since the counters last moved
                if quiet >= quiet_reports or (quiet >= 2 and accounting["lost_tail"] == 0):
                    return accounting
            time.sleep(0.1)
        with self.lock:
            return self.result.accounting()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        self._spinner.join(timeout=2.0)


def measure(
    model_path: Path, rate_hz: float, seconds: float, log_dir: Path, camera_qos: str = "reliable", camera_depth: int = 5
) -> dict:
    processes = start_nodes(model_path, rate_hz, log_dir, camera_qos, camera_depth)
    feeder = Feeder()
    try:
        if not feeder.wait_for_driver(60.0):
            raise RuntimeError(f"driver_node did not come up within 60 s (logs in {log_dir})")
        feeder.feed(rate_hz, seconds)
        accounting = feeder.settle(30.0)
    finally:
        feeder.close()
        codes = stop_nodes(processes)
    return {
        "rate_hz": rate_hz,
        "seconds": seconds,
        "camera_qos": camera_qos,
        "camera_qos_depth": camera_depth,
        **accounting,
        "exit_codes": codes,
    }


def main() -> int:
    import argparse

    from min2real_ros.cli.demo import bundled_model_path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 20.0, 30.0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--camera-qos", choices=("reliable", "best_effort"), default="reliable")
    parser.add_argument("--camera-depth", type=int, default=5, help="the driver's camera_qos_depth")
    parser.add_argument("--model", default=None)
    parser.add_argument("--logs", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "min2real-transport"))
    args = parser.parse_args()
    model = Path(args.model) if args.model else bundled_model_path()
    profile = os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE") or "none (Fast DDS defaults)"
    for rate in args.rates:
        result = measure(model, rate, args.seconds, Path(args.logs) / f"{rate:g}hz", args.camera_qos, args.camera_depth)
        result["dds_profile"] = Path(profile).name if profile.endswith(".xml") else profile
        result["load_average"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
