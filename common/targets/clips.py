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

Counting frames decodes every video once, in worker processes, with a cache
(:mod:`common.targets.clip_probe`). Everything else (labels, splits, regions) is recomputed from the
manifest and the options on every run, so a changed manifest row or option
is always reflected.

One job per module: states and regions (:mod:`common.targets.clip_labels`),
frame counts (:mod:`common.targets.clip_probe`), the rows
(:mod:`common.targets.clip_rows`), the index file and reading it back
(:mod:`common.targets.clip_index`); here, the run and its summary.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from common.atomic import check_writable_folder, remove_stale_temps, write_text_atomic
from common.targets.clip_index import CLIP_INDEX_NAME, REASONS, ClipIndexError, write_index
from common.targets.clip_labels import ClipOptions
from common.targets.clip_probe import decoder_name, probe_all
from common.targets.clip_rows import build_rows, video_samples


SUMMARY_NAME = "clips_summary.json"


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
