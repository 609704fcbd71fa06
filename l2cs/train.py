"""Train L2CS-Net on the two-eye crops of a crop dataset (`nia crops` output).

This file holds what is L2CS-Net's; the loop, resume, early stopping,
DDP/AMP and the outputs (best.pt, last.pt, log.csv, curves.png,
config.json in OUT) are the shared engine's (`common.engine.train`).
Reads top to bottom: `build_task` -> `main` -> the click command.
"""
from __future__ import annotations

from common.script import start_script

start_script(__package__, __file__)  # first: the repo root on sys.path, OpenMP's wait policy before torch loads

from pathlib import Path  # noqa: E402
from typing import Any

import click
import torch

from common.engine.distributed import is_main_process
from common.engine.inference import run_inference
from common.engine.progress import Progress
from common.engine.presets import BN_MODES
from common.engine.train import Metric, TrainTask, batchnorm_fields, fit, skipped_by_split
from common.engine.train_main import resolve_config
from common.nn.batchnorm import freeze_batchnorm_stats
from common.metrics.angular import angular_errors_deg
from common.cli.entry import (input_size_option, run_entry_point, train_command, train_length_options,
                              train_process_options, train_resume_options)
from common.verdicts.thresholds import threshold_for
from l2cs.bins import BinSpec
from l2cs.checkpoint import FORMAT, READ_FORMATS, load_imagenet_backbone
from l2cs.config import ARCH_CHOICES, BIN_PRESETS, LR_SCHEDULES, PRESETS, L2CSConfig, lr_at
from l2cs.dataset import EyeCrops, prepare_batch, read_eye_crops
from l2cs.loss import l2cs_loss
from l2cs.model import build_model


def build_task(config: L2CSConfig, data_dir: Path, train_split: str, val_split: str,
               pretrained: Path | None) -> TrainTask:
    """L2CS-Net's part of training: crops, model, loss, validation MAE, Adam and its learning-rate rule."""
    bins = BinSpec.from_config(config)
    train_rows, val_rows = read_eye_crops(data_dir, train_split), read_eye_crops(data_dir, val_split)
    size = {"width": config.input_width, "height": config.input_height}
    val_set = EyeCrops.from_rows(data_dir, val_rows.rows, **size)

    def create() -> tuple[torch.nn.Module, str]:
        model = build_model(config)
        if pretrained is None:
            return model, "random (no --pretrained given)"
        load_imagenet_backbone(model, pretrained)
        return model, f"imagenet:{pretrained}"

    def val_sums(model: torch.nn.Module, loader: torch.utils.data.DataLoader, device: torch.device) -> torch.Tensor:
        """Sum and count of the angular errors (deg) on this process's validation shard."""
        result = run_inference(model, loader, device, prepare=prepare_batch,
                               decode=lambda outputs, _: bins.decode_pair(outputs), amp=config.amp,
                               progress=is_main_process())
        errors = angular_errors_deg(result.values[result.ok], val_set.targets.numpy()[result.ok])
        return torch.tensor([errors.sum(), errors.size], dtype=torch.float64)

    return TrainTask(
        name=config.arch, config=config,
        train_set=EyeCrops.from_rows(data_dir, train_rows.rows, flip_prob=config.flip_prob, seed=config.seed, **size),
        val_set=val_set, build_model=create, prepare=prepare_batch,
        loss=lambda outputs, targets, _epoch: l2cs_loss(*outputs, targets, bins, config.alpha)[0],
        val_sums=val_sums, val_metric=lambda sums: float(sums[0] / sums[1]) if sums[1] > 0 else float("nan"),
        metric=Metric("val_mae_deg", "val mean angular error (deg)", higher_is_better=False,
                      threshold=threshold_for("l2cs").threshold),
        make_optimizer=lambda parameters: torch.optim.Adam(parameters, lr=config.lr),
        lr_at=lambda epoch, history: lr_at(config, epoch, history),
        skipped=skipped_by_split({train_split: train_rows, val_split: val_rows}),
        **batchnorm_fields(config.bn_mode, freeze_batchnorm_stats),
        format_tag=FORMAT, read_tags=READ_FORMATS)


def main(data_dir: Path, out: Path, config: L2CSConfig, *, device_name: str, pretrained: Path | None,
         resume: bool, train_split: str, val_split: str, last: dict[str, Any] | None = None) -> Progress:
    """Train until `config.epochs` or early stopping; returns the final progress."""
    task = build_task(config, data_dir, train_split, val_split, pretrained)
    return fit(task, out, device_name=device_name, resume=resume, last=last)


@train_command("crop dataset directory with index.parquet (`nia crops` output)", PRESETS,
                "official = NIA conditions (ResNet-50, Adam, batch 16, 100 epochs); demo = small CPU network")
@click.option("--bins", type=click.Choice(sorted(BIN_PRESETS)), default=None,
              help="bin layout: nia = 90 x 4 deg over [-180, 180), mpiigaze = 28 x 3 deg over [-42, 42) "
                   "[default: the preset's, nia]")
@click.option("--arch", type=click.Choice(ARCH_CHOICES), default=None, help="backbone [default: the preset's]")
@click.option("--base-width", type=int, default=None, help="stem channels (64 = published ResNet)")
@input_size_option("224x112", "network input size, e.g. 224x112")
@train_length_options(official_batch=16)
@click.option("--lr", type=float, default=None, help="Adam learning rate [official: 1e-5]")
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default=None,
              help="constant (official) or cosine decay to 0 over --epochs [demo: cosine]")
@click.option("--patience", type=int, default=None, help="early stopping: epochs without a better val MAE")
@click.option("--alpha", type=float, default=None, help="weight of the MSE term in each angle's loss [1]")
@click.option("--flip-prob", type=float, default=None, help="horizontal flip probability [0.5]")
@click.option("--bn-mode", type=click.Choice(BN_MODES), default=None,
              help="frozen = keep BatchNorm statistics fixed (fine-tuning a pretrained backbone)")
@train_process_options()
@click.option("--pretrained", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="local torchvision ImageNet ResNet weights for the backbone (else random init)")
@train_resume_options(val_split_help="split used for early stopping")
def cli(data_dir: Path, out: Path, preset_name: str, bins: str | None, input_size: dict[str, int],
        device_name: str, pretrained: Path | None, resume: bool, train_split: str, val_split: str,
        **overrides: Any) -> None:
    """Train L2CS-Net gaze estimation on the two-eye crops of a crop dataset.

    Defaults are the official NIA conditions; `--preset demo` trains a small
    network on 2 CPU cores in minutes. Several processes:
    `python -m torch.distributed.run --nproc_per_node N l2cs/train.py ...`
    (with Debian's torch 1.13 on Python 3.11 add `--redirects 2 --tee 2`:
    torchrun's default "0" hits a Python 3.11 IntFlag change there).
    Exit code 0 when training finished, 2 when it could not run.

    \b
    Example:
      python l2cs/train.py --preset demo --data build/crops --out build/train/l2cs_demo
      python -m torch.distributed.run --nproc_per_node 4 l2cs/train.py --data crops --out runs/l2cs
    """
    config, last = resolve_config(L2CSConfig, PRESETS, out=out, resume=resume, read_tags=READ_FORMATS,
                                  preset_name=preset_name, overrides={**overrides, **input_size},
                                  fresh=lambda config: config.with_bins(bins) if bins else config)
    main(data_dir, out, config, device_name=device_name, pretrained=pretrained, resume=resume,
         train_split=train_split, val_split=val_split, last=last)


if __name__ == "__main__":
    run_entry_point(cli)
