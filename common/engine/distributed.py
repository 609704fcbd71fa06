"""The few DistributedDataParallel helpers the engine needs, all no-ops in a
plain single process (`python train.py`), so the same code runs either way."""
from __future__ import annotations

import faulthandler
import os
import sys
import threading

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from common.engine.device import pick_device


def distributed_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from the torchrun environment; (0, 1, 0) without it."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, 0
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0"))


def process_group_backend(device: torch.device) -> str:
    """nccl for processes on GPUs, gloo on the CPU.

    It follows the device this process computes on, not whether a GPU is
    visible: nccl only reduces CUDA tensors, so `--device cpu` on a GPU
    machine needs gloo.
    """
    return "nccl" if device.type == "cuda" else "gloo"


def init_distributed(device: torch.device) -> tuple[int, int, int]:
    """Join the process group when started by torchrun; return (rank, world_size, local_rank).

    Without the torchrun environment nothing is initialised and (0, 1, 0)
    comes back. `device` chooses the backend; for nccl it is made the current
    GPU before the group is joined (harmless when `pick_device` did it already).
    """
    rank, world_size, local_rank = distributed_env()
    if world_size > 1 and not dist.is_initialized():
        backend = process_group_backend(device)
        if backend == "nccl":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return rank, world_size, local_rank


def start_process(device_name: str) -> tuple[torch.device, int, int]:
    """(device, rank, world_size) of this process, in the process group under torchrun.

    The device comes first (cuda:LOCAL_RANK under torchrun; the CPU with a
    warning when CUDA is asked for but absent) because it decides the
    backend: nccl on GPUs, gloo on the CPU.
    """
    _, _, local_rank = distributed_env()
    device = pick_device(device_name, local_rank)
    rank, world_size, _ = init_distributed(device)
    return device, rank, world_size


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main_process() -> bool:
    """True on rank 0, or when not distributed: the process that writes files and prints."""
    return not is_distributed() or dist.get_rank() == 0


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over all processes (in place, also returned); a no-op when not distributed."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    """Wait for every process; a no-op when not distributed."""
    if is_distributed():
        dist.barrier(device_ids=barrier_device_ids(dist.get_backend()))


def barrier_device_ids(backend: str) -> list[int] | None:
    """nccl: this process's GPU, so that the barrier does not guess a GPU from the rank
    (torch 1.13 warns and may pick another process's GPU); other backends take none."""
    return [torch.cuda.current_device()] if backend == dist.Backend.NCCL else None


TEARDOWN_WAIT_S = 60.0  # how long leaving the process group may take before the watchdog ends the process


def cleanup_distributed(wait_s: float = TEARDOWN_WAIT_S) -> None:
    """Leave the process group if one was joined.

    Called once every process has passed the last barrier, so every file is written. torch's teardown of a
    process group now and then never returns (pytorch/pytorch#75097). Our CI once waited out 300 s on a 7-second
    two-process gloo run that had saved its weights, at a point it did not record (the teardown or the exit
    after it; tests/engine_tiny.py now dumps the stacks of a process hung on its way out). A watchdog turns a
    hung teardown into a line that says so, every thread's stack, and exit status 0: the training is complete.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    left = threading.Event()
    threading.Thread(target=_end_if_stuck, args=(left, wait_s), name="teardown-watchdog", daemon=True).start()
    dist.destroy_process_group()
    left.set()


def _end_if_stuck(left: threading.Event, wait_s: float) -> None:
    """Unless `left` is set within `wait_s` seconds: say so, dump every thread's stack, end the process (0)."""
    if left.wait(wait_s):
        return
    print(f"warning: leaving the process group did not return in {wait_s:g} s after training ended (torch's "
          "teardown, pytorch/pytorch#75097); every process had passed the last barrier and the weights are saved: "
          "ending this process (exit 0). Its threads:", file=sys.stderr, flush=True)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stdout.flush()
    os._exit(0)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, DistributedDataParallel) else model
