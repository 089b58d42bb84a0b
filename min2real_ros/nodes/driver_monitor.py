"""The driver node's domain-shift monitor outputs: the ROS side of min2real.runtime.domain_monitor.

  ~/output/domain_shift  geometry_msgs/Vector3Stamped, the camera stamp: x = this frame's OOD score,
                         y = its mean over the last monitor_window_frames frames (what the level is
                         computed on), z = the level (0 OK, 1 WARN, 2 ERROR)
  ~/output/domain_logit  geometry_msgs/Vector3Stamped (graphs with the discriminator): x = this
                         frame's logit ("real" > 0), y = its window mean, z = 0
  /diagnostics           a second DiagnosticStatus "<node>: domain shift" with the level and values

A model without the monitor outputs gets none of these (`make_monitor` returns None).
"""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import Vector3Stamped

from min2real.contract import OUTPUT_DOMAIN_LOGIT
from min2real.runtime.domain_monitor import DomainShiftMonitor, MonitorReading, monitor_for
from min2real_ros import qos


def make_monitor(node: Any, policy: Any) -> DomainShiftMonitor | None:
    """The node's monitor for `policy`'s model (None without monitor outputs), with its publishers."""
    if not hasattr(policy.metadata, "output_shapes"):  # a policy without artifact metadata (a test double)
        return None
    monitor = monitor_for(
        policy.metadata,
        int(node._p("monitor_window_frames")),
        float(node._p("monitor_warn_threshold")),
        float(node._p("monitor_error_threshold")),
    )
    if monitor is None:
        node.get_logger().info("model has no domain-shift monitor outputs: no ~/output/domain_shift")
        return None
    publish = node.create_lifecycle_publisher
    node._outputs["domain_shift"] = publish(Vector3Stamped, "~/output/domain_shift", qos.OUTPUT_QOS)
    if OUTPUT_DOMAIN_LOGIT in policy.metadata.output_shapes:
        node._outputs["domain_logit"] = publish(Vector3Stamped, "~/output/domain_logit", qos.OUTPUT_QOS)
    node.get_logger().info(
        f"domain-shift monitor: WARN at {monitor.thresholds.warn:.3f}, ERROR at {monitor.thresholds.error:.3f} "
        f"({monitor.thresholds.source}), window {monitor.window_frames} frames"
    )
    return monitor


def _vector(x: float, y: float, z: float, stamp: Any, frame_id: str) -> Vector3Stamped:
    msg = Vector3Stamped()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.vector.x, msg.vector.y, msg.vector.z = float(x), float(y), float(z)
    return msg


def publish_reading(node: Any, monitor: DomainShiftMonitor, prediction: Any, stamp: Any, stamp_s: float) -> str | None:
    """Feed one prediction's scores to the monitor and publish them with the camera stamp; returns
    the debug image's label (None when the prediction has no score)."""
    if prediction.ood_score is None:
        return None
    reading = monitor.update(stamp_s, prediction.ood_score, prediction.domain_logit)
    frame_id = str(node._p("output_frame_id"))
    node._outputs["domain_shift"].publish(
        _vector(reading.ood_score, reading.ood_score_smoothed, reading.level, stamp, frame_id)
    )
    if (
        "domain_logit" in node._outputs
        and reading.domain_logit is not None
        and reading.domain_logit_smoothed is not None
    ):
        node._outputs["domain_logit"].publish(
            _vector(reading.domain_logit, reading.domain_logit_smoothed, 0.0, stamp, frame_id)
        )
    return f"domain shift {reading.ood_score_smoothed:.2f} {reading.level_name} (warn {monitor.thresholds.warn:.2f})"


def diagnostic_status(node: Any, monitor: DomainShiftMonitor) -> DiagnosticStatus:
    """The monitor's level and values for /diagnostics (OK with "no frame scored yet" before the first)."""
    reading: MonitorReading | None = monitor.last
    thresholds = monitor.thresholds
    values = {
        "ood_score_warn": f"{thresholds.warn:.4f}",
        "ood_score_error": f"{thresholds.error:.4f}",
        "thresholds_from": thresholds.source,
        "window_frames": monitor.window_frames,
    }
    if reading is None:
        level, message = 0, "no frame scored yet"
    else:
        level = reading.level
        message = (
            f"{reading.level_name}: OOD score {reading.ood_score_smoothed:.2f} over {reading.frames_in_window} frames "
            f"(WARN {thresholds.warn:.2f}, ERROR {thresholds.error:.2f}); flags unfamiliar camera input, "
            "does not certify safe driving"
        )
        values.update(
            {
                "ood_score": f"{reading.ood_score:.4f}",
                "ood_score_smoothed": f"{reading.ood_score_smoothed:.4f}",
                "frames_in_window": reading.frames_in_window,
                "frame_stamp_s": f"{reading.stamp_s:.6f}",
            }
        )
        if reading.domain_logit_smoothed is not None:
            values["domain_logit_smoothed"] = f"{reading.domain_logit_smoothed:.4f}"
    status = DiagnosticStatus(level=bytes([level]), name=f"{node.get_name()}: domain shift", message=message)
    status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
    return status
