"""The rows of one split of a crop dataset (`nia crops` output) that a test
can use, and how many it set aside and why (never dropped silently).

Set aside are the index's rows that lack a label or a file, and the crops
`nia crops` could not make, which `crops_skipped.csv` lists with their split
and the suite's skip reason: a damaged frame sample (broken label, missing or
damaged PNG) counts once for each of the test's crops, as its intact copy
would be scored once for each (issue 19)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from common.parquet_read import read_frame
from common.targets.crop_index import UNREADABLE
from common.targets.crops import CROP_INDEX_NAME, SKIPPED_NAME
from common.containment import refuse_escaping_paths
from common.verdicts.thresholds import SKIP_REASONS


@dataclass(frozen=True)
class CropRows:
    """Usable rows of one split, plus how many rows were set aside, by reason."""

    rows: pd.DataFrame
    skipped: dict[str, int]

    @property
    def n_in_split(self) -> int:
        """Every row of the split: the usable ones and the ones set aside."""
        return len(self.rows) + sum(self.skipped.values())


def read_crop_rows(data_dir: str | Path, *, crops: Sequence[str], split: str | None, columns: Sequence[str],
                   labels: Mapping[str, Sequence[str]], files: Mapping[str, str]) -> CropRows:
    """Rows of `data_dir/index.parquet` whose `crop` is one of `crops` (and of `split`, unless None).

    `labels` maps a skip reason to the columns that must all be present
    (e.g. `{"no_gaze_label": ["gaze_pitch_deg", "gaze_yaw_deg"]}`), `files`
    a skip reason to a path column whose file must exist (e.g.
    `{"missing_image": "jpg_path"}`). Each row is counted under its first
    failing reason, in that order. Raises FileNotFoundError / ValueError
    naming the file and what was expected.
    """
    data_dir = Path(data_dir)
    index_path = data_dir / CROP_INDEX_NAME
    if not index_path.is_file():
        raise FileNotFoundError(f"{data_dir}: expected a crop dataset directory with {CROP_INDEX_NAME} "
                                "(made by `nia crops MANIFEST OUT`)")
    frame = read_frame(index_path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{index_path}: missing columns {missing}; expected at least {list(columns)}")
    of_kind = frame["crop"].isin(list(crops))
    rows = frame[of_kind & (frame["split"] == split)] if split is not None else frame[of_kind]
    skipped = not_made(data_dir, crops, split)
    if rows.empty and not skipped:
        splits = sorted(frame.loc[of_kind, "split"].dropna().unique())
        raise ValueError(f"{index_path}: no {'/'.join(repr(c) for c in crops)} crops in split {split!r}; "
                         f"splits present: {splits}")
    refuse_escaping_paths(rows, list(files.values()), index_path, "crop_id")
    if "subject" in columns:
        require_subjects(rows, index_path, "crop_id")
    keep = np.ones(len(rows), dtype=bool)
    for reason, needed in labels.items():
        bad = keep & rows[list(needed)].isna().any(axis=1).to_numpy()
        skipped[reason], keep = skipped.get(reason, 0) + int(bad.sum()), keep & ~bad
    for reason, column in files.items():
        exists = np.array([isinstance(p, str) and (data_dir / p).is_file() for p in rows[column]], dtype=bool)
        bad = keep & ~exists
        skipped[reason], keep = skipped.get(reason, 0) + int(bad.sum()), keep & ~bad
    return CropRows(rows[keep].reset_index(drop=True), {k: v for k, v in skipped.items() if v})


def not_made(data_dir: Path, crops: Sequence[str], split: str | None) -> dict[str, int]:
    """The crops of `crops` in `split` (all splits if None) that `nia crops` listed as not made, by the
    suite's skip reason; a listed frame (crop empty: its label or image is damaged) counts once per crop.
    Nothing for a folder without the list (a crop dataset not made by `nia crops`)."""
    path = data_dir / SKIPPED_NAME
    if not path.is_file():
        return {}
    try:
        listed = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a readable list of skipped crops: {exc}") from None
    missing = [c for c in ("crop", "split", "reason") if c not in listed.columns]
    if missing:
        raise ValueError(f"{path}: columns missing: {', '.join(missing)}")
    if "skip_reason" not in listed.columns:  # an older nia crops: it listed only the frames invalid for their image
        listed["skip_reason"] = np.where(listed["crop"] == "", "invalid_image",
                                         np.where(listed["reason"].str.startswith(UNREADABLE), "unreadable_image",
                                                  "missing_crop"))
    unknown = sorted(set(listed["skip_reason"]) - set(SKIP_REASONS))
    if unknown:
        raise ValueError(f"{path}: skip_reason {unknown[0]!r} is not one of the suite's skip reasons")
    if split is not None:
        listed = listed[listed["split"] == split]
    per_row = np.where(listed["crop"] == "", len(crops), listed["crop"].isin(list(crops)).astype(int))
    counts = pd.Series(per_row, index=listed.index).groupby(listed["skip_reason"]).sum()
    return {str(reason): int(n) for reason, n in counts.items() if n}


def require_subjects(rows: pd.DataFrame, index_path: Path, id_column: str) -> None:
    """ValueError naming the index and its `subject` field when a row has none: the confidence interval
    resamples subjects (a null one stopped the bootstrap with a TypeError that named no file)."""
    missing = rows["subject"].isna().to_numpy()
    if missing.any():
        first = rows.loc[missing, id_column].iloc[0]
        raise ValueError(f"{index_path}: field 'subject' is empty on {int(missing.sum())} row(s) "
                         f"(first: {id_column} {first!r}); every sample needs its subject")
