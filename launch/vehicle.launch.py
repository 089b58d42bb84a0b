"""Real vehicle: min2real driver (domain real, lifecycle node) + controller, topics remapped by arguments.

    ros2 launch min2real vehicle.launch.py model:=/path/to/min2real_real.engine \\
        camera_topic:=/camera/front/image_raw use_lidar:=false speed_source:=odometry \\
        route_topic:=/planning/route odometry_topic:=/localization/odometry \\
        output_type:=ackermann control_topic:=/vehicle/ackermann_cmd

Sensor mounts come from tf2 static transforms (your URDF's robot_state_publisher) with
mount_source auto/tf, or the lidar_mount_* / camera_mount_* parameters of driver_params.
use_lidar:=false runs camera-only (all-zero BEV), as the paper's real domain. camera_qos:=best_effort
for camera drivers that publish best effort (most USB/GMSL drivers use the sensor-data QoS).
The shipped Fast DDS profile (config/fastdds_large_data.xml) is set for every process here;
docs/deployment.md covers /dev/shm, socket buffers and Cyclone DDS.
output_type ackermann needs ackermann_msgs (ros-<distro>-ackermann-msgs) and carla needs carla_msgs:
where the chosen one's message package is absent the launch stops before any node starts and names
it (twist needs only geometry_msgs; its encoding is carla_twist_to_control's, not a cmd_vel).
"""

# ruff: noqa: I001  (the local launch/ directory makes ruff sort the ROS `launch` package as first-party)

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from min2real_ros.launch_support import dds_profile_path, output_type_problem

PACKAGE = "min2real"
DRIVER = "min2real_driver"


def _check_output_type(context, *args, **kwargs):
    """Stop before any node starts when the controller cannot publish output_type here."""
    del args, kwargs
    problem = output_type_problem(LaunchConfiguration("output_type").perform(context))
    if problem is not None:
        raise RuntimeError(problem)
    return []


def generate_launch_description():
    config = os.path.join(get_package_share_directory(PACKAGE), "config")
    arguments = [
        ("model", None, "exported min2real model for the real domain (.onnx / .engine)"),
        ("backend", "auto", "auto | tensorrt | onnxruntime-cuda | onnxruntime-cpu | torch"),
        ("domain", "real", "real (no V2R adapter) | sim"),
        ("camera_topic", "/camera/image_raw", "sensor_msgs/Image or CompressedImage topic"),
        ("camera_compressed", "false", "true: the camera topic carries sensor_msgs/CompressedImage"),
        ("camera_qos", "best_effort", "reliable | best_effort (match the camera driver's publisher)"),
        ("use_lidar", "false", "true: subscribe lidar_topic (PointCloud2)"),
        ("lidar_topic", "/lidar/points", "sensor_msgs/PointCloud2 topic"),
        ("speed_source", "odometry", "speedometer (std_msgs/Float32) | odometry"),
        ("speed_topic", "/vehicle/speed", "std_msgs/Float32 m/s (speed_source speedometer)"),
        ("odometry_topic", "/odometry", "nav_msgs/Odometry in the route's frame"),
        ("target_source", "route", "route (nav_msgs/Path + odometry) | target_point"),
        ("route_topic", "/route", "nav_msgs/Path in the map frame (transient local)"),
        ("target_point_topic", "/target_point", "geometry_msgs/PointStamped in base_link"),
        ("output_type", "ackermann", "ackermann | twist | carla"),
        ("control_topic", "/ackermann_cmd", "vehicle command topic"),
        ("use_sim_time", "false", "true when replaying with a /clock"),
        ("driver_params", os.path.join(config, "driver_node.param.yaml"), "driver parameter file"),
        ("controller_params", os.path.join(config, "controller_node.param.yaml"), "controller parameter file"),
    ]
    declared = [
        DeclareLaunchArgument(name, description=text)
        if default is None
        else DeclareLaunchArgument(name, default_value=default, description=text)
        for name, default, text in arguments
    ]
    driver = LifecycleNode(
        package=PACKAGE,
        executable="driver_node",
        name=DRIVER,
        namespace="",
        output="screen",
        remappings=[
            ("~/input/camera", LaunchConfiguration("camera_topic")),
            ("~/input/lidar", LaunchConfiguration("lidar_topic")),
            ("~/input/speed", LaunchConfiguration("speed_topic")),
            ("~/input/odometry", LaunchConfiguration("odometry_topic")),
            ("~/input/route", LaunchConfiguration("route_topic")),
            ("~/input/target_point", LaunchConfiguration("target_point_topic")),
        ],
        parameters=[
            LaunchConfiguration("driver_params"),
            {
                "model_path": LaunchConfiguration("model"),
                "backend": LaunchConfiguration("backend"),
                "domain": LaunchConfiguration("domain"),
                "camera_compressed": LaunchConfiguration("camera_compressed"),
                "camera_qos": LaunchConfiguration("camera_qos"),
                "use_lidar": LaunchConfiguration("use_lidar"),
                "speed_source": LaunchConfiguration("speed_source"),
                "target_source": LaunchConfiguration("target_source"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
            },
        ],
    )
    controller = Node(
        package=PACKAGE,
        executable="controller_node",
        name="min2real_controller",
        output="screen",
        remappings=[
            ("~/input/waypoints", f"/{DRIVER}/output/waypoints"),
            ("~/input/target_speed", f"/{DRIVER}/output/target_speed"),
            ("~/input/speed", LaunchConfiguration("speed_topic")),
            ("~/input/odometry", LaunchConfiguration("odometry_topic")),
            ("~/output/control", LaunchConfiguration("control_topic")),
        ],
        parameters=[
            LaunchConfiguration("controller_params"),
            {
                "speed_source": LaunchConfiguration("speed_source"),
                "output_type": LaunchConfiguration("output_type"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
            },
        ],
    )
    profile = str(dds_profile_path())
    environment = [
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", profile),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile),
    ]
    check = OpaqueFunction(function=_check_output_type)
    return LaunchDescription([*declared, check, *environment, driver, controller])
