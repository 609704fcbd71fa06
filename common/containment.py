"""Path containment: a path named by data must stay inside its folder.

Two rules, one concern. A crop or clip index's paths (issue 19, item 9):
``index.parquet`` is data an auditor may be handed: a row whose ``jpg_path``,
``png_path`` or ``video_path`` is absolute or climbs out with ``..`` would
make a test read files outside ``--data`` (say, the submission's own class
maps as the truth). ``nia crops`` and ``nia clips`` write only plain relative
paths, so such a row is refused, never followed. A file named by a result
folder (an overlay in ``per_sample.csv``): read only when it resolves inside
the folder, symbolic links included (:func:`inside_folder`).
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import pandas as pd


def escapes(path: str) -> bool:
    """True when ``path`` is absolute (POSIX or Windows, a drive included) or has a ``..`` part."""
    windows = PureWindowsPath(path)
    return (PurePosixPath(path).is_absolute() or windows.is_absolute() or bool(windows.drive)
            or ".." in path.replace("\\", "/").split("/"))


def refuse_escaping_paths(rows: pd.DataFrame, columns: Sequence[str], index_path: Path, id_column: str) -> None:
    """ValueError naming the index file, the row and the field of the first path that leaves the folder."""
    for column in columns:
        for position, (name, value) in enumerate(zip(rows[id_column], rows[column])):
            if isinstance(value, str) and escapes(value):
                raise ValueError(f"{index_path}: row {position} ({name}): {column} {value!r} is absolute or "
                                 "climbs out with '..': an index's paths must stay inside its dataset folder")


def inside_folder(folder: Path, name: str) -> Path | None:
    """``folder / name`` when it lies inside ``folder``, else None: an absolute name, one that climbs out
    with ``..``, or one that reaches outside through a symbolic link (the file or a folder on the way)."""
    if Path(name).is_absolute():
        return None
    inside = folder.resolve()
    path = (folder / name).resolve()
    return folder / name if inside in path.parents else None
