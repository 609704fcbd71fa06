"""Where a training run stands: saved in every checkpoint so `--resume` continues exactly."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Progress:
    """Last completed epoch, the best validation metric so far, and every epoch's metric.

    `history` feeds learning-rate rules that look back (a plateau rule), so a
    resumed run decides as an uninterrupted one would.
    """

    epoch: int = 0                 # last completed epoch
    best: float | None = None      # best validation metric so far (None before the first finite one)
    best_epoch: int = 0
    stale_epochs: int = 0          # epochs since `best` last improved
    history: list[float] = field(default_factory=list)

    def record(self, epoch: int, value: float, higher_is_better: bool) -> bool:
        """Note an epoch's validation metric; True when it is a new best (NaN never is)."""
        self.epoch = epoch
        self.history.append(float(value))
        if not math.isnan(value) and (self.best is None or
                                      (value > self.best if higher_is_better else value < self.best)):
            self.best, self.best_epoch, self.stale_epochs = float(value), epoch, 0
            return True
        self.stale_epochs += 1
        return False

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> "Progress":
        """From a checkpoint's `progress`; also reads L2CS files saved before the engine (`best_mae`)."""
        saved = dict(saved)
        if "best_mae" in saved:
            best = saved.pop("best_mae")
            saved["best"] = None if best is None or math.isinf(best) else best
        return cls(**saved)
