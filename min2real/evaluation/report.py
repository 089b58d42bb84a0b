"""Open-loop evaluation report: Markdown + matplotlib PNGs + metrics.json, one or more runs side by side.

Sections: runs, metrics per domain, L2 error against the horizon, steering confusion matrices,
metrics by situation (ground-truth steering class, command, speed band, junction), example
trajectories on the camera image and in top-down view (prediction red, ground truth green,
target point blue), and the V2R adapter's effect (DINOv2 input without / with the adapter and a
difference heat map: what the adapter changes in a virtual image, the paper's proposed study).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from min2real import contract as C
from min2real.evaluation.figures import contact_sheet, pyplot, write_png
from min2real.evaluation.open_loop import RunPredictions, per_sample_ade, select_examples

# Default camera for projecting waypoints onto images: CARLA Garage's front camera (110 degrees
# horizontal FOV, 1.5 m behind and 2.0 m above the vehicle origin, no pitch).
DEFAULT_CAMERA_FOV_DEG = 110.0
DEFAULT_CAMERA_MOUNT_M = (-1.5, 0.0, 2.0)


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _horizon_columns(contract: C.Contract) -> list[tuple[int, float]]:
    """(step index, seconds) at whole seconds of the horizon (all steps when none fall on one)."""
    times = contract.waypoint_times_s
    whole = [(i, t) for i, t in enumerate(times) if abs(t - round(t)) < 1e-6]
    return whole or list(enumerate(times))


# ---- plots ---------------------------------------------------------------------------------------
def plot_error_vs_horizon(path: Path, runs: list[RunPredictions], metrics: list[dict]) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for run, report in zip(runs, metrics):
        for domain_name, style in zip(C.DOMAINS, ("-o", "--s")):
            per_step = report.get(domain_name, {}).get("l2_per_step_m")
            if per_step:
                ax.plot(run.contract.waypoint_times_s, per_step, style, label=f"{run.name} ({domain_name})")
    ax.set_xlabel("prediction horizon [s]")
    ax.set_ylabel("mean L2 error [m]")
    ax.set_title("Waypoint error against horizon")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusions(path: Path, runs: list[RunPredictions], metrics: list[dict]) -> Path:
    plt = pyplot()
    panels = [
        (run.name, domain_name, report[domain_name]["steer_confusion"])
        for run, report in zip(runs, metrics)
        for domain_name in C.DOMAINS
        if report.get(domain_name, {}).get("steer_confusion") is not None
    ]
    columns = max(1, min(4, len(panels)))
    rows = max(1, -(-len(panels) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    for ax, (run_name, domain_name, confusion) in zip(axes.ravel(), panels):
        matrix = np.asarray(confusion, dtype=np.float64)
        rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        ax.imshow(rates, vmin=0, vmax=1, cmap="Blues")
        for (row, col), count in np.ndenumerate(matrix):
            ax.text(
                col, row, f"{int(count)}", ha="center", va="center", color="black" if rates[row, col] < 0.6 else "white"
            )
        ax.set_xticks(range(len(C.STEER_CLASSES)), C.STEER_CLASSES, fontsize=8)
        ax.set_yticks(range(len(C.STEER_CLASSES)), C.STEER_CLASSES, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("ground truth")
        ax.set_title(f"{run_name} ({domain_name})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_situation_ade(path: Path, runs: list[RunPredictions], metrics: list[dict], split: str) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    bars = [
        (f"{run.name} ({domain_name})", report[domain_name]["situations"].get(split, {}))
        for run, report in zip(runs, metrics)
        for domain_name in C.DOMAINS
        if domain_name in report
    ]
    situations = situation_order(bars)
    values = situation_ade_values(bars, situations)
    width = 0.8 / max(1, len(bars))
    top = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
    for offset, (label, _) in enumerate(bars):
        positions = np.arange(len(situations)) + offset * width
        # A situation without samples gets no bar and an "n/a" mark; a measured 0 m shows as "0.00".
        container = ax.bar(positions, np.nan_to_num(values[offset], nan=0.0), width, label=label)
        ax.bar_label(container, labels=["n/a" if np.isnan(v) else f"{v:.2f}" for v in values[offset]], fontsize=6)
    ax.set_ylim(0.0, max(top, 1e-3) * 1.15)
    ax.set_xticks(np.arange(len(situations)) + 0.4 - width / 2, situations, fontsize=8)
    ax.set_ylabel("ADE [m]")
    ax.set_title(f"ADE by {split} (n/a: no samples)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def situation_order(bars: list[tuple[str, dict]]) -> list[str]:
    """Situations in the order the evaluation defines them (speed bands slow to fast, ...)."""
    order: list[str] = []
    for _, groups in bars:
        order += [name for name in groups if name not in order]
    return order


def situation_ade_values(bars: list[tuple[str, dict]], situations: list[str]) -> np.ndarray:
    """(bars, situations) ADE in metres; NaN where a run/domain has no sample of the situation
    (never 0, which would read as a perfect score)."""
    values = np.full((len(bars), len(situations)), np.nan)
    for row, (_, groups) in enumerate(bars):
        for column, name in enumerate(situations):
            ade = groups.get(name, {}).get("ade_m")
            if ade is not None:
                values[row, column] = float(ade)
    return values


def example_tiles(runs: list[RunPredictions], indices: list[int], camera) -> list:
    """One overlay tile per (example, run): camera image with projected waypoints + top-down panel."""
    from min2real.runtime.overlay import draw_overlay

    tiles = []
    for dataset_index in indices:
        for run in runs:
            rows = np.flatnonzero(run.sample_index == dataset_index)
            if rows.size == 0 or run.load_sample is None:
                continue
            row = int(rows[0])
            sample = run.load_sample(dataset_index)
            image_rgb = np.moveaxis(np.asarray(sample[C.INPUT_IMAGE]), 0, -1)
            ade = float(per_sample_ade(run)[row])
            label = f"{run.name} #{dataset_index} gt {C.STEER_CLASSES[run.steer_gt[row]]} ADE {ade:.2f} m"
            tiles.append(
                draw_overlay(
                    image_rgb,
                    run.waypoints_pred[row],
                    label,
                    camera=camera.scaled_to(image_rgb.shape[1], image_rgb.shape[0]),
                    recorded_ego=run.waypoints_gt[row],
                    target_point_ego=run.target_point[row],
                    tile_height=180,
                )
            )
    return tiles


def plot_adapter(path: Path, run: RunPredictions, indices: list[int]) -> tuple[Path, dict] | None:
    """Rows of (DINOv2 input without the adapter, with it, |difference| heat map) for sim samples."""
    images = [np.asarray(run.load_sample(i)[C.INPUT_IMAGE]) for i in indices]
    result = run.predictor.adapter_images(np.stack(images)) if images and run.predictor is not None else None
    if result is None:
        return None
    plain, adapted = result
    difference = np.abs(adapted.astype(np.float32) - plain.astype(np.float32)).mean(axis=-1)
    plt = pyplot()
    fig, axes = plt.subplots(len(indices), 3, figsize=(12, 2.2 * len(indices)), squeeze=False)
    vmax = max(float(np.percentile(difference, 99)), 1.0)
    for row, dataset_index in enumerate(indices):
        axes[row, 0].imshow(plain[row])
        axes[row, 0].set_title(f"#{dataset_index} DINOv2 input without adapter", fontsize=8)
        axes[row, 1].imshow(adapted[row])
        axes[row, 1].set_title("after the V2R adapter", fontsize=8)
        heat = axes[row, 2].imshow(difference[row], cmap="magma", vmin=0, vmax=vmax)
        axes[row, 2].set_title("|difference| (mean over RGB, 0..255)", fontsize=8)
        fig.colorbar(heat, ax=axes[row, 2], fraction=0.025)
        for ax in axes[row]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    per_channel = np.abs(adapted.astype(np.float32) - plain.astype(np.float32)).mean(axis=(0, 1, 2))
    stats = {
        "samples": len(indices),
        "mean_abs_difference": float(difference.mean()),
        "max_abs_difference": float(difference.max()),
        "mean_abs_difference_rgb": [float(v) for v in per_channel],
        "mean_signed_difference_rgb": [float(v) for v in (adapted.astype(np.float32) - plain).mean(axis=(0, 1, 2))],
    }
    return path, stats


# ---- the report ------------------------------------------------------------------------------------
def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_report(
    out: str | Path,
    runs: list[RunPredictions],
    metrics: list[dict],
    data_description: str = "",
    camera_fov_deg: float = DEFAULT_CAMERA_FOV_DEG,
    camera_mount_m: tuple[float, float, float] = DEFAULT_CAMERA_MOUNT_M,
    examples_per_domain: int = 4,
    camera_horizon_fraction: float = 0.5,
) -> Path:
    """Write `report.md`, `metrics.json` and `figures/*.png` into `out` (a directory, or a
    `.md` file path whose directory receives the rest). Returns the Markdown path.

    The image overlays assume a level pinhole camera of `camera_fov_deg` horizontal FOV at
    `camera_mount_m` (base_link) whose horizon (principal point row) lies at
    `camera_horizon_fraction` of the image height (0.5 for CARLA's cameras; the synthetic
    generator's is training.data.synthetic.HORIZON_FRACTION)."""
    from min2real.runtime.overlay import CameraModel

    if not runs or len(runs) != len(metrics):
        raise ValueError(f"report needs one metrics dict per run; got {len(runs)} runs and {len(metrics)} metrics")
    out = Path(out)
    markdown_path = out if out.suffix.lower() == ".md" else out / "report.md"
    figures = markdown_path.parent / "figures"
    figures.mkdir(parents=True, exist_ok=True)

    def rel(path: Path) -> str:
        return path.relative_to(markdown_path.parent).as_posix()

    lines = ["# Min2Real open-loop evaluation", ""]
    if data_description:
        lines += [f"Data: {data_description}", ""]
    lines += [
        "Waypoints are in the ego frame (REP 103, metres); L2 = Euclidean error per waypoint, "
        "ADE = mean over waypoints, FDE = last waypoint. Steering classes follow the contract's rule "
        "on the ground-truth trajectory. Open-loop numbers on this data only: they are not driving scores.",
        "",
    ]

    lines += ["## Runs", ""]
    rows = []
    for run in runs:
        counts = ", ".join(
            f"{name} {int((run.domain == i).sum())}" for i, name in enumerate(C.DOMAINS) if (run.domain == i).any()
        )
        skipped = "; ".join(f"{reason}: {count}" for reason, count in run.skipped.items()) or "none"
        rows.append(
            [
                run.name,
                run.kind,
                str(run.details.get("variant", "?")),
                str(run.details.get("backend", "?")),
                counts,
                skipped,
                f"`{run.source}`",
            ]
        )
    lines += _table(["run", "kind", "variant", "backend", "samples", "skipped", "source"], rows)

    lines += ["## Metrics per domain", ""]
    horizon = _horizon_columns(runs[0].contract)
    header = (
        ["run", "domain", "labelled", "ADE [m]", "FDE [m]"]
        + [f"L2@{t:g}s [m]" for _, t in horizon]
        + ["steer macro-F1", "steer bal. acc", "steer acc", "classes predicted", "turn ADE [m]", "straight ADE [m]"]
        + ["discriminator acc"]
    )
    rows = []
    for run, report in zip(runs, metrics):
        for domain_name in C.DOMAINS:
            if domain_name not in report:
                continue
            m = report[domain_name]
            per_step = m.get("l2_per_step_m") or []
            rows.append(
                [run.name, domain_name, _fmt(m["num_samples"]), _fmt(m["ade_m"]), _fmt(m["fde_m"])]
                + [_fmt(per_step[i] if i < len(per_step) else None) for i, _ in horizon]
                + [
                    _fmt(m.get("steer_macro_f1")),
                    _fmt(m.get("steer_balanced_accuracy")),
                    _fmt(m.get("steer_accuracy")),
                    ", ".join(m.get("steer_predicted_classes") or []) or "–",
                    _fmt(m.get("turn", {}).get("ade_m")),
                    _fmt(m.get("straight", {}).get("ade_m")),
                    _fmt(m.get("discriminator_accuracy")),
                ]
            )
    lines += _table(header, rows)
    lines += [
        "Steering: macro-F1 (mean F1 over the classes) and balanced accuracy (mean recall) are the numbers to read; "
        "plain accuracy rewards a head that always answers the most common class (straight).",
        "",
        "Discriminator accuracy (checkpoints of variants with a discriminator): near 0.5 means the DINOv2 "
        "features no longer tell virtual from real images, which is what the adversarial training aims for.",
        "",
    ]

    lines += [
        "## Error against horizon",
        "",
        f"![L2 error against horizon]({rel(plot_error_vs_horizon(figures / 'error_vs_horizon.png', runs, metrics))})",
        "",
    ]
    lines += [
        "## Steering confusion",
        "",
        "Rows: ground truth, columns: prediction (counts; colour = row rate).",
        "",
        f"![steering confusion]({rel(plot_confusions(figures / 'steer_confusion.png', runs, metrics))})",
        "",
    ]

    lines += ["## By situation", ""]
    split_names = []
    for report in metrics:
        for domain_name in C.DOMAINS:
            for split in report.get(domain_name, {}).get("situations", {}):
                if split not in split_names:
                    split_names.append(split)
    for split in split_names:
        lines += [f"### {split}", ""]
        rows = []
        for run, report in zip(runs, metrics):
            for domain_name in C.DOMAINS:
                for situation, m in report.get(domain_name, {}).get("situations", {}).get(split, {}).items():
                    rows.append(
                        [
                            situation,
                            run.name,
                            domain_name,
                            _fmt(m["num_samples"]),
                            _fmt(m["ade_m"]),
                            _fmt(m["fde_m"]),
                            _fmt(m.get("steer_macro_f1")),
                            _fmt(m.get("steer_accuracy")),
                        ]
                    )
        lines += _table(
            ["situation", "run", "domain", "samples", "ADE [m]", "FDE [m]", "steer macro-F1", "steer acc"], rows
        )
        slug = split.replace(" ", "_").replace("-", "_")
        figure = plot_situation_ade(figures / f"ade_by_{slug}.png", runs, metrics, split)
        lines += [f"![ADE by {split}]({rel(figure)})", ""]

    lines += [
        "## Example trajectories",
        "",
        "Left: camera image with waypoints projected onto the ground (assumed camera: "
        f"{camera_fov_deg:g} deg horizontal FOV at {tuple(camera_mount_m)} m in base_link, level, horizon at "
        f"{camera_horizon_fraction:g} of the image height; "
        "exact for data recorded with that camera). Right: top-down view, ego at the bottom heading up. "
        "Red: prediction, green: ground truth, blue: target point.",
        "",
    ]
    examples = select_examples(runs[0], examples_per_domain)
    for domain_id, indices in examples.items():
        width, height = runs[0].contract.camera_width, runs[0].contract.camera_height
        focal = width / (2.0 * np.tan(np.radians(camera_fov_deg) / 2.0))
        camera = CameraModel(
            width, height, focal, focal, width / 2.0, camera_horizon_fraction * height, tuple(camera_mount_m), 0.0
        )
        tiles = example_tiles(runs, indices, camera)
        if tiles:
            sheet = contact_sheet(tiles, columns=len(runs) if len(runs) > 1 else 2)
            figure = write_png(figures / f"examples_{C.DOMAINS[domain_id]}.png", sheet)
            lines += [f"### {C.DOMAINS[domain_id]}", "", f"![examples {C.DOMAINS[domain_id]}]({rel(figure)})", ""]

    lines += ["## V2R adapter: what it changes in a virtual image", ""]
    adapter_stats = {}
    sim_examples = examples.get(C.DOMAIN_SIM, [])
    for run in runs:
        if not sim_examples:
            break
        result = plot_adapter(figures / f"adapter_{run.name}.png", run, sim_examples)
        if result is None:
            continue
        figure, stats = result
        adapter_stats[run.name] = stats
        rgb = ", ".join(f"{v:+.2f}" for v in stats["mean_signed_difference_rgb"])
        lines += [
            f"### {run.name}",
            "",
            f"Mean |adapted - plain| over {stats['samples']} virtual samples: {stats['mean_abs_difference']:.2f} "
            f"(max {stats['max_abs_difference']:.1f}) on the 0..255 scale; mean signed change R, G, B: {rgb}.",
            "",
            f"![adapter {run.name}]({rel(figure)})",
            "",
        ]
    if not adapter_stats:
        lines += [
            "No run shows the adapter: it needs a training checkpoint of a variant with the V2R adapter "
            "and virtual (sim) samples (an exported graph does not expose the adapter's output).",
            "",
        ]

    summary = {
        "data": data_description,
        "runs": [
            {
                "name": run.name,
                "kind": run.kind,
                "source": run.source,
                "details": run.details,
                "skipped": run.skipped,
                "metrics": report,
            }
            for run, report in zip(runs, metrics)
        ],
        "adapter": adapter_stats,
    }
    (markdown_path.parent / "metrics.json").write_text(json.dumps(_json_ready(summary), indent=2, sort_keys=True))
    markdown_path.write_text("\n".join(lines))
    return markdown_path
