"""Open-loop evaluation: a model (checkpoint or exported graph) over a dataset, per domain.

    samples (dataset[i]: dict in the contract's form) --batch--> Predictor --> RunPredictions
    RunPredictions --compute_metrics--> {domain: driving metrics + situations + discriminator}

Predictors:
* `CheckpointPredictor`: the torch model from a training checkpoint (`model_from_checkpoint`).
  Runs both domains exactly as in training (V2R adapter on sim samples only), reports the
  discriminator's accuracy when the variant has one, and can show the adapter's output image.
* `ExportedPredictor`: one or more exported graphs through the runtime backends (ONNX Runtime,
  TensorRT, torch) with `load_policy`; each graph serves the domain its metadata names ("sim"
  graphs carry the adapter, "real" graphs do not). Samples of a domain without a graph are
  skipped and the report says so.

Metrics come from `training.metrics` (ADE/FDE, L2 per step, steering accuracy and confusion,
discriminator accuracy, the turn/straight split). Situation splits use what the samples carry:
the ground-truth steering class (contract rule), the driving command, speed bands and, where
the loader provides it, CARLA's junction flag (`junction` key). Waypoints are REP 103 metres.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from min2real import contract as C
from min2real.evaluation.metrics import discriminator_accuracy, driving_metrics

# Situation split: speed bands in m/s (lower bound inclusive).
SPEED_BANDS_MPS = (
    (0.0, 0.5, "standing (<0.5 m/s)"),
    (0.5, 5.0, "slow (0.5-5 m/s)"),
    (5.0, 10.0, "medium (5-10 m/s)"),
    (10.0, math.inf, "fast (>=10 m/s)"),
)
SAMPLE_JUNCTION = "junction"  # optional per-sample flag (CARLA Garage measurement `junction`)


class EvaluationError(RuntimeError):
    """The evaluation cannot run as asked (the message says what is missing)."""


# ---- predictors --------------------------------------------------------------------------------
class Predictor(abc.ABC):
    """Batch of samples (numpy, stacked) -> outputs. Subclasses set name/source/kind/contract."""

    name: str
    source: str
    kind: str  # "checkpoint" | "exported"
    contract: C.Contract
    details: dict

    @abc.abstractmethod
    def domains(self) -> set[int]:
        """Domain ids (contract.DOMAIN_SIM / DOMAIN_REAL) this predictor evaluates."""

    @abc.abstractmethod
    def predict(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """batch: stacked samples (image (B, 3, H, W) uint8, lidar_bev, target_point, speed,
        command, domain (B,)) -> {"waypoints": (B, T, 2), "steer_logits": (B, 3)[, "domain_logits": (B,)]}."""

    def adapter_images(self, images_chw_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(B, 3, H, W) uint8 sim images -> ((B, h, w, 3) uint8 DINOv2 input without the adapter,
        (B, h, w, 3) uint8 with it), or None when this predictor cannot show the adapter."""
        return None


class CheckpointPredictor(Predictor):
    """A training checkpoint through the torch model (both domains, discriminator, adapter)."""

    kind = "checkpoint"

    def __init__(self, checkpoint_path: str | Path, name: str | None = None, device: str = "cpu") -> None:
        import torch

        from min2real.models.checkpoint import model_from_checkpoint

        self._torch = torch
        self.device = torch.device(device)
        self.model, checkpoint, self.contract = model_from_checkpoint(checkpoint_path, map_location=self.device)
        self.model.to(self.device)
        self.source = str(checkpoint_path)
        self.name = name or Path(checkpoint_path).stem
        config = checkpoint.get("model_config", {})
        self.details = {
            "variant": config.get("variant", "?"),
            "step": int(checkpoint.get("step", 0)),
            "backend": f"torch-{self.device.type}",
        }

    def domains(self) -> set[int]:
        return {C.DOMAIN_SIM, C.DOMAIN_REAL}

    def predict(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        inputs = {
            name: torch.from_numpy(np.ascontiguousarray(batch[name], dtype=np.float32)).to(self.device)
            for name in C.INPUT_NAMES
        }
        domain = torch.from_numpy(np.asarray(batch[C.SAMPLE_DOMAIN], dtype=np.int64)).to(self.device)
        with torch.no_grad():
            outputs = self.model(inputs, domain)
        result = {
            C.OUTPUT_WAYPOINTS: outputs[C.OUTPUT_WAYPOINTS].float().cpu().numpy(),
            C.OUTPUT_STEER_LOGITS: outputs[C.OUTPUT_STEER_LOGITS].float().cpu().numpy(),
        }
        if outputs.get("domain_logits") is not None:
            result["domain_logits"] = outputs["domain_logits"].float().reshape(-1).cpu().numpy()
        return result

    def adapter_images(self, images_chw_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        if getattr(self.model, "adapter", None) is None:
            return None
        from min2real.models.adapter import resize_to

        torch = self._torch
        image = torch.from_numpy(np.ascontiguousarray(images_chw_uint8, dtype=np.float32)).to(self.device)
        with torch.no_grad():
            plain = resize_to(self.model.normalize(image), self.contract.dino_height, self.contract.dino_width)
            adapted = self.model.adapt_image(image)
        return (
            C.denormalize_image(plain.cpu().numpy(), self.contract),
            C.denormalize_image(adapted.cpu().numpy(), self.contract),
        )


class ExportedPredictor(Predictor):
    """Exported graphs (.onnx / .engine / .plan / .pt) through `load_policy`'s backends; one
    graph per domain (the domain its metadata names)."""

    kind = "exported"

    def __init__(self, model_paths: Sequence[str | Path], name: str | None = None, backend: str = "auto") -> None:
        from min2real.runtime.policy import load_policy

        if not model_paths:
            raise EvaluationError("an exported-model run needs at least one model file")
        self.policies: dict[int, object] = {}
        for path in model_paths:
            policy = load_policy(str(path), backend=backend)
            domain_id = C.DOMAINS.index(policy.metadata.domain)
            if domain_id in self.policies:
                raise EvaluationError(
                    f"two models for domain {policy.metadata.domain!r} in one run ({', '.join(map(str, model_paths))}); "
                    "give one 'sim' and/or one 'real' graph per run"
                )
            self.policies[domain_id] = policy
        contracts = [policy.contract for policy in self.policies.values()]
        for other in contracts[1:]:
            differences = contracts[0].differences(other)
            if differences:
                raise EvaluationError("the run's models have different contracts: " + "; ".join(differences))
        self.contract = contracts[0]
        self.source = ", ".join(str(path) for path in model_paths)
        self.name = name or "+".join(Path(path).stem for path in model_paths)
        first = next(iter(self.policies.values()))
        self.details = {
            "variant": first.metadata.variant,
            "backend": ", ".join(f"{C.DOMAINS[d]}: {p.backend_name}" for d, p in sorted(self.policies.items())),
        }

    def domains(self) -> set[int]:
        return set(self.policies)

    def predict(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        domains = np.asarray(batch[C.SAMPLE_DOMAIN], dtype=np.int64)
        waypoints, logits = [], []
        for index, domain_id in enumerate(domains):
            policy = self.policies.get(int(domain_id))
            if policy is None:
                raise EvaluationError(
                    f"no exported model for domain {C.DOMAINS[int(domain_id)]!r} in run {self.name!r}"
                )
            inputs = {
                name: np.ascontiguousarray(batch[name][index : index + 1], dtype=np.float32)
                for name in policy.backend.input_shapes
            }
            outputs = policy.backend.infer(inputs)
            decoded_waypoints, _, _ = C.decode_outputs(outputs, self.contract)
            waypoints.append(decoded_waypoints[0])
            logits.append(np.asarray(outputs[C.OUTPUT_STEER_LOGITS], dtype=np.float32)[0])
        return {C.OUTPUT_WAYPOINTS: np.stack(waypoints), C.OUTPUT_STEER_LOGITS: np.stack(logits)}


# ---- running over a dataset ----------------------------------------------------------------------
@dataclass
class RunPredictions:
    """Everything one run produced on the evaluated samples (arrays aligned on the sample axis).

    sample_index: (N,) dataset indices. domain / steer_gt / command: (N,) int64 (command =
    contract index, COMMAND_UNKNOWN for an all-zero one-hot). has_labels: (N,) bool.
    speed_mps: (N,). junction: (N,) bool or None. waypoints_gt / waypoints_pred: (N, T, 2) ego
    REP 103 m. target_point: (N, 2). steer_logits: (N, 3). domain_logits: (N,) or None.
    """

    name: str
    source: str
    kind: str
    details: dict
    contract: C.Contract
    sample_index: np.ndarray
    domain: np.ndarray
    has_labels: np.ndarray
    steer_gt: np.ndarray
    command: np.ndarray
    speed_mps: np.ndarray
    junction: np.ndarray | None
    waypoints_gt: np.ndarray
    waypoints_pred: np.ndarray
    target_point: np.ndarray
    steer_logits: np.ndarray
    domain_logits: np.ndarray | None
    skipped: dict = field(default_factory=dict)  # reason -> count
    predictor: Predictor | None = None
    load_sample: Callable[[int], dict] | None = None


def stack_samples(samples: list[dict]) -> dict[str, np.ndarray]:
    """List of sample dicts -> dict of stacked numpy arrays (keys every sample has)."""
    keys = set(samples[0])
    for sample in samples[1:]:
        keys &= set(sample)
    return {key: np.stack([np.asarray(sample[key]) for sample in samples]) for key in sorted(keys)}


def _command_index(command_one_hot: np.ndarray) -> np.ndarray:
    one_hot = np.asarray(command_one_hot, dtype=np.float32).reshape(len(command_one_hot), -1)
    index = one_hot.argmax(axis=1).astype(np.int64)
    index[~one_hot.any(axis=1)] = C.COMMAND_UNKNOWN
    return index


def run_predictor(
    predictor: Predictor,
    dataset: Sequence,
    batch_size: int = 8,
    max_samples_per_domain: int | None = None,
) -> RunPredictions:
    """Run `predictor` over `dataset` (len + getitem -> sample dict; a loader returns a problem
    record or None for a broken sample: those are counted and skipped)."""
    skipped: dict[str, int] = {}
    taken = {domain_id: 0 for domain_id in range(len(C.DOMAINS))}
    chunks: dict[str, list[np.ndarray]] = {}
    pending: list[dict] = []
    pending_index: list[int] = []

    def flush() -> None:
        if not pending:
            return
        batch = stack_samples(pending)
        outputs = predictor.predict(batch)
        columns = {
            "sample_index": np.asarray(pending_index, dtype=np.int64),
            "domain": batch[C.SAMPLE_DOMAIN].astype(np.int64).reshape(-1),
            "has_labels": batch[C.SAMPLE_HAS_LABELS].astype(bool).reshape(-1),
            "steer_gt": batch[C.TARGET_STEER_CLASS].astype(np.int64).reshape(-1),
            "command": _command_index(batch[C.INPUT_COMMAND]),
            "speed_mps": batch[C.INPUT_SPEED].astype(np.float64).reshape(-1),
            "waypoints_gt": batch[C.TARGET_WAYPOINTS].astype(np.float32),
            "waypoints_pred": np.asarray(outputs[C.OUTPUT_WAYPOINTS], dtype=np.float32),
            "target_point": batch[C.INPUT_TARGET_POINT].astype(np.float32),
            "steer_logits": np.asarray(outputs[C.OUTPUT_STEER_LOGITS], dtype=np.float32),
        }
        if SAMPLE_JUNCTION in batch:
            columns["junction"] = batch[SAMPLE_JUNCTION].astype(bool).reshape(-1)
        if "domain_logits" in outputs:
            columns["domain_logits"] = np.asarray(outputs["domain_logits"], dtype=np.float32).reshape(-1)
        for key, value in columns.items():
            chunks.setdefault(key, []).append(value)
        pending.clear()
        pending_index.clear()

    allowed = predictor.domains()
    for index in range(len(dataset)):
        sample = dataset[index]
        if not isinstance(sample, dict):
            skipped["broken sample (see the loader's warnings)"] = (
                skipped.get("broken sample (see the loader's warnings)", 0) + 1
            )
            continue
        domain_id = int(np.asarray(sample[C.SAMPLE_DOMAIN]))
        if domain_id not in allowed:
            reason = f"no model for domain {C.DOMAINS[domain_id]!r}"
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        if max_samples_per_domain is not None and taken[domain_id] >= max_samples_per_domain:
            continue
        taken[domain_id] += 1
        pending.append(sample)
        pending_index.append(index)
        if len(pending) >= batch_size:
            flush()
    flush()
    if not chunks:
        raise EvaluationError(
            f"run {predictor.name!r} evaluated no samples out of {len(dataset)} (skipped: {skipped or 'none'})"
        )
    joined = {key: np.concatenate(value) for key, value in chunks.items()}
    return RunPredictions(
        name=predictor.name,
        source=predictor.source,
        kind=predictor.kind,
        details=dict(predictor.details),
        contract=predictor.contract,
        sample_index=joined["sample_index"],
        domain=joined["domain"],
        has_labels=joined["has_labels"],
        steer_gt=joined["steer_gt"],
        command=joined["command"],
        speed_mps=joined["speed_mps"],
        junction=joined.get("junction"),
        waypoints_gt=joined["waypoints_gt"],
        waypoints_pred=joined["waypoints_pred"],
        target_point=joined["target_point"],
        steer_logits=joined["steer_logits"],
        domain_logits=joined.get("domain_logits"),
        skipped=skipped,
        predictor=predictor,
        load_sample=dataset.__getitem__,
    )


# ---- metrics -----------------------------------------------------------------------------------
def situation_masks(run: RunPredictions) -> dict[str, dict[str, np.ndarray]]:
    """Situation splits available in the data: {split name: {situation: (N,) bool}}."""
    splits: dict[str, dict[str, np.ndarray]] = {
        "ground-truth steering": {name: run.steer_gt == index for index, name in enumerate(C.STEER_CLASSES)},
        "driving command": {name: run.command == index for index, name in enumerate(C.COMMANDS)},
        "speed": {label: (run.speed_mps >= low) & (run.speed_mps < high) for low, high, label in SPEED_BANDS_MPS},
    }
    if run.junction is not None:
        splits["junction"] = {"junction": run.junction, "no junction": ~run.junction}
    return splits


def compute_metrics(run: RunPredictions) -> dict:
    """Per domain: driving metrics of the labelled samples (with the turn/straight split),
    sample counts, discriminator accuracy (checkpoints with a discriminator) and situations
    {split: {situation: metrics}} (situations without samples are left out)."""
    report: dict = {}
    splits = situation_masks(run)
    for domain_id, domain_name in enumerate(C.DOMAINS):
        in_domain = run.domain == domain_id
        if not in_domain.any():
            continue
        labelled = in_domain & run.has_labels
        metrics = driving_metrics(
            run.waypoints_pred[labelled],
            run.waypoints_gt[labelled],
            run.steer_logits[labelled],
            run.steer_gt[labelled],
            run.contract,
        )
        metrics["num_samples_total"] = int(in_domain.sum())
        metrics["discriminator_accuracy"] = (
            discriminator_accuracy(run.domain_logits[in_domain], run.domain[in_domain])
            if run.domain_logits is not None
            else None
        )
        situations: dict = {}
        for split_name, masks in splits.items():
            groups = {}
            for situation, mask in masks.items():
                selected = labelled & mask
                if selected.any():
                    groups[situation] = driving_metrics(
                        run.waypoints_pred[selected],
                        run.waypoints_gt[selected],
                        run.steer_logits[selected],
                        run.steer_gt[selected],
                        run.contract,
                        split_turns=False,
                    )
            situations[split_name] = groups
        metrics["situations"] = situations
        report[domain_name] = metrics
    if run.domain_logits is not None:
        report["discriminator_accuracy_all"] = discriminator_accuracy(run.domain_logits, run.domain)
    return report


def per_sample_ade(run: RunPredictions) -> np.ndarray:
    """(N,) mean L2 error of each sample's waypoints, metres."""
    return np.linalg.norm(run.waypoints_pred.astype(np.float64) - run.waypoints_gt, axis=-1).mean(axis=-1)


def select_examples(run: RunPredictions, per_domain: int = 4) -> dict[int, list[int]]:
    """Dataset indices to plot per domain: the worst sample, then one of each ground-truth
    steering class (left, right, straight; the worst of each), then the next worst."""
    errors = per_sample_ade(run)
    chosen: dict[int, list[int]] = {}
    for domain_id in np.unique(run.domain):
        candidates = np.flatnonzero((run.domain == domain_id) & run.has_labels)
        if candidates.size == 0:
            continue
        order = candidates[np.argsort(-errors[candidates], kind="stable")]
        picks: list[int] = [int(order[0])]
        for steer_class in (C.STEER_LEFT, C.STEER_RIGHT, C.STEER_STRAIGHT):
            of_class = [int(i) for i in order if run.steer_gt[i] == steer_class and int(i) not in picks]
            if of_class:
                picks.append(of_class[0])
        picks += [int(i) for i in order if int(i) not in picks]
        chosen[int(domain_id)] = [int(run.sample_index[i]) for i in picks[:per_domain]]
    return chosen


# ---- opening a data directory ------------------------------------------------------------------
class ConcatSamples:
    """Several datasets read as one sequence (index -> (dataset, local index))."""

    def __init__(self, datasets: Sequence) -> None:
        self.datasets = [dataset for dataset in datasets if len(dataset) > 0]
        self.offsets = np.cumsum([0] + [len(dataset) for dataset in self.datasets])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"sample index {index} out of range 0..{len(self) - 1}")
        which = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.datasets[which][index - int(self.offsets[which])]


def find_layouts(data_dir: str | Path) -> tuple[list[Path], list[tuple[Path, list[str]]]]:
    """A data directory -> (CARLA Garage roots: folders holding <scenario>/<route>/measurements,
    NAVSIM roots with their splits: folders holding navsim_logs/<split>/)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise EvaluationError(f"data directory {root} does not exist")
    garage_roots = sorted(
        {
            path.parent.parent.parent
            for path in root.glob("**/measurements")
            if path.is_dir() and len(path.relative_to(root).parts) >= 3
        }
    )
    navsim_roots = []
    for logs in sorted(root.glob("**/navsim_logs")):
        splits = sorted(child.name for child in logs.iterdir() if child.is_dir())
        navsim_roots.append((logs.parent, splits))
    return garage_roots, navsim_roots


def open_data_dir(
    data_dir: str | Path,
    contract: C.Contract,
    real_split: str | None = None,
    navsim_camera: str = "front",
    require_perfect_score: bool = False,
) -> ConcatSamples:
    """Every CARLA Garage root and NAVSIM split under `data_dir` as one sample sequence (sim
    first). Routes are taken whatever their driving score unless `require_perfect_score`."""
    garage_roots, navsim_roots = find_layouts(data_dir)
    datasets = []
    if garage_roots:
        from min2real.data.carla_garage import CarlaGarageDataset

        datasets.append(CarlaGarageDataset(garage_roots, contract, require_perfect_score=require_perfect_score))
    for navsim_root, splits in navsim_roots:
        from min2real.data.navsim import NavsimDataset

        wanted = [real_split] if real_split else splits
        for split in wanted:
            if split not in splits:
                raise EvaluationError(
                    f"NAVSIM split {split!r} not found under {navsim_root}/navsim_logs; found {splits}"
                )
            datasets.append(NavsimDataset(navsim_root, split, contract, camera=navsim_camera))
    samples = ConcatSamples(datasets)
    if len(samples) == 0:
        raise EvaluationError(
            f"no samples under {data_dir}: expected CARLA Garage route folders (<root>/<scenario>/<route>/measurements) "
            "and/or an OpenScene/NAVSIM root (navsim_logs/<split>/ + sensor_blobs/)"
        )
    return samples
