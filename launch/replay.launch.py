"""Replay a rosbag through the nodes: `ros2 bag play --clock` + driver (+ controller), use_sim_time.

    ros2 launch min2real replay.launch.py bag:=/path/to/bag model:=/path/to/model.onnx [domain:=sim] [role_name:=ego_vehicle]

The driver's inputs are remapped onto the CARLA ROS bridge's topics for role_name (what
min2real's synthetic bag writer and a recorded CARLA session contain). The controller publishes
geometry_msgs/Twist on /carla/<role_name>/twist by default here (no simulator to drive); set
with_controller:=false to run the driver alone. `min2real replay` does the same in one process
and writes a report.

tf2_ros (the base_link transform) and ros2bag (the player) are optional here: where one is not
installed the launch says so and goes on without it (without ros2bag, play the bag yourself).
An output_type whose message package is absent stops the launch before any node starts.
"""

# ruff: noqa: I001  (the local launch/ directory makes ruff sort the ROS `launch` package as first-party)

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, LogInfo, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from min2real_ros.launch_support import (
    carla_control_topic,
    carla_driver_remappings,
    controller_remappings,
    dds_profile_path,
    missing_package_message,
    optional_package_share,
    output_type_problem,
)

PACKAGE = "min2real"
DRIVER = "min2real_driver"


def _nodes(context, *args, **kwargs):
    del args, kwargs
    role = LaunchConfiguration("role_name").perform(context)
    output_type = LaunchConfiguration("output_type").perform(context)
    with_controller = LaunchConfiguration("with_controller").perform(context).lower() in ("true", "1")
    problem = output_type_problem(output_type) if with_controller else None
    if problem is not None:  # before any node starts
        raise RuntimeError(problem)
    driver = LifecycleNode(
        package=PACKAGE,
        executable="driver_node",
        name=DRIVER,
        namespace="",
        output="screen",
        remappings=carla_driver_remappings(role),
        parameters=[
            LaunchConfiguration("driver_params"),
            {
                "model_path": LaunchConfiguration("model"),
                "backend": LaunchConfiguration("backend"),
                "domain": LaunchConfiguration("domain"),
                "use_sim_time": True,
            },
        ],
    )
    controller = Node(
        package=PACKAGE,
        executable="controller_node",
        name="min2real_controller",
        output="screen",
        condition=IfCondition(LaunchConfiguration("with_controller")),
        remappings=controller_remappings(
            DRIVER, f"/carla/{role}/speedometer", f"/carla/{role}/odometry", carla_control_topic(role, output_type)
        ),
        parameters=[
            LaunchConfiguration("controller_params"),
            {"output_type": output_type, "use_sim_time": True},
        ],
    )
    # base_link (our outputs' frame and the tf lookups' target) at the bag's vehicle frame.
    if optional_package_share("tf2_ros") is None:
        consequence = f"base_link is not placed at {role}; the driver takes its sensor mounts from its parameters"
        vehicle_frame = LogInfo(msg=missing_package_message("tf2_ros", consequence))
    else:
        vehicle_frame = Node(
            package="tf2_ros",
            executable="static_transform_publisher",
            name="min2real_base_link",
            arguments=["--frame-id", role, "--child-frame-id", "base_link"],
        )
    if optional_package_share("ros2bag") is None:
        consequence = "the bag is not played here: play it with `min2real replay` or another player, with --clock"
        player = LogInfo(msg=missing_package_message("ros2bag", consequence))
    else:
        player = ExecuteProcess(
            cmd=["ros2", "bag", "play", LaunchConfiguration("bag"), "--clock", "--rate", LaunchConfiguration("rate")],
            output="screen",
        )
    return [vehicle_frame, driver, controller, player]


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
                "role_name", default_value="ego_vehicle", description="CARLA role of the bag's topics"
            ),
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
            SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", str(dds_profile_path())),
            SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", str(dds_profile_path())),
            OpaqueFunction(function=_nodes),
        ]
    )
