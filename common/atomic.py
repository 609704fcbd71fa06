"""Atomic file writes: write under a temporary name beside the target, then ``os.replace`` it.

A crash or kill mid-write then leaves either the old target or the new one,
never a half-written file: the temporary file lives in the target's own
folder, so the final rename never crosses a file system and is atomic.

Temporary names are hidden (leading dot) and unique per call (process id and
a random token), so parallel workers or concurrent runs writing the same
target never write into each other's temporary file; only a caller that
fixes the name (``temp=``, for torch.save) gives that up.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from pathlib import Path
from typing import Any, Iterator


# what temp_path_for makes: .NAME.PID.HEX8.tmp or .STEM.PID.HEX8.tmp.SUFFIX
TEMP_NAME = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp(\.[^.]+)?$")


def temp_path_for(target: Path, *, keep_suffix: bool = False) -> Path:
    """A unique hidden temporary path in ``target``'s folder.

    By default the name ends in ``.tmp``, so a leftover from a killed run is
    never taken for data by a walk that goes by extension. ``keep_suffix``
    ends it in the target's suffix instead, for writers that choose the
    format from the name (``cv2.imwrite``, ``cv2.VideoWriter``).
    """
    token = f"{os.getpid()}.{secrets.token_hex(4)}"
    if keep_suffix:
        return target.with_name(f".{target.stem}.{token}.tmp{target.suffix}")
    return target.with_name(f".{target.name}.{token}.tmp")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, keep_suffix: bool = False,
                temp: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target``, on any error it is removed.

    The caller must have closed the file before the block ends. ``temp`` fixes
    the temporary name, for a writer whose bytes depend on its file name
    (``torch.save``); it must lie in target's folder and, not being unique,
    suits only a target that one process writes. Example::

        with atomic_path(out / "index.parquet") as tmp:
            pq.write_table(table, tmp)
    """
    target = Path(target)
    tmp = temp_path_for(target, keep_suffix=keep_suffix) if temp is None else Path(temp)
    if tmp.absolute().parent != target.absolute().parent:
        raise ValueError(f"{tmp}: the temporary file must be in {target.absolute().parent}, "
                         "the target's folder, for the rename to be atomic")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException as exc:  # also KeyboardInterrupt: no temporary file is left behind
        library_error = isinstance(exc, Exception) and not isinstance(exc, OSError)
        full = library_error and _disk_full(target.parent)
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno and exc.filename in (None, str(tmp), tmp):
            # a full disk or a read-only folder names the file the user asked for, not the temporary one
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        number = os_errno_in(exc) if library_error else None
        if number is None and full:  # an error that says nothing (torch.save, OpenCV) on a now full disk
            number = errno.ENOSPC
        if number is not None:  # a writer library's own error about the file: say what it means, naming the file
            raise OSError(number, os.strerror(number), str(target)) from exc
        raise


# How a Rust library reports the OS's error inside its own exception: std::io::Error prints
# "No space left on device (os error 28)". safetensors' SafetensorError does so in every version.
RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def os_errno_in(exc: BaseException) -> int | None:
    """The OS error number behind a writer library's exception, found by what the error says.

    An ``OSError`` with an errno in its cause/context chain, else the ``(os error N)``
    of a Rust library's message (safetensors). Not by class name: safetensors 0.7
    raises ``safetensors_rust.SafetensorError``, 0.8 ``safetensors._safetensors_rust.SafetensorError``,
    and 0.8 removes its partial file, so the disk no longer looks full afterwards.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno:
            return current.errno
        match = RUST_OS_ERROR.search(str(current))
        if match and int(match.group(1)) in errno.errorcode:
            return int(match.group(1))
        current = current.__cause__ or current.__context__
    return None


def _disk_full(folder: Path) -> bool:
    """No room left for one more block in ``folder``'s file system."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < max(st.f_bsize, 4096)


def write_text_atomic(target: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """``Path(target).write_text(text, encoding)``, atomically (no newline translation on POSIX)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding=encoding)


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    """``Path(target).write_bytes(data)``, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_csv_atomic(target: str | os.PathLike, table: Any, **to_csv: Any) -> None:
    """``table.to_csv(target, **to_csv)``, atomically (a kill never leaves a truncated CSV)."""
    with atomic_path(target) as tmp:
        table.to_csv(tmp, **to_csv)


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and check that a file can be made in it, before any work is done.

    Raises an OSError naming the folder (read-only, no permission, a file in
    the way), so a command fails in its first second instead of after hours.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(folder))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temp_path_for(folder / "write-check")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write in this folder ({exc.strerror})", str(folder)) from None
    return folder


def check_output_file(path: str | os.PathLike) -> Path:
    """``path`` can be written as a file: not a folder, and its folder writable (see check_writable_folder)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; give the path of a file to write", str(path))
    check_writable_folder(path.parent)
    return path


def remove_stale_temps(folder: str | os.PathLike, target_name: str | None = None) -> int:
    """Remove the temporary files that a killed writer left in ``folder`` (names of :func:`temp_path_for`),
    only those of ``target_name`` when given.

    For a rerun of the command that owns ``folder`` (or the target); another
    run writing it at the same time would lose its temporary files. Returns how many.
    """
    removed = 0
    prefix = f".{target_name}." if target_name else "."
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and TEMP_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                removed += 1
    return removed
