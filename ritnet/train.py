"""Train RIT-Net (DenseNet2D) on the per-eye crops of a crop dataset (`nia crops` output).

This file holds what is RIT-Net's: the crops and their loss targets, the
scheduled loss (`ritnet.loss`), the validation mIoU from one confusion
matrix summed over the validation split (exact integer counts, scored at
each crop's own pixels as `ritnet/test.py` scores), Adam and the
learning-rate rule. The loop, resume, early stopping on the validation mIoU,
DDP/AMP and the outputs (best.pt, last.pt, log.csv, curves.png, config.json
in OUT) are the shared engine's (`common.engine.train`).
Reads top to bottom: `build_task` -> `main` -> the click command.
"""
from __future__ import annotations

from common.script import start_script

# first: the repo root on sys.path, OpenMP settings before torch loads; a core per thread (its backward is
# tiny oneDNN convolutions whose barriers spin: unbound, one busy core made an epoch 2.8x slower; docs/development.md)
start_script(__package__, __file__, bind_threads=True)

from pathlib import Path  # noqa: E402
from typing import Any

import click
import numpy as np
import torch

from common.cli.entry import (input_size_option, run_entry_point, train_command, train_length_options,
                              train_process_options, train_resume_options)
from common.engine.distributed import is_main_process
from common.engine.inference import run_inference
from common.engine.progress import Progress
from common.engine.presets import BN_MODES
from common.engine.train import Metric, TrainTask, batchnorm_fields, fit, skipped_by_split
from common.engine.train_main import resolve_config
from common.nn.batchnorm import freeze_batchnorm_stats
from common.verdicts.thresholds import threshold_for
from ritnet.checkpoint import FORMAT, READ_FORMATS
from ritnet.config import INIT_CHOICES, LR_SCHEDULES, PRESETS, RITConfig, lr_at
from ritnet.dataset import EyeSegCrops, ScoringCrops, crop_geometry, prepare_batch, read_seg_crops
from ritnet.loss import ritnet_loss
from ritnet.model import DenseNet2D
from ritnet.scoring import Predictor, chunked_on_cpu, miou_of_confusion


def build_task(config: RITConfig, data_dir: Path, train_split: str, val_split: str) -> TrainTask:
    """RIT-Net's part of training: crops, model, scheduled loss, validation mIoU, Adam and its lr rule."""
    train_rows, val_rows = read_seg_crops(data_dir, train_split), read_seg_crops(data_dir, val_split)
    size = {"width": config.input_width, "height": config.input_height}
    geometry = crop_geometry(data_dir, val_rows.rows)
    val_set = ScoringCrops.from_rows(data_dir, val_rows.rows, map_size=(geometry.width, geometry.height),
                                     num_classes=config.num_classes, **size)

    def create() -> tuple[torch.nn.Module, str]:
        model = DenseNet2D(num_classes=config.num_classes, channels=config.channels, dropout=config.dropout,
                           init=config.init)
        return model, f"random ({config.init})"

    def val_sums(model: torch.nn.Module, loader: torch.utils.data.DataLoader, device: torch.device) -> torch.Tensor:
        """The confusion matrix (C x C, flattened) of this process's validation shard, exact counts in float64."""
        predictor = Predictor(config.num_classes, config.input_width, config.input_height)
        result = run_inference(chunked_on_cpu(model, device), loader, device, prepare=prepare_batch,
                               decode=predictor.confusion, amp=config.amp, progress=is_main_process())
        rows = result.values[np.isfinite(result.values).all(axis=1)]
        return torch.from_numpy(rows.sum(axis=0) if len(rows) else np.zeros(config.num_classes ** 2))

    return TrainTask(
        name=f"RIT-Net DenseNet2D (width {config.channels})", config=config,
        train_set=EyeSegCrops.from_rows(data_dir, train_rows.rows, train=config.augment, seed=config.seed,
                                        num_classes=config.num_classes, **size),
        val_set=val_set, build_model=create, prepare=prepare_batch,
        loss=lambda logits, targets, epoch: ritnet_loss(logits, *targets, epoch, config.epochs),
        val_sums=val_sums, val_metric=lambda sums: miou_of_confusion(sums.numpy(), config.num_classes),
        metric=Metric("val_miou", "val mIoU (fraction)", higher_is_better=True,
                      threshold=threshold_for("rit").threshold),
        make_optimizer=lambda parameters: torch.optim.Adam(parameters, lr=config.lr),
        lr_at=lambda epoch, history: lr_at(config, epoch, history),
        skipped=skipped_by_split({train_split: train_rows, val_split: val_rows}),
        **batchnorm_fields(config.bn_mode, freeze_batchnorm_stats),
        channels_last=False, format_tag=FORMAT, read_tags=READ_FORMATS)


def main(data_dir: Path, out: Path, config: RITConfig, *, device_name: str, resume: bool, train_split: str,
         val_split: str, last: dict[str, Any] | None = None) -> Progress:
    """Train until `config.epochs` or early stopping; returns the final progress."""
    return fit(build_task(config, data_dir, train_split, val_split), out, device_name=device_name, resume=resume,
               last=last)


@train_command("crop dataset directory with index.parquet (`nia crops` output)", PRESETS,
                "official = the published network under NIA conditions (width 32, Adam, batch 16, 100 epochs); "
                "demo = narrow network for the synthetic crops on 2 CPU cores")
@click.option("--channels", type=int, default=None, help="block width (32 = published DenseNet2D)")
@click.option("--dropout", type=float, default=None, help="dropout after each 3x3 convolution [official: 0.2]")
@click.option("--init", type=click.Choice(INIT_CHOICES), default=None,
              help="weight init: reference (fan-out normal, as published) or torch (PyTorch default)")
@input_size_option("160x96",
                   "network input size, multiples of 16 (crops are resized; scoring stays at the crop's pixels)")
@train_length_options(official_batch=16)
@click.option("--lr", type=float, default=None, help="Adam learning rate [official: 1e-3]")
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default=None,
              help="plateau = ReduceLROnPlateau on val mIoU (official), cosine = decay to 0 over --epochs (demo)")
@click.option("--patience", type=int, default=None, help="early stopping: epochs without a better val mIoU")
@click.option("--augment/--no-augment", default=None, help="the reference's blur/shift/flip on training crops [on]")
@click.option("--bn-mode", type=click.Choice(BN_MODES), default=None,
              help="frozen = keep BatchNorm statistics fixed (fine-tuning with small per-process batches) [train]")
@train_process_options()
@train_resume_options(val_split_help="split used for early stopping and the learning-rate rule")
def cli(data_dir: Path, out: Path, preset_name: str, input_size: dict[str, int], device_name: str,
        resume: bool, train_split: str, val_split: str, **overrides: Any) -> None:
    """Train RIT-Net eye segmentation on the per-eye crops of a crop dataset.

    Defaults are the official NIA conditions; `--preset demo` trains a narrow
    network on 2 CPU cores in minutes. Several processes:
    `python -m torch.distributed.run --nproc_per_node N ritnet/train.py ...`
    (with Debian's torch 1.13 on Python 3.11 add `--redirects 2 --tee 2`).
    Exit code 0 when training finished, 2 when it could not run.

    \b
    Example:
      python ritnet/train.py --preset demo --data build/crops --out build/train/rit_demo
      python -m torch.distributed.run --nproc_per_node 4 ritnet/train.py --data crops --out runs/rit
    """
    config, last = resolve_config(RITConfig, PRESETS, out=out, resume=resume, read_tags=READ_FORMATS,
                                  preset_name=preset_name, overrides={**overrides, **input_size})
    main(data_dir, out, config, device_name=device_name, resume=resume, train_split=train_split,
         val_split=val_split, last=last)


if __name__ == "__main__":
    run_entry_point(cli)
