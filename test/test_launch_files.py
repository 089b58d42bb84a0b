"""Launch files and parameter files, checked statically (launch_ros is not installable here).

Every launch file must reference executables that setup.py installs, parameter files that exist
in config/, and only parameter names that the node declares; the parameter YAMLs must declare
exactly the nodes' parameters with the same defaults; carla_objects.json must match the contract
and the driver's defaults. Where launch_ros is importable the launch descriptions are also built.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from min2real.contract import DEFAULT_CONTRACT
from min2real_ros.nodes import controller_node, driver_node

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
NODE_PARAMETERS = {"driver_node": driver_node.PARAMETERS, "controller_node": controller_node.PARAMETERS}
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
        if not isinstance(call, ast.Call) or getattr(call.func, "id", getattr(call.func, "attr", None)) != "Node":
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
    for name, (default, _description) in declared.items():
        assert in_yaml[name] == default and type(in_yaml[name]) is type(default), name


def test_carla_objects_match_contract_and_driver_defaults():
    objects = json.loads((ROOT / "config" / "carla_objects.json").read_text())["objects"]
    vehicle = next(entry for entry in objects if entry["type"].startswith("vehicle."))
    sensors = {entry["id"]: entry for entry in vehicle["sensors"]}
    camera, lidar = sensors["rgb_front"], sensors["lidar"]
    assert (camera["image_size_y"], camera["image_size_x"]) == (
        DEFAULT_CONTRACT.camera_height,
        DEFAULT_CONTRACT.camera_width,
    )
    defaults = {name: value for name, (value, _text) in driver_node.PARAMETERS.items()}
    assert camera["fov"] == defaults["camera_fov_deg"]
    assert (camera["spawn_point"]["x"], camera["spawn_point"]["z"]) == (
        defaults["camera_mount_x"],
        defaults["camera_mount_z"],
    )
    mount = lidar["spawn_point"]
    assert (mount["x"], mount["y"], mount["z"], mount["yaw"]) == (
        defaults["lidar_mount_x"],
        defaults["lidar_mount_y"],
        defaults["lidar_mount_z"],
        defaults["lidar_mount_yaw_deg"],
    )
    role = vehicle["id"]
    assert defaults["camera_topic"] == f"/carla/{role}/rgb_front/image"
    assert defaults["lidar_topic"] == f"/carla/{role}/lidar"
    assert defaults["speed_topic"] == f"/carla/{role}/speedometer"
    assert defaults["odometry_topic"] == f"/carla/{role}/odometry"
    assert {"sensor.pseudo.odom", "sensor.pseudo.speedometer", "actor.pseudo.control"} <= {
        e["type"] for e in vehicle["sensors"]
    }


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda path: path.name)
def test_launch_descriptions_build_where_launch_ros_is_installed(launch_file):
    pytest.importorskip("launch_ros", reason="launch_ros is not installable in this environment")
    from launch import LaunchDescription

    spec = importlib.util.spec_from_file_location(launch_file.stem.replace(".", "_"), launch_file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        description = module.generate_launch_description()
    except Exception as error:  # package share lookups need the package (and the CARLA bridge) installed
        if type(error).__name__ == "PackageNotFoundError":
            pytest.skip(f"{launch_file.name} needs an installed ROS package: {error}")
        raise
    assert isinstance(description, LaunchDescription)
