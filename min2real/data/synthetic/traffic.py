"""The moving traffic of a closed-loop scenario, stepped tick by tick with the ego vehicle.

Vehicles drive their lanes (`traffic_plan`) with the Intelligent Driver Model (Treiber et al.):
free-road acceleration towards min(their desired speed, the lane's curve speed), braking for the
nearest body in their corridor ahead (another actor, a pedestrian or the ego, whatever lane it is
in) and for virtual stops: a red or yellow light they can stop for, a stop sign (the route's stop
lines; they stand STOP_SIGN_DWELL_S), a scripted mid-block stop, and a conflict zone they have
no right of way into. Right of way in a zone (a junction, the obstacle bypass) is first come,
first served: an actor reserves the zone before it enters and keeps it until its rear has left;
it gets it only while no actor of a conflicting group holds it, no conflicting vehicle (the ego
included) has stood at its mouth longer, and the ego is neither inside nor committed (too close
and too fast to stop before it). Pedestrians stand at the curb until the ego
comes within their trigger distance, wait while a vehicle is too close to stop for them, then
walk across without stopping. Actors that the ego hits stand still and are cleared after
COLLIDED_CLEAR_S. Everything is vectorised over actors and lookahead points; the motion depends
on the plan and the ego's states only, so a run is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from min2real.data.synthetic.render import Boxes
from min2real.data.synthetic.traffic_plan import (
    KIND_PEDESTRIAN,
    KIND_VEHICLE,
    TrafficPlan,
    light_state,
)

IDM_MAX_ACCEL_MPS2, IDM_COMFORT_DECEL_MPS2 = 1.5, 2.5
IDM_MIN_GAP_M, IDM_HEADWAY_S = 1.5, 1.0
LOOKAHEAD_M = np.arange(0.0, 40.5, 1.0)
CORRIDOR_MARGIN_M = 0.3
STOP_SIGN_DWELL_S = 0.5
COLLIDED_CLEAR_S = 3.0
PEDESTRIAN_PREDICT_S = 3.0  # vehicles brake for where a walking pedestrian will be
EGO_HALF_SIZE_M = (2.3, 0.95)
EGO_WAITING_M = 4.0  # the ego stands at a zone's mouth when this close to it
LAMP_BASE_M, LAMP_HEIGHT_M, POLE_HEIGHT_M = 3.2, 1.2, 3.2


@dataclass(frozen=True)
class EgoBody:
    """The ego as the traffic sees it: world pose, speed, and its progress along the route."""

    xy: np.ndarray
    yaw_rad: float
    speed_mps: float
    route_s_m: float


class TrafficWorld:
    """The actors of one `TrafficPlan` in motion. Public arrays (A = actors): kind, lane, s_m,
    speed_mps, xy (A, 2), yaw_rad, half_size_m (A, 2), active (bool)."""

    def __init__(self, plan: TrafficPlan) -> None:
        self.plan = plan
        specs = plan.actors
        self.kind = np.array([a.kind for a in specs], dtype=np.int64)
        self.lane = np.array([a.lane for a in specs], dtype=np.int64)
        self.s_m = np.array([a.s_m for a in specs], dtype=np.float64)
        self.speed_mps = np.zeros(len(specs))
        self.desired_mps = np.array([a.desired_speed_mps for a in specs], dtype=np.float64)
        self.half_size_m = np.array([a.half_size_m for a in specs], dtype=np.float64).reshape(-1, 2)
        self.height_m = np.array([a.height_m for a in specs], dtype=np.float64)
        self.shade = np.array([a.shade for a in specs], dtype=np.float64)
        self.trigger_s_m = np.array([a.trigger_route_s_m for a in specs], dtype=np.float64)
        self.stop_s_m = np.array([a.stop_s_m for a in specs], dtype=np.float64)
        self.stop_dwell_s = np.array([a.stop_dwell_s for a in specs], dtype=np.float64)
        self.waited_s = np.zeros(len(specs))
        self.started = ~np.isfinite(self.trigger_s_m)
        self.active = np.ones(len(specs), dtype=bool)
        self.collided_at_s = np.full(len(specs), math.nan)
        self.signs_done = np.zeros((len(specs), len(plan.stop_signs_route_s_m)), dtype=bool)
        self.holds: dict[int, set[int]] = {}  # zone -> actors holding it
        self.waiting_since_s = np.full(len(specs), np.inf)  # standing at a zone's mouth since
        self.ego_waiting_since_s: dict[int, float] = {}  # zone -> since when the ego stands at its mouth
        self.light_trigger_s: list[float | None] = [None] * len(plan.lights)
        self.time_s = 0.0
        self._spans = {lane: plan.spans_of_lane(lane) for lane in range(len(plan.lanes))}
        self._span_group = {(span.zone, span.lane): span.group for span in plan.spans}
        self.xy = np.zeros((len(specs), 2))
        self.yaw_rad = np.zeros(len(specs))
        self._update_poses()

    # ---- state queries ------------------------------------------------------------------------
    def _update_poses(self) -> None:
        for lane_index, lane in enumerate(self.plan.lanes):
            on = np.flatnonzero(self.lane == lane_index)
            if len(on):
                self.xy[on], self.yaw_rad[on] = lane.pose_at(self.s_m[on])

    def light_state(self, light: int, group: str = "main") -> str:
        trigger = self.light_trigger_s[light]
        return light_state(self.plan.lights[light], group, None if trigger is None else self.time_s - trigger)

    def group_of(self, zone: int, lane: int) -> str:
        return self._span_group[(zone, lane)]

    def boxes(self, lights: bool = True) -> Boxes:
        """Active actors' boxes (+ light poles and lamps coloured by the main road's state)."""
        on = np.flatnonzero(self.active)
        keys = ["vehicle" if k == KIND_VEHICLE else "pedestrian" for k in self.kind[on]]
        centre, yaw, half = [self.xy[on]], [self.yaw_rad[on]], [self.half_size_m[on]]
        base, top, shade = [np.zeros(len(on))], [self.height_m[on]], [self.shade[on]]
        if lights and self.plan.lights:
            poles = np.array([light.pole_xy for light in self.plan.lights])
            facing = np.array([light.facing_yaw for light in self.plan.lights])
            count = len(poles)
            centre += [poles, poles]
            yaw += [facing, facing]
            half += [np.full((count, 2), 0.12), np.tile([0.25, 0.6], (count, 1))]
            base += [np.zeros(count), np.full(count, LAMP_BASE_M)]
            top += [np.full(count, POLE_HEIGHT_M), np.full(count, LAMP_BASE_M + LAMP_HEIGHT_M)]
            shade += [np.ones(2 * count)]
            keys += ["light_pole"] * count + [f"lamp_{self.light_state(i)}" for i in range(count)]
        return Boxes(
            np.concatenate(centre).reshape(-1, 2),
            np.concatenate(yaw),
            np.concatenate(half).reshape(-1, 2),
            np.concatenate(base),
            np.concatenate(top),
            tuple(keys),
            np.concatenate(shade),
        )

    def collide(self, actor: int) -> None:
        """The ego hit `actor`: it stands, and is cleared COLLIDED_CLEAR_S later."""
        if math.isnan(self.collided_at_s[actor]):
            self.collided_at_s[actor] = self.time_s
            self.speed_mps[actor] = 0.0

    # ---- one tick -------------------------------------------------------------------------------
    def step(self, dt_s: float, ego: EgoBody) -> None:
        """Advance every actor by `dt_s` given the ego now."""
        self.time_s += dt_s
        for i, light in enumerate(self.plan.lights):
            if self.light_trigger_s[i] is None and ego.route_s_m >= light.route_stop_s_m - light.trigger_m:
                self.light_trigger_s[i] = self.time_s
        self.started |= ego.route_s_m >= self.trigger_s_m
        cleared = self.time_s - self.collided_at_s >= COLLIDED_CLEAR_S
        self.active &= ~cleared
        collided = np.isfinite(self.collided_at_s)
        for holders in self.holds.values():
            holders.difference_update(np.flatnonzero(~self.active | collided).tolist())
        movers = np.flatnonzero(self.active & self.started & ~collided & (self.kind == KIND_VEHICLE))
        walkers = np.flatnonzero(self.active & self.started & ~collided & (self.kind == KIND_PEDESTRIAN))
        ego_holds = self._ego_holds(ego)
        if len(movers):
            self._drive(movers, dt_s, ego, ego_holds)
        if len(walkers):
            self._walk(walkers, dt_s, ego)
        self._update_poses()

    def _ego_holds(self, ego: EgoBody) -> dict[int, str]:
        """Zones the ego is inside or committed to (zone -> its group); notes since when the ego
        stands at a zone's mouth (first come, first served includes the ego)."""
        held = {}
        front, rear = ego.route_s_m + EGO_HALF_SIZE_M[0], ego.route_s_m - EGO_HALF_SIZE_M[0]
        stop_m = ego.speed_mps**2 / (2 * 3.0) + 1.5
        for span in self._spans.get(self.plan.route_lane, []):
            inside = front >= span.s_enter and rear <= span.s_exit
            committed = ego.speed_mps > 0.5 and 0.0 <= span.s_enter - front <= stop_m
            if inside or committed:
                held[span.zone] = span.group
            if ego.speed_mps < 0.1 and 0.0 <= span.s_enter - front <= EGO_WAITING_M:
                self.ego_waiting_since_s.setdefault(span.zone, self.time_s)
            else:
                self.ego_waiting_since_s.pop(span.zone, None)
        return held

    def _bodies(self, ego: EgoBody) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every body (active actors, then the ego): points (B, P, 2) along its length and, for a
        walking pedestrian, where it will be within PEDESTRIAN_PREDICT_S; radius (B,), velocity
        (B, 2), actor index (B,; -1 = the ego)."""
        on = np.flatnonzero(self.active)
        xy = np.concatenate([self.xy[on], ego.xy[None]])
        yaw = np.concatenate([self.yaw_rad[on], [ego.yaw_rad]])
        speed = np.concatenate([self.speed_mps[on], [ego.speed_mps]])
        half = np.concatenate([self.half_size_m[on], np.array([EGO_HALF_SIZE_M])])
        heading = np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
        velocity = heading * speed[:, None]
        reach = np.maximum(half[:, 0] - half[:, 1], 0.0)[:, None, None] * np.array([-1.0, 0.0, 1.0])[None, :, None]
        points = xy[:, None, :] + reach * heading[:, None, :]
        walking = np.concatenate([(self.kind[on] == KIND_PEDESTRIAN) & (self.speed_mps[on] > 0.1), [False]])
        times = np.arange(0.5, PEDESTRIAN_PREDICT_S + 1e-9, 0.5)
        future = xy[:, None, :] + velocity[:, None, :] * (times[None, :, None] * walking[:, None, None])
        return np.concatenate([points, future], axis=1), half[:, 1], velocity, np.concatenate([on, [-1]])

    def _drive(self, movers: np.ndarray, dt_s: float, ego: EgoBody, ego_holds: dict[int, str]) -> None:
        plan = self.plan
        half_len = self.half_size_m[movers, 0]
        offsets = half_len[:, None] + LOOKAHEAD_M[None, :]  # from each mover's front, (V, K)
        look_xy = np.zeros((*offsets.shape, 2))
        look_yaw = np.zeros(offsets.shape)
        for lane_index in np.unique(self.lane[movers]):
            rows = np.flatnonzero(self.lane[movers] == lane_index)
            look_xy[rows], look_yaw[rows] = plan.lanes[lane_index].pose_at(self.s_m[movers[rows], None] + offsets[rows])
        points, radius, velocity, body_actor = self._bodies(ego)
        # Only (mover, body) pairs within reach of the lookahead are tested, point by point.
        reach = LOOKAHEAD_M[-1] + half_len[:, None] + 8.0
        near = np.einsum("vbd->vb", (self.xy[movers, None, :] - points[None, :, 1, :]) ** 2) < reach**2
        near &= body_actor[None, :] != movers[:, None]  # not itself
        v_index, b_index = np.nonzero(near)
        gap = np.full(near.shape, np.inf)  # bumper to body, (V, B)
        along = np.zeros(near.shape)
        if len(v_index):
            delta = look_xy[v_index, :, None, :] - points[b_index, None, :, :]  # (n, K, P, 2)
            distance_sq = np.einsum("nkpd,nkpd->nkp", delta, delta).min(axis=2)  # (n, K)
            limit = self.half_size_m[movers[v_index], 1] + radius[b_index] + CORRIDOR_MARGIN_M
            hit = distance_sq < (limit**2)[:, None]
            first = np.argmax(hit, axis=1)
            found = hit.any(axis=1)
            gap[v_index[found], b_index[found]] = LOOKAHEAD_M[first[found]]
            yaw = look_yaw[v_index, first]
            speed_along = velocity[b_index, 0] * np.cos(yaw) + velocity[b_index, 1] * np.sin(yaw)
            along[v_index[found], b_index[found]] = speed_along[found]
        gaps = [gap]
        leader_speed = [along]
        stop_gap = self._virtual_stops(movers, dt_s, ego_holds)
        gaps.append(stop_gap[:, None])
        leader_speed.append(np.zeros((len(movers), 1)))
        gap_all, lead_all = np.concatenate(gaps, axis=1), np.concatenate(leader_speed, axis=1)

        v = self.speed_mps[movers]
        lane_limit = np.array([plan.lanes[self.lane[m]] for m in movers], dtype=object)
        v0 = np.array([np.interp(self.s_m[m], lane.s_m, lane.speed_limit_mps) for m, lane in zip(movers, lane_limit)])
        v0 = np.maximum(np.minimum(self.desired_mps[movers], v0), 0.5)
        root = 2.0 * math.sqrt(IDM_MAX_ACCEL_MPS2 * IDM_COMFORT_DECEL_MPS2)
        s_star = IDM_MIN_GAP_M + np.maximum(
            0.0, v[:, None] * IDM_HEADWAY_S + v[:, None] * (v[:, None] - lead_all) / root
        )
        interaction = np.max(np.where(np.isfinite(gap_all), (s_star / np.maximum(gap_all, 0.05)) ** 2, 0.0), axis=1)
        accel = IDM_MAX_ACCEL_MPS2 * (1.0 - (v / v0) ** 4 - interaction)
        accel = np.clip(accel, -9.0, IDM_MAX_ACCEL_MPS2)
        new_v = np.maximum(v + accel * dt_s, 0.0)
        advance = 0.5 * (v + new_v) * dt_s
        blocked = gap_all.min(axis=1) < 0.3
        new_v = np.where(blocked, 0.0, new_v)
        advance = np.where(blocked, 0.0, np.minimum(advance, np.maximum(gap_all.min(axis=1) - 0.3, 0.0)))
        self.speed_mps[movers] = new_v
        self.s_m[movers] += advance
        for m in movers:  # leave the world at the end of the lane; release zones left behind
            lane = plan.lanes[self.lane[m]]
            if self.s_m[m] >= lane.length_m - 0.5:
                self.active[m] = False
            for span in self._spans[self.lane[m]]:
                if self.s_m[m] - self.half_size_m[m, 0] > span.s_exit:
                    self.holds.get(span.zone, set()).discard(int(m))

    def _virtual_stops(self, movers: np.ndarray, dt_s: float, ego_holds: dict[int, str]) -> np.ndarray:
        """(V,) gap from each mover's front to where it must stand (inf: none)."""
        plan = self.plan
        gaps = np.full(len(movers), np.inf)
        for row, m in enumerate(movers):
            m = int(m)
            front = self.s_m[m] + self.half_size_m[m, 0]
            v = self.speed_mps[m]
            candidates = [np.inf]
            if np.isfinite(self.stop_s_m[m]):  # scripted stop mid-block
                gap = self.stop_s_m[m] - front
                if gap < 2.0 and v < 0.1:
                    self.waited_s[m] += dt_s
                    if self.waited_s[m] >= self.stop_dwell_s[m]:
                        self.stop_s_m[m], self.waited_s[m] = math.nan, 0.0
                candidates.append(gap if np.isfinite(self.stop_s_m[m]) else np.inf)
            if self.lane[m] == plan.route_lane:
                for k, sign_s in enumerate(plan.stop_signs_route_s_m):
                    gap = sign_s - 0.5 - front
                    if self.signs_done[m, k] or gap < -1.0:
                        continue
                    if gap < 2.0 and v < 0.1:
                        self.waited_s[m] += dt_s
                        if self.waited_s[m] >= STOP_SIGN_DWELL_S:
                            self.signs_done[m, k], self.waited_s[m] = True, 0.0
                            continue
                    candidates.append(gap)
            for span in self._spans[self.lane[m]]:
                gap = span.s_enter - 1.0 - front
                holders = self.holds.setdefault(span.zone, set())
                if m not in holders and gap < -0.5 and self.s_m[m] - self.half_size_m[m, 0] <= span.s_exit:
                    holders.add(m)  # already inside (spawned there): it holds the zone until it leaves
                if m in holders or gap < -0.5 or gap > v * v / (2 * 2.0) + 8.0:
                    continue
                light = plan.zones[span.zone].light
                if light >= 0:
                    state = self.light_state(light, span.group)
                    if state == "red" or (state == "yellow" and v * v / (2 * max(gap, 0.1)) < 3.0):
                        candidates.append(gap)
                        continue
                conflict = any(self.group_of(span.zone, int(self.lane[h])) != span.group for h in holders)
                # First come, first served: a conflicting vehicle that stood at its mouth earlier goes first.
                if v < 0.1 and gap < 3.0:
                    self.waiting_since_s[m] = min(self.waiting_since_s[m], self.time_s)
                # (one that a red or yellow light holds has no turn: it would stand there forever)
                earlier = [
                    w
                    for w in np.flatnonzero(self.waiting_since_s < self.waiting_since_s[m])
                    if (span.zone, int(self.lane[w])) in self._span_group
                    and self.group_of(span.zone, int(self.lane[w])) != span.group
                    and (light < 0 or self.light_state(light, self.group_of(span.zone, int(self.lane[w]))) == "green")
                ]
                ego_first = self.ego_waiting_since_s.get(span.zone, np.inf) < self.waiting_since_s[m]
                ego_first &= self.group_of(span.zone, plan.route_lane) != span.group
                if conflict or earlier or ego_first or ego_holds.get(span.zone, span.group) != span.group:
                    candidates.append(gap)
                else:
                    holders.add(m)
                    self.waiting_since_s[m] = np.inf
            gaps[row] = min(candidates)
        return gaps

    def _walk(self, walkers: np.ndarray, dt_s: float, ego: EgoBody) -> None:
        """Pedestrians: wait at the curb while a vehicle could not stop for them, then cross."""
        plan = self.plan
        on_vehicles = np.flatnonzero(self.active & (self.kind == KIND_VEHICLE))
        xy = np.concatenate([self.xy[on_vehicles], ego.xy[None]])
        yaw = np.concatenate([self.yaw_rad[on_vehicles], [ego.yaw_rad]])
        speed = np.concatenate([self.speed_mps[on_vehicles], [ego.speed_mps]])
        heading = np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
        for w in walkers:
            lane = plan.lanes[self.lane[w]]
            if self.s_m[w] >= lane.length_m:
                self.speed_mps[w] = 0.0
                continue
            if self.s_m[w] < 0.3:  # still at the curb: is it safe to step out?
                middle = lane.pose_at(0.5 * lane.length_m)[0]
                rel = middle - xy
                along = np.einsum("bd,bd->b", rel, heading)
                lateral = np.abs(heading[:, 0] * rel[:, 1] - heading[:, 1] * rel[:, 0])
                reach = np.maximum(8.0, speed**2 / (2 * IDM_COMFORT_DECEL_MPS2) + 6.0)
                if np.any((lateral < 6.0) & (along > -3.0) & (along < reach) & ((speed > 0.3) | (along < 6.0))):
                    self.speed_mps[w] = 0.0
                    continue
            self.speed_mps[w] = self.desired_mps[w]
            self.s_m[w] = min(self.s_m[w] + self.desired_mps[w] * dt_s, lane.length_m)
