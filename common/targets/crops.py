"""``nia crops``: the eye-crop dataset writer.

One job per module: boxes and the transform (:mod:`common.targets.crop_geometry`),
the rows used (:mod:`common.targets.crop_select`), the parallel job
(:mod:`common.targets.crop_job`), one crop's files (:mod:`common.targets.crop_files`),
the index and the skipped list (:mod:`common.targets.crop_index`).

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
from pathlib import Path

import pandas as pd

from common.atomic import check_writable_folder, remove_stale_temps, write_text_atomic
from common.targets.crop_geometry import CROP_NAMES, CropOptions
from common.targets.crop_index import damaged_images, provenance_metadata, write_index, write_skipped
from common.targets.crop_job import CropJob, run_chunks
from common.targets.crop_resume import clear_journals, known_table
from common.targets.crop_select import record_chunks, select_rows


CROP_INDEX_NAME = "index.parquet"
SUMMARY_NAME = "crops_summary.json"
SKIPPED_NAME = "crops_skipped.csv"
N_NAMED = 20  # damaged images named in the summary (all of them in crops_skipped.csv)


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
    job = CropJob(root=str(root), out=str(out), split_column=split_column, options=options)
    chunks = record_chunks(rows_df, split_column, chunk_size, known_table(out, CROP_INDEX_NAME))
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
