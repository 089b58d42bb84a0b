"""rosbag2 files (sqlite3 and MCAP) through `rosbags`: inspect, validate, read raw, write.

The one place in min2real that opens bags. Messages stay serialized CDR bytes end to end (the
replay publishes them as they are); `deserialize` and `BagWriter.write_message` use the rosbags
ROS 2 Jazzy type store (message layouts of the types used here are the same in Humble).
Bags are written as rosbag2 format version 8, which Humble's, Jazzy's and rosbags' readers open.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STORAGES = ("mcap", "sqlite3")
BAG_FORMAT_VERSION = 8

# How a topic is offered when written (and, by the replay, when published).
QOS_SENSOR = "sensor"  # best effort, keep last 5 (CARLA bridge sensors)
QOS_RELIABLE = "reliable"  # reliable, keep last 10
QOS_LATCHED = "transient_local"  # reliable, transient local, keep last 1 (the route)
QOS_KINDS = (QOS_SENSOR, QOS_RELIABLE, QOS_LATCHED)


class BagError(RuntimeError):
    """A bag cannot be used (unreadable, empty, or lacking topics); the text says what the bag has."""


@functools.lru_cache(maxsize=1)
def typestore() -> Any:
    """The rosbags type store used for (de)serialising (ROS 2 Jazzy message definitions)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def deserialize(data: bytes | memoryview, msgtype: str) -> Any:
    """CDR bytes -> rosbags message object (duck-types as the ROS message for runtime.conversions)."""
    return typestore().deserialize_cdr(data, msgtype)


def serialize(message: Any, msgtype: str) -> bytes:
    """rosbags message object -> CDR bytes (what rclpy publishes and rosbag2 stores)."""
    return bytes(typestore().serialize_cdr(message, msgtype))


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag: name, type ("sensor_msgs/msg/Image"), message count, offered QoS kind."""

    name: str
    msgtype: str
    count: int
    qos: str


@dataclass(frozen=True)
class BagInfo:
    """What a bag holds. Times are bag receive timestamps in nanoseconds."""

    path: Path
    storage: str
    topics: dict[str, TopicInfo] = field(default_factory=dict)
    start_ns: int = 0
    end_ns: int = 0

    @property
    def message_count(self) -> int:
        return sum(topic.count for topic in self.topics.values())

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) * 1e-9

    def describe_topics(self) -> str:
        """One line per topic: name, type, count (sorted by name); '(none)' for a bag without topics."""
        if not self.topics:
            return "  (none)"
        width = max(len(name) for name in self.topics)
        return "\n".join(
            f"  {topic.name:<{width}}  {topic.msgtype}  ({topic.count} messages)"
            for topic in sorted(self.topics.values(), key=lambda t: t.name)
        )


def _bag_directory(path: Path) -> Path:
    """A bag directory, or the directory of a bag file (.mcap/.db3) given directly."""
    if path.is_file() and (path.parent / "metadata.yaml").is_file():
        return path.parent
    return path


def _qos_kind(connection: Any) -> str:
    from rosbags.interfaces import QosDurability, QosReliability

    profiles = getattr(getattr(connection, "ext", None), "offered_qos_profiles", None) or []
    if not isinstance(profiles, (list, tuple)) or not profiles:
        return QOS_RELIABLE
    profile = profiles[0]
    durability = getattr(profile, "durability", None)
    reliability = getattr(profile, "reliability", None)
    if durability == QosDurability.TRANSIENT_LOCAL:
        return QOS_LATCHED
    if reliability == QosReliability.BEST_EFFORT:
        return QOS_SENSOR
    return QOS_RELIABLE


def _open_reader(bag_path: str | Path) -> Any:
    from rosbags.rosbag2 import Reader

    path = _bag_directory(Path(bag_path))
    if not path.exists():
        raise BagError(f"bag {str(bag_path)!r} does not exist; expected a rosbag2 directory (sqlite3 or MCAP)")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise BagError(
            f"bag {str(bag_path)!r} is not readable: it has no metadata.yaml; expected a rosbag2 directory "
            "(sqlite3 or MCAP) as written by `ros2 bag record` or `min2real synth-bag`"
        )
    try:
        reader = Reader(path)
        reader.open()
    except Exception as error:  # rosbags raises ReaderError, FileNotFoundError, sqlite/mcap errors
        raise BagError(
            f"bag {str(bag_path)!r} is not readable ({type(error).__name__}: {error}); "
            "expected a rosbag2 directory (sqlite3 or MCAP)"
        ) from error
    return reader


def _storage_of(bag_directory: Path) -> str:
    """The storage plugin named in the bag's metadata.yaml ("mcap", "sqlite3"), from its data files."""
    suffixes = {p.suffix for p in bag_directory.iterdir()} if bag_directory.is_dir() else set()
    if ".mcap" in suffixes:
        return "mcap"
    if ".db3" in suffixes:
        return "sqlite3"
    return "unknown"


def inspect_bag(bag_path: str | Path) -> BagInfo:
    """Open a bag and list its topics; BagError when it is unreadable."""
    reader = _open_reader(bag_path)
    try:
        counts: dict[str, int] = {}
        for connection in reader.connections:
            counts[connection.topic] = counts.get(connection.topic, 0) + int(connection.msgcount)
        topics = {
            connection.topic: TopicInfo(
                connection.topic, connection.msgtype, counts[connection.topic], _qos_kind(connection)
            )
            for connection in reader.connections
        }
        start = int(reader.start_time) if reader.message_count else 0
        end = int(reader.end_time) if reader.message_count else 0
        directory = _bag_directory(Path(bag_path))
        return BagInfo(directory, _storage_of(directory), topics, start, end)
    finally:
        reader.close()


def require_topics(info: BagInfo, required: dict[str, str], purpose: str = "replay") -> None:
    """Refuse a bag that is empty or lacks a required topic (name -> type) or has it with another type.

    The message lists the topics the bag does have, so the user can remap.
    """
    if info.message_count == 0:
        raise BagError(
            f"bag {str(info.path)!r} is empty (no messages); {purpose} needs {_listing(required)}.\n"
            f"Topics in the bag:\n{info.describe_topics()}"
        )
    problems = []
    for name, msgtype in required.items():
        topic = info.topics.get(name)
        if topic is None:
            problems.append(f"topic {name} ({msgtype}) is missing")
        elif topic.msgtype != msgtype:
            problems.append(f"topic {name} has type {topic.msgtype}; expected {msgtype}")
        elif topic.count == 0:
            problems.append(f"topic {name} ({msgtype}) has no messages")
    if problems:
        raise BagError(
            f"bag {str(info.path)!r} cannot be used for {purpose}: " + "; ".join(problems) + ".\n"
            f"Topics in the bag:\n{info.describe_topics()}"
        )


def _listing(required: dict[str, str]) -> str:
    return ", ".join(f"{name} ({msgtype})" for name, msgtype in required.items())


def iter_raw_messages(bag_path: str | Path, topics: Iterable[str]) -> Iterator[tuple[str, int, bytes]]:
    """(topic, bag timestamp ns, CDR bytes) of the given topics, in timestamp order."""
    wanted = set(topics)
    reader = _open_reader(bag_path)
    try:
        connections = [c for c in reader.connections if c.topic in wanted]
        for connection, timestamp_ns, data in reader.messages(connections=connections):
            yield connection.topic, int(timestamp_ns), bytes(data)
    finally:
        reader.close()


def _qos_profile(kind: str) -> Any:
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    if kind not in QOS_KINDS:
        raise BagError(f"QoS kind {kind!r} is not supported; expected one of {QOS_KINDS}")
    infinite = QosTime(sec=2147483647, nsec=4294967295)
    history, depth = (QosHistory.KEEP_LAST, {QOS_SENSOR: 5, QOS_RELIABLE: 10, QOS_LATCHED: 1}[kind])
    reliability = QosReliability.BEST_EFFORT if kind == QOS_SENSOR else QosReliability.RELIABLE
    durability = QosDurability.TRANSIENT_LOCAL if kind == QOS_LATCHED else QosDurability.VOLATILE
    return Qos(history, depth, reliability, durability, infinite, infinite, QosLiveliness.AUTOMATIC, infinite, False)


class BagWriter:
    """Write a rosbag2 bag (storage "mcap" or "sqlite3"); use as a context manager.

    >>> with BagWriter(path, "mcap") as bag:
    ...     bag.add_topic("/chatter", "std_msgs/msg/String", QOS_RELIABLE)
    ...     bag.write("/chatter", stamp_ns, cdr_bytes)
    """

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise BagError(f"bag storage {storage!r} is not supported; expected one of {STORAGES}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"output bag {str(self.path)!r} exists already; choose a new path or remove it")
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.storage = storage
        self._writer = Writer(self.path, version=BAG_FORMAT_VERSION, storage_plugin=plugin)
        self._connections: dict[str, Any] = {}
        self._msgtypes: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> BagWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._writer.close()

    def add_topic(self, topic: str, msgtype: str, qos: str = QOS_RELIABLE) -> None:
        if topic in self._connections:
            return
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=typestore(), serialization_format="cdr", offered_qos_profiles=[_qos_profile(qos)]
        )
        self._msgtypes[topic] = msgtype
        self.counts[topic] = 0

    def write(self, topic: str, timestamp_ns: int, data: bytes | memoryview) -> None:
        """Store CDR bytes on a topic added before."""
        if topic not in self._connections:
            raise BagError(
                f"topic {topic} was not added to output bag {str(self.path)!r}; known: {sorted(self._connections)}"
            )
        self._writer.write(self._connections[topic], int(timestamp_ns), data)
        self.counts[topic] += 1

    def write_message(self, topic: str, timestamp_ns: int, message: Any) -> None:
        """Serialize a rosbags message object and store it."""
        self.write(topic, timestamp_ns, serialize(message, self._msgtypes[topic]))
