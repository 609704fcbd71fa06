"""`nia index`: walk a tree, pair files by stem, parse labels in parallel, write the manifest.

Built for 2.5 million labels. The walk and pairing (:mod:`common.index_walk`)
make the sample columns; worker processes get chunks of paths and send back
one Arrow record batch per chunk (no per-row objects cross the process
boundary). Each frame label goes through the fast path
(:mod:`common.label_columns`, msgspec in C); only a label the fast path does
not accept is re-checked by :func:`common.labels.parse_label`, so errors read
exactly as before. NIA name fields come from one vectorised regex over all
stems. Re-indexing reuses the label columns of every JSON whose (size,
mtime_ns) did not change, matched by path in Arrow, so an unchanged tree
costs one walk (stat calls), the parquet read and the write. Nothing is
dropped: every PNG, JSON and mp4 under ROOT is in some row, and the suite's
own files are counted.
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
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from common import __version__
from common.atomic import atomic_path
from common.cores import available_cores
from common.filenames import PREFIX, FileNameError, name_mismatches, parse_name, try_parse_name
from common.index_walk import NO_JSON, NO_PNG, Rows, WalkError, all_files, label_files, pair, walk
from common.label_columns import NAME_PATTERN, frame_columns
from common.labels import LabelError, decode_json, parse_label, parse_video_label

ROOT_KEY = b"nia.root"
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
_STAT_BATCH = pa.schema([("path", _S), ("size", _I), ("mtime_ns", _I)])
NAME_FIELDS = ("site", "subject", "attempt", "scenario", "device", "image_type", "state", "posture_code", "direction")
SAMPLE_FIELDS: list[tuple[str, pa.DataType]] = (
    [("sample_id", _S), ("kind", _S), ("png_path", _S), ("json_path", _S), ("video_path", _S), ("video_stem", _S)]
    + [(c, _I) for c in ("png_size", "png_mtime_ns", "json_size", "json_mtime_ns")]
    + [(c, _S) for c in NAME_FIELDS] + [("frame", _I)]
)
INDEX_SCHEMA = pa.schema(SAMPLE_FIELDS + LABEL_FIELDS + [("valid", _B), ("error", _S), ("mismatch", _S)])
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
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage (walk, pair, parse, ...)


# --- reading and writing ----------------------------------------------------------

def _schema_for(df_columns: Iterable[str], inferred: pa.Schema) -> pa.Schema:
    return pa.schema([(c, KNOWN_TYPES.get(c, inferred.field(c).type)) for c in df_columns])


def _write_table(table: pa.Table, path: str | Path, root: str | Path) -> None:
    path = Path(path)
    meta = dict(table.schema.metadata or {})
    meta.update({ROOT_KEY: str(Path(root).resolve()).encode(), VERSION_KEY: __version__.encode()})
    table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        try:
            pq.write_table(table, tmp)
        except (OSError, pa.ArrowException) as exc:
            raise ManifestError(f"{path}: cannot write the manifest: {exc}") from None


def write_manifest(df, path: str | Path, root: str | Path) -> None:
    """Write a manifest DataFrame (extra columns kept) with the indexed root in its metadata."""
    inferred = pa.Schema.from_pandas(df, preserve_index=False)
    try:
        table = pa.Table.from_pandas(df, schema=_schema_for(df.columns, inferred), preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise ManifestError(f"{path}: a column does not have its manifest type: {exc}") from None
    _write_table(table, path, root)


def read_table(path: str | Path) -> tuple[pa.Table, Path]:
    """The manifest as an Arrow table and its indexed root."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ManifestError(f"{path}: not a readable parquet manifest: {exc}") from None
    meta = table.schema.metadata or {}
    if ROOT_KEY not in meta:
        raise ManifestError(f"{path}: parquet metadata lacks '{ROOT_KEY.decode()}': not written by `nia index`")
    return table, Path(meta[ROOT_KEY].decode())


def read_manifest(path: str | Path):
    """``(DataFrame, root)``: int64 columns come back as nullable ``Int64``."""
    import pandas as pd

    table, root = read_table(path)
    df = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
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
    """Label columns, mismatch and label error of one JSON by the precise checker (common.labels)."""
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


def _parse_batch(job: tuple[str, list[str], list[bool], bool]) -> pa.RecordBatch:
    root, rels, videos, fast = job
    values = [parse_one(root, rel, is_video, fast) for rel, is_video in zip(rels, videos)]
    columns = [rels, *zip(*values)] if values else [[] for _ in _LABEL_BATCH]
    arrays = [_polygon_array(c) if i in _POLYGONS else pa.array(c, type=f.type)
              for i, (c, f) in enumerate(zip(columns, _LABEL_BATCH))]
    return pa.RecordBatch.from_arrays(arrays, schema=_LABEL_BATCH)


def _stat_batch(job: tuple[str, list[str]]) -> pa.RecordBatch:
    """Size and mtime_ns of files (null for a file that vanished since the walk)."""
    base, rels = job
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


class Workers:
    """The worker processes of one index run (or none: then everything runs here, lazily, in order).

    :meth:`stat` and :meth:`parse` hand out chunks of paths and return at once;
    the workers go on while the caller pairs files; :meth:`table` collects.
    """

    def __init__(self, root: Path, workers: int, chunk: int, fast: bool = True) -> None:
        self.base = os.path.join(str(root), "")
        self.chunk, self.fast = chunk, fast
        self.pool = None
        if workers > 1:
            context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
            self.pool = context.Pool(workers, initializer=gc.disable)

    def _chunks(self, *columns: list) -> list[tuple]:
        n, c = len(columns[0]), self.chunk
        return [(self.base, *(col[i:i + c] for col in columns)) for i in range(0, n, c)]

    def stat(self, rels: list[str]) -> Iterable[pa.RecordBatch]:
        """Sizes and mtimes of ``rels``, in order."""
        jobs = self._chunks(rels)
        return self.pool.imap(_stat_batch, jobs) if self.pool and len(jobs) > 1 else map(_stat_batch, jobs)

    def parse(self, rels: list[str], videos: list[bool]) -> Iterable[pa.RecordBatch]:
        """Label batches of the JSON files ``rels``, in any order."""
        jobs = [job + (self.fast,) for job in self._chunks(rels, videos)]
        if self.pool and len(jobs) > 1:
            return self.pool.imap_unordered(_parse_batch, jobs)
        return map(_parse_batch, jobs)

    @staticmethod
    def table(results: Iterable[pa.RecordBatch], schema: pa.Schema, total: int = 0,
              progress: bool = False, what: str = "") -> pa.Table:
        """Wait for the batches (with a progress bar when ``what`` names them)."""
        bar = tqdm(total=total, desc=what, unit=" files", disable=None if progress and what else True,
                   file=sys.stderr)
        batches = []
        for batch in results:
            batches.append(batch)
            bar.update(batch.num_rows)
        bar.close()
        return pa.Table.from_batches(batches, schema=schema)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
            self.pool = None


# --- sample columns -------------------------------------------------------------

def name_columns(stems: list[str]) -> dict[str, pa.Array]:
    """``video_stem``, the NIA name fields and ``frame`` of every stem (null where it does not parse).

    One vectorised regex does the common names; the few it does not match go
    through :func:`common.filenames.try_parse_name`, the reference.
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


def _lookup(keys: pa.Array, table: pa.Table, key: str) -> pa.Table:
    """Rows of ``table`` whose ``key`` equals each of ``keys`` (null rows where none)."""
    return table.take(pc.index_in(keys, value_set=table.column(key).combine_chunks()))


# --- incremental re-index ------------------------------------------------------

def _previous(out: Path, root: Path) -> pa.Table | None:
    """The previous manifest at OUT if it indexed the same root, else None."""
    if not out.exists():
        return None
    try:
        table, old_root = read_table(out)
    except ManifestError:
        return None
    return table if old_root == root.resolve() else None


def _reusable(old: pa.Table, rel: pa.Array, size: pa.ChunkedArray, mtime: pa.ChunkedArray,
              is_video: pa.Array) -> tuple[pa.Table, np.ndarray]:
    """Label batch of the JSON files with the (path, size, mtime) and role they had in ``old``.

    Rows of ``old`` that were duplicates are never reused (their error is the
    duplicate's, not the label's). Returns the batch and a mask over ``rel``.
    """
    keep = pc.and_(pc.is_valid(old.column("json_path")),
                   pc.invert(pc.match_substring(old.column("sample_id"), "#dup")))
    old = old.filter(keep)
    at = pc.index_in(rel, value_set=old.column("json_path").combine_chunks())
    same = pc.and_(pc.equal(size, pc.take(old.column("json_size"), at)),
                   pc.equal(mtime, pc.take(old.column("json_mtime_ns"), at)))
    same = pc.and_(same, pc.equal(is_video, pc.equal(pc.take(old.column("kind"), at), "video")))
    mask = pc.fill_null(same, False).to_numpy(zero_copy_only=False)
    picked = old.take(pc.filter(at, pa.array(mask)))
    error = picked.column("error")
    label_error = pc.if_else(pc.is_in(error, value_set=pa.array(PAIRING_ERRORS)), "", error)
    arrays = [pc.filter(x, pa.array(mask)) for x in (rel, size, mtime)]
    arrays += [picked.column(name) for name, _ in LABEL_FIELDS]
    arrays += [picked.column("mismatch"), label_error]
    arrays = [a if isinstance(a, pa.ChunkedArray) else pa.chunked_array([a]) for a in arrays]
    return pa.Table.from_arrays(arrays, schema=_LABEL_BATCH), mask


def _carry_extras(table: pa.Table, old: pa.Table | None, kept: pa.Array) -> pa.Table:
    """Columns other commands added (split, gaze_*) survive for rows whose label did not change.

    ``kept`` marks the rows that are reused or have no JSON at all.
    """
    if old is None:
        return table
    extras = [n for n in old.column_names if n not in INDEX_SCHEMA.names]
    if not extras:
        return table
    at = pc.index_in(table.column("sample_id"), value_set=old.column("sample_id").combine_chunks())
    at = pc.if_else(kept, at, pa.scalar(None, at.type))
    picked = old.select(extras).take(at)
    for name in extras:
        table = table.append_column(old.schema.field(name), picked.column(name))
    return table


# --- assembly -------------------------------------------------------------------

def _assemble(cols: dict[str, pa.Array], pairing_error: list[str], png_stats: pa.Table,
              labels: pa.Table) -> pa.Table:
    """The manifest table: sample columns, file stats and label columns placed by path, validity and error."""
    png = _lookup(cols["png_path"], png_stats, "path")
    lab = _lookup(cols["json_path"], labels, "json_path")
    cols = cols | {"png_size": png.column("size"), "png_mtime_ns": png.column("mtime_ns"),
                   "json_size": lab.column("json_size"), "json_mtime_ns": lab.column("json_mtime_ns")}
    label_error = pc.fill_null(lab.column("label_error"), "")
    pairing = pa.array(pairing_error, type=_S)
    error = pc.if_else(pc.equal(label_error, ""), pairing, label_error)
    usable = pc.is_in(cols["kind"], value_set=pa.array(["frame", "video"]))
    valid = pc.and_(pc.equal(error, ""), usable)
    arrays = [cols[name] for name, _ in SAMPLE_FIELDS] + [lab.column(name) for name, _ in LABEL_FIELDS]
    arrays += [valid, error, pc.fill_null(lab.column("mismatch"), "")]
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


def _build(root: Path, out: Path, workers: int, reuse: bool, progress: bool, chunk: int) -> IndexResult:
    clock = _Stages()
    try:
        found = walk(str(root), progress)
    except WalkError as exc:
        raise ManifestError(str(exc)) from None
    clock.done("walk")
    rels, videos = label_files(found)
    old = _previous(out, root) if reuse else None
    pool = Workers(root, workers, chunk)
    try:
        cached, reused = None, np.zeros(len(rels), dtype=bool)
        if old is not None:  # stat every JSON first: only changed ones are parsed
            stats = pool.table(pool.stat(rels), _STAT_BATCH)
            cached, reused = _reusable(old, pa.array(rels, type=_S), stats.column("size"),
                                       stats.column("mtime_ns"), pa.array(videos, type=_B))
        todo = np.flatnonzero(~reused).tolist()
        clock.done("reuse")
        parsing = pool.parse([rels[i] for i in todo], [videos[i] for i in todo])
        png_stats = pool.stat(all_files(found.png))
        rows, n_dup = pair(found)  # while the workers parse
        cols = _sample_columns(rows)
        clock.done("pair")
        parsed = pool.table(parsing, _LABEL_BATCH, len(todo), progress, "parse")
        png_stats = pool.table(png_stats, _STAT_BATCH)
        clock.done("parse")
    finally:
        pool.close()
    labels = pa.concat_tables([parsed] + ([cached] if cached is not None else []))
    table = _assemble(cols, rows.pairing_error, png_stats, labels)
    if old is not None:
        kept = pc.or_(pc.is_null(cols["json_path"]),
                      pc.is_in(cols["json_path"], value_set=cached.column("json_path").combine_chunks()))
        table = _carry_extras(table, old, kept)
    clock.done("assemble")
    _write_table(table, out, root)
    clock.done("write")
    kinds: dict[str, int] = {}
    for k in rows.kind:
        kinds[k] = kinds.get(k, 0) + 1
    n_invalid = table.num_rows - (pc.sum(table.column("valid")).as_py() or 0)
    return IndexResult(table.num_rows, len(todo), int(reused.sum()), n_invalid, n_dup, kinds, found.ignored,
                       found.n_suite_files, found.n_hidden_dirs, clock.seconds)
