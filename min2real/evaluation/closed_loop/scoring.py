"""Leaderboard-style judging of one closed-loop route: route completion, infractions, driving score.

Following the CARLA leaderboard (leaderboard/utils/statistics_manager.py, 1.0 as Longest6 uses it):

* route completion RC = the share of the route's length the vehicle progressed along it (its
  projection on the route), 100 when it reaches the end;
* infraction penalty = the product of one factor per infraction event, times
  (1 - the share of the route driven outside the route's lane), the leaderboard's
  OutsideRouteLanes rule;
* driving score DS = RC x penalty, in [0, 100].

Infractions and their factors (PENALTIES; the leaderboard's where it has one):
  collision_pedestrian 0.50  the vehicle's box touches a pedestrian; once per pedestrian
  collision_vehicle  0.60  the vehicle's box touches another vehicle of the traffic; once per vehicle
  red_light          0.70  the vehicle's front crosses a traffic light's stop line while it is
                           red; once per light
  collision_static   0.65  the vehicle's box touches a box of the world (building, tree, pole,
                           parked car); once per object; the vehicle stops against it
  stop_infraction    0.80  crossing a stop line without having stood (speed < stop_speed_mps)
                           within stop_zone_m before it
  off_road           0.70  the vehicle's centre leaves every road surface (ours: the leaderboard
                           scores this through the lane rule only); once per excursion
  outside_lane       lane rule  the centre farther than half a lane from the route for longer
                           than outside_lane_threshold_s (outside intersections); the whole
                           excursion's distance counts
  agent_blocked      0.70  standing (speed < blocked_speed_mps) for blocked_time_s; ends the route
  route_timeout      0.70  the route's time budget ran out; ends the route
  command_timeout    0.70  lock step: no command for a tick within the wait limit; ends the route
  route_deviation    -     farther than route_deviation_m from the route; ends the route (RC stops)
(The 0.70 of blocked / timeouts is leaderboard 2.0's scenario-timeout factor.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from min2real.data.synthetic.geometry import LANE_WIDTH_M, ROAD_WIDTH_M
from min2real.data.synthetic.scenario import Scenario
from min2real.evaluation.closed_loop.vehicle import VehicleState

PENALTIES = {
    "collision_pedestrian": 0.50,
    "collision_vehicle": 0.60,
    "collision_static": 0.65,
    "red_light": 0.70,
    "stop_infraction": 0.80,
    "off_road": 0.70,
    "agent_blocked": 0.70,
    "route_timeout": 0.70,
    "command_timeout": 0.70,
}
INFRACTION_KINDS = (*PENALTIES, "outside_lane", "route_deviation")
OUTCOMES = ("completed", "agent_blocked", "route_timeout", "command_timeout", "route_deviation", "running")


@dataclass(frozen=True)
class JudgeParams:
    """Thresholds of the judge (seconds, metres, m/s)."""

    outside_lane_threshold_s: float = 1.0
    lane_half_width_m: float = 0.5 * LANE_WIDTH_M
    road_half_width_m: float = 0.5 * ROAD_WIDTH_M + 0.2  # + the road points' sampling error
    blocked_speed_mps: float = 0.1
    blocked_time_s: float = 10.0
    route_deviation_m: float = 8.0
    timeout_base_s: float = 20.0
    timeout_speed_mps: float = 3.0  # time budget = timeout_base_s + length / timeout_speed_mps
    completion_tolerance_m: float = 1.0
    stop_speed_mps: float = 0.1
    stop_zone_m: float = 12.0
    stop_pass_m: float = 2.0


@dataclass(frozen=True)
class Infraction:
    kind: str
    time_s: float
    x_m: float
    y_m: float
    detail: str = ""

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "time_s": round(self.time_s, 3),
            "x_m": round(self.x_m, 2),
            "y_m": round(self.y_m, 2),
            "detail": self.detail,
        }


@dataclass
class RouteScore:
    """The judged outcome of one route (see the module docstring for the numbers)."""

    route_completion: float
    infraction_penalty: float
    driving_score: float
    outcome: str
    infractions: list[Infraction] = field(default_factory=list)
    outside_lane_m: float = 0.0
    progress_m: float = 0.0
    duration_s: float = 0.0

    def counts(self) -> dict[str, int]:
        counts = {kind: 0 for kind in INFRACTION_KINDS}
        for event in self.infractions:
            counts[event.kind] += 1
        return counts


class RouteJudge:
    """Watches one route tick by tick (`observe`) and scores it (`score`)."""

    def __init__(self, scenario: Scenario, params: JudgeParams | None = None) -> None:
        self.scenario = scenario
        self.params = params or JudgeParams()
        self.length_m = scenario.length_m
        self.time_budget_s = self.params.timeout_base_s + self.length_m / self.params.timeout_speed_mps
        self.progress_m = 0.0  # the farthest the vehicle got along the route
        self.position_s_m = 0.0  # where it is along the route now (its projection)
        self.lateral_m = 0.0
        self.infractions: list[Infraction] = []
        self.outcome = "running"
        self.end_time_s = 0.0
        self._segment = 0  # route segment index of the last projection
        self._stops_made = [False] * len(scenario.stop_lines)
        self._stops_judged = [False] * len(scenario.stop_lines)
        self._off_road = False
        self._outside_s = 0.0  # duration of the current outside-lane excursion
        self._outside_m = 0.0  # its distance
        self._outside_counted = False
        self.outside_lane_m = 0.0
        self._still_s = 0.0
        self._collided: set[int] = set()
        self._actors_hit: set[int] = set()
        self._lights_run: set[int] = set()
        self._front_s_m: float | None = None
        self._last_xy: np.ndarray | None = None
        self._last_time_s: float | None = None

    @property
    def done(self) -> bool:
        return self.outcome != "running"

    def _event(self, kind: str, time_s: float, state: VehicleState, detail: str = "") -> None:
        self.infractions.append(Infraction(kind, float(time_s), state.x_m, state.y_m, detail))

    def end(self, outcome: str, time_s: float, state: VehicleState, detail: str = "") -> None:
        """End the route with `outcome` (an infraction of the same name when it has a penalty)."""
        if self.done:
            return
        if outcome not in OUTCOMES:
            raise ValueError(f"route outcome {outcome!r}; expected one of {OUTCOMES}")
        if outcome in PENALTIES or outcome == "route_deviation":
            self._event(outcome, time_s, state, detail)
        self._finish_excursion()
        self.outcome = outcome
        self.end_time_s = float(time_s)

    def collision(self, time_s: float, state: VehicleState, object_index: int, object_kind: str) -> None:
        """The vehicle touched world box `object_index` (counted once per object)."""
        if object_index in self._collided or self.done:
            return
        self._collided.add(object_index)
        self._event("collision_static", time_s, state, f"{object_kind} #{object_index}")

    def collision_actor(self, time_s: float, state: VehicleState, actor: int, pedestrian: bool) -> None:
        """The vehicle touched traffic actor `actor` (counted once per actor)."""
        if actor in self._actors_hit or self.done:
            return
        self._actors_hit.add(actor)
        kind = "collision_pedestrian" if pedestrian else "collision_vehicle"
        self._event(kind, time_s, state, f"{'pedestrian' if pedestrian else 'vehicle'} #{actor}")

    def lights(
        self, time_s: float, state: VehicleState, front_s_m: float, lights: list[tuple[int, float, str]]
    ) -> None:
        """After `observe`: the vehicle's front is at route distance `front_s_m`; `lights`: (light,
        stop line route distance, its state for the route) each. Crossing a line on red is a
        red_light infraction (once per light)."""
        before, self._front_s_m = self._front_s_m, float(front_s_m)
        if before is None or self.done:
            return
        for light, line_s, light_state in lights:
            if light_state == "red" and before < line_s <= front_s_m and light not in self._lights_run:
                self._lights_run.add(light)
                self._event("red_light", time_s, state, f"light #{light} at {line_s:.0f} m")

    def _project(self, xy: np.ndarray) -> tuple[float, float, float]:
        """(route distance s, signed lateral offset (+ = left), distance) of xy's projection on
        the route near the last one (a window, so a route passing near itself is not confused)."""
        lane = self.scenario.route_lane_xy
        s_route = self.scenario.route_s_m
        lo = max(0, self._segment - 20)
        hi = min(len(lane) - 1, self._segment + 60)
        start, end = lane[lo:hi], lane[lo + 1 : hi + 1]
        d = end - start
        length_sq = np.maximum(np.einsum("ij,ij->i", d, d), 1e-12)
        t = np.clip(np.einsum("ij,ij->i", xy - start, d) / length_sq, 0.0, 1.0)
        nearest = start + t[:, None] * d
        distance = np.linalg.norm(xy - nearest, axis=1)
        best = int(np.argmin(distance))
        self._segment = lo + best
        s = s_route[lo + best] + t[best] * (s_route[lo + best + 1] - s_route[lo + best])
        delta = xy - nearest[best]
        side = d[best, 0] * delta[1] - d[best, 1] * delta[0]
        return float(s), math.copysign(float(distance[best]), side), float(distance[best])

    def _in_junction(self, s_m: float) -> bool:
        zones = self.scenario.junction_zones_m
        return bool(len(zones)) and bool(np.any((zones[:, 0] <= s_m) & (s_m <= zones[:, 1])))

    def _finish_excursion(self) -> None:
        if self._outside_counted:
            self.outside_lane_m += self._outside_m
        self._outside_s, self._outside_m, self._outside_counted = 0.0, 0.0, False

    def observe(self, time_s: float, state: VehicleState) -> None:
        """One tick at simulation time `time_s` with the vehicle in `state`."""
        if self.done:
            return
        p = self.params
        xy = state.xy
        dt_s = 0.0 if self._last_time_s is None else float(time_s) - self._last_time_s
        moved_m = 0.0 if self._last_xy is None else float(np.linalg.norm(xy - self._last_xy))
        self._last_time_s, self._last_xy = float(time_s), xy
        s, lateral, distance = self._project(xy)
        self.position_s_m, self.lateral_m = s, lateral
        if distance > p.route_deviation_m:
            self.end("route_deviation", time_s, state, f"{distance:.1f} m from the route")
            return
        self.progress_m = max(self.progress_m, min(s, self.length_m))
        speed = abs(state.speed_mps)

        # Leaving the road: centre farther than half a road from every road's centre line.
        road_distance = float(np.min(np.linalg.norm(self.scenario.road_points_xy - xy, axis=1)))
        off_road = road_distance > p.road_half_width_m
        if off_road and not self._off_road:
            self._event("off_road", time_s, state, f"{road_distance - 0.5 * ROAD_WIDTH_M:.1f} m beyond the edge")
        self._off_road = off_road

        # Outside the route's lane for longer than the threshold (junctions excepted).
        if abs(lateral) > p.lane_half_width_m and not self._in_junction(s):
            self._outside_s += dt_s
            self._outside_m += moved_m
            if self._outside_s > p.outside_lane_threshold_s and not self._outside_counted:
                self._outside_counted = True
                self._event("outside_lane", time_s, state, f"{lateral:+.1f} m from the route")
        else:
            self._finish_excursion()

        # Stop lines: stand within the zone before each line, or be judged for running it.
        for i, line in enumerate(self.scenario.stop_lines):
            if self._stops_judged[i]:
                continue
            if line.s_m - p.stop_zone_m <= s <= line.s_m and speed < p.stop_speed_mps:
                self._stops_made[i] = True
            if s > line.s_m + p.stop_pass_m:
                self._stops_judged[i] = True
                if not self._stops_made[i]:
                    self._event("stop_infraction", time_s, state, f"stop line at {line.s_m:.0f} m")

        if self.progress_m >= self.length_m - p.completion_tolerance_m:
            self.progress_m = self.length_m
            self.end("completed", time_s, state)
            return
        self._still_s = self._still_s + dt_s if speed < p.blocked_speed_mps else 0.0
        if self._still_s >= p.blocked_time_s:
            self.end("agent_blocked", time_s, state, f"standing for {self._still_s:.0f} s")
        elif time_s >= self.time_budget_s:
            self.end("route_timeout", time_s, state, f"time budget {self.time_budget_s:.0f} s")

    def score(self) -> RouteScore:
        """RC, penalty and DS now (call after the route ended for the final numbers)."""
        route_completion = 100.0 * min(1.0, self.progress_m / self.length_m)
        penalty = 1.0
        for event in self.infractions:
            penalty *= PENALTIES.get(event.kind, 1.0)
        outside_m = self.outside_lane_m + (self._outside_m if self._outside_counted else 0.0)
        penalty *= max(0.0, 1.0 - outside_m / self.length_m)
        return RouteScore(
            route_completion=route_completion,
            infraction_penalty=penalty,
            driving_score=route_completion * penalty,
            outcome=self.outcome,
            infractions=list(self.infractions),
            outside_lane_m=outside_m,
            progress_m=self.progress_m,
            duration_s=self.end_time_s if self.done else (self._last_time_s or 0.0),
        )


def summarize(scores: list[dict], group_key: str | None = None) -> dict:
    """Mean and std of DS / RC / penalty over per-route result dicts (each with driving_score,
    route_completion, infraction_penalty, infractions counts, length_m), plus infractions per km."""
    if not scores:
        return {"num_routes": 0}
    ds = np.array([r["driving_score"] for r in scores], dtype=np.float64)
    rc = np.array([r["route_completion"] for r in scores], dtype=np.float64)
    ip = np.array([r["infraction_penalty"] for r in scores], dtype=np.float64)
    km = sum(r["route_completion"] / 100.0 * r["length_m"] for r in scores) / 1000.0
    totals = {kind: sum(r["infractions"][kind] for r in scores) for kind in INFRACTION_KINDS}
    summary = {
        "num_routes": len(scores),
        "driving_score_mean": round(float(ds.mean()), 3),
        "driving_score_std": round(float(ds.std()), 3),
        "route_completion_mean": round(float(rc.mean()), 3),
        "route_completion_std": round(float(rc.std()), 3),
        "infraction_penalty_mean": round(float(ip.mean()), 3),
        "infractions": totals,
        "infractions_per_km": {kind: round(count / km, 2) if km > 0 else None for kind, count in totals.items()},
        "km_driven": round(km, 3),
    }
    if group_key is not None:
        groups: dict[str, list[dict]] = {}
        for r in scores:
            groups.setdefault(str(r[group_key]), []).append(r)
        summary[f"per_{group_key}"] = {
            name: {k: v for k, v in summarize(items).items() if not k.startswith(("infractions", "km"))}
            for name, items in groups.items()
        }
    return summary
