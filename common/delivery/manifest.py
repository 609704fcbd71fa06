"""`nia index`: walk a tree, pair files by stem, parse labels in parallel, write the manifest.

Built for 2.5 million labels. The walk and pairing (:mod:`common.delivery.walk`)
make the sample columns; worker processes get chunks of paths, in row order,
and send back one Arrow record batch per chunk (no per-row objects cross the
process boundary), which becomes part of the manifest as it arrives, with no
lookup and no copy. Each frame label goes through the fast path
(:mod:`common.delivery.label_columns`, msgspec in C); only a label the fast path does
not accept is re-checked by :func:`common.delivery.labels.parse_label`, so errors read
exactly as before. NIA name fields come from one vectorised regex over all
stems. Each PNG's header is read by the same workers (:mod:`common.delivery.png_header`:
33 bytes at the start, 12 at the end, no decode) for ``png_width`` and
``png_height``; then :mod:`common.delivery.image_checks` marks, over whole columns, an
image that is not the delivery's size or whose labels reach outside it.
Re-indexing reuses the label columns of every JSON whose (size, mtime_ns)
did not change, and the header of every PNG whose (size, mtime_ns) did not
change, matched by path in Arrow, so an unchanged tree costs one walk (stat
calls), the parquet read and the write; validity is decided anew every time.
Columns that other commands added (split, gaze) survive only on rows whose
label, PNG and error are unchanged. Nothing is dropped: every PNG, JSON and
mp4 under ROOT is in some row, and the suite's own files are counted.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import time
from itertools import chain
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from common import __version__
from common.atomic import atomic_path
from common.cores import available_cores
from common.delivery.filenames import PREFIX, FileNameError, name_mismatches, parse_name, try_parse_name
from common.delivery.image_checks import CHECKS, image_errors
from common.delivery.walk import (NO_JSON, NO_PNG, Found, Rows, WalkError, all_files, label_files, pair, sorted_stems,
                               walk)
from common.delivery.label_columns import NAME_PATTERN, frame_columns
from common.delivery.labels import LabelError, decode_json, parse_label, parse_video_label
from common.delivery.png_header import read_png_header
from common.parallel import die_with_parent

ROOT_KEY = b"nia.root"
ROW_GROUP = 1 << 20  # rows per parquet row group: pyarrow's default, so chunked and whole writes are alike
VERSION_KEY = b"nia.version"
PAIRING_ERRORS = (NO_JSON, NO_PNG)

_S, _F, _I, _B, _L = pa.string(), pa.float64(), pa.int64(), pa.bool_(), pa.list_(pa.float64())
_ELLIPSE = ("cx", "cy", "rx", "ry", "rotate")
# columns filled from the JSON (plus the name/JSON mismatch, also decided per JSON file)
LABEL_FIELDS: list[tuple[str, pa.DataType]] = (
    [(c, _S) for c in ("inst", "image", "condition", "posture", "metaid")]
    + [(f"{p}_{a}", _F) for p in ("head", "cam") for a in ("roll", "pitch", "yaw")]
    + [("point_x", _F), ("point_y", _F), ("distance_cam", _F), ("distance_display", _F)]
    + [(f"{e}_iris_{k}", _F) for e in "rl" for k in _ELLIPSE]
    + [(f"{e}_center_{k}", _F) for e in "rl" for k in "xy"]
    + [("r_eyelid", _L), ("l_eyelid", _L)]
)
# what a parse worker sends back per chunk: the JSON's path, label columns, mismatch, label error
_LABEL_BATCH = pa.schema([("json_path", _S), ("json_size", _I), ("json_mtime_ns", _I)] + LABEL_FIELDS
                         + [("mismatch", _S), ("label_error", _S)])
_POLYGONS = {i + 3 for i, (name, _) in enumerate(LABEL_FIELDS) if name.endswith("_eyelid")}
_SEP = "\0"  # between the paths of one job: the one character no path holds
_STAT_BATCH = pa.schema([("path", _S), ("size", _I), ("mtime_ns", _I)])
# what a header worker sends back per chunk of PNGs (common.delivery.png_header)
_PNG_BATCH = pa.schema([("path", _S), ("size", _I), ("mtime_ns", _I), ("width", _I), ("height", _I),
                        ("png_error", _S)])
NAME_FIELDS = ("site", "subject", "attempt", "scenario", "device", "image_type", "state", "posture_code", "direction")
SAMPLE_FIELDS: list[tuple[str, pa.DataType]] = (
    [("sample_id", _S), ("kind", _S), ("png_path", _S), ("json_path", _S), ("video_path", _S), ("video_stem", _S)]
    + [(c, _I) for c in ("png_size", "png_mtime_ns", "png_width", "png_height", "json_size", "json_mtime_ns")]
    + [(c, _S) for c in NAME_FIELDS] + [("frame", _I)]
)
# sample columns that a re-index makes anew: not read from the previous manifest (the PNG's path,
# size, mtime and header are read: they decide whether its header is reused)
_REMADE = frozenset(["video_path", "video_stem", *NAME_FIELDS, "frame", "valid"])
INDEX_SCHEMA = pa.schema(SAMPLE_FIELDS + LABEL_FIELDS + [("valid", _B), ("error", _S), ("mismatch", _S),
                                                         ("image_error", _S)])
# columns other commands add (docs/architecture.md); typed here so that all-null columns keep their type
ADDED_TYPES = {"split": _S, "gaze_method": _S, "gaze_profile_sha256": _S,
               **{c: _F for c in ("gaze_pitch_deg", "gaze_yaw_deg", "gaze_x", "gaze_y", "gaze_z", "eye_x_mm",
                                  "eye_y_mm", "eye_z_mm", "target_x_mm", "target_y_mm", "target_z_mm")}}
KNOWN_TYPES = {f.name: f.type for f in INDEX_SCHEMA} | ADDED_TYPES
_N_LABEL = len(LABEL_FIELDS)
_EMPTY_LABEL = (None,) * _N_LABEL


class ManifestError(Exception):
    """A manifest that cannot be read or written; names the file."""


@dataclass
class IndexResult:
    """What one `nia index` run did (every file accounted for)."""

    n_rows: int = 0
    n_parsed: int = 0
    n_reused: int = 0
    n_invalid: int = 0
    n_duplicates: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    ignored_files: dict[str, int] = field(default_factory=dict)
    n_suite_files: int = 0  # device_profiles.json at the root, files under .nia* folders
    n_hidden_dirs: int = 0  # other folders starting with '.', not entered
    repeated_dirs: list[str] = field(default_factory=list)  # folders reached again through a symlink, not re-entered
    unreadable_dirs: list[str] = field(default_factory=list)  # folders that could not be listed: not in the manifest
    image_problems: dict[str, int] = field(default_factory=dict)  # rows with an image error, by check
    image_examples: list[str] = field(default_factory=list)  # the first image errors, in row order
    invalid_examples: list[str] = field(default_factory=list)  # the first other errors (label, pairing), in row order
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage (walk, pair, parse, ...)


# --- reading and writing ----------------------------------------------------------

def _schema_for(df) -> pa.Schema:
    """The Arrow schema of a manifest DataFrame: known columns get their manifest type, others
    an inferred one (inferred for those only: inference converts the whole column)."""
    unknown = [c for c in df.columns if c not in KNOWN_TYPES]
    inferred = pa.Schema.from_pandas(df[unknown], preserve_index=False)
    return pa.schema([(c, KNOWN_TYPES[c] if c in KNOWN_TYPES else inferred.field(c).type) for c in df.columns])


def _write_tables(tables: Iterable[pa.Table], path: str | Path, root: str | Path) -> None:
    """Write tables of one schema into one parquet file, with the indexed root in its metadata.

    The file is the one ``pq.write_table`` writes for them concatenated as long
    as every table but the last has ROW_GROUP rows.
    """
    path = Path(path)
    meta_root = {ROOT_KEY: str(Path(root).resolve()).encode(), VERSION_KEY: __version__.encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        writer = None
        try:
            for table in tables:
                table = table.replace_schema_metadata(dict(table.schema.metadata or {}) | meta_root)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
        except (OSError, pa.ArrowException) as exc:
            raise ManifestError(f"{path}: cannot write the manifest: {exc}") from None
        finally:
            if writer is not None:
                writer.close()


def _write_table(table: pa.Table, path: str | Path, root: str | Path) -> None:
    _write_tables([table], path, root)


def write_manifest(df, path: str | Path, root: str | Path) -> None:
    """Write a manifest DataFrame (extra columns kept) with the indexed root in its metadata.

    Converted to Arrow one row group at a time: the Arrow copy of a whole
    manifest beside the DataFrame would take another 1 kB a row.
    """
    schema = _schema_for(df)

    def row_groups() -> Iterator[pa.Table]:
        for start in range(0, max(len(df), 1), ROW_GROUP):  # an empty frame still writes its schema
            try:
                yield pa.Table.from_pandas(df.iloc[start:start + ROW_GROUP], schema=schema, preserve_index=False)
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise ManifestError(f"{path}: a column does not have its manifest type: {exc}") from None

    _write_tables(row_groups(), path, root)


def read_table(path: str | Path, skip: frozenset[str] = frozenset()) -> tuple[pa.Table, Path]:
    """The manifest as an Arrow table (less the columns named in ``skip``) and its indexed root."""
    try:
        columns = [name for name in pq.read_schema(path).names if name not in skip] if skip else None
        table = pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise ManifestError(f"{path}: not a readable parquet manifest: {exc}") from None
    meta = table.schema.metadata or {}
    if ROOT_KEY not in meta:
        raise ManifestError(f"{path}: parquet metadata lacks '{ROOT_KEY.decode()}': not written by `nia index`")
    return table, Path(meta[ROOT_KEY].decode())


def _return_freed_arrow_pages() -> None:
    """Make Arrow's allocator (jemalloc) give freed pages back to the OS at once, not after ~1 s.

    jemalloc applies this to the arenas it makes from now on: to the whole
    process when reading a manifest is its first Arrow work (nia stats, split,
    crops). Without it the Arrow table stays resident beside the DataFrame
    made from it, even freed column by column (250k rows: 821 MB peak instead
    of 537 MB). `nia index` takes the same time either way.
    """
    if pa.default_memory_pool().backend_name == "jemalloc":
        pa.jemalloc_set_decay_ms(0)


def read_manifest(path: str | Path):
    """``(DataFrame, root)``: int64 columns come back as nullable ``Int64``.

    Each Arrow column is freed as soon as pandas has it (``self_destruct``):
    the peak is the DataFrame, not the DataFrame plus the table (1 kB a row).
    """
    import pandas as pd

    _return_freed_arrow_pages()
    table, root = read_table(path)
    df = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get, self_destruct=True)
    del table  # unusable after self_destruct
    return df, root


def default_workers() -> int:
    """One index worker per core this process may use."""
    return available_cores()


# --- parsing (runs in worker processes) -----------------------------------------------

def _read(file: str) -> tuple[bytes, int, int]:
    """The file's bytes, size and mtime_ns (fstat on the open file: no second path lookup)."""
    fd = os.open(file, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        chunks = [os.read(fd, 1 << 16)]
        while len(chunks[-1]) == 1 << 16:
            chunks.append(os.read(fd, 1 << 16))
    finally:
        os.close(fd)
    return (b"".join(chunks) if len(chunks) > 1 else chunks[0]), st.st_size, st.st_mtime_ns


def _mismatch_of(stem: str, label) -> str:
    try:
        return ";".join(name_mismatches(parse_name(stem), label, stem))
    except FileNameError as exc:
        return f"name: {exc}"


def _frame_values(label) -> tuple:
    by = {s.label: s for s in label.shapes}
    out = [label.inst, label.image, label.condition, label.posture, label.metaid,
           *label.head, *label.cam, *label.point, label.distance_cam, label.distance_display]
    for eye in ("r_iris", "l_iris"):
        s = by.get(eye)
        out += (s.cx, s.cy, s.rx, s.ry, s.rotate) if s else (None,) * 5
    for eye in ("r_center", "l_center"):
        s = by.get(eye)
        out += s.points[0] if s else (None, None)
    for eye in ("r_eyelid", "l_eyelid"):
        s = by.get(eye)
        out.append(list(s.points) if s else None)
    return tuple(out)


def _video_values(video) -> tuple:
    return (video.inst, video.image, video.condition, video.posture, video.metaid) + (None,) * (_N_LABEL - 5)


def parse_slow(data: bytes, rel: str, is_video: bool) -> tuple:
    """Label columns, mismatch and label error of one JSON by the precise checker (common.delivery.labels)."""
    stem = os.path.splitext(rel.rsplit("/", 1)[-1])[0]
    try:
        obj = decode_json(data, rel)
        if is_video:
            video = parse_video_label(obj, rel)
            return (*_video_values(video), _mismatch_of(stem, video), "")
        label = parse_label(obj, rel)
        return (*_frame_values(label), _mismatch_of(stem, label), "")
    except LabelError as exc:
        return (*_EMPTY_LABEL, "", str(exc))
    except Exception as exc:  # noqa: BLE001 - one hostile file must not stop an index of millions
        return (*_EMPTY_LABEL, "", f"{rel}: $: could not be checked ({type(exc).__name__}: {exc})")


def parse_one(root: str, rel: str, is_video: bool, fast: bool = True) -> tuple:
    """Size, mtime_ns, label columns (LABEL_FIELDS order), mismatch text and label error of one JSON.

    ``root`` ends with a separator. ``fast=False`` skips the msgspec path (the tests compare both).
    """
    try:
        data, size, mtime = _read(root + rel)
    except OSError as exc:
        return (None, None, *_EMPTY_LABEL, "", f"{rel}: $: cannot read: {exc.strerror}")
    if fast and not is_video:
        values = frame_columns(data, rel[rel.rfind("/") + 1:-5])  # rel ends with .json (any case)
        if values is not None:
            return (size, mtime, *values, "")
    return (size, mtime, *parse_slow(data, rel, is_video))


def _polygon_array(polygons: tuple) -> pa.Array:
    """list<float64> of flattened ``[x0, y0, x1, y1, ...]`` from sequences of (x, y) points (or None)."""
    lengths = np.fromiter((0 if p is None else 2 * len(p) for p in polygons), dtype=np.int32, count=len(polygons))
    offsets = np.zeros(len(polygons) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = list(chain.from_iterable(chain.from_iterable(p for p in polygons if p is not None)))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=_F),
                                    mask=pa.array([p is None for p in polygons], type=_B))


def _parse_batch(job: tuple[str, str, list[bool], bool]) -> pa.RecordBatch:
    root, joined, videos, fast = job
    rels = joined.split(_SEP)
    values = [parse_one(root, rel, is_video, fast) for rel, is_video in zip(rels, videos)]
    columns = [rels, *zip(*values)] if values else [[] for _ in _LABEL_BATCH]
    arrays = [_polygon_array(c) if i in _POLYGONS else pa.array(c, type=f.type)
              for i, (c, f) in enumerate(zip(columns, _LABEL_BATCH))]
    return pa.RecordBatch.from_arrays(arrays, schema=_LABEL_BATCH)


def _png_batch(job: tuple[str, str]) -> pa.RecordBatch:
    """Size, mtime_ns, width, height and header error of PNG files (common.delivery.png_header)."""
    base, joined = job
    rels = joined.split(_SEP)
    columns = [rels, *zip(*(read_png_header(base + rel, rel) for rel in rels))]
    return pa.RecordBatch.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, _PNG_BATCH)],
                                      schema=_PNG_BATCH)


def _stat_batch(job: tuple[str, str]) -> pa.RecordBatch:
    """Size and mtime_ns of files (null for a file that vanished since the walk)."""
    base, joined = job
    rels = joined.split(_SEP)
    sizes, mtimes = [], []
    for rel in rels:
        try:
            st = os.stat(base + rel)
            sizes.append(st.st_size)
            mtimes.append(st.st_mtime_ns)
        except OSError:
            sizes.append(None)
            mtimes.append(None)
    return pa.RecordBatch.from_arrays([pa.array(rels, type=_S), pa.array(sizes, type=_I), pa.array(mtimes, type=_I)],
                                      schema=_STAT_BATCH)


def _init_worker(parent_pid: int) -> None:
    """An index worker dies with its parent (a killed `nia index` leaves none behind); no cyclic GC."""
    die_with_parent(parent_pid)
    gc.disable()


class Workers:
    """The worker processes of one index run (or none: then everything runs here, lazily, in order).

    :meth:`stat` and :meth:`parse` hand out chunks of paths and return at once;
    the workers go on while the caller pairs files. Results come back in the
    order of the paths.
    """

    def __init__(self, root: Path, workers: int, chunk: int, fast: bool = True) -> None:
        self.base = os.path.join(str(root), "")
        self.chunk, self.fast = chunk, fast
        self.pool = None
        if workers > 1:
            context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
            self.pool = context.Pool(workers, initializer=_init_worker, initargs=(os.getpid(),))

    def _chunks(self, rels: list[str], *columns: list) -> list[tuple]:
        """Jobs of ``chunk`` files: the paths joined into one string, then the other columns.

        Joined, the paths of the jobs waiting for a worker keep none of the
        walk's millions of small strings alive (0.5 kB a label while parsing).
        """
        c = self.chunk
        return [(self.base, _SEP.join(rels[i:i + c]), *(col[i:i + c] for col in columns))
                for i in range(0, len(rels), c)]

    def stat(self, rels: list[str]) -> Iterable[pa.RecordBatch]:
        """Sizes and mtimes of ``rels``, in order."""
        jobs = self._chunks(rels)
        return self.pool.imap(_stat_batch, jobs) if self.pool and len(jobs) > 1 else map(_stat_batch, jobs)

    def headers(self, rels: list[str]) -> Iterable[pa.RecordBatch]:
        """Header batches of the PNG files ``rels``, in order."""
        jobs = self._chunks(rels)
        return self.pool.imap(_png_batch, jobs) if self.pool and len(jobs) > 1 else map(_png_batch, jobs)

    def parse(self, rels: list[str], videos: list[bool]) -> Iterable[pa.RecordBatch]:
        """Label batches of the JSON files ``rels``, in order."""
        jobs = [job + (self.fast,) for job in self._chunks(rels, videos)]
        return self.pool.imap(_parse_batch, jobs) if self.pool and len(jobs) > 1 else map(_parse_batch, jobs)

    @staticmethod
    def progress(results: Iterable[pa.RecordBatch], total: int, show: bool, what: str) -> Iterator[pa.RecordBatch]:
        """The batches as they arrive, counted on a progress bar when ``show``."""
        bar = tqdm(total=total, desc=what, unit=" files", disable=None if show else True, file=sys.stderr)
        try:
            for batch in results:
                bar.update(batch.num_rows)
                yield batch
        finally:
            bar.close()

    @staticmethod
    def table(results: Iterable[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
        """Wait for all the batches."""
        return pa.Table.from_batches(list(results), schema=schema)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
            self.pool = None


# --- sample columns -------------------------------------------------------------

def name_columns(stems: list[str]) -> dict[str, pa.Array]:
    """``video_stem``, the NIA name fields and ``frame`` of every stem (null where it does not parse).

    One vectorised regex does the common names; the few it does not match go
    through :func:`common.delivery.filenames.try_parse_name`, the reference.
    """
    arr = pa.array(stems, type=_S)
    parts = pc.extract_regex(arr, f"^{NAME_PATTERN}$")
    cols = {name: parts.field(name) for name in NAME_FIELDS}
    frame = parts.field("frame")
    cols["frame"] = pc.cast(pc.if_else(pc.equal(frame, ""), pa.scalar(None, _S), frame), _I)
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
        cols = {k: pa.array(v, type=_I if k == "frame" else _S) for k, v in cols.items()}
    return cols


def _sample_columns(rows: Rows) -> dict[str, pa.Array]:
    """Sample columns known from the walk (sizes and mtimes come from the workers)."""
    cols = {"sample_id": pa.array(rows.sample_id, type=_S), "kind": pa.array(rows.kind, type=_S),
            "png_path": pa.array(rows.png, type=_S), "json_path": pa.array(rows.json, type=_S),
            "video_path": pa.array(rows.mp4, type=_S)}
    cols.update(name_columns(rows.name_stem))
    return cols


def _place(batches: Iterable[pa.RecordBatch], key: pa.Array, schema: pa.Schema) -> pa.Table:
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


# --- incremental re-index ------------------------------------------------------

def _previous(out: Path, root: Path) -> pa.Table | None:
    """The previous manifest at OUT if it indexed the same root, else None."""
    if not out.exists():
        return None
    try:
        table, old_root = read_table(out, skip=_REMADE)
    except ManifestError:
        return None
    return table if old_root == root.resolve() else None


def _reuse_positions(old: pa.Table, rel: pa.Array, size: pa.ChunkedArray, mtime: pa.ChunkedArray,
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


def _png_reuse(old: pa.Table, rel: pa.Array, size: pa.ChunkedArray,
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


def _old_headers(old: pa.Table) -> pa.Table:
    """The PNG header columns of ``old`` laid out as the header workers' batches."""
    arrays = [old.column(name) if name in old.column_names else pa.chunked_array([pa.nulls(old.num_rows, _I)])
              for name in ("png_path", "png_size", "png_mtime_ns", "png_width", "png_height")]
    arrays.append(pa.chunked_array([pa.nulls(old.num_rows, _S)]))
    return pa.Table.from_arrays(arrays, schema=_PNG_BATCH)


def _old_labels(old: pa.Table) -> pa.Table:
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
    return pa.Table.from_arrays(arrays, schema=_LABEL_BATCH)


def _merged(parsed: pa.Table, reusable: pa.Table, reuse_at: np.ndarray) -> pa.Table:
    """Label rows of every JSON file in row order: where ``reuse_at`` is -1 the next parsed row,
    else the row ``reuse_at`` of ``reusable``.

    One take for all rows: a take from chunked columns joins each column's
    chunks first, so taking in slices costs a join per slice (quadratic: at
    1 M labels 64k-row slices made this step 4x slower than the old lookup).
    """
    new = reuse_at < 0
    index = np.where(new, np.cumsum(new) - 1, parsed.num_rows + reuse_at)
    return pa.concat_tables([parsed, reusable]).take(index)


def _kept_rows(json_path: pa.Array, reuse_at: np.ndarray, png_path: pa.Array, png_same: np.ndarray) -> pa.Array:
    """Rows whose inputs did not change: the label reused (or no JSON), the same PNG file (or none)."""
    has = pc.is_valid(json_path).to_numpy(zero_copy_only=False)
    kept = ~has
    kept[has] = reuse_at >= 0
    has_png = pc.is_valid(png_path).to_numpy(zero_copy_only=False)
    kept[has_png] &= png_same
    return pa.array(kept)


def _carry_extras(table: pa.Table, old: pa.Table | None, kept: pa.Array) -> pa.Table:
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


# --- assembly -------------------------------------------------------------------

def _assemble(cols: dict[str, pa.Array], pairing_error: pa.Array, png: pa.Table, lab: pa.Table) -> pa.Table:
    """The manifest table from row-aligned parts: sample columns, PNG headers, label columns; validity and error.

    ``error`` is the first of: the label's error, the pairing error, the
    image's error (:func:`common.delivery.image_checks.image_errors`, also kept on its
    own in ``image_error``).
    """
    cols = cols | {"png_size": png.column("size"), "png_mtime_ns": png.column("mtime_ns"),
                   "png_width": png.column("width"), "png_height": png.column("height"),
                   "json_size": lab.column("json_size"), "json_mtime_ns": lab.column("json_mtime_ns")}
    label_error = pc.fill_null(lab.column("label_error"), "")
    image_error = image_errors(png, cols["json_path"], lab, (cols["device"], cols["image_type"]),
                               (lab.column("inst"), lab.column("image")))
    error = pc.if_else(pc.equal(label_error, ""), pc.if_else(pc.equal(pairing_error, ""), image_error,
                                                             pairing_error), label_error)
    usable = pc.is_in(cols["kind"], value_set=pa.array(["frame", "video"]))
    valid = pc.and_(pc.equal(error, ""), usable)
    arrays = [cols[name] for name, _ in SAMPLE_FIELDS] + [lab.column(name) for name, _ in LABEL_FIELDS]
    arrays += [valid, error, pc.fill_null(lab.column("mismatch"), ""), image_error]
    arrays = [a if isinstance(a, pa.ChunkedArray) else pa.chunked_array([a]) for a in arrays]
    return pa.Table.from_arrays(arrays, schema=INDEX_SCHEMA)


class _Stages:
    """Wall time per stage, for the index summary and bench/bench_index.py."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now


@contextmanager
def _no_cyclic_gc():
    """Pause the cyclic garbage collector: indexing makes millions of small acyclic
    tuples (freed by reference counting), and every collection would rescan all
    of them; measured 1.5-2x slower parsing with it on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_index(root: str | Path, out: str | Path, workers: int | None = None, reuse: bool = True,
                progress: bool = False, chunk: int = 1024) -> IndexResult:
    """Index ROOT into the manifest OUT (reusing unchanged rows of an existing OUT)."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise ManifestError(f"{root}: not a directory")
    with _no_cyclic_gc():
        return _build(root, out, workers or default_workers(), reuse, progress, chunk)


@dataclass
class _Pending:
    """Work handed to the workers, and the sample columns made while they run."""

    cols: dict[str, pa.Array]
    pairing_error: pa.Array
    n_duplicates: int
    parsing: Iterable[pa.RecordBatch]  # label batches of the JSON files to parse, in row order
    png_headers: Iterable[pa.RecordBatch]  # header batches of the PNGs to read, in row order
    n_parse: int
    reuse_at: np.ndarray | None  # per JSON file, in row order: its row in the old manifest, -1 if parsed
    png_reuse_at: np.ndarray | None  # per PNG file, in row order: the old row whose header it reuses, or -1
    png_same: np.ndarray | None  # per PNG file, in row order: the same file as in the old manifest


def _start(found: Found, old: pa.Table | None, pool: Workers, clock: _Stages) -> _Pending:
    """Hand the stat and parse work to the workers, then pair the files while they run.

    Only Arrow arrays and the jobs' joined paths outlive this call: the
    lists made from the walk's strings die here, and the walk itself with the
    caller's ``found``, before the label batches are collected (0.6 kB a label).
    """
    stems = sorted_stems(found)
    rels, videos = label_files(found, stems)
    pngs = all_files(found.png, stems)
    reuse_at = png_reuse_at = png_same = None
    if old is not None:  # stat every JSON and PNG first: only changed ones are parsed / read
        stats = pool.table(pool.stat(rels), _STAT_BATCH)
        reuse_at = _reuse_positions(old, pa.array(rels, type=_S), stats.column("size"), stats.column("mtime_ns"),
                                    pa.array(videos, type=_B))
        todo = np.flatnonzero(reuse_at < 0)
        rels, videos = [rels[i] for i in todo], [videos[i] for i in todo]
        stats = pool.table(pool.stat(pngs), _STAT_BATCH)
        png_same, png_reuse_at = _png_reuse(old, stats.column("path"), stats.column("size"), stats.column("mtime_ns"))
        del stats
        pngs = [pngs[i] for i in np.flatnonzero(png_reuse_at < 0)]
    clock.done("reuse")  # with the sort that puts the files in row order
    parsing = pool.parse(rels, videos)
    png_headers = pool.headers(pngs)
    rows, n_dup = pair(found, stems)  # while the workers parse
    cols = _sample_columns(rows)
    clock.done("pair")
    return _Pending(cols, pa.array(rows.pairing_error, type=_S), n_dup, parsing, png_headers, len(rels), reuse_at,
                    png_reuse_at, png_same)


def _labels(pending: _Pending, old: pa.Table | None, progress: bool) -> pa.Table:
    """Label columns aligned with the rows: parsed batches as they arrive, merged with reused rows of ``old``."""
    batches = Workers.progress(pending.parsing, pending.n_parse, progress, "parse")
    if old is not None:
        batches = _merged(Workers.table(batches, _LABEL_BATCH), _old_labels(old), pending.reuse_at).to_batches()
    return _place(batches, pending.cols["json_path"], _LABEL_BATCH)


def _headers(pending: _Pending, old: pa.Table | None) -> pa.Table:
    """PNG header columns aligned with the rows: read ones merged with reused rows of ``old``."""
    batches = pending.png_headers
    if old is not None:
        batches = _merged(Workers.table(batches, _PNG_BATCH), _old_headers(old), pending.png_reuse_at).to_batches()
    return _place(batches, pending.cols["png_path"], _PNG_BATCH)


def _image_problems(image_error: pa.ChunkedArray, n_examples: int = 10) -> tuple[dict[str, int], list[str]]:
    """Rows with an image error by check (the text after the file name), and the first few errors."""
    errors = pc.filter(image_error, pc.not_equal(image_error, "")).to_pylist()
    counts = {check: 0 for check in CHECKS}
    for text in errors:
        check = text.split(": ", 2)[1] if text.count(": ") >= 2 else text
        counts[check] = counts.get(check, 0) + 1
    return {k: v for k, v in counts.items() if v}, errors[:n_examples]


def _other_errors(error: pa.ChunkedArray, image_error: pa.ChunkedArray, n_examples: int = 10) -> list[str]:
    """The first errors that are not an image's (those are listed with the image problems)."""
    other = pc.and_(pc.not_equal(error, ""), pc.not_equal(error, image_error))
    return pc.filter(error, other).slice(0, n_examples).to_pylist()


def _build(root: Path, out: Path, workers: int, reuse: bool, progress: bool, chunk: int) -> IndexResult:
    clock = _Stages()
    pool = Workers(root, workers, chunk)  # forked before the walk: the workers share none of its memory
    try:
        try:
            found = walk(str(root), progress)
        except WalkError as exc:
            raise ManifestError(str(exc)) from None
        clock.done("walk")
        result = IndexResult(ignored_files=found.ignored, n_suite_files=found.n_suite_files,
                             n_hidden_dirs=found.n_hidden_dirs, repeated_dirs=found.repeated_dirs,
                             unreadable_dirs=found.unreadable)
        old = _previous(out, root) if reuse else None
        pending = _start(found, old, pool, clock)
        del found  # the last reference to the walk's strings
        labels = _labels(pending, old, progress)
        png = _headers(pending, old)
    finally:
        pool.close()
    clock.done("parse")
    table = _assemble(pending.cols, pending.pairing_error, png, labels)
    if old is not None:
        table = _carry_extras(table, old, _kept_rows(pending.cols["json_path"], pending.reuse_at,
                                                     pending.cols["png_path"], pending.png_same))
    clock.done("assemble")
    _write_table(table, out, root)
    clock.done("write")
    result.n_rows, result.n_parsed, result.n_duplicates = table.num_rows, pending.n_parse, pending.n_duplicates
    result.n_reused = 0 if pending.reuse_at is None else int((pending.reuse_at >= 0).sum())
    result.n_invalid = table.num_rows - (pc.sum(table.column("valid")).as_py() or 0)
    result.kinds = {k["values"]: k["counts"] for k in pc.value_counts(pending.cols["kind"]).to_pylist()}
    result.image_problems, result.image_examples = _image_problems(table.column("image_error"))
    result.invalid_examples = _other_errors(table.column("error"), table.column("image_error"))
    result.seconds = clock.seconds
    return result
