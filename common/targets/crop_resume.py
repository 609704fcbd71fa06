"""`nia crops` resume: which crops on disk are provably what the current inputs would make.

A crop's *input fingerprint* is a SHA-256 (first 128 bits, 32 hex digits)
over everything its three files are made from: the manifest row's fields
that the writer reads (labels, gaze and its method and profile, names,
paths), the split folder, the crop's options (output size, margin, JPEG
quality), the source PNG's size and mtime, the writer's format version and
the OpenCV version (the encoder). A rerun keeps a crop only when its three
files exist and the fingerprint recorded when they were written equals the
one computed now; everything else is written again. A label corrected, an
image replaced, other ``--margin`` or sizes, another gaze method or
profile: each changes the fingerprint of exactly the crops it changes.

Where fingerprints are recorded:

* ``OUT/index.parquet``, column ``input_sha256``, written at the end of a run;
* while a run goes, a journal: one line ``sample_id<TAB>crop<TAB>sha`` per
  crop written, appended right after its files are in place, in
  ``OUT/.nia-crops/journal-{run}-{pid}.tsv`` (one file per run and process).
  A run killed before its index is written resumes from it; the journals are
  deleted once the index holds their lines. Later lines win: journals are
  read in run order after the index (a journal line is never older than the
  index entry of its crop, since journals are deleted after each index).

A crop whose files were written but whose line did not reach the journal (a
kill in between) has no record and is written again: resume errs on the
side of work, never of stale crops.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

FORMAT_VERSION = 1  # bump when the writer makes other files from the same inputs
JOURNAL_DIR = ".nia-crops"
_LINE = re.compile(r"([^\t\n]+)\t([^\t\n]+)\t([0-9a-f]{32})")


def known_column(crop: str) -> str:
    """The row field that carries the recorded fingerprint of ``crop``."""
    return f"_known_{crop}"


def _plain(value: Any) -> Any:
    """A JSON value that is the same for the same data, whatever container it came in."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, str):
        return value
    if hasattr(value, "__len__"):  # eyelid polygons: list or numpy array of numbers
        return [_plain(v) for v in value]
    number = float(value)
    return None if math.isnan(number) else number


def row_fingerprint_text(row: dict, fields: list[str]) -> str:
    """The part of every crop's fingerprint that comes from the row (computed once per row)."""
    return json.dumps([[name, _plain(row.get(name))] for name in fields], separators=(",", ":"))


def input_fingerprint(row_text: str, crop: str, split: str, png_size: int | None, png_mtime_ns: int | None,
                      options: dict) -> str:
    """32 hex digits naming everything ``crop`` of this row is made from (``options``: the crop's own)."""
    import cv2

    payload = json.dumps([FORMAT_VERSION, cv2.__version__, crop, split, png_size, png_mtime_ns, options, row_text],
                         separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


class Journal:
    """Appends ``sample_id, crop, fingerprint`` lines for one process of one run (opened on first use)."""

    def __init__(self, out: Path, run: str) -> None:
        self.path = Path(out) / JOURNAL_DIR / f"journal-{run}-{os.getpid()}.tsv"
        self.fd: int | None = None

    def record(self, sample_id: str, crop: str, fingerprint: str) -> None:
        line = f"{sample_id}\t{crop}\t{fingerprint}\n"
        if not _LINE.fullmatch(line[:-1]):
            return  # a name with a tab or newline: not journaled, so rebuilt after a kill
        if self.fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self.fd, line.encode("utf-8"))  # one small append: whole or, after a kill, cut short

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def journals(out: Path) -> list[Path]:
    """The journal files under OUT, oldest run first."""
    folder = Path(out) / JOURNAL_DIR
    return sorted(folder.glob("journal-*.tsv")) if folder.is_dir() else []


def recorded(out: Path, index_name: str) -> pd.DataFrame:
    """``sample_id, crop, input_sha256`` of every crop with a record: the index's, then the journals'
    (a later line wins)."""
    parts = []
    index = Path(out) / index_name
    if index.is_file():
        import pyarrow.parquet as pq

        try:
            if "input_sha256" in pq.read_schema(index).names:
                parts.append(pq.read_table(index, columns=["sample_id", "crop", "input_sha256"]).to_pandas())
        except (OSError, ValueError):
            pass  # an unreadable index records nothing: its crops are written again
    for path in journals(out):
        lines = path.read_text(encoding="utf-8", errors="replace").split("\n")[:-1]  # a cut last line is dropped
        matches = [m.groups() for m in map(_LINE.fullmatch, lines) if m]
        parts.append(pd.DataFrame(matches, columns=["sample_id", "crop", "input_sha256"]))
    if not parts:
        return pd.DataFrame(columns=["sample_id", "crop", "input_sha256"])
    known = pd.concat(parts, ignore_index=True)
    return known.drop_duplicates(["sample_id", "crop"], keep="last")


def known_table(out: Path, index_name: str) -> pd.DataFrame | None:
    """Recorded fingerprints as one row per sample_id and one column per crop (None if there are none)."""
    known = recorded(out, index_name)
    return known.pivot(index="sample_id", columns="crop", values="input_sha256") if len(known) else None


def known_values(sample_ids: pd.Series, known: pd.DataFrame | None, crop: str) -> pd.Series:
    """The recorded fingerprint of ``crop`` for each sample id (None where there is none)."""
    if known is None or crop not in known.columns:
        return pd.Series([None] * len(sample_ids), index=sample_ids.index, dtype=object)
    values = sample_ids.map(known[crop]).astype(object)
    return values.where(values.notna(), None)


def clear_journals(out: Path) -> None:
    """Delete the journals (their lines are in the index now) and their folder if it is empty."""
    for path in journals(out):
        path.unlink(missing_ok=True)
    try:
        (Path(out) / JOURNAL_DIR).rmdir()
    except OSError:
        pass
