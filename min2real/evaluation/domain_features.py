"""Frozen features of held-out, paired sim-look and real-look frames, before and after the V2R
adapter, and the sim-to-real measures on them (`domain_gap`).

The frames: `probe_frames` renders drives of a seed range no data set uses
(PROBE_SEED_BASE + drive), each in both looks with the same camera at the contract's camera size,
so row i of the sim set and row i of the real set show the same scene, pose and traffic-free road;
only the look differs. The six closed-loop appearance conditions are cycled over the drives. Labels
per frame: the steering class and the target-speed class (next speed, brake when it drops).

The features: the image backbone's output (the vector the discriminator and the steering head
read). "Before the adapter": sim images as the real graph sees them (plain resize into the
extractor, or the camera image for ResNet variants); "after": sim images through the V2R adapter
(the sim graph; only variants with an adapter). Real images never pass the adapter.
"""

from __future__ import annotations

import numpy as np
import torch

from min2real import contract as C
from min2real.evaluation.domain_gap import domain_gap_report

PROBE_SEED_BASE = 17_000_000  # beyond training (small S), closed-loop (15e6, 16e6) and extractor seeds
PROBE_RATE_HZ = 2.0
PROBE_SKIP_S = 2.0  # the first seconds start from rest; labels there are all "accelerate"
PROBE_BATCH = 32


def probe_frames(contract: C.Contract, drives: int, frames_per_drive: int) -> dict[str, np.ndarray]:
    """{"sim", "real": (N, 3, H, W) uint8 images; "steer_class", "target_speed_class", "drive": (N,)}."""
    from min2real.data.synthetic.drive import SyntheticDrive
    from min2real.data.synthetic.scenario import CONDITION_NAMES

    if drives < 2 or frames_per_drive < 2:
        raise ValueError(
            f"probe frames need >= 2 drives of >= 2 frames (fit / test drives); got {drives} x {frames_per_drive}"
        )
    size = (contract.camera_width, contract.camera_height)
    duration_s = PROBE_SKIP_S + frames_per_drive / PROBE_RATE_HZ + 1.0
    images: dict[str, list[np.ndarray]] = {C.DOMAINS[0]: [], C.DOMAINS[1]: []}
    steer, speed_class, drive_index = [], [], []
    for drive in range(drives):
        condition = CONDITION_NAMES[drive % len(CONDITION_NAMES)]
        looks = {
            domain: SyntheticDrive(
                (PROBE_SEED_BASE + drive, 0), duration_s, domain, size, contract, condition=condition
            )
            for domain in images
        }
        for k in range(frames_per_drive):
            index = int(round((PROBE_SKIP_S + k / PROBE_RATE_HZ) * PROBE_RATE_HZ))
            for domain, synthetic in looks.items():
                frame = synthetic.frame(index, PROBE_RATE_HZ)
                images[domain].append(np.ascontiguousarray(frame.image_rgb.transpose(2, 0, 1)))
            time_s = index / PROBE_RATE_HZ
            next_speed = float(looks[C.DOMAINS[0]].timing.speed_at(time_s + 0.25))
            steer.append(frame.steer_class)
            speed_class.append(C.target_speed_class(next_speed, next_speed < frame.speed_mps - 0.2))
            drive_index.append(drive)
    return {
        **{domain: np.stack(stack) for domain, stack in images.items()},
        "steer_class": np.asarray(steer, dtype=np.int64),
        "target_speed_class": np.asarray(speed_class, dtype=np.int64),
        "drive": np.asarray(drive_index, dtype=np.int64),
    }


@torch.no_grad()
def backbone_features(model, images: np.ndarray, through_adapter: bool) -> np.ndarray:
    """(N, D) image-backbone features of (N, 3, H, W) uint8 camera images (see the module docstring)."""
    from min2real.models.adapter import resize_to

    if through_adapter and model.adapter is None:
        raise ValueError(f"model variant {model.config.variant!r} has no V2R adapter to pass images through")
    model.eval()
    rows = []
    for start in range(0, len(images), PROBE_BATCH):
        image = model.normalize(torch.from_numpy(images[start : start + PROBE_BATCH]).float())
        if through_adapter:
            image = model.adapter(image)
        elif model.config.image_backbone == "dinov2":
            image = resize_to(image, model.contract.dino_height, model.contract.dino_width)
        rows.append(model.image_backbone(image)[1].float().numpy())
    return np.concatenate(rows)


def measure_model(model, frames: dict[str, np.ndarray]) -> dict[str, dict | None]:
    """{"before_adapter": measures, "after_adapter": measures or None (no adapter)} for one model.
    The action probes fit on the first half of the drives (sim) and test on the others (real)."""
    sim_look, real_look = C.DOMAINS
    drives = np.unique(frames["drive"])
    fit_rows = np.flatnonzero(frames["drive"] < drives[len(drives) // 2])
    test_rows = np.flatnonzero(frames["drive"] >= drives[len(drives) // 2])
    labels = {
        "steer": (frames["steer_class"], len(C.STEER_CLASSES)),
        "target_speed": (frames["target_speed_class"], len(C.TARGET_SPEEDS_MPS)),
    }
    discriminator = model.discriminator.classifier if model.discriminator is not None else None
    real = backbone_features(model, frames[real_look], through_adapter=False)
    report: dict[str, dict | None] = {}
    for name, through_adapter in (("before_adapter", False), ("after_adapter", True)):
        if through_adapter and model.adapter is None:
            report[name] = None
            continue
        sim = backbone_features(model, frames[sim_look], through_adapter)
        report[name] = domain_gap_report(sim, real, labels, fit_rows, test_rows, discriminator)
    report["frames"] = {"pairs": int(len(real)), "drives": int(len(drives))}
    return report
