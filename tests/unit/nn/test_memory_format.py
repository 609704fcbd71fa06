"""The training memory format: channels_last except where oneDNN 2.x's 1x1 stride-2 weight gradient fails."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from common.nn.memory_format import channels_last_fault, training_memory_format
from dfer.config import preset
from dfer.model import build_model

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU


def tiny_dfer(width: int) -> nn.Module:
    return build_model(preset("demo", base_width=width, frames=4, segments=2, input_size=32))


@pytest.mark.parametrize("width,faulty", [(1, False), (2, True), (4, True), (6, True), (7, False), (8, False)])
def test_the_rule_follows_the_shortcut_s_input_channels(width: int, faulty: bool) -> None:
    fault = channels_last_fault(tiny_dfer(width) if width % 2 == 0 else nn.Sequential(nn.Conv2d(width, 8, 1, 2)), CPU)
    assert bool(fault) == faulty, fault
    if faulty:
        assert f"of {width} input channels" in fault and "downsample" in fault


def test_other_shapes_and_a_gpu_keep_channels_last() -> None:
    assert channels_last_fault(nn.Sequential(nn.Conv2d(4, 8, 3, 2), nn.Conv2d(4, 8, 1, 1)), CPU) == ""
    assert channels_last_fault(tiny_dfer(4), CUDA) == ""
    model, name = training_memory_format(tiny_dfer(8), CPU, wanted_channels_last=True)
    assert name == "channels_last"
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)
    assert training_memory_format(tiny_dfer(4), CPU, wanted_channels_last=False)[1] == "contiguous"


def test_a_faulty_model_s_convolutions_see_contiguous_tensors_even_from_a_channels_last_batch() -> None:
    model, name = training_memory_format(tiny_dfer(4), CPU, wanted_channels_last=True)
    assert name.startswith("contiguous, not channels_last: s_former.layer2.0.downsample.0")
    seen = []
    shortcut = dict(model.named_modules())["s_former.layer2.0.downsample.0"]
    shortcut.register_forward_hook(lambda _m, inputs, output: seen.append((inputs[0], output)))
    clips = torch.rand(2, 4, 32, 32, 3).permute(0, 1, 4, 2, 3)  # frames laid out channels-last, as prepare_batch does
    model(clips).sum().backward()
    (given, made), = seen
    assert given.is_contiguous() and made.is_contiguous()
    assert not given.is_contiguous(memory_format=torch.channels_last)
