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
import os
import secrets
from pathlib import Path
from typing import Any, Iterator


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
    except BaseException:  # also KeyboardInterrupt: no temporary file is left behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


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
