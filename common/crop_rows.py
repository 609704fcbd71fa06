"""Selecting the rows of a crop dataset's index (`nia crops` output, see
docs/architecture.md "Crop dataset") that a test can use, and counting every
row set aside under a reason.

Each test names the crop kind(s) it reads, the columns it needs, and its
checks in priority order; a row failing several checks is counted once,
under the first. Example (RIT-Net's per-eye crops)::

    select_crop_rows(data_dir, "test", crops=("r_eye", "l_eye"), columns=COLUMNS,
                     checks=[("missing_image", file_missing("jpg_path")),
                             ("missing_class_map", file_missing("png_path"))])

L2CS-Net's `read_eye_crops` is the same selection with
`checks=[("no_gaze_label", value_missing("gaze_pitch_deg", "gaze_yaw_deg")),
("missing_image", file_missing("jpg_path"))]`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from common.crops import CROP_INDEX_NAME

# (rows, data_dir) -> bool array, True where the row fails the check
RowTest = Callable[[pd.DataFrame, Path], np.ndarray]


@dataclass(frozen=True)
class CropRows:
    """Usable crop rows of one split, plus how many rows were set aside and why."""

    rows: pd.DataFrame
    skipped: dict[str, int]


def file_missing(column: str) -> RowTest:
    """A check failing rows whose `column` (a path relative to the crop folder) is empty or not a file."""
    def test(rows: pd.DataFrame, data_dir: Path) -> np.ndarray:
        return np.array([not (isinstance(p, str) and p and (data_dir / p).is_file()) for p in rows[column]],
                        dtype=bool)
    return test


def value_missing(*columns: str) -> RowTest:
    """A check failing rows where any of `columns` is null (NaN / None)."""
    def test(rows: pd.DataFrame, _: Path) -> np.ndarray:
        return rows[list(columns)].isna().any(axis=1).to_numpy()
    return test


def read_crop_index(data_dir: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """`data_dir/index.parquet`, checked for `columns`; errors name the file and what was expected."""
    index_path = Path(data_dir) / CROP_INDEX_NAME
    if not index_path.is_file():
        raise FileNotFoundError(f"{data_dir}: expected a crop dataset directory with {CROP_INDEX_NAME} "
                                "(made by `nia crops MANIFEST OUT`)")
    frame = pd.read_parquet(index_path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{index_path}: missing columns {missing}; expected at least {list(columns)}")
    return frame


def select_crop_rows(data_dir: str | Path, split: str | None, *, crops: Sequence[str], columns: Sequence[str],
                     checks: Sequence[tuple[str, RowTest]]) -> CropRows:
    """Rows of kind `crops` in `split` (all splits if None) that pass every check.

    Raises ValueError naming the index when the split holds no such crop at
    all; reasons with a zero count are left out of `skipped`.
    """
    data_dir = Path(data_dir)
    frame = read_crop_index(data_dir, ("crop", "split", *columns))
    of_kind = frame[frame["crop"].isin(list(crops))]
    rows = of_kind if split is None else of_kind[of_kind["split"] == split]
    if rows.empty:
        splits = sorted(of_kind["split"].dropna().unique())
        raise ValueError(f"{data_dir / CROP_INDEX_NAME}: no {'/'.join(crops)} crops in split {split!r}; "
                         f"splits present: {splits}")
    keep = np.ones(len(rows), dtype=bool)
    skipped: dict[str, int] = {}
    for reason, test in checks:
        kept = np.flatnonzero(keep)  # each check sees only the rows no earlier check set aside
        failed = np.asarray(test(rows.iloc[kept], data_dir), dtype=bool)
        if failed.any():
            skipped[reason] = int(failed.sum())
            keep[kept[failed]] = False
    return CropRows(rows[keep].reset_index(drop=True), skipped)
