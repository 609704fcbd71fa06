"""The clip index file (``OUT/index.parquet``): its columns, writing it, and reading it back for a test."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common.atomic import atomic_path
from common.parquet_read import UnreadableParquet, read_table
from common.targets.clip_probe import file_stat
from common.containment import refuse_escaping_paths


CLIP_INDEX_NAME = "index.parquet"
REASONS = ("missing", "unreadable", "too_short", "no_state", "invalid_row", "no_split")
INDEX_COLUMNS = [
    "clip_id", "video_path", "split", "state", "label_source", "label_mismatch",
    "n_frames", "header_frames", "width", "height", "x0", "y0", "x1", "y1", "region_source", "label_frames",
    "subject", "inst", "image", "posture", "usable", "reason", "error", "video_size", "video_mtime_ns",
]
INT_COLUMNS = ("n_frames", "header_frames", "width", "height", "x0", "y0", "x1", "y1", "label_frames",
                "video_size", "video_mtime_ns")


class ClipIndexError(ValueError):
    """A clip dataset that cannot be made or read; the message names the file and what to do."""


@dataclass
class ClipRows:
    """The usable clips of one split and the reasons its other clips are not used."""

    rows: pd.DataFrame
    skipped: dict[str, int]
    metadata: dict[str, str]


def write_index(index: pd.DataFrame, path: Path, metadata: dict[str, str]) -> None:
    """``index.parquet`` with ``nia.*`` metadata, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(index, preserve_index=False)
    merged = dict(table.schema.metadata or {})
    merged.update({key.encode(): value.encode() for key, value in metadata.items()})
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(merged), tmp)


def read_index(clips_dir: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    import pyarrow as pa

    path = Path(clips_dir) / CLIP_INDEX_NAME
    if not path.is_file():
        raise ClipIndexError(f"{path}: no clip index (run nia clips MANIFEST {clips_dir} first)")
    try:
        table = read_table(path)
    except UnreadableParquet as exc:
        raise ClipIndexError(f"{path}: not a readable parquet clip index: {exc.error}") from None
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
    index, metadata = read_index(Path(clips_dir))
    in_split = index["split"] == split
    rows = index[in_split & index["usable"]].reset_index(drop=True)
    reasons = index.loc[in_split & ~index["usable"], "reason"].value_counts()
    return ClipRows(rows=rows, skipped={r: int(reasons[r]) for r in REASONS if r in reasons}, metadata=metadata)


def check_unchanged(rows: pd.DataFrame, root: Path, clips_dir: str | Path) -> None:
    """ClipIndexError naming the first present mp4 of ``rows`` (index rows) whose size or mtime is not what
    ``nia clips`` recorded: its frame count, region and state were decided on another file (issue 19)."""
    for rel, size, mtime in zip(rows["video_path"], rows["video_size"], rows["video_mtime_ns"]):
        now = file_stat(root, rel)
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
    index, metadata = read_index(Path(clips_dir))
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
