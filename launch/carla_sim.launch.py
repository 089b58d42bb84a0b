"""CARLA simulation: CARLA ROS bridge (lock step) + carla_spawn_objects (the model's training camera,
config/carla_objects.json) + carla_waypoint_publisher + min2real driver and controller.

    ros2 launch min2real carla_sim.launch.py model:=/path/to/min2real_sim.onnx [backend:=tensorrt]
        [host:=localhost port:=2000 town:=Town01 role_name:=ego_vehicle spawn_point:=x,y,z,roll,pitch,yaw]
        [output_type:=carla|ackermann|twist]

Needs a running CARLA server whose version matches the bridge's `carla` Python package (0.9.13
for ros-bridge master), the ros-bridge packages (carla_ros_bridge, carla_spawn_objects,
carla_waypoint_publisher, carla_msgs; docs/deployment.md has a Humble/Jazzy recipe) sourced, and a
goal on /carla/<role_name>/goal for the waypoint publisher to plan a route.

* The bridge gets ego_vehicle_role_name as the one-element list it expects (it tests the actor's
  role with `in`), so a custom role_name gets its control subscriber.
* Lock step: synchronous mode with synchronous_mode_wait_for_vehicle_control_command, so
  simulation time advances only when our controller has sent a command for the tick.
* The camera is the model's training camera (its metadata's source_camera, else CARLA Garage's
  1024 x 256 at 110 deg) with the leaderboard's lens attributes; the objects file for the role is
  written to $ROS_HOME/min2real/carla_objects_<role>.json (replaced each launch, no temporary files).
* The driver is a lifecycle node (autostart configures and activates it); its ~/input/* topics
  are remapped onto the bridge's, and its outputs are in base_link, which a static transform
  places at the bridge's vehicle frame (<role_name>) so RViz can show them.
* output_type twist / ackermann includes the bridge's converter (carla_twist_to_control /
  carla_ackermann_control, share/<pkg>/<pkg>.launch.py); where it or tf2_ros is not installed the
  launch says what is missing and goes on without it. An output_type whose message package is
  absent stops the launch before any node starts, with the reason.
* The Fast DDS profile with a 32 MB shared-memory segment carries the images between processes.
"""

# ruff: noqa: I001  (the local launch/ directory makes ruff sort the ROS `launch` package as first-party)

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
    SetEnvironmentVariable,
)
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from min2real_ros.launch_support import (
    CONVERTERS,
    bridge_role_names_argument,
    carla_control_topic,
    carla_driver_remappings,
    controller_remappings,
    converter_launch_file,
    dds_profile_path,
    missing_package_message,
    optional_package_share,
    output_type_problem,
    write_carla_objects,
)

PACKAGE = "min2real"
DRIVER = "min2real_driver"


def _launch_setup(context, *args, **kwargs):
    del args, kwargs
    role = LaunchConfiguration("role_name").perform(context)
    model = LaunchConfiguration("model").perform(context)
    output_type = LaunchConfiguration("output_type").perform(context)
    problem = output_type_problem(output_type)
    if problem is not None:  # before any node starts
        raise RuntimeError(problem)
    share = get_package_share_directory(PACKAGE)
    bridge_share = get_package_share_directory("carla_ros_bridge")
    waypoint_share = get_package_share_directory("carla_waypoint_publisher")
    waypoints = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(waypoint_share, "carla_waypoint_publisher.launch.py")),
        launch_arguments={
            "host": LaunchConfiguration("host"),
            "port": LaunchConfiguration("port"),
            "timeout": LaunchConfiguration("timeout"),
            "role_name": LaunchConfiguration("role_name"),
        }.items(),
    )
    bridge = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(bridge_share, "carla_ros_bridge.launch.py")),
        launch_arguments={
            "host": LaunchConfiguration("host"),
            "port": LaunchConfiguration("port"),
            "timeout": LaunchConfiguration("timeout"),
            "town": LaunchConfiguration("town"),
            "synchronous_mode": "True",
            "synchronous_mode_wait_for_vehicle_control_command": "True",
            "passive": "False",
            "fixed_delta_seconds": "0.05",
            "ego_vehicle_role_name": bridge_role_names_argument(role),
        }.items(),
    )
    spawn_objects = Node(
        package="carla_spawn_objects",
        executable="carla_spawn_objects",
        name="carla_spawn_objects",
        output="screen",
        parameters=[
            {"objects_definition_file": str(write_carla_objects(role, model))},
            {f"spawn_point_{role}": LaunchConfiguration("spawn_point")},
            {"spawn_sensors_only": False},
        ],
    )
    # base_link (REP 105, our outputs' frame) at the bridge's vehicle frame, for RViz.
    if optional_package_share("tf2_ros") is None:
        vehicle_frame = LogInfo(msg=missing_package_message("tf2_ros", f"base_link is not placed at {role} for RViz"))
    else:
        vehicle_frame = Node(
            package="tf2_ros",
            executable="static_transform_publisher",
            name="min2real_base_link",
            arguments=["--frame-id", role, "--child-frame-id", "base_link"],
        )
    driver = LifecycleNode(
        package=PACKAGE,
        executable="driver_node",
        name=DRIVER,
        namespace="",
        output="screen",
        remappings=carla_driver_remappings(role),
        parameters=[
            os.path.join(share, "config", "driver_node.param.yaml"),
            {
                "model_path": model,
                "backend": LaunchConfiguration("backend"),
                "domain": "sim",
                "use_camera_info": True,
                "use_sim_time": True,
            },
        ],
    )
    controller = Node(
        package=PACKAGE,
        executable="controller_node",
        name="min2real_controller",
        output="screen",
        remappings=controller_remappings(
            DRIVER,
            f"/carla/{role}/speedometer",
            f"/carla/{role}/odometry",
            carla_control_topic(role, output_type),
        ),
        parameters=[
            os.path.join(share, "config", "controller_node.param.yaml"),
            {"output_type": output_type, "use_sim_time": True},
        ],
    )
    actions = [bridge, waypoints, spawn_objects, vehicle_frame, driver, controller]
    # The bridge's own converter for a Twist or an AckermannDrive (runtime.vehicle_commands
    # encodes ours as carla_twist_to_control / carla_ackermann_control read them).
    converter = CONVERTERS.get(output_type)
    if converter is not None:
        converter_share = optional_package_share(converter)
        if converter_share is None:
            consequence = f"nothing converts the controller's {output_type} commands into CARLA vehicle control"
            actions.append(LogInfo(msg=missing_package_message(converter, consequence)))
        else:
            actions.append(
                IncludeLaunchDescription(
                    PythonLaunchDescriptionSource(str(converter_launch_file(converter_share, converter))),
                    launch_arguments={"role_name": role}.items(),
                )
            )
    return actions


def generate_launch_description():
    profile = str(dds_profile_path())
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
            DeclareLaunchArgument(
                "output_type",
                default_value="carla",
                description="carla (CarlaEgoVehicleControl) | ackermann (carla_ackermann_control) | twist (carla_twist_to_control)",
            ),
            SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", profile),
            SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile),
            OpaqueFunction(function=_launch_setup),
        ]
    )
