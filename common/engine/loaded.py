"""What every model folder's `load_model` returns: one shape for the three tests."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from torch import nn

ConfigT = TypeVar("ConfigT")


@dataclass
class LoadedModel(Generic[ConfigT]):
    """A model in eval mode, the config it was built from, and a provenance note for metrics.json.

    `config` is the test's config object (`L2CSConfig`, `RITConfig`,
    `DFERConfig`); it is None only where a file carries none and none can
    be inferred (an original RITnet state_dict: its input size is the
    crop's, `ritnet.scoring.predictor_for`). `facts` says what the file was
    (`weights_format`, `epoch`, `init`, ...).
    """

    model: nn.Module
    config: ConfigT | None
    facts: dict[str, Any] = field(default_factory=dict)
