"""Image and figure files shared by every report (open loop, replay, closed loop): contact sheets,
PNG and MP4 writers (cv2, vectorised), and matplotlib with the Agg backend (no display needed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def contact_sheet(tiles: list[np.ndarray], columns: int = 3, gap_px: int = 4) -> np.ndarray:
    """Equal-size RGB tiles -> one RGB image in a grid (row-major), white gaps."""
    if not tiles:
        raise ValueError("contact sheet needs at least one tile; the replay produced no overlay frames")
    height, width = tiles[0].shape[:2]
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    sheet = np.full((rows * (height + gap_px) - gap_px, columns * (width + gap_px) - gap_px, 3), 255, dtype=np.uint8)
    for index, tile in enumerate(tiles):
        if tile.shape[:2] != (height, width):
            raise ValueError(
                f"contact sheet tile {index} has size {tile.shape[:2]}; expected {(height, width)} like tile 0"
            )
        row, column = divmod(index, columns)
        top, left = row * (height + gap_px), column * (width + gap_px)
        sheet[top : top + height, left : left + width] = tile
    return sheet


def write_png(path: Path, image_rgb: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write image {str(path)!r}")
    return path


def write_video(path: Path, frames_rgb: list[np.ndarray], fps: float) -> Path:
    """Equal-size RGB frames -> MP4 (mp4v) via cv2.VideoWriter."""
    import cv2

    if not frames_rgb:
        raise ValueError("video needs at least one frame; the replay produced no overlay frames")
    height, width = frames_rgb[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(max(fps, 1.0)), (width, height))
    if not writer.isOpened():
        raise OSError(f"cv2.VideoWriter could not open {str(path)!r} with the mp4v codec")
    try:
        for frame in frames_rgb:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
