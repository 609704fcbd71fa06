"""ritnet.loss: each term against a hand-computed case, and the epoch schedule."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ritnet.loss import (boundary_weighted_cross_entropy, dice_weight, generalised_dice_loss, ritnet_loss,
                         surface_loss)


def _two_pixels() -> tuple[torch.Tensor, torch.Tensor]:
    """1 image, 2 classes, 1x2 pixels: pixel A scores (0, 0) truth 0; pixel B scores (0, ln 3) truth 1."""
    logits = torch.tensor([[[[0.0, 0.0]], [[0.0, math.log(3.0)]]]])
    return logits, torch.tensor([[[0, 1]]])


def test_cross_entropy_weights_each_pixel() -> None:
    logits, truth = _two_pixels()
    weights = torch.tensor([[[0.0, 20.0]]])
    # CE(A) = ln 2; CE(B) = -ln(3/4); B on a boundary counts (1 + 20) times
    expected = (math.log(2.0) + 21.0 * math.log(4.0 / 3.0)) / 2.0
    assert boundary_weighted_cross_entropy(logits, truth, weights).item() == pytest.approx(expected, rel=1e-6)
    # the reference's accidental form, mean(CE) * mean(1 + w), is a different number
    reference = (math.log(2.0) + math.log(4.0 / 3.0)) / 2.0 * 11.0
    assert abs(expected - reference) > 0.5
    assert boundary_weighted_cross_entropy(logits, truth, torch.zeros(1, 1, 2)).item() == \
        pytest.approx((math.log(2.0) + math.log(4.0 / 3.0)) / 2.0, rel=1e-6)


def test_generalised_dice_by_hand() -> None:
    logits = torch.zeros(1, 2, 1, 2)  # p = 0.5 everywhere
    # truth (0, 1): w = 1 for both classes; overlap 0.5 + 0.5, total 2 + 2; dice = 2 * 1 / 4
    assert generalised_dice_loss(logits, torch.tensor([[[0, 1]]])).item() == pytest.approx(0.5, rel=1e-6)
    # truth (0, 0): w0 = 1/4, w1 = 1/1e-5 (absent); dice = 2 * 0.25 / (0.75 + 1e5) < 1e-5, clamped to 1e-5
    assert generalised_dice_loss(logits, torch.tensor([[[0, 0]]])).item() == pytest.approx(1.0 - 1e-5, abs=1e-7)
    # batch mean of per-image losses
    batch = generalised_dice_loss(torch.zeros(2, 2, 1, 2), torch.tensor([[[0, 1]], [[0, 0]]]))
    assert batch.item() == pytest.approx((0.5 + 1.0 - 1e-5) / 2.0, rel=1e-6)
    perfect = torch.tensor([[[[30.0, -30.0]], [[-30.0, 30.0]]]])
    assert generalised_dice_loss(perfect, torch.tensor([[[0, 1]]])).item() == pytest.approx(0.0, abs=1e-6)


def test_surface_loss_by_hand() -> None:
    logits, _ = _two_pixels()                 # p(A) = (1/2, 1/2), p(B) = (1/4, 3/4)
    distances = torch.tensor([[[[1.0, 2.0]], [[-1.0, -0.5]]]])
    expected = (0.5 * 1.0 + 0.25 * 2.0 + 0.5 * -1.0 + 0.75 * -0.5) / 4.0
    assert surface_loss(logits, distances).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="do not match the logits"):
        surface_loss(logits, distances[:, :1])


def test_dice_weight_schedule() -> None:
    assert dice_weight(1, 100) == pytest.approx(0.99)
    assert dice_weight(50, 100) == pytest.approx(0.5)
    assert dice_weight(100, 100) == 0.0
    assert dice_weight(1, 10) == pytest.approx(0.9)
    assert dice_weight(1, 250) == pytest.approx(1 - 1 / 125)
    assert dice_weight(125, 250) == 0.0
    assert dice_weight(126, 250) == 1.0  # the reference's switch back to Dice alone after 125 epochs
    for bad in ((0, 10), (11, 10), (1, 0)):
        with pytest.raises(ValueError, match="expected 1 <= epoch <= epochs"):
            dice_weight(*bad)


@pytest.mark.parametrize("epochs", [1, 10, 100, 125, 250])
def test_schedule_equals_the_reference_array(epochs: int) -> None:
    """train.py: alpha[0:min(125, E)] = 1 - arange(1, min(125, E) + 1) / min(125, E); alpha[125:] = 1."""
    ramp = min(125, epochs)
    alpha = np.zeros(epochs)
    alpha[:ramp] = 1 - np.arange(1, ramp + 1) / ramp
    alpha[125:] = 1
    assert [dice_weight(e, epochs) for e in range(1, epochs + 1)] == pytest.approx(alpha.tolist())


def test_total_mixes_the_terms_by_the_schedule() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    truth = torch.randint(0, 3, (2, 4, 4))
    weights = torch.rand(2, 4, 4) * 20
    distances = torch.randn(2, 3, 4, 4)
    ce = boundary_weighted_cross_entropy(logits, truth, weights)
    dice = generalised_dice_loss(logits, truth)
    surface = surface_loss(logits, distances)
    total = ritnet_loss(logits, truth, weights, distances, epoch=5, epochs=10)  # alpha = 0.5
    assert total.item() == pytest.approx((ce + 0.5 * dice + 0.5 * surface).item(), rel=1e-6)
    assert ritnet_loss(logits, truth, weights, distances, 10, 10).item() == pytest.approx((ce + surface).item(), rel=1e-6)
    total.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
