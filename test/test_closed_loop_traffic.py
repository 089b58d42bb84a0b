"""The closed loop with traffic: the judge's traffic infractions on scripted drives (a vehicle
collision, a pedestrian collision, a red-light run, each with its leaderboard factor, once), the
actors seen by the camera and the LiDAR, the lamps' colours readable at the contract's resolution,
actors that never collide with each other, the expert that handles them and the old lane follower
that now fails."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from min2real import contract as C
from min2real.data.synthetic.scenario import CONDITION_NAMES
from min2real.data.synthetic.traffic_plan import KIND_PEDESTRIAN, KIND_VEHICLE
from min2real.evaluation.closed_loop import PENALTIES, ClosedLoopSimulator, ExpertStack, route_set, run_route
from min2real.evaluation.closed_loop.expert import ExpertParams
from min2real.evaluation.closed_loop.simulator import _box_corners, boxes_overlap
from min2real.runtime.types import VehicleControl

FULL_THROTTLE = VehicleControl(steer=0.0, throttle=0.6, brake=0.0)


def _spec(name: str):
    return next(spec for spec in route_set("synth-longest6")[1] if spec.name == f"synth-longest6/{name}")


def _empty_traffic_sim(name: str, length_m: float = 180.0) -> ClosedLoopSimulator:
    """The route's world with every actor taken out (the tests put back the one they need)."""
    spec = dataclasses.replace(_spec(name), length_m=length_m)
    sim = ClosedLoopSimulator(spec.scenario(), "sim", None, lidar=False)
    assert sim.traffic is not None
    sim.traffic.active[:] = False
    return sim


def _place(sim: ClosedLoopSimulator, kind: int, route_s_m: float) -> int:
    """Stand one actor of `kind` on the ego's lane at `route_s_m` (it never starts moving)."""
    world = sim.traffic
    assert world is not None
    actor = int(np.flatnonzero(world.kind == kind)[0])
    world.active[actor], world.started[actor] = True, False
    world.lane[actor], world.s_m[actor] = world.plan.route_lane, route_s_m
    world.trigger_s_m[actor] = np.inf
    world._update_poses()
    return actor


def _drive_straight(sim: ClosedLoopSimulator, seconds: float) -> None:
    for _ in range(int(seconds / sim.tick_s)):
        if sim.done:
            break
        sim.step(FULL_THROTTLE)


@pytest.mark.parametrize(
    ("kind", "infraction"), [(KIND_VEHICLE, "collision_vehicle"), (KIND_PEDESTRIAN, "collision_pedestrian")]
)
def test_hitting_an_actor_is_judged_once_with_its_factor(kind, infraction):
    sim = _empty_traffic_sim("town01_route0")
    actor = _place(sim, kind, 12.0)
    _drive_straight(sim, 8.0)
    score = sim.judge.score()
    assert score.counts()[infraction] == 1, score.infractions  # once, although the car pushes on
    assert sum(score.counts().values()) == 1
    assert score.infraction_penalty == pytest.approx(PENALTIES[infraction])
    assert PENALTIES[infraction] == {"collision_vehicle": 0.60, "collision_pedestrian": 0.50}[infraction]
    assert f"#{actor}" in score.infractions[0].detail
    # The hit actor stands, then is cleared so the route can go on.
    assert not sim.traffic.active[actor]


def test_crossing_a_stop_line_on_red_is_a_red_light_infraction():
    sim = _empty_traffic_sim("town02_route0", 60.0)  # a traffic light with its stop line at ~32 m
    (light,) = sim.traffic.plan.lights
    states = []
    while not sim.done and sim.judge.position_s_m < light.route_stop_s_m + 10.0:
        sim.step(VehicleControl(steer=0.0, throttle=0.25, brake=0.0))
        states.append(sim.traffic.light_state(0))
    score = sim.judge.score()
    assert "red" in states and "yellow" in states  # the light changed on approach
    assert score.counts()["red_light"] == 1, score.infractions
    assert score.infraction_penalty == pytest.approx(0.70)


def test_expert_stops_for_the_red_light_and_is_not_judged():
    spec = dataclasses.replace(_spec("town02_route0"), length_m=60.0)
    run = run_route(spec, ExpertStack(C.DEFAULT_CONTRACT), "sim", None, lidar=False, tiles=False)
    assert run.score.counts()["red_light"] == 0 and run.score.driving_score == 100.0
    assert run.stack_report["interactions"]["red_light"] == 1


def test_actors_are_seen_by_the_camera_and_the_lidar():
    sim = _empty_traffic_sim("town01_route0")
    from min2real.data.synthetic.render import make_camera

    sim.camera = make_camera((1024, 384))
    sim._renderer = sim.scenario.renderer("sim")
    sim.lidar = True
    empty = sim.observe()
    _place(sim, KIND_VEHICLE, 15.0)
    seen = sim.observe()
    changed = np.any(seen.image_rgb != empty.image_rgb, axis=2)
    assert changed.sum() > 2000  # a car 12.7 m ahead covers thousands of pixels
    ahead = lambda points: points[(np.abs(points[:, 1]) < 1.0) & (points[:, 0] > 5.0) & (points[:, 2] > 0.3)]  # noqa: E731
    hits = ahead(seen.lidar_points_ego)
    assert len(hits) > 20 and np.abs(hits[:, 0].min() - (15.0 - 2.2)) < 0.3  # its rear face, in base_link
    assert len(ahead(empty.lidar_points_ego)) == 0


@pytest.mark.parametrize("domain", ["sim", "real"])
def test_lamp_colour_is_readable_at_the_contract_resolution_in_every_condition(domain):
    from min2real.evaluation.closed_loop.run import rendering_camera

    contract = C.Contract(camera_height=96, camera_width=256)  # the bundled model's input size
    for condition in CONDITION_NAMES:
        spec = dataclasses.replace(_spec("town02_route0"), length_m=60.0, condition=condition)
        sim = ClosedLoopSimulator(spec.scenario(), domain, rendering_camera(contract, domain), lidar=False)
        sim.traffic.active[:] = False
        light = sim.traffic.plan.lights[0]
        stand = sim.scenario.lane_pose_at(light.route_stop_s_m - 3.0)
        from min2real.evaluation.closed_loop.vehicle import VehicleState

        state = VehicleState(*stand[0], float(stand[1]))
        images = {}
        for phase, trigger in (("green", None), ("red", -5.0)):
            sim.traffic.light_trigger_s[0] = trigger if trigger is None else sim.traffic.time_s + trigger
            assert sim.traffic.light_state(0) == phase
            images[phase] = C.prepare_camera_rgb(sim.render(state), contract).astype(np.int32)
        # Only the lamp differs between the two renders (same tick, same noise); there it reads.
        lamp = np.abs(images["red"] - images["green"]).max(axis=2) > 40
        assert lamp.sum() >= 4, (condition, int(lamp.sum()))
        red, green = images["red"][lamp].mean(axis=0), images["green"][lamp].mean(axis=0)
        assert red[0] > red[1] + 60 and red[0] > red[2] + 60, (condition, red)
        assert green[1] > green[0] + 60 and green[1] > green[2] + 40, (condition, green)


def _no_actor_overlaps(sim: ClosedLoopSimulator) -> None:
    world = sim.traffic
    on = np.flatnonzero(world.active & ~np.isfinite(world.collided_at_s))
    boxes = _box_corners(world.xy[on], world.yaw_rad[on], world.half_size_m[on])
    for i in range(len(on) - 1):
        assert not boxes_overlap(boxes[i], boxes[i + 1 :]).any(), f"actors overlap at tick {sim.tick}"


@pytest.mark.parametrize("name", ["town01_route1", "town05_route0", "town03_route1"])
def test_expert_handles_the_traffic_which_never_collides_with_itself(name):
    run = run_route(
        _spec(name), ExpertStack(C.DEFAULT_CONTRACT), "sim", None, lidar=False, tiles=False, on_tick=_no_actor_overlaps
    )
    assert run.score.driving_score >= 95, run.result()
    met = run.stack_report["interactions"]
    assert met["lead_vehicle"] + met["junction"] + met["red_light"] + met["pedestrian"] >= 3, met
    assert run.actor_xy is not None and np.isfinite(run.actor_xy).any()


def test_a_lane_follower_that_does_not_yield_now_fails():
    """The old expert (route speed plan and stop lines, blind to traffic) on the routes the expert
    completes: it runs into vehicles and through red lights."""
    lane_follower = ExpertParams(yield_to_traffic=False)
    runs = [
        run_route(_spec(name), ExpertStack(C.DEFAULT_CONTRACT, lane_follower), "sim", None, lidar=False, tiles=False)
        for name in ("town01_route1", "town05_route0", "town03_route1")
    ]
    scores = [run.score for run in runs]
    assert np.mean([score.driving_score for score in scores]) < 60, [score.driving_score for score in scores]
    kinds = {event.kind for score in scores for event in score.infractions}
    assert {"collision_vehicle", "red_light"} <= kinds, kinds


def test_data_synth_with_traffic_labels_the_experts_decisions_and_the_actors(tmp_path):
    """`data synth --traffic`: the drive is the expert's, so frames carry its target speed and
    brake, the light state, Garage boxes and NAVSIM annotations of the actors it met."""
    import gzip
    import json

    from min2real.data.safe_pickle import load_navsim_log
    from min2real.data.synthetic import write_synthetic_dataset
    from min2real.evaluation.closed_loop.record import traffic_drive

    summary = write_synthetic_dataset(
        tmp_path, seed=5, frames=16, routes=1, contract=C.TINY_CONTRACT, traffic=1.0, traffic_drive=traffic_drive,
        sim_image_size=(256, 96), real_image_size=(256, 144),
    )  # fmt: skip
    assert summary["traffic"] == 1.0
    route = tmp_path / "carla" / "synthetic" / "route_000"
    read = lambda path: json.load(gzip.open(path, "rt"))  # noqa: E731
    measurements = [read(path) for path in sorted((route / "measurements").glob("*.json.gz"))]
    boxes = [read(path) for path in sorted((route / "boxes").glob("*.json.gz"))]
    assert len(boxes) == len(measurements) and read(route / "results.json.gz")["scores"]["score_composed"] == 100.0
    assert any(m["brake"] for m in measurements) and any(not m["brake"] for m in measurements)
    assert all(m["target_speed"] <= 7.0 + 1e-6 for m in measurements)
    assert {m["traffic_light_state"] for m in measurements} <= {"none", "green", "yellow", "red"}
    cars = [box for frame in boxes for box in frame if box["class"] == "car" and box["num_points"] > 0]
    assert cars and all(len(box["extent"]) == 3 for box in cars)  # actors seen by the LiDAR
    (log,) = (tmp_path / "navsim" / "navsim_logs" / "trainval").glob("*.pkl")
    frames = load_navsim_log(log)  # the restricted unpickler the NAVSIM loader uses accepts the annotations
    assert any(len(frame["anns"]["gt_boxes"]) for frame in frames)
    assert all(frame["anns"]["gt_boxes"].shape[1:] == (7,) for frame in frames)
    with pytest.raises(ValueError, match="traffic_drive"):
        write_synthetic_dataset(tmp_path / "bad", frames=4, routes=1, traffic=1.0)
