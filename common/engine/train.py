"""The training loop shared by the three tests.

A model folder's `train.py` builds a `TrainTask` (its datasets, model,
input preparation, loss, validation metric, optimizer and learning-rate
rule) and calls `fit`. Reads top to bottom: `train_one_epoch` ->
`evaluate` -> `make_loaders` -> `create_model` -> `fit`.

One process trains on the CPU or one GPU (AMP on CUDA); under torchrun every
process takes a shard of each global batch (DistributedSampler) and
DistributedDataParallel averages the gradients, so the configured batch
size is always the global batch. On GPUs (`device_setup`): one GPU per
process (cuda:LOCAL_RANK), nccl, SyncBatchNorm when BatchNorm statistics are
trained, pinned memory and autotuned cuDNN, so GPU training is not
bit-reproducible (validation is). No step syncs with the GPU per batch: the
loss is summed on the device and the progress bar shows it every
`BAR_EVERY` batches.

Outputs in OUT: `last.pt` (every epoch; `--resume` continues from it),
`best.pt` (best validation metric), `log.csv` (epoch, train_loss, the
metric, lr, seconds), `curves.png`, `config.json`.
"""
from __future__ import annotations

import json
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from common.atomic import check_writable_folder, write_text_atomic
from common.cores import binding_in_force
from common.nn.memory_format import FALLBACK, training_memory_format
from common.engine.batches import batch_length, keep_rows, to_device, worker_init
from common.engine.checkpoint import read_checkpoint, save_checkpoint
from common.engine.device import (DeviceSetup, core_plan, device_setup, epoch_seed, grad_scaler, seed_everything,
                                   set_cudnn_mode)
from common.engine.distributed import (all_reduce_sum, barrier, cleanup_distributed, is_main_process, start_process,
                                       unwrap)
from common.engine.progress import Progress
from common.engine.training_log import LOG_NAME, append_log, write_curves

BAR_EVERY = 25   # batches between progress-bar loss updates (each one waits for the GPU)


@dataclass(frozen=True)
class TrainConfig:
    """The settings every model's training has; each model's config extends it."""

    lr: float = 1e-3
    batch_size: int = 16           # global batch over all processes
    epochs: int = 100
    patience: int = 10             # early stopping: epochs without a better validation metric
    amp: bool = True               # mixed precision; used on CUDA only
    seed: int = 0
    workers: int = 2               # DataLoader worker processes per training process

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Rebuild from `to_dict()` output (e.g. a checkpoint's config); unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"config: unknown keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**data).validated()

    @classmethod
    def resumed(cls, saved: dict[str, Any], overrides: dict[str, Any]) -> Any:
        """The saved config (a checkpoint's `config`) with the options given again on `--resume` (None: not given)."""
        return replace(cls.from_dict(saved), **{k: v for k, v in overrides.items() if v is not None}).validated()

    def validated(self) -> Any:
        """Self, after checking every field; a model's config adds its own checks (ValueError naming the field)."""
        if self.batch_size < 1 or self.epochs < 1 or self.patience < 0 or self.workers < 0:
            raise ValueError(f"config: batch_size {self.batch_size}, epochs {self.epochs} >= 1, patience "
                             f"{self.patience}, workers {self.workers} >= 0 expected")
        return self


@dataclass(frozen=True)
class Metric:
    """The validation metric early stopping follows."""

    column: str                    # log.csv column, e.g. "val_mae_deg"
    label: str                     # axis label of curves.png
    higher_is_better: bool
    threshold: float | None = None # acceptance threshold in the metric's unit, drawn on curves.png
    digits: int = 4


@dataclass
class TrainTask:
    """What a model folder gives `fit`. Datasets yield `(inputs, targets, index, ok)` items
    (see `common.engine.batches`); a dataset with `set_epoch(epoch)` draws that epoch's augmentation."""

    name: str
    config: TrainConfig
    train_set: Dataset
    val_set: Dataset
    build_model: Callable[[], tuple[torch.nn.Module, str]]     # (model, how it was initialised); after seeding
    prepare: Callable[[torch.Tensor, torch.device], torch.Tensor]  # loader inputs -> network input on the device
    loss: Callable[[Any, Any, int], torch.Tensor]            # (outputs, targets on the device, epoch) -> mean loss
    val_sums: Callable[[torch.nn.Module, DataLoader, torch.device], torch.Tensor]  # float64 sums of this shard
    val_metric: Callable[[torch.Tensor], float]              # sums over all processes -> the metric
    metric: Metric
    make_optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
    lr_at: Callable[[int, Sequence[float]], float]           # (1-based epoch, earlier val metrics) -> lr
    skipped: dict[str, int] = field(default_factory=dict)    # rows set aside before training, by reason
    trains_batchnorm: bool = True                            # False: statistics frozen, no SyncBatchNorm
    train_mode: Callable[[torch.nn.Module], None] | None = None  # after model.train(), e.g. freeze BN stats
    channels_last: bool = True
    format_tag: str = "nia/1"                                # checkpoint format written
    read_tags: tuple[str, ...] = ()                          # formats `--resume` accepts (default: format_tag)
    val_batch_size: int | None = None


@dataclass
class Loaders:
    train: DataLoader
    train_sampler: DistributedSampler
    val: DataLoader


def say(message: str) -> None:
    """A status line on stderr that does not break a running progress bar (stdout is for results)."""
    with tqdm.external_write_mode(file=sys.stderr):
        print(message, file=sys.stderr, flush=True)


def train_one_epoch(model: torch.nn.Module, task: TrainTask, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    scaler: torch.cuda.amp.GradScaler, device: torch.device, epoch: int) -> float:
    """One pass over the training shard; returns the mean loss over all processes' samples.

    Mixed precision runs exactly when the scaler is enabled (AMP on CUDA);
    the loss takes float32 of the outputs itself. Unreadable items are left
    out of their batch and counted.
    """
    model.train()
    if task.train_mode is not None:
        task.train_mode(model)
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, samples, unreadable
    bar = tqdm(loader, desc=f"epoch {epoch}", unit="batch", disable=None if is_main_process() else True)
    for step, (inputs, targets, _, ok) in enumerate(bar):
        if not ok.all():  # indexing copies out of pinned memory, so only when an item was unreadable
            totals[2] += float((~ok).sum())
            inputs, targets = inputs[ok], keep_rows(targets, ok)
        targets = to_device(targets, device)
        with torch.autocast(device_type=device.type, enabled=scaler.is_enabled()):
            outputs = model(task.prepare(inputs, device))
        loss = task.loss(outputs, targets, epoch)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        count = batch_length(targets)
        if count:  # a batch of unreadable items only has a NaN mean loss (and zero gradients)
            totals[0] += loss.detach().double() * count  # summed on the device: no GPU sync per batch
            totals[1] += count
        if not bar.disable and step % BAR_EVERY == 0:
            bar.set_postfix(loss=f"{float(totals[0] / totals[1].clamp(min=1)):.3f}")
    all_reduce_sum(totals)
    if totals[2] > 0 and is_main_process():
        say(f"epoch {epoch}: {int(totals[2])} training items could not be read and were skipped")
    return float(totals[0] / totals[1].clamp(min=1))


def evaluate(model: torch.nn.Module, task: TrainTask, loader: DataLoader, device: torch.device) -> float:
    """The validation metric: each process sums over its shard, the sums are added, then turned into the metric."""
    sums = task.val_sums(unwrap(model), loader, device).to(device=device, dtype=torch.float64)
    return task.val_metric(all_reduce_sum(sums).cpu())


def make_loaders(task: TrainTask, rank: int, world_size: int, pin_memory: bool) -> Loaders:
    """Training loader (sharded, shuffled by epoch) and validation loader (this process's shard)."""
    config = task.config
    if config.batch_size % world_size:
        raise ValueError(f"batch size {config.batch_size} is the global batch and must be divisible by the "
                         f"{world_size} processes")
    sampler = DistributedSampler(task.train_set, num_replicas=world_size, rank=rank, shuffle=True, seed=config.seed)
    if binding_in_force(os.environ):  # torch counts the bound main thread's one CPU; the workers get all of them
        warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)
    common = {"num_workers": config.workers, "worker_init_fn": worker_init, "pin_memory": pin_memory}
    train = DataLoader(task.train_set, batch_size=config.batch_size // world_size, sampler=sampler, **common)
    val_shard = list(range(rank, len(task.val_set), world_size))
    val_batch = task.val_batch_size or max(config.batch_size // world_size, 32)
    val = DataLoader(task.val_set, batch_size=val_batch, sampler=val_shard, **common)
    return Loaders(train, sampler, val)


def create_model(task: TrainTask, device: torch.device, world_size: int,
                 setup: DeviceSetup) -> tuple[torch.nn.Module, str, str]:
    """The model on `device` (DDP-wrapped under torchrun), its init and the memory format it trains in
    (channels_last if the task wants it and the CPU's oneDNN is not known to fail on it: `training_memory_format`).

    SyncBatchNorm replaces the BatchNorms before the DDP wrap, as DDP requires.
    """
    model, init = task.build_model()
    if setup.sync_batchnorm:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model, memory_format = training_memory_format(model.to(device), device, task.channels_last)
    if world_size > 1:
        model = DistributedDataParallel(model, device_ids=setup.ddp_device_ids)
    return model, init, memory_format


def skipped_by_split(rows_by_split: dict[str, Any]) -> dict[str, int]:
    """TrainTask's `skipped`: `split:reason` -> rows, from each split's read rows (their `skipped` counts)."""
    return {f"{split}:{reason}": n for split, rows in rows_by_split.items() for reason, n in rows.skipped.items()}


def batchnorm_fields(bn_mode: str, freeze: Callable[[torch.nn.Module], None]) -> dict[str, Any]:
    """TrainTask's `trains_batchnorm` and `train_mode` for a config's `bn_mode`: "train" updates the
    statistics (SyncBatchNorm under DDP), "frozen" keeps them (FREEZE after each `model.train()`)."""
    return {"trains_batchnorm": bn_mode == "train", "train_mode": freeze if bn_mode == "frozen" else None}


def read_last(out: Path, resume: bool, format_tags: tuple[str, ...]) -> dict[str, Any] | None:
    """`OUT/last.pt` on `--resume` when it exists, read once (on the CPU, whatever device wrote it)."""
    last = out / "last.pt"
    return read_checkpoint(last, format_tags) if resume and last.is_file() else None


def restore(state: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            scaler: torch.cuda.amp.GradScaler) -> Progress:
    """Load a `last.pt` state (read on the CPU) into model, optimizer and scaler; return the saved progress.

    `load_state_dict` copies into the parameters on their device and the
    optimizer casts its moments to each parameter's device (Adam's `step`
    counters stay on the CPU, as a fresh Adam keeps them). A run without AMP
    saves an empty scaler state; resuming it with AMP starts the scaler
    afresh, where `GradScaler.load_state_dict` would refuse the empty state.
    """
    unwrap(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return Progress.from_dict(state["progress"])


def checkpoint_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.cuda.amp.GradScaler,
                     config: TrainConfig, progress: Progress, init: str, metric: Metric,
                     value: float) -> dict[str, Any]:
    return {"model": unwrap(model).state_dict(), "config": config.to_dict(), "epoch": progress.epoch,
            metric.column: value, "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "progress": asdict(progress), "init": init}


def fit(task: TrainTask, out: Path, *, device_name: str = "auto", resume: bool = False,
        last: dict[str, Any] | None = None) -> Progress:
    """Train until `config.epochs` or early stopping; return the final progress.

    On `resume`, `last` is OUT/last.pt as `read_last` returned it (a CLI that
    read it for its config passes it on); when None it is read here.
    """
    config, metric = task.config, task.metric
    read_tags = task.read_tags or (task.format_tag,)
    device, rank, world_size = start_process(device_name)
    if is_main_process():
        check_writable_folder(out)  # a read-only or mistyped OUT fails now, not after the first epoch
    setup = device_setup(device, world_size, amp=config.amp, trains_batchnorm=task.trains_batchnorm)
    set_cudnn_mode(reproducible=False)
    seed_everything(config.seed)
    loaders = make_loaders(task, rank, world_size, setup.pin_memory)
    model, init, memory_format = create_model(task, device, world_size, setup)
    optimizer = task.make_optimizer(model.parameters())
    scaler = grad_scaler(setup.amp)
    last = last if last is not None else read_last(out, resume, read_tags)
    progress = restore(last, model, optimizer, scaler) if resume and last is not None else Progress()
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        cores = core_plan(config.workers, device)
        say(cores.line())
        write_text_atomic(out / "config.json", json.dumps({**config.to_dict(), "init": init, "world_size": world_size,
                                                          "skipped": task.skipped, "cores": cores.provenance(),
                                                          "memory_format": memory_format},
                                                         indent=2) + "\n")
        say(f"training {task.name} on {device} x{world_size}, init {init}, from epoch {progress.epoch + 1}; "
                   f"skipped {task.skipped or 'none'}")
        if memory_format.startswith(FALLBACK):
            say(f"memory format: {memory_format}")
    columns = ("epoch", "train_loss", metric.column, "lr", "seconds")
    for epoch in range(progress.epoch + 1, config.epochs + 1):
        if progress.stale_epochs >= config.patience:
            break
        started = time.monotonic()
        loaders.train_sampler.set_epoch(epoch)
        for dataset in (task.train_set, task.val_set):
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
        for group in optimizer.param_groups:
            group["lr"] = task.lr_at(epoch, progress.history)
        seed_everything(epoch_seed(config.seed, epoch))  # dropout draws: the same whether resumed here or not
        train_loss = train_one_epoch(model, task, loaders.train, optimizer, scaler, device, epoch)
        value = evaluate(model, task, loaders.val, device)
        improved = progress.record(epoch, value, metric.higher_is_better)
        if is_main_process():
            state = checkpoint_state(model, optimizer, scaler, config, progress, init, metric, value)
            save_checkpoint(out / "last.pt", state, task.format_tag)
            if improved:
                save_checkpoint(out / "best.pt", state, task.format_tag)
            append_log(out / LOG_NAME, {"epoch": epoch, "train_loss": f"{train_loss:.6f}",
                                        metric.column: f"{value:.{metric.digits}f}",
                                        "lr": optimizer.param_groups[0]["lr"],
                                        "seconds": f"{time.monotonic() - started:.2f}"}, columns, keep_until=epoch - 1)
            write_curves(out, metric.column, metric.label, metric.threshold, metric.higher_is_better)
            say(f"epoch {epoch}: train loss {train_loss:.4f}, {metric.column} {value:.{metric.digits - 1}f}"
                       f"{' (best)' if improved else ''}")
        barrier()
    if is_main_process():
        say(f"best {metric.column} {progress.best} at epoch {progress.best_epoch}; weights in {out / 'best.pt'}")
    cleanup_distributed()
    return progress
