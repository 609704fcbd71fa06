"""The clip index's rows: one per video sample of the manifest, with its state, region, frame
count and, for a video it cannot use, one reason (:mod:`common.targets.clips`)."""
from __future__ import annotations

from typing import Any

import pandas as pd

from common.targets.clip_index import INDEX_COLUMNS, INT_COLUMNS
from common.targets.clip_labels import ClipOptions, eye_boxes, fixed_region, label_region, resolve_states


def _unreadable(record: dict[str, Any]) -> str:
    """Why a probed video cannot be used as a whole ('' when it can)."""
    if record.get("error"):
        return record["error"]
    n, header = record.get("n_frames") or 0, record.get("header_frames") or 0
    if n == 0:
        return f"{record['video_path']}: no frame decodes"
    if n < header:
        return (f"{record['video_path']}: the stream yields {n} frames but the header declares {header} "
                "(truncated or damaged)")
    return ""


def video_samples(df: pd.DataFrame) -> pd.DataFrame:
    """The manifest's video samples: its ``video`` rows and the damaged samples named as videos."""
    from common.delivery.splits import damaged_samples, sample_kinds

    videos = df["kind"] == "video"
    if "frame" in df.columns and "sample_id" in df.columns:
        videos |= damaged_samples(df) & (sample_kinds(df) == "video") & (df["kind"] != "image_only")
    return df[videos]


def _missing(row: pd.Series, rel: Any, record: dict[str, Any]) -> str:
    """Why the sample has no mp4 ('' when it has one)."""
    if not isinstance(rel, str):
        return f"{row.get('json_path') or row['sample_id']}: no mp4 video with this stem"
    return record["error"] if record.get("missing") else ""


def build_rows(df: pd.DataFrame, records: dict[str, dict[str, Any]], options: ClipOptions) -> pd.DataFrame:
    """One index row per video sample of the manifest."""
    videos = video_samples(df)
    states = resolve_states(videos)
    boxes = eye_boxes(df)
    box_of = boxes.to_dict("index")
    rows = []
    for (index, row), state in zip(videos.iterrows(), states.itertuples(index=False)):
        rel = row.get("video_path")
        record = records.get(rel, {}) if isinstance(rel, str) else {}
        missing = _missing(row, rel, record)
        problem = missing or _unreadable(record)
        width, height = record.get("width") or 0, record.get("height") or 0
        stem = row.get("video_stem")
        box = box_of.get(stem) if isinstance(stem, str) else None
        region, region_source = None, ""
        if width and height:
            region = label_region(box, width, height, options) if box else None
            region_source = "labels" if region else "fixed"
            region = region or fixed_region(width, height)
        split = row.get("split")
        split = split if isinstance(split, str) and split else None
        n_frames = record.get("n_frames")
        valid = bool(row.get("valid")) if pd.notna(row.get("valid")) else False
        if missing:
            reason = "missing"
        elif problem:
            reason = "unreadable"
        elif n_frames < options.min_frames:
            reason = "too_short"
        elif not isinstance(state.state, str):
            reason = "no_state"
        elif not valid:
            reason = "invalid_row"
        elif split is None:
            reason = "no_split"
        else:
            reason = ""
        error = problem or ("" if valid else str(row.get("error") or ""))
        rows.append({
            "clip_id": row["sample_id"], "video_path": rel, "split": split,
            "state": state.state if isinstance(state.state, str) else None,
            "label_source": state.label_source, "label_mismatch": state.label_mismatch,
            "n_frames": n_frames, "header_frames": record.get("header_frames"), "width": width or None,
            "height": height or None, **dict(zip(("x0", "y0", "x1", "y1"), region or (None,) * 4)),
            "region_source": region_source, "label_frames": int(box["label_frames"]) if box else 0,
            "subject": _first(row, "subject", "metaid"), "inst": _first(row, "inst", "device"),
            "image": _first(row, "image", "image_type"), "posture": _first(row, "posture", "posture_code"),
            "usable": not reason, "reason": reason, "error": error,
            "video_size": record.get("size"), "video_mtime_ns": record.get("mtime_ns"),
        })
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    for column in INT_COLUMNS:
        # from the Python ints, not through the float64 that a None gives the column: an mtime in ns
        # needs 61 bits, and a rounded one made every video look changed once one mp4 was missing
        index[column] = pd.array([row[column] for row in rows], dtype="Int64")
    index["usable"] = index["usable"].astype(bool)
    return index.sort_values("clip_id", kind="stable").reset_index(drop=True)


def _first(row: pd.Series, *names: str) -> str | None:
    for name in names:
        value = row.get(name)
        if isinstance(value, str) and value:
            return value
    return None
