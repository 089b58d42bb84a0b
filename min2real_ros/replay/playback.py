"""Playback timing of a replay: publish a bag's raw messages through the session's player.

Timing (`ReplayOptions.timing`):
  "bag"  messages are published at their bag times (scaled by `rate`): the node sees the drive
         as it happened; a node slower than the camera rate drops frames (it keeps the latest),
         and the summary counts them.
  "fast" as fast as the node keeps up: before each camera frame the player waits until the
         driver has taken in the inputs published before it, and after it until the driver has
         handled the frame (published a Path or refused the frame), so every frame is processed.
In both, the messages of one tick (one bag timestamp) go out with the camera last, and the
camera waits until the driver has taken in the inputs sent before it (in bag timing at most
BAG_INPUT_WAIT_S), so a tick's frame finds that tick's speed, odometry and LiDAR (the first frame
included; the clock and the route are delivered before the drive starts).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from min2real_ros.replay.bag import BagInfo, deserialize, iter_raw_messages
from min2real_ros.replay.session import Recording, ReplaySession, _stamp_ns

RawMessage = tuple[str, int, bytes]
BAG_INPUT_WAIT_S = 0.03  # bag timing: longest wait for a tick's inputs to reach the driver before its camera


def _prime_clock(session: Any, info: BagInfo, streamed: list[str]) -> None:
    """Start the nodes' simulation time at the bag's first timestamp before anything else is
    played (a headerless speed message received before the first /clock has no receipt time)."""
    for _, timestamp_ns, _ in iter_raw_messages(info.path, streamed):
        session.publish_clock(timestamp_ns)
        wait_until(lambda: session.driver.get_clock().now().nanoseconds > 0, 5.0)
        return


def _prime_route(session: Any, info: BagInfo, topics: Any) -> bytes | None:
    """Deliver the bag's first route (latched) before the drive starts and wait until the driver
    holds it, so the first camera frame already has a target point (a route comes before the drive,
    as carla_waypoint_publisher's does). Returns the raw message (not re-sent during the drive)."""
    for _, _, raw in iter_raw_messages(info.path, [topics.route]):
        session.publishers[topics.route].publish(raw)
        wait_until(lambda: session.driver.route_planner.has_route, 5.0)
        return raw
    return None


def camera_last_per_tick(messages: Iterable[RawMessage], camera_topic: str) -> Iterator[RawMessage]:
    """Bag messages in order, except that within each run of equal timestamps the camera
    messages come after the others (a tick's inputs before its frame)."""
    held: list[RawMessage] = []
    tick: int | None = None
    for message in messages:
        if message[1] != tick:
            yield from held
            held, tick = [], message[1]
        if message[0] == camera_topic:
            held.append(message)
        else:
            yield message
    yield from held


def drain(session: Any, frames_published: int, timeout_s: float, settle_s: float = 0.5) -> None:
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


def wait_until(condition: Any, timeout_s: float, poll_s: float = 0.001) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def wait_frame_handled(session: ReplaySession, camera_seen: int, outcomes_before: int, timeout_s: float) -> None:
    """Fast timing: wait until the driver received the frame just published (a best-effort
    message that got lost is given up on after 2 s) and then finished with it."""
    if wait_until(lambda: session.driver_received("camera") > camera_seen, min(2.0, timeout_s)):
        wait_until(lambda: session.driver_outcomes() > outcomes_before, timeout_s)


def play(session: ReplaySession, options: Any, info: BagInfo, recording: Recording) -> dict[str, Any]:
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
    _prime_clock(session, info, streamed)
    primed_route = _prime_route(session, info, topics)
    try:
        for topic, timestamp_ns, raw in camera_last_per_tick(iter_raw_messages(info.path, streamed), topics.camera):
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
                if topic == topics.route and primed_route is not None and raw == primed_route:
                    continue  # already delivered before the drive started
                if topic == topics.clock:
                    session.publishers[topic].publish(raw)
                    continue
                if not session.clock_from_bag:
                    session.publish_clock(timestamp_ns)
                session.publishers[topic].publish(raw)
                if topic == topics.route and options.timing == "fast":
                    wait_until(lambda: session.driver.route_planner.has_route, 2.0)
                kind = received_kind.get(topic)
                if kind == "target" and not session.driver.route_planner.has_route:
                    kind = None  # odometry before the route yields no target
                if kind:
                    sent[kind] += 1
                continue
            stamp_ns = _stamp_ns(deserialize(raw, camera_type).header.stamp)
            # Let the driver take in every input published before this frame (this tick's
            # odometry, speed, LiDAR): as long as it takes in fast timing, at most a fraction of a
            # camera period in bag timing (the schedule is absolute, so a wait never accumulates).
            inputs_in = lambda: all(session.driver_received(k) >= n for k, n in sent.items())  # noqa: E731
            wait_until(inputs_in, 1.0 if options.timing == "fast" else BAG_INPUT_WAIT_S)
            if options.timing == "fast":
                before = session.driver_outcomes()
                camera_seen = session.driver_received("camera")
            published_at[stamp_ns] = time.perf_counter()
            session.publishers[topic].publish(raw)
            camera_stamps.append(stamp_ns)
            if options.timing == "fast":
                wait_frame_handled(session, camera_seen, before, options.frame_timeout_s)
            bar.update(1)
            bar.set_postfix(predictions=len(recording.paths), refresh=False)
        # Drain: let the driver finish the frames it holds, then let the outputs arrive.
        drain(session, len(camera_stamps), options.frame_timeout_s)
        wait_until(lambda: len(recording.paths) >= int(session.driver.published), 2.0, 0.01)
        wait_until(lambda: len(recording.steer_classes) >= int(session.driver.published), 2.0, 0.01)
    finally:
        bar.close()
    return {"camera_stamps": camera_stamps, "published_at": published_at, "wall_s": time.perf_counter() - wall_start}
