"""Turn whatever an auditor points ``--data`` at into a crop or clip dataset.

Every entry point accepts three kinds of input, so that one command works on a
raw delivery as well as on prepared data:

* a prepared dataset (a folder with ``index.parquet``, made by ``nia crops``,
  or by ``nia clips`` for the observer-state test): used as is;
* a manifest (``*.parquet`` made by ``nia index``): cropped (``resolve_crops``)
  or indexed as clips (``resolve_clips``) into the work folder (split first
  with the default seed when it has no ``split`` column);
* a dataset root (an extracted delivery or ``nia synth`` output): indexed,
  split and cropped / clipped into the work folder.

The steps are the library calls behind the ``nia`` commands
(`common.prepare_steps`), run in this process without loading the ``nia``
command group; each prints the ``nia ...`` line that does the same by hand,
then its summary lines, on stderr, so the work folder holds what produced it
and can be inspected or remade. They run every time: indexing reuses
unchanged rows and cropping resumes, so a rerun is cheap and never scores
stale crops.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

from common.parquet_read import read_frame, read_schema
from common.prepare_steps import (PrepareError, clip_manifest, crop_manifest, index_tree, split_manifest,
                                  to_stderr)
from common.targets.crops import CROP_INDEX_NAME
from common.verdicts.results import RunError


def _step(args: list[str], run: Callable[..., Any], *paths: Path) -> None:
    """Run one step (`run(*paths, log=...)`) after printing the `nia` command line that does the same;
    a step's error becomes a RunError naming the command."""
    from common.delivery.manifest import ManifestError

    to_stderr("nia " + " ".join(args))
    try:
        run(*paths, log=to_stderr)
    except (ManifestError, PrepareError, ValueError) as exc:  # SplitError, ClipIndexError are ValueErrors
        raise RunError(f"nia {args[0]} failed: {exc}") from None


STEPS: dict[str, Callable[..., Any]] = {"crops": crop_manifest, "clips": clip_manifest}


def _has_split(manifest: Path) -> bool:
    return "split" in read_schema(manifest).names


def _require_kind(manifest: Path, root: Path, kind: str, what: str, prepared: str) -> None:
    table = read_frame(manifest, columns=["kind", "valid"])
    if not ((table["kind"] == kind) & table["valid"]).any():
        raise RunError(f"--data {root}: no valid {what} found among {len(table)} indexed file(s); "
                       f"expected a {prepared} folder with {CROP_INDEX_NAME}, a manifest .parquet, or a dataset root")


def resolve_crops(data: Path, work_dir: Path) -> Path:
    """Return a crop dataset folder for ``data``, preparing it under ``work_dir`` if needed."""
    return _prepared(data, work_dir, "frame", "NIA frame (PNG + label JSON pair)", "crop", "crops")


def resolve_clips(data: Path, work_dir: Path) -> Path:
    """Return a clip dataset folder (``nia clips`` output) for ``data``, preparing it under ``work_dir`` if needed.

    A dataset root is indexed and split by subject (``nia split``'s defaults),
    then ``nia clips`` counts every video's frames (resumable: a rerun reads
    only changed mp4s).
    """
    return _prepared(data, work_dir, "video", "NIA video (mp4)", "clip", "clips")


def _prepared(data: Path, work_dir: Path, kind: str, what: str, prepared: str, command: str) -> Path:
    """``data`` when it is a prepared folder; else ``nia COMMAND``'s output for its manifest, in WORK_DIR/COMMAND."""
    manifest = _prepared_or_manifest(data, work_dir, kind, what, prepared)
    if manifest is None:
        return Path(data)
    folder = Path(work_dir) / command
    _step([command, str(manifest), str(folder)], STEPS[command], manifest, folder)
    return folder


def _prepared_or_manifest(data: Path, work_dir: Path, kind: str, what: str, prepared: str) -> Path | None:
    """None when ``data`` is a prepared folder; else a split manifest for it, made under ``work_dir`` as needed."""
    data = Path(data)
    if not data.exists():
        raise RunError(f"--data {data}: no such file or folder")
    if data.is_dir() and (data / CROP_INDEX_NAME).is_file():
        return None
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if data.is_file() and data.suffix == ".parquet":
        manifest = data
        if "kind" not in read_schema(manifest).names:  # a crop or clip index, say: `nia crops` would crash on it
            raise RunError(f"--data {manifest}: not a manifest of `nia index` (no 'kind' column); a {prepared} "
                           f"index is given as its folder")
        _require_kind(manifest, data, kind, what, prepared)
        if not _has_split(manifest):
            split_copy = work_dir / "manifest.parquet"
            shutil.copyfile(manifest, split_copy)
            _step(["split", str(split_copy), "--out", str(work_dir / "splits")], split_manifest, split_copy,
                  work_dir / "splits")
            manifest = split_copy
    elif data.is_dir():
        manifest = work_dir / "manifest.parquet"
        _step(["index", str(data), "--out", str(manifest)], index_tree, data, manifest)
        _require_kind(manifest, data, kind, what, prepared)
        _step(["split", str(manifest), "--out", str(work_dir / "splits")], split_manifest, manifest,
              work_dir / "splits")
    else:
        raise RunError(f"--data {data}: expected a {prepared} folder with {CROP_INDEX_NAME}, "
                       "a manifest .parquet, or a dataset root folder")
    return manifest
