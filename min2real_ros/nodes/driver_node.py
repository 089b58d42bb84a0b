"""Driver node: camera + LiDAR + speed + route -> waypoints (nav_msgs/Path) and a steering class.

`ros2 run min2real driver_node --ros-args --params-file config/driver_node.param.yaml`

A managed (lifecycle) node: `configure` loads the model (a model that cannot load fails the
transition with a clear error), `activate` starts the inference worker. With the `autostart`
parameter (default true) `main` runs both transitions itself, so `ros2 run` just works; a vehicle
stack that wants a managed start sets autostart false and drives the transitions
(`ros2 lifecycle set /min2real_driver configure`, then `activate`).

Subscribed (names are parameters, defaults match the CARLA ROS bridge with role ego_vehicle):
  camera      sensor_msgs/Image (rgb8, bgr8, bgra8, rgba8, mono8) or sensor_msgs/CompressedImage
  lidar       sensor_msgs/PointCloud2 with float32 x, y, z (LiDAR frame; the LiDAR -> base_link
              transform comes from the lidar_mount_* parameters: tf2 is not used, users with a
              URDF copy the static transform into them)
  speed       std_msgs/Float32 (speedometer, m/s) or the twist of nav_msgs/Odometry
  route       nav_msgs/Path in the map frame (transient local, as carla_waypoint_publisher
              sends it) + nav_msgs/Odometry -> target point (runtime.route.RoutePlanner), or a
              target point directly as geometry_msgs/PointStamped in base_link
  command     optional std_msgs/Int8 driving command (contract.COMMANDS index)
Published (relative to the node, all stamped with the camera image's stamp):
  ~/waypoints            nav_msgs/Path in base_link (REP 103: x forward, y left), contract.num_waypoints poses
  ~/steer_class          std_msgs/Int8: 0 straight, 1 left, 2 right (contract.STEER_CLASSES)
  ~/processing_time_ms   std_msgs/Float64: frame taken by the worker -> outputs published
  ~/pipeline_latency_ms  std_msgs/Float64: now - camera stamp when the outputs are published
  ~/debug_image          sensor_msgs/Image rgb8 with the waypoints drawn (debug_image parameter)
  ~/markers              visualization_msgs/MarkerArray (debug_markers parameter)
  /diagnostics           diagnostic_msgs/DiagnosticArray at 1 Hz

Only the latest camera frame is processed: callbacks convert messages (numpy views) and hand the
newest frame to a worker thread; frames replaced before the worker took them are counted as
dropped. Inference never runs on the executor thread that serves subscriptions and /clock.
Nothing is published from stale or missing inputs, and nothing non-finite is ever published.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PointStamped, PoseStamped
from nav_msgs.msg import Odometry, Path
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Float32, Float64, Int8
from visualization_msgs.msg import Marker, MarkerArray

from min2real.contract import COMMANDS, STEER_CLASSES, ContractError
from min2real.runtime.frame_assembly import (
    CameraFrame,
    FrameAssembler,
    FreshnessLimits,
    LatestSlot,
    RateMeter,
    RunningStats,
)
from min2real.runtime.overlay import COLOR_PREDICTED, COLOR_TARGET, CameraModel, draw_ground_points
from min2real.runtime.route import RoutePlanner
from min2real_ros.conversions import (
    MessageError,
    compressed_image_to_rgb,
    image_to_rgb,
    odometry_speed_mps,
    odometry_to_pose2d,
    path_to_xy,
    pointcloud2_to_xyz,
    ros_uint8_array,
    stamp_to_seconds,
    transform_points_xyz_yaw,
)

NODE_NAME = "min2real_driver"

# name -> (default, description); the YAML in config/driver_node.param.yaml documents the same.
PARAMETERS: dict[str, tuple[Any, str]] = {
    "model_path": ("", "exported model (.onnx, or .engine/.plan with its .json sidecar)"),
    "backend": ("auto", "auto | tensorrt | onnxruntime-cuda | onnxruntime-cpu | torch"),
    "domain": ("sim", "sim (graph with the V2R adapter, simulator images) | real; must match the artifact"),
    "autostart": (True, "configure + activate at start (false: wait for lifecycle transitions)"),
    "output_frame_id": ("base_link", "frame of the published Path and markers"),
    "camera_topic": ("/carla/ego_vehicle/rgb_front/image", "camera topic"),
    "camera_compressed": (False, "subscribe sensor_msgs/CompressedImage (JPEG/PNG) instead of Image"),
    "lidar_topic": ("/carla/ego_vehicle/lidar", "PointCloud2 topic; empty or none = no LiDAR (all-zero BEV)"),
    "lidar_mount_x": (0.0, "LiDAR position in base_link, metres (CARLA Garage mount: 0, 0, 2.5)"),
    "lidar_mount_y": (0.0, "metres"),
    "lidar_mount_z": (2.5, "metres"),
    "lidar_mount_yaw_deg": (0.0, "LiDAR heading in base_link, degrees counter-clockwise"),
    "speed_source": ("speedometer", "speedometer (std_msgs/Float32) | odometry (twist.linear.x)"),
    "speed_topic": ("/carla/ego_vehicle/speedometer", "std_msgs/Float32 speed in m/s"),
    "odometry_topic": ("/carla/ego_vehicle/odometry", "nav_msgs/Odometry (pose in the route's frame)"),
    "target_source": ("route", "route (nav_msgs/Path + odometry) | target_point (geometry_msgs/PointStamped)"),
    "route_topic": ("/carla/ego_vehicle/waypoints", "nav_msgs/Path, transient local"),
    "route_durability": (
        "transient_local",
        "route subscription durability: transient_local (latched, as "
        "carla_waypoint_publisher) | volatile (a route publisher that is not latched)",
    ),
    "target_point_topic": ("~/target_point", "geometry_msgs/PointStamped in base_link"),
    "command_topic": ("", "std_msgs/Int8 driving command; empty or none = unknown command"),
    "route_min_distance_m": (7.5, "route planner: pop route points within this distance (Garage)"),
    "route_max_distance_m": (50.0, "route planner: look at most this far along the route (Garage)"),
    "max_image_age_s": (0.25, "camera frames older than this are not processed"),
    "max_lidar_skew_s": (0.15, "nearest LiDAR sweep must be within this of the camera stamp"),
    "max_speed_age_s": (0.5, "speed must be at least this recent"),
    "max_target_age_s": (1.0, "target point (odometry / target topic) must be at least this recent"),
    "require_lidar": (True, "refuse frames without a matching LiDAR sweep (false: all-zero BEV)"),
    "sensor_qos_depth": (5, "keep-last depth of the best-effort sensor subscriptions"),
    "diagnostics_period_s": (1.0, "diagnostics publishing period"),
    "processing_time_warn_ms": (100.0, "processing time above this is a WARN"),
    "processing_time_error_count": (5, "this many consecutive slow frames is an ERROR"),
    "debug_image": (False, "publish ~/debug_image with the waypoints drawn on the camera frame"),
    "debug_markers": (False, "publish ~/markers (waypoints and target point)"),
    "camera_info_topic": ("", "sensor_msgs/CameraInfo for the debug projection; empty = camera_* parameters"),
    "camera_fov_deg": (110.0, "debug projection: horizontal field of view (CARLA camera model)"),
    "camera_mount_x": (-1.5, "debug projection: camera position in base_link, metres"),
    "camera_mount_y": (0.0, "metres"),
    "camera_mount_z": (2.0, "metres"),
    "camera_pitch_deg": (0.0, "debug projection: positive looks down"),
}

PolicyFactory = Callable[[str, str, str], Any]


def load_runtime_policy(model_path: str, domain: str, backend: str) -> Any:
    """The product factory: min2real.runtime.policy.load_policy (raises with a clear message)."""
    from min2real.runtime.policy import load_policy

    return load_policy(model_path, domain=domain, backend=backend)


def _sensor_qos(depth: int) -> QoSProfile:
    return QoSProfile(
        depth=max(1, int(depth)),
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.VOLATILE,
    )


ROUTE_DURABILITIES = {"transient_local": DurabilityPolicy.TRANSIENT_LOCAL, "volatile": DurabilityPolicy.VOLATILE}


def _route_qos(durability: str) -> QoSProfile:
    if durability not in ROUTE_DURABILITIES:
        raise ValueError(f"parameter route_durability={durability!r}; expected one of {tuple(ROUTE_DURABILITIES)}")
    return QoSProfile(
        depth=1,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=ROUTE_DURABILITIES[durability],
    )


def _subscription_event_callbacks(on_incompatible_qos: Callable[[Any], None]) -> Any:
    """SubscriptionEventCallbacks reporting incompatible QoS (rclpy.event_handler on Iron/Jazzy,
    rclpy.qos_event on Humble)."""
    try:
        from rclpy.event_handler import SubscriptionEventCallbacks
    except ImportError:  # Humble
        from rclpy.qos_event import SubscriptionEventCallbacks
    return SubscriptionEventCallbacks(incompatible_qos=on_incompatible_qos)


def _policy_name(kind: Any) -> str:
    from rclpy.qos import QoSPolicyKind

    try:
        return QoSPolicyKind(int(kind)).name.lower()
    except ValueError:
        return f"policy {kind}"


OUTPUT_QOS = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


class DriverNode(LifecycleNode):
    """The driver as an rclpy lifecycle node. `policy_factory(model_path, domain, backend)` builds
    the policy (default: runtime.policy.load_policy); tests inject their own."""

    def __init__(self, policy_factory: PolicyFactory | None = None, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._policy_factory = policy_factory or load_runtime_policy
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        self.policy: Any = None
        self.configure_error: str | None = None
        self._processing = False
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._slot: LatestSlot[CameraFrame] = LatestSlot()
        self._inputs: list = []
        self._outputs: dict[str, Any] = {}
        self._owned_timers: list = []
        self._stats_lock = threading.Lock()
        self._reset_counters()

    # ---- parameters ---------------------------------------------------------------------------
    def _p(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _topic(self, name: str) -> str:
        """A topic parameter; "" or "none" disables the input (launch files cannot pass empty strings reliably)."""
        value = str(self._p(name)).strip()
        return "" if value.lower() in ("", "none") else value

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _reset_counters(self) -> None:
        self.rates = {name: RateMeter() for name in ("camera", "lidar", "speed", "target", "published")}
        self.malformed: dict[str, int] = {
            name: 0 for name in ("camera", "lidar", "speed", "odometry", "route", "target", "command")
        }
        self.rejected = 0
        self.published = 0
        self.inference_errors = 0
        self.last_reject_reason: str | None = None
        self.last_error: str | None = None
        self.last_malformed: str | None = None
        self._period = {"rejected": 0, "published": 0, "malformed": 0, "errors": 0, "dropped": 0, "camera": 0}
        self._slow_streak = 0
        self.qos_incompatible: dict[str, str] = {}  # input -> what the publisher offers that we cannot match
        self.inference_ms = RunningStats()
        self.preprocess_ms = RunningStats()
        self.processing_ms = RunningStats()
        self._last_camera_stamp_s: float | None = None

    # ---- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        del state
        try:
            self._configure()
        except Exception as error:  # any load failure must fail the transition with its message
            self.configure_error = f"{type(error).__name__}: {error}"
            self.get_logger().error(f"configure failed: {self.configure_error}")
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        self.configure_error = None
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        domain, backend, model_path = str(self._p("domain")), str(self._p("backend")), str(self._p("model_path"))
        if domain not in ("sim", "real"):
            raise ValueError(f"parameter domain={domain!r}; expected 'sim' or 'real'")
        if not model_path:
            raise ValueError("parameter model_path is empty; expected the path of an exported min2real model")
        policy = self._policy_factory(model_path, domain, backend)
        model_domain = getattr(getattr(policy, "metadata", None), "domain", None)
        if model_domain != domain:
            raise ContractError(
                f"model {model_path} was exported for domain {model_domain!r} but the domain parameter is {domain!r}"
            )
        self.policy = policy
        self.contract = policy.contract
        limits = FreshnessLimits(
            max_image_age_s=float(self._p("max_image_age_s")),
            max_lidar_skew_s=float(self._p("max_lidar_skew_s")),
            max_speed_age_s=float(self._p("max_speed_age_s")),
            max_target_age_s=float(self._p("max_target_age_s")),
            require_lidar=bool(self._p("require_lidar")) and bool(self._topic("lidar_topic")),
        )
        self.assembler = FrameAssembler(limits)
        self.route_planner = RoutePlanner(
            float(self._p("route_min_distance_m")), float(self._p("route_max_distance_m"))
        )
        self._route_frame: str | None = None
        self._lidar_mount = (
            (float(self._p("lidar_mount_x")), float(self._p("lidar_mount_y")), float(self._p("lidar_mount_z"))),
            math.radians(float(self._p("lidar_mount_yaw_deg"))),
        )
        self._camera_info: CameraInfo | None = None
        self._reset_counters()
        self._create_interfaces()
        meta = policy.metadata
        self.get_logger().info(
            f"loaded {model_path}: variant {meta.variant}, domain {meta.domain}, backend {policy.backend_name}, "
            f"{self.contract.num_waypoints} waypoints every {self.contract.waypoint_dt_s} s"
        )

    def _create_interfaces(self) -> None:
        sensor_qos = _sensor_qos(int(self._p("sensor_qos_depth")))
        route_qos = _route_qos(str(self._p("route_durability")))

        def subscribe(msg_type: Any, topic: str, callback: Callable[[Any], None], qos: QoSProfile) -> None:
            # Best-effort sensor subscriptions match reliable publishers too; a publisher this
            # subscription cannot match (a volatile route publisher for a transient-local
            # subscription, a best-effort one for the reliable route) is reported in diagnostics.
            events = _subscription_event_callbacks(lambda status: self._on_incompatible_qos(topic, qos, status))
            self._inputs.append(self.create_subscription(msg_type, topic, callback, qos, event_callbacks=events))

        camera_type = CompressedImage if bool(self._p("camera_compressed")) else Image
        subscribe(camera_type, str(self._p("camera_topic")), self._on_camera, sensor_qos)
        if self._topic("lidar_topic"):
            subscribe(PointCloud2, self._topic("lidar_topic"), self._on_lidar, sensor_qos)
        speed_source, target_source = str(self._p("speed_source")), str(self._p("target_source"))
        if speed_source not in ("speedometer", "odometry"):
            raise ValueError(f"parameter speed_source={speed_source!r}; expected 'speedometer' or 'odometry'")
        if target_source not in ("route", "target_point"):
            raise ValueError(f"parameter target_source={target_source!r}; expected 'route' or 'target_point'")
        if speed_source == "speedometer":
            subscribe(Float32, str(self._p("speed_topic")), self._on_speed, sensor_qos)
        if speed_source == "odometry" or target_source == "route":
            subscribe(Odometry, str(self._p("odometry_topic")), self._on_odometry, sensor_qos)
        if target_source == "route":
            subscribe(Path, str(self._p("route_topic")), self._on_route, route_qos)
        else:
            subscribe(PointStamped, str(self._p("target_point_topic")), self._on_target_point, sensor_qos)
        if self._topic("command_topic"):
            subscribe(Int8, self._topic("command_topic"), self._on_command, sensor_qos)
        if self._topic("camera_info_topic"):
            subscribe(CameraInfo, self._topic("camera_info_topic"), self._on_camera_info, sensor_qos)
        publish = self.create_lifecycle_publisher
        self._outputs = {
            "waypoints": publish(Path, "~/waypoints", OUTPUT_QOS),
            "steer_class": publish(Int8, "~/steer_class", OUTPUT_QOS),
            "processing_time_ms": publish(Float64, "~/processing_time_ms", OUTPUT_QOS),
            "pipeline_latency_ms": publish(Float64, "~/pipeline_latency_ms", OUTPUT_QOS),
            "diagnostics": self.create_publisher(DiagnosticArray, "/diagnostics", 10),
        }
        if bool(self._p("debug_image")):
            self._outputs["debug_image"] = publish(Image, "~/debug_image", OUTPUT_QOS)
        if bool(self._p("debug_markers")):
            self._outputs["markers"] = publish(MarkerArray, "~/markers", OUTPUT_QOS)
        self._owned_timers.append(self.create_timer(float(self._p("diagnostics_period_s")), self._publish_diagnostics))

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop.clear()
        self._slot.reopen()
        self._worker = threading.Thread(target=self._worker_loop, name="min2real-inference", daemon=True)
        self._worker.start()
        self._processing = True
        self.get_logger().info("active: processing camera frames")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._processing = False
        self._stop_worker()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        del state
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        del state
        self._processing = False
        self._stop_worker()
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _stop_worker(self) -> None:
        self._stop.set()
        self._slot.close()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None

    def _teardown(self) -> None:
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        for timer in self._owned_timers:
            self.destroy_timer(timer)
        for name, publisher in self._outputs.items():
            if name == "diagnostics":
                self.destroy_publisher(publisher)
            else:
                self.destroy_lifecycle_publisher(publisher)
        self._inputs, self._owned_timers, self._outputs = [], [], {}
        self.policy = None

    def destroy_node(self) -> None:
        self._processing = False
        self._stop_worker()
        super().destroy_node()

    @property
    def frames_dropped(self) -> int:
        """Camera frames replaced in the latest-only slot before the worker took them."""
        return int(self._slot.dropped)

    # ---- input callbacks (executor thread: conversion only, never inference) ------------------
    def _on_incompatible_qos(self, topic: str, qos: QoSProfile, status: Any) -> None:
        policy = _policy_name(status.last_policy_kind)
        wanted = {"durability": qos.durability.name.lower(), "reliability": qos.reliability.name.lower()}.get(
            policy, ""
        )
        text = (
            f"a publisher on {topic} offers QoS incompatible with this subscription ({policy}"
            + (f": the subscription requests {wanted}" if wanted else "")
            + "); its messages are not received"
            + (
                "; set route_durability to volatile for a route publisher that is not latched"
                if policy == "durability"
                else ""
            )
        )
        with self._stats_lock:
            self.qos_incompatible[topic] = text
        self.get_logger().error(text, throttle_duration_sec=5.0)

    def _malformed(self, source: str, error: Exception) -> None:
        with self._stats_lock:
            self.malformed[source] += 1
            self._period["malformed"] += 1
            self.last_malformed = f"{source}: {error}"
        self.get_logger().warning(f"rejected {source} message: {error}", throttle_duration_sec=2.0)

    def _on_camera(self, msg: Image | CompressedImage) -> None:
        if not self._processing:
            return
        try:
            if isinstance(msg, CompressedImage):
                image_rgb = compressed_image_to_rgb(msg)
            else:
                image_rgb = image_to_rgb(msg)
        except MessageError as error:
            self._malformed("camera", error)
            return
        stamp_s = stamp_to_seconds(msg.header.stamp)
        now_s = self._now_s()
        self.rates["camera"].tick(now_s)
        with self._stats_lock:
            self._period["camera"] += 1
            self._last_camera_stamp_s = stamp_s
        self._slot.put(CameraFrame(image_rgb, msg.header.stamp, stamp_s, msg.header.frame_id))

    def _on_lidar(self, msg: PointCloud2) -> None:
        if not self._processing:
            return
        try:
            points = pointcloud2_to_xyz(msg)
        except MessageError as error:
            self._malformed("lidar", error)
            return
        translation, yaw = self._lidar_mount
        self.assembler.update_lidar(
            transform_points_xyz_yaw(points, translation, yaw), stamp_to_seconds(msg.header.stamp)
        )
        self.rates["lidar"].tick(self._now_s())

    def _on_speed(self, msg: Float32) -> None:
        if not self._processing:
            return
        if not math.isfinite(msg.data):
            self._malformed("speed", MessageError(f"speed {msg.data} is not finite; expected m/s"))
            return
        now_s = self._now_s()  # std_msgs/Float32 has no header: its age is the receipt time
        self.assembler.update_speed(float(msg.data), now_s)
        self.rates["speed"].tick(now_s)

    def _on_odometry(self, msg: Odometry) -> None:
        if not self._processing:
            return
        stamp_s = stamp_to_seconds(msg.header.stamp)
        try:
            if str(self._p("speed_source")) == "odometry":
                self.assembler.update_speed(odometry_speed_mps(msg), stamp_s)
                self.rates["speed"].tick(self._now_s())
            if str(self._p("target_source")) == "route" and self.route_planner.has_route:
                if self._route_frame and msg.header.frame_id and msg.header.frame_id != self._route_frame:
                    raise MessageError(
                        f"odometry frame {msg.header.frame_id!r} differs from the route frame {self._route_frame!r}; "
                        "expected both in the same (map) frame"
                    )
                xy, yaw = odometry_to_pose2d(msg)
                step = self.route_planner.step(xy, yaw)
                self.assembler.update_target(step.target_point_ego, stamp_s)
                self.rates["target"].tick(self._now_s())
        except MessageError as error:
            self._malformed("odometry", error)

    def _on_route(self, msg: Path) -> None:
        try:
            route_xy = path_to_xy(msg)
        except MessageError as error:
            self._malformed("route", error)
            return
        self.route_planner.set_route(route_xy)
        self._route_frame = msg.header.frame_id or None
        self.get_logger().info(f"route received: {route_xy.shape[0]} points in frame {msg.header.frame_id!r}")

    def _on_target_point(self, msg: PointStamped) -> None:
        if not self._processing:
            return
        target = np.array([msg.point.x, msg.point.y], dtype=np.float64)
        frame = msg.header.frame_id
        expected = str(self._p("output_frame_id"))
        if not np.isfinite(target).all() or (frame and frame != expected):
            self._malformed(
                "target",
                MessageError(
                    f"target point ({msg.point.x}, {msg.point.y}) in frame {frame!r}; expected finite metres in {expected!r}"
                ),
            )
            return
        self.assembler.update_target(target, stamp_to_seconds(msg.header.stamp))
        self.rates["target"].tick(self._now_s())

    def _on_command(self, msg: Int8) -> None:
        if not 0 <= msg.data < len(COMMANDS):
            self._malformed("command", MessageError(f"command {msg.data}; expected 0..{len(COMMANDS) - 1} {COMMANDS}"))
            return
        self.assembler.update_command(int(msg.data), self._now_s())

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    # ---- inference worker ----------------------------------------------------------------------
    def _worker_loop(self) -> None:
        while not self._stop.is_set():
            camera = self._slot.take(timeout_s=0.1)
            if camera is None:
                continue
            try:
                self._process(camera)
            except Exception as error:  # the worker must survive anything one frame does
                with self._stats_lock:
                    self.inference_errors += 1
                    self._period["errors"] += 1
                    self.last_error = f"{type(error).__name__}: {error}"
                self.get_logger().error(f"frame failed: {self.last_error}", throttle_duration_sec=2.0)

    def _process(self, camera: CameraFrame) -> None:
        started = time.perf_counter()
        result = self.assembler.assemble(camera, self._now_s())
        if result.frame is None:
            with self._stats_lock:
                self.rejected += 1
                self._period["rejected"] += 1
                self.last_reject_reason = result.reason
            self.get_logger().warning(f"no prediction: {result.reason}", throttle_duration_sec=2.0)
            return
        prediction = self.policy.predict(result.frame)
        waypoints = np.asarray(prediction.waypoints_ego, dtype=np.float64)
        if waypoints.shape != (self.contract.num_waypoints, 2) or not np.isfinite(waypoints).all():
            raise ContractError(
                f"prediction waypoints have shape {waypoints.shape} or non-finite values; nothing published"
            )
        if int(prediction.steer_class) not in range(len(STEER_CLASSES)):
            raise ContractError(
                f"prediction steer class {prediction.steer_class}; expected 0..{len(STEER_CLASSES) - 1}"
            )
        self._publish_prediction(camera, waypoints, int(prediction.steer_class), result.frame.target_point_ego)
        processing_ms = (time.perf_counter() - started) * 1e3
        latency_ms = (self._now_s() - camera.stamp_s) * 1e3
        self._outputs["processing_time_ms"].publish(Float64(data=processing_ms))
        self._outputs["pipeline_latency_ms"].publish(Float64(data=latency_ms))
        self.inference_ms.add(prediction.inference_ms)
        self.preprocess_ms.add(prediction.preprocess_ms)
        self.processing_ms.add(processing_ms)
        self.rates["published"].tick(self._now_s())
        with self._stats_lock:
            self.published += 1
            self._period["published"] += 1
            slow = processing_ms > float(self._p("processing_time_warn_ms"))
            self._slow_streak = self._slow_streak + 1 if slow else 0

    def _publish_prediction(
        self, camera: CameraFrame, waypoints: np.ndarray, steer_class: int, target: np.ndarray
    ) -> None:
        frame_id = str(self._p("output_frame_id"))
        path = Path()
        path.header.stamp = camera.stamp
        path.header.frame_id = frame_id
        # Heading of each pose along the trajectory (from the previous point, the first from the origin).
        previous = np.vstack([np.zeros((1, 2)), waypoints[:-1]])
        headings = np.arctan2(waypoints[:, 1] - previous[:, 1], waypoints[:, 0] - previous[:, 0])
        for (x, y), heading in zip(waypoints, headings):
            pose = PoseStamped()
            pose.header = path.header
            pose.pose.position.x, pose.pose.position.y = float(x), float(y)
            pose.pose.orientation.z, pose.pose.orientation.w = math.sin(heading / 2), math.cos(heading / 2)
            path.poses.append(pose)
        self._outputs["waypoints"].publish(path)
        self._outputs["steer_class"].publish(Int8(data=steer_class))
        if "debug_image" in self._outputs:
            self._publish_debug_image(camera, waypoints, target)
        if "markers" in self._outputs:
            self._outputs["markers"].publish(self._markers(path.header, waypoints, target))

    def _camera_model(self, width: int, height: int) -> Any:
        mount = (float(self._p("camera_mount_x")), float(self._p("camera_mount_y")), float(self._p("camera_mount_z")))
        pitch = math.radians(float(self._p("camera_pitch_deg")))
        info = self._camera_info
        if info is not None and info.width and info.height and info.k[0] > 0:
            model = CameraModel(
                int(info.width),
                int(info.height),
                float(info.k[0]),
                float(info.k[4]),
                float(info.k[2]),
                float(info.k[5]),
                mount,
                pitch,
            )
            return model.scaled_to(width, height)
        return CameraModel.from_horizontal_fov(width, height, float(self._p("camera_fov_deg")), mount, pitch)

    def _publish_debug_image(self, camera: CameraFrame, waypoints: np.ndarray, target: np.ndarray) -> None:
        image = np.ascontiguousarray(camera.image_rgb)
        height, width = image.shape[:2]
        target_ego = np.asarray(target, dtype=np.float64).reshape(1, 2)
        draw_ground_points(
            image,
            self._camera_model(width, height),
            [(waypoints, COLOR_PREDICTED), (target_ego, COLOR_TARGET)],
            thickness_px=2,
            radius_px=5,
        )
        msg = Image()
        msg.header.stamp = camera.stamp
        msg.header.frame_id = camera.frame_id
        msg.height, msg.width, msg.encoding, msg.step = height, width, "rgb8", 3 * width
        msg.data = ros_uint8_array(image.tobytes())
        self._outputs["debug_image"].publish(msg)

    @staticmethod
    def _markers(header: Any, waypoints: np.ndarray, target: np.ndarray) -> MarkerArray:
        line = Marker()
        line.header, line.ns, line.id, line.type, line.action = (
            header,
            "min2real_waypoints",
            0,
            Marker.LINE_STRIP,
            Marker.ADD,
        )
        line.scale.x = 0.15
        line.color.r, line.color.g, line.color.b, line.color.a = 0.9, 0.15, 0.15, 1.0
        line.pose.orientation.w = 1.0
        line.points = [Point(x=0.0, y=0.0, z=0.0)] + [Point(x=float(x), y=float(y), z=0.0) for x, y in waypoints]
        goal = Marker()
        goal.header, goal.ns, goal.id, goal.type, goal.action = (
            header,
            "min2real_target_point",
            1,
            Marker.SPHERE,
            Marker.ADD,
        )
        goal.pose.position.x, goal.pose.position.y = float(target[0]), float(target[1])
        goal.pose.orientation.w = 1.0
        goal.scale.x = goal.scale.y = goal.scale.z = 0.6
        goal.color.r, goal.color.g, goal.color.b, goal.color.a = 0.15, 0.45, 1.0, 1.0
        return MarkerArray(markers=[line, goal])

    # ---- diagnostics -------------------------------------------------------------------------
    def diagnostic_status(self) -> DiagnosticStatus:
        """The node's health now (also what the 1 Hz /diagnostics message carries); resets the period counters."""
        now_s = self._now_s()
        with self._stats_lock:
            period = dict(self._period)
            self._period = {key: 0 for key in self._period}
            slow_streak = self._slow_streak
            camera_stamp = self._last_camera_stamp_s
            qos_problems = list(self.qos_incompatible.values())
        dropped_total = self._slot.dropped
        period["dropped"] = dropped_total - getattr(self, "_dropped_reported", 0)
        self._dropped_reported = dropped_total
        level, message = DiagnosticStatus.OK, "publishing waypoints"
        warn_ms = float(self._p("processing_time_warn_ms"))
        last_processing = self.processing_ms.last
        if not self._processing:
            level, message = DiagnosticStatus.WARN, "inactive (lifecycle)"
        elif period["camera"] == 0:
            level, message = DiagnosticStatus.ERROR, "no valid camera frames in the last period"
            if period["malformed"]:
                message += f"; malformed input: {self.last_malformed}"
            if qos_problems:
                message += f"; {qos_problems[-1]}"
        elif period["errors"]:
            level, message = DiagnosticStatus.ERROR, f"inference failed: {self.last_error}"
        elif period["rejected"] and not period["published"]:
            level, message = DiagnosticStatus.ERROR, f"no prediction: {self.last_reject_reason}"
            if qos_problems:
                message += f"; {qos_problems[-1]}"
        elif slow_streak >= int(self._p("processing_time_error_count")):
            level, message = DiagnosticStatus.ERROR, f"{slow_streak} consecutive frames slower than {warn_ms:g} ms"
        elif qos_problems:
            level, message = DiagnosticStatus.WARN, qos_problems[-1]
        elif period["malformed"]:
            level, message = DiagnosticStatus.WARN, f"malformed input: {self.last_malformed}"
        elif period["rejected"]:
            level, message = DiagnosticStatus.WARN, f"some frames refused: {self.last_reject_reason}"
        elif last_processing is not None and last_processing > warn_ms:
            level, message = DiagnosticStatus.WARN, f"processing time {last_processing:.1f} ms > {warn_ms:g} ms"
        elif period["dropped"]:
            level, message = DiagnosticStatus.WARN, f"{period['dropped']} camera frames dropped while busy"

        values: dict[str, Any] = {}
        for name, meter in self.rates.items():
            values[f"{name}_rate_hz"] = f"{meter.rate_hz(now_s):.2f}"
        ages = self.assembler.ages_s(now_s) if hasattr(self, "assembler") else {}
        ages["camera"] = None if camera_stamp is None else now_s - camera_stamp
        for name, age in ages.items():
            values[f"{name}_age_s"] = "never" if age is None else f"{age:.3f}"
        for name, stats in (
            ("inference_ms", self.inference_ms),
            ("preprocess_ms", self.preprocess_ms),
            ("processing_ms", self.processing_ms),
        ):
            last, mean, peak, _count = stats.summary()
            stats.reset()
            values[f"{name}_last"] = "n/a" if last is None else f"{last:.2f}"
            values[f"{name}_mean"] = "n/a" if mean is None else f"{mean:.2f}"
            values[f"{name}_max"] = "n/a" if peak is None else f"{peak:.2f}"
        values.update(
            {
                "frames_published": self.published,
                "frames_refused": self.rejected,
                "frames_dropped": dropped_total,
                "inference_errors": self.inference_errors,
                "last_refusal": self.last_reject_reason or "",
                "last_error": self.last_error or "",
                "last_malformed": self.last_malformed or "",
                "qos_incompatible": " | ".join(qos_problems),
            }
        )
        for source, count in self.malformed.items():
            values[f"malformed_{source}"] = count
        if self.policy is not None:
            meta = self.policy.metadata
            values.update(
                {
                    "backend": self.policy.backend_name,
                    "model_variant": meta.variant,
                    "model_domain": meta.domain,
                    "model_checkpoint_sha256": str(getattr(meta, "checkpoint_sha256", ""))[:16],
                    "model_path": str(self._p("model_path")),
                }
            )
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_name()}: driving policy",
            message=message,
            hardware_id=str(values.get("backend", "none")),
        )
        status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
        return status

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [self.diagnostic_status()]
        self._outputs["diagnostics"].publish(array)


def main(args: list[str] | None = None) -> int:
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=args)
    node = DriverNode()
    try:
        if bool(node.get_parameter("autostart").value):
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal(f"cannot start: {node.configure_error}")
                return 1
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal("cannot start: the activate transition failed")
                return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
