"""Training recipes: the YAML files in the repository's `training/` folder are the one source of
every variant's training settings (Table I, the Fig. 6 ablations, the bundled model's recipe).

    config = load_recipe("min2real", ["model.dinov2_checkpoint=/data/dinov2_vits14_pretrain.pth"])
    config = load_recipe("full", miniature_overrides(train_roots, val_roots, steps=150))

`miniature_overrides` turns a full-size recipe into its CPU miniature on synthetic data without
touching its training logic (losses, noise, real labels, LiDAR dropout stay the recipe's): the
variant's tiny network at TINY_CONTRACT, the stand-in extractor in the DINOv2 slot, no hub
downloads, synthetic roots, scene filters off (the synthetic validation drives are other seeds),
and a fixed budget. The experiment scripts (training/experiment_*.py) use exactly this.
"""

from __future__ import annotations

from pathlib import Path

from min2real.training.config import TrainConfig

TABLE_I_RECIPES = ("baseline", "augment", "min2real", "mixdata", "mix_min2real", "full")
ABLATION_RECIPES = (
    "ablation_augment",
    "ablation_adapter",
    "ablation_discriminator",
    "ablation_steer_head",
    "ablation_extractor",
)
# Named recipes beyond the paper's: the turn-weighted Min2Real and the bundled model's recipe.
OTHER_RECIPES = ("min2real_turns", "bundled")


def recipes_dir() -> Path:
    from min2real.paths import data_folder

    return data_folder("training")


def recipe_path(name: str) -> Path:
    path = recipes_dir() / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in recipes_dir().glob("*.yaml"))
        raise FileNotFoundError(f"training recipe {name!r} does not exist ({path}); recipes: {known}")
    return path


def load_recipe(name: str, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """training/<name>.yaml with `--set`-style overrides applied."""
    return TrainConfig.load(recipe_path(name), overrides)


def miniature_overrides(
    train_roots: dict[str, Path | str],
    val_roots: dict[str, Path | str],
    steps: int,
    batch_size: int = 16,
    seed: int = 0,
    lr: float = 2e-3,
    extractor_file: str | Path | None = None,
    recipe: str | None = None,
) -> list[str]:
    """Overrides that shrink a recipe to a CPU miniature on synthetic data.

    train_roots / val_roots: {"sim": <carla folder>, "real": <navsim folder>}. The real training
    root is set only when the recipe reads real data (sim-only recipes stay sim only).
    extractor_file: the stand-in extractor (default: the shipped one, resolved from the checkout).
    """
    from min2real.models.variants import STAND_IN_EXTRACTOR, STAND_IN_EXTRACTOR_FILE

    extractor = Path(extractor_file) if extractor_file else _repository_file(STAND_IN_EXTRACTOR_FILE)
    overrides = [
        "model.tiny=true",
        "contract=tiny",
        "model.resnet_pretrained=false",
        f"data.sim_roots=[{train_roots['sim']}]",
        f"data.val_sim_roots=[{val_roots['sim']}]",
        f"data.val_real_roots=[{val_roots['real']}]",
        "data.real_split=trainval",
        "data.val_real_split=trainval",
        "data.real_scene_filter=''",
        "data.val_real_scene_filter=''",
        "data.sim_skip_first_s=0.0",  # synthetic routes are whole from frame 0 (Garage's first LiDAR sweeps are not)
        f"train.max_steps={steps}",
        "train.epochs=100000",
        f"train.batch_size={batch_size}",
        f"train.lr={lr}",
        f"train.seed={seed}",
        f"train.warmup_steps={max(1, steps // 12)}",
        "train.amp=false",
        "train.device=cpu",
        "train.num_workers=0",
        "train.deterministic=true",
        "train.val_at_start=true",
        f"train.val_interval={steps}",
        f"train.checkpoint_interval={steps}",
        "train.log_interval=25",
        "train.progress_bar=false",
    ]
    if recipe is not None:
        source = load_recipe(recipe, ["model.dinov2_weights=none", "model.resnet_pretrained=false"])
        if source.data.real_roots:
            overrides.append(f"data.real_roots=[{train_roots['real']}]")
        if source.model_config().image_backbone == "dinov2":
            overrides += [
                f"model.dinov2_weights={STAND_IN_EXTRACTOR['dinov2_weights']}",
                f"model.dinov2_checkpoint={extractor}",
                "model.dinov2_overrides={"
                + ", ".join(f"{k}: {v}" for k, v in STAND_IN_EXTRACTOR["dinov2_overrides"].items())
                + "}",
            ]
    return overrides


def load_miniature(name: str, train_roots: dict, val_roots: dict, steps: int, **options) -> TrainConfig:
    """The recipe `name` as a CPU miniature (see `miniature_overrides`)."""
    extra = list(options.pop("overrides", ()))
    overrides = miniature_overrides(train_roots, val_roots, steps, recipe=name, **options)
    # The recipe may name official DINOv2 weights; the miniature replaces them before validation.
    return load_recipe(name, ["model.dinov2_weights=none", *overrides, *extra])


def _repository_file(relative: str) -> Path:
    """A file named relative to the repository root (a checkout) or the installed share folder."""
    from min2real.paths import data_folder

    top, _, rest = relative.partition("/")
    return data_folder(top) / rest
