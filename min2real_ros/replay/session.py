"""The rclpy side of one replay: a private context, the product's driver and controller nodes,
a player node (one publisher per replayed topic, raw CDR bytes) and a recorder node (raw
subscriptions to everything the nodes publish), spun by one SingleThreadedExecutor in a
background thread. Messages travel over ROS 2 (DDS), never by direct calls; the nodes run on
simulation time driven by the bag's /clock (or one made from the bag timestamps).
"""

from __future__ import annotations

import importlib
import math
import threading
import time
from typing import Any

import numpy as np

from min2real_ros.conversions import path_to_xy
from min2real_ros.launch_support import (
    carla_control_topic,
    carla_driver_remappings,
    controller_remappings,
    remap_cli_args,
)
from min2real_ros.replay.bag import QOS_LATCHED, QOS_RELIABLE, BagInfo, BagWriter
from min2real_ros.replay.synth_bag import BridgeTopics

DRIVER_NODE_NAME = "min2real_driver"
CONTROLLER_NODE_NAME = "min2real_controller"


class ReplayError(RuntimeError):
    """The replay cannot run (bad bag, model that does not load, nodes that never connect)."""


def required_topics(topics: BridgeTopics, use_lidar: bool) -> dict[str, str]:
    """The bag topics the driver needs (name -> type): camera, LiDAR, speedometer, odometry, route."""
    types = topics.types()
    names = [topics.camera, topics.speedometer, topics.odometry, topics.route]
    if use_lidar:
        names.insert(1, topics.lidar)
    return {name: types[name] for name in names}


def expected_rates(info: BagInfo, topics: BridgeTopics, use_lidar: bool) -> dict[str, float]:
    """The driver's expected_*_rate_hz parameters from the bag: messages / duration per input."""
    duration_s = max(info.duration_s, 1e-3)

    def rate(topic: str) -> float:
        entry = info.topics.get(topic)
        return round(entry.count / duration_s, 3) if entry is not None and entry.count > 1 else 0.0

    return {
        "expected_camera_rate_hz": rate(topics.camera),
        "expected_lidar_rate_hz": rate(topics.lidar) if use_lidar else 0.0,
        "expected_speed_rate_hz": rate(topics.speedometer),
        "expected_target_rate_hz": rate(topics.odometry),
    }


def _message_class(msgtype: str) -> Any:
    """ "sensor_msgs/msg/Image" -> the rclpy message class sensor_msgs.msg.Image."""
    package, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError) as error:
        raise ReplayError(f"ROS message type {msgtype} is not installed in this environment ({error})") from error


def _msgtype_of(cls: Any) -> str:
    """rclpy message class -> "package/msg/Name"."""
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class Recording:
    """What the recorder node received (filled from executor threads, read after the replay)."""

    def __init__(self, writer: BagWriter) -> None:
        self.lock = threading.Lock()
        self.writer = writer
        self.paths: dict[int, tuple[np.ndarray, float]] = {}  # camera stamp ns -> (waypoints (T, 2), wall receipt s)
        self.path_order: list[int] = []
        self.steer_classes: list[int] = []
        self.processing_ms: list[float] = []
        self.domain_shift: list[tuple[int, float, float, int]] = []  # (camera stamp ns, score, smoothed, level)
        self.controls = 0
        self.current_time_ns = 0  # the replay's latest simulation time, for messages without a stamp

    def store(self, topic: str, raw: bytes, stamp_ns: int | None = None) -> None:
        with self.lock:
            self.writer.write(topic, stamp_ns if stamp_ns is not None else self.current_time_ns, raw)


def _player_qos(topic: str, recorded_kind: str, topics: BridgeTopics, latched: Any, streaming: Any) -> Any:
    """The QoS the replay offers on `topic`: latched for the route (whatever the bag recorded) and
    for topics recorded as transient local, reliable volatile otherwise."""
    return latched if topic == topics.route or recorded_kind == QOS_LATCHED else streaming


class ReplaySession:
    """The rclpy side of one replay: context, nodes, executor thread (see the module docstring)."""

    def __init__(self, options: Any, info: BagInfo, mounts: dict, recording: Recording) -> None:
        """options: a replay.ReplayOptions; mounts: the bag's /tf_static mounts (replay.read_static_mounts)."""
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.parameter import Parameter
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        from min2real_ros.nodes.controller_node import ControllerNode
        from min2real_ros.nodes.driver_node import DriverNode

        self.options, self.info, self.recording = options, info, recording
        topics = options.topics
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.nodes: list[Any] = []
        self.executors: list[Any] = []
        self._spin_threads: list[threading.Thread] = []
        try:
            sim_time = Parameter("use_sim_time", value=True)
            driver_values: dict[str, Any] = {
                "model_path": str(options.model),
                "backend": options.backend,
                "domain": options.domain,
                "use_lidar": options.use_lidar,
                "autostart": False,
                # The replay reads the mounts from the bag's /tf_static itself (the player does not
                # republish tf), and expects the bag's own rates.
                "mount_source": "parameters",
                **expected_rates(info, topics, options.use_lidar),
            }
            lidar_mount = mounts.get(topics.lidar_frame)
            if lidar_mount is not None:
                driver_values.update(
                    lidar_mount_x=lidar_mount[0],
                    lidar_mount_y=lidar_mount[1],
                    lidar_mount_z=lidar_mount[2],
                    lidar_mount_yaw_deg=math.degrees(lidar_mount[3]),
                )
            driver_values.update(options.driver_parameters)
            self.driver_values = driver_values
            self.driver = DriverNode(
                context=self.context,
                cli_args=remap_cli_args(carla_driver_remappings(topics.role, topics.camera_id, topics.lidar_id)),
                parameter_overrides=[sim_time]
                + [Parameter(name, value=value) for name, value in driver_values.items()],
            )
            self.nodes.append(self.driver)
            from rclpy.lifecycle import TransitionCallbackReturn

            if self.driver.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise ReplayError(
                    f"the driver node could not load model {options.model}: {self.driver.configure_error}"
                )
            self.contract = self.driver.contract
            self.controller = ControllerNode(
                context=self.context,
                cli_args=remap_cli_args(
                    controller_remappings(
                        DRIVER_NODE_NAME,
                        topics.speedometer,
                        topics.odometry,
                        carla_control_topic(topics.role, options.control_output),
                    )
                ),
                parameter_overrides=[
                    sim_time,
                    Parameter("output_type", value=options.control_output),
                    Parameter("waypoints_frame_id", value=str(driver_values.get("output_frame_id", "base_link"))),
                    Parameter("waypoint_dt_s", value=float(self.contract.waypoint_dt_s)),
                ],
            )
            self.nodes.append(self.controller)

            # Player: one publisher per replayed topic. The route is always offered latched
            # (transient local): the driver's route subscription is transient local and cannot
            # match a volatile publisher, and a bag recorded without QoS metadata (or from a
            # publisher that was not latched) would otherwise never deliver its route. Everything
            # else is offered reliable (volatile), which a best-effort subscription also matches.
            self.player = Node("min2real_replay_player", context=self.context)
            self.nodes.append(self.player)
            latched = QoSProfile(
                depth=1,
                history=HistoryPolicy.KEEP_LAST,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
            )
            streaming = QoSProfile(
                depth=10,
                history=HistoryPolicy.KEEP_LAST,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.VOLATILE,
            )
            self.replayed = list(required_topics(topics, options.use_lidar))
            self.publishers: dict[str, Any] = {}
            for name in self.replayed:
                kind = info.topics[name].qos
                self.publishers[name] = self.player.create_publisher(
                    _message_class(info.topics[name].msgtype), name, _player_qos(name, kind, topics, latched, streaming)
                )
            from rosgraph_msgs.msg import Clock

            self.clock_class = Clock
            self.clock_from_bag = topics.clock in info.topics
            self.publishers[topics.clock] = self.player.create_publisher(Clock, topics.clock, streaming)

            # Recorder: raw subscriptions to everything the nodes publish.
            self.recorder = Node("min2real_replay_recorder", context=self.context)
            self.nodes.append(self.recorder)
            self._subscribe_outputs(streaming)

            # SingleThreadedExecutors (rclpy 7.1's MultiThreadedExecutor re-submits tasks in a loop
            # that holds the GIL, ros2/rclpy#1452, and starves every other thread): one for the
            # nodes under test, as each runs in its own process on a vehicle, and one for the
            # replay's own player and recorder, so writing the output bag never delays the
            # driver's input callbacks. The driver's inference has its own worker thread.
            groups = {"nodes": [self.driver, self.controller], "tool": [self.player, self.recorder]}
            for name, members in groups.items():
                executor = SingleThreadedExecutor(context=self.context)
                for node in members:
                    executor.add_node(node)
                thread = threading.Thread(
                    target=self._spin, args=(executor,), name=f"min2real-replay-{name}", daemon=True
                )
                self.executors.append(executor)
                self._spin_threads.append(thread)
                thread.start()
            self.driver.trigger_activate()
            self._wait_for_graph()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _spin(executor: Any) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            executor.spin()
        except ExternalShutdownException:
            pass

    def _subscribe_outputs(self, qos: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import Vector3Stamped
        from nav_msgs.msg import Path as PathMsg
        from rclpy.serialization import deserialize_message
        from std_msgs.msg import Float64, Int8

        from min2real_ros.nodes.controller_node import import_output_type

        recording = self.recording
        writer = recording.writer
        driver = f"/{DRIVER_NODE_NAME}/output"
        control_class = import_output_type(self.options.control_output)
        self.output_topics = {
            f"{driver}/waypoints": PathMsg,
            f"{driver}/steer_probabilities": Vector3Stamped,
            f"{driver}/steer_class": Int8,
            f"{driver}/processing_time_ms": Float64,
            f"{driver}/pipeline_latency_ms": Float64,
            self.controller.output_topic: control_class,
            "/diagnostics": DiagnosticArray,
        }
        if self.driver.domain_monitor is not None:  # a model with the domain-shift monitor outputs
            self.output_topics[f"{driver}/domain_shift"] = Vector3Stamped
            if "domain_logit" in self.driver.policy.metadata.output_shapes:
                self.output_topics[f"{driver}/domain_logit"] = Vector3Stamped
        for topic, cls in self.output_topics.items():
            writer.add_topic(topic, _msgtype_of(cls), QOS_RELIABLE)

        def on_path(raw: bytes) -> None:
            received = time.perf_counter()
            msg = deserialize_message(raw, PathMsg)
            stamp_ns = _stamp_ns(msg.header.stamp)
            with recording.lock:
                recording.paths[stamp_ns] = (path_to_xy(msg, name="predicted waypoints"), received)
                recording.path_order.append(stamp_ns)
            recording.store(f"{driver}/waypoints", raw, stamp_ns)

        def on_steer(raw: bytes) -> None:
            with recording.lock:
                recording.steer_classes.append(int(deserialize_message(raw, Int8).data))
            recording.store(f"{driver}/steer_class", raw)

        def on_processing(raw: bytes) -> None:
            with recording.lock:
                recording.processing_ms.append(float(deserialize_message(raw, Float64).data))
            recording.store(f"{driver}/processing_time_ms", raw)

        def on_domain_shift(raw: bytes) -> None:
            msg = deserialize_message(raw, Vector3Stamped)
            stamp_ns = _stamp_ns(msg.header.stamp)
            with recording.lock:
                recording.domain_shift.append((stamp_ns, msg.vector.x, msg.vector.y, int(round(msg.vector.z))))
            recording.store(f"{driver}/domain_shift", raw, stamp_ns)

        def on_control(raw: bytes) -> None:
            with recording.lock:
                recording.controls += 1
            recording.store(self.controller.output_topic, raw)

        def store(topic: str) -> Any:
            return lambda raw: recording.store(topic, raw)

        callbacks = {
            f"{driver}/waypoints": on_path,
            f"{driver}/steer_class": on_steer,
            f"{driver}/processing_time_ms": on_processing,
            f"{driver}/domain_shift": on_domain_shift,
            self.controller.output_topic: on_control,
        }
        self.subscriptions = [
            self.recorder.create_subscription(cls, topic, callbacks.get(topic) or store(topic), qos, raw=True)
            for topic, cls in self.output_topics.items()
        ]

    def _wait_for_graph(self) -> None:
        """Until the driver subscribes to every replayed topic and the recorder hears the outputs."""
        deadline = time.monotonic() + self.options.startup_timeout_s
        while time.monotonic() < deadline:
            missing = [name for name in self.replayed if self.publishers[name].get_subscription_count() == 0]
            missing += [
                s.topic_name
                for s in self.subscriptions
                if s.topic_name != "/diagnostics" and self.recorder.count_publishers(s.topic_name) == 0
            ]
            if not missing:
                return
            time.sleep(0.05)
        raise ReplayError(
            f"the replay's ROS 2 graph did not connect within {self.options.startup_timeout_s} s: no match on {missing}; "
            "check ROS_DOMAIN_ID / ROS_AUTOMATIC_DISCOVERY_RANGE (scripts/ros_env.sh keeps discovery on this machine)"
        )

    # ---- driver progress (public counters of the in-process DriverNode) ----------------------
    def driver_outcomes(self) -> int:
        """Camera frames the driver has finished with: published, refused, failed, or replaced in
        its latest-only slot before the worker took them (dropped while busy)."""
        return driver_outcomes(self.driver)

    def driver_received(self, kind: str) -> int:
        return int(self.driver.rates[kind].count)

    def publish_clock(self, stamp_ns: int) -> None:
        sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
        message = self.clock_class()
        message.clock.sec, message.clock.nanosec = sec, nanosec
        self.publishers[self.options.topics.clock].publish(message)

    def close(self) -> None:
        for executor in self.executors:
            executor.shutdown(timeout_sec=2.0)
        for node in reversed(self.nodes):
            node.destroy_node()
        self.nodes = []
        self.context.try_shutdown()
        for thread in self._spin_threads:
            thread.join(timeout=5.0)


def driver_outcomes(driver: Any) -> int:
    """Camera frames a DriverNode has finished with (see ReplaySession.driver_outcomes)."""
    return int(driver.published) + int(driver.rejected) + int(driver.inference_errors) + int(driver.frames_dropped)
