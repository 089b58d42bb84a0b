"""The launch files launched for real: `ros2 launch min2real ...` (ros2launch, launch, launch_ros
from ../shared/third_party) on the package as colcon installs it, with the bridge's real launch
files, its real converter nodes and message packages. Only the executables that need a CARLA
server (the bridge, carla_spawn_objects, carla_waypoint_publisher) are stand-ins
(test/bridge_stand_in.py), started by the bridge's own launch files. Every test ends its launch
with SIGINT, as Ctrl-C does, and fails if any process of it is left behind.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from upstream import ROOT, Probe, ament_env, camera_image, lidar_cloud, require, sourced, stop_group

pytestmark = pytest.mark.ros

DRIVER = "min2real_driver"
STAND_INS = {
    "carla_ros_bridge": "bridge",
    "carla_spawn_objects": "carla_spawn_objects",
    "carla_waypoint_publisher": "carla_waypoint_publisher",
}


@pytest.fixture(scope="module")
def install(min2real_install):
    require("launch", "launch_ros", "ros2launch", "ackermann_msgs", "carla_msgs", executables=("ros2",))
    return min2real_install


@pytest.fixture(scope="module")
def bundled(install):
    return install / "min2real" / "share" / "min2real" / "models" / "bundled" / "min2real_tiny_sim.onnx"


def launch(
    install: Path, launch_file: str, arguments: list[str], log: Path, *prefixes: Path, **env: str
) -> subprocess.Popen:
    command = f"ros2 launch min2real {launch_file} " + " ".join(shlex.quote(a) for a in arguments)
    return subprocess.Popen(
        sourced(install, command),
        env=ament_env(*prefixes, **env),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def assert_path_for_a_sent_frame(sent: list, paths: list, log: Path) -> None:
    stamps = {(p.header.stamp.sec, p.header.stamp.nanosec) for p in paths}
    assert stamps & set(sent), f"no Path stamped with a sent camera frame; launch log:\n{log.read_text()[-3000:]}"
    path = next(p for p in paths if (p.header.stamp.sec, p.header.stamp.nanosec) in set(sent))
    xy = np.array([[pose.pose.position.x, pose.pose.position.y] for pose in path.poses])
    assert path.header.frame_id == "base_link" and len(xy) > 0 and np.isfinite(xy).all()


def test_vehicle_launch_brings_the_driver_to_active_and_publishes_a_path(install, bundled, ros_context, tmp_path):
    from geometry_msgs.msg import PointStamped, Twist
    from std_msgs.msg import Float32

    log = tmp_path / "launch.log"
    process = launch(
        install,
        "vehicle.launch.py",
        [
            f"model:={bundled}", "domain:=sim", "backend:=onnxruntime-cpu", "camera_topic:=/v21/camera",
            "camera_qos:=reliable", "use_lidar:=false", "speed_source:=speedometer", "speed_topic:=/v21/speed",
            "target_source:=target_point", "target_point_topic:=/v21/target", "output_type:=twist",
            "control_topic:=/v21/control",
        ],
        log,
    )  # fmt: skip
    probe = Probe(ros_context, "vehicle_launch_probe")
    try:
        camera = probe.node.create_publisher(type(camera_image(probe.now(), "")), "/v21/camera", 10)
        speed = probe.node.create_publisher(Float32, "/v21/speed", 10)
        target = probe.node.create_publisher(PointStamped, "/v21/target", 10)
        controls: list = []
        probe.node.create_subscription(Twist, "/v21/control", controls.append, 10)
        assert probe.lifecycle_state(30.0, process) == "active", log.read_text()[-3000:]

        def tick(stamp):
            point = PointStamped()
            point.header.stamp, point.header.frame_id = stamp, "base_link"
            point.point.x, point.point.y = 20.0, 0.0
            target.publish(point)
            speed.publish(Float32(data=3.0))
            camera.publish(camera_image(stamp, "camera"))

        sent, paths = probe.feed_until_path(tick, 20.0)
        assert_path_for_a_sent_frame(sent, paths, log)
        deadline = time.monotonic() + 5.0
        while not controls and time.monotonic() < deadline:
            tick(probe.now())
            time.sleep(0.1)
        assert controls, "the controller started by the launch published no Twist"
    finally:
        probe.close()
        stop_group(process)


def test_replay_launch_without_tf2_ros_and_ros2bag_runs_the_driver(install, bundled, ros_context, tmp_path):
    """tf2_ros and ros2bag are not installed here: the launch says so and still brings the driver
    up on the bridge's topics with simulation time (the old launch aborted on tf2_ros)."""
    from nav_msgs.msg import Odometry
    from nav_msgs.msg import Path as PathMsg
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image, PointCloud2
    from std_msgs.msg import Float32

    log = tmp_path / "launch.log"
    process = launch(
        install,
        "replay.launch.py",
        ["bag:=/no/bag/here", f"model:={bundled}", "backend:=onnxruntime-cpu", "role_name:=r21"],
        log,
    )
    probe = Probe(ros_context, "replay_launch_probe")
    node, prefix = probe.node, "/carla/r21"
    try:
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        clock = node.create_publisher(Clock, "/clock", 10)
        camera = node.create_publisher(Image, f"{prefix}/rgb_front/image", 10)
        lidar = node.create_publisher(PointCloud2, f"{prefix}/lidar", qos_profile_sensor_data)
        speed = node.create_publisher(Float32, f"{prefix}/speedometer", qos_profile_sensor_data)
        odometry = node.create_publisher(Odometry, f"{prefix}/odometry", qos_profile_sensor_data)
        route = node.create_publisher(PathMsg, f"{prefix}/waypoints", latched)
        assert probe.lifecycle_state(30.0, process) == "active", log.read_text()[-3000:]
        text = log.read_text()
        assert "'tf2_ros' is not installed" in text and "'ros2bag' is not installed" in text, text[-3000:]
        route_msg = PathMsg()
        route_msg.header.frame_id = "map"
        for x in range(0, 200, 2):
            route_msg.poses.append(_pose(float(x), 0.0))
        route.publish(route_msg)

        def tick(stamp):
            clock.publish(Clock(clock=stamp))
            cloud = lidar_cloud(stamp, "r21/lidar")
            lidar.publish(cloud)
            speed.publish(Float32(data=3.0))
            odom = Odometry()
            odom.header.stamp, odom.header.frame_id = stamp, "map"
            odom.pose.pose.orientation.w = 1.0
            odom.twist.twist.linear.x = 3.0
            odometry.publish(odom)
            camera.publish(camera_image(stamp, "r21/rgb_front"))

        sent, paths = probe.feed_until_path(tick, 20.0)
        assert_path_for_a_sent_frame(sent, paths, log)
    finally:
        probe.close()
        stop_group(process)


def _pose(x: float, y: float):
    from geometry_msgs.msg import PoseStamped

    pose = PoseStamped()
    pose.header.frame_id = "map"
    pose.pose.position.x, pose.pose.position.y, pose.pose.orientation.w = x, y, 1.0
    return pose


def test_vehicle_launch_stops_before_any_node_when_the_output_types_messages_are_absent(install, bundled, tmp_path):
    """Default output_type ackermann on a machine without ackermann_msgs (hidden here by a package
    that fails to import, ahead of the real one): the launch ends at once naming the package, and
    starts no node (the old launch started both and the controller died)."""
    hidden = tmp_path / "hidden" / "ackermann_msgs"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('ackermann_msgs hidden by the test')\n")
    log = tmp_path / "launch.log"
    env = {"PYTHONPATH": f"{hidden.parent}:{ament_env().get('PYTHONPATH', '')}"}
    process = launch(install, "vehicle.launch.py", [f"model:={bundled}", "domain:=sim"], log, **env)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    finally:
        stop_group(process)
    text = log.read_text()
    assert process.returncode != 0, text[-3000:]
    assert "output_type 'ackermann' needs the ROS message package ackermann_msgs" in text, text[-3000:]
    assert "process started" not in text, text[-3000:]


def stand_in_prefix(root: Path) -> Path:
    """An ament prefix ahead of the real bridge install: the real share/<pkg> (its launch files),
    lib/<pkg>/<executable> the stand-in."""
    import sysconfig

    venv_share = Path(sys.prefix) / "share"
    for package, executable in STAND_INS.items():
        marker = root / "share" / "ament_index" / "resource_index" / "packages" / package
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        (root / "share" / package).symlink_to(venv_share / package, target_is_directory=True)
        script = root / "lib" / package / executable
        script.parent.mkdir(parents=True)
        script.write_text(
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT / 'test')!r})\n"
            "from bridge_stand_in import main\nsys.exit(main())\n"
        )
        script.chmod(0o755)
    del sysconfig
    return root


@pytest.mark.parametrize("output_type", ["carla", "twist", "ackermann"])
def test_carla_sim_launch_with_the_bridges_launch_files(install, bundled, ros_context, tmp_path, output_type):
    require("carla_twist_to_control", "carla_ackermann_control", "carla_ros_bridge")
    prefix = stand_in_prefix(tmp_path / "stand_ins")
    reports = tmp_path / "reports"
    reports.mkdir()
    log = tmp_path / "launch.log"
    process = launch(
        install,
        "carla_sim.launch.py",
        [f"model:={bundled}", "backend:=onnxruntime-cpu", "role_name:=hero21", f"output_type:={output_type}",
         "port:=2021", "town:=Town02"],
        log,
        prefix,
        MIN2REAL_STAND_IN_DIR=str(reports),
        ROS_HOME=str(tmp_path / "ros_home"),
    )  # fmt: skip
    probe = Probe(ros_context, f"carla_sim_probe_{output_type}")
    try:
        assert probe.lifecycle_state(30.0, process) == "active", log.read_text()[-3000:]
        deadline = time.monotonic() + 15.0
        while len(list(reports.glob("*.json"))) < len(STAND_INS) and time.monotonic() < deadline:
            time.sleep(0.1)
        seen = {path.stem: json.loads(path.read_text()) for path in reports.glob("*.json")}
        assert set(seen) == set(STAND_INS.values()), log.read_text()[-3000:]
        bridge = seen["bridge"]["parameters"]
        assert seen["bridge"]["node"] == "/carla_ros_bridge"
        assert bridge["port"] == 2021 and bridge["town"] == "Town02" and bridge["ego_vehicle_role_name"] == ["hero21"]
        assert (
            bridge["synchronous_mode"] is True and bridge["synchronous_mode_wait_for_vehicle_control_command"] is True
        )
        waypoints = seen["carla_waypoint_publisher"]
        assert waypoints["node"] == "/carla_waypoint_publisher" and waypoints["parameters"]["role_name"] == "hero21"
        spawn = seen["carla_spawn_objects"]["parameters"]
        objects = json.loads(Path(spawn["objects_definition_file"]).read_text())
        assert any(entry.get("id") == "hero21" for entry in objects["objects"])
        converter = {"twist": "/hero21", "ackermann": "/carla_ackermann_control"}.get(output_type)
        if converter is not None:  # the bridge's real converter node, from its real launch file
            deadline = time.monotonic() + 15.0
            names = []
            while time.monotonic() < deadline and converter not in names:
                names = [f"{ns.rstrip('/')}/{n}" for n, ns in probe.node.get_node_names_and_namespaces()]
                time.sleep(0.2)
            assert converter in names, (names, log.read_text()[-3000:])
    finally:
        probe.close()
        stop_group(process)
