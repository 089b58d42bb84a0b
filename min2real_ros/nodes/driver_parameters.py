"""The driver node's parameters (config/driver_node.param.yaml documents the same, a test checks).

Read-only parameters shape the model, the subscriptions or the publishers and are fixed once the
node starts (set them at launch). The others apply while the node runs: a `ros2 param set` that
breaks a range or a cross-rule is refused with its reason.
"""

from __future__ import annotations

import math

from min2real.runtime import health
from min2real.runtime.frame_assembly import FreshnessLimits
from min2real.runtime.mounts import MOUNT_SOURCES, Mount
from min2real_ros.parameters import ParameterSpec as P
from min2real_ros.qos import CAMERA_QOS, ROUTE_DURABILITIES

BACKENDS = ("auto", "tensorrt", "onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt", "torch")

# Read by `configure` (they choose the model): settable while the node is unconfigured, so a failed
# configure can be corrected and retried; refused with the reason in every other state.
CONFIGURE_TIME = ("model_path", "backend", "domain")
_CONFIGURE_TIME = " (configure-time: settable while unconfigured)"

PARAMETERS: dict[str, P] = {
    # ---- model
    "model_path": P("", "exported model (.onnx, or .engine/.plan with its .json sidecar)" + _CONFIGURE_TIME),
    "backend": P("auto", "inference backend" + _CONFIGURE_TIME, choices=BACKENDS),
    "domain": P(
        "sim",
        "sim (graph with the V2R adapter) | real; must match the artifact" + _CONFIGURE_TIME,
        choices=("sim", "real"),
    ),
    "autostart": P(True, "configure + activate at start (false: wait for lifecycle transitions)", read_only=True),
    # ---- frames
    "output_frame_id": P("base_link", "vehicle frame of the published Path and markers (REP 103)", read_only=True),
    # ---- inputs (topics are ~/input/*, remapped at launch)
    "camera_compressed": P(
        False, "~/input/camera carries sensor_msgs/CompressedImage (JPEG/PNG) instead of Image", read_only=True
    ),
    "camera_qos": P(
        "reliable",
        "camera subscription reliability: reliable | best_effort (docs/performance.md, ROS transport)",
        choices=CAMERA_QOS,
        read_only=True,
    ),
    "camera_qos_depth": P(
        5,
        "camera subscription keep-last depth (1 lets DDS replace a frame unseen while the executor is busy)",
        low=1,
        high=100,
        read_only=True,
    ),
    "use_lidar": P(True, "subscribe ~/input/lidar (false: camera only, all-zero BEV)", read_only=True),
    "speed_source": P(
        "speedometer",
        "speedometer (~/input/speed std_msgs/Float32) | odometry (~/input/odometry twist.linear.x)",
        choices=("speedometer", "odometry"),
        read_only=True,
    ),
    "target_source": P(
        "route",
        "route (~/input/route Path + ~/input/odometry) | target_point (~/input/target_point PointStamped)",
        choices=("route", "target_point"),
        read_only=True,
    ),
    "route_durability": P(
        "transient_local",
        "~/input/route durability: transient_local (latched, carla_waypoint_publisher) | volatile",
        choices=tuple(ROUTE_DURABILITIES),
        read_only=True,
    ),
    "use_command": P(
        False,
        "subscribe ~/input/command std_msgs/Int8 (contract.COMMANDS index); false = the route planner's command (unknown on a route without commands)",
        read_only=True,
    ),
    "use_camera_info": P(
        False, "subscribe ~/input/camera_info for the debug projection (false: camera_fov_deg)", read_only=True
    ),
    "sensor_qos_depth": P(
        5, "keep-last depth of the best-effort sensor subscriptions", low=1, high=100, read_only=True
    ),
    # ---- sensor mounts
    "mount_source": P(
        "auto",
        "LiDAR/camera mount: tf (tf2 static transforms) | parameters (*_mount_*) | auto (tf when tf2_ros imports)",
        choices=MOUNT_SOURCES,
        read_only=True,
    ),
    "lidar_mount_x": P(
        0.0, "LiDAR position in the vehicle frame, metres (CARLA Garage mount: 0, 0, 2.5)", low=-20.0, high=20.0
    ),
    "lidar_mount_y": P(0.0, "metres", low=-20.0, high=20.0),
    "lidar_mount_z": P(2.5, "metres", low=-20.0, high=20.0),
    "lidar_mount_roll_deg": P(
        0.0, "LiDAR roll in the vehicle frame, degrees (REP 103 fixed-axis rpy)", low=-180.0, high=180.0
    ),
    "lidar_mount_pitch_deg": P(0.0, "degrees", low=-180.0, high=180.0),
    "lidar_mount_yaw_deg": P(0.0, "degrees counter-clockwise", low=-180.0, high=180.0),
    # ---- route planner
    "route_min_distance_m": P(
        7.5, "route planner: pop route points within this distance (Garage)", low=0.1, high=1000.0
    ),
    "route_max_distance_m": P(
        50.0, "route planner: look at most this far along the route (Garage)", low=0.1, high=10000.0
    ),
    # ---- freshness and speed policy (nothing is published from inputs older than these)
    "max_image_age_s": P(0.25, "camera frames older than this are not processed", low=1e-3, high=60.0),
    "max_lidar_skew_s": P(0.15, "nearest LiDAR sweep must be within this of the camera stamp", low=1e-3, high=60.0),
    "max_speed_age_s": P(0.5, "speed must be at least this recent", low=1e-3, high=60.0),
    "max_target_age_s": P(
        1.0, "target point (odometry / target topic) must be at least this recent", low=1e-3, high=60.0
    ),
    "require_lidar": P(True, "refuse frames without a matching LiDAR sweep (false: all-zero BEV)"),
    "negative_speed_tolerance_mps": P(
        0.5,
        "speeds in [-this, 0) are clamped to 0 (counted, WARN); faster reversing refuses the frame",
        low=0.0,
        high=100.0,
    ),
    # ---- expected input rates (node clock; 0 = no expectation)
    "expected_camera_rate_hz": P(
        20.0, "camera rate the sensor is set to (CARLA bridge: 1 / fixed_delta_seconds)", low=0.0, high=1000.0
    ),
    "expected_lidar_rate_hz": P(20.0, "LiDAR sweep rate", low=0.0, high=1000.0),
    "expected_speed_rate_hz": P(20.0, "speed message rate", low=0.0, high=1000.0),
    "expected_target_rate_hz": P(
        20.0, "target point updates (odometry with a route, or the target topic)", low=0.0, high=1000.0
    ),
    "rate_warn_ratio": P(0.8, "an input below this fraction of its expected rate is a WARN", low=0.0, high=1.0),
    "rate_error_ratio": P(0.5, "an input below this fraction of its expected rate is an ERROR", low=0.0, high=1.0),
    # ---- diagnostics
    "diagnostics_period_s": P(1.0, "diagnostics publishing period", low=0.05, high=60.0, read_only=True),
    "processing_time_warn_ms": P(100.0, "processing time above this is a WARN", low=0.1, high=60000.0),
    "processing_time_error_count": P(5, "this many consecutive slow frames is an ERROR", low=1, high=10000),
    # ---- domain-shift monitor (models exported with it; min2real.runtime.domain_monitor)
    "monitor_window_frames": P(
        5, "domain-shift monitor: frames averaged before the OK/WARN/ERROR level", low=1, high=1000, read_only=True
    ),
    "monitor_warn_threshold": P(
        0.0, "OOD score WARN threshold; 0 = calibrated at export (model metadata)", low=0.0, high=1e6, read_only=True
    ),
    "monitor_error_threshold": P(
        0.0, "OOD score ERROR threshold; 0 = calibrated at export (model metadata)", low=0.0, high=1e6, read_only=True
    ),
    # ---- debug outputs
    "debug_image": P(False, "publish ~/output/debug_image (waypoints drawn on the camera frame)", read_only=True),
    "debug_markers": P(False, "publish ~/output/markers (waypoints and target point)", read_only=True),
    "camera_fov_deg": P(110.0, "debug projection: horizontal field of view without camera_info", low=1.0, high=179.0),
    "camera_mount_x": P(
        -1.5,
        "debug projection: camera position in the vehicle frame, metres (mount_source parameters)",
        low=-20.0,
        high=20.0,
    ),
    "camera_mount_y": P(0.0, "metres", low=-20.0, high=20.0),
    "camera_mount_z": P(2.0, "metres", low=-20.0, high=20.0),
    "camera_pitch_deg": P(0.0, "debug projection: positive looks down", low=-90.0, high=90.0),
}

# name -> input whose expected rate it sets
EXPECTED_RATES = {
    "camera": "expected_camera_rate_hz",
    "lidar": "expected_lidar_rate_hz",
    "speed": "expected_speed_rate_hz",
    "target": "expected_target_rate_hz",
}


def configure_time_refusal(state_label: str, parameters: list) -> str | None:
    """Why a configure-time parameter cannot change in lifecycle state `state_label` (None while
    unconfigured, or when none of `parameters` is configure-time). `parameters`: rclpy Parameters."""
    changed = [p.name for p in parameters if p.name in CONFIGURE_TIME]
    if not changed or state_label == "unconfigured":
        return None
    return (
        f"parameter {changed[0]} is read when the driver is configured and the driver is {state_label}; "
        "deactivate and clean up first (ros2 lifecycle set <node> deactivate, then cleanup), set it, configure again"
    )


def cross_check(values: dict) -> str | None:
    """Rules between parameters (values: name -> value after the change), or None."""
    if values["rate_error_ratio"] > values["rate_warn_ratio"]:
        return (
            f"rate_error_ratio {values['rate_error_ratio']} is above rate_warn_ratio {values['rate_warn_ratio']}; "
            "expected error <= warn"
        )
    if values["route_min_distance_m"] >= values["route_max_distance_m"]:
        return (
            f"route_min_distance_m {values['route_min_distance_m']} is not below route_max_distance_m "
            f"{values['route_max_distance_m']}"
        )
    return None


def freshness_limits(values: dict) -> FreshnessLimits:
    return FreshnessLimits(
        max_image_age_s=float(values["max_image_age_s"]),
        max_lidar_skew_s=float(values["max_lidar_skew_s"]),
        max_speed_age_s=float(values["max_speed_age_s"]),
        max_target_age_s=float(values["max_target_age_s"]),
        require_lidar=bool(values["require_lidar"]) and bool(values["use_lidar"]),
        negative_speed_tolerance_mps=float(values["negative_speed_tolerance_mps"]),
    )


def health_thresholds(values: dict) -> health.HealthThresholds:
    return health.HealthThresholds(
        processing_time_warn_ms=float(values["processing_time_warn_ms"]),
        processing_time_error_count=int(values["processing_time_error_count"]),
        rate_warn_ratio=float(values["rate_warn_ratio"]),
        rate_error_ratio=float(values["rate_error_ratio"]),
    )


def lidar_mount_from_parameters(values: dict) -> Mount:
    return Mount.from_xyz_rpy(
        float(values["lidar_mount_x"]),
        float(values["lidar_mount_y"]),
        float(values["lidar_mount_z"]),
        math.radians(float(values["lidar_mount_roll_deg"])),
        math.radians(float(values["lidar_mount_pitch_deg"])),
        math.radians(float(values["lidar_mount_yaw_deg"])),
    )
