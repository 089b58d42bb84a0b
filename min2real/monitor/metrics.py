"""Separation metrics of a score between in-distribution frames and shifted ones (numpy only)."""

from __future__ import annotations

import numpy as np


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [values.size]])
    average = (starts + ends + 1) / 2.0  # mean of the 1-based positions start+1 .. end
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def auroc(in_distribution: np.ndarray, shifted: np.ndarray) -> float:
    """Area under the ROC curve of "score higher on `shifted`" (Mann-Whitney U / (n_in n_shift));
    0.5 is chance, 1.0 perfect separation. Ties count half."""
    negatives = np.asarray(in_distribution, dtype=np.float64).ravel()
    positives = np.asarray(shifted, dtype=np.float64).ravel()
    if negatives.size == 0 or positives.size == 0:
        raise ValueError("AUROC needs scores on both sides")
    ranks = _average_ranks(np.concatenate([negatives, positives]))
    u = ranks[negatives.size :].sum() - positives.size * (positives.size + 1) / 2.0
    return float(u / (negatives.size * positives.size))


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation, or None with fewer than 3 pairs or a constant side."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman rank correlation (Pearson of average ranks), or None as for `pearson`."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 3:
        return None
    return pearson(_average_ranks(x), _average_ranks(y))
