"""Real vehicle: min2real driver (domain real) + controller, topics remappable by arguments.

    ros2 launch min2real vehicle.launch.py model:=/path/to/min2real_real.engine \
        camera_topic:=/camera/front/image_raw lidar_topic:=none speed_topic:=/vehicle/speed \
        route_topic:=/planning/route odometry_topic:=/localization/odometry output_type:=ackermann

The LiDAR -> base_link and camera mounts are driver parameters (driver_params): copy them from
your URDF. lidar_topic:=none runs camera-only (all-zero BEV), as the paper's real domain.
"""

# ruff: noqa: I001  (the local launch/ directory makes ruff sort the ROS `launch` package as first-party)

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "min2real"


def generate_launch_description():
    config = os.path.join(get_package_share_directory(PACKAGE), "config")
    arguments = [
        ("model", None, "exported min2real model for the real domain (.onnx / .engine)"),
        ("backend", "auto", "auto | tensorrt | onnxruntime-cuda | onnxruntime-cpu | torch"),
        ("domain", "real", "real (no V2R adapter) | sim"),
        ("camera_topic", "/camera/image_raw", "sensor_msgs/Image or CompressedImage topic"),
        ("camera_compressed", "false", "true: the camera topic carries sensor_msgs/CompressedImage"),
        ("lidar_topic", "none", "sensor_msgs/PointCloud2 topic (none: camera only)"),
        ("speed_source", "odometry", "speedometer (std_msgs/Float32) | odometry"),
        ("speed_topic", "/vehicle/speed", "std_msgs/Float32 m/s (speed_source speedometer)"),
        ("odometry_topic", "/odometry", "nav_msgs/Odometry in the route's frame"),
        ("target_source", "route", "route (nav_msgs/Path + odometry) | target_point"),
        ("route_topic", "/route", "nav_msgs/Path in the map frame (transient local)"),
        ("target_point_topic", "/target_point", "geometry_msgs/PointStamped in base_link"),
        ("output_type", "ackermann", "ackermann | twist | carla"),
        ("output_topic", "/ackermann_cmd", "vehicle command topic"),
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
    driver = Node(
        package=PACKAGE,
        executable="driver_node",
        name="min2real_driver",
        output="screen",
        parameters=[
            LaunchConfiguration("driver_params"),
            {
                "model_path": LaunchConfiguration("model"),
                "backend": LaunchConfiguration("backend"),
                "domain": LaunchConfiguration("domain"),
                "camera_topic": LaunchConfiguration("camera_topic"),
                "camera_compressed": LaunchConfiguration("camera_compressed"),
                "lidar_topic": LaunchConfiguration("lidar_topic"),
                "speed_source": LaunchConfiguration("speed_source"),
                "speed_topic": LaunchConfiguration("speed_topic"),
                "odometry_topic": LaunchConfiguration("odometry_topic"),
                "target_source": LaunchConfiguration("target_source"),
                "route_topic": LaunchConfiguration("route_topic"),
                "target_point_topic": LaunchConfiguration("target_point_topic"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
            },
        ],
    )
    controller = Node(
        package=PACKAGE,
        executable="controller_node",
        name="min2real_controller",
        output="screen",
        parameters=[
            LaunchConfiguration("controller_params"),
            {
                "waypoints_topic": "/min2real_driver/waypoints",
                "speed_source": LaunchConfiguration("speed_source"),
                "speed_topic": LaunchConfiguration("speed_topic"),
                "odometry_topic": LaunchConfiguration("odometry_topic"),
                "output_type": LaunchConfiguration("output_type"),
                "output_topic": LaunchConfiguration("output_topic"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
            },
        ],
    )
    return LaunchDescription([*declared, driver, controller])
