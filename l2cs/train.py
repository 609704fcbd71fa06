"""Train L2CS-Net on a crop dataset (`nia crops` output).

Reads top to bottom: `train_one_epoch` -> `evaluate` -> `load_data` ->
`create_model` -> `main` -> the click command. One process trains on the
CPU or one GPU (AMP on CUDA); under torchrun every process takes a shard of
each global batch (DistributedSampler) and DistributedDataParallel
averages the gradients, so `--batch-size` is always the global batch.
On GPUs (`device_setup`): one GPU per process (cuda:LOCAL_RANK), nccl,
SyncBatchNorm when BatchNorm statistics are trained, pinned memory, and
autotuned cuDNN, so a GPU training run is not bit-reproducible (validation
with `run_valid_l2cs.py` is).

Outputs in OUT: `last.pt` (every epoch; `--resume` continues from it),
`best.pt` (lowest validation mean angular error), `log.csv` (epoch,
train_loss, val_mae_deg, lr, seconds), `curves.png` (the log as a plot: loss,
validation MAE, threshold, best epoch), `config.json`.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python l2cs/train.py`: import the package, not the folder's modules
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import csv
import json
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import click
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from common.cli.targets_cmds import parse_wxh
from common.metrics.angular import angular_errors_deg
from common.torch_utils import (DEVICE_CHOICES, all_reduce_sum, barrier, cleanup_distributed, distributed_env,
                                init_distributed, is_main_process, pick_device, seed_everything, set_cudnn_mode)
from l2cs.bins import BinSpec
from l2cs.checkpoint import load_imagenet_backbone, read_checkpoint, save_checkpoint
from l2cs.config import (ARCH_CHOICES, BIN_PRESETS, BN_MODES, IMAGENET_MEAN, IMAGENET_STD, LR_SCHEDULES, PRESETS,
                         L2CSConfig, lr_at, preset)
from l2cs.dataset import EyeCrops, normalize_batch, read_eye_crops, worker_init
from l2cs.loss import l2cs_loss
from l2cs.model import build_model, freeze_batchnorm_stats
from l2cs.predict import predict

LOG_COLUMNS = ("epoch", "train_loss", "val_mae_deg", "lr", "seconds")


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint so `--resume` continues exactly."""

    epoch: int = 0                 # last completed epoch
    best_mae: float = float("inf")
    best_epoch: int = 0
    stale_epochs: int = 0          # epochs since best_mae last improved

    def record(self, epoch: int, mae: float) -> bool:
        """Note an epoch's validation MAE; True when it is a new best."""
        self.epoch = epoch
        if mae < self.best_mae:
            self.best_mae, self.best_epoch, self.stale_epochs = mae, epoch, 0
            return True
        self.stale_epochs += 1
        return False


@dataclass(frozen=True)
class DeviceSetup:
    """What the device and the process count switch on, decided in one place."""

    amp: bool                          # autocast + GradScaler: CUDA only (torch 1.13's CPU autocast is bfloat16)
    sync_batchnorm: bool               # BatchNorm statistics over all GPUs (SyncBatchNorm has no CPU kernels)
    pin_memory: bool                   # page-locked batches, so host -> GPU copies can be asynchronous
    ddp_device_ids: list[int] | None   # DistributedDataParallel's device_ids: this process's one GPU


def device_setup(config: L2CSConfig, device: torch.device, world_size: int) -> DeviceSetup:
    """The CUDA-only features for `device` (cuda:LOCAL_RANK under torchrun) and `world_size` processes.

    SyncBatchNorm only when BatchNorm statistics are trained (`bn_mode`
    "train") by more than one process: frozen statistics need no exchange.
    """
    cuda = device.type == "cuda"
    if cuda and world_size > 1 and device.index is None:
        raise ValueError("DistributedDataParallel on CUDA needs this process's GPU index (cuda:LOCAL_RANK)")
    return DeviceSetup(amp=config.amp and cuda, sync_batchnorm=cuda and world_size > 1 and config.bn_mode == "train",
                       pin_memory=cuda, ddp_device_ids=[device.index] if cuda and world_size > 1 else None)


@dataclass
class Data:
    train: DataLoader
    train_sampler: DistributedSampler
    val: DataLoader
    skipped: dict[str, int]


def train_one_epoch(model: torch.nn.Module, data: Data, optimizer: torch.optim.Optimizer,
                    scaler: torch.cuda.amp.GradScaler, config: L2CSConfig, device: torch.device,
                    epoch: int) -> float:
    """One pass over the training shard; returns the mean loss over all processes' samples.

    Mixed precision runs exactly when the scaler is enabled (AMP on CUDA).
    The loss stays outside autocast: it takes float32 of the logits itself.
    """
    model.train()
    if config.bn_mode == "frozen":
        freeze_batchnorm_stats(model)
    bins = BinSpec.from_config(config)
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, samples, unreadable
    bar = tqdm(data.train, desc=f"epoch {epoch}", unit="batch", disable=None if is_main_process() else True)
    for images, targets, _, ok in bar:
        if not ok.all():  # indexing copies out of pinned memory, so only when a crop was unreadable
            totals[2] += float((~ok).sum())
            images, targets = images[ok], targets[ok]
        targets = targets.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, enabled=scaler.is_enabled()):
            pitch_logits, yaw_logits = model(normalize_batch(images, device, IMAGENET_MEAN, IMAGENET_STD))
        loss, _ = l2cs_loss(pitch_logits, yaw_logits, targets, bins, config.alpha)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if len(targets):  # a batch of unreadable crops only has a NaN mean loss (and zero gradients)
            totals[0] += loss.detach().double() * len(targets)  # summed on the device: no GPU sync per batch
            totals[1] += len(targets)
        if not bar.disable:
            bar.set_postfix(loss=f"{float(loss):.3f}")
    all_reduce_sum(totals)
    if totals[2] > 0 and is_main_process():
        tqdm.write(f"epoch {epoch}: {int(totals[2])} training crops could not be decoded and were skipped")
    return float(totals[0] / totals[1].clamp(min=1))


def evaluate(model: torch.nn.Module, loader: DataLoader, config: L2CSConfig, device: torch.device) -> float:
    """Mean angular error (deg) on the validation split; each process scores its shard."""
    module = model.module if isinstance(model, DistributedDataParallel) else model
    dataset: EyeCrops = loader.dataset
    result = predict(module, loader, BinSpec.from_config(config), device, amp=config.amp,
                     progress=is_main_process())
    totals = torch.zeros(2, dtype=torch.float64, device=device)
    if result.ok.any():
        errors = angular_errors_deg(result.pitch_yaw[result.ok], dataset.targets.numpy()[result.ok])
        totals += torch.tensor([errors.sum(), errors.size], dtype=torch.float64, device=device)
    all_reduce_sum(totals)
    return float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")


def load_data(config: L2CSConfig, data_dir: Path, train_split: str, val_split: str,
              rank: int, world_size: int, pin_memory: bool) -> Data:
    """Loaders for the training split (sharded, shuffled, flipped) and the validation split (sharded)."""
    if config.batch_size % world_size:
        raise click.UsageError(f"--batch-size {config.batch_size} is the global batch and must be divisible "
                               f"by the {world_size} processes")
    train_rows, val_rows = read_eye_crops(data_dir, train_split), read_eye_crops(data_dir, val_split)
    size = {"width": config.input_width, "height": config.input_height}
    train_set = EyeCrops.from_rows(data_dir, train_rows.rows, flip_prob=config.flip_prob, seed=config.seed, **size)
    val_set = EyeCrops.from_rows(data_dir, val_rows.rows, **size)
    sampler = DistributedSampler(train_set, num_replicas=world_size, rank=rank, shuffle=True, seed=config.seed)
    common = {"num_workers": config.workers, "worker_init_fn": worker_init, "pin_memory": pin_memory}
    train = DataLoader(train_set, batch_size=config.batch_size // world_size, sampler=sampler, **common)
    val_shard = list(range(rank, len(val_set), world_size))
    val = DataLoader(val_set, batch_size=max(config.batch_size // world_size, 32), sampler=val_shard, **common)
    skipped = {f"{split}:{reason}": n for split, rows in ((train_split, train_rows), (val_split, val_rows))
               for reason, n in rows.skipped.items()}
    return Data(train, sampler, val, skipped)


def create_model(config: L2CSConfig, pretrained: Path | None, device: torch.device, world_size: int,
                 setup: DeviceSetup) -> tuple[torch.nn.Module, str]:
    """The model on `device` in channels_last (DDP-wrapped under torchrun) and how it was initialised.

    SyncBatchNorm replaces the BatchNorms before the DDP wrap, as DDP requires.
    """
    model = build_model(config)
    init = "random (no --pretrained given)"
    if pretrained is not None:
        load_imagenet_backbone(model, pretrained)
        init = f"imagenet:{pretrained}"
    if setup.sync_batchnorm:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device).to(memory_format=torch.channels_last)
    if world_size > 1:
        model = DistributedDataParallel(model, device_ids=setup.ddp_device_ids)
    return model, init


def read_last(out: Path, resume: bool) -> dict[str, Any] | None:
    """`OUT/last.pt` on `--resume` when it exists, read once (on the CPU, whatever device wrote it)."""
    last = out / "last.pt"
    return read_checkpoint(last, "cpu") if resume and last.is_file() else None


def restore(state: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            scaler: torch.cuda.amp.GradScaler) -> Progress:
    """Load a `last.pt` state (read on the CPU) into model, optimizer and scaler; return the saved progress.

    The tensors go to the model's device here: `load_state_dict` copies into
    the parameters and the optimizer casts its moments to each parameter's
    device (Adam's `step` counters stay on the CPU, as a fresh Adam keeps them).
    A run without AMP (CPU, `--no-amp`) saves an empty scaler state; resuming
    it with AMP on starts the scaler afresh, where `GradScaler.load_state_dict`
    would refuse the empty state.
    """
    module = model.module if isinstance(model, DistributedDataParallel) else model
    module.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    return Progress(**state["progress"])


def checkpoint_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.cuda.amp.GradScaler,
                     config: L2CSConfig, progress: Progress, init: str, val_mae: float) -> dict[str, Any]:
    module = model.module if isinstance(model, DistributedDataParallel) else model
    return {"model": module.state_dict(), "config": config.to_dict(), "epoch": progress.epoch,
            "val_mae_deg": val_mae, "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "progress": asdict(progress), "init": init}


def append_log(path: Path, row: dict[str, Any], keep_until: int | None = None) -> None:
    """Add one epoch row to log.csv; `keep_until` first drops rows after that epoch (resume)."""
    rows = []
    if path.is_file():
        with path.open(newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if keep_until is None or int(r["epoch"]) <= keep_until]
    rows.append({k: row[k] for k in LOG_COLUMNS})
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def write_curves(out: Path) -> None:
    """curves.png beside log.csv: train loss and validation MAE per epoch, best epoch marked."""
    import pandas as pd

    from common.report.plots import training_curves
    from common.verdict import threshold_for

    log = pd.read_csv(out / "log.csv")
    png = training_curves(log, "val_mae_deg", "val mean angular error (deg)", threshold_for("l2cs").threshold)
    (out / "curves.png").write_bytes(png)


def resolve_config(last: dict[str, Any] | None, preset_name: str, bins: str | None,
                   overrides: dict[str, Any]) -> L2CSConfig:
    """The preset with the given options, or on `--resume` (`last`: the read last.pt) the saved config with them."""
    if last is not None:
        saved = L2CSConfig.from_dict(last["config"])
        return replace(saved, **{k: v for k, v in overrides.items() if v is not None}).validated()
    config = preset(preset_name, **overrides)
    return config.with_bins(bins) if bins else config


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


def main(data_dir: Path, out: Path, config: L2CSConfig, *, device_name: str, pretrained: Path | None,
         resume: bool, train_split: str, val_split: str, last: dict[str, Any] | None = None) -> Progress:
    """Train until `config.epochs` or early stopping; returns the final progress.

    On `resume`, `last` is OUT/last.pt as `read_last` returned it (the CLI has
    read it already for its config); when None it is read here.
    """
    device, rank, world_size = start_process(device_name)
    setup = device_setup(config, device, world_size)
    set_cudnn_mode(reproducible=False)
    seed_everything(config.seed)
    data = load_data(config, data_dir, train_split, val_split, rank, world_size, setup.pin_memory)
    model, init = create_model(config, pretrained, device, world_size, setup)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scaler = torch.cuda.amp.GradScaler(enabled=setup.amp)
    last = last if last is not None else read_last(out, resume)
    progress = restore(last, model, optimizer, scaler) if resume and last is not None else Progress()
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({**config.to_dict(), "init": init, "world_size": world_size,
                                                     "skipped": data.skipped}, indent=2) + "\n")
        click.echo(f"training {config.arch} on {device} x{world_size}, init {init}, "
                   f"from epoch {progress.epoch + 1}; skipped {data.skipped or 'none'}", err=True)
    for epoch in range(progress.epoch + 1, config.epochs + 1):
        if progress.stale_epochs >= config.patience:
            break
        started = time.monotonic()
        data.train_sampler.set_epoch(epoch)
        data.train.dataset.set_epoch(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(config, epoch)
        train_loss = train_one_epoch(model, data, optimizer, scaler, config, device, epoch)
        val_mae = evaluate(model, data.val, config, device)
        improved = progress.record(epoch, val_mae)
        if is_main_process():
            state = checkpoint_state(model, optimizer, scaler, config, progress, init, val_mae)
            save_checkpoint(out / "last.pt", state)
            if improved:
                save_checkpoint(out / "best.pt", state)
            append_log(out / "log.csv", {"epoch": epoch, "train_loss": f"{train_loss:.6f}",
                                         "val_mae_deg": f"{val_mae:.4f}", "lr": optimizer.param_groups[0]["lr"],
                                         "seconds": f"{time.monotonic() - started:.2f}"}, keep_until=epoch - 1)
            write_curves(out)
            tqdm.write(f"epoch {epoch}: train loss {train_loss:.4f}, val MAE {val_mae:.3f} deg"
                       f"{' (best)' if improved else ''}")
        barrier()
    if is_main_process():
        click.echo(f"best val MAE {progress.best_mae:.3f} deg at epoch {progress.best_epoch}; "
                   f"weights in {out / 'best.pt'}")
    cleanup_distributed()
    return progress


def input_size_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    """click callback: `--input-size WxH` as (width, height); BadParameter naming the option and the form."""
    return None if value is None else parse_wxh(value, "224x112", "--input-size")


@click.command(context_settings={"show_default": True})
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="crop dataset directory with index.parquet (`nia crops` output)")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="output directory for best.pt, last.pt, log.csv, config.json")
@click.option("--preset", "preset_name", type=click.Choice(sorted(PRESETS)), default="official",
              help="official = NIA conditions (ResNet-50, Adam, batch 16, 100 epochs); demo = small CPU network")
@click.option("--bins", type=click.Choice(sorted(BIN_PRESETS)), default=None,
              help="bin layout: nia = 90 x 4 deg over [-180, 180), mpiigaze = 28 x 3 deg over [-42, 42) "
                   "[default: the preset's, nia]")
@click.option("--arch", type=click.Choice(ARCH_CHOICES), default=None, help="backbone [default: the preset's]")
@click.option("--base-width", type=int, default=None, help="stem channels (64 = published ResNet)")
@click.option("--input-size", default=None, metavar="WxH", callback=input_size_option,
              help="network input size, e.g. 224x112")
@click.option("--epochs", type=int, default=None, help="maximum epochs [official: 100]")
@click.option("--batch-size", type=int, default=None, help="global batch over all processes [official: 16]")
@click.option("--lr", type=float, default=None, help="Adam learning rate [official: 1e-5]")
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default=None,
              help="constant (official) or cosine decay to 0 over --epochs [demo: cosine]")
@click.option("--patience", type=int, default=None, help="early stopping: epochs without a better val MAE")
@click.option("--alpha", type=float, default=None, help="weight of the MSE term in each angle's loss [1]")
@click.option("--flip-prob", type=float, default=None, help="horizontal flip probability [0.5]")
@click.option("--bn-mode", type=click.Choice(BN_MODES), default=None,
              help="frozen = keep BatchNorm statistics fixed (fine-tuning a pretrained backbone)")
@click.option("--amp/--no-amp", default=None, help="mixed precision on CUDA [on]")
@click.option("--seed", type=int, default=None, help="random seed [0]")
@click.option("--workers", type=int, default=None, help="DataLoader worker processes per training process [2]")
@click.option("--device", "device_name", type=click.Choice(DEVICE_CHOICES), default="auto",
              help="auto takes CUDA when visible; cuda without a GPU falls back to the CPU with a warning")
@click.option("--pretrained", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="local torchvision ImageNet ResNet weights for the backbone (else random init)")
@click.option("--resume", is_flag=True, help="continue from OUT/last.pt (its config; given options override)")
@click.option("--train-split", default="train", help="split used for training")
@click.option("--val-split", default="val", help="split used for early stopping")
def cli(data_dir: Path, out: Path, preset_name: str, bins: str | None, input_size: tuple[int, int] | None,
        device_name: str, pretrained: Path | None, resume: bool, train_split: str, val_split: str,
        **overrides: Any) -> None:
    """Train L2CS-Net gaze estimation on the two-eye crops of a crop dataset.

    Defaults are the official NIA conditions; `--preset demo` trains a small
    network on 2 CPU cores in minutes. Several processes:
    `python -m torch.distributed.run --nproc_per_node N l2cs/train.py ...`
    (with Debian's torch 1.13 on Python 3.11 add `--redirects 2 --tee 2`:
    torchrun's default "0" hits a Python 3.11 IntFlag change there).

    \b
    Example:
      python l2cs/train.py --preset demo --data build/crops --out build/train/l2cs_demo
      python -m torch.distributed.run --nproc_per_node 4 l2cs/train.py --data crops --out runs/l2cs
    """
    if input_size is not None:
        overrides.update(input_width=input_size[0], input_height=input_size[1])
    try:
        last = read_last(out, resume)
        config = resolve_config(last, preset_name, bins, overrides)
        main(data_dir, out, config, device_name=device_name, pretrained=pretrained, resume=resume,
             train_split=train_split, val_split=val_split, last=last)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


if __name__ == "__main__":
    cli()
