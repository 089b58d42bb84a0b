"""Waypoints -> vehicle command: CARLA Garage's PID controller, ROS-free.

Semantics and default constants follow CARLA Garage (`team_code/config.py`, `model.py
control_pid`, `transfuser_utils.PIDController`):

* a PID keeps a window of the last `window` errors (initially zeros): integral = window mean,
  derivative = last difference;
* desired speed = distance travelled between the waypoints at 0.5 s and 1.0 s, over 0.5 s.
  Garage's waypoints are every 0.25 s, which makes that `2 * |wp[1] - wp[3]|`; ours are every
  `contract.waypoint_dt_s` (0.5 s: `|wp[1] - wp[0]| / 0.5`). The positions at 0.5 s and 1.0 s are
  interpolated along the trajectory that starts at the ego origin at t = 0, which is exact for
  both spacings and valid for any other;
* brake when the desired speed is below `brake_speed_mps` or the vehicle is faster than
  `brake_ratio` x the desired speed; throttle = speed PID of the speed error clipped to
  [0, clip_delta], clipped to [0, clip_throttle], zero when braking;
* aim at the first waypoint at least `aim_distance` away (3.0 m when the desired speed is at
  least 5.5 m/s, else 2.25 m; the last waypoint when none is), steering error =
  angle of the aim point / 90 degrees, zero while braking or stopped, turn PID clipped to [-1, 1].

Frames and signs: input waypoints are REP 103 `base_link` (x forward, y LEFT). The output
`VehicleControl` is CARLA's convention (steer positive = RIGHT), so a path curving left gives a
negative steer. min2real.runtime.vehicle_commands encodes it for each ROS output (CARLA control,
Twist for carla_twist_to_control, AckermannDrive for carla_ackermann_control).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from min2real.runtime.speed_head import HEAD_BRAKE_SPEED_MPS
from min2real.runtime.types import VehicleControl

FULL_BRAKE = VehicleControl(steer=0.0, throttle=0.0, brake=1.0)


@dataclass(frozen=True)
class PIDGains:
    kp: float
    ki: float
    kd: float
    window: int = 20


SPEED_FROM = ("waypoints", "head", "waypoints_head_stop")


@dataclass(frozen=True)
class ControllerConfig:
    """CARLA Garage's controller constants (defaults) plus the waypoint spacing they apply to."""

    turn: PIDGains = field(default_factory=lambda: PIDGains(1.25, 0.75, 0.3, 20))
    speed: PIDGains = field(default_factory=lambda: PIDGains(5.0, 0.5, 1.0, 20))
    aim_distance_fast_m: float = 3.0
    aim_distance_slow_m: float = 2.25
    aim_distance_threshold_mps: float = 5.5
    brake_speed_mps: float = 0.4
    brake_ratio: float = 1.1
    clip_delta_mps: float = 0.25
    clip_throttle: float = 0.75
    stopped_speed_mps: float = 0.01
    # Desired speed = travel between these two times of the trajectory (Garage: 0.5 s and 1.0 s).
    speed_window_start_s: float = 0.5
    speed_window_end_s: float = 1.0
    waypoint_dt_s: float = 0.5  # the contract's waypoint spacing
    # Where the desired speed comes from for a model with the target-speed head (models without it
    # always drive by the waypoints): "waypoints" (their spacing, as for every model), "head" (Garage
    # TransFuser++: the head's confidence-weighted speed, brake when it says stop) or
    # "waypoints_head_stop" (default: the waypoints' speed, and when the head says stop the car comes
    # to a standstill once, below head_stop_standstill_mps, after which the waypoints drive until the
    # head says go again: a stop line needs a full stop, which the waypoints' spacing of a model that
    # cannot see its own speed rarely asks for, and a head that keeps saying stop at a standstill
    # cannot hold the car forever). Only ever adds braking to the waypoints' rule. synth-val: card.
    speed_from: str = "waypoints_head_stop"
    head_stop_standstill_mps: float = 0.05

    def __post_init__(self) -> None:
        if self.speed_from not in SPEED_FROM:
            raise ValueError(f"controller speed_from {self.speed_from!r}; expected one of {SPEED_FROM}")
        if not 0.0 < self.head_stop_standstill_mps < 1.0:
            raise ValueError(
                f"controller head_stop_standstill_mps {self.head_stop_standstill_mps}; expected a speed in (0, 1) m/s"
            )
        if self.waypoint_dt_s <= 0 or self.speed_window_end_s <= self.speed_window_start_s:
            raise ValueError(
                f"controller waypoint_dt_s={self.waypoint_dt_s} and speed window "
                f"[{self.speed_window_start_s}, {self.speed_window_end_s}] s; expected dt > 0 and end > start"
            )
        for name in ("turn", "speed"):
            if getattr(self, name).window < 1:
                raise ValueError(f"controller {name} PID window {getattr(self, name).window}; expected >= 1")


class PIDController:
    """Garage's windowed PID: integral = mean of the last `window` errors, derivative = last difference."""

    def __init__(self, gains: PIDGains) -> None:
        self.gains = gains
        self._window: deque[float] = deque([0.0] * gains.window, maxlen=gains.window)

    def step(self, error: float) -> float:
        self._window.append(float(error))
        if len(self._window) >= 2:
            integral = sum(self._window) / len(self._window)
            derivative = self._window[-1] - self._window[-2]
        else:
            integral = derivative = 0.0
        return self.gains.kp * error + self.gains.ki * integral + self.gains.kd * derivative

    def reset(self) -> None:
        self._window = deque([0.0] * self.gains.window, maxlen=self.gains.window)


@dataclass(frozen=True)
class ControlStep:
    """One controller step: the CARLA-convention command plus what produced it.

    desired_speed_mps: speed the waypoints ask for; aim_point_ego: (2,) REP 103 point steered at;
    braking: the brake rule fired.
    """

    control: VehicleControl
    desired_speed_mps: float
    aim_point_ego: np.ndarray
    braking: bool


class WaypointController:
    """Waypoints (T, 2) in base_link (REP 103) + speed -> VehicleControl (CARLA: steer + = right).

    Stateful (the PID windows): call `step` once per control cycle, `reset` after a stop or a
    watchdog brake. Reused by the ROS controller node and the CARLA leaderboard agent.
    """

    def __init__(self, config: ControllerConfig | None = None) -> None:
        self.config = config or ControllerConfig()
        self.turn_pid = PIDController(self.config.turn)
        self.speed_pid = PIDController(self.config.speed)
        self.head_stop_made = False  # waypoints_head_stop: the head's current stop was already stood

    def reset(self) -> None:
        self.turn_pid.reset()
        self.speed_pid.reset()
        self.head_stop_made = False

    def desired_speed_mps(self, waypoints_ego: np.ndarray) -> float:
        """Travel between `speed_window_start_s` and `speed_window_end_s` along the trajectory
        (ego origin at t = 0, waypoint i at (i + 1) * waypoint_dt_s), divided by the window length."""
        waypoints = _check_waypoints(waypoints_ego)
        times = self.config.waypoint_dt_s * np.arange(0, waypoints.shape[0] + 1, dtype=np.float64)
        path = np.vstack([np.zeros((1, 2)), waypoints])
        window = np.array([self.config.speed_window_start_s, self.config.speed_window_end_s])
        if window[1] > times[-1] + 1e-9:
            raise ValueError(
                f"waypoints reach {times[-1]:.2f} s but the desired speed needs the position at {window[1]:.2f} s"
            )
        x = np.interp(window, times, path[:, 0])
        y = np.interp(window, times, path[:, 1])
        return float(math.hypot(x[1] - x[0], y[1] - y[0]) / (window[1] - window[0]))

    def compute(
        self, waypoints_ego: np.ndarray, speed_mps: float, target_speed_mps: float | None = None
    ) -> ControlStep:
        """One control cycle (advances the PID windows). `target_speed_mps`: the target-speed head's
        speed (runtime.speed_head), which with `speed_from="head"` replaces the waypoints' speed as in
        Garage's TransFuser++ (brake below HEAD_BRAKE_SPEED_MPS), which with `"waypoints_head_stop"`
        adds a full stop to the waypoints' rule each time the head starts saying stop (`_head_stop`);
        None (a model without the head) or `speed_from="waypoints"` keeps the waypoints' rule."""
        waypoints = _check_waypoints(waypoints_ego)
        if not math.isfinite(speed_mps):
            raise ValueError(f"controller speed {speed_mps}; expected a finite speed in m/s")
        cfg = self.config
        if (
            target_speed_mps is not None
            and cfg.speed_from != "waypoints"
            and not (math.isfinite(target_speed_mps) and target_speed_mps >= 0)
        ):
            raise ValueError(f"controller target speed {target_speed_mps}; expected a finite speed >= 0 m/s")
        if target_speed_mps is None or cfg.speed_from != "head":
            desired_speed = self.desired_speed_mps(waypoints)
            braking = desired_speed < cfg.brake_speed_mps or (speed_mps / desired_speed) > cfg.brake_ratio
            if target_speed_mps is not None and cfg.speed_from == "waypoints_head_stop":
                braking = self._head_stop(target_speed_mps, speed_mps) or braking
        else:
            desired_speed = float(target_speed_mps)
            braking = desired_speed < HEAD_BRAKE_SPEED_MPS or speed_mps / desired_speed > cfg.brake_ratio

        delta = float(np.clip(desired_speed - speed_mps, 0.0, cfg.clip_delta_mps))
        throttle = float(np.clip(self.speed_pid.step(delta), 0.0, cfg.clip_throttle))
        if braking:
            throttle = 0.0

        aim_distance = (
            cfg.aim_distance_slow_m if desired_speed < cfg.aim_distance_threshold_mps else cfg.aim_distance_fast_m
        )
        far_enough = np.flatnonzero(np.linalg.norm(waypoints, axis=1) >= aim_distance)
        aim = waypoints[far_enough[0]] if far_enough.size else waypoints[-1]
        # CARLA steer is positive to the right: the angle of the aim point with y pointing right.
        angle = math.degrees(math.atan2(-aim[1], aim[0])) / 90.0
        if speed_mps < cfg.stopped_speed_mps or braking:
            angle = 0.0  # no error accumulates in the integral while stopped or braking
        steer = float(np.clip(self.turn_pid.step(angle), -1.0, 1.0))
        control = VehicleControl(steer=steer, throttle=throttle, brake=1.0 if braking else 0.0)
        return ControlStep(control, desired_speed, aim.astype(np.float64), braking)

    def _head_stop(self, target_speed_mps: float, speed_mps: float) -> bool:
        """waypoints_head_stop: brake while the head says stop and the car has not stood since it
        started saying so; re-armed when the head says go."""
        if target_speed_mps >= HEAD_BRAKE_SPEED_MPS:
            self.head_stop_made = False
            return False
        if speed_mps < self.config.head_stop_standstill_mps:
            self.head_stop_made = True
        return not self.head_stop_made

    def step(
        self, waypoints_ego: np.ndarray, speed_mps: float, target_speed_mps: float | None = None
    ) -> VehicleControl:
        return self.compute(waypoints_ego, speed_mps, target_speed_mps).control


def _check_waypoints(waypoints_ego: np.ndarray) -> np.ndarray:
    waypoints = np.asarray(waypoints_ego, dtype=np.float64)
    if waypoints.ndim != 2 or waypoints.shape[1] != 2 or waypoints.shape[0] < 1:
        raise ValueError(f"controller waypoints have shape {waypoints.shape}; expected (T >= 1, 2) in base_link")
    if not np.isfinite(waypoints).all():
        raise ValueError("controller waypoints contain non-finite values; expected finite metres")
    return waypoints


# ---- watchdog -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class WatchdogLimits:
    """waypoint_timeout_s / speed_timeout_s: brake when the newest input is older than this, by
    its stamp (pipeline latency counts) AND by its receipt time (so a Path stamped in the future
    cannot keep the vehicle going: braking starts at most one timeout after the last valid Path);
    future_stamp_tolerance_s: a Path (or odometry) stamped further ahead of the controller's
    clock than this is refused (clock mismatch or a bad stamp, never followed)."""

    waypoint_timeout_s: float = 0.5
    speed_timeout_s: float = 0.5
    future_stamp_tolerance_s: float = 0.1

    def __post_init__(self) -> None:
        for name in ("waypoint_timeout_s", "speed_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"watchdog {name}={getattr(self, name)}; expected > 0 s")
        if not self.future_stamp_tolerance_s >= 0:
            raise ValueError(f"watchdog future_stamp_tolerance_s={self.future_stamp_tolerance_s}; expected >= 0 s")


@dataclass(frozen=True)
class _Timed:
    value: object
    stamp_s: float
    received_s: float


class Watchdog:
    """The controller's inputs with their stamps and receipt times (seconds on the controller's
    clock), and the reason to brake now (None = follow). ROS-free; not thread-safe (the node locks)."""

    def __init__(self, limits: WatchdogLimits) -> None:
        self.limits = limits
        self._waypoints: _Timed | None = None
        self._speed: _Timed | None = None
        self._target_speed: _Timed | None = None

    def future_refusal(self, name: str, stamp_s: float, now_s: float) -> str | None:
        ahead = stamp_s - now_s
        if ahead > self.limits.future_stamp_tolerance_s:
            return (
                f"{name} stamped {ahead:.3f} s ahead of the controller clock (tolerance "
                f"{self.limits.future_stamp_tolerance_s} s); expected stamps on the controller's time base"
            )
        return None

    def offer_waypoints(self, waypoints_ego: np.ndarray, stamp_s: float, now_s: float) -> str | None:
        """Keep these waypoints, or return why they are refused (stamped in the future)."""
        reason = self.future_refusal("waypoints", stamp_s, now_s)
        if reason is None:
            self._waypoints = _Timed(waypoints_ego, stamp_s, now_s)
        return reason

    def offer_speed(self, speed_mps: float, stamp_s: float, now_s: float) -> str | None:
        reason = self.future_refusal("speed", stamp_s, now_s)
        if reason is None:
            self._speed = _Timed(float(speed_mps), stamp_s, now_s)
        return reason

    def offer_target_speed(self, target_speed_mps: float, stamp_s: float, now_s: float) -> str | None:
        """Keep the target-speed head's speed (m/s, stamped with its camera frame), or say why not."""
        if not (math.isfinite(target_speed_mps) and target_speed_mps >= 0):
            return f"target speed {target_speed_mps}; expected a finite speed >= 0 m/s"
        reason = self.future_refusal("target speed", stamp_s, now_s)
        if reason is None:
            self._target_speed = _Timed(float(target_speed_mps), stamp_s, now_s)
        return reason

    def target_speed_mps(self) -> float | None:
        """The head's target speed to drive the current waypoints with: the newest one whose camera
        stamp is within waypoint_timeout_s of the waypoints' (it may come a moment after its Path);
        None without a head, or when the head's speed is that far from the waypoints (the waypoints'
        own speed applies, as for a model without the head)."""
        if self._target_speed is None or self._waypoints is None:
            return None
        if abs(self._target_speed.stamp_s - self._waypoints.stamp_s) > self.limits.waypoint_timeout_s:
            return None
        return float(self._target_speed.value)  # type: ignore[arg-type]

    @staticmethod
    def _age_s(entry: _Timed, now_s: float) -> float:
        return max(now_s - entry.stamp_s, now_s - entry.received_s)

    def check(self, now_s: float) -> tuple[str | None, np.ndarray | None, float | None]:
        """(reason to brake or None, waypoints (T, 2), speed m/s)."""
        limits = self.limits
        if self._waypoints is None:
            return "no waypoints yet", None, None
        age = self._age_s(self._waypoints, now_s)
        if age > limits.waypoint_timeout_s:
            return f"waypoints are {age:.3f} s old (limit {limits.waypoint_timeout_s} s)", None, None
        if self._speed is None:
            return "no speed yet", None, None
        age = self._age_s(self._speed, now_s)
        if age > limits.speed_timeout_s:
            return f"speed is {age:.3f} s old (limit {limits.speed_timeout_s} s)", None, None
        return None, np.asarray(self._waypoints.value), float(self._speed.value)  # type: ignore[arg-type]
