"""All RIT-Net defaults in one place, and the named presets.

`official` mirrors the NIA acceptance conditions and the reference's
recipe: DenseNet2D at width 32 with dropout 0.2 (the published network),
per-eye crops of 160x96, Adam at lr 1e-3 (reference `opt.py`), batch 16
and 100 epochs (NIA), ReduceLROnPlateau with the reference's settings
(torch's default factor 0.1, patience 5 epochs; the reference steps it on
the validation loss), early stopping on the validation mIoU. `demo` is a
narrower network that trains on the synthetic crops on 2 CPU cores in a
few minutes; it is for checking the pipeline, not for numbers.

A config travels inside every checkpoint as a plain dict (`to_dict`), so a
weights file says how to rebuild its model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ritnet.model import DOWNSAMPLING, INIT_CHOICES


@dataclass(frozen=True)
class RITConfig:
    """Model, input and training settings (see the module docstring for the presets)."""

    channels: int = 32               # block width; 32 is the published network, smaller only for demo
    dropout: float = 0.2             # the reference's
    init: str = "reference"          # weight initialisation, one of INIT_CHOICES (ritnet.model.DenseNet2D)
    input_width: int = 160           # per-eye crop fed to the network (multiples of 16)
    input_height: int = 96
    num_classes: int = 3             # NIA class maps: background, eye region, iris
    lr: float = 1e-3                 # Adam, the reference's
    batch_size: int = 16
    epochs: int = 100
    patience: int = 10               # early stopping: epochs without a better validation mIoU
    plateau_factor: float = 0.1      # ReduceLROnPlateau(factor), torch's default the reference keeps
    plateau_patience: int = 5        # ReduceLROnPlateau(patience), the reference's
    augment: bool = True             # the reference's cheap augmentations (ritnet.dataset) on training items
    seed: int = 0
    workers: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RITConfig":
        """Rebuild from `to_dict()` output; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"config: unknown keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**data).validated()

    def validated(self) -> "RITConfig":
        """Self, after checking every field; raises ValueError naming the field."""
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
        for name in ("batch_size", "epochs", "patience", "plateau_patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"config.{name}: {getattr(self, name)}, expected >= 1")
        if self.workers < 0:
            raise ValueError(f"config.workers: {self.workers}, expected >= 0")
        return self


PRESETS: dict[str, RITConfig] = {
    "official": RITConfig(),
    "demo": RITConfig(channels=16, epochs=8, patience=4, plateau_patience=2),
}


def preset(name: str, **overrides: Any) -> RITConfig:
    """The named preset with the given fields replaced (None values are ignored)."""
    if name not in PRESETS:
        raise ValueError(f"preset {name!r}, expected one of {sorted(PRESETS)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(PRESETS[name], **changes).validated()
