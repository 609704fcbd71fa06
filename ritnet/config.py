"""All RIT-Net defaults in one place, and the named presets.

`official` mirrors the NIA acceptance conditions and the reference's
recipe: DenseNet2D at width 32 with dropout 0.2 (the published network),
per-eye crops of 160x96, Adam at lr 1e-3 (reference `opt.py`), batch 16
and 100 epochs (NIA), ReduceLROnPlateau with the reference's settings
(torch's default factor 0.1, patience 5 epochs), early stopping on the
validation mIoU. The reference steps its plateau rule on the validation
loss; we step it on the validation mIoU, the metric early stopping and the
verdict follow (the validation split then needs no loss targets).

`demo` is a narrow network that trains on the bundled synthetic crops on 2
CPU cores in a few minutes (docs/ritnet.md, "Demo"); it checks the
pipeline, it says nothing about the published network.

A config travels inside every checkpoint as a plain dict (`to_dict`), so a
weights file says how to rebuild its model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from common.engine.presets import BN_MODES, named_preset
from common.engine.schedule import cosine_lr, plateau_lr
from common.engine.train import TrainConfig
from ritnet.model import DOWNSAMPLING, INIT_CHOICES

LR_SCHEDULES = ("plateau", "cosine")


@dataclass(frozen=True)
class RITConfig(TrainConfig):
    """Model, input and training settings (see the module docstring for the presets).

    The fields every training has (lr, batch_size, epochs, patience, amp,
    seed, workers) come from `TrainConfig`; RIT-Net's defaults for them are
    set below.
    """

    channels: int = 32               # block width; 32 is the published network, smaller only for demo
    dropout: float = 0.2             # the reference's
    init: str = "reference"          # weight initialisation, one of INIT_CHOICES (ritnet.model.DenseNet2D)
    input_width: int = 160           # network input (multiples of 16); crops of another size are resized
    input_height: int = 96
    num_classes: int = 3             # NIA class maps: background, eye region, iris
    lr: float = 1e-3                 # Adam, the reference's
    lr_schedule: str = "plateau"     # "plateau": ReduceLROnPlateau on val mIoU (reference); "cosine": demo
    batch_size: int = 16
    epochs: int = 100
    patience: int = 10               # early stopping: epochs without a better validation mIoU
    plateau_factor: float = 0.1      # ReduceLROnPlateau(factor), torch's default the reference keeps
    plateau_patience: int = 5        # ReduceLROnPlateau(patience), the reference's
    augment: bool = True             # the reference's cheap augmentations (ritnet.dataset) on training items
    bn_mode: str = "train"           # "frozen": BatchNorm statistics fixed (fine-tuning with small batches)
    amp: bool = True                 # mixed precision; used on CUDA only
    seed: int = 0
    workers: int = 2

    def validated(self) -> "RITConfig":
        """Self, after checking every field; raises ValueError naming the field."""
        super().validated()
        if self.channels < 1:
            raise ValueError(f"config.channels: {self.channels}, expected >= 1")
        if self.init not in INIT_CHOICES:
            raise ValueError(f"config.init: {self.init!r}, expected one of {INIT_CHOICES}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"config.dropout: {self.dropout}, expected 0 <= dropout < 1")
        for name in ("input_width", "input_height"):
            value = getattr(self, name)
            if value < DOWNSAMPLING or value % DOWNSAMPLING:
                raise ValueError(f"config.{name}: {value}, expected a positive multiple of {DOWNSAMPLING}")
        if self.num_classes < 2:
            raise ValueError(f"config.num_classes: {self.num_classes}, expected >= 2")
        if self.lr <= 0 or not 0.0 < self.plateau_factor < 1.0:
            raise ValueError(f"config.lr / plateau_factor: {self.lr}, {self.plateau_factor}; expected lr > 0 "
                             "and 0 < plateau_factor < 1")
        if self.bn_mode not in BN_MODES:
            raise ValueError(f"config.bn_mode: {self.bn_mode!r}, expected one of {BN_MODES}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"config.lr_schedule: {self.lr_schedule!r}, expected one of {LR_SCHEDULES}")
        for name in ("patience", "plateau_patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"config.{name}: {getattr(self, name)}, expected >= 1")
        return self


PRESETS: dict[str, RITConfig] = {
    "official": RITConfig(),
    "demo": RITConfig(channels=8, dropout=0.0, init="torch", input_width=80, input_height=48, lr=2e-3,
                      lr_schedule="cosine", batch_size=8, epochs=3, patience=3),
}


def lr_at(config: RITConfig, epoch: int, history: Sequence[float] = ()) -> float:
    """Learning rate of a 1-based epoch given the validation mIoUs before it (pure: `--resume` replays it)."""
    if config.lr_schedule == "cosine":
        return cosine_lr(config.lr, epoch, config.epochs)
    return plateau_lr(config.lr, history, higher_is_better=True, factor=config.plateau_factor,
                      patience=config.plateau_patience)


def preset(name: str, **overrides: Any) -> RITConfig:
    """The named preset with the given fields replaced (None values are ignored)."""
    return named_preset(PRESETS, name, overrides)
