"""Driver node: camera + LiDAR + speed + route -> waypoints (nav_msgs/Path) and a steering class.

    ros2 run min2real driver_node --ros-args --params-file config/driver_node.param.yaml \\
        -r ~/input/camera:=/carla/ego_vehicle/rgb_front/image ...

A managed (lifecycle) node: `configure` loads the model (a model that cannot load fails the
transition with a clear error), `activate` starts the inference worker. With `autostart` (default
true) `main` runs both transitions itself; a vehicle stack that manages it sets autostart false
(launch_ros.actions.LifecycleNode, `ros2 lifecycle set /min2real_driver configure`, `activate`).

Inputs (relative names, remapped at launch; launch/*.launch.py map them to the CARLA bridge):
  ~/input/camera       sensor_msgs/Image (rgb8, bgr8, bgra8, rgba8, mono8) or CompressedImage
                       (camera_compressed); QoS camera_qos (reliable keep-last 1 by default)
  ~/input/camera_info  sensor_msgs/CameraInfo for the debug projection (use_camera_info)
  ~/input/lidar        sensor_msgs/PointCloud2, float32 x, y, z in the LiDAR frame (use_lidar);
                       LiDAR -> vehicle frame from tf2 (mount_source tf/auto) or lidar_mount_*
  ~/input/speed        std_msgs/Float32 m/s (speed_source speedometer)
  ~/input/odometry     nav_msgs/Odometry (speed_source odometry; pose for the route planner)
  ~/input/route        nav_msgs/Path in the map frame (target_source route; transient local)
  ~/input/target_point geometry_msgs/PointStamped in the output frame (target_source target_point)
  ~/input/command      std_msgs/Int8 contract.COMMANDS index (use_command)
Outputs (all stamped with the camera image's stamp, frame output_frame_id):
  ~/output/waypoints            nav_msgs/Path, contract.num_waypoints poses (REP 103: x forward, y left)
  ~/output/steer_probabilities  geometry_msgs/Vector3Stamped (x straight, y left, z right): the
                                steering class with the Path's stamp, to pair by stamp
  ~/output/steer_class          std_msgs/Int8 argmax of the same (0 straight, 1 left, 2 right),
                                published right after the Path and the probabilities of its frame
  ~/output/processing_time_ms   std_msgs/Float64: frame taken by the worker -> outputs published
  ~/output/pipeline_latency_ms  std_msgs/Float64: now - camera stamp when the outputs are published
  ~/output/debug_image, ~/output/markers   (debug_image, debug_markers)
  ~/output/domain_shift, ~/output/domain_logit   the domain-shift monitor, models exported with it
                                (driver_monitor; a second /diagnostics status, the score on the debug image)
  /diagnostics                  diagnostic_msgs/DiagnosticArray every diagnostics_period_s
                                (min2real.runtime.health: the ladder and its values)

Only the latest camera frame is processed: callbacks convert messages (numpy views) and hand the
newest frame to a worker thread; frames replaced before the worker took them are counted as
dropped, gaps in the camera stamps as lost in transport. Inference never runs on the executor
thread that serves subscriptions and /clock. Nothing is published from stale, missing or
malformed inputs, and nothing non-finite is ever published.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped, Vector3Stamped
from nav_msgs.msg import Odometry, Path
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Float32, Float64, Int8
from visualization_msgs.msg import MarkerArray

from min2real.contract import COMMANDS, STEER_CLASSES, ContractError
from min2real.runtime import health
from min2real.runtime.frame_assembly import (
    CameraFrame,
    FrameAssembler,
    LatestSlot,
    RateMeter,
    RunningStats,
    StampGaps,
)
from min2real.runtime.mounts import Mount, MountError
from min2real.runtime.overlay import CameraModel, debug_image
from min2real.runtime.route import RoutePlanner
from min2real_ros import outputs, qos
from min2real_ros.conversions import (
    MessageError,
    compressed_image_to_rgb,
    image_to_rgb,
    odometry_speed_mps,
    odometry_to_pose2d,
    path_to_xy,
    pointcloud2_to_xyz,
    stamp_to_seconds,
)
from min2real_ros.nodes import driver_diagnostics, driver_monitor
from min2real_ros.nodes.driver_parameters import (
    EXPECTED_RATES,
    PARAMETERS,
    configure_time_refusal,
    cross_check,
    freshness_limits,
    health_thresholds,
    lidar_mount_from_parameters,
)
from min2real_ros.parameters import declare, refusal
from min2real_ros.tf_mounts import TfMounts, tf2_available

NODE_NAME = "min2real_driver"
INPUTS = ("camera", "lidar", "speed", "target")
MALFORMED_SOURCES = ("camera", "lidar", "speed", "odometry", "route", "target", "command")

PolicyFactory = Callable[[str, str, str], Any]


def load_runtime_policy(model_path: str, domain: str, backend: str) -> Any:
    """The product factory: min2real.runtime.policy.load_policy (raises with a clear message)."""
    from min2real.runtime.policy import load_policy

    return load_policy(model_path, domain=domain, backend=backend)


class DriverNode(LifecycleNode):
    """The driver as an rclpy lifecycle node. `policy_factory(model_path, domain, backend)` builds
    the policy (default: runtime.policy.load_policy); tests inject their own."""

    def __init__(self, policy_factory: PolicyFactory | None = None, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._policy_factory = policy_factory or load_runtime_policy
        declare(self, PARAMETERS)
        self._values = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.policy: Any = None
        self.contract: Any = None
        self.domain_monitor: Any = None
        self.configure_error: str | None = None
        self._processing = False
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._slot: LatestSlot[CameraFrame] = LatestSlot()
        self._inputs: list = []
        self._outputs: dict[str, Any] = {}
        self._owned_timers: list = []
        self._stats_lock = threading.Lock()
        self._tf: TfMounts | None = None
        self.mount_source = "parameters"
        self.assembler = FrameAssembler(freshness_limits(self._values))
        self.route_planner = RoutePlanner(
            float(self._values["route_min_distance_m"]), float(self._values["route_max_distance_m"])
        )
        self._reset_counters()

    # ---- parameters ---------------------------------------------------------------------------
    def _p(self, name: str) -> Any:
        return self._values[name]

    def _on_set_parameters(self, parameters: list) -> SetParametersResult:
        """Apply a change to a live parameter or refuse it with the reason (read-only ones are
        refused by rclpy itself, ranges too; this checks allowed values and cross-rules)."""
        reason = refusal(PARAMETERS, parameters) or configure_time_refusal(
            self._state_machine.current_state[1], parameters
        )
        values = dict(self._values)
        values.update({p.name: p.value for p in parameters if p.name in PARAMETERS})
        if reason is None:
            reason = cross_check(values)
        if reason is None:
            try:
                limits = freshness_limits(values)
                thresholds = health_thresholds(values)
                lidar_mount = lidar_mount_from_parameters(values)
            except (ValueError, MountError) as error:
                reason = str(error)
        if reason is not None:
            self.get_logger().warning(f"parameter change refused: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        self._values = values
        self.assembler.limits = limits
        self._thresholds = thresholds
        if self.mount_source == "parameters":
            self._lidar_mount = lidar_mount
        self.route_planner.min_distance_m = float(values["route_min_distance_m"])
        self.route_planner.max_distance_m = float(values["route_max_distance_m"])
        for name, parameter_name in EXPECTED_RATES.items():
            self._gaps[name].expected_rate_hz = float(values[parameter_name]) if name == "camera" else 0.0
        return SetParametersResult(successful=True)

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _reset_counters(self) -> None:
        self.rates = {name: RateMeter() for name in (*INPUTS, "published")}
        camera_rate = float(self._values["expected_camera_rate_hz"])
        self._gaps = {
            "camera": StampGaps(camera_rate),
            "lidar": StampGaps(0.0),
            "speed": StampGaps(0.0),
            "target": StampGaps(0.0),
        }
        self.malformed: dict[str, int] = {name: 0 for name in MALFORMED_SOURCES}
        self.received = 0  # valid camera frames handed to the worker
        self.rejected = 0
        self.published = 0
        self.inference_errors = 0
        self.speed_clamped = 0
        self.last_reject_reason: str | None = None
        self.last_error: str | None = None
        self.last_malformed: str | None = None
        self._period = {key: 0 for key in ("camera", "published", "refused", "malformed", "errors", "lost", "clamped")}
        self._dropped_reported = 0
        self._slow_streak = 0
        self.qos_incompatible: dict[str, str] = {}  # topic -> what the publisher offers that we cannot match
        self.inference_ms = RunningStats()
        self.preprocess_ms = RunningStats()
        self.processing_ms = RunningStats()
        self._last_camera_stamp_s: float | None = None
        self._thresholds = health_thresholds(self._values)

    @property
    def frames_lost(self) -> int:
        """Camera frames missing between received stamps (at the expected camera rate)."""
        return int(self._gaps["camera"].lost)

    @property
    def frames_dropped(self) -> int:
        """Camera frames replaced in the latest-only slot before the worker took them."""
        return int(self._slot.dropped)

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
        self.assembler = FrameAssembler(freshness_limits(self._values))
        self.route_planner = RoutePlanner(
            float(self._p("route_min_distance_m")), float(self._p("route_max_distance_m"))
        )
        self._route_frame: str | None = None
        self._configure_mounts()
        self._camera_info: CameraInfo | None = None
        self._reset_counters()
        self._create_interfaces()
        self.domain_monitor = driver_monitor.make_monitor(self, policy)
        meta = policy.metadata
        self.get_logger().info(
            f"loaded {model_path}: variant {meta.variant}, domain {meta.domain}, backend {policy.backend_name}, "
            f"{self.contract.num_waypoints} waypoints every {self.contract.waypoint_dt_s} s; "
            f"sensor mounts from {self.mount_source}"
        )

    def _configure_mounts(self) -> None:
        source = str(self._p("mount_source"))
        if source == "auto":
            source = "tf" if tf2_available() else "parameters"
            if source == "parameters":
                self.get_logger().warning(
                    "mount_source auto: tf2_ros is not importable, sensor mounts come from the *_mount_* parameters"
                )
        self.mount_source = source
        self._lidar_mount = lidar_mount_from_parameters(self._values)
        if source == "tf" and self._tf is None:
            self._tf = TfMounts(self)  # raises with the package to install when tf2_ros is missing

    def _create_interfaces(self) -> None:
        depth = int(self._p("sensor_qos_depth"))
        sensor_qos = qos.sensor_qos(depth)

        def subscribe(msg_type: Any, topic: str, callback: Callable[[Any], None], profile: Any) -> None:
            # A publisher this subscription cannot match (a volatile route publisher for a
            # transient-local subscription, a best-effort camera for a reliable one) is reported.
            name = self.resolve_topic_name(topic)
            events = qos.subscription_event_callbacks(lambda status: self._on_incompatible_qos(name, profile, status))
            self._inputs.append(self.create_subscription(msg_type, topic, callback, profile, event_callbacks=events))

        camera_type = CompressedImage if bool(self._p("camera_compressed")) else Image
        subscribe(
            camera_type,
            "~/input/camera",
            self._on_camera,
            qos.camera_qos(str(self._p("camera_qos")), int(self._p("camera_qos_depth"))),
        )
        if bool(self._p("use_lidar")):
            subscribe(PointCloud2, "~/input/lidar", self._on_lidar, sensor_qos)
        speed_source, target_source = str(self._p("speed_source")), str(self._p("target_source"))
        if speed_source == "speedometer":
            subscribe(Float32, "~/input/speed", self._on_speed, sensor_qos)
        if speed_source == "odometry" or target_source == "route":
            subscribe(Odometry, "~/input/odometry", self._on_odometry, sensor_qos)
        if target_source == "route":
            subscribe(Path, "~/input/route", self._on_route, qos.route_qos(str(self._p("route_durability"))))
        else:
            subscribe(PointStamped, "~/input/target_point", self._on_target_point, sensor_qos)
        if bool(self._p("use_command")):
            subscribe(Int8, "~/input/command", self._on_command, sensor_qos)
        if bool(self._p("use_camera_info")):
            subscribe(CameraInfo, "~/input/camera_info", self._on_camera_info, sensor_qos)
        publish = self.create_lifecycle_publisher
        self._outputs = {
            "waypoints": publish(Path, "~/output/waypoints", qos.OUTPUT_QOS),
            "steer_probabilities": publish(Vector3Stamped, "~/output/steer_probabilities", qos.OUTPUT_QOS),
            "steer_class": publish(Int8, "~/output/steer_class", qos.OUTPUT_QOS),
            "target_speed": publish(Vector3Stamped, "~/output/target_speed", qos.OUTPUT_QOS),  # models with the head
            "processing_time_ms": publish(Float64, "~/output/processing_time_ms", qos.OUTPUT_QOS),
            "pipeline_latency_ms": publish(Float64, "~/output/pipeline_latency_ms", qos.OUTPUT_QOS),
            "diagnostics": self.create_publisher(DiagnosticArray, "/diagnostics", 10),
        }
        if bool(self._p("debug_image")):
            self._outputs["debug_image"] = publish(Image, "~/output/debug_image", qos.reliable_qos())
        if bool(self._p("debug_markers")):
            self._outputs["markers"] = publish(MarkerArray, "~/output/markers", qos.reliable_qos())
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
        self.policy = self.domain_monitor = None

    def destroy_node(self) -> None:
        self._processing = False
        self._stop_worker()
        super().destroy_node()

    # ---- input callbacks (executor thread: conversion only, never inference) ------------------
    def _on_incompatible_qos(self, topic: str, profile: Any, status: Any) -> None:
        text = qos.incompatible_qos_text(topic, profile, status)
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
            image_rgb = compressed_image_to_rgb(msg) if isinstance(msg, CompressedImage) else image_to_rgb(msg)
        except MessageError as error:
            self._malformed("camera", error)
            return
        stamp_s = stamp_to_seconds(msg.header.stamp)
        self.rates["camera"].tick(self._now_s())
        lost = self._gaps["camera"].add(stamp_s)
        with self._stats_lock:
            self._period["camera"] += 1
            self._period["lost"] += lost
            self.received += 1
            self._last_camera_stamp_s = stamp_s
        self._slot.put(CameraFrame(image_rgb, msg.header.stamp, stamp_s, msg.header.frame_id))

    def _sensor_mount(self, frame_id: str) -> Mount:
        if self.mount_source == "tf" and self._tf is not None:
            return self._tf.mount(str(self._p("output_frame_id")), frame_id)
        return self._lidar_mount

    def _on_lidar(self, msg: PointCloud2) -> None:
        if not self._processing:
            return
        try:
            points = pointcloud2_to_xyz(msg)
            mount = self._sensor_mount(msg.header.frame_id)
        except (MessageError, MountError) as error:
            self._malformed("lidar", error)
            return
        self.assembler.update_lidar(mount.transform_points(points), stamp_to_seconds(msg.header.stamp))
        self.rates["lidar"].tick(self._now_s())

    def _on_speed(self, msg: Float32) -> None:
        if not self._processing:
            return
        if not math.isfinite(msg.data):
            self._malformed("speed", MessageError(f"speed {msg.data} is not finite; expected m/s"))
            return
        now_s = self._now_s()  # std_msgs/Float32 has no header: its age is the receipt time
        if now_s <= 0.0:
            return  # use_sim_time before the first /clock: no receipt time to give it yet
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
                if not bool(self._p("use_command")):  # the route's own command (unknown on a route without commands)
                    self.assembler.update_command(step.command, stamp_s)
                self.rates["target"].tick(self._now_s())
        except MessageError as error:
            self._malformed("odometry", error)

    def _on_route(self, msg: Path) -> None:
        try:
            route_xy = path_to_xy(msg)
            # A ROS route (carla_waypoint_publisher) is dense and has no commands: reduced to
            # Garage's ~50 m plan with turn commands from its geometry (RoutePlanner.set_dense_route).
            self.route_planner.set_dense_route(route_xy)
        except (MessageError, ValueError) as error:
            self._malformed("route", error)
            return
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
                self._period["refused"] += 1
                self.last_reject_reason = result.reason
            self.get_logger().warning(f"no prediction: {result.reason}", throttle_duration_sec=2.0)
            return
        if result.speed_clamped:
            with self._stats_lock:
                self.speed_clamped += 1
                self._period["clamped"] += 1
        prediction = self.policy.predict(result.frame)
        waypoints = np.asarray(prediction.waypoints_ego, dtype=np.float64)
        probabilities = np.asarray(prediction.steer_probs, dtype=np.float64).reshape(-1)
        if waypoints.shape != (self.contract.num_waypoints, 2) or not np.isfinite(waypoints).all():
            raise ContractError(
                f"prediction waypoints have shape {waypoints.shape} or non-finite values; nothing published"
            )
        steer_class = int(prediction.steer_class)
        if (
            steer_class not in range(len(STEER_CLASSES))
            or probabilities.shape != (3,)
            or not np.isfinite(probabilities).all()
        ):
            raise ContractError(
                f"prediction steer class {prediction.steer_class} with probabilities {probabilities}; "
                f"expected 0..{len(STEER_CLASSES) - 1} and 3 finite probabilities"
            )
        label = None
        if self.domain_monitor is not None:
            label = driver_monitor.publish_reading(self, self.domain_monitor, prediction, camera.stamp, camera.stamp_s)
        self._publish_prediction(camera, waypoints, steer_class, probabilities, result.frame.target_point_ego, label)
        if prediction.target_speed_probs is not None:
            message = outputs.target_speed_message(
                prediction.target_speed_probs, camera.stamp, str(self._p("output_frame_id"))
            )
            self._outputs["target_speed"].publish(message)
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
        self,
        camera: CameraFrame,
        waypoints: np.ndarray,
        steer_class: int,
        probabilities: np.ndarray,
        target: np.ndarray,
        label: str | None = None,
    ) -> None:
        frame_id = str(self._p("output_frame_id"))
        self._outputs["waypoints"].publish(outputs.path_message(waypoints, camera.stamp, frame_id))
        self._outputs["steer_probabilities"].publish(
            outputs.steer_probabilities_message(probabilities, camera.stamp, frame_id)
        )
        self._outputs["steer_class"].publish(Int8(data=steer_class))
        if "debug_image" in self._outputs:
            image = debug_image(camera.image_rgb, self._camera_model(camera), waypoints, target, label)
            self._outputs["debug_image"].publish(outputs.rgb_image_message(image, camera.stamp, camera.frame_id))
        if "markers" in self._outputs:
            self._outputs["markers"].publish(outputs.markers_message(waypoints, target, camera.stamp, frame_id))

    def _camera_model(self, camera: CameraFrame) -> CameraModel:
        height, width = camera.image_rgb.shape[:2]
        mount = (float(self._p("camera_mount_x")), float(self._p("camera_mount_y")), float(self._p("camera_mount_z")))
        pitch = math.radians(float(self._p("camera_pitch_deg")))
        if self.mount_source == "tf" and self._tf is not None and camera.frame_id:
            try:
                camera_mount = self._tf.mount(str(self._p("output_frame_id")), camera.frame_id)
                mount, pitch = tuple(camera_mount.translation_m.tolist()), camera_mount.pitch_rad
            except MountError as error:
                self.get_logger().warning(
                    f"debug image: {error}; using the camera_mount_* parameters", throttle_duration_sec=10.0
                )
        info = self._camera_info
        if info is not None and info.width and info.height and info.k[0] > 0:
            k = info.k
            model = CameraModel(
                int(info.width), int(info.height), float(k[0]), float(k[4]), float(k[2]), float(k[5]), mount, pitch
            )
            return model.scaled_to(width, height)
        return CameraModel.from_horizontal_fov(width, height, float(self._p("camera_fov_deg")), mount, pitch)

    # ---- diagnostics -------------------------------------------------------------------------
    def health_snapshot(self) -> health.HealthSnapshot:
        """This period's counters (resets them) as the ROS-free health module reads them."""
        return driver_diagnostics.health_snapshot(self)

    def diagnostic_status(self) -> DiagnosticStatus:
        """The node's health now (also what /diagnostics carries); resets the period counters."""
        return driver_diagnostics.diagnostic_status(self)

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [self.diagnostic_status()]
        if self.domain_monitor is not None:
            array.status.append(driver_monitor.diagnostic_status(self, self.domain_monitor))
        self._outputs["diagnostics"].publish(array)


def main(args: list[str] | None = None) -> int:
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=args)
    try:
        node = DriverNode()
    except ValueError as error:  # a parameter override outside its range or allowed values
        rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {error}")
        rclpy.try_shutdown()
        return 1
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
