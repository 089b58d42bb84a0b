"""Sim-to-real measures on frozen features (docs/experiments.md, "Sim-to-real measures").

Given the image features of held-out sim-look and real-look frames (`domain_features`), these
say how far apart the two domains are *to the network*, independent of driving:

* `discriminator_accuracy`: the model's own domain discriminator (without the GRL), balanced
  accuracy of "real" vs "sim" (0.5: it cannot tell them apart);
* `proxy_a_distance`: 2 (1 - 2 err) of a fresh linear domain classifier fitted on one half of the
  frames and tested on the other (Ben-David et al.; ~0: indistinguishable, 2: linearly separable);
* `action_probe`: a linear probe fitted on sim features to predict an action label (steering
  class, target-speed class), tested on real features: does what sim teaches read out on real?
* `linear_cka` (paired frames: the same scene in both looks) and `rbf_mmd` (two samples).

`fit_linear_classifier` is the one logistic-regression probe of the package (the stand-in
extractor's probe uses it too).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LINEAR_WEIGHT_DECAY = 1e-2
LINEAR_STEPS = 300


def _features(name: str, values) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(values, dtype=np.float32))
    if tensor.ndim != 2 or tensor.shape[0] < 2:
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}; expected (N >= 2, D) features")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} holds non-finite values; expected finite features")
    return tensor


def fit_linear_classifier(
    features,
    labels,
    num_classes: int,
    weight_decay: float = LINEAR_WEIGHT_DECAY,
    steps: int = LINEAR_STEPS,
) -> Callable[[torch.Tensor], np.ndarray]:
    """Multinomial logistic regression on standardised features (class-balanced loss, L2 penalty),
    fitted with L-BFGS (deterministic). Returns predict(features) -> (N,) int64 classes."""
    x = _features("classifier features", features)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if y.shape != (x.shape[0],) or int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"labels {tuple(y.shape)} in 0..{num_classes - 1} expected for {x.shape[0]} feature rows")
    mean, std = x.mean(dim=0), x.std(dim=0).clamp(min=1e-6)
    counts = torch.bincount(y, minlength=num_classes).float()
    class_weight = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)  # the layer's initialisation: the same probe every time
    linear = nn.Linear(x.shape[1], num_classes)
    torch.random.set_rng_state(generator_state)
    x_std = (x - mean) / std
    optimiser = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = F.cross_entropy(linear(x_std), y, weight=class_weight) + weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)

    def predict(test_features) -> np.ndarray:
        test = _features("test features", test_features)
        with torch.no_grad():
            return linear((test - mean) / std).argmax(dim=1).numpy()

    return predict


def balanced_accuracy(predicted, truth) -> float:
    """Mean recall over the classes present in `truth`."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    recalls = [float(np.mean(predicted[truth == k] == k)) for k in np.unique(truth)]
    return float(np.mean(recalls))


def _halves(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[: count // 2]), np.sort(order[count // 2 :])


def proxy_a_distance(sim_features, real_features, seed: int = 0) -> dict[str, float]:
    """2 (1 - 2 err) of a fresh linear domain classifier, err its balanced error on the held-out half
    of each domain's frames (the same split of frame indices in both domains)."""
    sim, real = _features("sim features", sim_features), _features("real features", real_features)
    if sim.shape[1] != real.shape[1] or min(len(sim), len(real)) < 4:
        raise ValueError(f"proxy A-distance needs >= 4 frames per domain of one width; got {sim.shape} / {real.shape}")
    sim_fit, sim_test = _halves(len(sim), seed)
    real_fit, real_test = _halves(len(real), seed)
    predict = fit_linear_classifier(
        torch.cat([sim[sim_fit], real[real_fit]]),
        np.r_[np.zeros(len(sim_fit), np.int64), np.ones(len(real_fit), np.int64)],
        num_classes=2,
    )
    truth = np.r_[np.zeros(len(sim_test), np.int64), np.ones(len(real_test), np.int64)]
    error = 1.0 - balanced_accuracy(predict(torch.cat([sim[sim_test], real[real_test]])), truth)
    return {"proxy_a_distance": 2.0 * (1.0 - 2.0 * error), "domain_classifier_error": error}


def discriminator_accuracy(classifier: nn.Module, sim_features, real_features) -> float:
    """Balanced accuracy of a discriminator (features -> logit, "real" = 1) on the two sets."""
    sim, real = _features("sim features", sim_features), _features("real features", real_features)
    with torch.no_grad():
        sim_real = (classifier(sim).reshape(-1) > 0).float().mean().item()
        real_real = (classifier(real).reshape(-1) > 0).float().mean().item()
    return 0.5 * ((1.0 - sim_real) + real_real)


def action_probe(sim_features, sim_labels, real_features, real_labels, num_classes: int) -> dict[str, float]:
    """Fit on sim (features -> action class), test on real: balanced accuracy on real, with the
    chance level (1 / classes present in the real labels) and the fit's own sim accuracy."""
    predict = fit_linear_classifier(sim_features, sim_labels, num_classes)
    real_labels = np.asarray(real_labels, dtype=np.int64)
    return {
        "real_balanced_accuracy": balanced_accuracy(predict(real_features), real_labels),
        "sim_fit_balanced_accuracy": balanced_accuracy(predict(sim_features), np.asarray(sim_labels)),
        "chance": 1.0 / len(np.unique(real_labels)),
    }


def linear_cka(x_features, y_features) -> float:
    """Linear centred kernel alignment of two representations of the same N inputs (row i of x
    and of y: the same frame); 1: identical up to rotation and scale."""
    x = _features("x features", x_features).double()
    y = _features("y features", y_features).double()
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA compares paired rows; got {x.shape[0]} and {y.shape[0]} rows")
    x, y = x - x.mean(dim=0), y - y.mean(dim=0)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    norms = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    if norms <= 0:
        raise ValueError("CKA of a constant representation is undefined")
    return float(cross / norms)


def rbf_mmd(x_features, y_features, bandwidth: float | None = None) -> dict[str, float]:
    """Unbiased squared MMD with a Gaussian kernel; bandwidth = the median pairwise distance of the
    pooled samples (the median heuristic) unless given."""
    x = _features("x features", x_features).double()
    y = _features("y features", y_features).double()
    pooled = torch.cat([x, y])
    distances = torch.cdist(pooled, pooled) ** 2
    if bandwidth is None:
        off_diagonal = distances[~torch.eye(len(pooled), dtype=torch.bool)]
        bandwidth = math.sqrt(float(off_diagonal.median())) or 1.0
    kernel = torch.exp(-distances / (2.0 * bandwidth**2))
    n, m = len(x), len(y)
    k_xx, k_yy, k_xy = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    mmd2 = (
        (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
        + (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
        - 2.0 * k_xy.mean()
    )
    return {"mmd2": float(mmd2), "bandwidth": float(bandwidth)}


def domain_gap_report(
    sim_features,
    real_features,
    labels: dict[str, tuple[np.ndarray, int]],
    fit_rows: np.ndarray,
    test_rows: np.ndarray,
    discriminator: nn.Module | None = None,
) -> dict[str, float | None]:
    """Every measure for one pair of feature sets (row i of each: the same frame in the two looks).
    labels: name -> (per-row class labels, number of classes) for the action probes, fitted on the
    sim rows `fit_rows` and tested on the real rows `test_rows` (other drives)."""
    report: dict[str, float | None] = dict(proxy_a_distance(sim_features, real_features))
    report["discriminator_accuracy"] = (
        discriminator_accuracy(discriminator, sim_features, real_features) if discriminator is not None else None
    )
    report["linear_cka"] = linear_cka(sim_features, real_features)
    report["rbf_mmd2"] = rbf_mmd(sim_features, real_features)["mmd2"]
    sim, real = np.asarray(sim_features), np.asarray(real_features)
    for name, (values, classes) in labels.items():
        probe = action_probe(sim[fit_rows], values[fit_rows], real[test_rows], values[test_rows], classes)
        report[f"probe_{name}_real_bal_acc"] = probe["real_balanced_accuracy"]
        report[f"probe_{name}_chance"] = probe["chance"]
    return report
