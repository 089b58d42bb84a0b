"""Frame assembly for the driver: latest camera frame + nearest LiDAR + speed + target point.

ROS-free. The node feeds converted inputs with their stamps (seconds on the node's clock: the
header stamp where the message has one, the receipt time otherwise); `assemble` builds one
`FrameInputs` for a camera frame or says why it cannot (a stale or missing input never yields
a frame). `LatestSlot` hands the newest camera frame to the inference worker and counts the
frames replaced before the worker took them; `RateMeter` measures input rates for diagnostics.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from min2real.runtime.types import FrameInputs

T = TypeVar("T")


@dataclass(frozen=True)
class FreshnessLimits:
    """Age limits in seconds (age = now - stamp on the node's clock).

    max_image_age_s: a camera frame older than this is not processed.
    max_lidar_skew_s: the LiDAR sweep nearest to the camera stamp must be within this.
    max_speed_age_s / max_target_age_s: speed and target point (route + odometry, or a direct
        target point) must be at least this recent.
    require_lidar: without a LiDAR sweep the frame is refused (sim-domain models with LiDAR);
        False feeds an all-zero BEV (real-domain models, as in the paper).

    A stamp *ahead* of the node's clock by more than the same limit is refused too: it means the
    sensor clock and the node clock disagree (e.g. use_sim_time without /clock, or a sensor on
    another time base), and such an input would otherwise count as fresh until the clock caught up.
    """

    max_image_age_s: float = 0.25
    max_lidar_skew_s: float = 0.15
    max_speed_age_s: float = 0.5
    max_target_age_s: float = 1.0
    require_lidar: bool = True
    # Negative speed policy: the models learnt forward driving only. A speed in
    # [-negative_speed_tolerance_mps, 0) (standing still, sensor noise, rolling back a little) is
    # clamped to 0 and counted; a faster reverse speed refuses the frame with its reason.
    negative_speed_tolerance_mps: float = 0.5

    def __post_init__(self) -> None:
        for name in ("max_image_age_s", "max_lidar_skew_s", "max_speed_age_s", "max_target_age_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"freshness limit {name}={getattr(self, name)}; expected a positive number of seconds")
        if not self.negative_speed_tolerance_mps >= 0:
            raise ValueError(f"negative_speed_tolerance_mps={self.negative_speed_tolerance_mps}; expected >= 0 m/s")


@dataclass(frozen=True)
class Stamped(Generic[T]):
    value: T
    stamp_s: float


@dataclass(frozen=True)
class CameraFrame:
    """A camera frame waiting for inference. image_rgb: (H, W, 3) uint8 RGB (may be a view);
    stamp: the message header stamp object (echoed on the outputs); stamp_s: the same in seconds."""

    image_rgb: np.ndarray
    stamp: Any
    stamp_s: float
    frame_id: str = ""


@dataclass(frozen=True)
class AssemblyResult:
    frame: FrameInputs | None
    reason: str | None  # why no frame was assembled (stale / missing input), None when frame is set
    lidar_skew_s: float | None = None
    speed_clamped: bool = False  # a small negative speed was clamped to 0 (negative speed policy)


class FrameAssembler:
    """Holds the latest speed, target point and command and a short history of LiDAR sweeps.

    Thread-safe: ROS callbacks call the `update_*` methods, the inference worker `assemble`.
    """

    def __init__(self, limits: FreshnessLimits, lidar_history: int = 4) -> None:
        self.limits = limits  # replaceable while running (a new frozen FreshnessLimits)
        self._lock = threading.Lock()
        self._lidar: deque[Stamped[np.ndarray]] = deque(maxlen=max(1, int(lidar_history)))
        self._speed: Stamped[float] | None = None
        self._target: Stamped[np.ndarray] | None = None
        self._command: Stamped[int | None] | None = None

    def update_lidar(self, points_ego: np.ndarray, stamp_s: float) -> None:
        """points_ego: (N, 3) float32 in base_link."""
        with self._lock:
            self._lidar.append(Stamped(points_ego, float(stamp_s)))

    def update_speed(self, speed_mps: float, stamp_s: float) -> None:
        with self._lock:
            self._speed = Stamped(float(speed_mps), float(stamp_s))

    def update_target(self, target_point_ego: np.ndarray, stamp_s: float) -> None:
        """target_point_ego: (2,) REP 103 metres."""
        with self._lock:
            self._target = Stamped(np.asarray(target_point_ego, dtype=np.float32).reshape(2), float(stamp_s))

    def update_command(self, command: int | None, stamp_s: float) -> None:
        with self._lock:
            self._command = Stamped(command, float(stamp_s))

    def ages_s(self, now_s: float) -> dict[str, float | None]:
        """Age of the newest value of each input (None = never received), for diagnostics."""
        with self._lock:
            lidar = self._lidar[-1].stamp_s if self._lidar else None
            entries = {
                "lidar": lidar,
                "speed": self._speed.stamp_s if self._speed else None,
                "target": self._target.stamp_s if self._target else None,
            }
        return {name: (None if stamp is None else now_s - stamp) for name, stamp in entries.items()}

    def assemble(self, camera: CameraFrame, now_s: float) -> AssemblyResult:
        """Build the policy inputs for `camera`, or give the reason it cannot be used now."""
        limits = self.limits
        reason = _age_problem("camera frame", now_s - camera.stamp_s, limits.max_image_age_s)
        if reason:
            return AssemblyResult(None, reason)
        with self._lock:
            lidar_history = list(self._lidar)
            speed, target, command = self._speed, self._target, self._command
        if speed is None:
            return AssemblyResult(None, "no speed received yet")
        reason = _age_problem("speed", now_s - speed.stamp_s, limits.max_speed_age_s)
        if reason:
            return AssemblyResult(None, reason)
        speed_mps, speed_clamped = speed.value, False
        if speed_mps < 0:
            if speed_mps < -limits.negative_speed_tolerance_mps:
                return AssemblyResult(
                    None,
                    f"speed {speed_mps:.2f} m/s is reversing faster than negative_speed_tolerance_mps "
                    f"{limits.negative_speed_tolerance_mps} m/s; the model drives forward only",
                )
            speed_mps, speed_clamped = 0.0, True
        if target is None:
            return AssemblyResult(None, "no target point yet (route + odometry, or a target point topic)")
        reason = _age_problem("target point", now_s - target.stamp_s, limits.max_target_age_s)
        if reason:
            return AssemblyResult(None, reason)
        lidar_points, skew = None, None
        if lidar_history:
            skews = np.abs(np.array([entry.stamp_s for entry in lidar_history]) - camera.stamp_s)
            nearest = int(np.argmin(skews))
            skew = float(skews[nearest])
            if skew <= limits.max_lidar_skew_s:
                lidar_points = lidar_history[nearest].value
        if lidar_points is None and limits.require_lidar:
            if skew is None:
                return AssemblyResult(None, "no LiDAR sweep received yet")
            return AssemblyResult(
                None,
                f"nearest LiDAR sweep is {skew:.3f} s from the camera frame (limit {limits.max_lidar_skew_s} s)",
                skew,
            )
        frame = FrameInputs(
            image_rgb=camera.image_rgb,
            lidar_points_ego=lidar_points,
            speed_mps=speed_mps,
            target_point_ego=target.value,
            command=None if command is None else command.value,
        )
        return AssemblyResult(frame, None, skew, speed_clamped)


def _age_problem(name: str, age_s: float, limit_s: float) -> str | None:
    """Why an input of age `age_s` (now - stamp) cannot be used, or None when it is fresh."""
    if age_s > limit_s:
        return f"{name} is {age_s:.3f} s old (limit {limit_s} s)"
    if age_s < -limit_s:
        return (
            f"{name} is stamped {-age_s:.3f} s ahead of the node clock (limit {limit_s} s); "
            "expected sensor stamps on the node's time base (check use_sim_time and /clock)"
        )
    return None


class LatestSlot(Generic[T]):
    """A one-item mailbox: `put` replaces what is waiting (counted as dropped), `take` waits for
    the next item. The worker therefore only ever sees the newest frame, never a queue."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.dropped = 0
        self.received = 0

    def put(self, item: T) -> None:
        with self._condition:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.received += 1
            self._condition.notify()

    def take(self, timeout_s: float) -> T | None:
        """The waiting item (removing it), or None after `timeout_s` or once closed."""
        with self._condition:
            if self._item is None and not self._closed:
                self._condition.wait(timeout=timeout_s)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def reopen(self) -> None:
        with self._condition:
            self._closed = False
            self._item = None


class RateMeter:
    """Events per second over a sliding window of the last `window_s` seconds (thread-safe)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = float(window_s)
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self.count = 0
        self._first_s: float | None = None

    def tick(self, now_s: float) -> None:
        with self._lock:
            if self._first_s is None:
                self._first_s = now_s
            self._times.append(now_s)
            self.count += 1
            self._trim(now_s)

    def settled_rate_hz(self, now_s: float) -> float | None:
        """The rate once the meter has watched a full window since the first event (None before:
        a starting stream is not a slow one); events that stopped give a falling rate down to 0."""
        with self._lock:
            if self._first_s is None or now_s - self._first_s < self.window_s:
                return None
            self._trim(now_s)
            return len(self._times) / self.window_s

    def rate_hz(self, now_s: float) -> float:
        with self._lock:
            self._trim(now_s)
            if len(self._times) < 2:
                return 0.0
            span = self._times[-1] - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now_s: float) -> None:
        while self._times and now_s - self._times[0] > self.window_s:
            self._times.popleft()


class StampGaps:
    """Frames lost in transport, seen as gaps in the stamps of a stream with a nominal period.

    Each gap longer than 1.5 nominal periods between consecutive received stamps counts
    round(gap / period) - 1 lost frames. A stamp that goes backwards (a replay restarting, a
    sensor clock reset) starts over without counting. Thread-safe.
    """

    def __init__(self, expected_rate_hz: float) -> None:
        self.expected_rate_hz = float(expected_rate_hz)
        self._lock = threading.Lock()
        self._last_s: float | None = None
        self.first_s: float | None = None
        self.lost = 0

    def add(self, stamp_s: float) -> int:
        """Record a received stamp; returns the frames this gap says were lost (0 without an expected rate)."""
        with self._lock:
            if self.first_s is None:
                self.first_s = stamp_s
            previous, self._last_s = self._last_s, stamp_s
            if previous is None or self.expected_rate_hz <= 0 or stamp_s <= previous:
                return 0
            period = 1.0 / self.expected_rate_hz
            gap = stamp_s - previous
            missing = int(round(gap / period)) - 1 if gap > 1.5 * period else 0
            self.lost += missing
            return missing

    @property
    def last_s(self) -> float | None:
        return self._last_s


class RunningStats:
    """Last value, mean and max of a measurement since the last `reset` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: list[float] = []
        self.last: float | None = None

    def reset(self) -> None:
        """Start a new reporting period (the last value is kept)."""
        with self._lock:
            self._values = []

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(float(value))
            self.last = float(value)

    def summary(self) -> tuple[float | None, float | None, float | None, int]:
        """(last, mean, max, count) since the last reset."""
        with self._lock:
            if not self._values:
                return self.last, None, None, 0
            return self.last, float(np.mean(self._values)), float(np.max(self._values)), len(self._values)
