"""Learning-rate rules as pure functions of the 1-based epoch (and, for the
plateau rule, of the validation metrics logged before it), so that `--resume`
needs no scheduler state and continues exactly.

Each model's config picks one: L2CS-Net constant (the reference) or cosine
(demo), RIT-Net a reduction on a validation plateau (the reference's
ReduceLROnPlateau), Former-DFER a step schedule (the reference's StepLR).
"""
from __future__ import annotations

import math
from typing import Sequence


def cosine_lr(base: float, epoch: int, epochs: int) -> float:
    """Cosine decay from `base` at epoch 1 towards 0 after `epochs`."""
    return base * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / max(epochs, 1)))


def step_lr(base: float, epoch: int, step_size: int, gamma: float) -> float:
    """`base * gamma ** k` after every `step_size` epochs, as torch's StepLR stepped once per epoch."""
    if step_size < 1:
        raise ValueError(f"step_size {step_size}: expected >= 1")
    return base * gamma ** ((epoch - 1) // step_size)


def plateau_lr(base: float, history: Sequence[float], *, higher_is_better: bool, factor: float = 0.1,
               patience: int = 10, threshold: float = 1e-4, min_lr: float = 0.0) -> float:
    """The learning rate torch's ReduceLROnPlateau (threshold_mode "rel", cooldown 0) would set
    after stepping on `history`, the validation metrics of the epochs before this one.

    Replaying the history instead of storing the scheduler makes a resumed
    run take exactly the decisions of an uninterrupted one. A NaN metric
    counts as no improvement, as in torch.
    """
    lr, bad = base, 0
    best = -math.inf if higher_is_better else math.inf
    for value in history:
        if _improves(value, best, higher_is_better, threshold):
            best, bad = value, 0
        else:
            bad += 1
        if bad > patience:
            new = max(lr * factor, min_lr)
            if lr - new > 1e-8:  # torch's eps: smaller changes are ignored
                lr = new
            bad = 0
    return lr


def _improves(value: float, best: float, higher_is_better: bool, threshold: float) -> bool:
    """torch's relative-threshold comparison (NaN never improves)."""
    if higher_is_better:
        return value > best * (1.0 + threshold)
    return value < best * (1.0 - threshold)
