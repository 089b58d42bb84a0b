"""The controller's vehicle commands against the real upstream code: carla_msgs, ackermann_msgs and
carla_ackermann_msgs built from their sources (scripts/setup_upstream.sh), received over DDS as the
real classes, and our Twist and AckermannDrive fed to the CARLA ROS bridge's real converter nodes
(`ros2 run carla_twist_to_control ...`, `ros2 run carla_ackermann_control ...`, simple-pid from
PyPI) with a published CarlaEgoVehicleInfo. The CarlaEgoVehicleControl they emit is compared with
what our `carla` output sends for the same waypoints and speed:

* steer: same sign on left and right arcs and within STEER_TOLERANCE (both converters divide the
  wheel angle we send by the vehicle's max_steer_angle, which the published info sets to the
  controller's max_steering_angle_deg: our steer comes back up to float32 rounding);
* throttle: within THROTTLE_TOLERANCE through carla_twist_to_control (linear.x / 10);
  carla_ackermann_control runs its own speed PID on the AckermannDrive's target speed against
  CarlaEgoVehicleStatus, so only the direction is compared: it accelerates where ours does.
"""

from __future__ import annotations

import math
import subprocess
import threading
import time

import numpy as np
import pytest
from ros_graph_helpers import controller_parameters, remap_args
from upstream import ament_env, require, stop_group

pytestmark = pytest.mark.ros

STEER_TOLERANCE = 1e-3
MIN_SETTLED_MESSAGES = 8  # per source in the judged window (about 1 s at the converters' rates)
MAX_SETTLE_EXTENSION_S = 5.0
THROTTLE_TOLERANCE = 1e-3
MAX_STEER_DEG = 70.0  # the controller's max_steering_angle_deg default and the published wheels'
SPEED_MPS = 4.0  # the vehicle's (our speed input and the CarlaEgoVehicleStatus)
DESIRED_MPS = 6.0  # the waypoints' spacing: the controller accelerates
TWIST_ROLE, ACKERMANN_ROLE, OURS = "tw21", "ak21", "/ours21"


def _vehicle_info(role: str):
    from carla_msgs.msg import CarlaEgoVehicleInfo, CarlaEgoVehicleInfoWheel

    info = CarlaEgoVehicleInfo(id=1, type="vehicle.lincoln.mkz_2020", rolename=role, mass=1845.0)
    info.wheels = [
        CarlaEgoVehicleInfoWheel(max_steer_angle=math.radians(MAX_STEER_DEG) if front else 0.0, radius=0.35)
        for front in (True, True, False, False)
    ]
    return info


def _arc(curvature_per_m: float) -> np.ndarray:
    """8 waypoints 0.5 s apart at DESIRED_MPS along a circle (base_link, y positive = left)."""
    s = DESIRED_MPS * 0.5 * np.arange(1, 9)
    if curvature_per_m == 0.0:
        return np.stack([s, np.zeros_like(s)], axis=1)
    radius = 1.0 / curvature_per_m
    return np.stack([radius * np.sin(s / radius), radius * (1.0 - np.cos(s / radius))], axis=1)


@pytest.fixture(scope="module")
def converters(tmp_path_factory):
    require("carla_msgs", "ackermann_msgs", "carla_ackermann_msgs", "carla_twist_to_control", "carla_ackermann_control")
    require("simple_pid", executables=("ros2",))
    logs = tmp_path_factory.mktemp("converters")
    env = ament_env()
    processes = [
        subprocess.Popen(
            ["ros2", "run", "carla_twist_to_control", "carla_twist_to_control", "--ros-args", "-p", f"role_name:={TWIST_ROLE}"],
            env=env, stdout=(logs / "twist.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        ),
        subprocess.Popen(
            ["ros2", "launch", "carla_ackermann_control", "carla_ackermann_control.launch.py", f"role_name:={ACKERMANN_ROLE}"],
            env=env, stdout=(logs / "ackermann.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        ),
    ]  # fmt: skip
    yield logs
    for process in processes:
        stop_group(process)


class Bench:
    """Three controllers of ours (carla, twist, ackermann outputs) fed the same Path and speed; the
    converters' and our CarlaEgoVehicleControl recorded as the real classes deliver them."""

    def __init__(self, context) -> None:
        from ackermann_msgs.msg import AckermannDrive
        from carla_msgs.msg import CarlaEgoVehicleControl, CarlaEgoVehicleStatus
        from nav_msgs.msg import Path
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import DurabilityPolicy, QoSProfile
        from rosgraph_msgs.msg import Clock
        from std_msgs.msg import Float32

        from min2real_ros.nodes.controller_node import ControllerNode

        outputs = {
            "carla": f"{OURS}/vehicle_control_cmd",
            "twist": f"/carla/{TWIST_ROLE}/twist",
            "ackermann": f"/carla/{ACKERMANN_ROLE}/ackermann_cmd",
        }
        self.controllers = [
            ControllerNode(
                node_name=f"controller_{kind}",
                namespace="/bench21",
                context=context,
                cli_args=remap_args(
                    {
                        "~/input/waypoints": "/bench21/waypoints",
                        "~/input/speed": "/bench21/speed",
                        "~/output/control": topic,
                    }
                ),
                parameter_overrides=controller_parameters("", output_type=kind),
            )
            for kind, topic in outputs.items()
        ]
        self.node = Node("bench21", context=context)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for role in (TWIST_ROLE, ACKERMANN_ROLE):
            self.node.create_publisher(type(_vehicle_info(role)), f"/carla/{role}/vehicle_info", latched).publish(
                _vehicle_info(role)
            )
        self.status_pub = self.node.create_publisher(
            CarlaEgoVehicleStatus, f"/carla/{ACKERMANN_ROLE}/vehicle_status", 10
        )
        # The bridge's nodes run on simulation time (ros_compatibility sets use_sim_time): the bridge
        # publishes /clock; here it is this node's wall clock.
        self.clock_pub = self.node.create_publisher(Clock, "/clock", 10)
        self.path_pub = self.node.create_publisher(Path, "/bench21/waypoints", 10)
        self.speed_pub = self.node.create_publisher(Float32, "/bench21/speed", 10)
        self.lock = threading.Lock()
        self.last: dict[str, object] = {}
        self.settled: dict[str, list] = {}  # every message of the drive's last second, per source
        self.sources = ("ours", "ackermann_drive", "via_twist", "via_ackermann")

        def keep(name):
            def callback(msg):
                with self.lock:
                    self.last[name] = msg
                    self.settled.setdefault(name, []).append(msg)

            return callback

        self.node.create_subscription(CarlaEgoVehicleControl, outputs["carla"], keep("ours"), 10)
        self.node.create_subscription(AckermannDrive, outputs["ackermann"], keep("ackermann_drive"), 10)
        for name, role in (("via_twist", TWIST_ROLE), ("via_ackermann", ACKERMANN_ROLE)):
            self.node.create_subscription(CarlaEgoVehicleControl, f"/carla/{role}/vehicle_control_cmd", keep(name), 10)
        self.Path, self.Float32, self.Status, self.Clock = Path, Float32, CarlaEgoVehicleStatus, Clock
        # SingleThreadedExecutor: rclpy 7.1's MultiThreadedExecutor busy-loops holding the GIL (ros2/rclpy#1452)
        # and starved a controller's Path subscription past its 0.5 s watchdog (PID reset mid-drive).
        self.executor = SingleThreadedExecutor(context=context)
        for node in (*self.controllers, self.node):
            self.executor.add_node(node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._running:
            self.executor.spin_once(timeout_sec=0.05)

    def drive(self, waypoints: np.ndarray, seconds: float) -> dict:
        """Publish the Path, our speed and the vehicle status at 20 Hz; the last message of each
        (`self.settled`: all of them over the last second, extended by up to MAX_SETTLE_EXTENSION_S
        until every source sent MIN_SETTLED_MESSAGES there: a converter starved of CPU by a loaded
        machine once sent two in that second, too few to judge a PID by)."""
        from geometry_msgs.msg import PoseStamped

        with self.lock:
            self.last.clear()
        start = time.monotonic()
        deadline, settled = start + seconds, False
        while time.monotonic() < deadline or (settled and self._settling(deadline)):
            if not settled and time.monotonic() > deadline - 1.0:  # keep what arrives once settled
                with self.lock:
                    self.last.clear()
                    self.settled.clear()
                settled = True
            stamp = self.node.get_clock().now().to_msg()
            self.clock_pub.publish(self.Clock(clock=stamp))
            path = self.Path()
            path.header.stamp, path.header.frame_id = stamp, "base_link"
            for x, y in waypoints:
                pose = PoseStamped()
                pose.header = path.header
                pose.pose.position.x, pose.pose.position.y, pose.pose.orientation.w = float(x), float(y), 1.0
                path.poses.append(pose)
            self.path_pub.publish(path)
            self.speed_pub.publish(self.Float32(data=SPEED_MPS))
            status = self.Status(velocity=SPEED_MPS)
            status.header.stamp = stamp
            status.orientation.w = 1.0
            self.status_pub.publish(status)
            time.sleep(0.05)
        with self.lock:
            return dict(self.last)

    def _settling(self, deadline: float) -> bool:
        """Whether the settled window still needs messages (and may still be extended)."""
        if time.monotonic() > deadline + MAX_SETTLE_EXTENSION_S:
            return False
        with self.lock:
            counts = [len(self.settled.get(name, [])) for name in self.sources]
        return min(counts, default=0) < MIN_SETTLED_MESSAGES

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)
        self.executor.shutdown(timeout_sec=1.0)
        for node in (*self.controllers, self.node):
            node.destroy_node()


@pytest.fixture(scope="module")
def bench(converters, ros_context):
    bench = Bench(ros_context)
    topics = (f"/carla/{TWIST_ROLE}/twist", f"/carla/{ACKERMANN_ROLE}/ackermann_cmd")
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline and not all(bench.node.count_subscribers(t) for t in topics):
        time.sleep(0.1)
    assert all(bench.node.count_subscribers(t) for t in topics), f"converters not up; logs in {converters}"
    yield bench
    bench.close()


@pytest.mark.parametrize("curvature_per_m, side", [(0.08, "left"), (-0.08, "right")])
def test_bridge_converters_steer_as_our_carla_output(bench, converters, curvature_per_m, side):
    last = bench.drive(_arc(curvature_per_m), 3.5)
    missing = {"ours", "ackermann_drive", "via_twist", "via_ackermann"} - set(last)
    assert not missing, f"nothing received from {missing}; converter logs in {converters}"
    ours, via_twist, via_ackermann = last["ours"], last["via_twist"], last["via_ackermann"]
    # CARLA steer is positive to the RIGHT; a left arc (y > 0 in base_link) steers negative.
    expected_sign = -1.0 if side == "left" else 1.0
    assert np.sign(ours.steer) == expected_sign and abs(ours.steer) > 0.05, ours
    for converted in (via_twist, via_ackermann):
        assert np.sign(converted.steer) == expected_sign
        assert converted.steer == pytest.approx(ours.steer, abs=STEER_TOLERANCE)
    # The AckermannDrive itself: REP 103 wheel angle (left positive) and our desired speed.
    drive = last["ackermann_drive"]
    assert np.sign(drive.steering_angle) == -expected_sign and drive.speed > 0.0
    assert ours.throttle > 0.0 and ours.brake == 0.0
    assert via_twist.throttle == pytest.approx(ours.throttle, abs=THROTTLE_TOLERANCE)
    assert via_twist.brake == 0.0 and not via_twist.reverse
    # carla_ackermann_control's own speed PID: accelerating towards a target speed above the status's.
    assert drive.speed > SPEED_MPS
    # Its PID output is judged over the settled second, not by one sample (one full-suite run caught
    # a single 0.0-throttle sample between accelerating ones).
    with bench.lock:
        settled = list(bench.settled["via_ackermann"])
    accelerating = [m.throttle > 0.0 and m.brake == 0.0 for m in settled]
    assert np.mean(accelerating) > 0.5, [(m.throttle, m.brake) for m in settled]
    assert not any(m.reverse for m in settled)


def test_brake_reaches_carla_through_both_converters(bench):
    """A Path that ends where the vehicle is (desired speed 0): our carla output brakes; the twist
    converter brakes on the all-zero Twist we send; carla_ackermann_control brakes or coasts towards
    the zero target speed (its PID against the 4 m/s status)."""
    last = bench.drive(np.zeros((8, 2)) + [[0.01, 0.0]], 2.0)
    ours, via_twist, via_ackermann = last["ours"], last["via_twist"], last["via_ackermann"]
    assert ours.brake > 0.0 and ours.throttle == 0.0
    assert via_twist.brake == 1.0 and via_twist.throttle == 0.0
    assert last["ackermann_drive"].speed == 0.0
    assert via_ackermann.throttle == 0.0
