"""``nia clips``: the clip dataset of the observer-state test (Former-DFER), one row per video.

Per video sample of the manifest (docs/architecture.md, "Clip dataset"): each
``kind == "video"`` row, and each damaged sample named as a video (a video
JSON whose mp4 is missing is a ``label_only`` row; ``nia split`` gives it its
person's split, so a test counts it as ``missing_video``, issue 19):

- **state**: the video JSON's ``condition`` where there is one, else the file
  name's state field (``label_source`` ``json``/``name``); where both exist
  and disagree, ``label_mismatch`` says so (``name D, json F``) and the JSON wins.
- **split**: the manifest's ``split`` column, as ``nia split`` wrote it.
- **n_frames**: counted by reading the stream (:func:`common.targets.video.probe`),
  never from the container header.
- **region** ``x0, y0, x1, y1`` (pixels, x1/y1 exclusive): the square the
  model sees. From labels (``region_source`` ``labels``): over the valid
  frame labels of the video (same ``video_stem``) that have both eye centres,
  the box around all eye centres; the square's side is that box's longer side
  plus ``face_scale - 1`` times the median distance between the two eyes
  (2.5 by default: a static head gets a square 2.5 eye-distances wide, about
  a face: brows to chin, cheek to cheek), centred on the box shifted down by
  ``face_shift`` (0.15) of the side, because the eyes sit in the upper half
  of a face; then moved inside the frame and no larger than its shorter side.
  Otherwise ``fixed``: the largest centred square of the frame.

Nothing is dropped: a video it cannot use stays in the index with
``usable = False`` and one ``reason``, the first that applies of
``missing`` (no mp4: none with its JSON's stem, or gone since ``nia index``),
``unreadable`` (does not open or decode, or yields fewer frames than its
header declares: damaged), ``too_short`` (fewer than ``min_frames``, 16),
``no_state``, ``invalid_row`` (the manifest row is not valid: see ``error``;
``nia split`` leaves such rows out) and ``no_split``.

Counting frames decodes every video once, so it runs in worker processes and
each result is appended to ``OUT/probe_cache.jsonl`` as it arrives: a rerun,
or a run after a kill, reads again only the mp4s whose path, size or mtime
changed. Everything else (labels, splits, regions) is recomputed from the
manifest and the options on every run, so a changed manifest row or option
is always reflected.
"""
from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from common.atomic import atomic_path, check_writable_folder, remove_stale_temps, write_text_atomic
from common.delivery.filenames import STATES
from common.targets.index_paths import refuse_escaping_paths
from common.parallel import map_chunks

CLIP_INDEX_NAME = "index.parquet"
SUMMARY_NAME = "clips_summary.json"
PROBE_CACHE_NAME = "probe_cache.jsonl"
REASONS = ("missing", "unreadable", "too_short", "no_state", "invalid_row", "no_split")
INDEX_COLUMNS = [
    "clip_id", "video_path", "split", "state", "label_source", "label_mismatch",
    "n_frames", "header_frames", "width", "height", "x0", "y0", "x1", "y1", "region_source", "label_frames",
    "subject", "inst", "image", "posture", "usable", "reason", "error", "video_size", "video_mtime_ns",
]
_INT_COLUMNS = ("n_frames", "header_frames", "width", "height", "x0", "y0", "x1", "y1", "label_frames",
                "video_size", "video_mtime_ns")


class ClipIndexError(ValueError):
    """A clip dataset that cannot be made or read; the message names the file and what to do."""


@dataclass(frozen=True)
class ClipOptions:
    """What the index depends on besides the manifest and the videos."""

    min_frames: int = 16
    face_scale: float = 2.5
    face_shift: float = 0.15

    def as_dict(self) -> dict[str, Any]:
        return {"min_frames": self.min_frames, "face_scale": self.face_scale, "face_shift": self.face_shift}


@dataclass
class ClipRows:
    """The usable clips of one split and the reasons its other clips are not used."""

    rows: pd.DataFrame
    skipped: dict[str, int]
    metadata: dict[str, str]


# --- labels and regions (vectorised over the manifest) ---------------------------------

def _column(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name].astype(object) if name in df.columns else pd.Series(None, index=df.index, dtype=object)


def resolve_states(videos: pd.DataFrame) -> pd.DataFrame:
    """``state``, ``label_source`` and ``label_mismatch`` per video row.

    The JSON's ``condition`` (a video label exists and gives a known state)
    wins over the name's ``state``; a disagreement is kept as ``name X, json Y``.
    """
    json_state = _column(videos, "condition").where(_column(videos, "json_path").notna())
    json_state = json_state.where(json_state.isin(STATES))
    name_state = _column(videos, "state").where(lambda s: s.isin(STATES))
    state = json_state.where(json_state.notna(), name_state)
    state = state.astype(object).where(state.notna(), None)
    source = np.where(json_state.notna(), "json", np.where(name_state.notna(), "name", ""))
    both = json_state.notna() & name_state.notna() & (json_state != name_state)
    mismatch = pd.Series("", index=videos.index, dtype=object)
    mismatch[both] = "name " + name_state[both].astype(str) + ", json " + json_state[both].astype(str)
    return pd.DataFrame({"state": state, "label_source": source, "label_mismatch": mismatch}, index=videos.index)


def eye_boxes(df: pd.DataFrame) -> pd.DataFrame:
    """Per ``video_stem``: the box around both eye centres over its valid frame labels
    (``xmin, xmax, ymin, ymax``), the median eye distance ``iod`` and the number of frames used."""
    needed = ["r_center_x", "r_center_y", "l_center_x", "l_center_y"]
    if any(c not in df.columns for c in needed + ["video_stem"]):
        return pd.DataFrame(columns=["xmin", "xmax", "ymin", "ymax", "iod", "label_frames"])
    frames = (df["kind"] == "frame") & df["valid"].fillna(False).astype(bool) & df["video_stem"].notna()
    part = df.loc[frames, ["video_stem", *needed]]
    part = part[part[needed].notna().all(axis=1)]
    rx, ry, lx, ly = (part[c].astype("float64") for c in needed)
    per_frame = pd.DataFrame({
        "video_stem": part["video_stem"].astype(str),
        "xmin": np.minimum(rx, lx), "xmax": np.maximum(rx, lx),
        "ymin": np.minimum(ry, ly), "ymax": np.maximum(ry, ly),
        "iod": np.hypot(rx - lx, ry - ly),
    })
    grouped = per_frame.groupby("video_stem", sort=False)
    return grouped.agg(xmin=("xmin", "min"), xmax=("xmax", "max"), ymin=("ymin", "min"), ymax=("ymax", "max"),
                       iod=("iod", "median"), label_frames=("iod", "size"))


def fixed_region(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest centred square of a ``width`` x ``height`` frame."""
    side = min(width, height)
    x0, y0 = (width - side) // 2, (height - side) // 2
    return x0, y0, x0 + side, y0 + side


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def label_region(box: dict[str, float], width: int, height: int,
                 options: ClipOptions) -> tuple[int, int, int, int] | None:
    """The face-sized square around the eye box (see the module docstring); None when the eyes'
    centre lies outside the frame or the box is degenerate (then the fixed crop is used)."""
    cx, cy = (box["xmin"] + box["xmax"]) / 2.0, (box["ymin"] + box["ymax"]) / 2.0
    if not (0 <= cx < width and 0 <= cy < height) or not math.isfinite(box["iod"]) or box["iod"] <= 0:
        return None
    side = max(box["xmax"] - box["xmin"], box["ymax"] - box["ymin"]) + (options.face_scale - 1.0) * box["iod"]
    return square_in_frame(cx, cy, side, width, height, shift_down=options.face_shift)


def square_in_frame(cx: float, cy: float, side: float, width: int, height: int, *,
                    shift_down: float = 0.0) -> tuple[int, int, int, int]:
    """The square of ``side`` px (rounded, at least 2, no larger than the frame's shorter side) centred on
    (cx, cy) moved down by ``shift_down`` of its side, then moved inside the frame."""
    side_px = int(min(max(_round_half_up(side), 2), width, height))
    cy += shift_down * side_px
    x0 = min(max(_round_half_up(cx - side_px / 2.0), 0), width - side_px)
    y0 = min(max(_round_half_up(cy - side_px / 2.0), 0), height - side_px)
    return x0, y0, x0 + side_px, y0 + side_px


# --- probing the videos (worker processes) ----------------------------------------------

def decoder_name() -> str:
    """What counts the frames: a cached count from another decoder version is not reused."""
    import cv2

    return f"opencv {cv2.__version__} ffmpeg, frames as stored"  # earlier counts were of auto-rotated frames


def probe_videos(items: list[tuple[str, int, int]], root: str) -> list[dict[str, Any]]:
    """Probe records (the cache's lines) for ``(video_path, size, mtime_ns)`` items under ``root``."""
    from common.targets.video import VideoError, probe

    decoder = decoder_name()
    records = []
    for rel, size, mtime in items:
        record: dict[str, Any] = {"video_path": rel, "size": size, "mtime_ns": mtime, "decoder": decoder,
                                  "n_frames": None, "header_frames": None, "width": None, "height": None,
                                  "rotation": 0, "error": ""}
        try:
            info = probe(Path(root) / rel)
        except VideoError as exc:
            record["error"] = str(exc)
        else:
            record.update(n_frames=info.n_frames, header_frames=info.header_frames,
                          width=info.width, height=info.height, rotation=info.rotation)
        records.append(record)
    return records


def _cache_key(record: dict[str, Any]) -> tuple:
    return record["video_path"], record["size"], record["mtime_ns"], record["decoder"]


def read_probe_cache(path: Path) -> dict[tuple, dict[str, Any]]:
    """The cache's records by (video_path, size, mtime_ns, decoder); a line cut by a kill is ignored."""
    records: dict[tuple, dict[str, Any]] = {}
    if not path.exists():
        return records
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
                records[_cache_key(record)] = record
            except (ValueError, KeyError, TypeError):
                continue
    return records


def _stat(root: Path, rel: str | None) -> tuple[int, int] | None:
    if not isinstance(rel, str):
        return None
    try:
        st = os.stat(root / rel)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _chunks(items: list[tuple[str, int, int]], size: int) -> Iterator[list[tuple[str, int, int]]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def probe_all(videos: pd.DataFrame, root: Path, out: Path, workers: int, chunk_size: int,
              progress: bool) -> tuple[dict[str, dict[str, Any]], Counter]:
    """Probe record per video_path (reused from the cache where the mp4 is unchanged) and counts."""
    cache_path = out / PROBE_CACHE_NAME
    cached = read_probe_cache(cache_path)
    decoder = decoder_name()
    records: dict[str, dict[str, Any]] = {}
    todo: list[tuple[str, int, int]] = []
    counts: Counter = Counter()
    for rel in dict.fromkeys(videos["video_path"].dropna().astype(str)):
        st = _stat(root, rel)
        if st is None:
            records[rel] = {"video_path": rel, "n_frames": None, "header_frames": None, "width": None,
                            "height": None, "error": f"{root / rel}: no such file", "size": None, "mtime_ns": None,
                            "missing": True}
            counts["missing"] += 1
            continue
        hit = cached.get((rel, st[0], st[1], decoder))
        if hit is not None:
            records[rel] = hit
            counts["reused"] += 1
        else:
            todo.append((rel, st[0], st[1]))
    with open(cache_path, "a", encoding="utf-8") as journal:
        for part in map_chunks(probe_videos, _chunks(todo, chunk_size), str(root), workers=workers,
                               total=len(todo), desc="clips", unit="video", progress=progress):
            for record in part:
                records[record["video_path"]] = record
                journal.write(json.dumps(record, ensure_ascii=False) + "\n")
            journal.flush()
            counts["probed"] += len(part)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records.values() if r.get("decoder"))
    write_text_atomic(cache_path, lines)  # compacted: only this manifest's current files
    return records, counts


# --- the index -----------------------------------------------------------------------

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
    for column in _INT_COLUMNS:
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


def _counts(column: pd.Series) -> dict[str, int]:
    return {(k or "none"): int(v) for k, v in column.value_counts().sort_index().items()}


def summarize(index: pd.DataFrame, df: pd.DataFrame, counts: Counter, options: ClipOptions,
              manifest_sha256: str, rotated: list[str] | None = None) -> dict[str, Any]:
    """What the run found: usable clips per split, every unusable one under its reason, and how labels
    and regions were decided."""
    unusable = index[~index["usable"]]
    by_reason = unusable["reason"].value_counts()

    split_of = index["split"].fillna("(none)")
    per_split: dict[str, dict[str, Any]] = {}
    for split in sorted(split_of.unique()):
        rows = index[split_of == split]
        bad = rows.loc[~rows["usable"], "reason"].value_counts()
        per_split[split] = {"usable": int(rows["usable"].sum()),
                            "unusable": {r: int(bad[r]) for r in REASONS if r in bad}}
    return {
        "manifest_rows": int(len(df)),
        "videos": int(len(index)),
        "usable": int(index["usable"].sum()),
        "unusable": {r: int(by_reason[r]) for r in REASONS if r in by_reason},
        "by_split": per_split,
        "videos_probed": int(counts["probed"]),
        "videos_reused": int(counts["reused"]),
        "videos_missing": int(counts["missing"]),
        "videos_rotated": sorted(rotated or []),  # tagged with a rotation: read as stored, not turned
        "label_sources": _counts(index["label_source"]),
        "label_mismatches": int((index["label_mismatch"] != "").sum()),
        "region_sources": _counts(index["region_source"]),
        "options": options.as_dict(),
        "decoder": decoder_name(),
        "manifest_sha256": manifest_sha256,
    }


def write_index(index: pd.DataFrame, path: Path, metadata: dict[str, str]) -> None:
    """``index.parquet`` with ``nia.*`` metadata, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(index, preserve_index=False)
    merged = dict(table.schema.metadata or {})
    merged.update({key.encode(): value.encode() for key, value in metadata.items()})
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(merged), tmp)


def write_clip_dataset(df: pd.DataFrame, root: Path, out: Path, *, options: ClipOptions = ClipOptions(),
                       workers: int = 1, chunk_size: int = 8, manifest_sha256: str = "",
                       progress: bool = True) -> dict[str, Any]:
    """Probe every video of the manifest, write ``OUT/index.parquet`` and ``OUT/clips_summary.json``.

    Returns the summary. The manifest needs its ``split`` column (``nia split``).
    """
    if "split" not in df.columns:
        raise ClipIndexError("the manifest has no 'split' column: run nia split first")
    if options.min_frames < 1:
        raise ClipIndexError(f"min_frames must be >= 1, got {options.min_frames}")
    root = Path(root).resolve()
    check_writable_folder(out)
    remove_stale_temps(out)  # what a killed run left
    videos = video_samples(df)
    records, counts = probe_all(videos, root, out, workers, chunk_size, progress)
    index = build_rows(df, records, options)
    rotated = [rel for rel, record in records.items() if record.get("rotation")]
    summary = summarize(index, df, counts, options, manifest_sha256, rotated)
    write_index(index, out / CLIP_INDEX_NAME, {
        "nia.root": str(root), "nia.manifest_sha256": manifest_sha256,
        "nia.clip_options": json.dumps(options.as_dict()), "nia.clips_summary": json.dumps(summary),
    })
    write_text_atomic(out / SUMMARY_NAME, json.dumps(summary, indent=1) + "\n")
    return summary


# --- reading it back -------------------------------------------------------------------

def _read_index(clips_dir: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(clips_dir) / CLIP_INDEX_NAME
    if not path.is_file():
        raise ClipIndexError(f"{path}: no clip index (run nia clips MANIFEST {clips_dir} first)")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ClipIndexError(f"{path}: not a readable parquet clip index: {exc}") from None
    metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items() if k.startswith(b"nia.")}
    if "nia.root" not in metadata:
        raise ClipIndexError(f"{path}: parquet metadata lacks 'nia.root': not written by nia clips")
    index = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise ClipIndexError(f"{path}: columns missing: {', '.join(missing)}")
    try:
        refuse_escaping_paths(index, ["video_path"], path, "clip_id")
    except ValueError as exc:
        raise ClipIndexError(str(exc)) from None
    return index, metadata


def read_clip_index(clips_dir: str | Path, split: str) -> ClipRows:
    """The usable clips of ``split`` (rows sorted by clip_id) and the reasons of its unusable ones."""
    index, metadata = _read_index(Path(clips_dir))
    in_split = index["split"] == split
    rows = index[in_split & index["usable"]].reset_index(drop=True)
    reasons = index.loc[in_split & ~index["usable"], "reason"].value_counts()
    return ClipRows(rows=rows, skipped={r: int(reasons[r]) for r in REASONS if r in reasons}, metadata=metadata)


def check_unchanged(rows: pd.DataFrame, root: Path, clips_dir: str | Path) -> None:
    """ClipIndexError naming the first present mp4 of ``rows`` (index rows) whose size or mtime is not what
    ``nia clips`` recorded: its frame count, region and state were decided on another file (issue 19)."""
    for rel, size, mtime in zip(rows["video_path"], rows["video_size"], rows["video_mtime_ns"]):
        now = _stat(root, rel)
        if now is not None and now != (size, mtime):
            raise ClipIndexError(
                f"{root / rel}: changed since nia clips indexed it in {Path(clips_dir) / CLIP_INDEX_NAME} "
                f"(size {size} -> {now[0]} bytes, mtime_ns {mtime} -> {now[1]}): run nia clips again "
                "(a copy that kept no modification times needs it too)")


def video_root(clips_dir: str | Path, override: Path | None = None) -> Path:
    """Where the index's ``video_path`` values live: ``override`` when given, else the index's ``nia.root``.

    A folder is taken when it holds the index's first video (any folder, for
    an index without videos). A given ``override`` that fails is an error, not
    replaced by the stored root (that could be another copy of the data); the
    error names the folder tried and why it failed.
    """
    index, metadata = _read_index(Path(clips_dir))
    first = next(iter(index["video_path"].dropna()), None)
    if override is not None:
        what, folder = "the given video root", Path(override)
    else:
        what, folder = "nia.root of the clip index", Path(metadata["nia.root"])
    if not folder.is_dir():
        why = "no such folder"
    elif first is not None and not (folder / first).is_file():
        why = f"lacks {first}"
    else:
        return folder
    hint = "" if override is not None else "; pass the folder the videos moved to"
    raise ClipIndexError(f"{Path(clips_dir) / CLIP_INDEX_NAME}: cannot find the videos: tried {what} {folder} "
                         f"({why}){hint}")
