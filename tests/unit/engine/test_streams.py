"""Independent one-thread forward streams (`common.engine.streams`): the same scores as one item at a time."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from common.engine.streams import InStreams


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 8, 3, stride=2), nn.Flatten(),
                         nn.Linear(8 * 9 * 9, 5)).eval()


@pytest.mark.parametrize("streams,size", [(1, 1), (2, 1), (3, 2)])
def test_scores_equal_a_one_thread_pass_over_each_part_in_order(streams: int, size: int) -> None:
    model, x = net(), torch.randn(7, 3, 20, 20)
    threads = torch.get_num_threads()
    with torch.inference_mode():
        wrapped = InStreams(model, streams=streams, size=size)
        got = wrapped(x)
        torch.set_num_threads(1)
        try:
            alone = torch.cat([model(part) for part in x.split(size)])
        finally:
            torch.set_num_threads(threads)
    wrapped.close()
    assert torch.equal(got, alone) and not got.requires_grad
    assert torch.get_num_threads() == threads  # the streams' one thread is their own


def test_the_streams_take_the_caller_s_grad_mode() -> None:
    model, x = net(), torch.randn(4, 3, 20, 20)
    wrapped = InStreams(model, streams=2)
    assert wrapped(x).requires_grad  # training-style call: the graph reaches the weights
    with torch.no_grad():
        assert not wrapped(x).requires_grad
    wrapped.close()
    assert list(wrapped.state_dict()) == [f"model.{k}" for k in model.state_dict()]


def test_nonsense_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="streams 0"):
        InStreams(nn.Identity(), streams=0)


def test_former_dfer_validation_runs_streams_on_the_cpu_only_there() -> None:
    from dfer.config import preset
    from dfer.model import build_model
    from dfer.valid_nia import for_inference

    model = for_inference(build_model(preset("demo", frames=4, segments=2, input_size=32)), torch.device("cpu"))
    assert isinstance(model, InStreams) and model.streams == torch.get_num_threads() and model.size == 1
    assert not model.training
