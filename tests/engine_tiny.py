"""A tiny task for the engine's own tests: 4-D images or 5-D clips of two classes, a small network, seconds to train.

Run as a script (also under torchrun) it trains the task into OUT:
`python tests/engine_tiny.py OUT --epochs 3 [--clips] [--resume]`.
"""
from __future__ import annotations

import faulthandler
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from common.engine.batches import normalize_batch
from common.engine.schedule import step_lr
from common.engine.train import Metric, TrainConfig, TrainTask, fit


class TinyItems(Dataset):
    """Item i -> (uint8 image (3, 8, 8) or clip (4, 3, 8, 8), class 0/1, i, ok); class 1 is brighter on the left.

    Items listed in `unreadable` come back with ok = False (zeros), as a decode failure would.
    """

    def __init__(self, n: int, seed: int, clips: bool = False, unreadable: Sequence[int] = ()) -> None:
        rng = np.random.default_rng(seed)
        self.labels = rng.integers(0, 2, n)
        shape = (n, 4, 3, 8, 8) if clips else (n, 3, 8, 8)
        images = rng.integers(40, 160, shape)
        images[..., :4] += (self.labels * 60).reshape((n,) + (1,) * (len(shape) - 1))
        self.images = torch.as_tensor(images.clip(0, 255), dtype=torch.uint8)
        self.unreadable = set(unreadable)
        self.epochs_seen: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs_seen.append(epoch)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        if i in self.unreadable:
            return torch.zeros_like(self.images[i]), int(self.labels[i]), i, False
        return self.images[i], int(self.labels[i]), i, True


class TinyNet(nn.Module):
    """Conv -> pool -> linear; a clip's frames are averaged after the per-frame features. No BatchNorm,
    so that processes of a DDP run compute exactly what one process does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[1] if x.dim() == 5 else 1
        features = torch.relu(self.conv(x.flatten(0, 1) if x.dim() == 5 else x)).mean(dim=(2, 3))
        return self.head(features.view(-1, frames, 4).mean(dim=1))


def tiny_task(*, clips: bool = False, epochs: int = 4, patience: int = 10, higher_is_better: bool = True,
              lr_rule=None, seed: int = 0, unreadable: Sequence[int] = ()) -> TrainTask:
    """Accuracy (higher is better) or the error rate (lower is better) on 16 validation items."""
    config = TrainConfig(lr=0.05, batch_size=8, epochs=epochs, patience=patience, amp=False, seed=seed, workers=0)
    val = TinyItems(16, seed=1, clips=clips)

    def val_sums(model, loader, device) -> torch.Tensor:
        correct = total = 0
        model.eval()
        with torch.no_grad():
            for inputs, target, _, _ in loader:
                correct += int((model(prepare(inputs, device)).argmax(1) == target).sum())
                total += len(target)
        return torch.tensor([correct, total], dtype=torch.float64)

    def prepare(inputs, device):
        return normalize_batch(inputs, device, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), channels_last=False)

    def metric(sums: torch.Tensor) -> float:
        accuracy = float(sums[0] / sums[1])
        return accuracy if higher_is_better else 1.0 - accuracy

    return TrainTask(
        name="tiny", config=config, train_set=TinyItems(32, seed=0, clips=clips, unreadable=unreadable),
        val_set=val, build_model=lambda: (TinyNet(), "random"), prepare=prepare,
        loss=lambda outputs, target, _epoch: nn.functional.cross_entropy(outputs.float(), target),
        val_sums=val_sums, val_metric=metric,
        metric=Metric("val_accuracy" if higher_is_better else "val_error", "metric", higher_is_better),
        make_optimizer=lambda parameters: torch.optim.SGD(parameters, lr=config.lr, momentum=0.9),
        lr_at=lr_rule or (lambda epoch, _history: step_lr(config.lr, epoch, 2, 0.5)),
        channels_last=False, format_tag="nia-tiny/1")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--clips", action="store_true")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    fit(tiny_task(clips=args.clips, epochs=args.epochs), args.out, device_name="cpu", resume=args.resume)
    faulthandler.dump_traceback_later(120, exit=True)  # a process that hangs on its way out shows where, then ends (1)
