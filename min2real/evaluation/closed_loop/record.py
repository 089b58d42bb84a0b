"""Record the expert driving a scenario with traffic, for training data (`min2real data synth
--traffic`): the closed loop run without sensors, and per tick what a labelled frame needs
(`data.synthetic.traffic_drive.TrafficRecording`)."""

from __future__ import annotations

import math

import numpy as np

from min2real import contract as C
from min2real.data.synthetic.scenario import Scenario
from min2real.data.synthetic.traffic_drive import TrafficDrive, TrafficRecording
from min2real.evaluation.closed_loop.direct import ExpertStack
from min2real.evaluation.closed_loop.simulator import ClosedLoopSimulator

RECORDING_KEYS = ("s", "speed", "target", "brake", "light", "light_m", "boxes", "actors")


def traffic_snapshot(sim: ClosedLoopSimulator, target_speed_mps: float, brake: bool) -> dict:
    """What a labelled frame needs at the simulator's present tick (RECORDING_KEYS): the ego's
    route progress and speed, the expert's `target_speed_mps` / `brake`, the next light's state
    and distance, the boxes drawn and the actors (an empty world: no light, no actors)."""
    world = sim.traffic
    if world is None:
        light_state, distance, boxes = "none", math.inf, None
        on = np.zeros(0, dtype=np.int64)
        actors = {"ids": on, "kinds": on, "centre_xy": np.zeros((0, 2)), "yaw_rad": np.zeros(0),
                  "speed_mps": np.zeros(0), "half_size_m": np.zeros((0, 2)), "height_m": np.zeros(0)}  # fmt: skip
    else:
        front = sim.judge.position_s_m + 0.5 * sim.vehicle.params.length_m
        ahead = [(light.route_stop_s_m - front, i) for i, light in enumerate(world.plan.lights)]
        ahead = [(d, i) for d, i in ahead if d > -0.5]
        distance, light = min(ahead) if ahead else (math.inf, -1)
        light_state = world.light_state(light) if light >= 0 else "none"
        boxes = world.boxes()
        on = np.flatnonzero(world.active)
        actors = {
            "ids": on.copy(),
            "kinds": world.kind[on].copy(),
            "centre_xy": world.xy[on].copy(),
            "yaw_rad": world.yaw_rad[on].copy(),
            "speed_mps": world.speed_mps[on].copy(),
            "half_size_m": world.half_size_m[on].copy(),
            "height_m": world.height_m[on].copy(),
        }
    return {
        "s": sim.judge.position_s_m,
        "speed": sim.state.speed_mps,
        "target": target_speed_mps,
        "brake": brake,
        "light": light_state,
        "light_m": distance,
        "boxes": boxes,
        "actors": actors,
    }


def recording_from_rows(tick_s: float, rows: dict[str, list], driving_score: float, **extra) -> TrafficRecording:
    """A TrafficRecording from per-tick `traffic_snapshot` rows (lists per RECORDING_KEYS);
    `extra`: TrafficRecording's optional per-tick arrays (pose_world, expert_waypoints_ego)."""
    return TrafficRecording(
        tick_s,
        np.asarray(rows["s"], dtype=np.float64),
        np.asarray(rows["speed"], dtype=np.float64),
        np.asarray(rows["target"], dtype=np.float64),
        np.asarray(rows["brake"], dtype=bool),
        list(rows["light"]),
        np.asarray(rows["light_m"], dtype=np.float64),
        list(rows["boxes"]),
        list(rows["actors"]),
        driving_score,
        **extra,
    )


def record_expert_drive(scenario: Scenario, contract: C.Contract = C.DEFAULT_CONTRACT) -> TrafficRecording:
    """The expert drives `scenario` (with its traffic) to the end of the route or until the judge
    ends it; returns the recording and, in it, the route's driving score."""
    if scenario.traffic_plan is None:
        raise ValueError("record_expert_drive needs a scenario with traffic (Scenario(..., traffic=density > 0))")
    sim = ClosedLoopSimulator(scenario, "sim", None, lidar=False)
    stack = ExpertStack(contract)
    stack.start(sim)
    expert = stack.expert
    assert expert is not None
    rows: dict[str, list] = {key: [] for key in RECORDING_KEYS}

    def snapshot(target_speed: float, brake: bool) -> None:
        for key, value in traffic_snapshot(sim, target_speed, brake).items():
            rows[key].append(value)

    while not sim.done:
        output = stack.control(sim.observe(render=False))
        snapshot(expert.target_speed_mps, expert.brake)
        assert output.control is not None
        sim.step(output.control)
    snapshot(0.0, True)
    return recording_from_rows(sim.tick_s, rows, sim.judge.score().driving_score)


def traffic_drive(
    seed: tuple[int, ...],
    duration_s: float,
    traffic: float,
    domain: str,
    image_size: tuple[int, int],
    contract: C.Contract,
    cameras: tuple[str, ...] = ("CAM_F0",),
    lidar: bool | None = None,
    condition: str | None = None,
    obstacle: bool = False,
    first_turn: str | None = None,
) -> TrafficDrive:
    """A drive of `duration_s` labelled seconds (+ the label horizon) through traffic at density
    `traffic`, driven by the expert (the writers' drive factory for `data synth --traffic`)."""
    from min2real.data.common import TARGET_POINT_DISTANCE_M
    from min2real.data.synthetic.geometry import V_MAX_MPS

    length_m = (duration_s + 2 * contract.horizon_s) * V_MAX_MPS * 0.7 + TARGET_POINT_DISTANCE_M + 40.0
    scenario = Scenario(seed, length_m, condition or "noon", obstacle, traffic, first_turn)
    recording = record_expert_drive(scenario, contract)
    return TrafficDrive(scenario, recording, domain, image_size, contract, cameras, lidar)
