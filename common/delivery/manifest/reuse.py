"""Re-indexing: what of the previous manifest an index run may reuse.

The label columns of every JSON whose (size, mtime_ns) did not change, and the
header of every PNG whose (size, mtime_ns) did not change, matched by path in
Arrow, so an unchanged tree costs one walk (stat calls), the parquet read and
the write; validity is decided anew every time. Columns that other commands
added (split, gaze) survive only on rows whose label, PNG and error are unchanged.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.delivery.manifest.file import read_table
from common.delivery.manifest.schema import (INDEX_SCHEMA, INT, LABEL_BATCH, LABEL_FIELDS, NAME_FIELDS,
                                             PAIRING_ERRORS, PNG_BATCH, STR, ManifestError)

# sample columns that a re-index makes anew: not read from the previous manifest (the PNG's path,
# size, mtime and header are read: they decide whether its header is reused)
_REMADE = frozenset(["video_path", "video_stem", *NAME_FIELDS, "frame", "valid"])


def previous(out: Path, root: Path) -> pa.Table | None:
    """The previous manifest at OUT if it indexed the same root, else None."""
    if not out.exists():
        return None
    try:
        table, old_root = read_table(out, skip=_REMADE)
    except ManifestError:
        return None
    return table if old_root == root.resolve() else None


def reuse_positions(old: pa.Table, rel: pa.Array, size: pa.ChunkedArray, mtime: pa.ChunkedArray,
                     is_video: pa.Array) -> np.ndarray:
    """Per JSON file: the row of ``old`` with the same path, size, mtime and role, else -1 (parse it).

    Rows of ``old`` that were duplicates are never reused (their error is the
    duplicate's, not the label's).
    """
    at = pc.index_in(rel, value_set=old.column("json_path").combine_chunks())  # a JSON file is in one row
    same = pc.and_(pc.equal(size, pc.take(old.column("json_size"), at)),
                   pc.equal(mtime, pc.take(old.column("json_mtime_ns"), at)))
    same = pc.and_(same, pc.equal(is_video, pc.equal(pc.take(old.column("kind"), at), "video")))
    same = pc.and_(same, pc.invert(pc.match_substring(pc.take(old.column("sample_id"), at), "#dup")))
    at = pc.fill_null(at, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.where(pc.fill_null(same, False).to_numpy(zero_copy_only=False), at, -1)


def png_reuse(old: pa.Table, rel: pa.Array, size: pa.ChunkedArray,
               mtime: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Per PNG file: whether it is the file of ``old`` (same path, size, mtime_ns); and the row of
    ``old`` whose header it reuses, else -1 (read it).

    A header is reused only when it was sound: the error of a damaged one is
    not stored on its own, and damaged files are few, so they are read again.
    """
    at = pc.index_in(rel, value_set=old.column("png_path").combine_chunks())
    same = pc.and_(pc.equal(size, pc.take(old.column("png_size"), at)),
                   pc.equal(mtime, pc.take(old.column("png_mtime_ns"), at)))
    same = pc.fill_null(same, False).to_numpy(zero_copy_only=False)
    if "png_width" not in old.column_names:  # a manifest from before the header check
        return same, np.full(len(same), -1)
    sound = pc.fill_null(pc.is_valid(pc.take(old.column("png_width"), at)), False).to_numpy(zero_copy_only=False)
    at = pc.fill_null(at, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return same, np.where(same & sound, at, -1)


def old_headers(old: pa.Table) -> pa.Table:
    """The PNG header columns of ``old`` laid out as the header workers' batches."""
    arrays = [old.column(name) if name in old.column_names else pa.chunked_array([pa.nulls(old.num_rows, INT)])
              for name in ("png_path", "png_size", "png_mtime_ns", "png_width", "png_height")]
    arrays.append(pa.chunked_array([pa.nulls(old.num_rows, STR)]))
    return pa.Table.from_arrays(arrays, schema=PNG_BATCH)


def old_labels(old: pa.Table) -> pa.Table:
    """The label columns of ``old`` laid out as the workers' batches (no copy but the label error).

    ``error`` holds the label's error first, then a pairing error, then the
    image's error (``image_error``): only the first is the label's.
    """
    error = old.column("error")
    not_label = pc.is_in(error, value_set=pa.array(PAIRING_ERRORS))
    if "image_error" in old.column_names:
        image_error = pc.fill_null(old.column("image_error"), "")
        not_label = pc.or_(not_label, pc.and_(pc.not_equal(image_error, ""), pc.equal(error, image_error)))
    label_error = pc.if_else(not_label, "", error)
    arrays = [old.column(name) for name in ("json_path", "json_size", "json_mtime_ns")]
    arrays += [old.column(name) for name, _ in LABEL_FIELDS] + [old.column("mismatch"), label_error]
    return pa.Table.from_arrays(arrays, schema=LABEL_BATCH)


def merged(parsed: pa.Table, reusable: pa.Table, reuse_at: np.ndarray) -> pa.Table:
    """Label rows of every JSON file in row order: where ``reuse_at`` is -1 the next parsed row,
    else the row ``reuse_at`` of ``reusable``.

    One take for all rows: a take from chunked columns joins each column's
    chunks first, so taking in slices costs a join per slice (quadratic: at
    1 M labels 64k-row slices made this step 4x slower than the old lookup).
    """
    new = reuse_at < 0
    index = np.where(new, np.cumsum(new) - 1, parsed.num_rows + reuse_at)
    return pa.concat_tables([parsed, reusable]).take(index)


def kept_rows(json_path: pa.Array, reuse_at: np.ndarray, png_path: pa.Array, png_same: np.ndarray) -> pa.Array:
    """Rows whose inputs did not change: the label reused (or no JSON), the same PNG file (or none)."""
    has = pc.is_valid(json_path).to_numpy(zero_copy_only=False)
    kept = ~has
    kept[has] = reuse_at >= 0
    has_png = pc.is_valid(png_path).to_numpy(zero_copy_only=False)
    kept[has_png] &= png_same
    return pa.array(kept)


def carry_extras(table: pa.Table, old: pa.Table | None, kept: pa.Array) -> pa.Table:
    """Columns other commands added (split, gaze_*) survive for rows whose inputs and verdict did not change.

    ``kept`` marks the rows whose label and PNG are those of ``old`` (or absent);
    a row whose ``error`` changed all the same (its image no longer has the
    delivery's size, say) loses them too.
    """
    if old is None:
        return table
    extras = [n for n in old.column_names if n not in INDEX_SCHEMA.names]
    if not extras:
        return table
    at = pc.index_in(table.column("sample_id"), value_set=old.column("sample_id").combine_chunks())
    same_error = pc.fill_null(pc.equal(pc.take(old.column("error"), at), table.column("error")), False)
    at = pc.if_else(pc.and_(kept, same_error), at, pa.scalar(None, at.type))
    picked = old.select(extras).take(at)
    for name in extras:
        table = table.append_column(old.schema.field(name), picked.column(name))
    return table
