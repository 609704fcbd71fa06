"""The parallel job of ``nia crops``: each worker writes the crops of its chunk of manifest rows.

A frame is read at most once; a crop whose files and input fingerprint are
current is kept (:mod:`common.targets.crop_resume`); every crop not made is
counted and listed with its reason.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pandas as pd

from common.delivery.png_header import read_png_header
from common.parallel import map_chunks
from common.targets.crop_files import crop_paths, read_frame, write_crop
from common.targets.crop_geometry import CropBox, CropOptions, inside_fraction, plan_boxes
from common.targets.crop_index import INDEX_COLUMNS, INDEX_ONLY_FIELDS, ROW_FIELDS, UNREADABLE
from common.targets.crop_resume import Journal, input_fingerprint, known_column, row_fingerprint_text
from common.targets.masks import EyeShapes


MIN_INSIDE = 0.5  # a crop box with less of its area inside the frame is not cut
OUTSIDE = "crop_outside_image"


@dataclass(frozen=True)
class CropJob:
    root: str
    out: str
    split_column: str | None
    options: CropOptions
    run: str = field(default_factory=lambda: f"{time.time_ns():020d}")  # names this run's journal: runs sort by time


@dataclass
class ChunkResult:
    """What some chunks wrote: their index rows (one DataFrame per chunk, cheap to send back), counts,
    and every crop not made as ``(sample_id, crop, split, png_path, reason, skip_reason)``."""

    counts: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    index_parts: list[pd.DataFrame] = field(default_factory=list)
    skipped_rows: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)


def _crop_record(row: dict, crop: str, box: CropBox, split: str, paths: dict[str, Path], out: Path,
                 fingerprint: str) -> dict:
    record = {key: row.get(key) for key in ("sample_id", "subject", "inst", "image", "condition",
                                              "gaze_pitch_deg", "gaze_yaw_deg", "video_stem", "frame",
                                              "device", "direction", *INDEX_ONLY_FIELDS)}
    record.update({
        "crop_id": f"{row['sample_id']}_{crop}", "crop": crop, "split": split,
        "jpg_path": paths["jpg"].relative_to(out).as_posix(),
        "png_path": paths["png"].relative_to(out).as_posix(),
        "json_path": paths["json"].relative_to(out).as_posix(),
        "x0": box.x0, "y0": box.y0, "scale_x": box.scale_x, "scale_y": box.scale_y,
        "width": box.out_width, "height": box.out_height, "input_sha256": fingerprint,
    })
    return record


class _RowSkips:
    """Counts and lists the crops of one row that are not made."""

    def __init__(self, result: ChunkResult, row: dict, split: str) -> None:
        self.result, self.row, self.split = result, row, split

    def add(self, crop: str, key: str, reason: str, skip_reason: str = "missing_crop") -> None:
        """Count under ``key`` (the summary's reason), list with the detailed ``reason`` and the suite's
        ``skip_reason``."""
        self.result.skipped[key] += 1
        self.result.skipped_rows.append((self.row["sample_id"], crop, self.split, self.row.get("png_path"), reason,
                                         skip_reason))


def _planned(row: dict, eyes: dict[str, EyeShapes], options: CropOptions, skips: _RowSkips,
             frame_size: tuple[int, int] | None) -> dict[str, CropBox]:
    """The row's crop boxes that can be cut: each one not is counted and listed."""
    boxes, reasons = plan_boxes(eyes, options)
    for reason in reasons:
        skips.add(reason.split(": ", 1)[0], reason, reason)
    if frame_size is None:
        return boxes
    kept = {}
    for crop, box in boxes.items():
        share = inside_fraction(box, *frame_size)
        if share < MIN_INSIDE:
            skips.add(crop, f"{crop}: {OUTSIDE} (under half of its box inside the image)",
                      f"{OUTSIDE}: {100 * share:.0f}% of its box inside the {frame_size[0]}x{frame_size[1]} image")
        else:
            kept[crop] = box
    return kept


def _process_row(row: dict, job: CropJob, result: ChunkResult, journal: Journal) -> list[dict]:
    """Write what one row needs (see :func:`process_rows`); its index records."""
    root, out = Path(job.root), Path(job.out)
    split = str(row["split"]) if job.split_column else "all"
    skips = _RowSkips(result, row, split)
    header = read_png_header(str(root / row["png_path"]), row["png_path"])
    eyes = {side: EyeShapes.from_row(row, side) for side in "rl"}
    boxes = _planned(row, eyes, job.options, skips, None if header.error else (header.width, header.height))
    row_text = row_fingerprint_text(row, ROW_FIELDS)
    prints = {c: input_fingerprint(row_text, c, split, header.size, header.mtime_ns, job.options.for_crop(c))
              for c in boxes}
    paths = {crop: crop_paths(out, split, crop, row["sample_id"]) for crop in boxes}
    present = {c: all(p.exists() for p in paths[c].values()) for c in boxes}
    todo = [c for c in boxes if not (present[c] and row.get(known_column(c)) == prints[c])]
    image = None
    if todo and not header.error:
        image = read_frame(root / row["png_path"], row.get("image_type") or row.get("image"))
    if header.error or (todo and image is None):  # a damaged image is never scored, not even by old crops
        detail = header.error or f"{row['png_path']}: OpenCV could not decode the image"
        for crop in boxes:
            skips.add(crop, UNREADABLE, f"{UNREADABLE}: {detail}", "unreadable_image")
        return []
    for crop in todo:
        write_crop(image, row, crop, boxes[crop], split, eyes, paths[crop], job.options)
        journal.record(row["sample_id"], crop, prints[crop])
    result.counts["written"] += len(todo)
    result.counts["rebuilt"] += sum(present[c] for c in todo)  # their files were there, from other inputs
    result.counts["already present (resumed)"] += len(boxes) - len(todo)
    return [_crop_record(row, crop, box, split, paths[crop], out, prints[crop]) for crop, box in boxes.items()]


def process_rows(rows: list[dict], job: CropJob) -> ChunkResult:
    """Write the crops of some manifest rows (reading each frame at most once).

    A crop is kept as it is when its three files exist and the fingerprint
    recorded for them (``row["_known_<crop>"]``, from the index and the
    journals) is that of its inputs now; otherwise it is written and its
    fingerprint journaled. A frame that cannot be read, or a box mostly
    outside it, gives no crop and a listed reason.
    """
    result = ChunkResult()
    records: list[dict] = []
    with Journal(Path(job.out), job.run) as journal:
        for row in rows:
            records += _process_row(row, job, result, journal)
    result.index_parts.append(pd.DataFrame(records, columns=INDEX_COLUMNS))
    return result


def run_chunks(chunks: Iterator[list[dict]], n_rows: int, job: CropJob, workers: int,
               progress: bool = True) -> ChunkResult:
    """All chunks through ``process_rows``, in ``workers`` processes (in this process when 1)."""
    total = ChunkResult()
    for part in map_chunks(process_rows, chunks, job, workers=workers, total=n_rows, desc="crops", unit="frame",
                           progress=progress):
        total.index_parts.extend(part.index_parts)
        total.counts.update(part.counts)
        total.skipped.update(part.skipped)
        total.skipped_rows.extend(part.skipped_rows)
    return total
