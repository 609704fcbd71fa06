"""The skeleton of every model's training entry point (`l2cs/train.py`, `ritnet/train.py`, `dfer/train.py`).

A train script's click command gathers its options and hands them here:
`resolve_config` reads OUT/last.pt on `--resume` and picks the config (the
saved one with the options given again, else the preset with the options);
the script then builds its `TrainTask` and calls `common.engine.train.fit`
with that config and the read `last`. The shared click options are
`common.cli.entry.train_*_options`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from common.engine.presets import named_preset
from common.engine.train import TrainConfig, read_last

ConfigT = TypeVar("ConfigT", bound=TrainConfig)


def resolve_config(config_class: type[ConfigT], presets: Mapping[str, ConfigT], *, out: Path, resume: bool,
                   read_tags: tuple[str, ...], preset_name: str, overrides: Mapping[str, Any],
                   fresh: Callable[[ConfigT], ConfigT] | None = None) -> tuple[ConfigT, dict[str, Any] | None]:
    """The run's config and OUT/last.pt as read on `--resume` (None when not resuming or none is there).

    On resume the saved config with the options given again (None: not
    given); else the preset with them, then `fresh` (what only a new run
    applies, e.g. L2CS-Net's `--bins` layout).
    """
    last = read_last(out, resume, read_tags)
    if last is not None:
        return config_class.resumed(last["config"], dict(overrides)), last
    config = named_preset(presets, preset_name, overrides)
    return (fresh(config) if fresh is not None else config), last
