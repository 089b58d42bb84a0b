"""The stand-in foundation model: a small ViT (timm's DINOv2 class) pretrained self-supervised,
by masked auto-encoding (MAE, He et al. 2022), on unlabelled *real-look* synthetic images only.

The paper's premise is a frozen extractor pretrained on real images (DINOv2). Without hub access
the next honest thing is an extractor that has seen the target ("real") domain and nothing else:
no sim image and no label ever reaches it. Its data come from drive seeds reserved for it
(`min2real.data.common.EXTRACTOR_SEEDS`; `min2real data synth` refuses them), so no training or evaluation
set shares a route or a frame with it.

    images (real look, seeds >= PRETRAIN_SEED_BASE) -> contract crop -> DINOv2 input size
      -> mask 75 % of the patches -> ViT encoder (kept) -> light decoder (dropped) -> pixels of the
         masked patches (per-patch normalised, MSE)

The linear probe then measures what the frozen features hold: a multinomial logistic regression
on standardised [CLS, mean patch token] features (the extractor's output in the model) predicts
the steering class of labelled real-look frames from *other* reserved seeds (train / test drives
disjoint). The same probe on a random-init ViT of the same shape is the reference.

The encoder is saved as a timm state dict (safetensors), loadable in the DINOv2 slot with
`dinov2_weights: timm_file`, `dinov2_checkpoint: <file>` and `dinov2_overrides: <its shape>`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from min2real import contract as C
from min2real.data.common import EXTRACTOR_SEEDS

# The stand-in extractor's drive seeds (pretraining, then probe drives) lie in EXTRACTOR_SEEDS, which
# `min2real data synth` refuses, so training and evaluation data never share a drive with them.
PRETRAIN_SEED_BASE = EXTRACTOR_SEEDS.start
PROBE_SEED_BASE = PRETRAIN_SEED_BASE + 500_000
# Rendered real-look image size (width, height): the tests' and the experiment's NAVSIM-layout size.
PRETRAIN_IMAGE_SIZE = (320, 180)


@dataclass
class PretrainConfig:
    """Everything `pretrain` needs; recorded in the model card."""

    embed_dim: int = 96
    depth: int = 4
    num_heads: int = 3
    decoder_dim: int = 64
    decoder_depth: int = 2
    decoder_heads: int = 4
    mask_ratio: float = 0.75
    drives: int = 96  # pretraining drives (seeds PRETRAIN_SEED_BASE + 0 .. drives - 1)
    frames_per_drive: int = 40  # real-look frames per drive, at `rate_hz`
    rate_hz: float = 2.0  # NAVSIM's rate
    probe_drives: int = 48  # labelled probe drives (half fit the probe, half test it)
    probe_frames_per_drive: int = 48
    steps: int = 2400
    batch_size: int = 128
    lr: float = 1.5e-3
    weight_decay: float = 0.05
    warmup_steps: int = 150
    seed: int = 0
    num_threads: int = 1  # CPU threads; 1 is the fastest on a shared machine, 0 = torch's default
    contract: str = "tiny"  # the DINOv2 input size comes from this contract ("tiny" | "default")

    @classmethod
    def from_overrides(cls, overrides: list[str]) -> PretrainConfig:
        """The defaults with `key=value` overrides (values parsed as YAML), e.g. ["steps=50", "drives=4"]."""
        import yaml

        known = {item.name: item for item in dataclasses.fields(cls)}
        values = {}
        for text in overrides:
            key, sep, raw = text.partition("=")
            if not sep or key not in known:
                raise ValueError(f"pretrain override {text!r}; expected key=value with key one of {sorted(known)}")
            value = yaml.safe_load(raw)
            default = getattr(cls(), key)
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not type(default):
                raise ValueError(f"pretrain override {text!r}; expected a {type(default).__name__}")
            values[key] = value
        return cls(**values)

    def validate(self) -> None:
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"pretrain mask_ratio={self.mask_ratio}; expected a fraction in (0, 1)")
        for name in ("embed_dim", "depth", "num_heads", "drives", "frames_per_drive", "steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"pretrain {name}={getattr(self, name)}; expected a positive integer")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"pretrain embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}")
        if self.probe_drives < 2:
            raise ValueError(f"pretrain probe_drives={self.probe_drives}; expected >= 2 (fit and test drives)")
        if self.contract not in ("tiny", "default"):
            raise ValueError(f"pretrain contract={self.contract!r}; expected 'tiny' or 'default'")

    @property
    def vit_overrides(self) -> dict:
        """The `dinov2_overrides` that rebuild this encoder in the DINOv2 slot."""
        return {"embed_dim": self.embed_dim, "depth": self.depth, "num_heads": self.num_heads}

    def build_contract(self) -> C.Contract:
        return C.TINY_CONTRACT if self.contract == "tiny" else C.DEFAULT_CONTRACT


# ---- data ---------------------------------------------------------------------------------------
def render_real_images(
    seeds: list[tuple[int, ...]],
    frames_per_drive: int,
    rate_hz: float,
    contract: C.Contract,
    image_size: tuple[int, int] = PRETRAIN_IMAGE_SIZE,
    with_labels: bool = False,
) -> tuple[torch.Tensor, dict | None]:
    """Real-look frames of the given drives as DINOv2 input: (N, 3, dino_h, dino_w) uint8 RGB, the
    contract's camera crop resized as the graph resizes a real image (bilinear). With
    `with_labels`, also {"steer_class": (N,) int64, "command": (N,) int64 contract command index}
    (probe data only; pretraining never asks)."""
    from min2real.data.synthetic import SyntheticDrive
    from min2real.models.adapter import resize_to

    images, labels, commands = [], [], []
    for index, seed in enumerate(seeds):
        drive = SyntheticDrive(
            seed, frames_per_drive / rate_hz, "real", image_size, contract, first_turn=("left", "right")[index % 2]
        )
        for frame_index in range(frames_per_drive):
            frame = drive.frame(frame_index, rate_hz)
            images.append(C.prepare_camera_rgb(frame.image_rgb, contract).transpose(2, 0, 1))
            labels.append(frame.steer_class)
            commands.append(frame.command)
    camera = torch.from_numpy(np.stack(images)).float()
    dino = resize_to(camera, contract.dino_height, contract.dino_width).round().clamp(0, 255).to(torch.uint8)
    if not with_labels:
        return dino, None
    return dino, {"steer_class": np.asarray(labels, dtype=np.int64), "command": np.asarray(commands, dtype=np.int64)}


def pretrain_seeds(config: PretrainConfig) -> list[tuple[int, ...]]:
    return [(PRETRAIN_SEED_BASE + k,) for k in range(config.drives)]


def probe_seeds(config: PretrainConfig) -> list[tuple[int, ...]]:
    return [(PROBE_SEED_BASE + k,) for k in range(config.probe_drives)]


def normalise(images_uint8: torch.Tensor, contract: C.Contract) -> torch.Tensor:
    """(B, 3, H, W) uint8 RGB -> float normalised with the contract's mean/std (the model's first op)."""
    mean = torch.tensor(contract.mean_rgb).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(contract.std_rgb).view(1, 3, 1, 1) * 255.0
    return (images_uint8.float() - mean) / std


# ---- the masked auto-encoder -------------------------------------------------------------------
def create_vit(config: PretrainConfig, contract: C.Contract) -> nn.Module:
    """The encoder exactly as the DINOv2 slot builds it (`create_dinov2` with these overrides)."""
    from min2real.models.config import ModelConfig
    from min2real.models.dinov2 import create_dinov2

    vit, _ = create_dinov2(ModelConfig(dinov2_overrides=config.vit_overrides), contract)
    return vit


class MaskedAutoencoder(nn.Module):
    """MAE around a timm ViT: the encoder sees the CLS token and the kept patches (with their
    position embeddings); the decoder fills in mask tokens and predicts every patch's pixels."""

    def __init__(self, vit: nn.Module, config: PretrainConfig) -> None:
        super().__init__()
        from timm.models.vision_transformer import Block

        self.vit = vit
        self.mask_ratio = config.mask_ratio
        self.patch = int(vit.patch_embed.patch_size[0])
        self.grid = tuple(vit.patch_embed.grid_size)
        num_patches = self.grid[0] * self.grid[1]
        self.decoder_embed = nn.Linear(vit.embed_dim, config.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.decoder_dim))
        self.decoder_pos = nn.Parameter(torch.zeros(1, 1 + num_patches, config.decoder_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        nn.init.trunc_normal_(self.decoder_pos, std=0.02)
        self.decoder = nn.Sequential(
            *[
                Block(config.decoder_dim, config.decoder_heads, mlp_ratio=4.0, qkv_bias=True)
                for _ in range(config.decoder_depth)
            ]
        )
        self.decoder_norm = nn.LayerNorm(config.decoder_dim)
        self.decoder_pred = nn.Linear(config.decoder_dim, self.patch * self.patch * 3)

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, N, patch * patch * 3), patches row-major."""
        b, c, h, w = images.shape
        p = self.patch
        x = images.reshape(b, c, h // p, p, w // p, p)
        return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)

    def forward(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Normalised images (B, 3, H, W) -> the MAE loss (mean over masked patches)."""
        vit = self.vit
        tokens = vit.patch_embed(images) + vit.pos_embed[:, 1:]  # (B, N, E)
        batch, num_patches, dim = tokens.shape
        keep = max(1, round(num_patches * (1.0 - self.mask_ratio)))
        noise = torch.rand(batch, num_patches, generator=generator)
        shuffle = noise.argsort(dim=1)
        restore = shuffle.argsort(dim=1)
        kept = tokens.gather(1, shuffle[:, :keep, None].expand(-1, -1, dim))
        cls = (vit.cls_token + vit.pos_embed[:, :1]).expand(batch, -1, -1)
        encoded = vit.norm(vit.blocks(vit.norm_pre(torch.cat([cls, kept], dim=1))))

        decoded = self.decoder_embed(encoded)
        masks = self.mask_token.expand(batch, num_patches - keep, -1)
        patches = torch.cat([decoded[:, 1:], masks], dim=1)
        patches = patches.gather(1, restore[:, :, None].expand(-1, -1, patches.shape[-1]))
        decoded = torch.cat([decoded[:, :1], patches], dim=1) + self.decoder_pos
        predicted = self.decoder_pred(self.decoder_norm(self.decoder(decoded)))[:, 1:]

        target = self.patchify(images)
        target = (target - target.mean(dim=-1, keepdim=True)) / (target.var(dim=-1, keepdim=True) + 1e-6).sqrt()
        masked = torch.ones(batch, num_patches)
        masked[:, :keep] = 0.0
        masked = masked.gather(1, restore)
        per_patch = ((predicted - target) ** 2).mean(dim=-1)
        return (per_patch * masked).sum() / masked.sum()


# ---- the linear probe --------------------------------------------------------------------------
@torch.no_grad()
def extractor_features(
    vit: nn.Module, images_uint8: torch.Tensor, contract: C.Contract, batch: int = 256
) -> torch.Tensor:
    """(N, 3, h, w) uint8 DINOv2 input -> (N, 2E) [CLS, mean patch token], as DinoV2Extractor gives."""
    from min2real.models.dinov2 import DinoV2Extractor

    extractor = DinoV2Extractor(vit, "probe")
    chunks = [
        extractor(normalise(images_uint8[i : i + batch], contract))[1] for i in range(0, len(images_uint8), batch)
    ]
    return torch.cat(chunks)


def linear_probe(
    train_features: torch.Tensor,
    train_labels: np.ndarray,
    test_features: torch.Tensor,
    test_labels: np.ndarray,
    weight_decay: float = 1e-2,
    steps: int = 300,
) -> dict:
    """Multinomial logistic regression on standardised features (class-balanced loss, L2 penalty,
    `min2real.evaluation.domain_gap.fit_linear_classifier`) fitted on the train set; balanced
    accuracy, macro-F1 and accuracy on the test set."""
    from min2real.evaluation.domain_gap import fit_linear_classifier
    from min2real.evaluation.metrics import steering_classification_metrics

    predict = fit_linear_classifier(train_features, train_labels, len(C.STEER_CLASSES), weight_decay, steps)
    result = steering_classification_metrics(predict(test_features), test_labels)
    result["train_balanced_accuracy"] = steering_classification_metrics(predict(train_features), train_labels)[
        "balanced_accuracy"
    ]
    return result


def _command_one_hot(commands: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.eye(len(C.COMMANDS), dtype=np.float32)[commands])


def probe_report(vit: nn.Module | None, probe: dict, contract: C.Contract) -> dict:
    """The probe on `vit`'s frozen features, fitted on the probe's first half of drives and tested on
    the rest: "features" alone and "features_command" with the driving command's one-hot appended
    (at a junction only the route says which way it goes; the image says where the road bends and
    where the junction is). vit None: the command alone (what the image adds is the difference)."""
    fit, test = probe["fit"], probe["test"]
    fit_command, test_command = _command_one_hot(fit["command"]), _command_one_hot(test["command"])
    if vit is None:
        return {"command": linear_probe(fit_command, fit["steer_class"], test_command, test["steer_class"])}
    fit_features = extractor_features(vit, fit["images"], contract)
    test_features = extractor_features(vit, test["images"], contract)
    return {
        "features": linear_probe(fit_features, fit["steer_class"], test_features, test["steer_class"]),
        "features_command": linear_probe(
            torch.cat([fit_features, fit_command], dim=1),
            fit["steer_class"],
            torch.cat([test_features, test_command], dim=1),
            test["steer_class"],
        ),
    }


def probe_data(config: PretrainConfig, contract: C.Contract) -> dict:
    """Labelled real-look frames of the probe drives: {"fit": {...}, "test": {...}}, each with
    images (N, 3, h, w) uint8, steer_class (N,) and command (N,); fit and test drives disjoint."""
    seeds = probe_seeds(config)
    half = len(seeds) // 2
    parts = {}
    for name, part in (("fit", seeds[:half]), ("test", seeds[half:])):
        images, labels = render_real_images(
            part, config.probe_frames_per_drive, config.rate_hz, contract, with_labels=True
        )
        parts[name] = {"images": images, **labels}
    return parts


# ---- the run -----------------------------------------------------------------------------------
@dataclass
class PretrainResult:
    weights_path: Path
    sha256: str
    probe: dict  # {"stand_in": {...}, "random_init": {...}}
    losses: list = field(default_factory=list)  # (step, loss) every log interval
    seconds: float = 0.0


def lr_at(step: int, config: PretrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def pretrain(config: PretrainConfig, out_dir: str | Path, log=print, log_interval: int = 100) -> PretrainResult:
    """Render the reserved real-look drives, train the MAE for `config.steps` steps, save the encoder
    (OUT/<name>.safetensors), probe it against a random-init ViT and write the card data
    (OUT/pretrain.json). Deterministic for a given config on one machine (CPU)."""
    from safetensors.torch import save as safetensors_bytes

    from min2real.files import atomic_write_bytes, file_sha256

    config.validate()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    contract = config.build_contract()
    started, cpu_started = time.perf_counter(), time.process_time()

    log(
        f"pretrain: rendering {config.drives} x {config.frames_per_drive} real-look frames (seeds from {PRETRAIN_SEED_BASE})"
    )
    images, _ = render_real_images(pretrain_seeds(config), config.frames_per_drive, config.rate_hz, contract)
    log(f"pretrain: {len(images)} images {tuple(images.shape[1:])} in {time.perf_counter() - started:.0f} s")

    torch.manual_seed(config.seed)
    vit = create_vit(config, contract)
    reference = create_vit(config, contract)  # same shape, same seed: the random-init probe reference
    reference.load_state_dict(vit.state_dict())
    model = MaskedAutoencoder(vit, config)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.95),
    )
    generator = torch.Generator().manual_seed(config.seed)
    losses: list = []
    running = 0.0
    model.train()
    for step in range(config.steps):
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step, config)
        index = torch.randint(len(images), (config.batch_size,), generator=generator)
        batch = normalise(images[index], contract)
        flip = torch.rand(config.batch_size, generator=generator) < 0.5
        batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
        loss = model(batch, generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        running += float(loss.detach())
        if (step + 1) % log_interval == 0 or step + 1 == config.steps:
            count = (step % log_interval) + 1
            losses.append([step + 1, running / count])
            log(
                f"pretrain: step {step + 1}/{config.steps} loss {running / count:.4f} ({time.perf_counter() - started:.0f} s)"
            )
            running = 0.0
    vit.eval()

    weights_path = out_dir / f"{stand_in_name(config)}.safetensors"
    state = {name: tensor.detach().contiguous() for name, tensor in vit.state_dict().items()}
    metadata = {"format": "timm", "recipe": json.dumps(dataclasses.asdict(config))}
    atomic_write_bytes(weights_path, safetensors_bytes(state, metadata=metadata))
    sha256 = file_sha256(weights_path)
    pretrain_seconds = time.perf_counter() - started

    log("pretrain: linear probe (steering class of held-out labelled real-look drives)")
    probe = probe_data(config, contract)
    report = {
        "stand_in": probe_report(vit, probe, contract),
        "random_init": probe_report(reference, probe, contract),
        "command_only": probe_report(None, probe, contract),
    }
    result = PretrainResult(weights_path, sha256, report, losses, pretrain_seconds)
    record = {
        "weights": weights_path.name,
        "sha256": sha256,
        "size_bytes": weights_path.stat().st_size,
        "config": dataclasses.asdict(config),
        "dinov2_overrides": config.vit_overrides,
        "contract": contract.to_dict(),
        "pretrain_seeds": [PRETRAIN_SEED_BASE, PRETRAIN_SEED_BASE + config.drives - 1],
        "probe_seeds": [PROBE_SEED_BASE, PROBE_SEED_BASE + config.probe_drives - 1],
        "probe_samples": {name: len(part["steer_class"]) for name, part in probe.items()},
        "probe_label_counts": {
            name: np.bincount(part["steer_class"], minlength=len(C.STEER_CLASSES)).tolist()
            for name, part in probe.items()
        },
        "probe": report,
        "losses": losses,
        "pretrain_seconds": round(pretrain_seconds, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),  # rendering, pretraining and the probe
        "torch": torch.__version__,
    }
    (out_dir / "pretrain.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return result


def stand_in_name(config: PretrainConfig) -> str:
    return f"vit_d{config.embed_dim}x{config.depth}_mae_real_look"


def write_card(out_dir: Path, command: str) -> Path:
    """OUT/README.md from OUT/pretrain.json: recipe, data seeds, sha256, the probe numbers, use."""
    record = json.loads((out_dir / "pretrain.json").read_text(encoding="utf-8"))
    config = record["config"]
    probe = record["probe"]

    def row(name: str, values: dict) -> str:
        f1 = values["f1"]
        return (
            f"| {name} | {values['balanced_accuracy']:.3f} | {values['macro_f1']:.3f} | {values['accuracy']:.3f} | "
            f"{' / '.join('-' if f1[k] is None else f'{f1[k]:.2f}' for k in C.STEER_CLASSES)} | "
            f"{values['train_balanced_accuracy']:.3f} |"
        )

    overrides = ", ".join(f"{k}: {v}" for k, v in record["dinov2_overrides"].items())
    lines = [
        "# The stand-in foundation model",
        "",
        f"`{record['weights']}`: a small ViT in timm's DINOv2 class (patch 14, {config['embed_dim']} dims, "
        f"{config['depth']} blocks, {config['num_heads']} heads, LayerScale), pretrained **self-supervised** by "
        "masked auto-encoding on **unlabelled real-look** synthetic images only: no sim image and no label "
        "ever reached it. It stands in for DINOv2 (pretrained on real images: the paper's premise) where no "
        "model hub is reachable, and is frozen in the DINOv2 slot like DINOv2.",
        "",
        "| field | value |",
        "| --- | --- |",
        f"| file | `{record['weights']}`, {record['size_bytes'] / 1e6:.2f} MB, sha256 `{record['sha256']}` |",
        f"| architecture | `vit_small_patch14_dinov2` with `dinov2_overrides: {{{overrides}}}` |",
        f"| input | {record['contract']['dino_height']} x {record['contract']['dino_width']} "
        "(TINY_CONTRACT's DINOv2 input; timm resamples the position embedding for other sizes) |",
        f"| pretraining data | {config['drives']} real-look drives x {config['frames_per_drive']} frames at "
        f"{config['rate_hz']:g} Hz, rendered at {PRETRAIN_IMAGE_SIZE[0]} x {PRETRAIN_IMAGE_SIZE[1]}, drive seeds "
        f"({record['pretrain_seeds'][0]},) .. ({record['pretrain_seeds'][1]},) |",
        f"| recipe | MAE, mask ratio {config['mask_ratio']}, decoder {config['decoder_depth']} blocks x "
        f"{config['decoder_dim']} dims, per-patch normalised pixel MSE, {config['steps']} AdamW steps of "
        f"{config['batch_size']} images, lr {config['lr']:g} (warm-up {config['warmup_steps']}, cosine), "
        f"weight decay {config['weight_decay']}, random horizontal flips, seed {config['seed']} |",
        f"| MAE loss | {record['losses'][0][1]:.3f} at step {record['losses'][0][0]} -> {record['losses'][-1][1]:.3f} "
        f"at step {record['losses'][-1][0]} |",
        f"| made in | {record['cpu_seconds'] / 60:.1f} min of CPU time (rendering, pretraining and the probe; "
        f"{record['pretrain_seconds'] / 60:.1f} min of wall time for rendering + pretraining on a shared 2-core "
        f"machine, {record['config']['num_threads']} thread, torch {record['torch']}) |",
        "",
        "## Linear probe",
        "",
        "Frozen features ([CLS, mean patch token], what the model's heads get), standardised; multinomial "
        "logistic regression (class-balanced, L2 1e-2, L-BFGS) predicting the steering class (the contract's rule "
        "on the future trajectory) of labelled real-look frames: fitted on "
        f"{record['probe_samples']['fit']} frames of probe drives, tested on {record['probe_samples']['test']} "
        f"frames of other probe drives (seeds ({record['probe_seeds'][0]},) .. ({record['probe_seeds'][1]},); "
        f"test labels straight / left / right {record['probe_label_counts']['test']}). From the image alone a "
        "junction's direction is unknowable (the route decides it), so the probe is also run with the driving "
        "command's one-hot appended, and on the command alone. The random-init rows are the same architecture "
        "before pretraining (same seed, LayerScale 1.0).",
        "",
        "| probe input | balanced accuracy | macro-F1 | accuracy | F1 straight / left / right | fit balanced accuracy |",
        "| --- | --- | --- | --- | --- | --- |",
        row("stand-in features", probe["stand_in"]["features"]),
        row("stand-in features + command", probe["stand_in"]["features_command"]),
        row("random-init features", probe["random_init"]["features"]),
        row("random-init features + command", probe["random_init"]["features_command"]),
        row("command alone", probe["command_only"]["command"]),
        "",
        "## Use",
        "",
        "```yaml",
        "model:",
        "  dinov2_weights: timm_file",
        f"  dinov2_checkpoint: models/extractor/{record['weights']}",
        f"  dinov2_overrides: {{{overrides}}}",
        "```",
        "",
        "(`min2real.models.variants.STAND_IN_EXTRACTOR`; training/tiny.yaml and training/bundled.yaml use it.)",
        "",
        "## Reproduce",
        "",
        "```bash",
        command,
        "```",
        "",
        "Deterministic for a given machine and torch version; another CPU gives slightly different weights. "
        f"Drive seeds {EXTRACTOR_SEEDS.start} .. {EXTRACTOR_SEEDS.stop - 1} are reserved for this model: `min2real data synth` "
        "refuses them, so no training or evaluation set shares a drive with the extractor's data.",
        "",
        "## Limits",
        "",
        "A few minutes of CPU pretraining on a synthetic world is not DINOv2: the features know the real-look "
        "renderer's roads, objects and textures, nothing of real cameras. It makes the synthetic experiment "
        "honour the premise (an extractor that has seen the target domain, unlabelled), nothing more.",
        "",
    ]
    path = out_dir / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
