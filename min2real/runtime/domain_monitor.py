"""The domain-shift monitor at run time, ROS-free: per-frame scores -> a smoothed score and a level.

    Prediction.ood_score (graph output, min2real.monitor) --window mean--> smoothed score
        smoothed < warn: OK | warn <= smoothed < error: WARN | smoothed >= error: ERROR

Thresholds come from the artifact's metadata (`extra["monitor"]["calibration"]`, calibrated at
export on held-out in-distribution frames at stated false-alarm rates); a node parameter above 0
overrides each. A graph without the monitor outputs gets no monitor (`monitor_for` returns None):
older models run unchanged. The level says "the camera shows something unlike the training
frames"; it does not certify that the driving is safe (docs/deployment.md).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from min2real.contract import OUTPUT_OOD_SCORE, ArtifactMetadata, ContractError
from min2real.runtime.health import ERROR, LEVEL_NAMES, OK, WARN


@dataclass(frozen=True)
class MonitorThresholds:
    """ood_score thresholds (warn < error) and where each came from ("metadata" | "parameter")."""

    warn: float
    error: float
    source: str = "metadata"


@dataclass(frozen=True)
class MonitorReading:
    """One frame through the monitor: this frame's scores, their means over the window (the last
    `window_frames` frames, fewer at the start), and the level of the smoothed score."""

    stamp_s: float
    ood_score: float
    ood_score_smoothed: float
    domain_logit: float | None
    domain_logit_smoothed: float | None
    frames_in_window: int
    level: int

    @property
    def level_name(self) -> str:
        return LEVEL_NAMES[self.level]


def has_monitor(metadata: ArtifactMetadata) -> bool:
    """True iff the graph has the OOD-score output (its metadata's output_shapes lists it)."""
    return OUTPUT_OOD_SCORE in metadata.output_shapes


def thresholds_from_metadata(
    metadata: ArtifactMetadata, warn_override: float = 0.0, error_override: float = 0.0
) -> MonitorThresholds:
    """The calibrated thresholds, each replaced by its override when that is > 0. Raises
    ContractError when the graph has no monitor or its metadata lacks the calibration."""
    if not has_monitor(metadata):
        raise ContractError(f"the model has no {OUTPUT_OOD_SCORE!r} output; export it with the monitor")
    try:
        calibrated = metadata.extra["monitor"]["calibration"][OUTPUT_OOD_SCORE]
        warn, error = float(calibrated["warn"]), float(calibrated["error"])
    except (KeyError, TypeError, ValueError) as missing:
        raise ContractError(f"the model's monitor metadata lacks its calibrated thresholds ({missing})") from missing
    source = "parameter" if warn_override > 0 or error_override > 0 else "metadata"
    warn = warn_override if warn_override > 0 else warn
    error = error_override if error_override > 0 else error
    if not (np.isfinite(warn) and np.isfinite(error) and 0 < warn < error):
        raise ContractError(f"monitor thresholds warn {warn}, error {error}; expected 0 < warn < error")
    return MonitorThresholds(warn, error, source)


class DomainShiftMonitor:
    """Window mean of the per-frame scores and its level (module docstring)."""

    def __init__(self, thresholds: MonitorThresholds, window_frames: int = 5) -> None:
        if window_frames < 1:
            raise ValueError(f"monitor window {window_frames} frames; expected >= 1")
        self.thresholds = thresholds
        self.window_frames = int(window_frames)
        self._scores: deque[float] = deque(maxlen=self.window_frames)
        self._logits: deque[float] = deque(maxlen=self.window_frames)
        self.last: MonitorReading | None = None

    def update(self, stamp_s: float, ood_score: float, domain_logit: float | None = None) -> MonitorReading:
        """Add one frame's scores (finite; the policy refuses non-finite outputs) and return the reading."""
        if not np.isfinite(ood_score) or (domain_logit is not None and not np.isfinite(domain_logit)):
            raise ContractError(f"monitor scores {ood_score}, {domain_logit} are not finite")
        self._scores.append(float(ood_score))
        if domain_logit is not None:
            self._logits.append(float(domain_logit))
        smoothed = float(np.mean(self._scores))
        level = OK if smoothed < self.thresholds.warn else WARN if smoothed < self.thresholds.error else ERROR
        self.last = MonitorReading(
            stamp_s=float(stamp_s),
            ood_score=float(ood_score),
            ood_score_smoothed=smoothed,
            domain_logit=None if domain_logit is None else float(domain_logit),
            domain_logit_smoothed=float(np.mean(self._logits)) if self._logits else None,
            frames_in_window=len(self._scores),
            level=level,
        )
        return self.last

    def reset(self) -> None:
        self._scores.clear()
        self._logits.clear()
        self.last = None


def monitor_for(
    metadata: ArtifactMetadata, window_frames: int = 5, warn_override: float = 0.0, error_override: float = 0.0
) -> DomainShiftMonitor | None:
    """A monitor for a graph with the monitor outputs, None for one without (older models)."""
    if not has_monitor(metadata):
        return None
    return DomainShiftMonitor(thresholds_from_metadata(metadata, warn_override, error_override), window_frames)


class ScoreSummary:
    """Per-route / per-replay summary of the per-frame OOD scores: frames, mean, max, share of frames
    at WARN or worse and at ERROR (closed-loop results.json, the replay summary)."""

    def __init__(self) -> None:
        self.scores: list[float] = []
        self.levels: list[int] = []

    @classmethod
    def of(cls, readings: list[tuple[float, int]]) -> ScoreSummary:
        """A summary of (OOD score, level) pairs."""
        summary = cls()
        for score, level in readings:
            summary.add(score, level)
        return summary

    def add(self, ood_score: float, level: int) -> None:
        """One frame: its OOD score and the monitor's level after it."""
        self.scores.append(float(ood_score))
        self.levels.append(int(level))

    def summary(self) -> dict:
        scores = np.asarray(self.scores, dtype=np.float64)
        if scores.size == 0:
            return {"frames": 0, "ood_score_mean": None, "ood_score_max": None}  # no frame scored
        levels = np.asarray(self.levels)
        return {
            "frames": int(scores.size),
            "ood_score_mean": round(float(scores.mean()), 4),
            "ood_score_max": round(float(scores.max()), 4),
            "frames_warn_or_worse": round(float(np.mean(levels >= WARN)), 4),
            "frames_error": round(float(np.mean(levels >= ERROR)), 4),
            "ood_scores": [round(float(score), 3) for score in scores],  # per frame, in order (to choose a window)
        }
