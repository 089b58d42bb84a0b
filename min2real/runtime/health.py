"""The driver's health ladder, ROS-free: one period's counters -> (level, message, values).

The driver node fills a `HealthSnapshot` once per diagnostics period and publishes what `assess`
returns as a diagnostic_msgs/DiagnosticStatus (levels are DiagnosticStatus's OK/WARN/ERROR
bytes). The first rung that applies sets the level and the message, from worst to mildest:

ERROR  no valid camera frame in the period | inference failed | every frame refused |
       `processing_time_error_count` consecutive slow frames | an input arriving below
       `rate_error_ratio` x its expected rate
WARN   inactive (lifecycle) | incompatible QoS | an input below `rate_warn_ratio` x expected |
       camera frames lost in transport (gaps in the stamps) | malformed input | some frames refused
       | speed clamped (negative speed policy) | slow last frame | frames dropped while busy
OK     publishing waypoints
"""

from __future__ import annotations

from dataclasses import dataclass, field

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR"}


@dataclass(frozen=True)
class HealthThresholds:
    processing_time_warn_ms: float = 100.0
    processing_time_error_count: int = 5
    rate_warn_ratio: float = 0.8
    rate_error_ratio: float = 0.5


@dataclass
class HealthSnapshot:
    """What happened in one diagnostics period.

    counts: camera (valid frames received), published, refused, malformed, errors, dropped
        (replaced while busy), lost (camera frames missing between received stamps), clamped
        (speeds clamped to 0 by the negative speed policy).
    rates_hz: measured rate per input, None while the meter has not seen a full window yet.
    expected_rates_hz: the expected rate per input (0 or absent = no expectation).
    """

    active: bool
    counts: dict[str, int]
    rates_hz: dict[str, float | None] = field(default_factory=dict)
    expected_rates_hz: dict[str, float] = field(default_factory=dict)
    slow_streak: int = 0
    last_processing_ms: float | None = None
    last_refusal: str | None = None
    last_error: str | None = None
    last_malformed: str | None = None
    qos_problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Health:
    level: int
    message: str
    values: dict[str, str]


def rate_deficits(snapshot: HealthSnapshot) -> dict[str, float]:
    """input -> measured rate / expected rate, for inputs with an expectation and a measured rate."""
    ratios = {}
    for name, expected in snapshot.expected_rates_hz.items():
        measured = snapshot.rates_hz.get(name)
        if expected > 0 and measured is not None:
            ratios[name] = measured / expected
    return ratios


def assess(snapshot: HealthSnapshot, thresholds: HealthThresholds) -> Health:
    """The health of one period: the worst rung of the ladder (module docstring) that applies."""
    counts = {key: int(snapshot.counts.get(key, 0)) for key in snapshot.counts}
    get = counts.get
    ratios = rate_deficits(snapshot)
    too_slow = {name: ratio for name, ratio in ratios.items() if ratio < thresholds.rate_error_ratio}
    slowish = {name: ratio for name, ratio in ratios.items() if ratio < thresholds.rate_warn_ratio}

    def rate_text(rates: dict[str, float]) -> str:
        return "; ".join(
            f"{name} arrives at {snapshot.rates_hz[name]:.1f} Hz, expected {snapshot.expected_rates_hz[name]:g} Hz "
            f"({100 * ratio:.0f} %)"
            for name, ratio in sorted(rates.items(), key=lambda item: item[1])
        )

    qos = snapshot.qos_problems[-1] if snapshot.qos_problems else None
    warn_ms = thresholds.processing_time_warn_ms
    if not snapshot.active:
        level, message = WARN, "inactive (lifecycle)"
    elif not get("camera", 0):
        level, message = ERROR, "no valid camera frames in the last period"
        if get("malformed", 0):
            message += f"; malformed input: {snapshot.last_malformed}"
        if qos:
            message += f"; {qos}"
    elif get("errors", 0):
        level, message = ERROR, f"inference failed: {snapshot.last_error}"
    elif get("refused", 0) and not get("published", 0):
        level, message = ERROR, f"no prediction: {snapshot.last_refusal}"
        if qos:
            message += f"; {qos}"
    elif snapshot.slow_streak >= thresholds.processing_time_error_count:
        level, message = ERROR, f"{snapshot.slow_streak} consecutive frames slower than {warn_ms:g} ms"
    elif too_slow:
        level, message = (
            ERROR,
            f"input below {100 * thresholds.rate_error_ratio:.0f} % of its rate: {rate_text(too_slow)}",
        )
    elif qos:
        level, message = WARN, qos
    elif slowish:
        level, message = WARN, f"input below {100 * thresholds.rate_warn_ratio:.0f} % of its rate: {rate_text(slowish)}"
    elif get("lost", 0):
        level, message = WARN, f"{get('lost')} camera frames lost in transport (gaps in the camera stamps)"
    elif get("malformed", 0):
        level, message = WARN, f"malformed input: {snapshot.last_malformed}"
    elif get("refused", 0):
        level, message = WARN, f"some frames refused: {snapshot.last_refusal}"
    elif get("clamped", 0):
        level, message = WARN, f"{get('clamped')} negative speeds clamped to 0 m/s (negative_speed_policy)"
    elif snapshot.last_processing_ms is not None and snapshot.last_processing_ms > warn_ms:
        level, message = WARN, f"processing time {snapshot.last_processing_ms:.1f} ms > {warn_ms:g} ms"
    elif get("dropped", 0):
        level, message = WARN, f"{get('dropped')} camera frames dropped while busy"
    else:
        level, message = OK, "publishing waypoints"

    values = {f"period_{key}": str(value) for key, value in counts.items()}
    for name, expected in snapshot.expected_rates_hz.items():
        values[f"{name}_expected_rate_hz"] = f"{expected:g}"
        if name in ratios:
            values[f"{name}_rate_deficit_pct"] = f"{max(0.0, 100.0 * (1.0 - ratios[name])):.1f}"
    return Health(level, message, values)
