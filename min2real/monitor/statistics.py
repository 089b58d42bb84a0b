"""Feature statistics of training frames and the score computed from them (numpy only).

    features (N, D) -> mean (D,), Ledoit-Wolf shrunk covariance -> whitening W (D, D)
    part_score(f) = sqrt(mean_d(((f - mean) @ W)_d^2))   (the Mahalanobis distance / sqrt(D))
    ood_score = sqrt(mean_k (part_score_k / reference_k)^2)   over the parts k (monitor.summaries:
                the token, image and structure summaries), reference_k = the median training-frame
                part score, so each part counts alike and a typical training frame scores about 1

The graph computes the same (`graph.attach_monitor_nodes`); this module is its reference. Thresholds
come from held-out in-distribution frames at a stated false-alarm rate (`threshold_at`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

# Below this many expected exceedances the empirical quantile is too noisy: a log-normal fit of the
# held-out scores gives the threshold instead (never below the empirical quantile).
MIN_EXCEEDANCES_FOR_EMPIRICAL = 5


class MonitorError(RuntimeError):
    """The monitor cannot be built or calibrated (too few frames, features not found, bad input)."""


@dataclass(frozen=True)
class FeatureStatistics:
    """mean (D,) float32, whitening (D, D) float32 (x @ whitening has identity covariance under the
    shrunk estimate), shrinkage in [0, 1] (Ledoit-Wolf weight of the scaled identity), num_frames."""

    mean: np.ndarray
    whitening: np.ndarray
    shrinkage: float
    num_frames: int

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def sha256(self) -> str:
        """Fingerprint of the mean and whitening (the metadata records it; the graph holds the values)."""
        digest = hashlib.sha256(np.ascontiguousarray(self.mean, dtype=np.float32).tobytes())
        digest.update(np.ascontiguousarray(self.whitening, dtype=np.float32).tobytes())
        return digest.hexdigest()


def ledoit_wolf_shrinkage(centered: np.ndarray) -> float:
    """Ledoit & Wolf (2004) optimal shrinkage toward the scaled identity for centred (N, D) data."""
    n, d = centered.shape
    squared = centered**2
    trace_per_dim = squared.sum(axis=0) / n
    mu = trace_per_dim.sum() / d
    beta_sum = float((squared.T @ squared).sum())
    delta_sum = float(((centered.T @ centered) ** 2).sum()) / n**2
    beta = (beta_sum / n - delta_sum) / (d * n)
    delta = (delta_sum - 2.0 * mu * trace_per_dim.sum() + d * mu**2) / d
    beta = min(beta, delta)
    return 0.0 if delta <= 0 else float(beta / delta)


def fit_feature_statistics(features: np.ndarray) -> FeatureStatistics:
    """(N, D) features of training frames -> FeatureStatistics. Needs N >= 8 finite rows."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 8:
        raise MonitorError(f"feature statistics need (N >= 8, D) features; got shape {features.shape}")
    if not np.isfinite(features).all():
        raise MonitorError("feature statistics got non-finite features")
    mean = features.mean(axis=0)
    centered = features - mean
    shrinkage = ledoit_wolf_shrinkage(centered)
    covariance = centered.T @ centered / features.shape[0]
    scale = np.trace(covariance) / covariance.shape[0]
    if not scale > 0:
        raise MonitorError("training features do not vary (zero covariance); the monitor cannot score them")
    shrunk = (1.0 - shrinkage) * covariance + shrinkage * scale * np.eye(covariance.shape[0])
    eigenvalues, eigenvectors = np.linalg.eigh(shrunk)
    eigenvalues = np.maximum(eigenvalues, 1e-6 * scale)  # numerically singular directions stay bounded
    whitening = eigenvectors / np.sqrt(eigenvalues)[None, :]
    return FeatureStatistics(
        mean.astype(np.float32), whitening.astype(np.float32), float(shrinkage), int(features.shape[0])
    )


def ood_scores(features: np.ndarray, statistics: FeatureStatistics) -> np.ndarray:
    """(N, D) features -> (N,) float32 part scores (Mahalanobis distance / sqrt(D))."""
    whitened = (np.asarray(features, dtype=np.float32) - statistics.mean) @ statistics.whitening
    return np.sqrt(np.mean(whitened**2, axis=-1)).astype(np.float32)


@dataclass(frozen=True)
class ScorePart:
    """One summary the score reads: `name` (a monitor.summaries name), its training statistics, and
    `reference`, the median part score over the training frames (the part's unit in the score)."""

    name: str
    statistics: FeatureStatistics
    reference: float


def fit_score_part(name: str, features: np.ndarray) -> ScorePart:
    """ScorePart of `name` from its (N, D) training-frame features."""
    statistics = fit_feature_statistics(features)
    reference = float(np.median(ood_scores(features, statistics)))
    if not reference > 0:
        raise MonitorError(f"training frames of {name!r} all score 0; the monitor cannot scale this part")
    return ScorePart(name, statistics, reference)


def combined_scores(features: dict[str, np.ndarray], parts: list[ScorePart]) -> np.ndarray:
    """{part name: (N, D_k) features} -> (N,) float32 OUTPUT_OOD_SCORE (module docstring), in numpy."""
    ratios = [(ood_scores(features[part.name], part.statistics) / part.reference) ** 2 for part in parts]
    return np.sqrt(np.mean(ratios, axis=0)).astype(np.float32)


def threshold_at(scores: np.ndarray, false_alarm_rate: float) -> tuple[float, str]:
    """The score that `false_alarm_rate` of held-out in-distribution frames exceed, and how it was
    found: the empirical quantile, or (with fewer than MIN_EXCEEDANCES_FOR_EMPIRICAL expected
    exceedances) a log-normal fit of the scores, never below the empirical quantile."""
    scores = np.asarray(scores, dtype=np.float64)
    if not 0.0 < false_alarm_rate < 0.5:
        raise MonitorError(f"false-alarm rate {false_alarm_rate}; expected a rate in (0, 0.5)")
    if scores.ndim != 1 or scores.size < 20 or not np.isfinite(scores).all() or (scores <= 0).any():
        raise MonitorError(f"calibration needs >= 20 finite positive held-out scores; got {scores.size}")
    empirical = float(np.quantile(scores, 1.0 - false_alarm_rate))
    if scores.size * false_alarm_rate >= MIN_EXCEEDANCES_FOR_EMPIRICAL:
        return empirical, "empirical quantile"
    logs = np.log(scores)
    fitted = float(np.exp(logs.mean() + NormalDist().inv_cdf(1.0 - false_alarm_rate) * logs.std(ddof=1)))
    return max(empirical, fitted), "log-normal fit"
