"""Walk a delivery tree and pair its files by stem into the sample rows of the manifest.

Pairing rules (any layout, any depth): a PNG and a JSON with the same stem
are a ``frame``; an mp4 is a ``video`` and a JSON with its stem is its
video-level label; a lone JSON is ``label_only``, a lone PNG ``image_only``.
Two files of the same type with the same stem: the first (by path) keeps the
stem as ``sample_id``, the others become invalid ``{stem}#dup{k}`` rows.

Folders: a directory symlink is followed after every real folder has been
walked (so a file keeps its real path), and a folder reached a second time
(a symlink loop, or a link to a folder already walked; same ``(st_dev,
st_ino)``) is not entered again, but counted. A folder that cannot be listed (permissions)
is named in ``Found.unreadable`` and the walk goes on; the root itself must
be listable.

Files the suite itself writes into a dataset root (``device_profiles.json``
at the root, from ``nia synth``; anything under a ``.nia*`` folder) are not
samples: they are counted, never listed. Other hidden folders (``.git``) are
not entered, and counted too.

Written for millions of files: one ``os.scandir`` per folder and no stat
call (the file type comes from the directory entry; sizes and mtimes are
taken later, in parallel, by :mod:`common.delivery.manifest`'s workers), plain
strings and column lists (no per-file objects). Everything after the walk
lists files in row order (stems sorted once, :func:`sorted_stems`), so that
the workers' results line up with the manifest rows as they arrive: no
lookup by path, no copy of the label columns.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from tqdm import tqdm

EXTENSIONS = {".png": "png", ".json": "json", ".mp4": "mp4"}
SUITE_PROFILE = "device_profiles.json"  # nia synth: OUT/device_profiles.json
SUITE_DIR_PREFIX = ".nia"  # .nia-synth/, .nia-prepare/
NO_JSON = "no JSON label with this stem"
NO_PNG = "no PNG image with this stem"

File = str  # path relative to the root, POSIX


class WalkError(OSError):
    """A folder that cannot be listed; names it."""


@dataclass
class Found:
    """Files by type then stem (``png[stem] = [rel, ...]``, sorted by path) and counts."""

    png: dict[str, list[File]] = field(default_factory=dict)
    json: dict[str, list[File]] = field(default_factory=dict)
    mp4: dict[str, list[File]] = field(default_factory=dict)
    ignored: dict[str, int] = field(default_factory=dict)  # other files, by extension
    n_suite_files: int = 0
    n_hidden_dirs: int = 0
    repeated_dirs: list[str] = field(default_factory=list)  # "rel -> first rel": reached again, not entered
    unreadable: list[str] = field(default_factory=list)  # "rel: reason": folders that could not be listed


def _count_files(path: str) -> int:
    n = 0
    for folder, _, files in os.walk(path):
        n += len(files)
    return n


def _split(name: str) -> tuple[str, str]:
    """``os.path.splitext`` with a fast path for names without a leading dot."""
    dot = name.rfind(".")
    if dot > 0 and name[0] != ".":
        return name[:dot], name[dot:]
    return os.path.splitext(name)


def _first_visit(path: str, rel: str, entered: dict[tuple[int, int], str], found: Found) -> bool:
    """Whether the folder at ``path`` is new to this walk (one stat per folder, none per file)."""
    try:
        st = os.stat(path)  # follows a symlink: its target's identity
    except OSError as exc:
        found.unreadable.append(f"{rel}: {exc.strerror}")
        return False
    key = (st.st_dev, st.st_ino)
    if key in entered:
        found.repeated_dirs.append(f"{rel} -> {entered[key]}")
        return False
    entered[key] = rel
    return True


def walk(root: str, progress: bool = False) -> Found:
    """Every PNG, JSON and mp4 under ``root``; everything else counted."""
    found = Found()
    by_kind = {"png": found.png, "json": found.json, "mp4": found.mp4}
    ignored = found.ignored
    try:
        st = os.stat(root)
    except OSError as exc:
        raise WalkError(f"{root}: cannot read the folder: {exc.strerror}") from None
    entered = {(st.st_dev, st.st_ino): "."}  # folders by identity: a symlink loop is entered once
    stack = [(root, "")]
    links: list[tuple[str, str]] = []  # symlinked folders, entered once the real ones are done
    bar = tqdm(desc="walk", unit=" files", disable=None if progress else True, file=sys.stderr)
    while stack or links:
        if not stack:
            links.sort(key=lambda link: link[1], reverse=True)
            path, rel = links.pop()
            if not _first_visit(path, rel[:-1], entered, found):
                continue
            stack.append((path, rel))
        path, rel = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError as exc:
            if not rel:
                raise WalkError(f"{path}: cannot list the directory: {exc.strerror}") from None
            found.unreadable.append(f"{rel[:-1]}: {exc.strerror}")
            continue
        for e in entries:
            name = e.name
            if e.is_dir():
                if name.startswith(SUITE_DIR_PREFIX):
                    found.n_suite_files += _count_files(e.path)
                elif name.startswith("."):
                    found.n_hidden_dirs += 1
                elif e.is_symlink():
                    links.append((e.path, f"{rel}{name}/"))
                elif _first_visit(e.path, f"{rel}{name}", entered, found):
                    stack.append((e.path, f"{rel}{name}/"))
                continue
            stem, ext = _split(name)
            kind = EXTENSIONS.get(ext) or EXTENSIONS.get(ext.lower())
            if kind is None:
                key = ext.lower() or "(none)"
                ignored[key] = ignored.get(key, 0) + 1
                continue
            if not rel and name == SUITE_PROFILE:
                found.n_suite_files += 1
                continue
            files = by_kind[kind].get(stem)
            if files is None:
                by_kind[kind][stem] = [rel + name]
            else:
                files.append(rel + name)
                files.sort()
        bar.update(len(entries))
    bar.close()
    return found


class Rows:
    """The sample part of the manifest as column lists, one entry per row.

    ``name_stem`` is the stem whose NIA name fields the row gets.
    """

    def __init__(self) -> None:
        self.sample_id: list[str] = []
        self.kind: list[str] = []
        self.name_stem: list[str] = []
        self.pairing_error: list[str] = []
        self.png: list[File | None] = []
        self.json: list[File | None] = []
        self.mp4: list[File | None] = []

    def add(self, sample_id: str, kind: str, stem: str, png: File | None, js: File | None, mp4: File | None,
            pairing_error: str = "") -> None:
        self.sample_id.append(sample_id)
        self.kind.append(kind)
        self.name_stem.append(stem)
        self.pairing_error.append(pairing_error)
        self.png.append(png)
        self.json.append(js)
        self.mp4.append(mp4)

    def __len__(self) -> int:
        return len(self.sample_id)


def sorted_stems(found: Found) -> list[str]:
    """Every stem, sorted: the row order of the manifest."""
    return sorted(found.png.keys() | found.json.keys() | found.mp4.keys())


def pair(found: Found, stems: list[str]) -> tuple[Rows, int]:
    """One row per sample, in the order of ``stems``; and the number of duplicate files.

    Within a stem the JSON files (and the PNG files) fill rows in the order of
    their list, so :func:`label_files` and :func:`all_files` give each type's
    files in the order of the rows that hold them.
    """
    pngs, jsons, mp4s = found.png, found.json, found.mp4
    rows, n_dup = Rows(), 0
    for stem in stems:
        p, j, v = pngs.get(stem), jsons.get(stem), mp4s.get(stem)
        p0, j0, v0 = (p[0] if p else None), (j[0] if j else None), (v[0] if v else None)
        if v0 is not None:
            rows.add(stem, "video", stem, None, j0, v0)
            if p0 is not None:  # a PNG named like a video: keep it as its own row
                rows.add(f"{stem}#png", "image_only", stem, p0, None, None, NO_JSON)
        elif p0 is not None and j0 is not None:
            rows.add(stem, "frame", stem, p0, j0, None)
        elif j0 is not None:
            rows.add(stem, "label_only", stem, None, j0, None, NO_PNG)
        else:
            rows.add(stem, "image_only", stem, p0, None, None, NO_JSON)
        if (p is None or len(p) == 1) and (j is None or len(j) == 1) and (v is None or len(v) == 1):
            continue
        k = 0
        for kind, first, extra in (("image_only", p0, p), ("label_only", j0, j), ("video", v0, v)):
            for f in (extra or ())[1:]:
                k += 1
                rows.add(f"{stem}#dup{k}", kind, stem, f if kind == "image_only" else None,
                         f if kind == "label_only" else None, f if kind == "video" else None,
                         f"duplicate stem: also at {first}")
        n_dup += k
    return rows, n_dup


def label_files(found: Found, stems: list[str]) -> tuple[list[str], list[bool]]:
    """Every JSON file, in row order, and whether it is a video label; known before pairing.

    A JSON is a video label when an mp4 has its stem and it is the first JSON
    of that stem; every other JSON (duplicates included) is a frame label.
    """
    rels, is_video = [], []
    jsons, mp4s = found.json, found.mp4
    for stem in stems:
        files = jsons.get(stem)
        if files is None:
            continue
        rels += files
        is_video.append(stem in mp4s)
        if len(files) > 1:
            is_video += [False] * (len(files) - 1)
    return rels, is_video


def all_files(by_stem: dict[str, list[File]], stems: list[str]) -> list[File]:
    """Every file of one type (duplicates included), in row order."""
    out: list[File] = []
    for stem in stems:
        files = by_stem.get(stem)
        if files is not None:
            out += files
    return out
