"""The manifest's sample columns: made from the walk, and the workers' batches placed on their rows."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.delivery.filenames import PREFIX, try_parse_name
from common.delivery.label_columns import NAME_PATTERN
from common.delivery.manifest.schema import INT, NAME_FIELDS, STR
from common.delivery.walk import Rows


def name_columns(stems: list[str]) -> dict[str, pa.Array]:
    """``video_stem``, the NIA name fields and ``frame`` of every stem (null where it does not parse).

    One vectorised regex does the common names; the few it does not match go
    through :func:`common.delivery.filenames.try_parse_name`, the reference.
    """
    arr = pa.array(stems, type=STR)
    parts = pc.extract_regex(arr, f"^{NAME_PATTERN}$")
    cols = {name: parts.field(name) for name in NAME_FIELDS}
    frame = parts.field("frame")
    cols["frame"] = pc.cast(pc.if_else(pc.equal(frame, ""), pa.scalar(None, STR), frame), INT)
    fields = [pa.scalar(PREFIX)] + [cols[n] for n in NAME_FIELDS]
    cols["video_stem"] = pc.binary_join_element_wise(*fields, "_")
    misses = np.flatnonzero(pc.is_null(parts).to_numpy(zero_copy_only=False))
    if len(misses):
        cols = {k: v.to_pylist() for k, v in cols.items()}
        for i in misses:
            nia = try_parse_name(stems[i])
            for name in NAME_FIELDS + ("frame",):
                cols[name][i] = getattr(nia, name) if nia else None
            cols["video_stem"][i] = nia.video_stem if nia else None
        cols = {k: pa.array(v, type=INT if k == "frame" else STR) for k, v in cols.items()}
    return cols


def sample_columns(rows: Rows) -> dict[str, pa.Array]:
    """Sample columns known from the walk (sizes and mtimes come from the workers)."""
    cols = {"sample_id": pa.array(rows.sample_id, type=STR), "kind": pa.array(rows.kind, type=STR),
            "png_path": pa.array(rows.png, type=STR), "json_path": pa.array(rows.json, type=STR),
            "video_path": pa.array(rows.mp4, type=STR)}
    cols.update(name_columns(rows.name_stem))
    return cols


def place(batches: Iterable[pa.RecordBatch], key: pa.Array, schema: pa.Schema) -> pa.Table:
    """Batches whose rows are the non-null entries of ``key`` in order, spread over all its rows.

    Row i of the result belongs to ``key[i]`` (a null row where ``key`` is null);
    each batch's first column is its key. A batch that fills consecutive rows
    is kept as it is, with no copy: the usual case, and why the workers'
    results come in row order instead of being looked up by path (a lookup
    copies every label column, 0.7 kB a label). The batches are freed as they
    are placed. Rows without an entry go with the batch before them.
    """
    has = pc.is_valid(key).to_numpy(zero_copy_only=False)
    row_of = np.flatnonzero(has)  # the row of each entry
    entry_of = np.cumsum(has) - 1  # the entry of each row that has one
    placed, first = [], 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        last = first + batch.num_rows
        lo = row_of[first] if first else 0
        hi = row_of[last] if last < len(row_of) else len(has)
        if hi - lo != batch.num_rows:
            batch = batch.take(pa.array(entry_of[lo:hi] - first, mask=~has[lo:hi]))
        if not batch.column(0).equals(key.slice(lo, hi - lo)):
            raise RuntimeError(f"internal error: {schema.names[0]} out of row order in rows {lo}-{hi}")
        placed.append(batch)
        first = last
    if first != len(row_of):
        raise RuntimeError(f"internal error: {first} {schema.names[0]} entries for {len(row_of)} rows")
    if not placed:
        return pa.Table.from_arrays([pa.nulls(len(has), f.type) for f in schema], schema=schema)
    return pa.Table.from_batches(placed, schema=schema)
