"""Replay a rosbag through the nodes: `ros2 bag play --clock` + driver (+ controller), use_sim_time.

    ros2 launch min2real replay.launch.py bag:=/path/to/bag model:=/path/to/model.onnx [domain:=sim]

The driver's topic defaults are the CARLA ROS bridge's (what min2real's synthetic bag writer and
a recorded CARLA session contain); override them with driver_params for other bags. The
controller publishes geometry_msgs/Twist by default here (no simulator to drive); set
with_controller:=false to run the driver alone.
"""

# ruff: noqa: I001  (the local launch/ directory makes ruff sort the ROS `launch` package as first-party)

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "min2real"


def generate_launch_description():
    config = os.path.join(get_package_share_directory(PACKAGE), "config")
    return LaunchDescription(
        [
            DeclareLaunchArgument("bag", description="rosbag2 directory (or .mcap / .db3 file) to play"),
            DeclareLaunchArgument("rate", default_value="1.0", description="playback rate"),
            DeclareLaunchArgument("model", description="exported min2real model (.onnx / .engine)"),
            DeclareLaunchArgument("backend", default_value="auto", description="inference backend"),
            DeclareLaunchArgument("domain", default_value="sim", description="sim | real (must match the model)"),
            DeclareLaunchArgument("with_controller", default_value="true", description="also run the controller"),
            DeclareLaunchArgument(
                "output_type", default_value="twist", description="controller output: twist | ackermann | carla"
            ),
            DeclareLaunchArgument(
                "driver_params",
                default_value=os.path.join(config, "driver_node.param.yaml"),
                description="driver parameter file",
            ),
            DeclareLaunchArgument(
                "controller_params",
                default_value=os.path.join(config, "controller_node.param.yaml"),
                description="controller parameter file",
            ),
            ExecuteProcess(
                cmd=[
                    "ros2",
                    "bag",
                    "play",
                    LaunchConfiguration("bag"),
                    "--clock",
                    "--rate",
                    LaunchConfiguration("rate"),
                ],
                output="screen",
            ),
            Node(
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
                        "use_sim_time": True,
                    },
                ],
            ),
            Node(
                package=PACKAGE,
                executable="controller_node",
                name="min2real_controller",
                output="screen",
                condition=IfCondition(LaunchConfiguration("with_controller")),
                parameters=[
                    LaunchConfiguration("controller_params"),
                    {
                        "output_type": LaunchConfiguration("output_type"),
                        "use_sim_time": True,
                    },
                ],
            ),
        ]
    )
