"""`nia prepare`: turn an AI Hub delivery (zip parts) into an extracted tree.

* ``x.zip.part0 .. partN`` are concatenated in numeric order (part10 after
  part9); a gap in the numbering, an empty merge or a merge whose zip central
  directory is missing or points past the end of the file is refused, naming
  the parts.
* Member names: UTF-8 when the zip flag bit 11 says so; otherwise the raw
  bytes are tried as UTF-8 (many Korean tools write UTF-8 without the flag),
  then CP949. Members that would land outside DEST are refused.
* Resume: each file is written to a temporary name and renamed when complete;
  a finished archive leaves a marker in ``DEST/.nia-prepare/`` so a rerun
  skips it; members already extracted with the right size are not rewritten.

Each archive extracts into DEST under the folder it had in SRC, so the
delivery's ``01.데이터/1.Training/원천데이터/`` layout is kept.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from common.atomic import atomic_path, write_text_atomic

STATE_DIR = ".nia-prepare"
_PART = re.compile(r"^(?P<base>.+\.zip)\.part(?P<n>\d+)$", re.IGNORECASE)
_UTF8_FLAG = 0x800


class PrepareError(Exception):
    """A delivery that cannot be prepared; the message names the archive or part."""


@dataclass
class Archive:
    """One zip archive of the delivery: a single file or numbered parts."""

    name: str                     # relative to SRC, e.g. 01.데이터/1.Training/원천데이터/TS_1.zip
    parts: list[Path]

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.parts)


@dataclass
class PrepareResult:
    """What one run did, per archive name."""

    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    n_files: int = 0
    n_reused_files: int = 0
    ignored: list[str] = field(default_factory=list)


def find_archives(src: Path) -> tuple[list[Archive], list[str]]:
    """Archives under SRC (parts grouped, numbered parts checked for gaps) and the other files."""
    groups: dict[str, dict[int, Path]] = {}
    singles: list[Archive] = []
    ignored: list[str] = []
    for path in sorted(p for p in src.rglob("*") if p.is_file() and STATE_DIR not in p.parts):
        rel = path.relative_to(src).as_posix()
        m = _PART.match(rel)
        if m:
            groups.setdefault(m["base"], {})[int(m["n"])] = path
        elif rel.lower().endswith(".zip"):
            singles.append(Archive(rel, [path]))
        else:
            ignored.append(rel)
    archives = list(singles)
    for base, parts in groups.items():
        numbers = sorted(parts)
        missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
        if missing:
            raise PrepareError(f"{base}: part(s) {', '.join(f'.part{n}' for n in missing)} missing "
                               f"(found {', '.join(f'.part{n}' for n in numbers)})")
        if any(a.name == base for a in singles):
            raise PrepareError(f"{base}: both the merged zip and its .partN files are in SRC; keep one")
        archives.append(Archive(base, [parts[n] for n in numbers]))
    return sorted(archives, key=lambda a: a.name), ignored


def merge_parts(archive: Archive, dest: Path) -> Path:
    """Concatenate the parts into ``dest`` (via a temporary name) and check the result."""
    with atomic_path(dest) as tmp, open(tmp, "wb") as out:
        for part in archive.parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    check_zip(dest, archive)
    return dest


def _parts_text(archive: Archive) -> str:
    return ", ".join(f"{p.name} ({p.stat().st_size} B)" for p in archive.parts)


def check_zip(path: Path, archive: Archive) -> None:
    """Refuse an empty or truncated archive: the central directory must be readable and
    every member's data must lie inside the file."""
    size = path.stat().st_size
    if size == 0:
        raise PrepareError(f"{archive.name}: merged archive is empty (0 bytes); parts: {_parts_text(archive)}")
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise PrepareError(f"{archive.name}: not a complete zip ({exc}); {size} bytes from parts: "
                           f"{_parts_text(archive)}. A part is probably truncated or missing.") from None
    for info in infos:
        if info.header_offset + info.compress_size > size:
            raise PrepareError(f"{archive.name}: member {info.filename!r} ends past the end of the file "
                               f"({size} bytes); parts: {_parts_text(archive)}")


def decode_member_name(info: zipfile.ZipInfo) -> str:
    """The member's real name: UTF-8 if flagged, else UTF-8 tried first, then CP949."""
    if info.flag_bits & _UTF8_FLAG:
        return info.filename  # zipfile already decoded it as UTF-8
    raw = info.filename.encode("cp437")  # zipfile decoded the raw bytes as CP437: undo that
    for encoding in ("utf-8", "cp949"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return info.filename


def safe_target(dest: Path, name: str, archive: str) -> Path:
    """Where a member goes under DEST; refuses absolute names and ``..`` escapes."""
    clean = name.replace("\\", "/")
    pure = PurePosixPath(clean)
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean) or ".." in pure.parts:
        raise PrepareError(f"{archive}: member {name!r} would be written outside DEST; refusing the archive")
    target = (dest / pure).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise PrepareError(f"{archive}: member {name!r} resolves outside DEST ({target}); refusing the archive")
    return target


def _marker(dest: Path, archive: Archive) -> Path:
    return dest / STATE_DIR / (archive.name.replace("/", "__") + ".done")


def extract(zip_path: Path, dest: Path, archive: str, progress: bool = False) -> tuple[int, int]:
    """Extract every member safely; returns (files written, files already complete)."""
    written = reused = 0
    with zipfile.ZipFile(zip_path) as z:
        members = [(info, safe_target(dest, decode_member_name(info), archive)) for info in z.infolist()]
        for info, target in tqdm(members, desc=archive, unit=" files", disable=None if progress else True,
                                 file=sys.stderr):
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if target.is_file() and target.stat().st_size == info.file_size:
                reused += 1  # written by an interrupted run: files only appear once complete
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp, z.open(info) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            written += 1
    return written, reused


def prepare(src: Path, dest: Path, keep_merged: bool = False, progress: bool = False) -> PrepareResult:
    """Merge, check and extract every archive under SRC into DEST; skips finished ones."""
    archives, ignored = find_archives(src)
    if not archives:
        raise PrepareError(f"{src}: no *.zip or *.zip.partN files found")
    result = PrepareResult(ignored=ignored)
    state = dest / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        marker = _marker(dest, archive)
        if marker.exists():
            result.skipped.append(archive.name)
            continue
        out_dir = dest / PurePosixPath(archive.name).parent
        if len(archive.parts) > 1:
            zip_path = merge_parts(archive, state / (archive.name.replace("/", "__")))
        else:
            zip_path = archive.parts[0]
            check_zip(zip_path, archive)
        written, reused = extract(zip_path, out_dir, archive.name, progress)
        if zip_path.parent == state and not keep_merged:
            zip_path.unlink()
        write_text_atomic(marker, json.dumps({"archive": archive.name, "parts": [p.name for p in archive.parts],
                                              "bytes": archive.size, "files": written + reused}))
        result.extracted.append(archive.name)
        result.n_files += written
        result.n_reused_files += reused
    return result
