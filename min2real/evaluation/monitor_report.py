"""`min2real eval --monitor`: how well the domain-shift monitor separates shifted inputs.

For one exported graph with the monitor outputs and a data folder of held-out frames:

  look shift       in-distribution frames (the graph's domain) vs the other look ("sim" graph:
                   real-look frames; "real" graph: sim-look frames): AUROC of ood_score (and of
                   the domain logit, sign toward the other look, when the graph has it)
  corruptions      the same in-distribution frames vs themselves corrupted (monitor.corruptions),
                   each severity 1..5: AUROC, mean score, mean waypoint change (m) the corruption causes
  false alarms     share of in-distribution frames at or above the calibrated WARN threshold: per
                   frame; over the held-out drives in order, of 5-frame window means (as the node
                   smooths; "sim" graphs, CARLA layout); and, from closed-loop results.json of
                   in-distribution drives, of frames whose window-smoothed level was WARN or worse
  driving          per closed-loop route: Pearson / Spearman correlation of the route's mean and max
                   score with its driving score (does a high score predict a bad route?)

Writes monitor.md and monitor.json; returns the JSON document.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from min2real.contract import OUTPUT_DOMAIN_LOGIT, OUTPUT_OOD_SCORE, OUTPUT_WAYPOINTS, ContractError
from min2real.monitor.attach import inputs_from_data, run_graph
from min2real.monitor.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from min2real.monitor.metrics import auroc, pearson, spearman
from min2real.runtime.onnx_metadata import read_onnx_metadata

# The severity each corruption is judged at (bold in the table; the target is AUROC >= 0.9 there):
# the middle of every scale, fixed before the monitor was measured on any frame (noise sigma 48,
# a 15 px box blur, gain 2.5, 15 % of the image occluded, 4.5 deg roll + 9 % pitch). The table shows
# every severity.
STATED_SEVERITY = dict.fromkeys(CORRUPTIONS, 3)


def _with_images(batches: list[dict], images: np.ndarray) -> list[dict]:
    return [{**batch, "image": image[None]} for batch, image in zip(batches, images)]


def drive_false_alarms(model_bytes: bytes, data_dir: str | Path, metadata, warn: float, window_frames: int = 5) -> dict:
    """The driver node's view of held-out in-distribution drives: each route's frames in order
    (CARLA Garage layout, the "sim" graph's data), the score's mean over `window_frames` frames,
    and the share of windows at or above WARN (the node's false alarms on those drives)."""
    from min2real.data import CarlaGarageDataset

    root = Path(data_dir) / "carla" if (Path(data_dir) / "carla").is_dir() else Path(data_dir)
    dataset = CarlaGarageDataset([root], metadata.contract)
    names = set(metadata.input_shapes)
    routes: dict[int, list[int]] = {}
    for index, (route, _frame) in enumerate(dataset.samples):
        routes.setdefault(route, []).append(index)
    windows, frames = [], 0
    for indices in routes.values():
        samples = [dataset.load(i) for i in indices]
        batches = [
            {k: np.asarray(v, dtype=np.float32)[None] for k, v in sample.items() if k in names}
            for sample in samples
            if isinstance(sample, dict)
        ]
        scores = run_graph(model_bytes, batches, [OUTPUT_OOD_SCORE])[OUTPUT_OOD_SCORE]
        frames += scores.size
        if scores.size >= window_frames:
            windows.append(np.convolve(scores, np.ones(window_frames) / window_frames, mode="valid"))
    means = np.concatenate(windows)
    return {
        "routes": len(routes),
        "frames": int(frames),
        "window_frames": window_frames,
        "windows_at_warn_or_worse": round(float(np.mean(means >= warn)), 4),
    }


def closed_loop_monitor(results_paths: list[str | Path], domain: str) -> dict:
    """Per-route correlation of the monitor with the driving score over closed-loop results.json
    files (routes with a `monitor` entry), and the in-distribution drives' WARN share."""
    routes = []
    for path in results_paths:
        document = json.loads(Path(path).read_text())
        for route in document.get("routes", []):
            if route.get("monitor", {}).get("frames"):
                routes.append({**route, "look": document.get("domain"), "results": str(path)})
    if not routes:
        raise ContractError(f"no route in {list(map(str, results_paths))} has monitor scores; drive a monitor model")
    ds = np.array([route["driving_score"] for route in routes])
    mean = np.array([route["monitor"]["ood_score_mean"] for route in routes])
    peak = np.array([route["monitor"]["ood_score_max"] for route in routes])
    in_distribution = [route for route in routes if route["look"] == domain]
    frames = sum(route["monitor"]["frames"] for route in in_distribution)
    warn_frames = sum(
        route["monitor"]["frames"] * route["monitor"]["frames_warn_or_worse"] for route in in_distribution
    )
    per_look = {
        look: {
            "routes": len(items),
            "driving_score_mean": round(float(np.mean([r["driving_score"] for r in items])), 2),
            "ood_score_mean": round(float(np.mean([r["monitor"]["ood_score_mean"] for r in items])), 4),
            "pearson_ds_vs_mean_score": pearson(
                [r["driving_score"] for r in items], [r["monitor"]["ood_score_mean"] for r in items]
            ),
        }
        for look in sorted({route["look"] for route in routes})
        if (items := [route for route in routes if route["look"] == look])
    }
    clean = [route for route in in_distribution if route["driving_score"] >= 100.0]
    clean_frames = sum(route["monitor"]["frames"] for route in clean)
    clean_warn = sum(route["monitor"]["frames"] * route["monitor"]["frames_warn_or_worse"] for route in clean)
    per_condition: dict[str, list[float]] = {}
    for route in in_distribution:
        per_condition.setdefault(str(route.get("condition")), []).append(route["monitor"]["ood_score_mean"])
    return {
        "routes": len(routes),
        "pearson_ds_vs_mean_score": pearson(ds, mean),
        "spearman_ds_vs_mean_score": spearman(ds, mean),
        "pearson_ds_vs_max_score": pearson(ds, peak),
        "spearman_ds_vs_max_score": spearman(ds, peak),
        "per_look": per_look,
        "in_distribution_drives": {
            "routes": len(in_distribution),
            "frames": int(frames),
            "frames_warn_or_worse": round(warn_frames / frames, 4) if frames else None,
            "routes_driven_cleanly": len(clean),  # driving score 100: no infraction
            "frames_warn_or_worse_on_clean_routes": round(clean_warn / clean_frames, 4) if clean_frames else None,
            "mean_score_per_condition": {k: round(float(np.mean(v)), 4) for k, v in per_condition.items()},
        },
        "per_route": [
            {
                "name": route["name"],
                "look": route["look"],
                "condition": route.get("condition"),
                "driving_score": route["driving_score"],
                **{k: route["monitor"][k] for k in ("ood_score_mean", "ood_score_max", "frames_warn_or_worse")},
            }
            for route in routes
        ],
    }


def monitor_report(
    model_path: str | Path,
    data_dir: str | Path,
    out: str | Path,
    *,
    max_frames: int = 300,
    closed_loop_results: list[str | Path] | None = None,
) -> dict:
    """The report of the module docstring for `model_path` on `data_dir`, written to `out`/monitor.{md,json}."""
    metadata = read_onnx_metadata(model_path)
    if OUTPUT_OOD_SCORE not in metadata.output_shapes:
        raise ContractError(f"model {model_path} has no monitor outputs; add them with `min2real monitor` or export")
    model_bytes = Path(model_path).read_bytes()
    outputs = [OUTPUT_OOD_SCORE, OUTPUT_WAYPOINTS] + (
        [OUTPUT_DOMAIN_LOGIT] if OUTPUT_DOMAIN_LOGIT in metadata.output_shapes else []
    )
    other = "real" if metadata.domain == "sim" else "sim"
    clean_inputs = inputs_from_data(data_dir, metadata, max_frames, seed=2)
    clean = run_graph(model_bytes, clean_inputs, outputs)
    shifted = run_graph(model_bytes, inputs_from_data(data_dir, metadata, max_frames, seed=2, domain=other), outputs)
    warn = float(metadata.extra["monitor"]["calibration"][OUTPUT_OOD_SCORE]["warn"])
    look = {
        "in_distribution": metadata.domain,
        "shifted": other,
        "frames": [len(clean[OUTPUT_OOD_SCORE]), len(shifted[OUTPUT_OOD_SCORE])],
        "auroc_ood_score": round(auroc(clean[OUTPUT_OOD_SCORE], shifted[OUTPUT_OOD_SCORE]), 4),
        "ood_score_mean": [
            round(float(clean[OUTPUT_OOD_SCORE].mean()), 4),
            round(float(shifted[OUTPUT_OOD_SCORE].mean()), 4),
        ],
    }
    if OUTPUT_DOMAIN_LOGIT in clean:
        sign = 1.0 if other == "real" else -1.0  # the discriminator's "real" side is positive
        look["auroc_domain_logit"] = round(
            auroc(sign * clean[OUTPUT_DOMAIN_LOGIT], sign * shifted[OUTPUT_DOMAIN_LOGIT]), 4
        )
    images = np.concatenate([batch["image"] for batch in clean_inputs])
    corruptions: dict[str, list[dict]] = {}
    for name in CORRUPTIONS:
        corruptions[name] = []
        for severity in SEVERITIES:
            result = run_graph(
                model_bytes, _with_images(clean_inputs, corrupt(images, name, severity, seed=severity)), outputs
            )
            change = np.linalg.norm(result[OUTPUT_WAYPOINTS] - clean[OUTPUT_WAYPOINTS], axis=-1).mean()
            corruptions[name].append(
                {
                    "severity": severity,
                    "auroc": round(auroc(clean[OUTPUT_OOD_SCORE], result[OUTPUT_OOD_SCORE]), 4),
                    "ood_score_mean": round(float(result[OUTPUT_OOD_SCORE].mean()), 4),
                    "waypoint_change_m": round(float(change), 3),
                }
            )
    document = {
        "model": str(model_path),
        "data": str(data_dir),
        "calibration": metadata.extra["monitor"]["calibration"],
        "look_shift": look,
        "corruptions": corruptions,
        "stated_severity": STATED_SEVERITY,
        "false_alarms_per_frame": round(float(np.mean(clean[OUTPUT_OOD_SCORE] >= warn)), 4),
        "false_alarms_on_drives": drive_false_alarms(model_bytes, data_dir, metadata, warn)
        if metadata.domain == "sim"
        else None,
        "closed_loop": closed_loop_monitor(closed_loop_results, metadata.domain) if closed_loop_results else None,
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "monitor.json").write_text(json.dumps(document, indent=2) + "\n")
    (out / "monitor.md").write_text(format_markdown(document))
    return document


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_markdown(document: dict) -> str:
    look, calibration = document["look_shift"], document["calibration"]
    thresholds = calibration[OUTPUT_OOD_SCORE]
    lines = [
        "# Domain-shift monitor report",
        "",
        f"Model `{document['model']}`, held-out frames from `{document['data']}`. Thresholds (calibrated at export on "
        f"{calibration['frames']} held-out frames): WARN {thresholds['warn']:.3f} "
        f"({calibration['false_alarm_rate']['warn']:.1%} false alarms), ERROR {thresholds['error']:.3f} "
        f"({calibration['false_alarm_rate']['error']:.1%}).",
        "",
        f"**Look shift** ({look['in_distribution']} look vs {look['shifted']} look, {look['frames'][0]} / "
        f"{look['frames'][1]} frames): AUROC of the OOD score {look['auroc_ood_score']:.3f}"
        + (f", of the domain logit {look['auroc_domain_logit']:.3f}" if "auroc_domain_logit" in look else "")
        + f"; mean score {look['ood_score_mean'][0]:.2f} vs {look['ood_score_mean'][1]:.2f}.",
        "",
        f"**False alarms** (in-distribution frames at or above WARN, per frame): {document['false_alarms_per_frame']:.2%}"
        + (
            f"; on the held-out drives in order ({drives['routes']} routes, {drives['frames']} frames), windows of "
            f"{drives['window_frames']} frames whose mean is at or above WARN: {drives['windows_at_warn_or_worse']:.2%}."
            if (drives := document.get("false_alarms_on_drives"))
            else "."
        ),
        "",
        "**Camera corruptions**: AUROC (mean waypoint change in m) per severity; the stated severity in bold.",
        "",
        "| corruption | " + " | ".join(f"severity {s}" for s in SEVERITIES) + " |",
        "| --- |" + " --- |" * len(SEVERITIES),
    ]
    for name, rows in document["corruptions"].items():
        cells = []
        for row in rows:
            cell = f"{row['auroc']:.3f} ({row['waypoint_change_m']:.2f} m)"
            cells.append(f"**{cell}**" if document["stated_severity"].get(name) == row["severity"] else cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    closed = document.get("closed_loop")
    if closed:
        drives = closed["in_distribution_drives"]
        lines += [
            "",
            f"**Closed loop** ({closed['routes']} routes): correlation of the driving score with the route's mean "
            f"score: Pearson {_number(closed['pearson_ds_vs_mean_score'])}, Spearman "
            f"{_number(closed['spearman_ds_vs_mean_score'])}; with its max score: Pearson "
            f"{_number(closed['pearson_ds_vs_max_score'])}, Spearman {_number(closed['spearman_ds_vs_max_score'])}. "
            f"In-distribution drives: {drives['frames']} frames over {drives['routes']} routes, "
            f"{_number(drives['frames_warn_or_worse'])} of them at WARN or worse (window-smoothed); on the "
            f"{drives['routes_driven_cleanly']} routes driven without infraction: "
            f"{_number(drives['frames_warn_or_worse_on_clean_routes'])}. Mean score per "
            "condition: "
            + ", ".join(f"{name} {value:.2f}" for name, value in drives["mean_score_per_condition"].items())
            + ".",
            "",
            "| look | routes | DS mean | mean score | Pearson DS vs mean score |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, row in closed["per_look"].items():
            lines.append(
                f"| {name} | {row['routes']} | {row['driving_score_mean']:.1f} | {row['ood_score_mean']:.3f} | "
                f"{_number(row['pearson_ds_vs_mean_score'])} |"
            )
    lines.append("")
    lines.append("The score flags camera input unlike the training frames; a low score does not certify safe driving.")
    return "\n".join(lines) + "\n"
