"""`nia index`: walk a tree, pair files by stem, parse labels in parallel, write the manifest.

Built for 2.5 million labels: labels are parsed in chunks by a process pool
and come back as Arrow record batches (no per-file DataFrame work); the
manifest is assembled column by column. Re-indexing reuses the parsed
columns of every JSON whose (size, mtime_ns) did not change, so an unchanged
tree costs one directory walk plus the parquet read and write.

Pairing rules (any layout, any depth): a PNG and a JSON with the same stem
are a ``frame``; an mp4 is a ``video`` and a JSON with its stem is its
video-level label; a lone JSON is ``label_only``, a lone PNG ``image_only``.
Two files of the same type with the same stem: the first (by path) keeps the
stem as ``sample_id``, the others become invalid ``{stem}#dup{k}`` rows.
Nothing is dropped: every PNG, JSON and mp4 under ROOT is in some row.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from common import __version__
from common.filenames import FileNameError, name_mismatches, parse_name, try_parse_name
from common.labels import LabelError, decode_json, parse_label, parse_video_label

ROOT_KEY = b"nia.root"
VERSION_KEY = b"nia.version"
EXTENSIONS = {".png": "png", ".json": "json", ".mp4": "mp4"}
NO_JSON = "no JSON label with this stem"
NO_PNG = "no PNG image with this stem"
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
_LABEL_BATCH = pa.schema([("json_path", _S)] + LABEL_FIELDS + [("label_error", _S), ("mismatch", _S)])
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


@dataclass(frozen=True, slots=True)
class FileEntry:
    rel: str
    size: int
    mtime_ns: int


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


# --- reading and writing ----------------------------------------------------------

def _schema_for(df_columns: Iterable[str], inferred: pa.Schema) -> pa.Schema:
    return pa.schema([(c, KNOWN_TYPES.get(c, inferred.field(c).type)) for c in df_columns])


def _write_table(table: pa.Table, path: str | Path, root: str | Path) -> None:
    path = Path(path)
    meta = dict(table.schema.metadata or {})
    meta.update({ROOT_KEY: str(Path(root).resolve()).encode(), VERSION_KEY: __version__.encode()})
    table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(table, tmp)
    except (OSError, pa.ArrowException) as exc:
        raise ManifestError(f"{path}: cannot write the manifest: {exc}") from None
    os.replace(tmp, path)


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
    """The cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# --- walking --------------------------------------------------------------------

def walk(root: Path, progress: bool = False) -> tuple[dict[str, dict[str, list[FileEntry]]], dict[str, int]]:
    """Files by type then stem (``{"png": {stem: [FileEntry]}}``) and counts of ignored extensions.

    Hidden directories (``.nia-prepare``, ``.git``) are skipped.
    """
    found: dict[str, dict[str, list[FileEntry]]] = {"png": {}, "json": {}, "mp4": {}}
    ignored: dict[str, int] = {}
    stack = [(str(root), "")]
    bar = tqdm(desc="walk", unit=" files", disable=None if progress else True, file=sys.stderr)
    while stack:
        path, rel = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError as exc:
            raise ManifestError(f"{path}: cannot list the directory: {exc.strerror}") from None
        for e in entries:
            name = e.name
            if e.is_dir():
                if not name.startswith("."):
                    stack.append((e.path, f"{rel}{name}/"))
                continue
            stem, ext = os.path.splitext(name)
            kind = EXTENSIONS.get(ext.lower())
            if kind is None:
                ignored[ext.lower() or "(none)"] = ignored.get(ext.lower() or "(none)", 0) + 1
                continue
            st = e.stat()
            found[kind].setdefault(stem, []).append(FileEntry(rel + name, st.st_size, st.st_mtime_ns))
        bar.update(len(entries))
    bar.close()
    for by_stem in found.values():
        for files in by_stem.values():
            if len(files) > 1:
                files.sort(key=lambda f: f.rel)
    return found, ignored


# --- parsing (runs in worker processes) -----------------------------------------------

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
        out.append([c for p in s.points for c in p] if s else None)
    return tuple(out)


def _video_values(video) -> tuple:
    return (video.inst, video.image, video.condition, video.posture, video.metaid) + (None,) * (_N_LABEL - 5)


def parse_one(root: str, rel: str, is_video: bool) -> tuple:
    """Label columns, error text and mismatch text for one JSON file."""
    file = os.path.join(root, rel)
    stem = os.path.splitext(rel.rsplit("/", 1)[-1])[0]
    try:
        fd = os.open(file, os.O_RDONLY)
        try:
            chunks = [os.read(fd, 1 << 16)]
            while len(chunks[-1]) == 1 << 16:
                chunks.append(os.read(fd, 1 << 16))
        finally:
            os.close(fd)
        obj = decode_json(b"".join(chunks) if len(chunks) > 1 else chunks[0], rel)
        if is_video:
            label = parse_video_label(obj, rel)
            return (rel, *_video_values(label), "", _mismatch_of(stem, label))
        label = parse_label(obj, rel)
        return (rel, *_frame_values(label), "", _mismatch_of(stem, label))
    except LabelError as exc:
        return (rel, *_EMPTY_LABEL, str(exc), "")
    except OSError as exc:
        return (rel, *_EMPTY_LABEL, f"{rel}: $: cannot read: {exc.strerror}", "")


def _parse_batch(job: tuple[str, list[tuple[str, bool]]]) -> pa.RecordBatch:
    root, items = job
    rows = [parse_one(root, rel, is_video) for rel, is_video in items]
    columns = list(zip(*rows))
    return pa.RecordBatch.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, _LABEL_BATCH)],
                                      schema=_LABEL_BATCH)


def parse_labels(root: Path, items: list[tuple[str, bool]], workers: int, chunk: int = 1024,
                 progress: bool = False) -> list[pa.RecordBatch]:
    """Parse JSON files ``(rel_path, is_video)`` in chunks over ``workers`` processes."""
    jobs = [(str(root), items[i:i + chunk]) for i in range(0, len(items), chunk)]
    bar = tqdm(total=len(items), desc="parse", unit=" labels", disable=None if progress else True, file=sys.stderr)
    batches = []
    if workers <= 1 or len(jobs) <= 1:
        results: Iterable[pa.RecordBatch] = map(_parse_batch, jobs)
        pool = None
    else:
        pool = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn").Pool(workers)
        results = pool.imap_unordered(_parse_batch, jobs)
    try:
        for batch in results:
            batches.append(batch)
            bar.update(batch.num_rows)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        bar.close()
    return batches


# --- assembly -------------------------------------------------------------------

def _previous(out: Path, root: Path) -> pa.Table | None:
    """The previous manifest at OUT if it indexed the same root, else None."""
    if not out.exists():
        return None
    try:
        table, old_root = read_table(out)
    except ManifestError:
        return None
    return table if old_root == root.resolve() else None


def _reusable(old: pa.Table | None, json_files: dict[str, FileEntry]) -> tuple[pa.Table | None, list[int]]:
    """Label rows of the previous manifest whose JSON is unchanged, as a label batch table."""
    if old is None:
        return None, []
    keys = zip(old.column("json_path").to_pylist(), old.column("json_size").to_pylist(),
               old.column("json_mtime_ns").to_pylist(), old.column("sample_id").to_pylist())
    take = []
    for i, (rel, size, mtime, sid) in enumerate(keys):
        f = json_files.get(rel) if rel is not None else None
        if f is not None and f.size == size and f.mtime_ns == mtime and "#dup" not in sid:
            take.append(i)
    rows = old.take(pa.array(take, type=pa.int64()))
    errors = [("" if e in PAIRING_ERRORS else e) for e in rows.column("error").to_pylist()]
    arrays = [rows.column(f.name) if f.name != "label_error" else pa.array(errors, type=_S) for f in _LABEL_BATCH]
    return pa.Table.from_arrays([a if isinstance(a, pa.ChunkedArray) else pa.chunked_array([a]) for a in arrays],
                                schema=_LABEL_BATCH), take


class _Rows:
    """Column lists of the sample part of the manifest, appended one row at a time."""

    def __init__(self) -> None:
        self.cols: dict[str, list] = {name: [] for name, _ in SAMPLE_FIELDS}
        self.json_for_row: list[str | None] = []
        self.pairing_error: list[str] = []

    def add(self, sample_id: str, kind: str, png: FileEntry | None, js: FileEntry | None,
            mp4: FileEntry | None, stem: str, pairing_error: str = "") -> None:
        nia = try_parse_name(stem)
        c = self.cols
        c["sample_id"].append(sample_id)
        c["kind"].append(kind)
        c["png_path"].append(png.rel if png else None)
        c["json_path"].append(js.rel if js else None)
        c["video_path"].append(mp4.rel if mp4 else None)
        c["video_stem"].append(nia.video_stem if nia else None)
        c["png_size"].append(png.size if png else None)
        c["png_mtime_ns"].append(png.mtime_ns if png else None)
        c["json_size"].append(js.size if js else None)
        c["json_mtime_ns"].append(js.mtime_ns if js else None)
        for name in NAME_FIELDS:
            c[name].append(getattr(nia, name) if nia else None)
        c["frame"].append(nia.frame if nia else None)
        self.json_for_row.append(js.rel if js else None)
        self.pairing_error.append(pairing_error)


def _pair(found: dict[str, dict[str, list[FileEntry]]]) -> tuple[_Rows, list[tuple[str, bool]], int]:
    """One row per sample; the JSON files to parse (rel, is_video); number of duplicate files."""
    pngs, jsons, mp4s = found["png"], found["json"], found["mp4"]
    rows, jobs, n_dup = _Rows(), [], 0
    for stem in sorted(set(pngs) | set(jsons) | set(mp4s)):
        p, j, v = pngs.get(stem, ()), jsons.get(stem, ()), mp4s.get(stem, ())
        p0, j0, v0 = (p[0] if p else None), (j[0] if j else None), (v[0] if v else None)
        if v0 is not None:
            rows.add(stem, "video", None, j0, v0, stem)
            if p0 is not None:  # a PNG named like a video: keep it as its own row
                rows.add(f"{stem}#png", "image_only", p0, None, None, stem, NO_JSON)
        elif p0 is not None and j0 is not None:
            rows.add(stem, "frame", p0, j0, None, stem)
        elif j0 is not None:
            rows.add(stem, "label_only", None, j0, None, stem, NO_PNG)
        else:
            rows.add(stem, "image_only", p0, None, None, stem, NO_JSON)
        if j0 is not None:
            jobs.append((j0.rel, v0 is not None))
        k = 0
        for kind, extra in (("image_only", p[1:]), ("label_only", j[1:]), ("video", v[1:])):
            for f in extra:
                k += 1
                first = {"image_only": p0, "label_only": j0, "video": v0}[kind]
                js = f if kind == "label_only" else None
                rows.add(f"{stem}#dup{k}", kind, f if kind == "image_only" else None, js,
                         f if kind == "video" else None, stem, f"duplicate stem: also at {first.rel}")
                if js is not None:
                    jobs.append((js.rel, False))
        n_dup += k
    return rows, jobs, n_dup


def _assemble(rows: _Rows, labels: pa.Table) -> pa.Table:
    position = {rel: i for i, rel in enumerate(labels.column("json_path").to_pylist())}
    take = pa.array([position.get(rel) if rel is not None else None for rel in rows.json_for_row], type=pa.int64())
    lab = labels.take(take)
    label_error = lab.column("label_error").to_pylist()
    kinds = rows.cols["kind"]
    valid, error = [], []
    for kind, le, pe in zip(kinds, label_error, rows.pairing_error):
        le = le or ""
        valid.append(not le and not pe and kind in ("frame", "video"))
        error.append(le or pe)
    mismatch = [m or "" for m in lab.column("mismatch").to_pylist()]
    arrays = [pa.array(rows.cols[name], type=t) for name, t in SAMPLE_FIELDS]
    arrays += [lab.column(name) for name, _ in LABEL_FIELDS]
    arrays += [pa.array(valid, type=_B), pa.array(error, type=_S), pa.array(mismatch, type=_S)]
    arrays = [a if isinstance(a, pa.ChunkedArray) else pa.chunked_array([a]) for a in arrays]
    return pa.Table.from_arrays(arrays, schema=INDEX_SCHEMA)


def _carry_extras(table: pa.Table, old: pa.Table | None, reused_ids: set[str]) -> pa.Table:
    """Columns other commands added (split, gaze_*) survive for rows whose JSON did not change."""
    if old is None:
        return table
    extras = [n for n in old.column_names if n not in INDEX_SCHEMA.names]
    if not extras:
        return table
    old_pos = {sid: i for i, sid in enumerate(old.column("sample_id").to_pylist())}
    take = pa.array([old_pos.get(sid) if sid in reused_ids else None
                     for sid in table.column("sample_id").to_pylist()], type=pa.int64())
    picked = old.select(extras).take(take)
    for name in extras:
        table = table.append_column(old.schema.field(name), picked.column(name))
    return table


def build_index(root: str | Path, out: str | Path, workers: int | None = None, reuse: bool = True,
                progress: bool = False, chunk: int = 1024) -> IndexResult:
    """Index ROOT into the manifest OUT (reusing unchanged rows of an existing OUT)."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise ManifestError(f"{root}: not a directory")
    workers = workers or default_workers()
    found, ignored = walk(root, progress)
    rows, jobs, n_dup = _pair(found)
    json_files = {f.rel: f for files in found["json"].values() for f in files}
    old = _previous(out, root) if reuse else None
    cached, _ = _reusable(old, json_files)
    cached_paths = set(cached.column("json_path").to_pylist()) if cached is not None else set()
    todo = [(rel, is_video) for rel, is_video in jobs if rel not in cached_paths]
    batches = parse_labels(root, todo, workers, chunk, progress)
    parts = [pa.Table.from_batches(batches, schema=_LABEL_BATCH)] + ([cached] if cached is not None else [])
    labels = pa.concat_tables(parts)
    table = _assemble(rows, labels)
    reused_ids = {sid for sid, rel in zip(rows.cols["sample_id"], rows.json_for_row)
                  if rel is None or rel in cached_paths}
    table = _carry_extras(table, old, reused_ids)
    _write_table(table, out, root)
    kinds: dict[str, int] = {}
    for k in rows.cols["kind"]:
        kinds[k] = kinds.get(k, 0) + 1
    n_invalid = table.num_rows - sum(table.column("valid").to_pylist())
    return IndexResult(table.num_rows, len(todo), len(jobs) - len(todo), n_invalid, n_dup, kinds, ignored)
