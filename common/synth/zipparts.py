"""AI Hub-style split zips of a written tree: ``TS_*`` (source) and ``TL_*`` (labels) per display.

Each zip holds its files under their paths relative to the tree's root, so
extracting every zip into one folder rebuilds the tree; it is then cut into
``NAME.zip.part0``, ``.part1``, ... of at most ``part_size`` bytes (merge by
concatenating in numeric order, as for the real delivery). Entries are sorted
and dated 1980-01-01 so the parts are byte-identical for identical trees.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}


def parse_size(text: str) -> int:
    """Bytes from ``'500K'``, ``'20M'``, ``'1G'`` or a plain number; raises ValueError."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)B?\s*", text.upper())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"part size must be a positive number with an optional K, M or G suffix, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _zip_folder(root: Path, folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=FIXED_DATE)
            info.external_attr = 0o644 << 16
            compress = zipfile.ZIP_DEFLATED if path.suffix == ".json" else zipfile.ZIP_STORED
            archive.writestr(info, path.read_bytes(), compress_type=compress)


def _split(path: Path, part_size: int) -> list[Path]:
    parts = []
    with open(path, "rb") as source:
        index = 0
        while chunk := source.read(part_size):
            part = path.with_name(f"{path.name}.part{index}")
            part.write_bytes(chunk)
            parts.append(part)
            index += 1
    path.unlink()
    return parts


def write_zip_parts(root: Path, source_dir: Path, label_dir: Path, dest: Path, part_size: int) -> list[Path]:
    """Zip every display folder under ``root/source_dir`` (TS_) and ``root/label_dir`` (TL_) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    parts: list[Path] = []
    for prefix, sub in (("TS", source_dir), ("TL", label_dir)):
        base = root / sub
        for folder in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
            target = dest / f"{prefix}_{folder.name}.zip"
            _zip_folder(root, folder, target)
            parts.extend(_split(target, part_size))
    return parts
