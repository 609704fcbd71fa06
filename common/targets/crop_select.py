"""Which manifest rows ``nia crops`` cuts, every other row counted under a reason, and the rows
handed to the workers in chunks."""
from __future__ import annotations

from collections import Counter
from typing import Iterator

import numpy as np
import pandas as pd

from common.targets.crop_geometry import CROP_NAMES
from common.targets.crop_index import INDEX_ONLY_FIELDS, INVALID_IMAGE, ROW_FIELDS, SKIPPED_COLUMNS
from common.targets.crop_resume import known_column, known_values


def _check_of(error: str) -> str:
    """``file: check: message`` -> ``check`` (common.delivery.image_checks)."""
    parts = error.split(": ", 2)
    return parts[1] if len(parts) == 3 else error


def _image_invalid(df: pd.DataFrame, invalid: pd.Series) -> pd.Series:
    """The invalid rows whose error is their image's (``image_error``, from nia index's header checks)."""
    if "image_error" not in df.columns:
        return pd.Series(False, index=df.index)
    image_error = df["image_error"].fillna("")
    return invalid & (image_error != "") & (image_error == df["error"].fillna(""))


def _frame_samples(df: pd.DataFrame, kind: pd.Series) -> pd.Series:
    """The frame samples: ``frame`` rows, and the damaged samples named as frames (a label without its PNG,
    a PNG without its label: ``nia split`` gives them their person's split)."""
    from common.delivery.splits import damaged_samples, sample_kinds

    if "sample_id" not in df.columns or "frame" not in df.columns:
        return kind == "frame"
    damaged = damaged_samples(df)
    return (kind == "frame") | (damaged & (sample_kinds(df) == "frame"))


def _data_reason(kind: pd.Series, for_image: pd.Series, image_errors: pd.Series) -> pd.Series:
    """The suite's skip reason of each invalid frame sample: its PNG missing, damaged, or not fit for its
    labels, else its label."""
    reason = pd.Series("invalid_label", index=kind.index, dtype=object)
    reason[kind == "label_only"] = "missing_image"
    checks = image_errors.map(_check_of)
    reason[checks.index] = np.where(checks == "PNG file", "unreadable_image", "invalid_image")
    return reason


def select_rows(df: pd.DataFrame, split_column: str | None) -> tuple[pd.DataFrame, Counter, pd.DataFrame]:
    """Valid frame rows with a split; every other row counted under a reason; and every invalid frame
    sample (damaged label or image, not the delivery's size, labels outside it, its PNG missing) listed by
    name with its split (SKIPPED_COLUMNS)."""
    skipped: Counter = Counter()
    kind = df["kind"].astype(object).fillna("?") if "kind" in df.columns else pd.Series("frame", index=df.index)
    keep = _frame_samples(df, kind)
    for value, count in kind[~keep].value_counts().items():
        skipped[f"not a frame (kind={value})"] += int(count)
    invalid = keep & ~df.get("valid", pd.Series(True, index=df.index)).fillna(False).astype(bool)
    for_image = _image_invalid(df, invalid)
    image_errors = df["image_error"][for_image] if for_image.any() else pd.Series(dtype=object)
    for check, count in image_errors.map(_check_of).value_counts().items():
        skipped[f"{INVALID_IMAGE}: {check}"] += int(count)
    no_png = invalid & ~for_image & (kind == "label_only")
    skipped["missing image (a label without its PNG)"] += int(no_png.sum())
    skipped["invalid label (see the error column)"] += int((invalid & ~for_image & ~no_png).sum())
    keep &= ~invalid
    if split_column is not None:
        no_split = keep & df[split_column].isna()
        skipped[f"no value in column {split_column!r}"] += int(no_split.sum())
        keep &= ~no_split
    errors = df["error"].astype(object).fillna("") if "error" in df.columns else pd.Series("", index=df.index)
    listed = pd.DataFrame({"sample_id": df["sample_id"][invalid], "crop": "",
                           "split": (df[split_column][invalid].astype(object).fillna("")
                                     if split_column is not None else "all"),
                           "png_path": df["png_path"][invalid], "reason": errors[invalid],
                           "skip_reason": _data_reason(kind[invalid], for_image[invalid], image_errors)},
                          columns=SKIPPED_COLUMNS)
    return df[keep], Counter({k: v for k, v in skipped.items() if v}), listed


def record_chunks(df: pd.DataFrame, split_column: str | None, size: int,
                   known: pd.DataFrame | None = None) -> Iterator[list[dict]]:
    """The rows as lists of plain dicts (nulls as None), ``size`` at a time, built lazily, each with
    the recorded fingerprint of its crops (``known``: :func:`common.targets.crop_resume.known_table`)."""
    columns = [c for c in (*ROW_FIELDS, *INDEX_ONLY_FIELDS) if c in df.columns]
    for start in range(0, len(df), size):
        part = df.iloc[start:start + size]
        frame = part[columns].copy()
        if split_column is not None:
            frame["split"] = part[split_column].astype(str)
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        for crop in CROP_NAMES:
            for record, value in zip(records, known_values(part["sample_id"], known, crop)):
                record[known_column(crop)] = value
        yield records
