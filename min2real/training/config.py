"""Training configuration: one YAML file per run, five sections.

```yaml
model:     # variant name + optional overrides of ModelConfig fields
  variant: min2real          # see min2real.models.variants.VARIANTS
  tiny: false                # true = the variant's tiny random-init network (CPU smoke runs, tests)
  dinov2_weights: official   # any other ModelConfig field overrides the variant's preset
contract: tiny               # omit = default contract; "tiny" = TINY_CONTRACT; or a mapping of Contract fields
data:      {...}             # DataSection below (dataset roots, sim:real mix)
train:     {...}             # TrainSection below (optimiser, schedule, intervals, augmentation)
loss:      {...}             # LossSection below (loss weights)
```

`--set a.b=value` overrides any key; the value is parsed as YAML (`--set train.lr=3e-4`,
`--set data.sim_roots=[out/synth/sim]`, `--set model.use_lidar=false`). Unknown keys are
errors that name the key and list the known ones: a typo never silently trains the wrong thing.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SECTIONS = ("model", "contract", "data", "train", "loss")


class ConfigError(ValueError):
    """The training configuration is invalid (the message names the key and what was expected)."""


@dataclass
class DataSection:
    """Where samples come from (keys as in `min2real.data`). Paths are relative to the
    working directory unless absolute.

    sim_roots: CARLA Garage folders (routes, scenarios or whole trees) or synthetic `carla/` folders.
    real_roots: OpenScene/NAVSIM roots (each with navsim_logs/ and sensor_blobs/) or synthetic `navsim/` folders.
    real_split: NAVSIM split folder under navsim_logs/ and sensor_blobs/ (e.g. "trainval", "mini").
    sim_real_ratio: sim:real draws per epoch when both are present (1.0 = equal, .inf = sim only, 0 = real only).
    real_driving_labels: true = real samples also train the driving heads ("mix" variants);
        false = real images only feed the domain discriminator (sim-supervised Min2Real).
    use_real_lidar: false = real samples carry an all-zero BEV, as in the paper.
    real_camera: "front" (CAM_F0) or "stitch" (NAVSIM TransFuser's left/front/right panorama).
    real_target_point: "straight_ahead" (the contract's no-route point, what a NAVSIM agent gets) or
        "future_path" (the logged path 30 m ahead: route-like, but it reveals where the ego went).
    require_perfect_score / skip_crashed_routes: CARLA Garage route filters (score_composed 100, results file present).
    samples_per_epoch: draws per epoch (all ranks together); 0 = the training set's size.
    val_sim_roots / val_real_roots: held-out data, validated per domain, always with driving labels.
    val_real_split: NAVSIM split of val_real_roots; "" = real_split.
    """

    sim_roots: list = field(default_factory=list)
    real_roots: list = field(default_factory=list)
    real_split: str = "trainval"
    sim_real_ratio: float = 1.0
    real_driving_labels: bool = False
    use_real_lidar: bool = False
    real_camera: str = "front"
    real_target_point: str = "straight_ahead"
    require_perfect_score: bool = True
    skip_crashed_routes: bool = True
    samples_per_epoch: int = 0
    val_sim_roots: list = field(default_factory=list)
    val_real_roots: list = field(default_factory=list)
    val_real_split: str = ""

    def validate(self) -> None:
        for name in ("sim_roots", "real_roots", "val_sim_roots", "val_real_roots"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [value])
            elif not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ConfigError(f"data.{name}={value!r}; expected a list of directory paths")
        if not float(self.sim_real_ratio) >= 0.0:
            raise ConfigError(f"data.sim_real_ratio={self.sim_real_ratio}; expected a number >= 0 (.inf for sim only)")
        if self.real_camera not in ("front", "stitch"):
            raise ConfigError(f"data.real_camera={self.real_camera!r}; expected 'front' or 'stitch'")
        if self.real_target_point not in ("straight_ahead", "future_path"):
            raise ConfigError(
                f"data.real_target_point={self.real_target_point!r}; expected 'straight_ahead' or 'future_path'"
            )
        if self.samples_per_epoch < 0:
            raise ConfigError(f"data.samples_per_epoch={self.samples_per_epoch}; expected >= 0 (0 = dataset size)")

    def loader_options(self) -> dict:
        """The options `min2real.data.build_dataset` takes besides the roots."""
        return {
            "real_split": self.real_split,
            "real_driving_labels": self.real_driving_labels,
            "use_real_lidar": self.use_real_lidar,
            "real_camera": self.real_camera,
            "real_target_point": self.real_target_point,
            "require_perfect_score": self.require_perfect_score,
            "skip_crashed_routes": self.skip_crashed_routes,
        }


@dataclass
class TrainSection:
    """Optimisation and bookkeeping. Steps are optimiser steps (one global batch each)."""

    epochs: int = 30
    max_steps: int = 0  # > 0 stops after this many steps (and sets the schedule length)
    batch_size: int = 16  # per process (rank)
    val_batch_size: int = 32
    lr: float = 1.0e-4
    weight_decay: float = 0.01
    warmup_steps: int = 500
    min_lr_ratio: float = 0.01  # cosine decays to lr * min_lr_ratio
    grad_clip_norm: float = 1.0  # 0 disables clipping
    amp: bool = True  # mixed precision; only on CUDA
    amp_dtype: str = "bfloat16"  # "bfloat16" | "float16" (float16 uses a GradScaler)
    compile: bool = False  # torch.compile the model
    seed: int = 0
    deterministic: bool = False  # deterministic kernels (+ exact resume); slower on GPU
    num_threads: int = 0  # CPU intra-op threads per process; 0 = torch's default
    num_workers: int = 4
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    log_interval: int = 20  # steps between TensorBoard/progress logs
    val_interval: int = 0  # steps between validations; 0 = at the end of every epoch
    val_at_start: bool = False  # also validate the untrained model (step 0), the reference for later numbers
    checkpoint_interval: int = 0  # steps between checkpoints; 0 = at the end of every epoch
    progress_bar: bool = True
    noise_augmentation: bool = False  # Gaussian noise on 0..255 images, both domains (paper)
    noise_max_level: float = 100.0  # noise std ~ U[0, noise_max_level] per sample, in pixel units
    # DDP's search for parameters a step left unused; on automatically for models with the V2R adapter (a
    # batch without sim samples skips it) and for heads whose loss weight is 0
    # (trainer.needs_unused_parameter_search); this switch turns it on for any model.
    ddp_find_unused_parameters: bool = False

    def validate(self) -> None:
        positive = ("epochs", "batch_size", "val_batch_size", "log_interval")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name}={getattr(self, name)}; expected a positive integer")
        non_negative = (
            "max_steps",
            "warmup_steps",
            "num_threads",
            "num_workers",
            "val_interval",
            "checkpoint_interval",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name}={getattr(self, name)}; expected >= 0")
        if self.lr <= 0:
            raise ConfigError(f"train.lr={self.lr}; expected > 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"train.min_lr_ratio={self.min_lr_ratio}; expected a fraction in [0, 1]")
        if self.amp_dtype not in ("bfloat16", "float16"):
            raise ConfigError(f"train.amp_dtype={self.amp_dtype!r}; expected 'bfloat16' or 'float16'")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"train.device={self.device!r}; expected 'auto', 'cpu' or 'cuda'")
        if self.noise_max_level < 0:
            raise ConfigError(f"train.noise_max_level={self.noise_max_level}; expected >= 0 (pixel units on 0..255)")


@dataclass
class LossSection:
    """Loss weights. total = waypoint_l1 * L1(turn-weighted) + steer_ce * CE + domain_bce * BCE."""

    waypoint_l1: float = 1.0
    turn_weight: float = 1.0  # waypoint loss multiplier for samples whose ground truth turns; 1 = off
    steer_ce: float = 0.5
    domain_bce: float = 0.5  # discriminator BCE; reaches the adapter reversed through the GRL

    def validate(self) -> None:
        for item in dataclasses.fields(self):
            if getattr(self, item.name) < 0:
                raise ConfigError(f"loss.{item.name}={getattr(self, item.name)}; expected >= 0")
        if self.turn_weight <= 0:
            raise ConfigError(f"loss.turn_weight={self.turn_weight}; expected > 0 (1 = no turn weighting)")


def _section_from_dict(cls, data: Any, name: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config section {name!r} is {type(data).__name__}; expected a mapping")
    known = {item.name: item for item in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"config section {name!r} has unknown keys {unknown}; known keys: {sorted(known)}")
    values = {}
    for key, value in data.items():
        default = getattr(cls(), key)
        # YAML writes 1e-4 as a string without a dot in the mantissa; numbers given as ints are fine too.
        if isinstance(default, float) and isinstance(value, (int, str)) and not isinstance(value, bool):
            try:
                value = float(value)
            except ValueError as error:
                raise ConfigError(f"{name}.{key}={value!r}; expected a number") from error
        elif isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{name}.{key}={value!r}; expected true or false")
        elif (
            isinstance(default, int)
            and not isinstance(default, bool)
            and (isinstance(value, bool) or not isinstance(value, int))
        ):
            raise ConfigError(f"{name}.{key}={value!r}; expected an integer")
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"{name}.{key}={value!r}; expected a string")
        values[key] = value
    section = cls(**values)
    section.validate()
    return section


@dataclass
class TrainConfig:
    """A whole training run's configuration (see the module docstring for the YAML layout)."""

    model: dict = field(default_factory=lambda: {"variant": "min2real"})
    contract: Any = None  # None (default contract) | "tiny" | dict of Contract fields
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    loss: LossSection = field(default_factory=LossSection)

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"training config is {type(data).__name__}; expected a mapping with sections {SECTIONS}")
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"training config has unknown sections {unknown}; known sections: {list(SECTIONS)}")
        model = data.get("model") or {}
        if not isinstance(model, dict):
            raise ConfigError(f"config section 'model' is {type(model).__name__}; expected a mapping with 'variant'")
        config = cls(
            model=dict(model),
            contract=copy.deepcopy(data.get("contract")),
            data=_section_from_dict(DataSection, data.get("data"), "data"),
            train=_section_from_dict(TrainSection, data.get("train"), "train"),
            loss=_section_from_dict(LossSection, data.get("loss"), "loss"),
        )
        config.model_config()  # validates the model section (variant name, field names and values)
        config.build_contract()  # validates the contract section
        return config

    @classmethod
    def load(cls, path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
        """Read a YAML file and apply `--set key=value` overrides."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"training config {path} does not exist")
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream) or {}
        return cls.from_dict(apply_overrides(data, overrides))

    def to_dict(self) -> dict:
        return {
            "model": copy.deepcopy(self.model),
            "contract": copy.deepcopy(self.contract),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "loss": dataclasses.asdict(self.loss),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    # ---- derived objects -----------------------------------------------------------------------
    @property
    def variant(self) -> str:
        return str(self.model.get("variant", "min2real"))

    def model_config(self):
        """ModelConfig of the named variant with this config's overrides applied."""
        from min2real.models.config import ModelConfig
        from min2real.models.variants import VARIANTS, variant_config

        overrides = dict(self.model)
        variant = overrides.pop("variant", "min2real")
        tiny = overrides.pop("tiny", False)
        if variant not in VARIANTS:
            raise ConfigError(f"model.variant={variant!r} is not a known variant; expected one of {sorted(VARIANTS)}")
        if not isinstance(tiny, bool):
            raise ConfigError(f"model.tiny={tiny!r}; expected true or false")
        known = {item.name for item in dataclasses.fields(ModelConfig)} - {"variant"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(
                f"config section 'model' has unknown keys {unknown}; known keys: {sorted(known | {'variant', 'tiny'})}"
            )
        try:
            return variant_config(variant, tiny=tiny, **overrides)
        except (TypeError, ValueError) as error:
            hint = ""
            if "dinov2_checkpoint" in str(error):
                hint = " (pass --set model.dinov2_checkpoint=/path/to/dinov2_vits14_pretrain.pth)"
            raise ConfigError(f"model section {self.model!r} is invalid: {error}{hint}") from error

    def build_contract(self):
        """The Contract this run trains for."""
        from min2real.contract import DEFAULT_CONTRACT, TINY_CONTRACT, Contract, ContractError

        if self.contract is None or self.contract == "default":
            return DEFAULT_CONTRACT
        if self.contract == "tiny":
            return TINY_CONTRACT
        if isinstance(self.contract, dict):
            base = dict(self.contract)
            preset = base.pop("preset", "default")
            if preset not in ("default", "tiny"):
                raise ConfigError(f"contract.preset={preset!r}; expected 'default' or 'tiny'")
            values = (TINY_CONTRACT if preset == "tiny" else DEFAULT_CONTRACT).to_dict()
            values.update(base)
            try:
                return Contract.from_dict(values)
            except (ContractError, TypeError) as error:
                raise ConfigError(f"contract section is invalid: {error}") from error
        raise ConfigError(
            f"contract={self.contract!r}; expected omitted, 'tiny', 'default' or a mapping of Contract fields"
        )


# Training-side settings of the paper's Table I variants (the model side lives in
# min2real.models.variants). training/<variant>.yaml spell these out; the tiny config takes
# them as overrides: `--set model.variant=full` plus `paper_variant_overrides("full")`.
PAPER_VARIANT_TRAINING: dict[str, tuple[str, ...]] = {
    "baseline": ("train.noise_augmentation=false", "data.real_driving_labels=false"),
    "augment": ("train.noise_augmentation=true", "data.real_driving_labels=false"),
    "min2real": ("train.noise_augmentation=false", "data.real_driving_labels=false"),
    "mixdata": ("train.noise_augmentation=false", "data.real_driving_labels=true"),
    "mix_min2real": ("train.noise_augmentation=false", "data.real_driving_labels=true"),
    "full": ("train.noise_augmentation=true", "data.real_driving_labels=true"),
}
# Variants whose network has no domain discriminator and whose data has no real driving labels
# never look at real images in training (baseline, augment): they train on sim only.
SIM_ONLY_VARIANTS = ("baseline", "augment")


def paper_variant_overrides(variant: str) -> list[str]:
    """`--set` overrides that turn a config into the paper's `variant` (model + training side).

    baseline/augment also drop the real training roots (they train on sim only); the others keep
    them (min2real: unlabelled real images for the discriminator; mix*/full: real driving labels).
    """
    if variant not in PAPER_VARIANT_TRAINING:
        raise ConfigError(f"paper variant {variant!r} is unknown; expected one of {list(PAPER_VARIANT_TRAINING)}")
    overrides = [f"model.variant={variant}", *PAPER_VARIANT_TRAINING[variant]]
    if variant in SIM_ONLY_VARIANTS:
        overrides += ["data.real_roots=[]"]
    return overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.lr=3e-4' -> (['train', 'lr'], 0.0003). The value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} has no '='; expected key.path=value, e.g. train.lr=3e-4")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".")]
    if not path or any(not part for part in path):
        raise ConfigError(f"override {text!r} has an empty key part; expected section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({error})") from error
    if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string; people mean the number
        try:
            value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        except ValueError:
            pass
    return path, value


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Return a copy of the raw config mapping with `key.path=value` overrides applied.

    Setting a key under `contract` when the contract is a preset string ("tiny") turns it into a
    mapping on top of that preset, so `--set contract.num_waypoints=4` works with `contract: tiny`.
    Unknown keys are caught when the result is turned into a TrainConfig.
    """
    result = copy.deepcopy(data) if data else {}
    for text in overrides:
        path, value = parse_override(text)
        if path[0] not in SECTIONS:
            raise ConfigError(f"override {text!r}: unknown section {path[0]!r}; known sections: {list(SECTIONS)}")
        if path[0] == "contract" and len(path) > 1 and not isinstance(result.get("contract"), dict):
            preset = result.get("contract") or "default"
            result["contract"] = {"preset": preset}
        node = result
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is {child!r}, not a mapping")
            node = child
        node[path[-1]] = value
    return result
