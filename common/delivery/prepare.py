"""`nia prepare`: turn an AI Hub delivery (zip parts) into an extracted tree.

* ``x.zip.part0 .. partN`` are concatenated in numeric order (part10 after
  part9); a gap in the numbering, an empty merge or a merge whose zip central
  directory is missing or points past the end of the file is refused, naming
  the parts, and the merged copy is removed.
* Member names: UTF-8 when the zip flag bit 11 says so; otherwise the raw
  bytes are tried as UTF-8 (many Korean tools write UTF-8 without the flag),
  then CP949. An archive with a member that would land outside DEST
  (absolute, ``..``, through a symlink) is refused before anything of it is
  written. Symlink members are not extracted (counted); a name that appears
  twice is extracted once, the first copy (counted).
* Guards (:class:`Limits`), checked from the central directory before a byte
  is written: a member larger than ``max_member_bytes``, or (above 1 MiB) more
  than ``max_ratio`` times its compressed size, or an archive more than
  ``max_ratio`` times its compressed size, is refused as a likely
  decompression bomb; an archive whose files would leave less than
  ``min_free_bytes`` free on DEST's file system is refused before extraction.
* A member whose data is damaged (bad CRC, bad deflate stream), or whose
  folder is a file, is named and not written; the archive's other members are extracted and the archive is
  reported as refused, so a rerun tries it again.
* One refused archive does not stop the run: every other archive is
  prepared, and the refused ones are listed (:attr:`PrepareResult.refused`).
* Resume: each file is written under ``DEST/.nia-prepare/partial/`` and
  renamed into place when complete (so a kill never leaves a half-written
  file under its final name, and the rerun clears what a kill left); a
  finished archive leaves a marker in ``DEST/.nia-prepare/`` so a rerun skips
  it; members already extracted with the right size are not rewritten; a
  merged zip that a killed run completed is reused.

Each archive extracts into DEST under the folder it had in SRC, so the
delivery's ``01.데이터/1.Training/원천데이터/`` layout is kept.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator

from tqdm import tqdm

from common.atomic import atomic_path, check_writable_folder, temp_path_for, write_text_atomic

STATE_DIR = ".nia-prepare"
PARTIAL_DIR = "partial"
_PART = re.compile(r"^(?P<base>.+\.zip)\.part(?P<n>\d+)$", re.IGNORECASE)
_UTF8_FLAG = 0x800
_DEST_UNUSABLE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}  # no later archive can be written either
RATIO_FLOOR = 1 << 20  # a member under 1 MiB is not ratio-checked on its own (the archive's total is)


class PrepareError(Exception):
    """A delivery or archive that cannot be prepared; the message names the archive, part or member."""


@dataclass(frozen=True)
class Limits:
    """Decompression-bomb and free-space guards (``nia prepare --max-ratio/--max-member-size/--min-free``).

    A real delivery is far inside them: its PNG frames and mp4 videos are
    already compressed (ratio about 1), its 3.5 kB JSON labels deflate about
    6-fold, and no file of it approaches 4 GiB. A zip of zeros deflates about
    1000-fold.
    """

    max_ratio: float = 100.0
    max_member_bytes: int = 4 << 30
    min_free_bytes: int = 1 << 30


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
    refused: dict[str, str] = field(default_factory=dict)  # archive -> why (one line, naming it)
    duplicates: dict[str, list[str]] = field(default_factory=dict)  # archive -> member names seen again
    links: dict[str, list[str]] = field(default_factory=dict)  # archive -> symlink members not extracted
    stopped: str = ""  # why the run stopped before the last archive (DEST full or read-only)


@dataclass
class _Member:
    info: zipfile.ZipInfo
    name: str
    target: Path


@dataclass
class _Plan:
    """What an archive holds: the members to write (first copy of each name) and what is left out."""

    files: list[_Member]
    dirs: list[Path]
    duplicates: list[str]
    links: list[str]


def find_archives(src: Path) -> tuple[list[Archive], list[str], dict[str, str]]:
    """Archives under SRC (parts grouped), the other files, and the part groups refused (gaps, both forms)."""
    groups: dict[str, dict[int, Path]] = {}
    singles: list[Archive] = []
    ignored: list[str] = []
    refused: dict[str, str] = {}
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
            refused[base] = (f"{base}: part(s) {', '.join(f'.part{n}' for n in missing)} missing "
                             f"(found {', '.join(f'.part{n}' for n in numbers)})")
        elif any(a.name == base for a in singles):
            refused[base] = f"{base}: both the merged zip and its .partN files are in SRC; keep one"
        else:
            archives.append(Archive(base, [parts[n] for n in numbers]))
    archives = [a for a in archives if a.name not in refused]
    return sorted(archives, key=lambda a: a.name), ignored, refused


def merge_parts(archive: Archive, dest: Path) -> Path:
    """Concatenate the parts into ``dest`` (via a temporary name) and check the result.

    A merged file that a killed run completed (the parts' total size, newer
    than every part) is reused; a merge that fails its check is removed.
    """
    newest_part = max(p.stat().st_mtime_ns for p in archive.parts)
    if not (dest.is_file() and dest.stat().st_size == archive.size and dest.stat().st_mtime_ns >= newest_part):
        with atomic_path(dest) as tmp, open(tmp, "wb") as out:
            for part in archive.parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
    try:
        check_zip(dest, archive)
    except PrepareError:
        dest.unlink()
        raise
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
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
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
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean) or ".." in pure.parts or "\0" in clean:
        raise PrepareError(f"{archive}: member {name!r} would be written outside DEST; refusing the archive")
    target = (dest / pure).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise PrepareError(f"{archive}: member {name!r} resolves outside DEST ({target}); refusing the archive")
    return target


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def plan_members(z: zipfile.ZipFile, dest: Path, archive: str) -> _Plan:
    """Every member's target, checked before anything is written; duplicates and symlinks set aside."""
    plan = _Plan([], [], [], [])
    seen: set[Path] = set()
    for info in z.infolist():
        name = decode_member_name(info)
        target = safe_target(dest, name, archive)
        if info.is_dir():
            plan.dirs.append(target)
        elif _is_symlink(info):
            plan.links.append(name)
        elif target in seen:
            plan.duplicates.append(name)
        else:
            seen.add(target)
            plan.files.append(_Member(info, name, target))
    return plan


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def check_limits(plan: _Plan, archive: str, limits: Limits) -> None:
    """Refuse a likely decompression bomb from the sizes the central directory declares.

    zipfile never writes more than a member's declared size (a stream that
    would give more fails its CRC check), so the declared sizes bound the output.
    """
    total = packed = 0
    for m in plan.files:
        size, comp = m.info.file_size, m.info.compress_size
        total, packed = total + size, packed + comp
        if size > limits.max_member_bytes:
            raise PrepareError(f"{archive}: member {m.name!r} would be {_bytes(size)}, over the limit of "
                               f"{_bytes(limits.max_member_bytes)} (--max-member-size raises it); refusing the archive")
        if size > RATIO_FLOOR and size > limits.max_ratio * max(comp, 1):
            raise PrepareError(f"{archive}: member {m.name!r} expands {size / max(comp, 1):.0f}-fold "
                               f"({_bytes(comp)} -> {_bytes(size)}), over --max-ratio {limits.max_ratio:g}: "
                               "a decompression bomb? refusing the archive")
    if total > RATIO_FLOOR and total > limits.max_ratio * max(packed, 1):
        raise PrepareError(f"{archive}: its members expand {total / max(packed, 1):.0f}-fold "
                           f"({_bytes(packed)} -> {_bytes(total)}), over --max-ratio {limits.max_ratio:g}: "
                           "a decompression bomb? refusing the archive")


def _complete(m: _Member) -> bool:
    return m.target.is_file() and m.target.stat().st_size == m.info.file_size


def check_free_space(plan: _Plan, out_dir: Path, archive: str, limits: Limits) -> None:
    """Refuse before extracting when the files still to write would leave less than ``min_free_bytes``."""
    need = sum(m.info.file_size for m in plan.files if not _complete(m))
    probe = out_dir
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need + limits.min_free_bytes > free:
        raise PrepareError(f"{archive}: needs {_bytes(need)} and {_bytes(limits.min_free_bytes)} kept free "
                           f"(--min-free), but {probe} has {_bytes(free)} free; refusing the archive")


def _os_text(exc: OSError) -> str:
    """``cannot write FILE: reason`` (the file the system named), else the error's own text."""
    return f"cannot write {exc.filename}: {exc.strerror}" if exc.filename else str(exc)


def _marker(dest: Path, archive: Archive) -> Path:
    return dest / STATE_DIR / (archive.name.replace("/", "__") + ".done")


@contextlib.contextmanager
def _staged(target: Path, partial: Path) -> Iterator[Path]:
    """A temporary file under ``partial`` (DEST/.nia-prepare/partial) renamed to ``target`` when complete.

    Both lie under DEST, so the rename is atomic and a kill leaves the partial
    file where the rerun clears it; where ``target``'s folder is another file
    system (a mount inside DEST) it goes through a temporary name beside the
    target instead.
    """
    tmp = temp_path_for(partial / target.name)
    try:
        yield tmp
        try:
            os.replace(tmp, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with atomic_path(target) as beside:
                shutil.copyfile(tmp, beside)
    finally:
        tmp.unlink(missing_ok=True)


def extract(zip_path: Path, dest: Path, archive: str, progress: bool = False, *, limits: Limits | None = None,
            partial: Path | None = None) -> tuple[int, int, _Plan]:
    """Extract every member safely; returns (files written, files already complete, the plan).

    Raises PrepareError naming the archive (escape, bomb, free space) before
    writing anything, or naming the damaged member(s) after writing the rest.
    """
    limits = limits or Limits()
    partial = partial or dest / STATE_DIR / PARTIAL_DIR
    written = reused = 0
    damaged: list[str] = []
    with zipfile.ZipFile(zip_path) as z:
        plan = plan_members(z, dest, archive)
        check_limits(plan, archive, limits)
        check_free_space(plan, dest, archive, limits)
        partial.mkdir(parents=True, exist_ok=True)
        for folder in plan.dirs:
            folder.mkdir(parents=True, exist_ok=True)
        for m in tqdm(plan.files, desc=archive, unit=" files", disable=None if progress else True, file=sys.stderr):
            if _complete(m):
                reused += 1  # written by an interrupted run: files only appear once complete
                continue
            try:
                m.target.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                damaged.append(f"{m.name!r} (its folder {exc.filename} is a file)")
                continue
            if m.target.is_dir():
                damaged.append(f"{m.name!r} ({m.target} is a folder)")
                continue
            try:
                with _staged(m.target, partial) as tmp, z.open(m.info) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                damaged.append(f"{m.name!r} ({exc})")
                continue
            written += 1
    if damaged:
        more = f" and {len(damaged) - 1} more member(s)" if len(damaged) > 1 else ""
        raise PrepareError(f"{archive}: member {damaged[0]}{more} not extracted (the archive's other "
                           f"{written + reused} file(s) are); refusing the archive")
    return written, reused, plan


def _clear_leftovers(state: Path) -> None:
    """What a killed run left in the state folder: partial files and temporary merges."""
    shutil.rmtree(state / PARTIAL_DIR, ignore_errors=True)
    for leftover in state.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


def prepare(src: Path, dest: Path, keep_merged: bool = False, progress: bool = False,
            limits: Limits | None = None) -> PrepareResult:
    """Merge, check and extract every archive under SRC into DEST; skips finished ones.

    A refused archive (see the module docstring) is listed in ``refused`` and
    the others go on; only a SRC without archives or a DEST that is not a
    folder stops the run (PrepareError).
    """
    limits = limits or Limits()
    archives, ignored, refused = find_archives(src)
    if not archives and not refused:
        raise PrepareError(f"{src}: no *.zip or *.zip.partN files found")
    if dest.exists() and not dest.is_dir():
        raise PrepareError(f"{dest}: DEST exists and is not a folder")
    result = PrepareResult(ignored=ignored, refused=dict(refused))
    check_writable_folder(dest)  # a read-only DEST fails here, naming it
    state = dest / STATE_DIR
    state.mkdir(exist_ok=True)
    _clear_leftovers(state)
    for archive in archives:
        marker = _marker(dest, archive)
        if marker.exists():
            result.skipped.append(archive.name)
            continue
        merged = state / archive.name.replace("/", "__") if len(archive.parts) > 1 else None
        try:
            _prepare_one(archive, dest, merged, marker, result, limits, progress)
        except (PrepareError, OSError) as exc:
            result.refused[archive.name] = str(exc) if isinstance(exc, PrepareError) else f"{archive.name}: {_os_text(exc)}"
            if merged is not None:
                merged.unlink(missing_ok=True)  # a refused archive leaves nothing behind in the state folder
            if isinstance(exc, OSError) and exc.errno in _DEST_UNUSABLE:
                result.stopped = f"DEST cannot take more files ({_os_text(exc)}); the archives after {archive.name} were not tried"
                break
            continue
        if merged is not None and not keep_merged:
            merged.unlink(missing_ok=True)
    shutil.rmtree(state / PARTIAL_DIR, ignore_errors=True)
    result.refused = dict(sorted(result.refused.items()))
    return result


def _prepare_one(archive: Archive, dest: Path, merged: Path | None, marker: Path, result: PrepareResult,
                 limits: Limits, progress: bool) -> None:
    if merged is not None:
        zip_path = merge_parts(archive, merged)
    else:
        zip_path = archive.parts[0]
        check_zip(zip_path, archive)
    out_dir = dest / PurePosixPath(archive.name).parent
    written, reused, plan = extract(zip_path, out_dir, archive.name, progress, limits=limits,
                                    partial=dest / STATE_DIR / PARTIAL_DIR)
    if plan.duplicates:
        result.duplicates[archive.name] = plan.duplicates
    if plan.links:
        result.links[archive.name] = plan.links
    write_text_atomic(marker, json.dumps({"archive": archive.name, "parts": [p.name for p in archive.parts],
                                          "bytes": archive.size, "files": written + reused,
                                          "duplicates": plan.duplicates, "symlinks_not_extracted": plan.links}))
    result.extracted.append(archive.name)
    result.n_files += written
    result.n_reused_files += reused
