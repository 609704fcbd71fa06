"""common.nn.resnet: our ResNet blocks are torchvision's, to the bit, and L2CS no longer needs torchvision.

The CUDA base image has PyPI's torch 1.13.1 and no torchvision (no 0.14.1
wheel for Python 3.11), so these tests pin both halves of that decision.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import l2cs.model as l2cs_model
from l2cs.model import L2CS
from tests.paths import REPO



def _build(arch: str, blocks: dict[str, tuple]) -> L2CS:
    """L2CS built under `torch.manual_seed(0)` with the block classes of `blocks`."""
    saved = dict(l2cs_model.ARCH_LAYOUTS)
    l2cs_model.ARCH_LAYOUTS.update(blocks)
    try:
        torch.manual_seed(0)
        return L2CS(arch=arch, num_bins=28, base_width=8)
    finally:
        l2cs_model.ARCH_LAYOUTS.clear()
        l2cs_model.ARCH_LAYOUTS.update(saved)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_same_seed_gives_the_same_weights_and_outputs_as_torchvision_blocks(arch: str) -> None:
    resnet = pytest.importorskip("torchvision.models.resnet")
    block_name, depths = l2cs_model.ARCH_LAYOUTS[arch][0].__name__, l2cs_model.ARCH_LAYOUTS[arch][1]
    theirs = _build(arch, {arch: (getattr(resnet, block_name), depths)})
    ours = _build(arch, {})
    assert type(ours.layer1[0]).__module__ == "common.nn.resnet"
    assert type(theirs.layer1[0]).__module__ == "torchvision.models.resnet"
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    assert all(torch.equal(ours_state[k], theirs_state[k]) for k in ours_state)
    images = torch.randn(3, 3, 32, 64, generator=torch.Generator().manual_seed(1))
    for mode in ("train", "eval"):
        getattr(ours, mode)(), getattr(theirs, mode)()
        for a, b in zip(ours(images), theirs(images)):
            assert torch.equal(a, b), mode
    # one training step moves both the same way
    ours.train(), theirs.train()
    for model in (ours, theirs):
        pitch, yaw = model(images)
        (pitch.square().mean() + yaw.mean()).backward()
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert torch.equal(a.grad, b.grad), name


def test_l2cs_validation_imports_without_torchvision() -> None:
    """With torchvision unimportable, the model, checkpoints and the entry point still import."""
    code = ("import sys; sys.modules['torchvision'] = None\n"
            "import l2cs.model, l2cs.checkpoint, l2cs.run_valid_l2cs\n"
            "m = l2cs.model.L2CS(arch='resnet50', num_bins=4, base_width=8)\n"
            "print(type(m.layer1[0]).__name__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Bottleneck"]
