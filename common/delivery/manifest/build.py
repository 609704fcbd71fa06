"""`nia index`: walk a tree, pair files by stem, parse labels in parallel, write the manifest.

Built for 2.5 million labels. The walk and pairing (:mod:`common.delivery.walk`)
make the sample columns; the workers (:mod:`common.delivery.manifest.workers`)
send back one Arrow record batch per chunk of paths, which becomes part of the
manifest as it arrives (:func:`common.delivery.manifest.columns.place`), with
no lookup and no copy. NIA name fields come from one vectorised regex over all
stems. From the workers' PNG headers (``png_width``, ``png_height``),
:mod:`common.delivery.image_checks` marks, over whole columns, an image that is
not the delivery's size or whose labels reach outside it. Re-indexing reuses
what did not change (:mod:`common.delivery.manifest.reuse`). Nothing is
dropped: every PNG, JSON and mp4 under ROOT is in some row, and the suite's own
files are counted.
"""
from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.delivery.image_checks import CHECKS, image_errors
from common.delivery.manifest.columns import place, sample_columns
from common.delivery.manifest.file import write_table
from common.delivery.manifest.reuse import (carry_extras, kept_rows, merged, old_headers, old_labels, png_reuse,
                                            previous, reuse_positions)
from common.delivery.manifest.schema import (BOOL, INDEX_SCHEMA, LABEL_BATCH, LABEL_FIELDS, PNG_BATCH,
                                             SAMPLE_FIELDS, STAT_BATCH, STR, ManifestError)
from common.delivery.manifest.workers import Workers, default_workers
from common.delivery.walk import Found, WalkError, all_files, label_files, pair, sorted_stems, walk


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
        stats = pool.table(pool.stat(rels), STAT_BATCH)
        reuse_at = reuse_positions(old, pa.array(rels, type=STR), stats.column("size"), stats.column("mtime_ns"),
                                    pa.array(videos, type=BOOL))
        todo = np.flatnonzero(reuse_at < 0)
        rels, videos = [rels[i] for i in todo], [videos[i] for i in todo]
        stats = pool.table(pool.stat(pngs), STAT_BATCH)
        png_same, png_reuse_at = png_reuse(old, stats.column("path"), stats.column("size"), stats.column("mtime_ns"))
        del stats
        pngs = [pngs[i] for i in np.flatnonzero(png_reuse_at < 0)]
    clock.done("reuse")  # with the sort that puts the files in row order
    parsing = pool.parse(rels, videos)
    png_headers = pool.headers(pngs)
    rows, n_dup = pair(found, stems)  # while the workers parse
    cols = sample_columns(rows)
    clock.done("pair")
    return _Pending(cols, pa.array(rows.pairing_error, type=STR), n_dup, parsing, png_headers, len(rels), reuse_at,
                    png_reuse_at, png_same)


def _labels(pending: _Pending, old: pa.Table | None, progress: bool) -> pa.Table:
    """Label columns aligned with the rows: parsed batches as they arrive, merged with reused rows of ``old``."""
    batches = Workers.progress(pending.parsing, pending.n_parse, progress, "parse")
    if old is not None:
        batches = merged(Workers.table(batches, LABEL_BATCH), old_labels(old), pending.reuse_at).to_batches()
    return place(batches, pending.cols["json_path"], LABEL_BATCH)


def _headers(pending: _Pending, old: pa.Table | None) -> pa.Table:
    """PNG header columns aligned with the rows: read ones merged with reused rows of ``old``."""
    batches = pending.png_headers
    if old is not None:
        batches = merged(Workers.table(batches, PNG_BATCH), old_headers(old), pending.png_reuse_at).to_batches()
    return place(batches, pending.cols["png_path"], PNG_BATCH)


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
        old = previous(out, root) if reuse else None
        pending = _start(found, old, pool, clock)
        del found  # the last reference to the walk's strings
        labels = _labels(pending, old, progress)
        png = _headers(pending, old)
    finally:
        pool.close()
    clock.done("parse")
    table = _assemble(pending.cols, pending.pairing_error, png, labels)
    if old is not None:
        table = carry_extras(table, old, kept_rows(pending.cols["json_path"], pending.reuse_at,
                                                     pending.cols["png_path"], pending.png_same))
    clock.done("assemble")
    write_table(table, out, root)
    clock.done("write")
    result.n_rows, result.n_parsed, result.n_duplicates = table.num_rows, pending.n_parse, pending.n_duplicates
    result.n_reused = 0 if pending.reuse_at is None else int((pending.reuse_at >= 0).sum())
    result.n_invalid = table.num_rows - (pc.sum(table.column("valid")).as_py() or 0)
    result.kinds = {k["values"]: k["counts"] for k in pc.value_counts(pending.cols["kind"]).to_pylist()}
    result.image_problems, result.image_examples = _image_problems(table.column("image_error"))
    result.invalid_examples = _other_errors(table.column("error"), table.column("image_error"))
    result.seconds = clock.seconds
    return result
