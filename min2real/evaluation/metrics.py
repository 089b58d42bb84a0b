"""Validation metrics: pure functions over numpy arrays (torch tensors are accepted and converted).

Waypoints are in the ego frame (REP 103), metres. Errors are Euclidean (L2) distances per
waypoint: ADE = mean over waypoints and samples, FDE = mean over samples of the last waypoint's
error, `l2_per_step` = mean per horizon step. Steering classes follow contract.STEER_CLASSES;
the confusion matrix has rows = ground truth, columns = prediction; balanced accuracy and
macro-F1 are reported beside plain accuracy, which a constant "straight" answer makes look good. Discriminator accuracy near
0.5 means the image features no longer tell the domains apart (what Min2Real aims for).
"Turn" vs "straight" splits use the contract's steering rule on the ground-truth trajectory.
Undefined metrics (no samples) are None, so the JSON stays valid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from min2real.contract import (
    DEFAULT_CONTRACT,
    DOMAIN_REAL,
    DOMAINS,
    OUTPUT_TARGET_SPEED_LOGITS,
    STEER_CLASSES,
    STEER_STRAIGHT,
    TARGET_SPEED_CLASS,
    Contract,
    steer_class_from_waypoints,
)


def to_numpy(array) -> np.ndarray:
    """numpy array, or a torch tensor (any device, any grad state) -> numpy array."""
    if hasattr(array, "detach"):
        array = array.detach().float().cpu().numpy() if array.is_floating_point() else array.detach().cpu().numpy()
    return np.asarray(array)


def waypoint_l2_errors(waypoints_pred, waypoints_gt) -> np.ndarray:
    """(N, T, 2) predicted and ground-truth waypoints (ego, m) -> (N, T) L2 error in metres."""
    pred, gt = to_numpy(waypoints_pred).astype(np.float64), to_numpy(waypoints_gt).astype(np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"waypoints prediction {pred.shape} and ground truth {gt.shape}; expected equal (N, T, 2)")
    return np.linalg.norm(pred - gt, axis=-1)


def average_displacement_error(waypoints_pred, waypoints_gt) -> float | None:
    """ADE in metres (mean L2 over all waypoints and samples); None for no samples."""
    errors = waypoint_l2_errors(waypoints_pred, waypoints_gt)
    return float(errors.mean()) if errors.size else None


def final_displacement_error(waypoints_pred, waypoints_gt) -> float | None:
    """FDE in metres (mean L2 of the last waypoint); None for no samples."""
    errors = waypoint_l2_errors(waypoints_pred, waypoints_gt)
    return float(errors[:, -1].mean()) if errors.shape[0] else None


def l2_per_step(waypoints_pred, waypoints_gt) -> list[float] | None:
    """Mean L2 error (m) at each horizon step, a list of T floats; None for no samples."""
    errors = waypoint_l2_errors(waypoints_pred, waypoints_gt)
    return [float(value) for value in errors.mean(axis=0)] if errors.shape[0] else None


def steering_confusion(steer_class_pred, steer_class_gt, num_classes: int = len(STEER_CLASSES)) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; rows = ground truth, columns = prediction."""
    pred, gt = to_numpy(steer_class_pred).astype(np.int64).ravel(), to_numpy(steer_class_gt).astype(np.int64).ravel()
    if pred.shape != gt.shape:
        raise ValueError(f"steering predictions {pred.shape} and ground truth {gt.shape}; expected equal (N,)")
    bad = (pred < 0) | (pred >= num_classes) | (gt < 0) | (gt >= num_classes)
    if bad.any():
        raise ValueError(
            f"steering classes must lie in 0..{num_classes - 1}; got {np.unique(np.concatenate([pred, gt]))}"
        )
    return np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def steering_accuracy(steer_class_pred, steer_class_gt) -> float | None:
    """Fraction of correct steering classes; None for no samples."""
    pred, gt = to_numpy(steer_class_pred).ravel(), to_numpy(steer_class_gt).ravel()
    return float((pred == gt).mean()) if gt.size else None


def steering_classification_metrics(steer_class_pred, steer_class_gt, num_classes: int = len(STEER_CLASSES)) -> dict:
    """Accuracy, balanced accuracy (mean recall over the classes present in the ground truth),
    macro-F1 (mean F1 over the classes present in the ground truth or the predictions), per-class
    recall / precision / F1, the classes predicted at all and the confusion (rows truth, columns
    predicted). Plain accuracy alone hides a head that answers "straight" for everything.
    Undefined values (no samples, a class never predicted) are None."""
    confusion = steering_confusion(steer_class_pred, steer_class_gt, num_classes)
    truth, predicted, correct = confusion.sum(axis=1), confusion.sum(axis=0), np.diag(confusion)
    total = int(confusion.sum())
    recall = [float(correct[k] / truth[k]) if truth[k] else None for k in range(num_classes)]
    precision = [float(correct[k] / predicted[k]) if predicted[k] else None for k in range(num_classes)]
    f1 = []
    for k in range(num_classes):
        if not truth[k] and not predicted[k]:
            f1.append(None)
        else:
            f1.append(float(2 * correct[k] / (truth[k] + predicted[k])))
    present_recall = [value for value in recall if value is not None]
    present_f1 = [value for value in f1 if value is not None]
    return {
        "accuracy": float(correct.sum() / total) if total else None,
        "balanced_accuracy": float(np.mean(present_recall)) if present_recall else None,
        "macro_f1": float(np.mean(present_f1)) if present_f1 else None,
        "recall": dict(zip(STEER_CLASSES, recall)),
        "precision": dict(zip(STEER_CLASSES, precision)),
        "f1": dict(zip(STEER_CLASSES, f1)),
        "predicted_classes": [STEER_CLASSES[k] for k in range(num_classes) if predicted[k]],
        "confusion": confusion.tolist(),
    }


def discriminator_accuracy(domain_logits, domain) -> float | None:
    """Fraction of samples whose domain the discriminator gets right (logit > 0 means real).

    domain_logits: (N,) pre-sigmoid, real = 1. domain: (N,) DOMAIN_SIM / DOMAIN_REAL.
    """
    logits, labels = to_numpy(domain_logits).ravel(), to_numpy(domain).ravel()
    if logits.shape != labels.shape:
        raise ValueError(f"domain logits {logits.shape} and domains {labels.shape}; expected equal (N,)")
    return float(((logits > 0) == (labels == DOMAIN_REAL)).mean()) if labels.size else None


def turn_mask(waypoints_gt, contract: Contract = DEFAULT_CONTRACT) -> np.ndarray:
    """(N, T, 2) ground-truth waypoints -> (N,) bool: the contract's steering rule says LEFT or RIGHT."""
    gt = to_numpy(waypoints_gt)
    if gt.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    return steer_class_from_waypoints(gt, contract) != STEER_STRAIGHT


def driving_metrics(
    waypoints_pred,
    waypoints_gt,
    steer_logits=None,
    steer_class_gt=None,
    contract: Contract = DEFAULT_CONTRACT,
    split_turns: bool = True,
) -> dict:
    """ADE/FDE/L2-per-step (+ steering accuracy and confusion when steering is given) for labelled
    samples, with the same metrics for the "turn" and "straight" subsets when `split_turns`.

    steer_logits: (N, 3) logits (or probabilities); steer_class_gt: (N,) int64.
    """
    pred, gt = to_numpy(waypoints_pred), to_numpy(waypoints_gt)
    result: dict = {
        "num_samples": int(gt.shape[0]),
        "ade_m": average_displacement_error(pred, gt),
        "fde_m": final_displacement_error(pred, gt),
        "l2_per_step_m": l2_per_step(pred, gt),
    }
    steer_pred = None
    if steer_logits is not None and steer_class_gt is not None:
        steer_pred = to_numpy(steer_logits).argmax(axis=-1) if gt.shape[0] else np.zeros(0, np.int64)
        steer_gt = to_numpy(steer_class_gt).astype(np.int64).ravel()
        classification = steering_classification_metrics(steer_pred, steer_gt)
        result["steer_accuracy"] = classification["accuracy"]
        result["steer_balanced_accuracy"] = classification["balanced_accuracy"]
        result["steer_macro_f1"] = classification["macro_f1"]
        result["steer_f1"] = classification["f1"]
        result["steer_predicted_classes"] = classification["predicted_classes"]
        result["steer_confusion"] = classification["confusion"]
    if split_turns:
        turning = turn_mask(gt, contract)
        for name, mask in (("turn", turning), ("straight", ~turning)):
            subset = driving_metrics(
                pred[mask],
                gt[mask],
                None if steer_pred is None else to_numpy(steer_logits)[mask],
                None if steer_pred is None else to_numpy(steer_class_gt).ravel()[mask],
                contract,
                split_turns=False,
            )
            result[name] = subset
    return result


class MetricsAccumulator:
    """Collects model outputs and targets batch by batch, then reports metrics per domain.

    add(outputs, batch) takes the model's output dict and the collated batch (torch or numpy);
    compute() returns {"sim": {...}, "real": {...}} for the domains seen, each with the driving
    metrics of its labelled samples and the discriminator accuracy over all its samples.
    """

    def __init__(self, contract: Contract = DEFAULT_CONTRACT) -> None:
        self.contract = contract
        self._chunks: dict[str, list[np.ndarray]] = {}

    def _append(self, name: str, value) -> None:
        self._chunks.setdefault(name, []).append(to_numpy(value))

    def add(self, outputs: dict, batch: dict) -> None:
        self._append("waypoints_pred", outputs["waypoints"])
        self._append("waypoints_gt", batch["waypoints"])
        self._append("steer_logits", outputs["steer_logits"])
        self._append("steer_class_gt", batch["steer_class"])
        self._append("domain", batch["domain"])
        self._append("has_labels", batch["has_labels"])
        if outputs.get("domain_logits") is not None:
            self._append("domain_logits", outputs["domain_logits"])
        if outputs.get(OUTPUT_TARGET_SPEED_LOGITS) is not None and TARGET_SPEED_CLASS in batch:
            self._append("target_speed_logits", outputs[OUTPUT_TARGET_SPEED_LOGITS])
            self._append("target_speed_class_gt", batch[TARGET_SPEED_CLASS])

    def _concatenated(self, name: str) -> np.ndarray | None:
        chunks = self._chunks.get(name)
        return np.concatenate(chunks) if chunks else None

    def _target_speed_accuracy(self, selected: np.ndarray) -> float | None:
        """Accuracy of the target-speed head over `selected` samples that carry a label (None: no head or no label)."""
        logits, classes = self._concatenated("target_speed_logits"), self._concatenated("target_speed_class_gt")
        if logits is None or classes is None:
            return None
        classes = classes.astype(np.int64).ravel()
        valid = selected & (classes >= 0)
        if not valid.any():
            return None
        return float((logits[valid].argmax(axis=1) == classes[valid]).mean())

    def compute(self) -> dict:
        if not self._chunks:
            return {}
        domain = self._concatenated("domain").astype(np.int64).ravel()
        has_labels = self._concatenated("has_labels").astype(bool).ravel()
        wp_pred, wp_gt = self._concatenated("waypoints_pred"), self._concatenated("waypoints_gt")
        logits, steer_gt = self._concatenated("steer_logits"), self._concatenated("steer_class_gt").ravel()
        domain_logits = self._concatenated("domain_logits")
        report: dict = {}
        for domain_id, domain_name in enumerate(DOMAINS):
            in_domain = domain == domain_id
            if not in_domain.any():
                continue
            labelled = in_domain & has_labels
            metrics = driving_metrics(
                wp_pred[labelled], wp_gt[labelled], logits[labelled], steer_gt[labelled], self.contract
            )
            metrics["num_samples_total"] = int(in_domain.sum())
            metrics["target_speed_accuracy"] = self._target_speed_accuracy(labelled)
            metrics["discriminator_accuracy"] = (
                discriminator_accuracy(domain_logits.ravel()[in_domain], domain[in_domain])
                if domain_logits is not None
                else None
            )
            report[domain_name] = metrics
        if domain_logits is not None:
            report["discriminator_accuracy_all"] = discriminator_accuracy(domain_logits.ravel(), domain)
        return report


def flatten_metrics(report: dict, prefix: str = "") -> dict[str, float]:
    """Nested metrics dict -> {"real/ade_m": 1.2, "real/l2_per_step_m/0": ...} of scalars (TensorBoard)."""
    flat: dict[str, float] = {}
    items: Sequence = report.items() if isinstance(report, dict) else enumerate(report)
    for key, value in items:
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, (dict, list)):
            if key == "steer_confusion":
                continue
            flat.update(flatten_metrics(value, name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value is not None:
            flat[name] = float(value)
    return flat
