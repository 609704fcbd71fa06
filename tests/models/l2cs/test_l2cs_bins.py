"""l2cs.bins, l2cs.loss and l2cs.config with hand-computed answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from l2cs.bins import BinSpec
from l2cs.config import L2CSConfig, preset
from l2cs.loss import l2cs_loss

NIA = BinSpec(90, 4.0, -180.0)
MPII = BinSpec(28, 3.0, -42.0)


def test_to_bin_hand_values_and_clamping() -> None:
    angles = torch.tensor([-180.0, -176.1, -176.0, 0.0, 1.9, 179.9, 180.0, -181.0])
    assert NIA.to_bin(angles).tolist() == [0, 0, 1, 45, 45, 89, 89, 0]
    assert NIA.out_of_range(angles).tolist() == [False] * 6 + [True, True]
    assert MPII.to_bin(torch.tensor([-42.0, 0.0, 41.9, 50.0])).tolist() == [0, 14, 27, 27]


def test_to_bin_matches_reference_digitize() -> None:
    """Bin i is [start + i w, start + (i + 1) w), like np.digitize(a, range(start, stop, w)) - 1."""
    angles = np.random.default_rng(0).uniform(-41.99, 41.99, 500)
    reference = np.digitize(angles, np.arange(-42, 42, 3)) - 1
    assert MPII.to_bin(torch.tensor(angles)).tolist() == reference.tolist()


def test_positions_centre_and_edge() -> None:
    centre = NIA.positions()
    assert (centre[0].item(), centre[45].item(), centre[-1].item()) == (-178.0, 2.0, 178.0)
    edge = BinSpec(90, 4.0, -180.0, "edge").positions()
    assert (edge[0].item(), edge[45].item(), edge[-1].item()) == (-180.0, 0.0, 176.0)


def test_decode_one_hot_and_uniform() -> None:
    one_hot = torch.full((1, 90), -1e4)
    one_hot[0, 45] = 1e4
    assert NIA.decode(one_hot).item() == pytest.approx(2.0)
    assert BinSpec(90, 4.0, -180.0, "edge").decode(one_hot).item() == pytest.approx(0.0)
    uniform = torch.zeros(2, 90)
    assert NIA.decode(uniform).tolist() == pytest.approx([0.0, 0.0], abs=1e-4)
    assert BinSpec(90, 4.0, -180.0, "edge").decode(uniform).tolist() == pytest.approx([-2.0, -2.0], abs=1e-4)


def test_centre_decode_is_unbiased_edge_decode_is_biased_by_half_a_bin() -> None:
    """Why we decode at centres: a confident, correct bin gives zero mean error, the edge -w/2."""
    angles = torch.tensor(np.random.default_rng(1).uniform(-30, 30, 4000), dtype=torch.float32)
    for spec, bias in ((NIA, 0.0), (BinSpec(90, 4.0, -180.0, "edge"), -2.0)):
        logits = torch.nn.functional.one_hot(spec.to_bin(angles), 90).float() * 1e4
        assert (spec.decode(logits) - angles).mean().item() == pytest.approx(bias, abs=0.1)


def test_decode_rejects_wrong_bin_count() -> None:
    with pytest.raises(ValueError, match="logits have 28 bins, expected 90"):
        NIA.decode(torch.zeros(1, 28))


def test_loss_uniform_logits_hand_computed() -> None:
    """Uniform logits: CE = ln 90 per angle, decoded angle 0, so MSE = target^2."""
    zeros = torch.zeros(1, 90)
    target = torch.tensor([[10.0, -6.0]])
    total, parts = l2cs_loss(zeros, zeros, target, NIA, alpha=1.0)
    assert parts["pitch"].item() == pytest.approx(math.log(90) + 100.0, rel=1e-5)
    assert parts["yaw"].item() == pytest.approx(math.log(90) + 36.0, rel=1e-5)
    assert total.item() == pytest.approx(2 * math.log(90) + 136.0, rel=1e-5)
    half, _ = l2cs_loss(zeros, zeros, target, NIA, alpha=0.5)
    assert half.item() == pytest.approx(2 * math.log(90) + 68.0, rel=1e-5)


def test_loss_is_separate_per_angle() -> None:
    """The pitch head's gradient depends only on the pitch target."""
    def pitch_grad(yaw_target: float) -> torch.Tensor:
        pitch_logits = torch.randn(2, 90, generator=torch.Generator().manual_seed(0), requires_grad=True)
        yaw_logits = torch.randn(2, 90, generator=torch.Generator().manual_seed(1), requires_grad=True)
        target = torch.tensor([[5.0, yaw_target], [-3.0, yaw_target]])
        l2cs_loss(pitch_logits, yaw_logits, target, NIA)[0].backward()
        return pitch_logits.grad
    assert torch.equal(pitch_grad(10.0), pitch_grad(-40.0))


def test_config_round_trip_presets_and_errors() -> None:
    demo = preset("demo", epochs=3, lr=None)
    assert (demo.arch, demo.epochs, demo.lr) == ("resnet18", 3, 1e-3)
    assert L2CSConfig.from_dict(demo.to_dict()) == demo
    official = preset("official")
    assert (official.arch, official.batch_size, official.epochs, official.bin_count) == ("resnet50", 16, 100, 90)
    mpii = official.with_bins("mpiigaze")
    assert (mpii.bin_count, mpii.bin_width, mpii.bin_start) == (28, 3.0, -42.0)
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        L2CSConfig.from_dict({**demo.to_dict(), "colour": 1})
    with pytest.raises(ValueError, match="config.arch: 'vgg'"):
        preset("official", arch="vgg")
