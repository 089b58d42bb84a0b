"""min2real.training: noise augmentation, losses, the trainer (torchrun / DDP) and checkpoints.

Recipes (which variant, which data, which losses) are YAML files in the repository's
`training/` folder; `min2real.training.config` reads them.
"""
