"""The episode loop and route-set runs: drive routes with a stack, judge them, write the results.

    for each tick:  observation = sim.observe()          (camera + LiDAR at the vehicle's pose)
                    output = stack.control(observation)  (direct mirrors or the ROS nodes)
                    sim.step(output.control)             (vehicle, collisions, judge)

A stack that returns no command (lock-step timeout, a refused frame in direct mode) ends the
route with a `command_timeout`. Results: one dict per route (RouteSpec fields, DS, RC, penalty,
outcome, infraction counts and events, time) and a summary (mean +- std, per condition); the
top-down plot and the camera contact sheet (or video) per route come from `report`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from min2real import contract as C
from min2real.data.synthetic.render import CAMERA_FORWARD_M, CAMERA_HEIGHT_M, PinholeCamera, make_camera
from min2real.evaluation.closed_loop.direct import Stack, TickOutput
from min2real.evaluation.closed_loop.routes import RouteSpec
from min2real.evaluation.closed_loop.scoring import JudgeParams, RouteScore, summarize
from min2real.evaluation.closed_loop.simulator import TICK_S, ClosedLoopSimulator, Observation
from min2real.runtime.overlay import CameraModel, draw_overlay

TILE_EVERY_S = 1.0  # an overlay tile per simulated second (the contact sheet picks among them)
VIDEO_EVERY_TICKS = 4  # 5 Hz video frames


def default_image_size(contract: C.Contract, domain: str) -> tuple[int, int]:
    """Camera image size (width, height) the training data had for this contract and domain:
    sim = the contract's camera size (CARLA layout), real = 16:9 (NAVSIM) 640 x 360 for full-size
    contracts, the contract's width for small ones (`data synth --tiny`: 256 x 144)."""
    if domain == "sim":
        return contract.camera_width, contract.camera_height
    width = min(640, contract.camera_width)
    return width, int(round(width * 9 / 16))


def overlay_camera(camera: PinholeCamera) -> CameraModel:
    """The synthetic camera as the overlay's CameraModel (mounted CAMERA_FORWARD_M ahead, CAMERA_HEIGHT_M up)."""
    return CameraModel(
        camera.width,
        camera.height,
        camera.focal_px,
        camera.focal_px,
        camera.cx,
        camera.cy,
        (CAMERA_FORWARD_M, 0.0, CAMERA_HEIGHT_M),
        0.0,
    )


@dataclass
class RouteRun:
    """Everything one route produced: the score, the driven states (T, 7: t, x, y, yaw, speed,
    steer, throttle/brake), overlay tiles and video frames."""

    spec: RouteSpec
    score: RouteScore
    states: np.ndarray
    ticks: int
    wall_s: float
    tiles: list[np.ndarray] = field(default_factory=list)
    video_frames: list[np.ndarray] = field(default_factory=list)
    route_xy: np.ndarray | None = None
    timeouts: list[str] = field(default_factory=list)
    stack_report: dict[str, Any] = field(default_factory=dict)
    actor_xy: np.ndarray | None = None  # (T, A, 2) traffic positions per tick (nan: not there)
    actor_kind: np.ndarray | None = None  # (A,) traffic_plan.KIND_*

    def result(self) -> dict[str, Any]:
        """The route's entry in results.json."""
        score = self.score
        return {
            **asdict(self.spec),
            "seed": list(self.spec.seed),
            "driving_score": round(score.driving_score, 3),
            "route_completion": round(score.route_completion, 3),
            "infraction_penalty": round(score.infraction_penalty, 4),
            "outcome": score.outcome,
            "infractions": score.counts(),
            "events": [event.as_dict() for event in score.infractions],
            "outside_lane_m": round(score.outside_lane_m, 2),
            "progress_m": round(score.progress_m, 2),
            "duration_s": round(score.duration_s, 2),
            "ticks": self.ticks,
            "wall_s": round(self.wall_s, 3),
            "wall_ms_per_tick": round(1e3 * self.wall_s / max(self.ticks, 1), 2),
            "timeout_detail": self.timeouts[-1] if self.timeouts else "",
            **({"stack": stack} if (stack := {k: v for k, v in self.stack_report.items() if k != "monitor"}) else {}),
            **({"monitor": self.stack_report["monitor"]} if "monitor" in self.stack_report else {}),  # domain shift
        }


def _tile(sim: ClosedLoopSimulator, observation: Observation, output: TickOutput, camera: CameraModel) -> np.ndarray:
    image = observation.image_rgb if observation.image_rgb is not None else sim.render(observation.state)
    state = observation.state
    route_ahead = C.world_to_ego_xy(sim.scenario.route_xy, state.xy, state.yaw_rad)
    route_ahead = route_ahead[(route_ahead[:, 0] > 0) & (np.linalg.norm(route_ahead, axis=1) < 30.0)]
    control = output.control
    command = "no command" if control is None else f"steer {control.steer:+.2f} thr {control.throttle:.2f}"
    if control is not None and control.brake > 0:
        command = "brake"
    label = f"t={observation.time_s:.1f}s {state.speed_mps:.1f}m/s {command}"
    return draw_overlay(image, output.waypoints_ego, label, camera, route_ahead, output.target_point_ego)


def run_route(
    spec: RouteSpec,
    stack: Stack,
    domain: str,
    camera: PinholeCamera | None,
    lidar: bool,
    tick_s: float = TICK_S,
    tiles: bool = True,
    video: bool = False,
    on_tick: Callable[[ClosedLoopSimulator], None] | None = None,
    judge: JudgeParams | None = None,
) -> RouteRun:
    """Drive one route with `stack` until the judge ends it. camera: the rendering camera (also
    for tiles when the stack needs no sensors); lidar: cast LiDAR each tick (sim look);
    judge: the judge's thresholds (default JudgeParams())."""
    scenario = spec.scenario()
    sim = ClosedLoopSimulator(scenario, domain, camera, lidar and stack.needs_sensors, tick_s, judge=judge)
    overlay = overlay_camera(camera) if camera is not None else None
    tile_every = max(1, int(round(TILE_EVERY_S / tick_s)))
    run = RouteRun(spec, sim.judge.score(), np.zeros((0, 7)), 0, 0.0, route_xy=scenario.route_xy)
    rows = []
    start = time.perf_counter()
    stack.start(sim)
    try:
        while not sim.done:
            observation = sim.observe(render=stack.needs_sensors)
            output = stack.control(observation)
            state = observation.state
            control = output.control
            pedal = 0.0 if control is None else (control.throttle if control.brake <= 0 else -control.brake)
            steer = math.nan if control is None else control.steer
            rows.append((observation.time_s, state.x_m, state.y_m, state.yaw_rad, state.speed_mps, steer, pedal))
            if overlay is not None and (
                (tiles and sim.tick % tile_every == 0) or (video and sim.tick % VIDEO_EVERY_TICKS == 0)
            ):
                tile = _tile(sim, observation, output, overlay)
                if tiles and sim.tick % tile_every == 0:
                    run.tiles.append(tile)
                if video and sim.tick % VIDEO_EVERY_TICKS == 0:
                    run.video_frames.append(tile)
            if control is None:
                run.timeouts.append(output.detail)
                sim.end("command_timeout", output.detail)
                break
            sim.step(control)
            if on_tick is not None:
                on_tick(sim)
    finally:
        stack.close()
    report = getattr(stack, "report", None)
    run.stack_report = report() if callable(report) else {}
    final = sim.state
    rows.append((sim.time_s, final.x_m, final.y_m, final.yaw_rad, final.speed_mps, math.nan, math.nan))
    run.wall_s = time.perf_counter() - start
    run.ticks = sim.tick
    if sim.traffic is not None:
        run.actor_xy = np.stack(sim.actor_track)
        run.actor_kind = sim.traffic.kind.copy()
    run.states = np.asarray(rows, dtype=np.float64)
    run.score = sim.judge.score()
    return run


def results_document(
    runs: list[RouteRun], route_set: str, policy: str, domain: str, mode: str, extra: dict | None = None
) -> dict[str, Any]:
    """results.json: per-route results and the summary (`driving_score_mean` etc. at the top level)."""
    routes = [run.result() for run in runs]
    summary = summarize(routes, "condition")
    met = [route["stack"]["interactions"] for route in routes if "interactions" in route.get("stack", {})]
    if met and len(met) == len(routes):  # the expert's count of the traffic in its way
        summary["interactions_per_route"] = {kind: round(sum(m[kind] for m in met) / len(met), 3) for kind in met[0]}
    return {
        "route_set": route_set,
        "policy": policy,
        "domain": domain,
        "mode": mode,
        **{k: v for k, v in summary.items() if k != "per_condition"},
        "per_condition": summary.get("per_condition", {}),
        "routes": routes,
        **(extra or {}),
    }


def write_results(path: Path, document: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def rendering_camera(contract: C.Contract, domain: str, image_size: tuple[int, int] | None = None) -> PinholeCamera:
    """The camera the simulator renders for a model of `contract` in `domain`."""
    return make_camera(image_size or default_image_size(contract, domain), contract)


def run_route_set(
    specs: list[RouteSpec],
    make_stack: Callable[[RouteSpec], Stack],
    domain: str,
    camera: PinholeCamera | None,
    lidar: bool,
    out: Path | None,
    label: str,
    policy_name: str,
    mode: str,
    tiles: int = 12,
    video: bool = False,
    progress: bool = True,
    extra: dict | None = None,
) -> dict[str, Any]:
    """Drive every route with a fresh stack from `make_stack`; with `out`, write results.json and
    per route routes/<town..>/top_down.png, contact_sheet.png (and video.mp4). Returns results.json."""
    from tqdm import tqdm

    from min2real.evaluation.closed_loop.report import write_route_figures

    runs: list[RouteRun] = []
    bar = tqdm(total=len(specs), desc=f"closed loop ({mode})", unit="route", disable=not progress)

    def on_tick(sim: ClosedLoopSimulator) -> None:
        if sim.tick % 100 == 0:
            bar.set_postfix_str(
                f"{sim.scenario.seed} t={sim.time_s:.0f}s RC={100 * sim.judge.progress_m / sim.scenario.length_m:.0f}%"
            )

    try:
        for spec in specs:
            run = run_route(
                spec, make_stack(spec), domain, camera, lidar, tiles=tiles > 0, video=video, on_tick=on_tick
            )
            runs.append(run)
            if out is not None:
                write_route_figures(out / "routes" / spec.name.split("/")[-1], run, tiles)
            bar.update(1)
            mean = float(np.mean([r.score.driving_score for r in runs]))
            bar.set_postfix_str(f"last DS {run.score.driving_score:.1f}, mean DS {mean:.1f}")
    finally:
        bar.close()
    document = results_document(runs, label, policy_name, domain, mode, extra)
    if out is not None:
        write_results(out / "results.json", document)
    return document
