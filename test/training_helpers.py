"""Shared by the training tests: a small synthetic two-domain dataset and a tiny training config."""

from __future__ import annotations

from pathlib import Path

from min2real.contract import TINY_CONTRACT

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "training" / "tiny.yaml"
# Images are rendered near the tiny contract's size so generation and loading stay fast on CPU.
SIM_IMAGE_SIZE, REAL_IMAGE_SIZE = (256, 96), (320, 180)


def write_synthetic(out_dir: Path, seed: int, frames: int, routes: int = 2) -> dict[str, Path]:
    """Write a synthetic sim (CARLA layout) + real (NAVSIM layout) dataset; returns its roots."""
    from min2real.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(
        out_dir,
        seed=seed,
        frames=frames,
        routes=routes,
        sim_image_size=SIM_IMAGE_SIZE,
        real_image_size=REAL_IMAGE_SIZE,
        contract=TINY_CONTRACT,
    )
    return {"sim": out_dir / "carla", "real": out_dir / "navsim"}


def data_overrides(train_roots: dict[str, Path], val_roots: dict[str, Path] | None = None) -> list[str]:
    """`--set` overrides pointing tiny.yaml at the given synthetic roots."""
    overrides = [f"data.sim_roots=[{train_roots['sim']}]", f"data.real_roots=[{train_roots['real']}]"]
    if val_roots is None:
        overrides += ["data.val_sim_roots=[]", "data.val_real_roots=[]"]
    else:
        overrides += [f"data.val_sim_roots=[{val_roots['sim']}]", f"data.val_real_roots=[{val_roots['real']}]"]
    return overrides
