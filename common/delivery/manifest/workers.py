"""The index's worker processes: they stat files, parse labels and read PNG headers, in chunks.

Worker processes get chunks of paths, in row order, and send back one Arrow
record batch per chunk (no per-row objects cross the process boundary). Each
frame label goes through the fast path (:mod:`common.delivery.label_columns`,
msgspec in C); only a label the fast path does not accept is re-checked by
:func:`common.delivery.labels.parse_label`, so errors read exactly as before.
Each PNG's header is read here too (:mod:`common.delivery.png_header`: 33 bytes
at the start, 12 at the end, no decode).
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import sys
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from common.cores import available_cores
from common.delivery.filenames import FileNameError, name_mismatches, parse_name
from common.delivery.label_columns import frame_columns
from common.delivery.labels import LabelError, decode_json, parse_label, parse_video_label
from common.delivery.manifest.schema import BOOL, FLOAT, INT, LABEL_BATCH, LABEL_FIELDS, PNG_BATCH, STAT_BATCH, STR
from common.delivery.png_header import read_png_header
from common.parallel import die_with_parent

_POLYGONS = {i + 3 for i, (name, _) in enumerate(LABEL_FIELDS) if name.endswith("_eyelid")}
_SEP = "\0"  # between the paths of one job: the one character no path holds
_N_LABEL = len(LABEL_FIELDS)
_EMPTY_LABEL = (None,) * _N_LABEL


def default_workers() -> int:
    """One index worker per core this process may use."""
    return available_cores()


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
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=FLOAT),
                                    mask=pa.array([p is None for p in polygons], type=BOOL))


def _parse_batch(job: tuple[str, str, list[bool], bool]) -> pa.RecordBatch:
    root, joined, videos, fast = job
    rels = joined.split(_SEP)
    values = [parse_one(root, rel, is_video, fast) for rel, is_video in zip(rels, videos)]
    columns = [rels, *zip(*values)] if values else [[] for _ in LABEL_BATCH]
    arrays = [_polygon_array(c) if i in _POLYGONS else pa.array(c, type=f.type)
              for i, (c, f) in enumerate(zip(columns, LABEL_BATCH))]
    return pa.RecordBatch.from_arrays(arrays, schema=LABEL_BATCH)


def _png_batch(job: tuple[str, str]) -> pa.RecordBatch:
    """Size, mtime_ns, width, height and header error of PNG files (common.delivery.png_header)."""
    base, joined = job
    rels = joined.split(_SEP)
    columns = [rels, *zip(*(read_png_header(base + rel, rel) for rel in rels))]
    return pa.RecordBatch.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, PNG_BATCH)],
                                      schema=PNG_BATCH)


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
    return pa.RecordBatch.from_arrays([pa.array(rels, type=STR), pa.array(sizes, type=INT), pa.array(mtimes, type=INT)],
                                      schema=STAT_BATCH)


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
