"""Closed-loop data aggregation (DAgger, Ross et al. 2011; the CARLA Garage / LBC style loop):
drive the current model on training towns, the expert taking over with probability beta, and
record what the sensors saw at the states actually visited, labelled by the expert from there.

    per route:  each tick, the model stack (DirectPolicyStack: the same driver, controller and
                simulator as `min2real closed-loop`) and the expert (ExpertStack) both see the
                visited state; the executed command is the expert's for a segment with
                probability beta, else the model's
                each 4 Hz frame (the Garage layout's rate): the pose, the world (traffic, lights)
                and the expert's plan from that state: its waypoints, target speed and brake
    afterwards: the frames rendered at those poses (camera, LiDAR, Garage's augmented camera)
                and written as a CARLA Garage route (data.synthetic.writers.write_carla_route)

Mixing per segment (`segment_s`, default 1 s), not per tick: switching at 20 Hz averages the
two controllers into one blended command, so the model's drift never develops and the data
holds few of the states its own mistakes lead to; a 1 s segment lets a mistake grow and the
expert's next segment records the recovery. Schedule: beta_i = beta0 * decay**i for round i
(round 0 is the expert's own data, `data synth`; defaults beta0 = 1, decay = 0.5: 0.5, 0.25, ...).

Seeds: route r of `--seed S` is `min2real data synth --seed S`'s sim route r (geometry seed
(S, 0, r), first turn alternating), so S = 10 drives the bundled model's training towns. Refused:
the closed-loop judge's seed space (synth-longest6, synth-val and every other route set live at
and above CLOSED_LOOP_SEED_BASE), the bundled model's held-out data seeds (val 11, test 12) and
the stand-in extractor's seeds. A route the model crashes or blocks on is recorded to its end:
those states are the point, still labelled by the expert.

Looks: the sim look (default) drives the sim graph with LiDAR and writes DIR/carla/dagger/: sim-look
driving labels, which an {S} recipe may train on (data.sim_roots). `look="real"` drives the real
graph in the real look (no LiDAR, as every real-look drive) on `data synth --seed S`'s real routes
and writes DIR/real_look/dagger/ (Garage layout): real driving labels, the analogue of a safety
driver's corrections on the vehicle, so only a {S, R} recipe may train on them
(data.real_look_roots with data.real_driving_labels: true); the two are never mixed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from min2real import contract as C
from min2real.data.synthetic.drive import CARLA_RATE_HZ
from min2real.data.synthetic.render import REAL, SIM
from min2real.data.synthetic.scenario import CONDITION_NAMES, Scenario
from min2real.evaluation.closed_loop.direct import DirectPolicyStack, ExpertStack, TickOutput
from min2real.evaluation.closed_loop.record import RECORDING_KEYS, recording_from_rows, traffic_snapshot
from min2real.evaluation.closed_loop.routes import CLOSED_LOOP_SEED_BASE, ROUTE_LENGTH_M, RouteSpec
from min2real.evaluation.closed_loop.run import (
    RouteRun,
    default_image_size,
    rendering_camera,
    results_document,
    run_route,
)
from min2real.evaluation.closed_loop.simulator import TICK_S, ClosedLoopSimulator, Observation
from min2real.runtime.controller import ControllerConfig

# The bundled model's held-out data (training/bundled.yaml header: `data synth --seed 11` val, 12 test).
HELD_OUT_DATA_SEEDS = {11: "the bundled model's validation data", 12: "the bundled model's test data"}
DEFAULT_DECAY = 0.5
DEFAULT_SEGMENT_S = 1.0
RECORD_EVERY_TICKS = int(round(1.0 / (CARLA_RATE_HZ * TICK_S)))  # 20 Hz ticks per 4 Hz frame
# The Garage-layout folder of each look's recording under the round's DIR (see the module docstring).
LOOK_FOLDERS = {SIM: "carla", REAL: "real_look"}


def beta_for_round(round_index: int, beta0: float = 1.0, decay: float = DEFAULT_DECAY) -> float:
    """beta_i = beta0 * decay**i: the expert's share of round i (round 0: the expert's own data)."""
    if round_index < 0 or not 0.0 <= beta0 <= 1.0 or not 0.0 <= decay <= 1.0:
        raise ValueError(
            f"DAgger schedule round={round_index} beta0={beta0} decay={decay}; expected round >= 0, beta0 and decay in [0, 1]"
        )
    return float(beta0 * decay**round_index)


def check_training_seed(seed: int) -> None:
    """Refuse (ValueError naming the seed) a data seed that is not a training seed."""
    from min2real.data.common import EXTRACTOR_SEEDS

    if seed < 0:
        raise ValueError(
            f"DAgger --seed {seed}; expected a non-negative training data seed (e.g. 10, the bundled train data)"
        )
    if seed >= CLOSED_LOOP_SEED_BASE:
        raise ValueError(
            f"DAgger --seed {seed} is in the closed-loop judge's seed space (>= {CLOSED_LOOP_SEED_BASE}: the towns of "
            "synth-longest6, synth-val and the other route sets); DAgger drives training towns only: expected a seed below it"
        )
    if seed in HELD_OUT_DATA_SEEDS:
        raise ValueError(
            f"DAgger --seed {seed} is {HELD_OUT_DATA_SEEDS[seed]} (training/bundled.yaml); DAgger drives training towns "
            f"only: expected a seed other than {sorted(HELD_OUT_DATA_SEEDS)} (10 = the bundled training data)"
        )
    if seed in EXTRACTOR_SEEDS:
        raise ValueError(
            f"DAgger --seed {seed} is reserved ({EXTRACTOR_SEEDS.start}..{EXTRACTOR_SEEDS.stop - 1}) for the stand-in "
            "extractor's pretraining and probes; expected another training seed"
        )


@dataclass(frozen=True)
class DaggerRouteSpec(RouteSpec):
    """A DAgger route: `data synth --seed S`'s sim route r (geometry seed (S, 0, r), first turn
    alternating left / right), judged like a closed-loop route of `length_m`."""

    drive_seed: tuple[int, ...] = ()
    first_turn: str | None = None

    @property
    def seed(self) -> tuple[int, ...]:
        return self.drive_seed

    def scenario(self) -> Scenario:
        return Scenario(self.drive_seed, self.length_m, self.condition, self.obstacle, self.traffic, self.first_turn)


def dagger_routes(
    seed: int,
    routes: int,
    conditions: tuple[str, ...] = (),
    obstacle_share: float = 0.0,
    traffic: float = 1.0,
    length_m: float = ROUTE_LENGTH_M,
    look: str = SIM,
) -> list[DaggerRouteSpec]:
    """The routes of one round: `data synth --seed seed`'s routes 0..routes-1 of the `look`'s domain,
    with its condition cycle and parked-car share (refuses a seed that is not a training seed)."""
    check_training_seed(seed)
    if look not in LOOK_FOLDERS:
        raise ValueError(f"DAgger look {look!r}; expected one of {sorted(LOOK_FOLDERS)}")
    if routes < 1:
        raise ValueError(f"DAgger --routes {routes}; expected at least 1")
    unknown = sorted(set(conditions) - set(CONDITION_NAMES))
    if unknown:
        raise ValueError(f"DAgger conditions {unknown} are not known; expected some of {CONDITION_NAMES}")
    if not 0.0 <= obstacle_share <= 1.0:
        raise ValueError(f"DAgger obstacle share {obstacle_share}; expected a share in [0, 1]")
    specs = []
    for r in range(routes):
        obstacle = math.floor((r + 1) * obstacle_share) > math.floor(r * obstacle_share)  # as data synth
        condition = conditions[r % len(conditions)] if conditions else "noon"
        specs.append(
            DaggerRouteSpec(
                f"dagger-seed{seed}/route{r:03d}", 0, r, condition, obstacle, length_m, seed, traffic,
                drive_seed=(seed, C.DOMAINS.index(look), r), first_turn="left" if r % 2 == 0 else "right",
            )
        )  # fmt: skip
    return specs


class MixedStack:
    """The model's stack and the expert, both run on every visited state; the executed command is
    the expert's for a segment of `segment_ticks` with probability `beta`, else the model's. Every
    `record_every_ticks` it records the state and the expert's labels from it (`rows`)."""

    def __init__(
        self,
        model: DirectPolicyStack | None,
        expert: ExpertStack,
        beta: float,
        segment_ticks: int,
        rng: np.random.Generator,
        record_every_ticks: int = RECORD_EVERY_TICKS,
    ) -> None:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"DAgger beta {beta}; expected a probability in [0, 1]")
        if model is None and beta < 1.0:
            raise ValueError("DAgger beta < 1 needs a model to drive")
        if segment_ticks < 1 or record_every_ticks < 1:
            raise ValueError(f"segment_ticks={segment_ticks} record_every_ticks={record_every_ticks}; expected >= 1")
        self.model, self.expert, self.beta = model, expert, float(beta)
        self.segment_ticks, self.record_every_ticks, self.rng = segment_ticks, record_every_ticks, rng
        self.needs_sensors = beta < 1.0  # beta = 1: the model never drives, so it is not run
        self.sim: ClosedLoopSimulator | None = None
        self.rows: dict[str, list] = {}
        self.expert_driving = True
        self.model_ticks = self.ticks = 0

    def start(self, sim: ClosedLoopSimulator) -> None:
        self.sim = sim
        self.expert.start(sim)
        if self.model is not None and self.needs_sensors:
            self.model.start(sim)
        self.rows = {key: [] for key in (*RECORDING_KEYS, "pose", "waypoints", "expert_drove")}

    def control(self, observation: Observation) -> TickOutput:
        assert self.sim is not None and self.expert.expert is not None
        if observation.tick % self.segment_ticks == 0:
            self.expert_driving = bool(self.rng.random() < self.beta)
        expert_output = self.expert.control(observation)  # the expert's state follows the visited trajectory
        model_output = self.model.control(observation) if self.model is not None and self.needs_sensors else None
        if observation.tick % self.record_every_ticks == 0:
            expert, state = self.expert.expert, observation.state
            for key, value in traffic_snapshot(self.sim, expert.target_speed_mps, expert.brake).items():
                self.rows[key].append(value)
            self.rows["pose"].append((state.x_m, state.y_m, state.yaw_rad))
            self.rows["waypoints"].append(expert_output.waypoints_ego)
            self.rows["expert_drove"].append(self.expert_driving)
        self.ticks += 1
        if self.expert_driving:
            return expert_output
        assert model_output is not None  # beta < 1 runs the model on every tick
        self.model_ticks += 1
        return model_output  # a refused frame ends the route (command_timeout), as in `closed-loop`

    def report(self) -> dict[str, Any]:
        """The share of ticks the model's command drove, beta and the segment length."""
        return {
            "model_share": round(self.model_ticks / max(self.ticks, 1), 4),
            "beta": self.beta,
            "segment_s": self.segment_ticks * TICK_S,
        }

    def close(self) -> None:
        return None

    def recording(self, driving_score: float):
        """The 4 Hz recording (data.synthetic.traffic_drive.TrafficRecording) of the route driven."""
        rows = self.rows
        return recording_from_rows(
            self.record_every_ticks * TICK_S,
            rows,
            driving_score,
            pose_world=np.asarray(rows["pose"], dtype=np.float64).reshape(-1, 3),
            expert_waypoints_ego=np.asarray(rows["waypoints"], dtype=np.float32),
        )


def drive_route(
    spec: DaggerRouteSpec,
    policy: Any,
    beta: float,
    segment_s: float = DEFAULT_SEGMENT_S,
    contract: C.Contract | None = None,
    use_lidar: bool = True,
    speed_from: str = ControllerConfig.speed_from,
    look: str = SIM,
) -> tuple[RouteRun, MixedStack]:
    """Drive one route with the mixed stack until the judge ends it (a crash or a block included).
    `policy`: a runtime DrivingPolicy (the `look`'s graph), or None with beta = 1 (the expert alone);
    the real look casts no LiDAR."""
    contract = contract or (policy.contract if policy is not None else C.DEFAULT_CONTRACT)
    if not segment_s > 0:
        raise ValueError(f"DAgger segment_s={segment_s}; expected > 0 seconds")
    use_lidar = use_lidar and look == SIM
    model = DirectPolicyStack(policy, TICK_S, use_lidar, speed_from=speed_from) if policy is not None else None
    rng = np.random.default_rng((*spec.drive_seed, 8))
    stack = MixedStack(model, ExpertStack(contract), beta, max(1, int(round(segment_s / TICK_S))), rng)
    camera = rendering_camera(contract, look)
    return run_route(spec, stack, look, camera, use_lidar, tiles=False), stack


def write_route(route_dir: Path, run: RouteRun, stack: MixedStack, contract: C.Contract, look: str = SIM) -> int:
    """The driven route as a CARLA Garage route folder (`write_carla_route`): frames rendered at the
    visited poses, labelled by the expert; results.json.gz holds the drive's score and says the
    labels are the expert's at the visited states. Returns the frames written."""
    from min2real.data.carla_garage import EXPERT_AT_VISITED_STATE, RESULTS_LABELS_KEY
    from min2real.data.synthetic.traffic_drive import VisitedStateDrive
    from min2real.data.synthetic.writers import write_carla_route

    assert stack.sim is not None
    score = run.score
    recording = stack.recording(score.driving_score)
    results = {
        "scores": {
            "score_composed": score.driving_score,
            "score_route": score.route_completion,
            "score_penalty": score.infraction_penalty,
        },
        "status": score.outcome,
        "num_infractions": int(sum(score.counts().values())),
        RESULTS_LABELS_KEY: EXPERT_AT_VISITED_STATE,
        "dagger": stack.report(),
    }
    drive = VisitedStateDrive(stack.sim.scenario, recording, look, default_image_size(contract, look), contract)
    return write_carla_route(route_dir, drive, len(recording.route_s_m), results=results)


def run_round(
    specs: list[DaggerRouteSpec],
    policy: Any,
    out: Path,
    beta: float,
    segment_s: float = DEFAULT_SEGMENT_S,
    contract: C.Contract | None = None,
    use_lidar: bool = True,
    figures: bool = True,
    progress: bool = True,
    policy_name: str = "expert",
    extra: dict | None = None,
    speed_from: str = ControllerConfig.speed_from,
    look: str = SIM,
) -> dict[str, Any]:
    """Drive and record every route of a round into `out`: <LOOK_FOLDERS[look]>/dagger/route_XXX (Garage layout),
    routes/<route>/top_down.png (`figures`) and dagger.json (per-route DS, frames, the model's
    share of the driving; beta), which it returns."""
    from tqdm import tqdm

    from min2real.evaluation.closed_loop.report import write_route_figures

    contract = contract or (policy.contract if policy is not None else C.DEFAULT_CONTRACT)
    runs, frames = [], []
    for spec in tqdm(specs, desc=f"dagger (beta {beta:g})", unit="route", disable=not progress):
        run, stack = drive_route(spec, policy, beta, segment_s, contract, use_lidar, speed_from, look)
        route_dir = out / LOOK_FOLDERS[look] / "dagger" / f"route_{spec.index:03d}"
        frames.append(write_route(route_dir, run, stack, contract, look))
        if figures:
            write_route_figures(out / "routes" / spec.name.split("/")[-1], run, tiles=0)
        runs.append(run)
    document = results_document(runs, f"dagger-seed{specs[0].seed_base}:{len(specs)}", policy_name, look, "direct")
    for route, count, run in zip(document["routes"], frames, runs):
        route.update(frames_recorded=count, model_share=run.stack_report["model_share"])
    document.update(
        beta=beta,
        segment_s=segment_s,
        frames_recorded=int(sum(frames)),
        rate_hz=CARLA_RATE_HZ,
        look=look,
        labels="real driving labels ({S, R} recipes only)" if look == REAL else "sim driving labels",
        **{"sim_root" if look == SIM else "real_look_root": str(out / LOOK_FOLDERS[look])},
        **(extra or {}),
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "dagger.json").write_text(json.dumps(document, indent=2) + "\n")
    write_synthetic_summary(out, specs, frames, default_image_size(contract, look), beta, look)
    return document


def write_synthetic_summary(
    out: Path,
    specs: list[DaggerRouteSpec],
    frames: list[int],
    image_size: tuple[int, int],
    beta: float,
    look: str = SIM,
) -> Path:
    """DIR/synthetic.json in the synthetic generator's schema (writers.write_synthetic_dataset): it
    tells export and quantize which synthetic camera a model trained on DIR/carla saw."""
    summary = {
        "seed": specs[0].seed_base,
        "frames_per_domain": int(sum(frames)),
        "routes": len(specs),
        "split": None,
        "conditions": sorted({spec.condition for spec in specs}),
        "obstacle_share": sum(spec.obstacle for spec in specs) / len(specs),
        "traffic": specs[0].traffic,
        "dagger": {"beta": beta, "summary": "dagger.json"},
        "domains": {
            look: {
                "labelled_frames": int(sum(frames)),
                "routes_with_parked_car": int(sum(spec.obstacle for spec in specs)),
                "frames_written": int(sum(frames)),
                "rate_hz": CARLA_RATE_HZ,
                "image_size": list(image_size),
            }
        },
    }
    path = out / "synthetic.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path
