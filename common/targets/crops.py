"""Eye crops: boxes, the crop transform, and the ``nia crops`` dataset writer.

Boxes (docs/targets.md): the bounding box of the eyelid polygon(s) grown by a
relative ``margin`` on every side, then the shorter side expanded to the
output aspect ratio, then snapped to whole pixels. The crop is cut from the
frame (zeros where the box leaves it) and resized with ``cv2.INTER_AREA``.

Transform, with integer coordinates at pixel centres on both sides::

    x' = (x - x0) * scale_x,   y' = (y - y0) * scale_y
    scale_x = out_width / box_width_px,   x0 = box_left_px - 0.5 + 0.5 / scale_x

which is the mapping ``cv2.resize`` uses between pixel centres, so labels
transformed with it land where the resized image shows them.

A box less than half inside its frame is not cut (``crop_outside_image``):
that crop would be mostly black padding, scored as if it were an eye.

Resume (:mod:`common.targets.crop_resume`): a crop is kept only when its three files
exist and the fingerprint of its inputs (the manifest row's fields, its
split, the PNG's size and mtime, the crop options, the writer's version)
is the one recorded when they were written; anything else is written again.
Every crop not made, and every frame sample that gives none (a damaged
label or image, a label whose PNG is missing), is listed with its split, its
reason and the suite's skip reason (``skip_reason``, one of
``common.verdicts.thresholds.SKIP_REASONS``) in ``OUT/crops_skipped.csv``
(damaged images named file by file, also in the summary): a test reads it to
count each such sample of its split as skipped (:mod:`common.targets.crop_rows`).
"""
from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from common.atomic import atomic_path, check_writable_folder, remove_stale_temps, write_text_atomic
from common.targets.crop_resume import (Journal, clear_journals, input_fingerprint, known_column, known_table,
                                known_values, row_fingerprint_text)
from common.targets.masks import CLASS_NAMES, EyeShapes, class_map
from common.parallel import map_chunks
from common.delivery.png_header import read_png_header

CROP_NAMES = ("eyes", "r_eye", "l_eye")
CROP_INDEX_NAME = "index.parquet"
SUMMARY_NAME = "crops_summary.json"
SKIPPED_NAME = "crops_skipped.csv"
SKIPPED_COLUMNS = ["sample_id", "crop", "split", "png_path", "reason", "skip_reason"]
MIN_INSIDE = 0.5  # a crop box with less of its area inside the frame is not cut
OUTSIDE = "crop_outside_image"
UNREADABLE = "unreadable image"
INVALID_IMAGE = "invalid image"
N_NAMED = 20  # damaged images named in the summary (all of them in crops_skipped.csv)
INDEX_COLUMNS = [
    "crop_id", "sample_id", "crop", "split", "jpg_path", "png_path", "json_path",
    "subject", "inst", "image", "condition", "gaze_pitch_deg", "gaze_yaw_deg",
    "x0", "y0", "scale_x", "scale_y",
    "width", "height", "video_stem", "frame", "device", "direction", "input_sha256",
]
_ROW_FIELDS = [
    "sample_id", "png_path", "subject", "inst", "image", "image_type", "condition", "posture",
    "video_stem", "frame", "device", "direction",
    "gaze_pitch_deg", "gaze_yaw_deg", "gaze_x", "gaze_y", "gaze_z", "gaze_method", "gaze_profile_sha256",
    *(f"{s}_{k}" for s in "rl" for k in ("eyelid", "iris_cx", "iris_cy", "iris_rx", "iris_ry", "iris_rotate",
                                         "center_x", "center_y")),
]


@dataclass(frozen=True)
class CropOptions:
    """Output sizes (width, height), relative margin and JPEG quality."""

    eyes_size: tuple[int, int] = (224, 112)
    eye_size: tuple[int, int] = (160, 96)
    margin: float = 0.25
    jpeg_quality: int = 95

    def size_of(self, crop: str) -> tuple[int, int]:
        return self.eyes_size if crop == "eyes" else self.eye_size

    def for_crop(self, crop: str) -> dict:
        """The options that make ``crop`` (its input fingerprint's share)."""
        return {"size": list(self.size_of(crop)), "margin": self.margin, "jpeg_quality": self.jpeg_quality}

    def as_dict(self) -> dict:
        """The options as JSON-ready values (the summary and the index metadata)."""
        return {"eyes_size": list(self.eyes_size), "eye_size": list(self.eye_size),
                "margin": self.margin, "jpeg_quality": self.jpeg_quality}


@dataclass(frozen=True)
class CropBox:
    """A whole-pixel box of the frame (left/top pixel index, size in pixels) and its output size."""

    left: int
    top: int
    width_px: int
    height_px: int
    out_width: int
    out_height: int

    @property
    def scale_x(self) -> float:
        return self.out_width / self.width_px

    @property
    def scale_y(self) -> float:
        return self.out_height / self.height_px

    @property
    def x0(self) -> float:
        return self.left - 0.5 + 0.5 / self.scale_x

    @property
    def y0(self) -> float:
        return self.top - 0.5 + 0.5 / self.scale_y

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Frame pixel coordinates (..., 2) -> crop pixel coordinates."""
        return (np.asarray(points, dtype=np.float64) - [self.x0, self.y0]) * [self.scale_x, self.scale_y]

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Crop pixel coordinates (..., 2) -> frame pixel coordinates (the inverse of ``to_crop``)."""
        return np.asarray(points, dtype=np.float64) / [self.scale_x, self.scale_y] + [self.x0, self.y0]


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def crop_box(points: np.ndarray, out_size: tuple[int, int], margin: float) -> CropBox:
    """The box around ``points`` (n, 2) grown by ``margin`` per side and widened to the output aspect."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    (xmin, ymin), (xmax, ymax) = pts.min(axis=0), pts.max(axis=0)
    out_width, out_height = out_size
    aspect = out_width / out_height
    width = max((xmax - xmin) * (1.0 + 2.0 * margin), 2.0)
    height = max((ymax - ymin) * (1.0 + 2.0 * margin), 2.0)
    if width < height * aspect:
        width = height * aspect
    else:
        height = width / aspect
    width_px, height_px = max(2, _round_half_up(width)), max(2, _round_half_up(height))
    left = _round_half_up((xmin + xmax) / 2.0 - width_px / 2.0 + 0.5)
    top = _round_half_up((ymin + ymax) / 2.0 - height_px / 2.0 + 0.5)
    return CropBox(left, top, width_px, height_px, out_width, out_height)


def inside_fraction(box: CropBox, width: int, height: int) -> float:
    """The share of the box's area that lies inside a ``width`` x ``height`` frame."""
    inside_x = max(0, min(box.left + box.width_px, width) - max(box.left, 0))
    inside_y = max(0, min(box.top + box.height_px, height) - max(box.top, 0))
    return inside_x * inside_y / (box.width_px * box.height_px)


def cut_and_resize(image: np.ndarray, box: CropBox) -> np.ndarray:
    """The box's pixels (zeros outside the frame), resized to the output size with INTER_AREA."""
    import cv2

    height, width = image.shape[:2]
    x0, x1 = max(box.left, 0), min(box.left + box.width_px, width)
    y0, y1 = max(box.top, 0), min(box.top + box.height_px, height)
    if x0 == box.left and y0 == box.top and x1 - x0 == box.width_px and y1 - y0 == box.height_px:
        patch = image[y0:y1, x0:x1]
    else:
        patch = np.zeros((box.height_px, box.width_px) + image.shape[2:], dtype=image.dtype)
        if x0 < x1 and y0 < y1:
            patch[y0 - box.top:y1 - box.top, x0 - box.left:x1 - box.left] = image[y0:y1, x0:x1]
    return cv2.resize(patch, (box.out_width, box.out_height), interpolation=cv2.INTER_AREA)


def plan_boxes(eyes: dict[str, EyeShapes], options: CropOptions) -> tuple[dict[str, CropBox], list[str]]:
    """Boxes for the crops a row allows, and one reason per crop it does not."""
    boxes: dict[str, CropBox] = {}
    reasons: list[str] = []
    for side in "rl":
        if eyes[side].eyelid is None:
            reasons.append(f"{side}_eye: no {side}_eyelid polygon")
        else:
            boxes[f"{side}_eye"] = crop_box(eyes[side].eyelid, options.eye_size, options.margin)
    if eyes["r"].eyelid is None or eyes["l"].eyelid is None:
        reasons.append("eyes: needs both eyelid polygons")
    else:
        both = np.concatenate([eyes["r"].eyelid, eyes["l"].eyelid])
        boxes["eyes"] = crop_box(both, options.eyes_size, options.margin)
    return {name: boxes[name] for name in CROP_NAMES if name in boxes}, reasons


def _num(value: float) -> float:
    return round(float(value), 4)


def shapes_json(moved_eyes: dict[str, EyeShapes], centres: dict[str, tuple[float, float] | None],
                box: CropBox) -> list[dict]:
    """Labels in crop coordinates, in the NIA annotation layout (Polygon, Ellipse, Point).

    ``moved_eyes`` are already in crop coordinates; ``centres`` are frame pixels.
    """
    shapes: list[dict] = []
    for side in "rl":
        moved = moved_eyes[side]
        if moved.iris is not None:
            e = moved.iris
            shapes.append({
                "label": f"{side}_iris", "shape": "Ellipse",
                "cx": _num(e.cx), "cy": _num(e.cy), "rx": _num(e.rx), "ry": _num(e.ry), "rotate": _num(e.rotate_deg),
                "points": [[_num(e.cx - e.rx), _num(e.cy - e.ry)], [_num(e.cx + e.rx), _num(e.cy + e.ry)]],
            })
        if moved.eyelid is not None:
            shapes.append({"label": f"{side}_eyelid", "shape": "Polygon",
                           "points": [[_num(x), _num(y)] for x, y in moved.eyelid]})
        if centres.get(side) is not None:
            x, y = box.to_crop(np.array(centres[side]))
            shapes.append({"label": f"{side}_center", "shape": "Point", "points": [[_num(x), _num(y)]]})
    return shapes


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _gaze_json(row: dict) -> dict | None:
    pitch, yaw = _finite(row.get("gaze_pitch_deg")), _finite(row.get("gaze_yaw_deg"))
    if pitch is None or yaw is None:
        return None
    return {
        "pitch_deg": pitch, "yaw_deg": yaw,
        "vector": [_finite(row.get(k)) for k in ("gaze_x", "gaze_y", "gaze_z")],
        "method": row.get("gaze_method"), "profile_sha256": row.get("gaze_profile_sha256"),
    }


def read_frame(path: Path, image_type: str | None) -> np.ndarray | None:
    """The frame as uint8 BGR, or single-channel grey for IR; None when unreadable."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    if image.dtype == np.uint16:  # 16-bit PNG: keep the high byte's range
        image = np.round(image / 257.0).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image_type == "ir" and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image


def _write_atomic(path: Path, data: bytes) -> None:
    """``data`` into ``path`` through a temporary name (common/atomic.py).

    Images are encoded in memory (``cv2.imencode``) and written by Python, not
    by ``cv2.imwrite``: OpenCV does not report a short write, so a full disk
    left zero-byte PNGs under their final names; Python's write raises
    ENOSPC, and the temporary file is removed.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)


def _encoded(path: Path, image: np.ndarray, params: list[int] | tuple = ()) -> bytes:
    import cv2

    ok, buffer = cv2.imencode(path.suffix, image, list(params))
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the image")
    return buffer.tobytes()


def crop_paths(out: Path, split: str, crop: str, sample_id: str) -> dict[str, Path]:
    folder = out / split / crop
    return {ext: folder / f"{sample_id}.{ext}" for ext in ("jpg", "png", "json")}


@dataclass(frozen=True)
class _Job:
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


def _centre(row: dict, side: str) -> tuple[float, float] | None:
    x, y = _finite(row.get(f"{side}_center_x")), _finite(row.get(f"{side}_center_y"))
    return None if x is None or y is None else (x, y)


def _crop_record(row: dict, crop: str, box: CropBox, split: str, paths: dict[str, Path], out: Path,
                 fingerprint: str) -> dict:
    record = {key: row.get(key) for key in ("sample_id", "subject", "inst", "image", "condition",
                                              "gaze_pitch_deg", "gaze_yaw_deg", "video_stem", "frame",
                                              "device", "direction")}
    record.update({
        "crop_id": f"{row['sample_id']}_{crop}", "crop": crop, "split": split,
        "jpg_path": paths["jpg"].relative_to(out).as_posix(),
        "png_path": paths["png"].relative_to(out).as_posix(),
        "json_path": paths["json"].relative_to(out).as_posix(),
        "x0": box.x0, "y0": box.y0, "scale_x": box.scale_x, "scale_y": box.scale_y,
        "width": box.out_width, "height": box.out_height, "input_sha256": fingerprint,
    })
    return record


def _write_crop(image: np.ndarray, row: dict, crop: str, box: CropBox, split: str,
                eyes: dict[str, EyeShapes], paths: dict[str, Path], options: CropOptions) -> None:
    import cv2

    moved = {s: eyes[s].transformed(box.x0, box.y0, box.scale_x, box.scale_y) for s in "rl"}
    classes = class_map(list(moved.values()), box.out_width, box.out_height)
    pixels = cut_and_resize(image, box)
    label = {
        "sample_id": row["sample_id"], "crop": crop, "crop_id": f"{row['sample_id']}_{crop}", "split": split,
        "source_png": row.get("png_path"), "inst": row.get("inst"), "image": row.get("image"),
        "condition": row.get("condition"), "posture": row.get("posture"), "subject": row.get("subject"),
        "size": [box.out_width, box.out_height],
        "transform": {
            "x0": box.x0, "y0": box.y0, "scale_x": box.scale_x, "scale_y": box.scale_y,
            "box_px": [box.left, box.top, box.width_px, box.height_px],
            "rule": "crop = (frame - x0) * scale; integer coordinates are pixel centres",
        },
        "shapes": shapes_json(moved, {s: _centre(row, s) for s in "rl"}, box),
        "gaze": _gaze_json(row),
    }
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(paths["png"], _encoded(paths["png"], classes))
    _write_atomic(paths["json"], json.dumps(label, indent=1).encode("utf-8"))
    quality = [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality]
    _write_atomic(paths["jpg"], _encoded(paths["jpg"], pixels, quality))


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


def _process_row(row: dict, job: _Job, result: ChunkResult, journal: Journal) -> list[dict]:
    """Write what one row needs (see :func:`process_rows`); its index records."""
    root, out = Path(job.root), Path(job.out)
    split = str(row["split"]) if job.split_column else "all"
    skips = _RowSkips(result, row, split)
    header = read_png_header(str(root / row["png_path"]), row["png_path"])
    eyes = {side: EyeShapes.from_row(row, side) for side in "rl"}
    boxes = _planned(row, eyes, job.options, skips, None if header.error else (header.width, header.height))
    row_text = row_fingerprint_text(row, _ROW_FIELDS)
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
        _write_crop(image, row, crop, boxes[crop], split, eyes, paths[crop], job.options)
        journal.record(row["sample_id"], crop, prints[crop])
    result.counts["written"] += len(todo)
    result.counts["rebuilt"] += sum(present[c] for c in todo)  # their files were there, from other inputs
    result.counts["already present (resumed)"] += len(boxes) - len(todo)
    return [_crop_record(row, crop, box, split, paths[crop], out, prints[crop]) for crop, box in boxes.items()]


def process_rows(rows: list[dict], job: _Job) -> ChunkResult:
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


def run_chunks(chunks: Iterator[list[dict]], n_rows: int, job: _Job, workers: int,
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


def _record_chunks(df: pd.DataFrame, split_column: str | None, size: int,
                   known: pd.DataFrame | None = None) -> Iterator[list[dict]]:
    """The rows as lists of plain dicts (nulls as None), ``size`` at a time, built lazily, each with
    the recorded fingerprint of its crops (``known``: :func:`common.targets.crop_resume.known_table`)."""
    columns = [c for c in _ROW_FIELDS if c in df.columns]
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


def provenance_metadata(rows: pd.DataFrame, manifest_sha256: str, options: "CropOptions") -> dict[str, str]:
    """What a crop dataset was made from, stored as ``nia.*`` keys of ``index.parquet``.

    The manifest hash, the gaze derivation(s) and profile hash(es) behind the
    gaze labels, the class list of the class maps and the crop options, so a
    score computed on these crops can be traced to its labels.
    """
    def distinct(column: str) -> str:
        return ",".join(sorted(set(rows[column].dropna().astype(str)))) if column in rows.columns else ""

    return {
        "nia.manifest_sha256": manifest_sha256,
        "nia.gaze_method": distinct("gaze_method"),
        "nia.gaze_profile_sha256": distinct("gaze_profile_sha256"),
        "nia.classes": json.dumps(list(CLASS_NAMES)),
        "nia.crop_options": json.dumps(options.as_dict()),
    }


def write_index(parts: list[pd.DataFrame], path: Path, provenance: dict[str, str]) -> pd.DataFrame:
    """``OUT/index.parquet``: one row per crop, sorted by crop_id, with ``nia.*`` provenance metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=INDEX_COLUMNS)
    index = index.sort_values("crop_id", kind="stable").reset_index(drop=True)
    for column in ("gaze_pitch_deg", "gaze_yaw_deg", "x0", "y0", "scale_x", "scale_y"):
        index[column] = index[column].astype("float64")
    index["frame"] = index["frame"].astype("Int64")
    index[["width", "height"]] = index[["width", "height"]].astype("int64")
    table = pa.Table.from_pandas(index, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata.update({key.encode(): value.encode() for key, value in provenance.items()})
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
    return index


def write_skipped(invalid_images: pd.DataFrame, skipped_rows: list[tuple], path: Path) -> pd.DataFrame:
    """``OUT/crops_skipped.csv``: the frames invalid for their image, then every crop not made, sorted."""
    crops = pd.DataFrame(skipped_rows, columns=SKIPPED_COLUMNS)
    listed = pd.concat([invalid_images, crops], ignore_index=True) if len(invalid_images) else crops
    listed = listed.sort_values(["sample_id", "crop"], kind="stable").reset_index(drop=True)
    with atomic_path(path) as tmp:
        listed.to_csv(tmp, index=False)
    return listed


def damaged_images(skipped: pd.DataFrame) -> list[dict]:
    """One entry per damaged or unusable image among the skips: ``png_path``, ``reason`` (UNREADABLE when
    the crop step found it, INVALID_IMAGE when nia index did), ``detail`` (the error, naming the file)."""
    of_image = skipped["skip_reason"].isin(["unreadable_image", "invalid_image"])
    rows = skipped[of_image & ((skipped["crop"] == "") | skipped["reason"].str.startswith(f"{UNREADABLE}: "))]
    rows = rows.drop_duplicates("png_path")
    return [{"png_path": r.png_path,
             "reason": UNREADABLE if r.crop else INVALID_IMAGE,
             "detail": r.reason.split(": ", 1)[1] if r.crop else r.reason} for r in rows.itertuples()]


def remove_leftovers(out: Path) -> int:
    """The temporary files a killed run left in OUT and its crop folders (a rerun starts clean)."""
    removed = remove_stale_temps(out)
    for split_dir in (d for d in out.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for crop in CROP_NAMES:
            removed += remove_stale_temps(split_dir / crop)
    return removed


def write_crop_dataset(df: pd.DataFrame, root: Path, out: Path, *, split_column: str | None,
                       options: CropOptions, workers: int = 1, chunk_size: int = 64,
                       manifest_sha256: str = "", progress: bool = True) -> dict:
    """Write every crop of the manifest rows (gaze columns already present) and the index.

    Returns the summary (also written to ``OUT/crops_summary.json``).
    """
    if split_column is not None and split_column not in df.columns:
        raise ValueError(f"manifest has no column {split_column!r}: run nia split first "
                         "(or pass --split-column none to put every crop under all/)")
    rows_df, row_skips, invalid_images = select_rows(df, split_column)
    check_writable_folder(out)
    remove_leftovers(out)
    job = _Job(root=str(root), out=str(out), split_column=split_column, options=options)
    chunks = _record_chunks(rows_df, split_column, chunk_size, known_table(out, CROP_INDEX_NAME))
    result = run_chunks(chunks, len(rows_df), job, workers, progress)
    index = write_index(result.index_parts, out / CROP_INDEX_NAME,
                        provenance_metadata(rows_df, manifest_sha256, options))
    clear_journals(out)  # index.parquet holds their fingerprints now
    skipped = write_skipped(invalid_images, result.skipped_rows, out / SKIPPED_NAME)
    summary = {
        "manifest_rows": int(len(df)),
        "rows_used": int(len(rows_df)),
        "rows_skipped": dict(sorted(row_skips.items())),
        "crops_in_index": int(len(index)),
        "crops_by_name": {k: int(v) for k, v in index["crop"].value_counts().sort_index().items()},
        "crops_written": int(result.counts["written"]),
        "crops_already_present": int(result.counts["already present (resumed)"]),
        "crops_rebuilt": int(result.counts["rebuilt"]),
        "crops_skipped": dict(sorted(result.skipped.items())),
        "damaged_images": damaged_images(skipped)[:N_NAMED],
        "damaged_images_total": len(damaged_images(skipped)),
        "skipped_list": SKIPPED_NAME,
        "crops_without_gaze": int(index["gaze_pitch_deg"].isna().sum()),
        "options": options.as_dict(),
        "manifest_sha256": manifest_sha256,
    }
    write_text_atomic(out / SUMMARY_NAME, json.dumps(summary, indent=1))
    return summary
