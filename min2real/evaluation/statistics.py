"""Statistics for comparing training recipes closed loop (docs/experiments.md).

A recipe's closed-loop result is a matrix of driving scores, one row per training seed and one
column per route (the same routes for every seed). From it:

* `mean_std`: mean and sample standard deviation over seeds of the per-seed mean over routes;
* `bootstrap_interval`: a 95 % percentile bootstrap interval of the grand mean, resampling seeds
  and routes independently with replacement (both are samples: other seeds train other models,
  other routes are other roads);
* `paired_difference`: recipe minus baseline on the same (seed, route) cells, with the same
  bootstrap over the difference matrix. A difference is *claimed* only when its interval
  excludes zero and rests on at least MIN_CELLS_TO_CLAIM (seed, route) pairs: below six pairs
  even differences all of one sign are not significant at 5 % by the exact sign test
  (2 x 0.5^5 = 0.0625), and a percentile bootstrap over so few cells is no interval at all
  (two routes give [the smaller, the larger] difference).

Everything is deterministic (a fixed generator seed), so a table reproduces exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0
MIN_CELLS_TO_CLAIM = 6


@dataclass(frozen=True)
class Interval:
    """An estimate with its (low, high) interval at `confidence`."""

    estimate: float
    low: float
    high: float
    confidence: float = CONFIDENCE
    cells: int = 0  # (seed, route) values behind it

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0

    @property
    def claimed(self) -> bool:
        """A difference the data support: its interval excludes zero, over >= MIN_CELLS_TO_CLAIM pairs."""
        return self.excludes_zero and self.cells >= MIN_CELLS_TO_CLAIM

    def as_dict(self) -> dict:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "cells": self.cells,
            "claimed": self.claimed,
        }


def score_matrix(values) -> np.ndarray:
    """(seeds, routes) float array from nested sequences; refuses empty, ragged or non-finite input."""
    try:
        matrix = np.asarray(values, dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"scores must be a (seeds, routes) matrix with the same routes per seed: {error}") from error
    if matrix.ndim != 2 or matrix.size == 0:
        raise ValueError(f"scores have shape {matrix.shape}; expected a non-empty (seeds, routes) matrix")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("scores hold non-finite values; expected finite driving scores")
    return matrix


def mean_std(values) -> tuple[float, float]:
    """(mean, sample std) over seeds of each seed's mean over routes; std is nan for one seed."""
    per_seed = score_matrix(values).mean(axis=1)
    std = float(per_seed.std(ddof=1)) if per_seed.size > 1 else math.nan
    return float(per_seed.mean()), std


def bootstrap_interval(
    values,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """The grand mean of a (seeds, routes) matrix and its percentile bootstrap interval, seeds and
    routes resampled independently with replacement."""
    matrix = score_matrix(values)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence}; expected a value in (0, 1)")
    if resamples < 100:
        raise ValueError(f"{resamples} bootstrap resamples; expected at least 100")
    rng = np.random.default_rng(seed)
    seeds, routes = matrix.shape
    seed_draws = rng.integers(0, seeds, size=(resamples, seeds))
    route_draws = rng.integers(0, routes, size=(resamples, routes))
    # mean over the resampled grid = mean over drawn seeds of the mean over drawn routes
    means = matrix[seed_draws[:, :, None], route_draws[:, None, :]].mean(axis=(1, 2))
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    estimate = float(matrix.mean())
    # A constant matrix gives a degenerate interval; keep it exact rather than off by rounding.
    return Interval(estimate, min(float(low), estimate), max(float(high), estimate), confidence, int(matrix.size))


def paired_difference(recipe, baseline, **bootstrap_options) -> Interval:
    """recipe - baseline over the same (seed, route) cells, with its bootstrap interval."""
    a, b = score_matrix(recipe), score_matrix(baseline)
    if a.shape != b.shape:
        raise ValueError(
            f"paired difference needs the same seeds and routes: recipe {a.shape} vs baseline {b.shape} (seeds, routes)"
        )
    return bootstrap_interval(a - b, **bootstrap_options)


def aligned_matrix(per_seed: dict[int, dict[str, float]], seeds: list[int], routes: list[str]) -> np.ndarray:
    """{seed: {route name: score}} -> (seeds, routes) matrix in the given order; a missing cell is an
    error naming it (paired statistics need every seed on every route)."""
    rows = []
    for seed in seeds:
        scores = per_seed.get(seed)
        if scores is None:
            raise ValueError(f"seed {seed} has no closed-loop scores; expected one per route of {routes[:3]}...")
        missing = [route for route in routes if route not in scores]
        if missing:
            raise ValueError(f"seed {seed} has no score for routes {missing[:3]}; expected every route")
        rows.append([scores[route] for route in routes])
    return score_matrix(rows)
