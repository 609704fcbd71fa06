"""Train Former-DFER on the clips of a clip dataset (`nia clips` output).

This file holds what is Former-DFER's (clips, model, cross-entropy, the
validation split's WAR, SGD and the step schedule); the loop, resume, early
stopping, DDP/AMP and the outputs (best.pt, last.pt, log.csv, curves.png,
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
import torch.nn.functional as F

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
from dfer.checkpoint import FORMAT, READ_FORMATS, load_pretrained
from dfer.config import PRESETS, DFERConfig, lr_at
from dfer.dataset import StateClips, prepare_batch, read_state_clips
from dfer.model import build_model


def build_task(config: DFERConfig, data_dir: Path, train_split: str, val_split: str, pretrained: Path | None,
               videos: Path | None = None) -> TrainTask:
    """Former-DFER's part of training: clips, model, loss, validation WAR, SGD and the step schedule."""
    min_frames = 1 if config.pad_short else config.frames
    train_rows, val_rows = (read_state_clips(data_dir, split, min_frames=min_frames, videos=videos)
                            for split in (train_split, val_split))
    cache = config.cache_frames and config.workers == 0  # workers' copies of a cache end with each epoch
    val_set = StateClips(val_rows.rows, config, train=False, cache=cache)

    def create() -> tuple[torch.nn.Module, str]:
        model = build_model(config)
        if pretrained is None:
            return model, "random (no --pretrained given)"
        return model, load_pretrained(model, pretrained)

    def val_sums(model: torch.nn.Module, loader: torch.utils.data.DataLoader, device: torch.device) -> torch.Tensor:
        """Correct clips and read clips of this process's validation shard (WAR = accuracy)."""
        result = run_inference(model, loader, device, prepare=prepare_batch,
                               decode=lambda outputs, _: outputs.float().argmax(dim=1, keepdim=True),
                               amp=config.amp, progress=is_main_process())
        ok = result.ok
        correct = result.values[ok, 0] == val_set.targets.numpy()[ok]
        return torch.tensor([correct.sum(), ok.sum()], dtype=torch.float64)

    return TrainTask(
        name=f"former-dfer (width {config.base_width})", config=config,
        train_set=StateClips(train_rows.rows, config, train=True, cache=cache), val_set=val_set,
        build_model=create, prepare=prepare_batch,
        loss=lambda outputs, targets, _epoch: F.cross_entropy(outputs.float(), targets),
        val_sums=val_sums, val_metric=lambda sums: float(sums[0] / sums[1]) if sums[1] > 0 else float("nan"),
        metric=Metric("val_war", "validation WAR", higher_is_better=True, threshold=threshold_for("dfer").threshold),
        make_optimizer=lambda parameters: torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                                                          weight_decay=config.weight_decay),
        lr_at=lambda epoch, _history: lr_at(config, epoch),
        skipped=skipped_by_split({train_split: train_rows, val_split: val_rows}),
        **batchnorm_fields(config.bn_mode, freeze_batchnorm_stats),
        format_tag=FORMAT, read_tags=READ_FORMATS, val_batch_size=max(8, config.batch_size))


def main(data_dir: Path, out: Path, config: DFERConfig, *, device_name: str, pretrained: Path | None,
         resume: bool, train_split: str = "train", val_split: str = "val", videos: Path | None = None,
         last: dict[str, Any] | None = None) -> Progress:
    """Train until `config.epochs` or early stopping; returns the final progress."""
    task = build_task(config, data_dir, train_split, val_split, pretrained, videos)
    return fit(task, out, device_name=device_name, resume=resume, last=last)


@train_command("clip dataset directory with index.parquet (`nia clips` output)", PRESETS,
                "official = NIA conditions (published network, SGD, batch 8, 100 epochs); "
                "demo = tiny network for the synthetic clips on a CPU")
@click.option("--base-width", type=int, default=None, help="ResNet stem channels (64 = published network)")
@click.option("--t-depth", type=int, default=None, help="T-Former layers (3 = published)")
@click.option("--segments", type=int, default=None,
              help="segments per clip, 2 consecutive frames each (8 = published: 16 frames)")
@input_size_option("112x112", "frame size fed to the network, square: NxN or N (112 = published)", square=True)
@train_length_options(official_batch=8)
@click.option("--lr", type=float, default=None, help="SGD learning rate [official: 0.01]")
@click.option("--lr-step", type=int, default=None, help="epochs between learning-rate steps x0.1 [official: 40]")
@click.option("--patience", type=int, default=None,
              help="early stopping: epochs without a better validation WAR [official: 40]")
@click.option("--crop-scale", type=float, default=None,
              help="training crops cover this fraction to all of the region's area [official: 0.08, as published]")
@click.option("--pad-short/--no-pad-short", default=None,
              help="clips under 16 frames: repeat frames (pad) or skip them and count them [skip]")
@click.option("--bn-mode", type=click.Choice(BN_MODES), default=None,
              help="frozen = BatchNorm statistics fixed (fine-tuning with small batches) [train]")
@train_process_options(workers_help="DataLoader decode processes per training process [2]")
@click.option("--pretrained", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="initial weights: an original Former-DFER checkpoint (its 7-class classifier is "
                   "re-initialised) or one of ours")
@train_resume_options(val_split_help="split used for early stopping (never the test split)")
@click.option("--videos", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="folder the index's video paths are relative to [default: the index's dataset root]")
def cli(data_dir: Path, out: Path, preset_name: str, input_size: dict[str, int], device_name: str,
        pretrained: Path | None, resume: bool, train_split: str, val_split: str, videos: Path | None,
        **overrides: Any) -> None:
    """Train Former-DFER observer-state classification on the clips of a clip dataset.

    Defaults are the official NIA conditions; `--preset demo` trains a tiny
    network on the synthetic clips on 2 CPU cores in minutes. Several processes:
    `python -m torch.distributed.run --nproc_per_node N dfer/train.py ...`
    (with Debian's torch 1.13 on Python 3.11 add `--redirects 2 --tee 2`).
    Exit code 0 when training finished, 2 when it could not run.

    \b
    Example:
      python dfer/train.py --preset demo --data build/dfer/clips --out build/train/dfer_demo
      python dfer/train.py --data clips --out runs/dfer --pretrained Former-DFER_DFEW_set1.pth
      python -m torch.distributed.run --nproc_per_node 4 dfer/train.py --data clips --out runs/dfer
    """
    if val_split == "test":
        raise click.BadParameter("early stopping on the test split would select the model on the data it "
                                 "is scored on; use the validation split", param_hint="--val-split")
    if overrides.get("segments") is not None:
        overrides["frames"] = overrides["segments"] * PRESETS[preset_name].frames_per_segment
    config, last = resolve_config(DFERConfig, PRESETS, out=out, resume=resume, read_tags=READ_FORMATS,
                                  preset_name=preset_name, overrides={**overrides, **input_size})
    main(data_dir, out, config, device_name=device_name, pretrained=pretrained, resume=resume,
         train_split=train_split, val_split=val_split, videos=videos, last=last)


if __name__ == "__main__":
    run_entry_point(cli)
