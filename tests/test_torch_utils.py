"""common.torch_utils: device choice, seeding, safe loading, DDP helpers outside torchrun."""
from __future__ import annotations

import pickle
import warnings

import pytest
import torch

from common.torch_utils import (all_reduce_sum, init_distributed, is_main_process, load_checkpoint_safely,
                                pick_device, seed_everything)


def test_pick_device_cpu_and_auto_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == torch.device("cpu")


def test_pick_device_cuda_falls_back_to_cpu_with_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="no CUDA GPU is visible"):
        assert pick_device("cuda") == torch.device("cpu")


def test_pick_device_takes_cuda_when_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pick_device("auto") == torch.device("cuda")
        assert pick_device("cuda:1") == torch.device("cuda:1")


def test_pick_device_rejects_unknown_name() -> None:
    with pytest.raises(ValueError, match="'tpu' is not one of auto, cpu, cuda"):
        pick_device("tpu")


def test_seed_everything_repeats_draws() -> None:
    seed_everything(123)
    first = torch.rand(3)
    seed_everything(123)
    assert torch.equal(first, torch.rand(3))


def test_load_checkpoint_safely_round_trips_tensors(tmp_path) -> None:
    path = tmp_path / "w.pt"
    torch.save({"a": torch.arange(3), "n": 4, "name": "x"}, path)
    loaded = load_checkpoint_safely(path)
    assert torch.equal(loaded["a"], torch.arange(3)) and loaded["n"] == 4 and loaded["name"] == "x"


def _mark_unpickled() -> None:
    raise AssertionError("arbitrary code ran while loading")


class _Evil:
    def __reduce__(self):  # would run code when unpickled without weights_only
        return (_mark_unpickled, ())


def test_load_checkpoint_safely_refuses_arbitrary_objects(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"x": _Evil()}, path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(ValueError, match="evil.pt: not a loadable weights file"):
        load_checkpoint_safely(path)


def test_load_checkpoint_safely_missing_file_names_it(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt: weights file not found"):
        load_checkpoint_safely(tmp_path / "nope.pt")


def test_ddp_helpers_without_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert init_distributed() == (0, 1, 0)
    assert is_main_process()
    tensor = torch.tensor([1.5, 2.0])
    assert torch.equal(all_reduce_sum(tensor), torch.tensor([1.5, 2.0]))


def test_cpu_runs_use_the_available_cores_shared_among_local_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    from common import torch_utils

    before = torch.get_num_threads()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch_utils, "available_cores", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
        pick_device("cpu")
        assert torch.get_num_threads() == 8
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun with 4 processes on this host
        pick_device("auto")
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's setting wins
        torch.set_num_threads(3)
        assert torch_utils.use_available_cores() == 3
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("junk", [b"garbage, not a checkpoint", b"PK\x03\x04junk", b"\x80\x02junk", b""])
def test_load_checkpoint_safely_names_the_file_for_any_junk(tmp_path, junk: bytes) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(junk)
    with pytest.raises(ValueError, match="junk.pt: not a loadable weights file"):
        load_checkpoint_safely(path)
