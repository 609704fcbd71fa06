"""All Former-DFER defaults in one place, and the named presets.

`official` is the NIA acceptance run as published (100 epochs, batch 8,
SGD) on the reference repository's recipe (zengqunzhao/Former-DFER,
`main_DFEW.py`): lr 0.01, momentum 0.9, weight decay 1e-4, `StepLR(step_size=40,
gamma=0.1)` stepped once per epoch, so epochs 1-40 run at 0.01, 41-80 at 1e-3
and 81-100 at 1e-4; 8 segments x 2 frames = 16 frames of 112 x 112. The
reference trains with batch 32; the NIA run used 8.

Early stopping is NIA's (the reference has none) and watches the validation
split's WAR. Its patience is 40 epochs, the step size: from any epoch the next
learning-rate step is at most 40 epochs away, so a plateau at lr 0.01 cannot
stop the run before the drop that usually lifts it. A patience of at least
`epochs` never stops a run.

The fields every training has (lr, batch_size, epochs, patience, amp, seed,
workers) come from `common.engine.train.TrainConfig`; Former-DFER's defaults
for them are set below.

`demo` is a tiny network (stem width 8, 1 T-Former layer, 64 x 64 input:
220,429 parameters) for the Makefile's synthetic clips on 2 CPU cores
(docs/dfer.md, "Demo recipe", has the data, the measurements and why each
value): lr 0.02, batch 16, 14 epochs with the step after epoch 10 and no
early stop (patience 14: eval-mode BatchNorm lags the weights at this rate,
so validation WAR jumps about until the step), flip without the random crop
(`random_crop=False`), and every clip's resized frames kept in memory after
the first epoch (`cache_frames=True`, which needs `workers=0`: the copies of
DataLoader workers end with each epoch). It is for checking the pipeline,
not for numbers.

A config travels inside every checkpoint as a plain dict (`to_dict`), so a
weights file says how to rebuild its model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from common.delivery.filenames import STATES  # ("F", "S", "D", "A", "N"): class index = position
from common.engine.presets import BN_MODES, named_preset
from common.engine.schedule import step_lr
from common.engine.train import TrainConfig

OPTIMIZERS = ("sgd",)


@dataclass(frozen=True)
class DFERConfig(TrainConfig):
    """Model, sampling and training settings (see the module docstring for the presets)."""

    num_classes: int = len(STATES)
    frames: int = 16                 # frames per clip fed to the model
    segments: int = 8                # the clip is cut into this many segments ...
    frames_per_segment: int = 2      # ... and this many consecutive frames are taken from each
    input_size: int = 112            # frames are resized / cropped to input_size x input_size
    pad_short: bool = False          # clips under `frames` frames: skipped (False) or padded by repetition
    crop_scale: float = 0.08         # training crops cover this to 100 % of the region's area (published 0.08)
    random_crop: bool = True         # training: random-sized crop (published); False: resized as at test
    cache_frames: bool = False       # keep each clip's decoded, resized frames in memory (workers 0, no crop)
    base_width: int = 64             # ResNet-18 stem channels; 64 is the published network
    s_depth: int = 1                 # CS-Former transformer layers (published 1)
    t_depth: int = 3                 # T-Former transformer layers (published 3)
    heads: int = 8                   # attention heads in both transformers (published 8)
    dropout: float = 0.0             # published 0
    optimizer: str = "sgd"           # one of OPTIMIZERS
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 8              # NIA's; the reference uses 32
    epochs: int = 100
    lr_step: int = 40                # StepLR step_size, in epochs
    lr_gamma: float = 0.1            # StepLR gamma
    patience: int = 40               # early stopping: epochs without a better validation WAR
    amp: bool = True                 # mixed precision; used on CUDA only
    seed: int = 0
    workers: int = 2                 # DataLoader decode processes per training process
    bn_mode: str = "train"           # "frozen": BatchNorm statistics fixed (DDP on CPU = one process; fine-tuning)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DFERConfig":
        """Rebuild from `to_dict()` output; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"config: unknown keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**data).validated()

    def validated(self) -> "DFERConfig":
        """Self, after checking every field; raises ValueError naming the field."""
        _check(self.num_classes >= 2, "num_classes", self.num_classes, ">= 2")
        _check(self.segments >= 1 and self.frames_per_segment >= 1, "segments/frames_per_segment",
               (self.segments, self.frames_per_segment), "both >= 1")
        _check(self.frames == self.segments * self.frames_per_segment, "frames", self.frames,
               f"segments x frames_per_segment = {self.segments * self.frames_per_segment}")
        _check(self.input_size >= 16, "input_size", self.input_size, ">= 16")
        _check(0.0 < self.crop_scale <= 1.0, "crop_scale", self.crop_scale, "in (0, 1]")
        _check(self.base_width >= 1 and self.heads >= 1 and (4 * self.base_width) % self.heads == 0,
               "base_width", self.base_width, f"4 x base_width a multiple of heads ({self.heads})")
        _check(self.s_depth >= 1 and self.t_depth >= 1, "s_depth/t_depth", (self.s_depth, self.t_depth), ">= 1")
        _check(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "in [0, 1)")
        _check(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, f"one of {OPTIMIZERS}")
        _check(self.lr > 0, "lr", self.lr, "> 0")
        _check(0.0 <= self.momentum < 1.0, "momentum", self.momentum, "in [0, 1)")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        _check(self.batch_size >= 1 and self.epochs >= 1, "batch_size/epochs", (self.batch_size, self.epochs),
               ">= 1")
        _check(self.lr_step >= 1, "lr_step", self.lr_step, ">= 1")
        _check(0.0 < self.lr_gamma <= 1.0, "lr_gamma", self.lr_gamma, "in (0, 1]")
        _check(self.patience >= 1, "patience", self.patience, ">= 1 (>= epochs never stops a run)")
        _check(self.workers >= 0, "workers", self.workers, ">= 0")
        _check(self.bn_mode in BN_MODES, "bn_mode", self.bn_mode, f"one of {BN_MODES}")
        return self

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `dfer.model.FormerDFER` for this config."""
        return {"num_classes": self.num_classes, "base_width": self.base_width, "num_frames": self.frames,
                "input_size": self.input_size, "s_depth": self.s_depth, "t_depth": self.t_depth,
                "heads": self.heads, "dropout": self.dropout}


def _check(ok: bool, field: str, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"config.{field}: {value!r}, expected {expected}")


PRESETS: dict[str, DFERConfig] = {
    "official": DFERConfig(),
    "demo": DFERConfig(base_width=8, t_depth=1, input_size=64, lr=0.02, batch_size=16, epochs=14, lr_step=10,
                       patience=14, random_crop=False, cache_frames=True, workers=0),
}


def lr_at(config: DFERConfig, epoch: int) -> float:
    """Learning rate of a 1-based epoch (the reference's StepLR, stepped after each epoch): a pure
    function of the config, so a resumed run needs no scheduler state."""
    if epoch < 1:
        raise ValueError(f"epoch {epoch}: epochs count from 1")
    return step_lr(config.lr, epoch, config.lr_step, config.lr_gamma)


def preset(name: str, **overrides: Any) -> DFERConfig:
    """The named preset with the given fields replaced (None values are ignored)."""
    return named_preset(PRESETS, name, overrides)
