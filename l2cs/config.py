"""All L2CS-Net defaults in one place, and the named presets.

`official` mirrors the conditions of the NIA acceptance run (ResNet-50,
90 bins of 4 deg, Adam, batch 16, 100 epochs, early stopping). `demo` is a
small network and input that trains on the synthetic dataset on 2 CPU
cores in a few minutes; it is for checking the pipeline, not for numbers.
On the recipe of docs/synthetic.md ("Demo recipe": 30-40 subjects x 8 clips
x 16 frames at 640x360) it reaches 8.7-9.3 deg on the test split (PASS; a
constant guess scores 14-18) in 2-4 minutes; the cosine decay is worth
~0.4 deg there, while a lower lr (5e-4) and a narrower network at a larger
input (8 channels at 224x112) were worse. `official` keeps the reference's
constant learning rate.

A config travels inside every checkpoint as a plain dict (`asdict`), so a
weights file says how to rebuild its model.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

from common.engine.presets import BN_MODES, named_preset
from common.engine.schedule import cosine_lr
from common.engine.train import TrainConfig

ARCH_CHOICES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
BIN_ANCHORS = ("centre", "edge")
LR_SCHEDULES = ("constant", "cosine")

# name -> (count, width in deg, start in deg): bins cover [start, start + count * width)
BIN_PRESETS: dict[str, tuple[int, float, float]] = {
    "nia": (90, 4.0, -180.0),       # Gaze360 layout, the one reported for the NIA run
    "mpiigaze": (28, 3.0, -42.0),   # MPIIGaze layout of the reference
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class L2CSConfig(TrainConfig):
    """Model, input and training settings (see the module docstring for the presets).

    The fields every training has (lr, batch_size, epochs, patience, amp,
    seed, workers) come from `TrainConfig`; L2CS-Net's defaults for them are
    set below.
    """

    arch: str = "resnet50"           # one of ARCH_CHOICES
    base_width: int = 64             # stem channels; 64 is the published ResNet, smaller only for demo
    input_width: int = 224           # two-eye crop size fed to the network (crops are resized if needed)
    input_height: int = 112
    bin_count: int = 90
    bin_width: float = 4.0
    bin_start: float = -180.0
    bin_anchor: str = "centre"       # decode at bin centres (ours) or lower edges (reference checkpoints)
    alpha: float = 1.0               # weight of the MSE term in each angle's loss
    lr: float = 1e-5                 # the reference's Adam learning rate
    lr_schedule: str = "constant"    # the reference's; "cosine" decays to 0 over `epochs`
    batch_size: int = 16
    epochs: int = 100
    patience: int = 10               # early stopping: epochs without a better validation MAE
    flip_prob: float = 0.5           # horizontal flip augmentation (negates yaw, keeps pitch)
    bn_mode: str = "train"           # "frozen" keeps BatchNorm running statistics fixed (pretrained)
    amp: bool = True                 # mixed precision; used on CUDA only
    seed: int = 0
    workers: int = 2

    def validated(self) -> "L2CSConfig":
        """Self, after checking every choice; raises ValueError naming the field."""
        super().validated()
        if self.arch not in ARCH_CHOICES:
            raise ValueError(f"config.arch: {self.arch!r}, expected one of {ARCH_CHOICES}")
        if self.bin_anchor not in BIN_ANCHORS:
            raise ValueError(f"config.bin_anchor: {self.bin_anchor!r}, expected one of {BIN_ANCHORS}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"config.lr_schedule: {self.lr_schedule!r}, expected one of {LR_SCHEDULES}")
        if self.bn_mode not in BN_MODES:
            raise ValueError(f"config.bn_mode: {self.bn_mode!r}, expected one of {BN_MODES}")
        if self.bin_count < 2 or self.bin_width <= 0:
            raise ValueError(f"config bins: {self.bin_count} x {self.bin_width} deg, expected >= 2 bins of > 0 deg")
        if self.base_width < 4 or self.input_width < 16 or self.input_height < 16:
            raise ValueError("config: base_width >= 4 and input size >= 16x16 expected, got "
                             f"{self.base_width}, {self.input_width}x{self.input_height}")
        return self

    def with_bins(self, preset: str) -> "L2CSConfig":
        """A copy using one of BIN_PRESETS."""
        if preset not in BIN_PRESETS:
            raise ValueError(f"bins {preset!r}, expected one of {sorted(BIN_PRESETS)}")
        count, width, start = BIN_PRESETS[preset]
        return replace(self, bin_count=count, bin_width=width, bin_start=start)


PRESETS: dict[str, L2CSConfig] = {
    "official": L2CSConfig(),
    "demo": L2CSConfig(arch="resnet18", base_width=24, input_width=112, input_height=56,
                       lr=1e-3, lr_schedule="cosine", batch_size=32, epochs=15, patience=5),
}


def lr_at(config: L2CSConfig, epoch: int, _history: Sequence[float] = ()) -> float:
    """Learning rate of a 1-based epoch: a pure function of the config, so `--resume` needs no scheduler state."""
    if config.lr_schedule == "cosine":
        return cosine_lr(config.lr, epoch, config.epochs)
    return config.lr


def preset(name: str, **overrides: Any) -> L2CSConfig:
    """The named preset with the given fields replaced (None values are ignored)."""
    return named_preset(PRESETS, name, overrides)
