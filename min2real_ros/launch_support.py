"""What the launch files compute (plain functions, so tests pin them without launch_ros).

* topic remappings of the nodes' relative ~/input/* and ~/output/* names onto the CARLA ROS
  bridge's topics (`carla_driver_remappings`, `controller_remappings`);
* the bridge's `ego_vehicle_role_name` as the list it expects (`bridge_role_names_argument`:
  the bridge tests an actor's role_name with `in` against this parameter; a launch argument is
  a string, which launch_ros turns into a string-array parameter when it reads as a YAML list);
* the carla_spawn_objects definition for a role and a camera (`carla_objects`): the model's
  training camera (`ArtifactMetadata.source_camera`, CARLA Garage's camera for a model exported
  before that was recorded) with the lens attributes the leaderboard applies; written to one
  file per role under ROS_HOME (`write_carla_objects`), replaced on every launch, never a new
  temporary file;
* the shipped Fast DDS profile (`dds_profile_path`);
* where an optional ROS package is absent (tf2_ros, the bridge's converters), the message the
  launch logs instead of aborting (`optional_package_share`, `missing_package_message`), and the
  message package an output type needs (`output_type_problem`: checked before any node starts).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from min2real.contract import CARLA_GARAGE_CAMERA, CameraSpec

PACKAGE = "min2real"
DDS_PROFILE = "fastdds_large_data.xml"
CAMERA_ID, LIDAR_ID = "rgb_front", "lidar"  # sensor ids in config/carla_objects.json


def share_dir() -> Path:
    """share/min2real of the installed package, or the checkout (config/ beside min2real_ros/)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError, OSError):  # not installed through ament (a pip/venv checkout)
        return Path(__file__).resolve().parents[1]


def dds_profile_path() -> Path:
    """config/fastdds_large_data.xml (a Fast DDS profile with a 32 MB shared-memory segment)."""
    return share_dir() / "config" / DDS_PROFILE


def carla_driver_remappings(role: str, camera_id: str = CAMERA_ID, lidar_id: str = LIDAR_ID) -> list[tuple[str, str]]:
    """The driver's inputs on the CARLA ROS bridge's topics for ego vehicle `role`."""
    prefix = f"/carla/{role}"
    return [
        ("~/input/camera", f"{prefix}/{camera_id}/image"),
        ("~/input/camera_info", f"{prefix}/{camera_id}/camera_info"),
        ("~/input/lidar", f"{prefix}/{lidar_id}"),
        ("~/input/speed", f"{prefix}/speedometer"),
        ("~/input/odometry", f"{prefix}/odometry"),
        ("~/input/route", f"{prefix}/waypoints"),
    ]


def controller_remappings(
    driver_name: str, speed_topic: str, odometry_topic: str, control_topic: str
) -> list[tuple[str, str]]:
    return [
        ("~/input/waypoints", f"/{driver_name}/output/waypoints"),
        ("~/input/target_speed", f"/{driver_name}/output/target_speed"),
        ("~/input/speed", speed_topic),
        ("~/input/odometry", odometry_topic),
        ("~/output/control", control_topic),
    ]


def carla_control_topic(role: str, output_type: str) -> str:
    """Where each controller output goes on the bridge (runtime.vehicle_commands says what it means)."""
    topics = {"carla": "vehicle_control_cmd", "ackermann": "ackermann_cmd", "twist": "twist"}
    if output_type not in topics:
        raise ValueError(f"output_type {output_type!r}; expected one of {tuple(topics)}")
    return f"/carla/{role}/{topics[output_type]}"


def bridge_role_names_argument(role: str) -> str:
    """The carla_ros_bridge launch argument ego_vehicle_role_name for one role: a YAML list."""
    if not role or any(ch in role for ch in "[]'\",") or role != role.strip():
        raise ValueError(f"role_name {role!r}; expected a plain CARLA role name such as ego_vehicle or hero")
    return json.dumps([role])


def model_source_camera(model_path: str | Path) -> CameraSpec | None:
    """The training camera recorded in an exported model's metadata (None when not recorded)."""
    path = Path(model_path)
    if path.suffix == ".onnx":
        try:
            from min2real.runtime.onnx_metadata import read_onnx_metadata

            return read_onnx_metadata(path).source_camera
        except ImportError:  # no `onnx` package on the vehicle: ONNX Runtime reads it too
            import onnxruntime

            from min2real.runtime.onnx_metadata import metadata_from_onnx_session

            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            return metadata_from_onnx_session(session, path).source_camera
    from min2real.contract import ArtifactMetadata
    from min2real.runtime.engine_cache import read_sidecar

    sidecar = read_sidecar(path)
    if sidecar is None:
        raise FileNotFoundError(f"engine {path} has no metadata sidecar; expected {path}.json beside it")
    return ArtifactMetadata.from_json(sidecar[0]).source_camera


def carla_objects(template: dict, role: str, camera: CameraSpec | None) -> dict:
    """config/carla_objects.json for ego vehicle `role`, the RGB camera set to `camera`
    (CARLA_GARAGE_CAMERA when None) with its lens attributes. The template is not modified."""
    objects = json.loads(json.dumps(template))
    camera = camera or CARLA_GARAGE_CAMERA
    vehicles = [entry for entry in objects["objects"] if str(entry.get("type", "")).startswith("vehicle.")]
    if len(vehicles) != 1:
        raise ValueError(f"carla objects define {len(vehicles)} vehicles; expected exactly one ego vehicle")
    vehicles[0]["id"] = role
    cameras = [s for s in vehicles[0]["sensors"] if s.get("type") == "sensor.camera.rgb" and s.get("id") == CAMERA_ID]
    if len(cameras) != 1:
        raise ValueError(f"carla objects have no sensor.camera.rgb with id {CAMERA_ID!r} on the ego vehicle")
    cameras[0].update(camera.carla_attributes())
    return objects


def objects_file_for(role: str) -> Path:
    """One generated objects file per role: $ROS_HOME/min2real/carla_objects_<role>.json."""
    ros_home = Path(os.environ.get("ROS_HOME") or Path.home() / ".ros")
    return ros_home / PACKAGE / f"carla_objects_{role}.json"


def write_carla_objects(role: str, model_path: str | Path | None, template_path: str | Path | None = None) -> Path:
    """Write `carla_objects(...)` for `role` and the model's camera to `objects_file_for(role)`
    (atomically, replacing the previous launch's file) and return its path."""
    template_path = Path(template_path or share_dir() / "config" / "carla_objects.json")
    template = json.loads(template_path.read_text(encoding="utf-8"))
    camera = model_source_camera(model_path) if model_path else None
    target = objects_file_for(role)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".json.partial")
    partial.write_text(json.dumps(carla_objects(template, role, camera), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, target)
    return target


def optional_package_share(package: str) -> str | None:
    """share/<package> when the package is in the ament index, else None (launch logs why)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        return get_package_share_directory(package)
    except PackageNotFoundError:
        return None


def missing_package_message(package: str, consequence: str) -> str:
    return (
        f"ROS package {package!r} is not installed (not in AMENT_PREFIX_PATH): {consequence}. "
        f"Install it (apt install ros-$ROS_DISTRO-{package.replace('_', '-')} or build it in your "
        "workspace) to get it."
    )


CONVERTERS = {"twist": "carla_twist_to_control", "ackermann": "carla_ackermann_control"}
OUTPUT_MESSAGE_PACKAGES = {"carla": "carla_msgs", "ackermann": "ackermann_msgs", "twist": "geometry_msgs"}


def converter_launch_file(package_share: str, converter: str) -> Path:
    """The CARLA ROS bridge installs each converter's launch file as share/<pkg>/<pkg>.launch.py."""
    return Path(package_share) / f"{converter}.launch.py"


def output_type_problem(output_type: str) -> str | None:
    """Why the controller cannot publish `output_type` here (its message package is not importable),
    or None. Launch files check this before starting any node."""
    carla_control_topic("x", output_type)  # validates the name
    package = OUTPUT_MESSAGE_PACKAGES[output_type]
    if _importable(f"{package}.msg"):
        return None
    others = [kind for kind, pkg in OUTPUT_MESSAGE_PACKAGES.items() if _importable(f"{pkg}.msg")]
    return (
        f"output_type {output_type!r} needs the ROS message package {package}, which is not installed; "
        f"install it, or choose output_type:= one of {others} (what this machine can publish)"
    )


def _importable(module: str) -> bool:
    """Whether `module` imports (as the controller will import it), not merely whether it is found."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def remap_cli_args(remappings: list[tuple[str, str]]) -> list[str]:
    """The same remappings as rclpy `cli_args` for nodes constructed in-process (replay, tests)."""
    args: list[str] = ["--ros-args"]
    for source, target in remappings:
        args += ["-r", f"{source}:={target}"]
    return args


def parameters_yaml(path: Path) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data["/**"]["ros__parameters"]
