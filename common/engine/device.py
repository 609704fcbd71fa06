"""Which device a process computes on, how many CPU threads it uses, seeding,
cuDNN's mode, and the CUDA-only features that follow from the device.

Everything here works on torch 1.13 and 2.x, and on CPU-only machines.
"""
from __future__ import annotations

import dataclasses
import os
import random
import re
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from common.cores import CorePlan, available_cores, plan_for_run

DEVICE_CHOICES = ("auto", "cpu", "cuda")
_CUDA_NAME = re.compile(r"cuda(:\d+)?")


def pick_device(requested: str = "auto", local_rank: int | None = None) -> torch.device:
    """The device to run on, made the current CUDA device when it is a GPU.

    `auto` takes CUDA when it is visible, else the CPU. `cuda` (or `cuda:N`)
    without a visible GPU falls back to the CPU with a warning instead of
    failing: an auditor running the container without `--gpus` still gets a
    verdict, only slower. Under torchrun pass `local_rank`: `auto` and `cuda`
    then mean this process's GPU, cuda:LOCAL_RANK (DDP and nccl need one GPU
    per process). On the CPU, torch is given the cores this process may use
    (`use_available_cores`). Raises ValueError for an unknown name or a GPU
    index that is not visible.
    """
    name = requested.strip().lower()
    if name not in ("auto", "cpu") and not _CUDA_NAME.fullmatch(name):
        raise ValueError(f"device {requested!r} is not one of auto, cpu, cuda, cuda:N")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return _cpu()
    if not torch.cuda.is_available():
        warnings.warn(f"device {requested!r} requested but no CUDA GPU is visible: running on the CPU",
                      RuntimeWarning, stacklevel=2)
        return _cpu()
    device = torch.device("cuda" if name == "auto" else name)
    if device.index is None and local_rank is not None:
        device = torch.device("cuda", local_rank)
    if device.index is not None:
        visible = torch.cuda.device_count()
        if device.index >= visible:
            raise ValueError(f"device cuda:{device.index} requested but only {visible} CUDA GPU(s) are visible "
                             "(under torchrun: one GPU per process, --nproc_per_node at most the GPU count)")
        torch.cuda.set_device(device)  # pin_memory, caches and nccl then use this GPU, not GPU 0
    return device


def _cpu() -> torch.device:
    use_available_cores()
    return torch.device("cpu")


def use_available_cores() -> int:
    """Give torch one intra-op thread per available core, shared among local DDP processes.

    Debian's torch 1.13 starts with a single thread whatever the machine, so a
    CPU run would use one core of many. ``OMP_NUM_THREADS``, when set, wins.
    Returns the thread count in force.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    threads = max(1, available_cores() // local_processes)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def core_plan(requested_workers: int | None, device: torch.device) -> CorePlan:
    """How this run spends its cores (`common.cores.plan_cores`), with the torch threads in force on `device`
    (a CUDA run leaves torch's own count)."""
    plan = plan_for_run(requested_workers, accelerator=device.type == "cuda")
    return dataclasses.replace(plan, threads=torch.get_num_threads())


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so that a rerun draws the same numbers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's random draws (dropout) for run seed `seed`: a function of the two alone, so a
    run resumed at `epoch` draws what an uninterrupted one draws there (no two (seed, epoch) pairs share it)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0]) >> 1


def set_cudnn_mode(*, reproducible: bool) -> None:
    """How cuDNN picks its convolution algorithms (the flags are inert on the CPU).

    Validation (`reproducible=True`): deterministic algorithms, no autotuning
    and no TF32, so a rerun gives the same numbers to the last bit and they
    agree with a CPU run to float32 rounding (TF32 keeps only 10 mantissa
    bits). Training (`False`): autotuned (`benchmark`; the input size is
    fixed, so the search pays off after the first batches) and TF32 allowed:
    an AMP run is not bit-reproducible anyway.
    """
    torch.backends.cudnn.benchmark = not reproducible
    torch.backends.cudnn.deterministic = reproducible
    torch.backends.cudnn.allow_tf32 = not reproducible


@dataclass(frozen=True)
class DeviceSetup:
    """What the device and the process count switch on, decided in one place."""

    amp: bool                          # autocast + GradScaler: CUDA only (torch 1.13's CPU autocast is bfloat16)
    sync_batchnorm: bool               # BatchNorm statistics over all GPUs (SyncBatchNorm has no CPU kernels)
    pin_memory: bool                   # page-locked batches, so host -> GPU copies can be asynchronous
    ddp_device_ids: list[int] | None   # DistributedDataParallel's device_ids: this process's one GPU


def grad_scaler(enabled: bool) -> torch.cuda.amp.GradScaler:
    """The loss scaler of mixed-precision training on CUDA (a pass-through when not ``enabled``).

    ``torch.amp.GradScaler("cuda")`` where torch has it (2.3 and later, which
    deprecate ``torch.cuda.amp.GradScaler``), else ``torch.cuda.amp.GradScaler``
    (torch 1.13). Both save and load the same state.
    """
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def device_setup(device: torch.device, world_size: int, *, amp: bool, trains_batchnorm: bool) -> DeviceSetup:
    """The CUDA-only features for `device` (cuda:LOCAL_RANK under torchrun) and `world_size` processes.

    SyncBatchNorm only when BatchNorm statistics are trained by more than one
    process: frozen statistics need no exchange.
    """
    cuda = device.type == "cuda"
    if cuda and world_size > 1 and device.index is None:
        raise ValueError("DistributedDataParallel on CUDA needs this process's GPU index (cuda:LOCAL_RANK)")
    return DeviceSetup(amp=amp and cuda, sync_batchnorm=cuda and world_size > 1 and trains_batchnorm,
                       pin_memory=cuda, ddp_device_ids=[device.index] if cuda and world_size > 1 else None)
