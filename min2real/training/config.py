"""Training configuration: one YAML file per run, five sections.

```yaml
model:     # variant name + optional overrides of ModelConfig fields
  variant: min2real          # see min2real.models.variants.VARIANTS
  tiny: false                # true = the variant's tiny random-init network (CPU smoke runs, tests)
  dinov2_weights: official   # any other ModelConfig field overrides the variant's preset
contract: tiny               # omit = default contract; "tiny" = TINY_CONTRACT; or a mapping of Contract fields
data:      {...}             # min2real.data.config.DataSection (dataset roots, splits, scene filters, sim:real mix)
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

from min2real.data.config import DataSection

SECTIONS = ("model", "contract", "data", "train", "loss")


class ConfigError(ValueError):
    """The training configuration is invalid (the message names the key and what was expected)."""


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
    # channels-last memory layout for the model's convolutions and the image batch (the V2R adapter
    # is conv-heavy; on the 2-core CPU of docs/performance.md it trains faster, same result)
    channels_last: bool = False
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
    # Probability that a sim sample's LiDAR BEV is zeroed in training, so the heads also learn from
    # the all-zero BEV that real samples (and the NAVSIM agent) carry. 0 = off.
    lidar_dropout: float = 0.0
    # Which validation domain's ADE picks checkpoints/best.pt: "auto" = the variant family's rule
    # (docs/training.md): {S} variants (no real driving labels) select on sim, {S, R} variants on
    # real (held-out trainval logs); "sim" / "real" force one.
    select_on: str = "auto"
    # Start the network's weights from this min2real checkpoint (e.g. the previous DAgger round's
    # checkpoints/best.pt); the optimizer, schedule and step count start fresh. "" = from scratch.
    init_checkpoint: str = ""
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
        if not 0.0 <= self.lidar_dropout <= 1.0:
            raise ConfigError(f"train.lidar_dropout={self.lidar_dropout}; expected a probability in [0, 1]")
        if self.select_on not in ("auto", "sim", "real"):
            raise ConfigError(f"train.select_on={self.select_on!r}; expected 'auto', 'sim' or 'real'")


@dataclass
class LossSection:
    """Loss weights and options (min2real.training.losses).

    total = waypoint_l1 * L1 (turn samples weigh turn_weight; normalised by the weight sum)
          + steer_ce * CE (class-balanced per batch, optionally focal)
          + domain_bce * BCE (reaches the adapter reversed through the GRL)
          + adapter_identity * mean |adapter(sim image) - resized sim image| ("minimal" transfer)
          + target_speed_ce * CE of the target-speed head (models with it; samples with a label)
    """

    waypoint_l1: float = 1.0
    turn_weight: float = 1.0  # weight of samples whose ground truth turns (approach, middle, exit); 1 = off
    turn_min_heading_deg: float = 10.0  # a trajectory segment this far off the current heading makes a turn sample
    steer_ce: float = 0.5
    steer_class_balance: str = "batch"  # "batch": each class present in the batch weighs the same; "none"
    steer_focal_gamma: float = 0.0  # > 0: focal loss (1 - p_true)^gamma * CE
    domain_bce: float = 0.5  # discriminator BCE; reaches the adapter reversed through the GRL
    adapter_identity: float = 0.0  # penalty on the V2R adapter's distance to its (resized) input
    target_speed_ce: float = 1.0  # CARLA Garage's loss_target_speed weight; only with model.use_target_speed_head

    def validate(self) -> None:
        from min2real.training.losses import STEER_CLASS_BALANCE

        for name in (
            "waypoint_l1",
            "steer_ce",
            "steer_focal_gamma",
            "domain_bce",
            "adapter_identity",
            "target_speed_ce",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name}={getattr(self, name)}; expected >= 0")
        if self.turn_weight <= 0:
            raise ConfigError(f"loss.turn_weight={self.turn_weight}; expected > 0 (1 = no turn weighting)")
        if not 0.0 < self.turn_min_heading_deg < 90.0:
            raise ConfigError(f"loss.turn_min_heading_deg={self.turn_min_heading_deg}; expected degrees in (0, 90)")
        if self.steer_class_balance not in STEER_CLASS_BALANCE:
            raise ConfigError(
                f"loss.steer_class_balance={self.steer_class_balance!r}; expected one of {STEER_CLASS_BALANCE}"
            )


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
    try:
        section.validate()
    except ConfigError:
        raise
    except ValueError as error:  # DataSection raises DataConfigError (a ValueError) from min2real.data
        raise ConfigError(str(error)) from error
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
        selected = config.selection_domain()
        roots = config.data.val_real_roots if selected == "real" else config.data.val_sim_roots
        if config.train.select_on != "auto" and not roots:
            raise ConfigError(
                f"train.select_on={selected!r} but data.val_{selected}_roots is empty; nothing would select best.pt"
            )
        if selected == "real" and not config.data.real_driving_labels:
            raise ConfigError(
                "train.select_on='real' for a variant trained without real driving labels ({S}): selecting its "
                "checkpoint on real labels would use them after all; select on sim"
            )
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

    def selection_domain(self) -> str:
        """The validation domain whose ADE picks checkpoints/best.pt (train.select_on; "auto": real for
        {S, R} variants validated on real data, sim otherwise: an {S} variant never uses real labels)."""
        if self.train.select_on != "auto":
            return self.train.select_on
        return "real" if self.data.real_driving_labels and self.data.val_real_roots else "sim"

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
