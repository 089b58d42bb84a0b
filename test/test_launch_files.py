"""Launch files and parameter files, checked statically (test_upstream_launch.py launches them for real).

Every launch file must reference executables that setup.py installs, parameter files that exist
in config/, and only parameter names that the node declares; the parameter YAMLs must declare
exactly the nodes' parameters with the same defaults; carla_objects.json must match the contract
and the driver's defaults. The real launch_ros builds each launch description.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from min2real.contract import CARLA_GARAGE_CAMERA, DEFAULT_CONTRACT, CameraSpec
from min2real_ros import launch_support
from min2real_ros.nodes import controller_node, driver_parameters

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
NODE_PARAMETERS = {"driver_node": driver_parameters.PARAMETERS, "controller_node": controller_node.PARAMETERS}
PARAM_FILES = {"driver_node": "driver_node.param.yaml", "controller_node": "controller_node.param.yaml"}
STANDARD_PARAMETERS = {"use_sim_time"}


def _console_scripts() -> set[str]:
    text = (ROOT / "setup.py").read_text()
    return set(re.findall(r'"(\w+) = min2real', text))


def _yaml_parameters(executable: str) -> dict:
    data = yaml.safe_load((ROOT / "config" / PARAM_FILES[executable]).read_text())
    return data["/**"]["ros__parameters"]


def _constant(node: ast.AST | None, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _node_calls(tree: ast.Module):
    """(executable, package, parameter-dict keys, referenced file names) of every Node(...) call;
    module-level string constants (PACKAGE = "min2real") are resolved."""
    constants = {
        target.id: stmt.value.value
        for stmt in tree.body
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant)
        for target in stmt.targets
        if isinstance(target, ast.Name)
    }
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call) or getattr(call.func, "id", getattr(call.func, "attr", None)) not in (
            "Node",
            "LifecycleNode",
        ):
            continue
        keywords = {kw.arg: kw.value for kw in call.keywords}
        executable = keywords.get("executable")
        package = keywords.get("package")
        keys, files = set(), set()
        parameters = keywords.get("parameters")
        if parameters is not None:
            for node in ast.walk(parameters):
                if isinstance(node, ast.Dict):
                    for key in node.keys:
                        if isinstance(key, ast.Constant):
                            keys.add(key.value)
                        elif isinstance(key, ast.JoinedStr):
                            keys.add("<f-string>")
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and node.value.endswith((".yaml", ".json"))
                ):
                    files.add(node.value)
        yield _constant(executable, constants), _constant(package, constants), keys, files


def test_three_launch_files_exist():
    assert {path.name for path in LAUNCH_FILES} == {"carla_sim.launch.py", "vehicle.launch.py", "replay.launch.py"}


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda path: path.name)
def test_launch_file_references_exist(launch_file):
    tree = ast.parse(launch_file.read_text())
    assert any(isinstance(node, ast.FunctionDef) and node.name == "generate_launch_description" for node in tree.body)
    scripts = _console_scripts()
    ours = [call for call in _node_calls(tree) if call[1] == "min2real"]
    assert {executable for executable, *_ in ours} == {"driver_node", "controller_node"}
    for executable, _package, keys, _files in ours:
        assert executable in scripts, f"{launch_file.name}: executable {executable!r} is not a console script"
        declared = set(NODE_PARAMETERS[executable]) | STANDARD_PARAMETERS
        unknown = keys - declared
        assert not unknown, f"{launch_file.name}: {executable} has no parameters {sorted(unknown)}"
    config_names = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith((".yaml", ".json"))
    }
    for name in config_names:
        if name.startswith("."):  # a bare suffix (temporary file names)
            continue
        assert (ROOT / "config" / name).is_file(), f"{launch_file.name} references config/{name}, which does not exist"
    assert {"driver_node.param.yaml", "controller_node.param.yaml"} <= config_names


def test_carla_sim_declares_the_issue_arguments_and_includes_the_bridge():
    text = (ROOT / "launch" / "carla_sim.launch.py").read_text()
    declared = {
        node.args[0].value
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"
    }
    for argument in ("host", "port", "town", "role_name", "model", "backend"):
        assert argument in declared
    for include in (
        "carla_ros_bridge.launch.py",
        "carla_waypoint_publisher.launch.py",
        "carla_spawn_objects",
        "carla_objects.json",
    ):
        assert include in text
    replay = (ROOT / "launch" / "replay.launch.py").read_text()
    assert '"--clock"' in replay and '"use_sim_time": True' in replay


@pytest.mark.parametrize("executable", sorted(NODE_PARAMETERS))
def test_param_yaml_declares_exactly_the_node_parameters_with_its_defaults(executable):
    in_yaml = _yaml_parameters(executable)
    declared = NODE_PARAMETERS[executable]
    assert set(in_yaml) == set(declared)
    for name, spec in declared.items():
        assert in_yaml[name] == spec.default and type(in_yaml[name]) is type(spec.default), name


def test_carla_objects_request_garages_training_camera_and_match_driver_defaults():
    objects = json.loads((ROOT / "config" / "carla_objects.json").read_text())["objects"]
    vehicle = next(entry for entry in objects if entry["type"].startswith("vehicle."))
    sensors = {entry["id"]: entry for entry in vehicle["sensors"]}
    camera, lidar = sensors["rgb_front"], sensors["lidar"]
    # The template requests CARLA Garage's recording camera with the leaderboard's lens attributes.
    for key, value in CARLA_GARAGE_CAMERA.carla_attributes().items():
        assert camera[key] == value, key
    defaults = {name: spec.default for name, spec in driver_parameters.PARAMETERS.items()}
    assert camera["fov"] == defaults["camera_fov_deg"]
    assert (camera["spawn_point"]["x"], camera["spawn_point"]["z"]) == (
        defaults["camera_mount_x"],
        defaults["camera_mount_z"],
    )
    mount = lidar["spawn_point"]
    assert (mount["x"], mount["y"], mount["z"], mount["yaw"], mount["pitch"], mount["roll"]) == (
        defaults["lidar_mount_x"],
        defaults["lidar_mount_y"],
        defaults["lidar_mount_z"],
        defaults["lidar_mount_yaw_deg"],
        defaults["lidar_mount_pitch_deg"],
        defaults["lidar_mount_roll_deg"],
    )
    assert {"sensor.pseudo.odom", "sensor.pseudo.speedometer", "actor.pseudo.control"} <= {
        e["type"] for e in vehicle["sensors"]
    }


def test_carla_sim_spawns_the_models_training_camera_with_equal_focal_length(tmp_path, monkeypatch):
    """The objects file written for a launch requests the model's source camera: the focal length
    the model sees (after the contract's crop and resize) equals the training camera's."""
    monkeypatch.setenv("ROS_HOME", str(tmp_path / "ros_home"))
    template = json.loads((ROOT / "config" / "carla_objects.json").read_text())
    trained = CameraSpec(1600, 600, 90.0, {"lens_circle_multiplier": 3.0})
    objects = launch_support.carla_objects(template, "my_car", trained)
    vehicle = next(entry for entry in objects["objects"] if entry["type"].startswith("vehicle."))
    assert vehicle["id"] == "my_car"
    camera = next(s for s in vehicle["sensors"] if s["id"] == "rgb_front")
    spawned = CameraSpec(camera["image_size_x"], camera["image_size_y"], camera["fov"])
    assert spawned.model_input_focal_length_px(DEFAULT_CONTRACT) == pytest.approx(
        trained.model_input_focal_length_px(DEFAULT_CONTRACT)
    )
    assert camera["lens_circle_multiplier"] == 3.0
    default = launch_support.carla_objects(template, "my_car", None)  # a model without a recorded camera
    camera = next(s for s in default["objects"][2]["sensors"] if s["id"] == "rgb_front")
    assert CameraSpec(camera["image_size_x"], camera["image_size_y"], camera["fov"]).model_input_focal_length_px(
        DEFAULT_CONTRACT
    ) == pytest.approx(CARLA_GARAGE_CAMERA.model_input_focal_length_px(DEFAULT_CONTRACT))
    assert template["objects"][2]["id"] == "ego_vehicle"  # the template is untouched


def test_objects_file_is_one_file_per_role_replaced_on_every_launch(tmp_path, monkeypatch, bundled_model):
    monkeypatch.setenv("ROS_HOME", str(tmp_path / "ros_home"))
    first = launch_support.write_carla_objects("my_car", bundled_model)
    second = launch_support.write_carla_objects("my_car", bundled_model)
    assert first == second == tmp_path / "ros_home" / "min2real" / "carla_objects_my_car.json"
    assert sorted(p.name for p in first.parent.iterdir()) == ["carla_objects_my_car.json"]
    text = (ROOT / "launch" / "carla_sim.launch.py").read_text()
    assert "tempfile" not in text and "NamedTemporaryFile" not in text


def test_bridge_gets_the_role_as_the_list_it_matches_against():
    """carla_ros_bridge tests `actor.attributes['role_name'] in parameters['ego_vehicle']['role_name']`;
    launch_ros turns a launch-argument string that reads as a YAML list into a string array."""
    value = yaml.safe_load(launch_support.bridge_role_names_argument("my_car"))
    assert value == ["my_car"]
    assert "my_car" in value and "my" not in value  # a list: no substring matches
    flattened = "".join(["hero", "ego_vehicle", "hero0"])  # what the bridge's default list becomes in launch
    assert "my_car" not in flattened  # why a custom role got no control subscriber before
    with pytest.raises(ValueError, match="role_name"):
        launch_support.bridge_role_names_argument("a,b")


def _include_arguments(tree: ast.Module, launch_name: str) -> dict:
    """launch_arguments (string keys -> string or source) of the IncludeLaunchDescription of `launch_name`."""
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "IncludeLaunchDescription":
            if launch_name not in ast.unparse(call.args[0]):
                continue
            for keyword in call.keywords:
                if keyword.arg == "launch_arguments":
                    mapping = keyword.value.func.value  # {...}.items()
                    return {
                        key.value: (value.value if isinstance(value, ast.Constant) else ast.unparse(value))
                        for key, value in zip(mapping.keys, mapping.values)
                    }
    raise AssertionError(f"no IncludeLaunchDescription of {launch_name}")


def test_carla_sim_runs_the_bridge_in_lock_step_with_our_role():
    tree = ast.parse((ROOT / "launch" / "carla_sim.launch.py").read_text())
    arguments = _include_arguments(tree, "carla_ros_bridge.launch.py")
    assert arguments["synchronous_mode"] == "True"
    assert arguments["synchronous_mode_wait_for_vehicle_control_command"] == "True"
    assert arguments["ego_vehicle_role_name"] == "bridge_role_names_argument(role)"


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda path: path.name)
def test_driver_is_a_lifecycle_node_with_remapped_inputs_and_the_dds_profile(launch_file):
    text = launch_file.read_text()
    tree = ast.parse(text)
    lifecycle = [
        call
        for call in ast.walk(tree)
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "LifecycleNode"
    ]
    assert len(lifecycle) == 1 and "driver_node" in ast.unparse(lifecycle[0])
    assert "remappings=" in ast.unparse(lifecycle[0])
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" in text and "dds_profile_path()" in text


def test_remappings_name_topics_the_nodes_use():
    driver_source = (ROOT / "min2real_ros" / "nodes" / "driver_node.py").read_text()
    controller_source = (ROOT / "min2real_ros" / "nodes" / "controller_node.py").read_text()
    for name, _target in launch_support.carla_driver_remappings("ego_vehicle"):
        assert f'"{name}"' in driver_source, name
    for name, _target in launch_support.controller_remappings("min2real_driver", "/s", "/o", "/c"):
        assert f'"{name}"' in controller_source, name
    remaps = dict(launch_support.carla_driver_remappings("hero"))
    assert remaps["~/input/camera"] == "/carla/hero/rgb_front/image"
    assert remaps["~/input/route"] == "/carla/hero/waypoints"
    assert launch_support.carla_control_topic("hero", "ackermann") == "/carla/hero/ackermann_cmd"
    assert launch_support.dds_profile_path().is_file()


@pytest.fixture(scope="module")
def bundled_model():
    from min2real_ros.cli.demo import bundled_model_path

    return bundled_model_path()


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda path: path.name)
def test_launch_descriptions_build_with_the_real_launch_ros(launch_file, min2real_install, monkeypatch):
    """Each file's description is built by the real launch_ros, the package found through the
    ament index of its colcon install (test_upstream_launch.py launches them)."""
    from upstream import ament_env, require

    require("launch", "launch_ros")
    from launch import LaunchDescription

    monkeypatch.setenv("AMENT_PREFIX_PATH", ament_env(min2real_install / "min2real")["AMENT_PREFIX_PATH"])

    spec = importlib.util.spec_from_file_location(launch_file.stem.replace(".", "_"), launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert isinstance(module.generate_launch_description(), LaunchDescription)


def test_converter_launch_files_are_where_the_bridge_installs_them(monkeypatch):
    """share/<converter>/<converter>.launch.py (setup.py data_files of the bridge's converters);
    the old share/<converter>/launch/ path killed carla_sim.launch.py with twist and ackermann."""
    from upstream import ament_env, require

    require("carla_twist_to_control", "carla_ackermann_control")
    monkeypatch.setenv("AMENT_PREFIX_PATH", ament_env()["AMENT_PREFIX_PATH"])
    for converter in launch_support.CONVERTERS.values():
        share = launch_support.optional_package_share(converter)
        assert share is not None
        assert launch_support.converter_launch_file(share, converter).is_file()
    assert launch_support.optional_package_share("no_such_package_min2real") is None


def test_missing_optional_packages_are_a_message_and_absent_message_packages_an_error(monkeypatch):
    message = launch_support.missing_package_message("tf2_ros", "base_link is not placed")
    assert "'tf2_ros' is not installed" in message and "base_link is not placed" in message
    assert "ros-$ROS_DISTRO-tf2-ros" in message
    assert launch_support.output_type_problem("twist") is None
    real_import = importlib.import_module

    def hide_ackermann(name, *args):
        if name.startswith("ackermann_msgs"):
            raise ImportError(name)
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", hide_ackermann)
    problem = launch_support.output_type_problem("ackermann")
    assert "needs the ROS message package ackermann_msgs" in problem and "'twist'" in problem
    with pytest.raises(ValueError, match="output_type"):
        launch_support.output_type_problem("cmd_vel")
