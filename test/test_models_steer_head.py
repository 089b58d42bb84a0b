"""The steering head learns what it is given: LayerNorm-ed features (a frozen extractor's features
may vary by 1e-3 around a large offset), class-balanced cross-entropy (straight is most of any
drive), and the optional command conditioning. Measured as balanced accuracy on held-out draws."""

from __future__ import annotations

import torch
from torch import nn

from min2real.contract import COMMANDS, STEER_CLASSES
from min2real.evaluation.metrics import steering_classification_metrics
from min2real.models.heads import SteerHead
from min2real.training.losses import steer_ce_loss

DIM = 32


def _features(labels: torch.Tensor, generator: torch.Generator, separation: float, offset: float = 0.0, scale=1.0):
    """Gaussian features: class k shifts dimension 0 by +separation (left) / -separation (right)."""
    features = torch.randn(len(labels), DIM, generator=generator)
    features[:, 0] += separation * ((labels == 1).float() - (labels == 2).float())
    return offset + scale * features


def _labels(count: int, shares: tuple[float, float, float], generator: torch.Generator) -> torch.Tensor:
    return torch.multinomial(torch.tensor(shares), count, replacement=True, generator=generator)


def _train(head: nn.Module, features, labels, class_balance="batch", steps=300, lr=1e-2, command=None):
    optimiser = torch.optim.Adam(head.parameters(), lr=lr)
    command = torch.zeros(len(labels), len(COMMANDS)) if command is None else command
    target_point = torch.zeros(len(labels), 2)
    labelled = torch.ones(len(labels), dtype=torch.bool)
    for _ in range(steps):
        logits = head(features, command, target_point) if isinstance(head, SteerHead) else head(features)
        loss = steer_ce_loss(logits, labels, labelled, class_balance=class_balance)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return head


def _balanced_accuracy(head, features, labels, command=None) -> dict:
    command = torch.zeros(len(labels), len(COMMANDS)) if command is None else command
    with torch.no_grad():
        if isinstance(head, SteerHead):
            logits = head(features, command, torch.zeros(len(labels), 2))
        else:
            logits = head(features)
    return steering_classification_metrics(logits.argmax(dim=1), labels)


def test_layernorm_lets_the_head_learn_features_with_a_large_offset_and_tiny_spread():
    generator = torch.Generator().manual_seed(0)
    shares = (1 / 3, 1 / 3, 1 / 3)
    train_labels, test_labels = _labels(600, shares, generator), _labels(600, shares, generator)

    def features(labels):
        return _features(labels, generator, separation=3.0, offset=50.0, scale=1e-3)

    train_features, test_features = features(train_labels), features(test_labels)
    torch.manual_seed(0)
    normalised = _train(SteerHead(DIM), train_features, train_labels)
    torch.manual_seed(0)
    plain = _train(nn.Linear(DIM, len(STEER_CLASSES)), train_features, train_labels)
    assert _balanced_accuracy(normalised, test_features, test_labels)["balanced_accuracy"] > 0.85
    assert _balanced_accuracy(plain, test_features, test_labels)["balanced_accuracy"] < 0.6


def test_class_balanced_loss_finds_the_rare_turns():
    generator = torch.Generator().manual_seed(1)
    shares = (0.85, 0.11, 0.04)  # straight dominates, right turns are rare
    train_labels, test_labels = _labels(1500, shares, generator), _labels(3000, shares, generator)
    train_features = _features(train_labels, generator, separation=1.5)
    test_features = _features(test_labels, generator, separation=1.5)
    results = {}
    for balance in ("none", "batch"):
        torch.manual_seed(0)
        head = _train(SteerHead(DIM), train_features, train_labels, class_balance=balance)
        results[balance] = _balanced_accuracy(head, test_features, test_labels)
    assert results["batch"]["balanced_accuracy"] > results["none"]["balanced_accuracy"] + 0.1
    assert results["batch"]["predicted_classes"] == list(STEER_CLASSES)
    assert results["batch"]["recall"]["right"] > 0.5


def test_command_conditioning_uses_the_command():
    """Features without information; the label follows the command 80 % of the time."""
    generator = torch.Generator().manual_seed(2)
    count = 900
    command_index = torch.randint(0, 3, (count,), generator=generator)  # left, straight, right
    to_steer = torch.tensor([1, 0, 2])  # command -> steering class (left, straight, right)
    labels = torch.where(
        torch.rand(count, generator=generator) < 0.8, to_steer[command_index], _labels(count, (1 / 3,) * 3, generator)
    )
    command = torch.nn.functional.one_hot(command_index, len(COMMANDS)).float()
    features = _features(labels, generator, separation=0.0)
    fit, test = slice(0, 600), slice(600, None)
    torch.manual_seed(0)
    conditioned = _train(SteerHead(DIM, num_commands=len(COMMANDS)), features[fit], labels[fit], command=command[fit])
    torch.manual_seed(0)
    unconditioned = _train(SteerHead(DIM), features[fit], labels[fit], command=command[fit])
    with_command = _balanced_accuracy(conditioned, features[test], labels[test], command[test])["balanced_accuracy"]
    without = _balanced_accuracy(unconditioned, features[test], labels[test], command[test])["balanced_accuracy"]
    assert with_command > 0.75 and without < 0.45
