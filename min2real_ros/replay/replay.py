"""Replay a rosbag2 bag through the real driver and controller nodes, and record what they publish.

    bag (sqlite3 | MCAP) --raw CDR bytes--> player node --ROS 2--> DriverNode --> ControllerNode
                                                                        |              |
                            recorder node (raw subscriptions) <---------+--------------+
                                   |
                 output bag (MCAP) + overlays + plots + summary (report.py)

The nodes are the product's own classes (`min2real_ros.nodes.driver_node.DriverNode`,
`controller_node.ControllerNode`), constructed in this process on a private rclpy context and
spun by a MultiThreadedExecutor in a background thread; messages travel over ROS 2 (DDS), never
by direct calls. Both nodes run on simulation time (`use_sim_time`), driven by the bag's /clock
(or, for bags without one, a /clock made from the bag timestamps).

Timing (`timing`):
  "bag"  messages are published at their bag times (scaled by `rate`): the node sees the drive
         as it happened; a node slower than the camera rate drops frames (it keeps the latest),
         and the summary counts them.
  "fast" as fast as the node keeps up: before each camera frame the player waits until the
         driver has taken in the inputs published before it, and after it until the driver has
         handled the frame (published a Path or refused the frame), so every frame is processed.

Sensor mounts: when the bag has /tf_static with the LiDAR (and camera) transforms from the
vehicle frame (as the CARLA bridge and `min2real synth-bag` write them), the driver's
`lidar_mount_*` parameters and the overlay camera take them from there.
"""

from __future__ import annotations

import importlib
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from min2real.contract import future_waypoints_from_poses, yaw_from_quaternion_wxyz
from min2real.evaluation import figures
from min2real.runtime.overlay import CameraModel, draw_overlay
from min2real_ros.conversions import (
    image_to_rgb,
    odometry_to_pose2d,
    path_to_xy,
    stamp_to_seconds,
)
from min2real_ros.replay import report
from min2real_ros.replay.bag import (
    QOS_LATCHED,
    QOS_RELIABLE,
    BagError,
    BagInfo,
    BagWriter,
    deserialize,
    inspect_bag,
    iter_raw_messages,
    require_topics,
)
from min2real_ros.replay.synth_bag import BridgeTopics

TIMINGS = ("bag", "fast")
CONTROL_OUTPUTS = ("twist", "carla", "ackermann")
DRIVER_NODE_NAME = "min2real_driver"
CONTROLLER_NODE_NAME = "min2real_controller"


class ReplayError(RuntimeError):
    """The replay cannot run (bad bag, model that does not load, nodes that never connect)."""


@dataclass
class ReplayOptions:
    """What to replay and how. `driver_parameters` override DriverNode parameters by name."""

    bag: Path
    model: Path
    out: Path
    timing: str = "bag"
    rate: float = 1.0
    backend: str = "auto"
    domain: str = "sim"
    topics: BridgeTopics = field(default_factory=BridgeTopics)
    use_lidar: bool = True
    control_output: str = "twist"
    frame_timeout_s: float = 10.0
    startup_timeout_s: float = 30.0
    max_frames: int | None = None
    tiles: int = 12
    video: bool = False
    progress: bool = True
    driver_parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bag, self.model, self.out = Path(self.bag), Path(self.model), Path(self.out)
        if self.timing not in TIMINGS:
            raise ReplayError(f"replay timing {self.timing!r} is not supported; expected one of {TIMINGS}")
        if not self.rate > 0:
            raise ReplayError(f"replay rate {self.rate}; expected a positive factor (1.0 = real time)")
        if self.control_output not in CONTROL_OUTPUTS:
            raise ReplayError(f"control output {self.control_output!r}; expected one of {CONTROL_OUTPUTS}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ReplayError(f"max_frames={self.max_frames}; expected >= 1 or None (all frames)")


@dataclass
class ReplayResult:
    summary: dict
    outputs: dict[str, Path]


def required_topics(topics: BridgeTopics, use_lidar: bool) -> dict[str, str]:
    """The bag topics the driver needs (name -> type): camera, LiDAR, speedometer, odometry, route."""
    types = topics.types()
    names = [topics.camera, topics.speedometer, topics.odometry, topics.route]
    if use_lidar:
        names.insert(1, topics.lidar)
    return {name: types[name] for name in names}


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


def _read_static_mounts(info: BagInfo, topics: BridgeTopics) -> dict[str, tuple[float, float, float, float]]:
    """child frame -> (x, y, z, yaw_rad) relative to the vehicle frame, from the bag's /tf_static."""
    if topics.tf_static not in info.topics:
        return {}
    mounts: dict[str, tuple[float, float, float, float]] = {}
    for _, _, raw in iter_raw_messages(info.path, [topics.tf_static]):
        for transform in deserialize(raw, info.topics[topics.tf_static].msgtype).transforms:
            if transform.header.frame_id.strip("/") not in (topics.base_frame, "base_link"):
                continue
            t, q = transform.transform.translation, transform.transform.rotation
            yaw = float(yaw_from_quaternion_wxyz(np.array([q.w, q.x, q.y, q.z])))
            mounts[transform.child_frame_id.strip("/")] = (float(t.x), float(t.y), float(t.z), yaw)
    return mounts


class _Recording:
    """What the recorder node received (filled from executor threads, read after the replay)."""

    def __init__(self, writer: BagWriter) -> None:
        self.lock = threading.Lock()
        self.writer = writer
        self.paths: dict[int, tuple[np.ndarray, float]] = {}  # camera stamp ns -> (waypoints (T, 2), wall receipt s)
        self.path_order: list[int] = []
        self.steer_classes: list[int] = []
        self.processing_ms: list[float] = []
        self.controls = 0
        self.current_time_ns = 0  # the replay's latest simulation time, for messages without a stamp

    def store(self, topic: str, raw: bytes, stamp_ns: int | None = None) -> None:
        with self.lock:
            self.writer.write(topic, stamp_ns if stamp_ns is not None else self.current_time_ns, raw)


def _player_qos(topic: str, recorded_kind: str, topics: BridgeTopics, latched: Any, streaming: Any) -> Any:
    """The QoS the replay offers on `topic`: latched for the route (whatever the bag recorded) and
    for topics recorded as transient local, reliable volatile otherwise."""
    return latched if topic == topics.route or recorded_kind == QOS_LATCHED else streaming


def _decode_first(info: BagInfo, topic: str) -> Any | None:
    if topic not in info.topics:
        return None
    for _, _, raw in iter_raw_messages(info.path, [topic]):
        return deserialize(raw, info.topics[topic].msgtype)
    return None


class _Session:
    """The rclpy side of one replay: context, nodes, executor thread."""

    def __init__(self, options: ReplayOptions, info: BagInfo, mounts: dict, recording: _Recording) -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
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
        self.executor = None
        self._spin_thread: threading.Thread | None = None
        try:
            sim_time = Parameter("use_sim_time", value=True)
            driver_values: dict[str, Any] = {
                "model_path": str(options.model),
                "backend": options.backend,
                "domain": options.domain,
                "camera_topic": topics.camera,
                "lidar_topic": topics.lidar if options.use_lidar else "",
                "speed_topic": topics.speedometer,
                "odometry_topic": topics.odometry,
                "route_topic": topics.route,
                "autostart": False,
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
                parameter_overrides=[
                    sim_time,
                    Parameter("output_type", value=options.control_output),
                    Parameter("role_name", value=topics.role),
                    Parameter("speed_topic", value=topics.speedometer),
                    Parameter("odometry_topic", value=topics.odometry),
                    Parameter("waypoints_topic", value=f"/{DRIVER_NODE_NAME}/waypoints"),
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

            self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
            for node in self.nodes:
                self.executor.add_node(node)
            self._spin_thread = threading.Thread(target=self._spin, name="min2real-replay-executor", daemon=True)
            self._spin_thread.start()
            self.driver.trigger_activate()
            self._wait_for_graph()
        except BaseException:
            self.close()
            raise

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def _subscribe_outputs(self, qos: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Path as PathMsg
        from rclpy.serialization import deserialize_message
        from std_msgs.msg import Float64, Int8

        from min2real_ros.nodes.controller_node import import_output_type

        recording = self.recording
        writer = recording.writer
        driver = f"/{DRIVER_NODE_NAME}"
        control_class = import_output_type(self.options.control_output)
        self.output_topics = {
            f"{driver}/waypoints": PathMsg,
            f"{driver}/steer_class": Int8,
            f"{driver}/processing_time_ms": Float64,
            f"{driver}/pipeline_latency_ms": Float64,
            self.controller.output_topic: control_class,
            "/diagnostics": DiagnosticArray,
        }
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
        if self.executor is not None:
            self.executor.shutdown(timeout_sec=2.0)
        for node in reversed(self.nodes):
            node.destroy_node()
        self.nodes = []
        self.context.try_shutdown()
        if self._spin_thread is not None:
            self._spin_thread.join(timeout=5.0)


def driver_outcomes(driver: Any) -> int:
    """Camera frames a DriverNode has finished with (see _Session.driver_outcomes)."""
    return int(driver.published) + int(driver.rejected) + int(driver.inference_errors) + int(driver.frames_dropped)


def _drain(session: Any, frames_published: int, timeout_s: float, settle_s: float = 0.5) -> None:
    """After the last camera frame: wait until the driver has received every published frame (or
    its camera count has not moved for `settle_s`: best-effort frames can be lost) and has finished
    with every frame it received. Dropped frames count as finished, so a replay whose driver
    dropped frames while busy does not wait out `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        received = session.driver_received("camera")
        if received != last_count:
            last_count, last_change = received, time.monotonic()
        arrived = received >= frames_published or time.monotonic() - last_change >= settle_s
        if arrived and session.driver_outcomes() >= received:
            return
        time.sleep(0.005)


def _wait_until(condition: Any, timeout_s: float, poll_s: float = 0.001) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def _wait_frame_handled(session: _Session, camera_seen: int, outcomes_before: int, timeout_s: float) -> None:
    """Fast timing: wait until the driver received the frame just published (a best-effort
    message that got lost is given up on after 2 s) and then finished with it."""
    if _wait_until(lambda: session.driver_received("camera") > camera_seen, min(2.0, timeout_s)):
        _wait_until(lambda: session.driver_outcomes() > outcomes_before, timeout_s)


def _play(session: _Session, options: ReplayOptions, info: BagInfo, recording: _Recording) -> dict[str, Any]:
    """Publish the bag's messages; returns per-frame bookkeeping."""
    from tqdm import tqdm

    topics = options.topics
    camera_type = info.topics[topics.camera].msgtype
    total = info.topics[topics.camera].count
    if options.max_frames is not None:
        total = min(total, options.max_frames)
    published_at: dict[int, float] = {}  # camera stamp ns -> wall time of publishing
    camera_stamps: list[int] = []
    sent = {"lidar": 0, "speed": 0, "target": 0}
    received_kind = {topics.lidar: "lidar", topics.speedometer: "speed", topics.odometry: "target"}
    wall_start, bag_start = time.perf_counter(), None
    bar = tqdm(total=total, desc="replay", unit="frame", disable=not options.progress)
    streamed = list(session.replayed) + ([topics.clock] if session.clock_from_bag else [])
    try:
        for topic, timestamp_ns, raw in iter_raw_messages(info.path, streamed):
            is_camera = topic == topics.camera
            if is_camera and len(camera_stamps) >= total:
                break
            if bag_start is None:
                bag_start = timestamp_ns
                if not session.clock_from_bag:
                    session.publish_clock(timestamp_ns)
            if options.timing == "bag":
                due = wall_start + (timestamp_ns - bag_start) * 1e-9 / options.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            with recording.lock:
                recording.current_time_ns = max(recording.current_time_ns, timestamp_ns)
            if not is_camera:
                if topic == topics.clock:
                    session.publishers[topic].publish(raw)
                    continue
                if not session.clock_from_bag:
                    session.publish_clock(timestamp_ns)
                session.publishers[topic].publish(raw)
                if topic == topics.route and options.timing == "fast":
                    _wait_until(lambda: session.driver.route_planner.has_route, 2.0)
                kind = received_kind.get(topic)
                if kind == "target" and not session.driver.route_planner.has_route:
                    kind = None  # odometry before the route yields no target
                if kind:
                    sent[kind] += 1
                continue
            stamp_ns = _stamp_ns(deserialize(raw, camera_type).header.stamp)
            if options.timing == "fast":
                # Let the driver take in every input published before this frame.
                _wait_until(lambda: all(session.driver_received(k) >= n for k, n in sent.items()), 1.0)
                before = session.driver_outcomes()
                camera_seen = session.driver_received("camera")
            published_at[stamp_ns] = time.perf_counter()
            session.publishers[topic].publish(raw)
            camera_stamps.append(stamp_ns)
            if options.timing == "fast":
                _wait_frame_handled(session, camera_seen, before, options.frame_timeout_s)
            bar.update(1)
            bar.set_postfix(predictions=len(recording.paths), refresh=False)
        # Drain: let the driver finish the frames it holds, then let the outputs arrive.
        _drain(session, len(camera_stamps), options.frame_timeout_s)
        _wait_until(lambda: len(recording.paths) >= int(session.driver.published), 2.0, 0.01)
        _wait_until(lambda: len(recording.steer_classes) >= int(session.driver.published), 2.0, 0.01)
    finally:
        bar.close()
    return {"camera_stamps": camera_stamps, "published_at": published_at, "wall_s": time.perf_counter() - wall_start}


def _odometry_track(info: BagInfo, topics: BridgeTopics) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(times s, positions (N, 2) in the odometry frame, yaw (N,)) from the bag, or None without odometry."""
    if topics.odometry not in info.topics:
        return None
    msgtype = info.topics[topics.odometry].msgtype
    times, positions, yaws = [], [], []
    for _, _, raw in iter_raw_messages(info.path, [topics.odometry]):
        message = deserialize(raw, msgtype)
        xy, yaw = odometry_to_pose2d(message)
        times.append(stamp_to_seconds(message.header.stamp))
        positions.append(xy)
        yaws.append(yaw)
    if not times:
        return None
    order = np.argsort(times, kind="stable")
    return np.asarray(times)[order], np.asarray(positions)[order], np.asarray(yaws)[order]


def _camera_model(info: BagInfo, topics: BridgeTopics, mounts: dict, driver_values: dict) -> CameraModel | None:
    """The overlay camera: CameraInfo intrinsics from the bag (else the driver's camera_fov_deg) and
    the camera mount from /tf_static (else the driver's camera_mount_* parameters)."""
    from min2real_ros.nodes.driver_node import PARAMETERS

    def value(name: str) -> float:
        return float(driver_values.get(name, PARAMETERS[name][0]))

    mount = mounts.get(topics.camera_frame)
    mount_xyz = (
        mount[:3] if mount is not None else (value("camera_mount_x"), value("camera_mount_y"), value("camera_mount_z"))
    )
    pitch = math.radians(value("camera_pitch_deg"))
    info_msg = _decode_first(info, topics.camera_info)
    if info_msg is not None and info_msg.k[0] > 0:
        k = np.asarray(info_msg.k, dtype=np.float64)
        return CameraModel(int(info_msg.width), int(info_msg.height), k[0], k[4], k[2], k[5], tuple(mount_xyz), pitch)
    first = _decode_first(info, topics.camera)
    if first is None:
        return None
    return CameraModel.from_horizontal_fov(
        int(first.width), int(first.height), value("camera_fov_deg"), tuple(mount_xyz), pitch
    )


def _pose_at(track: tuple[np.ndarray, np.ndarray, np.ndarray], stamp_s: float, tolerance_s: float = 0.1) -> int | None:
    times = track[0]
    index = int(np.clip(np.searchsorted(times, stamp_s), 1, len(times) - 1)) if len(times) > 1 else 0
    if len(times) > 1 and abs(times[index - 1] - stamp_s) < abs(times[index] - stamp_s):
        index -= 1
    return index if abs(times[index] - stamp_s) <= tolerance_s else None


def _ego_to_map(points_ego: np.ndarray, xy: np.ndarray, yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return points_ego @ np.array([[c, s], [-s, c]]) + xy


def _write_outputs(
    options: ReplayOptions,
    info: BagInfo,
    session_data: dict,
    recording: _Recording,
    contract: Any,
    mounts: dict,
    driver_values: dict,
    outputs: dict[str, Path],
) -> dict[str, Any]:
    """Overlays, plots; returns the per-frame error numbers for the summary."""
    topics = options.topics
    stamps: list[int] = session_data["camera_stamps"]
    predicted = [stamp for stamp in stamps if stamp in recording.paths]
    track = _odometry_track(info, topics)
    route = _decode_first(info, topics.route)
    route_xy = path_to_xy(route) if route is not None else None

    recorded_future: dict[int, np.ndarray] = {}
    errors_m: list[float] = []
    final_errors_m: list[float] = []
    predicted_map: list[np.ndarray] = []
    if track is not None:
        for stamp in predicted:
            index = _pose_at(track, stamp * 1e-9)
            if index is None:
                continue
            waypoints = recording.paths[stamp][0]
            predicted_map.append(_ego_to_map(waypoints, track[1][index], track[2][index]))
            future = future_waypoints_from_poses(track[0], track[1], index, float(track[2][index]), contract)
            if future is not None:
                recorded_future[stamp] = future
                distance = np.linalg.norm(waypoints - future, axis=1)
                errors_m.append(float(distance.mean()))
                final_errors_m.append(float(distance[-1]))
        outputs["trajectory_plot"] = report.plot_trajectories(
            options.out / "trajectory.png",
            track[1],
            predicted_map,
            route_xy,
            title=f"predicted vs recorded trajectory ({len(predicted_map)} predictions)",
        )

    latencies = np.array([(recording.paths[s][1] - session_data["published_at"][s]) * 1e3 for s in predicted])
    outputs["latency_histogram"] = report.plot_latency_histogram(options.out / "latency_histogram.png", latencies)

    # Overlays: a second pass over the camera topic draws the predictions on their frames.
    camera_model = _camera_model(info, topics, mounts, driver_values)
    steer_by_stamp = dict(zip(recording.path_order, recording.steer_classes))
    chosen = (
        set(
            predicted[i]
            for i in np.linspace(0, len(predicted) - 1, min(options.tiles, len(predicted))).round().astype(int)
        )
        if predicted
        else set()
    )
    tiles, video_frames = [], []
    wanted = set(stamps)
    camera_type = info.topics[topics.camera].msgtype
    overlay_dir = options.out / "overlays"
    for _, _, raw in iter_raw_messages(info.path, [topics.camera]):
        message = deserialize(raw, camera_type)
        stamp = _stamp_ns(message.header.stamp)
        if stamp not in wanted or (stamp not in chosen and not options.video):
            continue
        frame_index = stamps.index(stamp)
        waypoints = recording.paths.get(stamp, (None,))[0]
        steer = steer_by_stamp.get(stamp)
        label = f"#{frame_index} t={stamp * 1e-9:.2f}s " + (
            "no prediction"
            if waypoints is None
            else f"{report.STEER_CLASSES[steer] if steer is not None else '?'} "
            f"{(recording.paths[stamp][1] - session_data['published_at'][stamp]) * 1e3:.0f}ms"
        )
        tile = draw_overlay(image_to_rgb(message), waypoints, label, camera_model, recorded_future.get(stamp))
        if stamp in chosen:
            tiles.append(tile)
            figures.write_png(overlay_dir / f"frame_{frame_index:05d}.png", tile)
        if options.video:
            video_frames.append(tile)
    if tiles:
        outputs["contact_sheet"] = figures.write_png(
            options.out / "contact_sheet.png", figures.contact_sheet(tiles, columns=3)
        )
        outputs["overlays"] = overlay_dir
    if options.video and video_frames:
        rate_hz = len(stamps) / max(info.duration_s, 1e-3)
        outputs["video"] = figures.write_video(options.out / "overlays.mp4", video_frames, rate_hz)
    return {
        "latencies_ms": latencies,
        "ade_m": round(float(np.mean(errors_m)), 3) if errors_m else None,
        "fde_m": round(float(np.mean(final_errors_m)), 3) if final_errors_m else None,
        "frames_with_recorded_future": len(errors_m),
    }


def replay(options: ReplayOptions) -> ReplayResult:
    """Run one replay and write its outputs under `options.out`:

    output_bag/            MCAP bag: driver Path, steering class, processing time, latency,
                           controller commands, diagnostics
    contact_sheet.png      overlay tiles (camera + projected waypoints + top-down panel)
    overlays/frame_*.png   the same tiles one by one
    overlays.mp4           every frame (with `video`)
    trajectory.png         predicted vs recorded trajectory (bags with odometry)
    latency_histogram.png  camera published -> Path received
    summary.json           the summary (also returned)
    """
    if not options.model.is_file():
        raise ReplayError(
            f"model {str(options.model)!r} does not exist; expected an exported min2real model (.onnx, .engine)"
        )
    info = inspect_bag(options.bag)
    require_topics(info, required_topics(options.topics, options.use_lidar))
    output_bag = options.out / "output_bag"
    if output_bag.exists():
        raise ReplayError(f"output {str(output_bag)!r} exists already; choose a new --out directory or remove it")
    options.out.mkdir(parents=True, exist_ok=True)
    mounts = _read_static_mounts(info, options.topics)

    outputs: dict[str, Path] = {"bag": output_bag}
    with BagWriter(output_bag, "mcap") as writer:
        recording = _Recording(writer)
        session = _Session(options, info, mounts, recording)
        try:
            played = _play(session, options, info, recording)
            driver = session.driver
            with recording.lock:
                counters = {
                    "frames_received_by_driver": session.driver_received("camera"),
                    "refused": int(driver.rejected),
                    "inference_errors": int(driver.inference_errors),
                    "dropped_while_busy": int(driver.frames_dropped),
                    "last_refusal": driver.last_reject_reason,
                    "last_error": driver.last_error,
                }
            backend_name = driver.policy.backend_name if driver.policy is not None else None
            contract, driver_values = session.contract, session.driver_values
        finally:
            session.close()
    with recording.lock:
        paths_received = len(recording.paths)
        steer_classes = list(recording.steer_classes)
        processing_ms = np.asarray(recording.processing_ms)
        controls = recording.controls

    numbers = _write_outputs(options, info, played, recording, contract, mounts, driver_values, outputs)
    frames_in = len(played["camera_stamps"])
    predicted = sum(1 for stamp in played["camera_stamps"] if stamp in recording.paths)
    summary = {
        "bag": str(info.path),
        "storage": info.storage,
        "model": str(options.model),
        "backend": backend_name,
        "domain": options.domain,
        "timing": options.timing if options.timing == "fast" else f"bag x{options.rate:g}",
        "frames_in": frames_in,
        "predictions_out": paths_received,
        "predictions_for_frames_in": predicted,
        "drops": frames_in - predicted,
        **counters,
        "not_received_by_driver": frames_in - counters["frames_received_by_driver"],
        "steer_class_counts": report.steer_class_counts(steer_classes),
        "latency_ms": report.latency_stats_ms(numbers["latencies_ms"]),
        "processing_ms": report.latency_stats_ms(processing_ms),
        "controls_out": controls,
        "ade_m": numbers["ade_m"],
        "fde_m": numbers["fde_m"],
        "frames_with_recorded_future": numbers["frames_with_recorded_future"],
        "wall_s": round(played["wall_s"], 3),
        "bag_duration_s": round(info.duration_s, 3),
        "output_bag_counts": dict(recording.writer.counts),
    }
    outputs["summary"] = options.out / "summary.json"
    summary["outputs"] = {key: str(value) for key, value in outputs.items()}
    report.write_summary(outputs["summary"], summary)
    return ReplayResult(summary, outputs)


__all__ = ["BagError", "ReplayError", "ReplayOptions", "ReplayResult", "replay", "required_topics"]
