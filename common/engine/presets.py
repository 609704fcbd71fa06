"""Named presets of a model's config, shared by the three model folders.

A model folder's `config.py` holds its own values (the config dataclass,
`PRESETS = {"official": ..., "demo": ...}`, its choices); picking a preset,
applying command-line overrides and the BatchNorm modes are the same for all.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, TypeVar

BN_MODES = ("train", "frozen")  # "frozen": BatchNorm running statistics fixed (`common.nn.batchnorm`)

ConfigT = TypeVar("ConfigT")


def named_preset(presets: Mapping[str, ConfigT], name: str, overrides: Mapping[str, Any]) -> ConfigT:
    """The named preset with the given fields replaced (None values are ignored), validated."""
    if name not in presets:
        raise ValueError(f"preset {name!r}, expected one of {sorted(presets)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(presets[name], **changes).validated()  # type: ignore[type-var, attr-defined]
