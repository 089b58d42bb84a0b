"""CARLA simulation: CARLA ROS bridge + carla_spawn_objects (config/carla_objects.json, camera and
LiDAR matching the model contract) + carla_waypoint_publisher + min2real driver and controller.

    ros2 launch min2real carla_sim.launch.py model:=/path/to/min2real_sim.onnx [backend:=tensorrt]
        [host:=localhost port:=2000 town:=Town01 role_name:=ego_vehicle spawn_point:=x,y,z,roll,pitch,yaw]

Needs a running CARLA server whose version matches the bridge's `carla` Python package, the
ros-bridge packages (carla_ros_bridge, carla_spawn_objects, carla_waypoint_publisher, carla_msgs)
sourced, and a goal on /carla/<role_name>/goal for the waypoint publisher to plan a route.
"""

# ruff: noqa: I001  (the local launch/ directory makes ruff sort the ROS `launch` package as first-party)

import json
import os
import tempfile

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "min2real"


def _objects_file_for_role(role_name):
    """config/carla_objects.json with the ego vehicle's id set to `role_name` (a temporary copy)."""
    source = os.path.join(get_package_share_directory(PACKAGE), "config", "carla_objects.json")
    if role_name == "ego_vehicle":
        return source
    with open(source, encoding="utf-8") as handle:
        objects = json.load(handle)
    for entry in objects["objects"]:
        if entry["type"].startswith("vehicle."):
            entry["id"] = role_name
    handle = tempfile.NamedTemporaryFile("w", prefix="carla_objects_", suffix=".json", delete=False, encoding="utf-8")
    with handle:
        json.dump(objects, handle, indent=2)
    return handle.name


def _launch_setup(context, *args, **kwargs):
    del args, kwargs
    role = LaunchConfiguration("role_name").perform(context)
    share = get_package_share_directory(PACKAGE)
    spawn_objects = Node(
        package="carla_spawn_objects",
        executable="carla_spawn_objects",
        name="carla_spawn_objects",
        output="screen",
        parameters=[
            {"objects_definition_file": _objects_file_for_role(role)},
            {f"spawn_point_{role}": LaunchConfiguration("spawn_point")},
            {"spawn_sensors_only": False},
        ],
    )
    driver = Node(
        package=PACKAGE,
        executable="driver_node",
        name="min2real_driver",
        output="screen",
        parameters=[
            os.path.join(share, "config", "driver_node.param.yaml"),
            {
                "model_path": LaunchConfiguration("model"),
                "backend": LaunchConfiguration("backend"),
                "domain": "sim",
                "camera_topic": f"/carla/{role}/rgb_front/image",
                "lidar_topic": f"/carla/{role}/lidar",
                "speed_topic": f"/carla/{role}/speedometer",
                "odometry_topic": f"/carla/{role}/odometry",
                "route_topic": f"/carla/{role}/waypoints",
                "use_sim_time": True,
            },
        ],
    )
    controller = Node(
        package=PACKAGE,
        executable="controller_node",
        name="min2real_controller",
        output="screen",
        parameters=[
            os.path.join(share, "config", "controller_node.param.yaml"),
            {
                "output_type": "carla",
                "role_name": role,
                "waypoints_topic": "/min2real_driver/waypoints",
                "speed_topic": f"/carla/{role}/speedometer",
                "use_sim_time": True,
            },
        ],
    )
    return [spawn_objects, driver, controller]


def generate_launch_description():
    bridge_share = get_package_share_directory("carla_ros_bridge")
    waypoint_share = get_package_share_directory("carla_waypoint_publisher")
    return LaunchDescription(
        [
            DeclareLaunchArgument("host", default_value="localhost", description="CARLA server host"),
            DeclareLaunchArgument("port", default_value="2000", description="CARLA server port"),
            DeclareLaunchArgument("timeout", default_value="10", description="CARLA connection timeout (s)"),
            DeclareLaunchArgument("town", default_value="Town01", description="CARLA town or .xodr file"),
            DeclareLaunchArgument("role_name", default_value="ego_vehicle", description="ego vehicle role name"),
            DeclareLaunchArgument("spawn_point", default_value="", description="x,y,z,roll,pitch,yaw (empty: random)"),
            DeclareLaunchArgument("model", description="exported min2real model for the sim domain (.onnx / .engine)"),
            DeclareLaunchArgument(
                "backend",
                default_value="auto",
                description="auto | tensorrt | onnxruntime-cuda | onnxruntime-cpu | torch",
            ),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(os.path.join(bridge_share, "carla_ros_bridge.launch.py")),
                launch_arguments={
                    "host": LaunchConfiguration("host"),
                    "port": LaunchConfiguration("port"),
                    "timeout": LaunchConfiguration("timeout"),
                    "town": LaunchConfiguration("town"),
                    "synchronous_mode": "True",
                    "passive": "False",
                    "fixed_delta_seconds": "0.05",
                }.items(),
            ),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(os.path.join(waypoint_share, "carla_waypoint_publisher.launch.py")),
                launch_arguments={
                    "host": LaunchConfiguration("host"),
                    "port": LaunchConfiguration("port"),
                    "timeout": LaunchConfiguration("timeout"),
                    "role_name": LaunchConfiguration("role_name"),
                }.items(),
            ),
            OpaqueFunction(function=_launch_setup),
        ]
    )
