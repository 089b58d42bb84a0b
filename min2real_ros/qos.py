"""QoS profiles and QoS-event helpers shared by the driver and controller nodes.

Camera: `camera_qos` reliable (a reader gets every fragment of a 1.5-6 MB image re-sent instead of
losing the whole frame) or best_effort, keep last `camera_qos_depth`. The depth matters for the
accounting: with keep last 1 a frame that arrives while the executor is still converting the
previous one replaces it inside DDS, unseen (it shows up as a gap in the stamps); with a few slots
every frame reaches the callback and the driver's own latest-only slot counts what it skips as
dropped while busy. Both reliabilities match a reliable publisher (the CARLA bridge); a
best-effort publisher only matches best_effort. Measured in docs/performance.md ("ROS transport").
Other sensors: best effort, keep last `depth` (small messages). Route: reliable, transient local
(latched, as carla_waypoint_publisher) or volatile. Outputs: reliable, keep last 10.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy

CAMERA_QOS = ("reliable", "best_effort")
ROUTE_DURABILITIES = {"transient_local": DurabilityPolicy.TRANSIENT_LOCAL, "volatile": DurabilityPolicy.VOLATILE}

OUTPUT_QOS = QoSProfile(
    depth=10,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


def camera_qos(reliability: str, depth: int) -> QoSProfile:
    if reliability not in CAMERA_QOS:
        raise ValueError(f"parameter camera_qos={reliability!r}; expected one of {CAMERA_QOS}")
    if reliability == "reliable":
        return reliable_qos(max(1, int(depth)))
    return sensor_qos(depth)


def sensor_qos(depth: int) -> QoSProfile:
    """Best effort, keep last `depth`, volatile (matches reliable and best-effort publishers)."""
    return QoSProfile(
        depth=max(1, int(depth)),
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.VOLATILE,
    )


def route_qos(durability: str) -> QoSProfile:
    if durability not in ROUTE_DURABILITIES:
        raise ValueError(f"parameter route_durability={durability!r}; expected one of {tuple(ROUTE_DURABILITIES)}")
    return QoSProfile(
        depth=1,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=ROUTE_DURABILITIES[durability],
    )


def reliable_qos(depth: int = 1) -> QoSProfile:
    return QoSProfile(
        depth=depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def subscription_event_callbacks(on_incompatible_qos: Callable[[Any], None]) -> Any:
    """SubscriptionEventCallbacks reporting incompatible QoS (rclpy.event_handler on Iron/Jazzy,
    rclpy.qos_event on Humble)."""
    try:
        from rclpy.event_handler import SubscriptionEventCallbacks
    except ImportError:  # Humble
        from rclpy.qos_event import SubscriptionEventCallbacks
    return SubscriptionEventCallbacks(incompatible_qos=on_incompatible_qos)


def incompatible_qos_text(topic: str, qos: QoSProfile, status: Any) -> str:
    """The diagnostics text for a publisher on `topic` whose QoS this subscription cannot match."""
    try:
        policy = QoSPolicyKind(int(status.last_policy_kind)).name.lower()
    except ValueError:
        policy = f"policy {status.last_policy_kind}"
    wanted = {"durability": qos.durability.name.lower(), "reliability": qos.reliability.name.lower()}.get(policy, "")
    hint = {
        "durability": "; set route_durability to volatile for a route publisher that is not latched",
        "reliability": "; set camera_qos to best_effort for a best-effort camera publisher",
    }.get(policy, "")
    return (
        f"a publisher on {topic} offers QoS incompatible with this subscription ({policy}"
        + (f": the subscription requests {wanted}" if wanted else "")
        + "); its messages are not received"
        + hint
    )
