"""The per-epoch training log (`log.csv`) and its plot (`curves.png`), both
written atomically: a kill never leaves a truncated file."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

from common.atomic import atomic_path, write_text_atomic

LOG_NAME = "log.csv"
CURVES_NAME = "curves.png"


def append_log(path: Path, row: dict[str, Any], columns: Sequence[str], keep_until: int | None = None) -> None:
    """Add one epoch row to the log; `keep_until` first drops rows after that epoch (a resumed run)."""
    rows = []
    if path.is_file():
        with path.open(newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if keep_until is None or int(r["epoch"]) <= keep_until]
    rows.append({k: row[k] for k in columns})
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())


def write_curves(out: Path, metric_column: str, metric_label: str, threshold: float | None,
                 higher_is_better: bool) -> None:
    """curves.png beside log.csv: train loss and the validation metric per epoch, best epoch marked."""
    import pandas as pd

    from common.plots import training_curves

    log = pd.read_csv(out / LOG_NAME)
    png = training_curves(log, metric_column, metric_label, threshold, higher_is_better=higher_is_better)
    with atomic_path(out / CURVES_NAME) as tmp:
        tmp.write_bytes(png)
