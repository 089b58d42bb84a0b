"""The driver node's diagnostics: its counters -> min2real.runtime.health -> DiagnosticStatus.

`health_snapshot(node)` takes one period's counters from a DriverNode (and resets them);
`diagnostic_status(node)` runs the ROS-free health ladder on it and adds every total, rate, age and
timing as key/values (what /diagnostics carries, and what the separate-process test reads).
"""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from min2real.runtime import health
from min2real_ros.nodes.driver_parameters import EXPECTED_RATES

INPUTS = ("camera", "lidar", "speed", "target")


def health_snapshot(node: Any) -> health.HealthSnapshot:
    """This period's counters (resets them) as the ROS-free health module reads them."""
    now_s = node._now_s()
    with node._stats_lock:
        counts = dict(node._period)
        node._period = {key: 0 for key in node._period}
        qos_problems = list(node.qos_incompatible.values())
        slow_streak = node._slow_streak
    dropped_total = node._slot.dropped
    counts["dropped"] = dropped_total - node._dropped_reported
    node._dropped_reported = dropped_total
    expected = {name: float(node._p(parameter)) for name, parameter in EXPECTED_RATES.items()}
    subscribed = {
        "camera": True,
        "lidar": bool(node._p("use_lidar")),
        "speed": True,
        "target": True,
    }
    return health.HealthSnapshot(
        active=node._processing,
        counts=counts,
        rates_hz={name: node.rates[name].settled_rate_hz(now_s) for name in INPUTS},
        expected_rates_hz={name: rate for name, rate in expected.items() if subscribed[name]},
        slow_streak=slow_streak,
        last_processing_ms=node.processing_ms.last,
        last_refusal=node.last_reject_reason,
        last_error=node.last_error,
        last_malformed=node.last_malformed,
        qos_problems=qos_problems,
    )


def diagnostic_status(node: Any) -> DiagnosticStatus:
    """The node's health now (also what /diagnostics carries); resets the period counters."""
    now_s = node._now_s()
    result = health.assess(health_snapshot(node), node._thresholds)
    values: dict[str, Any] = dict(result.values)
    for name, meter in node.rates.items():
        values[f"{name}_rate_hz"] = f"{meter.rate_hz(now_s):.2f}"
    ages = node.assembler.ages_s(now_s)
    ages["camera"] = None if node._last_camera_stamp_s is None else now_s - node._last_camera_stamp_s
    for name, age in ages.items():
        values[f"{name}_age_s"] = "never" if age is None else f"{age:.3f}"
    for name, stats in (
        ("inference_ms", node.inference_ms),
        ("preprocess_ms", node.preprocess_ms),
        ("processing_ms", node.processing_ms),
    ):
        last, mean, peak, _count = stats.summary()
        stats.reset()
        values[f"{name}_last"] = "n/a" if last is None else f"{last:.2f}"
        values[f"{name}_mean"] = "n/a" if mean is None else f"{mean:.2f}"
        values[f"{name}_max"] = "n/a" if peak is None else f"{peak:.2f}"
    gaps = node._gaps["camera"]
    with node._stats_lock:
        values.update(
            {
                "frames_received": node.received,
                "frames_published": node.published,
                "frames_refused": node.rejected,
                "frames_dropped": node.frames_dropped,
                "frames_lost": node.frames_lost,
                "inference_errors": node.inference_errors,
                "speeds_clamped": node.speed_clamped,
                "camera_first_stamp_s": "never" if gaps.first_s is None else f"{gaps.first_s:.6f}",
                "camera_last_stamp_s": "never" if gaps.last_s is None else f"{gaps.last_s:.6f}",
                "last_refusal": node.last_reject_reason or "",
                "last_error": node.last_error or "",
                "last_malformed": node.last_malformed or "",
                "qos_incompatible": " | ".join(node.qos_incompatible.values()),
                "mount_source": node.mount_source,
                "lidar_mount": node._lidar_mount.describe() if node.mount_source == "parameters" else "tf",
            }
        )
        values.update({f"malformed_{source}": count for source, count in node.malformed.items()})
    if node.policy is not None:
        meta = node.policy.metadata
        values.update(
            {
                "backend": node.policy.backend_name,
                "model_variant": meta.variant,
                "model_domain": meta.domain,
                "model_checkpoint_sha256": str(getattr(meta, "checkpoint_sha256", ""))[:16],
                "model_path": str(node._p("model_path")),
            }
        )
    status = DiagnosticStatus(
        level=bytes([result.level]),
        name=f"{node.get_name()}: driving policy",
        message=result.message,
        hardware_id=str(values.get("backend", "none")),
    )
    status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
    return status
