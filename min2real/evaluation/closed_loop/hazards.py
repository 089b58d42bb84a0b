"""What the expert perceives of the traffic now, as stop points along its route (PDM-Lite spirit).

Each hazard is a route distance where the vehicle's reference point must be able to stand:

  leader      the nearest vehicle in the route's corridor ahead (any lane: a lead car, a car
              crossing in front): stand a gap behind it, the gap shrinking by the distance the
              leader itself would need to stop (Gipps-style safe following);
  pedestrian  a pedestrian in the corridor, or walking into it within PEDESTRIAN_PREDICT_S at
              its current velocity: stand before it;
  red_light   the light of the route's next signalised junction shows red, or yellow while the
              vehicle can still stop comfortably: stand at its stop line;
  junction    a conflict zone (junction, obstacle bypass) the vehicle has not entered yet while a
              vehicle of a conflicting stream is inside it or moving and so close to it that it
              may take it first (within its braking distance + CLAIM_MARGIN_M, not stopping
              for its red light): stand at the mouth.

Only the present is read (positions, velocities, the lamp colours, the map's lanes); nothing
about the actors' future or the world's right-of-way bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from min2real.data.synthetic.scenario import Scenario
from min2real.data.synthetic.traffic import EGO_HALF_SIZE_M, TrafficWorld
from min2real.data.synthetic.traffic_plan import KIND_PEDESTRIAN, KIND_VEHICLE
from min2real.evaluation.closed_loop.vehicle import VehicleState

LOOKAHEAD_M = np.arange(0.0, 45.5, 0.5)
REACH_M = LOOKAHEAD_M[-1] + 10.0
CORRIDOR_HALF_WIDTH_M = EGO_HALF_SIZE_M[1] + 0.45
FOLLOW_GAP_M, FOLLOW_HEADWAY_S, ASSUMED_DECEL_MPS2 = 3.0, 1.0, 2.5
PEDESTRIAN_GAP_M, PEDESTRIAN_PREDICT_S = 2.5, 3.0
YIELD_RANGE_M = 35.0
MOUTH_DEPTH_M = 2.0  # a zone's mouth: the first metres past its start
CLAIM_DECEL_MPS2, CLAIM_MARGIN_M = 2.0, 12.0  # a vehicle this close to a zone may take it first
MAX_COMFORT_DECEL_MPS2 = 3.5


@dataclass(frozen=True)
class Hazard:
    """kind: leader | pedestrian | red_light | junction; ident: the actor or light; stop_s_m: the
    route distance where the reference point must stand."""

    kind: str
    ident: int
    stop_s_m: float


def perceive(scenario: Scenario, world: TrafficWorld, state: VehicleState, route_s_m: float) -> list[Hazard]:
    """The hazards ahead of a vehicle at `state`, `route_s_m` along the route."""
    front = route_s_m + EGO_HALF_SIZE_M[0]
    return [
        *_corridor(scenario, world, state, route_s_m, front),
        *_lights(world, state, route_s_m, front),
        *_yield(world, state, route_s_m, front),
    ]


def _corridor(scenario: Scenario, world: TrafficWorld, state: VehicleState, route_s: float, front: float):
    near = np.einsum("ad,ad->a", world.xy - state.xy, world.xy - state.xy) < REACH_M**2
    on = np.flatnonzero(world.active & near)
    if not len(on):
        return []
    look_xy, look_yaw = scenario.lane_pose_at(front + LOOKAHEAD_M)
    heading = np.stack([np.cos(world.yaw_rad[on]), np.sin(world.yaw_rad[on])], axis=1)
    velocity = heading * world.speed_mps[on, None]
    reach = np.maximum(world.half_size_m[on, 0] - world.half_size_m[on, 1], 0.0)
    # Points along each body (rear, centre, front) and, for walking pedestrians, where they will be.
    offsets = [reach[:, None] * heading * k for k in (-1.0, 0.0, 1.0)]
    walking = (world.kind[on] == KIND_PEDESTRIAN) & (world.speed_mps[on] > 0.1)
    future = [velocity * t * walking[:, None] for t in np.arange(0.5, PEDESTRIAN_PREDICT_S + 1e-9, 0.5)]
    points = world.xy[on, None, :] + np.stack(offsets + future, axis=1)  # (B, P, 2)
    delta = look_xy[:, None, None, :] - points[None]
    distance_sq = np.einsum("kbpd,kbpd->kbp", delta, delta).min(axis=2)  # (K, B)
    hit = distance_sq < (CORRIDOR_HALF_WIDTH_M + world.half_size_m[on, 1][None, :]) ** 2
    hazards = []
    for b in np.flatnonzero(hit.any(axis=0)):
        gap = float(LOOKAHEAD_M[np.argmax(hit[:, b])])
        actor = int(on[b])
        if world.kind[actor] == KIND_PEDESTRIAN:
            hazards.append(Hazard("pedestrian", actor, route_s + gap - PEDESTRIAN_GAP_M))
            continue
        yaw = look_yaw[np.argmax(hit[:, b])]
        along = max(float(velocity[b, 0] * np.cos(yaw) + velocity[b, 1] * np.sin(yaw)), 0.0)
        keep = FOLLOW_GAP_M + FOLLOW_HEADWAY_S * max(state.speed_mps, 0.0) - along**2 / (2 * ASSUMED_DECEL_MPS2)
        hazards.append(Hazard("leader", actor, route_s + gap - max(keep, FOLLOW_GAP_M * 0.5)))
    return hazards


def _lights(world: TrafficWorld, state: VehicleState, route_s: float, front: float):
    hazards = []
    for index, light in enumerate(world.plan.lights):
        to_line = light.route_stop_s_m - front
        if to_line < -0.2 or to_line > 60.0:
            continue
        colour = world.light_state(index, "main")
        stop_s = route_s + to_line - 0.5
        can_stop = state.speed_mps**2 / (2 * max(stop_s - route_s, 0.1)) <= MAX_COMFORT_DECEL_MPS2
        if colour == "red" or (colour == "yellow" and can_stop):
            hazards.append(Hazard("red_light", index, stop_s))
    return hazards


def _yield(world: TrafficWorld, state: VehicleState, route_s: float, front: float):
    plan = world.plan
    hazards = []
    for span in plan.spans_of_lane(plan.route_lane):
        to_zone = span.s_enter - front
        # Committed: through the mouth, or entering it too fast to stop (standing with the bumper a
        # little past the mouth, e.g. behind a leader, is not committed). Far away: not yet.
        committed = to_zone < -MOUTH_DEPTH_M or (to_zone < 0.5 and state.speed_mps > 2.0)
        if committed or to_zone > YIELD_RANGE_M + 10.0:
            continue
        for other in plan.spans:
            if other.zone != span.zone or other.group == span.group:
                continue
            light = plan.zones[span.zone].light
            colour = world.light_state(light, other.group) if light >= 0 else "green"
            on_lane = np.flatnonzero(world.active & (world.lane == other.lane) & (world.kind == KIND_VEHICLE))
            for actor in on_lane:
                a_front = world.s_m[actor] + world.half_size_m[actor, 0]
                a_rear = world.s_m[actor] - world.half_size_m[actor, 0]
                speed = world.speed_mps[actor]
                to_mouth = other.s_enter - a_front
                inside = a_front >= other.s_enter and a_rear <= other.s_exit
                stopping_for_light = colour == "red" or (
                    colour == "yellow" and speed**2 / (2 * max(to_mouth, 0.1)) < 3.0
                )
                # Close enough to claim the zone before us (the distance a driver needs to decide).
                arriving = 0.0 < to_mouth < speed**2 / (2 * CLAIM_DECEL_MPS2) + CLAIM_MARGIN_M and speed > 0.1
                if inside or (arriving and not stopping_for_light):
                    stop_s = max(span.s_enter - 0.7 - EGO_HALF_SIZE_M[0], route_s)  # here, if already past
                    hazards.append(Hazard("junction", int(actor), stop_s))
    return hazards
