"""The closed-loop simulator: the synthetic world rendered at the vehicle's actual pose, tick by tick.

    observe()  -> camera image (+ LiDAR in the sim look) from the vehicle's pose now, its speed
    step(ctrl) -> the vehicle holds the command for one tick (physics sub-steps, collisions
                  against the world's boxes), then the judge watches the new state

Both ways of running (direct: policy + controller in this process; ROS: the real nodes in their
own processes, lock step) drive this same class, so they see the same world and the same judge.
Rendering noise is seeded per tick, so a run is a function of the route, the domain and the
commands only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from min2real import contract as C
from min2real.data.synthetic.geometry import KINDS
from min2real.data.synthetic.render import PinholeCamera
from min2real.data.synthetic.scenario import Scenario
from min2real.data.synthetic.traffic import EgoBody, TrafficWorld
from min2real.data.synthetic.traffic_plan import KIND_PEDESTRIAN
from min2real.evaluation.closed_loop.scoring import JudgeParams, RouteJudge
from min2real.evaluation.closed_loop.vehicle import KinematicBicycle, VehicleParams, VehicleState
from min2real.runtime.types import VehicleControl

TICK_S = 0.05  # 20 Hz: the CARLA ROS bridge's fixed_delta_seconds and CARLA Garage's control rate


@dataclass(frozen=True)
class Observation:
    """What the sensors see at one tick. image_rgb: (H, W, 3) uint8 or None (not rendered);
    lidar_points_ego: (N, 4) float32 x, y, z, intensity in base_link (REP 103) or None (real look);
    state: the vehicle's pose (world) and speed at time_s."""

    tick: int
    time_s: float
    image_rgb: np.ndarray | None
    lidar_points_ego: np.ndarray | None
    state: VehicleState


def _box_corners(centre: np.ndarray, yaw: np.ndarray, half: np.ndarray) -> np.ndarray:
    """(K, 4, 2) corners of K oriented boxes."""
    local = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.float64)
    lx, ly = local[None, :, 0] * half[:, :1], local[None, :, 1] * half[:, 1:]
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    return np.stack([c * lx - s * ly, s * lx + c * ly], axis=2) + centre[:, None, :]


def boxes_overlap(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Separating-axis test of one (4, 2) rectangle against (K, 4, 2) rectangles -> (K,) bool."""
    if len(others) == 0:
        return np.zeros(0, dtype=bool)
    # Candidate axes: two edge directions of the ego box and two of each other box -> (K, 4, 2).
    ego_axes = np.stack([box[1] - box[0], box[2] - box[1]])
    other_axes = np.stack([others[:, 1] - others[:, 0], others[:, 2] - others[:, 1]], axis=1)
    axes = np.concatenate([np.broadcast_to(ego_axes[None], (len(others), 2, 2)), other_axes], axis=1)
    ego_proj = np.einsum("kad,pd->kap", axes, box)  # (K, 4 axes, 4 points)
    other_proj = np.einsum("kad,kpd->kap", axes, others)
    separated = (ego_proj.max(axis=2) < other_proj.min(axis=2)) | (other_proj.max(axis=2) < ego_proj.min(axis=2))
    return ~separated.any(axis=1)


class ClosedLoopSimulator:
    """One route of a `Scenario` in one domain ("sim" | "real"), ticking every `tick_s`.

    camera: the pinhole camera images are rendered with (None: no images, e.g. the expert);
    lidar: cast LiDAR rays each tick (the sim look only, as in the training data).
    """

    def __init__(
        self,
        scenario: Scenario,
        domain: str,
        camera: PinholeCamera | None,
        lidar: bool,
        tick_s: float = TICK_S,
        vehicle: VehicleParams | None = None,
        judge: JudgeParams | None = None,
    ) -> None:
        if domain not in C.DOMAINS:
            raise ValueError(f"closed-loop domain {domain!r}; expected one of {C.DOMAINS}")
        if not tick_s > 0:
            raise ValueError(f"closed-loop tick_s={tick_s}; expected > 0")
        self.scenario = scenario
        self.domain = domain
        self.camera = camera
        self.lidar = bool(lidar)
        self.tick_s = float(tick_s)
        self.vehicle = KinematicBicycle(VehicleState(*scenario.start_pose), vehicle)
        self.judge = RouteJudge(scenario, judge)
        self._renderer = scenario.renderer(domain) if (camera is not None or self.lidar) else None
        route = scenario.route
        self._box_centres = route.object_centre_xy.reshape(-1, 2)
        self._boxes = _box_corners(self._box_centres, route.object_yaw, route.object_half_size.reshape(-1, 2))
        self._box_kinds = [KINDS[int(k)] for k in route.object_kind]
        self.traffic = TrafficWorld(scenario.traffic_plan) if scenario.traffic_plan is not None else None
        self.tick = 0
        self.trajectory: list[VehicleState] = [self.vehicle.state]
        self.actor_track: list[np.ndarray] = []  # (A, 2) world positions per tick, nan = not there
        self.judge.observe(0.0, self.vehicle.state)
        self._record_actors()

    @property
    def time_s(self) -> float:
        return self.tick * self.tick_s

    @property
    def state(self) -> VehicleState:
        return self.vehicle.state

    @property
    def done(self) -> bool:
        return self.judge.done

    def render(self, state: VehicleState | None = None) -> np.ndarray:
        """The camera image (H, W, 3) uint8 RGB at `state` (default: now), this tick's noise."""
        if self._renderer is None or self.camera is None:
            raise RuntimeError("this simulator renders no camera (camera=None)")
        state = state or self.state
        return self._renderer.render(self.camera, state.xy, state.yaw_rad, self._rng(0), self._dynamic_boxes())

    def _dynamic_boxes(self):
        return self.traffic.boxes() if self.traffic is not None else None

    def _rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng((*self.scenario.seed, 6, C.DOMAINS.index(self.domain), stream, self.tick))

    def observe(self, render: bool = True) -> Observation:
        """The sensors at the current tick (`render=False` skips camera and LiDAR)."""
        state = self.state
        image = lidar = None
        if render and self.camera is not None:
            image = self.render(state)
        if render and self.lidar and self._renderer is not None:
            lidar = self._renderer.lidar(state.xy, state.yaw_rad, self._rng(1), self._dynamic_boxes())
        return Observation(self.tick, self.time_s, image, lidar, state)

    def _collisions(self, state: VehicleState) -> np.ndarray:
        near = np.flatnonzero(np.linalg.norm(self._box_centres - state.xy, axis=1) < 12.0)
        if not len(near):
            return near
        return near[boxes_overlap(state.footprint_xy(self.vehicle.params), self._boxes[near])]

    def _actor_collisions(self, state: VehicleState, actor_boxes: np.ndarray, actors: np.ndarray) -> np.ndarray:
        if not len(actors):
            return actors
        near = np.linalg.norm(actor_boxes.mean(axis=1) - state.xy, axis=1) < 8.0
        if not near.any():
            return actors[:0]
        return actors[near][boxes_overlap(state.footprint_xy(self.vehicle.params), actor_boxes[near])]

    def _record_actors(self) -> None:
        if self.traffic is not None:
            self.actor_track.append(np.where(self.traffic.active[:, None], self.traffic.xy, np.nan))

    def step(self, control: VehicleControl) -> bool:
        """Hold `control` for one tick (the traffic moves first, given the vehicle now); returns
        whether the route has ended."""
        if self.done:
            raise RuntimeError("the route has ended; no more steps")
        traffic = self.traffic
        actors, actor_boxes = np.zeros(0, dtype=np.int64), np.zeros((0, 4, 2))
        if traffic is not None:
            now = self.state
            traffic.step(self.tick_s, EgoBody(now.xy, now.yaw_rad, now.speed_mps, self.judge.position_s_m))
            actors = np.flatnonzero(traffic.active)
            actor_boxes = _box_corners(traffic.xy[actors], traffic.yaw_rad[actors], traffic.half_size_m[actors])
        steps = max(1, int(math.ceil(self.tick_s / self.vehicle.params.physics_dt_s - 1e-9)))
        for index in range(steps):
            before = self.vehicle.state
            after = self.vehicle.substep(control, self.tick_s / steps)
            hits = self._collisions(after)
            actor_hits = self._actor_collisions(after, actor_boxes, actors)
            if len(actor_hits):
                self.vehicle.state = VehicleState(
                    before.x_m, before.y_m, before.yaw_rad, 0.0, after.steer, after.throttle, after.brake, after.reverse
                )
                time_s = self.time_s + (index + 1) * self.tick_s / steps
                for actor in actor_hits:
                    assert traffic is not None
                    pedestrian = bool(traffic.kind[actor] == KIND_PEDESTRIAN)
                    self.judge.collision_actor(time_s, after, int(actor), pedestrian)
                    traffic.collide(int(actor))
            if len(hits):
                # The vehicle stops against the box it touched.
                self.vehicle.state = VehicleState(
                    before.x_m, before.y_m, before.yaw_rad, 0.0, after.steer, after.throttle, after.brake, after.reverse
                )
                time_s = self.time_s + (index + 1) * self.tick_s / steps
                for hit in hits:
                    self.judge.collision(time_s, after, int(hit), self._box_kinds[int(hit)])
        self.tick += 1
        self.trajectory.append(self.vehicle.state)
        self.judge.observe(self.time_s, self.vehicle.state)
        if traffic is not None:
            front_s = self.judge.position_s_m + 0.5 * self.vehicle.params.length_m
            plan = traffic.plan
            states = [(i, light.route_stop_s_m, traffic.light_state(i)) for i, light in enumerate(plan.lights)]
            self.judge.lights(self.time_s, self.vehicle.state, front_s, states)
        self._record_actors()
        return self.done

    def end(self, outcome: str, detail: str = "") -> None:
        """End the route from outside (e.g. a lock-step command timeout)."""
        self.judge.end(outcome, self.time_s, self.state, detail)
