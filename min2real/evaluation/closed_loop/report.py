"""Closed-loop pictures and tables: a top-down plot per route, the camera contact sheet / video,
and the summary table printed by `min2real closed-loop` (and pasted into docs/experiments.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from min2real.data.synthetic.geometry import KINDS, ROAD_WIDTH_M
from min2real.data.synthetic.scenario import Scenario
from min2real.evaluation import figures
from min2real.evaluation.closed_loop.run import RouteRun

_MARKERS = {
    "collision_pedestrian": ("X", "darkorange"),
    "collision_vehicle": ("X", "tab:blue"),
    "red_light": ("D", "red"),
    "collision_static": ("X", "black"),
    "stop_infraction": ("s", "orange"),
    "off_road": ("v", "saddlebrown"),
    "outside_lane": ("^", "purple"),
    "agent_blocked": ("P", "red"),
    "route_timeout": ("P", "red"),
    "command_timeout": ("P", "magenta"),
    "route_deviation": ("P", "red"),
}


def plot_top_down(path: Path, run: RouteRun, scenario: Scenario | None = None) -> Path:
    """Roads, stop lines and boxes of the route's world; the route (blue, dashed), the driven
    path (red, speed-coloured dots), the start / end, and every infraction marked and named."""
    plt = figures.pyplot()
    scenario = scenario or run.spec.scenario()
    route = scenario.route
    fig, ax = plt.subplots(figsize=(7.5, 7.5))
    xy = run.states[:, 1:3]
    points = np.concatenate([scenario.route_xy, xy])
    lo, hi = points.min(axis=0) - 15.0, points.max(axis=0) + 15.0
    # Roads as thick lines in data units: linewidth in points = metres * points per metre.
    span = float(max(hi - lo))
    points_per_m = 7.5 * 72.0 / span * 0.8
    for road in [route.road_centre_xy, *route.side_roads]:
        ax.plot(road[:, 0], road[:, 1], color="0.82", lw=ROAD_WIDTH_M * points_per_m, solid_capstyle="butt", zorder=1)
    centres = route.object_centre_xy.reshape(-1, 2)
    for centre, yaw, half, kind in zip(centres, route.object_yaw, route.object_half_size, route.object_kind):
        c, s = np.cos(yaw), np.sin(yaw)
        corners = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1], [1, 1]]) * half
        world = corners @ np.array([[c, s], [-s, c]]) + centre
        if np.all((world >= lo) & (world <= hi)):
            colour = "tab:red" if KINDS[int(kind)] == "car" else "0.45"
            ax.fill(world[:, 0], world[:, 1], color=colour, alpha=0.6, lw=0, zorder=2)
    if scenario.obstacle is not None:
        ax.plot(
            *scenario.obstacle.centre_xy, "D", mfc="none", mec="darkred", ms=12, mew=1.5, label="obstacle", zorder=7
        )
    _plot_traffic(ax, run, scenario)
    for line in scenario.stop_lines:
        ax.plot(line.line_xy[:, 0], line.line_xy[:, 1], color="white", lw=3, zorder=3)
        ax.plot(line.line_xy[:, 0], line.line_xy[:, 1], color="black", lw=0.8, zorder=3)
        ax.annotate("stop", line.line_xy[1], textcoords="offset points", xytext=(4, -8), fontsize=7)
    ax.plot(scenario.route_xy[:, 0], scenario.route_xy[:, 1], "--", color="tab:blue", lw=1.2, label="route", zorder=4)
    ax.plot(xy[:, 0], xy[:, 1], "-", color="tab:red", lw=1.2, label="driven", zorder=5)
    speed = ax.scatter(xy[::10, 0], xy[::10, 1], c=run.states[::10, 4], s=6, cmap="viridis", zorder=6)
    fig.colorbar(speed, ax=ax, fraction=0.035, pad=0.02, label="speed (m/s)")
    ax.plot(*scenario.route_xy[0], "o", color="tab:green", ms=8, label="start", zorder=7)
    ax.plot(*scenario.route_xy[-1], "*", color="tab:blue", ms=12, label="end", zorder=7)
    seen = set()
    for event in run.score.infractions:
        marker, colour = _MARKERS.get(event.kind, ("o", "red"))
        ax.plot(
            event.x_m,
            event.y_m,
            marker,
            color=colour,
            ms=10,
            zorder=8,
            label=None if event.kind in seen else event.kind,
        )
        seen.add(event.kind)
        ax.annotate(event.kind, (event.x_m, event.y_m), textcoords="offset points", xytext=(6, 6), fontsize=7)
    score = run.score
    ax.set_title(
        f"{run.spec.name} ({run.spec.condition})\nDS {score.driving_score:.1f} = RC {score.route_completion:.1f} "
        f"x {score.infraction_penalty:.2f}, {score.outcome}",
        fontsize=9,
    )
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.set_xlabel("x east (m)")
    ax.set_ylabel("y north (m)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))  # one legend entry per kind (traffic: one line per actor)
    ax.legend(unique.values(), unique.keys(), loc="best", fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_traffic(ax, run: RouteRun, scenario: Scenario) -> None:
    """The other actors' trajectories (vehicles grey-blue, pedestrians orange), where each was
    last, and the traffic lights' poles."""
    from min2real.data.synthetic.traffic_plan import KIND_PEDESTRIAN

    if run.actor_xy is not None and run.actor_kind is not None and run.actor_xy.size:
        for actor, kind in enumerate(run.actor_kind):
            track = run.actor_xy[:, actor]
            seen = track[np.isfinite(track[:, 0])]
            if len(seen) < 2 or np.ptp(seen, axis=0).max() < 0.5:
                continue  # never moved: not drawn
            pedestrian = kind == KIND_PEDESTRIAN
            colour = "darkorange" if pedestrian else "slategray"
            label = "pedestrians" if pedestrian else "traffic"
            ax.plot(seen[:, 0], seen[:, 1], "-", color=colour, lw=0.9, alpha=0.8, zorder=4, label=label)
            ax.plot(*seen[-1], "o" if pedestrian else "s", color=colour, ms=3, zorder=4)
    plan = scenario.traffic_plan
    if plan is not None:
        for index, light in enumerate(plan.lights):
            ax.plot(
                *light.pole_xy, "^", color="darkgreen", ms=7, zorder=6, label="traffic light" if index == 0 else None
            )


def write_route_figures(out_dir: Path, run: RouteRun, tiles: int = 12) -> dict[str, Path]:
    """top_down.png, contact_sheet.png (about `tiles` tiles spread over the route), video.mp4."""
    outputs = {"top_down": plot_top_down(out_dir / "top_down.png", run)}
    if run.tiles:
        picks = np.unique(np.linspace(0, len(run.tiles) - 1, min(tiles, len(run.tiles))).round().astype(int))
        sheet = figures.contact_sheet([run.tiles[i] for i in picks], columns=3)
        outputs["contact_sheet"] = figures.write_png(out_dir / "contact_sheet.png", sheet)
    if run.video_frames:
        outputs["video"] = figures.write_video(out_dir / "video.mp4", run.video_frames, 5.0)
    return outputs


def format_summary(document: dict) -> str:
    """A plain-text table: one line per route, then the means (what the CLI prints)."""
    lines = [f"{'route':<36} {'condition':<8} {'DS':>6} {'RC':>6} {'IP':>5}  outcome / infractions"]
    for r in document["routes"]:
        counts = ", ".join(f"{kind} {n}" for kind, n in r["infractions"].items() if n)
        lines.append(
            f"{r['name']:<36} {r['condition']:<8} {r['driving_score']:6.1f} {r['route_completion']:6.1f} "
            f"{r['infraction_penalty']:5.2f}  {r['outcome']}{'; ' + counts if counts else ''}"
        )
    lines.append(
        f"{'mean +- std':<36} {'':<8} {document['driving_score_mean']:6.1f} {document['route_completion_mean']:6.1f} "
        f"{document['infraction_penalty_mean']:5.2f}  DS std {document['driving_score_std']:.1f}, "
        f"RC std {document['route_completion_std']:.1f}, {document['num_routes']} routes, {document['km_driven']:.2f} km"
    )
    return "\n".join(lines)


def markdown_row(label: str, document: dict) -> str:
    """One row of the docs' closed-loop table: DS, RC, IP, infractions per km."""
    per_km = document["infractions_per_km"]

    def rate(kind: str) -> str:
        value = per_km.get(kind)
        return "n/a" if value is None else f"{value:.2f}"

    return (
        f"| {label} | {document['domain']} | {document['driving_score_mean']:.1f} ± {document['driving_score_std']:.1f} | "
        f"{document['route_completion_mean']:.1f} | {document['infraction_penalty_mean']:.2f} | "
        f"{rate('collision_static')} | {rate('stop_infraction')} | {rate('off_road')} | {rate('outside_lane')} | "
        f"{rate('agent_blocked')} |"
    )
