"""common.engine device, distributed and pickled-weights helpers: device choice, seeding, safe loading,
DDP helpers outside torchrun."""
from __future__ import annotations

import pickle
import warnings

import pytest
import torch

from common.engine.checkpoint import load_pickled_weights as load_checkpoint_safely
from common.engine.device import pick_device, seed_everything, set_cudnn_mode
from common.engine.distributed import (all_reduce_sum, barrier_device_ids, init_distributed, is_main_process,
                                       process_group_backend)


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> list[torch.device]:
    """Pretend two CUDA GPUs are visible; returns the devices passed to torch.cuda.set_device, in order."""
    current: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: current.append(torch.device(device)))
    return current


def torchrun_env(monkeypatch: pytest.MonkeyPatch, rank: int, world_size: int, local_rank: int) -> None:
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))


def test_pick_device_cpu_and_auto_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == torch.device("cpu")


def test_pick_device_cuda_falls_back_to_cpu_with_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="no CUDA GPU is visible"):
        assert pick_device("cuda") == torch.device("cpu")


def test_pick_device_takes_cuda_when_visible(two_gpus: list[torch.device]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pick_device("auto") == torch.device("cuda")
        assert pick_device("cuda:1") == torch.device("cuda:1")
    assert two_gpus == [torch.device("cuda:1")]  # an explicit GPU becomes the current one (pin_memory, nccl)


def test_pick_device_under_torchrun_takes_the_local_rank_gpu(two_gpus: list[torch.device]) -> None:
    assert pick_device("auto", local_rank=1) == torch.device("cuda:1")
    assert pick_device("cuda", local_rank=0) == torch.device("cuda:0")
    assert two_gpus == [torch.device("cuda:1"), torch.device("cuda:0")]


def test_pick_device_refuses_a_gpu_that_is_not_visible(two_gpus: list[torch.device]) -> None:
    with pytest.raises(ValueError, match="cuda:2 requested but only 2 CUDA GPU"):
        pick_device("auto", local_rank=2)  # torchrun --nproc_per_node 3 on a 2-GPU machine
    with pytest.raises(ValueError, match="cuda:5 requested"):
        pick_device("cuda:5")
    assert two_gpus == []


def test_pick_device_without_cuda_ignores_the_local_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto", local_rank=3) == torch.device("cpu")
    with pytest.warns(RuntimeWarning, match="'cuda:1' requested but no CUDA GPU is visible"):
        assert pick_device("cuda:1", local_rank=1) == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "cudax", "cuda:", "cuda:one"])
def test_pick_device_rejects_unknown_name(name: str) -> None:
    with pytest.raises(ValueError, match=f"'{name}' is not one of auto, cpu, cuda, cuda:N"):
        pick_device(name)


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
    with pytest.raises(ValueError, match="evil.pt: refused: the pickle calls .*_mark_unpickled"):
        load_checkpoint_safely(path)


def test_load_checkpoint_safely_missing_file_names_it(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt: weights file not found"):
        load_checkpoint_safely(tmp_path / "nope.pt")


def test_ddp_helpers_without_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert init_distributed(torch.device("cpu")) == (0, 1, 0)
    assert is_main_process()
    tensor = torch.tensor([1.5, 2.0])
    assert torch.equal(all_reduce_sum(tensor), torch.tensor([1.5, 2.0]))


def test_cpu_runs_use_the_available_cores_shared_among_local_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    from common.engine import device as torch_utils

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


def _record_init(monkeypatch: pytest.MonkeyPatch, calls: list) -> None:
    monkeypatch.setattr(torch.distributed, "init_process_group",
                        lambda backend, rank, world_size: calls.append(("init", backend, rank, world_size)))


def test_backend_follows_the_process_device_not_gpu_visibility(monkeypatch, two_gpus) -> None:
    """`--device cpu` under torchrun on a GPU machine: nccl cannot reduce CPU tensors, so gloo."""
    assert process_group_backend(torch.device("cpu")) == "gloo"
    assert process_group_backend(torch.device("cuda:1")) == "nccl"
    torchrun_env(monkeypatch, rank=3, world_size=4, local_rank=1)
    calls: list = []
    _record_init(monkeypatch, calls)
    assert init_distributed(torch.device("cpu")) == (3, 4, 1)
    assert calls == [("init", "gloo", 3, 4)] and two_gpus == []


def test_nccl_sets_the_process_gpu_before_joining(monkeypatch, two_gpus) -> None:
    torchrun_env(monkeypatch, rank=1, world_size=2, local_rank=1)
    calls: list = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", torch.device(device))))
    _record_init(monkeypatch, calls)
    assert init_distributed(torch.device("cuda:1")) == (1, 2, 1)
    assert calls == [("set_device", torch.device("cuda:1")), ("init", "nccl", 1, 2)]


def test_barrier_names_the_gpu_for_nccl_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert barrier_device_ids("nccl") == [3]
    assert barrier_device_ids("gloo") is None  # torch 1.13 raises if gloo is given device_ids


@pytest.mark.parametrize("reproducible", [True, False])
def test_cudnn_mode_validation_deterministic_training_autotuned(reproducible: bool) -> None:
    cudnn = torch.backends.cudnn
    before = (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32)
    try:
        set_cudnn_mode(reproducible=reproducible)
        assert (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32) == \
            (not reproducible, reproducible, not reproducible)
    finally:
        cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32 = before
