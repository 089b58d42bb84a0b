"""min2real.training: datasets, augmentation, losses, trainer (DDP), export and evaluation."""
