"""The preparation steps as library calls: index a tree, split a manifest, cut crops, index clips.

`nia index`, `nia split`, `nia crops` and `nia clips` are thin click
wrappers of these functions (options -> arguments, errors -> one line), and
`common.cli.prepared_input` calls them directly when a validation run is
given a dataset root or a manifest, without loading the `nia` command group.
Each step reports what it did through `log` (one line per call), the lines
the command prints. Errors are `PrepareError` (a ValueError) or the
library's own (`ManifestError`, `SplitError`, `ClipIndexError`), each naming
the file.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Sequence

Log = Callable[[str], None]


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class PrepareError(ValueError):
    """A step that cannot run on its input (the message names the file)."""


def index_tree(root: Path, out: Path, *, workers: int | None = None, reuse: bool = True, log: Log = print,
               warn: Log = to_stderr) -> Any:
    """Index the extracted tree ROOT into the manifest OUT (`nia index`); returns the `build_index` result."""
    from common.atomic import check_output_file, remove_stale_temps
    from common.delivery.manifest import build_index

    check_output_file(out)  # before the walk: a read-only or wrong --out fails in its first second
    remove_stale_temps(out.parent, out.name)  # what a run killed while writing OUT left
    r = build_index(root, out, workers=workers, reuse=reuse, progress=True)
    kinds = ", ".join(f"{v} {k}" for k, v in sorted(r.kinds.items()))
    log(f"{out}: {r.n_rows} rows ({kinds}); {r.n_invalid} invalid; "
        f"{r.n_parsed} labels parsed, {r.n_reused} reused; {r.n_duplicates} duplicate files")
    if r.image_problems:
        n_images = sum(r.image_problems.values())
        log("invalid images: " + ", ".join(f"{k} {v}" for k, v in r.image_problems.items())
            + f" (every one is named in the error and image_error columns of {out}):")
        for text in r.image_examples:
            log(f"  {text}")
        if n_images > len(r.image_examples):
            log(f"  ... and {n_images - len(r.image_examples)} more")
    if r.ignored_files:
        log("ignored files by extension: " + ", ".join(f"{k} {v}" for k, v in sorted(r.ignored_files.items())))
    if r.n_suite_files:
        log(f"ignored suite files: {r.n_suite_files} (device_profiles.json at the root, .nia* folders)")
    if r.n_hidden_dirs:
        log(f"skipped hidden folders: {r.n_hidden_dirs}")
    if r.repeated_dirs:
        log(f"folders reached again through a symlink, not entered twice: {len(r.repeated_dirs)}, "
            f"e.g. {r.repeated_dirs[0]}")
    if r.invalid_examples:
        log(f"invalid rows: {r.n_invalid} (every one is named in the error column of {out}), e.g.:")
        for text in r.invalid_examples:
            log(f"  {text}")
    for text in r.unreadable_dirs:
        warn(f"unreadable: {root / text}")
    if r.unreadable_dirs:
        raise PrepareError(f"{len(r.unreadable_dirs)} folder(s) could not be listed (named above): "
                           f"their files are not in {out}; fix them and run again (unchanged rows are reused)")
    return r


def split_manifest(manifest: Path, out: Path | None = None, *, seed: int = 0,
                   ratios: tuple[float, ...] | None = None, counts: tuple[int, ...] | None = None,
                   by: str = "subject", from_list: Sequence[Path] = (), log: Log = print,
                   warn: Log = to_stderr) -> Any:
    """Write the splits into MANIFEST and the list files into OUT (`nia split`); returns the split result."""
    from common.atomic import check_output_file, check_writable_folder
    from common.delivery.manifest import read_manifest, write_manifest
    from common.delivery.splits import make_splits, read_lists, splits_from_lists, write_lists, write_summary

    df, root = read_manifest(manifest)
    if from_list:
        result, n_missing = splits_from_lists(df, read_lists(list(from_list)))
        if n_missing:
            warn(f"warning: {n_missing} listed name(s) are not in the manifest")
    else:
        result = make_splits(df, seed, ratios, counts, by)
    df["split"] = result.split
    out = out or manifest.parent / "splits"
    check_writable_folder(out)
    check_output_file(manifest)
    paths = write_lists(df, out)  # the lists first, the manifest last: a failed write leaves it as it was
    options = {"from_list": [str(p) for p in from_list]} if from_list else {"seed": seed, "by": by}
    write_summary(df, result, out, **options)
    write_manifest(df, manifest, root)
    log(", ".join(f"{k} {v}" for k, v in result.counts.items())
        + f"; {result.n_unassigned} eligible row(s) unassigned; lists in {paths[0].parent}")
    for reason, count in result.unassigned.items():
        log(f"  unassigned: {reason}: {count} (listed in {out / 'unassigned.csv'})")
    log(f"sha256 {result.sha256}")
    return result


def load_gaze_profiles(explicit: str | None, root: Path, log: Log = to_stderr) -> Any:
    """The device profiles gaze is derived with: `explicit`, else the root's, else the bundled ones."""
    from common.targets.gaze import resolve_profile_path
    from common.targets.profiles import ProfileError, load_profiles

    path, why = resolve_profile_path(explicit, root)
    try:
        profiles = load_profiles(path)
    except (OSError, ProfileError) as exc:
        raise PrepareError(f"cannot load the device profile: {exc}") from None
    log(f"profile: {profiles.path} ({why}), sha256 {profiles.sha256[:12]}")
    return profiles


def derive_gaze(df: Any, profiles: Any, method: str, log: Log = to_stderr) -> tuple[Any, Any]:
    """The manifest with gaze columns derived by `method`, and the derivation's counts."""
    from common.targets.gaze import add_gaze_columns

    merged, result = add_gaze_columns(df, profiles, method)
    log(f"gaze ({method}): derived for {result.n_derived} of {len(df)} rows")
    for reason, count in sorted(result.skipped.items()):
        log(f"  no gaze, {reason}: {count}")
    return merged, result


def crop_manifest(manifest: Path, out: Path, *, split_column: str | None = "split",
                  eyes_size: tuple[int, int] = (224, 112), eye_size: tuple[int, int] = (160, 96),
                  margin: float = 0.25, workers: int | None = None, chunk_size: int = 64,
                  profile: str | None = None, method: str = "geometric", log: Log = to_stderr) -> dict[str, Any]:
    """Write the eye-crop dataset of MANIFEST into OUT (`nia crops`); returns its summary."""
    import pandas as pd

    from common.delivery.manifest import default_workers, read_manifest
    from common.targets.crop_geometry import CropOptions
    from common.targets.crops import SUMMARY_NAME, write_crop_dataset
    from common.targets.gaze import DERIVATION_COLUMNS, every_derivation
    from common.verdicts.provenance import sha256_file

    options = CropOptions(eyes_size=eyes_size, eye_size=eye_size, margin=margin)
    df, root = read_manifest(manifest)
    if split_column is not None and split_column not in df.columns:
        raise PrepareError(f"{manifest}: no column {split_column!r}: run nia split first "
                           "(or pass --split-column none to put every crop under all/)")
    profiles = load_gaze_profiles(profile, root, log)
    if "gaze_pitch_deg" in df.columns:
        methods = sorted(set(df["gaze_method"].dropna())) if "gaze_method" in df.columns else []
        log(f"gaze: taken from the manifest (method {', '.join(methods) or 'unknown'})")
    else:
        df, _ = derive_gaze(df, profiles, method, log)
    df = pd.concat([df.drop(columns=[c for c in DERIVATION_COLUMNS if c in df.columns]),
                    every_derivation(df, profiles)], axis=1)  # the label under each method, for the report
    summary = write_crop_dataset(
        df, root, Path(out), split_column=split_column, options=options, workers=workers or default_workers(),
        chunk_size=chunk_size, manifest_sha256=sha256_file(manifest), progress=True)
    log(f"crops: {summary['crops_written']} written ({summary['crops_rebuilt']} of them rebuilt: "
        f"inputs changed), {summary['crops_already_present']} already present with the same inputs, "
        f"{summary['crops_in_index']} in the index ({summary['crops_by_name']})")
    for reason, count in {**summary["rows_skipped"], **summary["crops_skipped"]}.items():
        log(f"  skipped, {reason}: {count}")
    _name_damaged(summary, Path(out), log)
    log(f"wrote {Path(out) / 'index.parquet'}, {Path(out) / SUMMARY_NAME} and "
        f"{Path(out) / summary['skipped_list']}")
    return summary


def _name_damaged(summary: dict[str, Any], out: Path, log: Log, shown: int = 10) -> None:
    """The damaged images, one line each (at most ``shown``; all of them in the skipped list)."""
    for entry in summary["damaged_images"][:shown]:
        log(f"  {entry['reason']}: {entry['detail']}")  # the detail starts with the file
    more = summary["damaged_images_total"] - min(shown, len(summary["damaged_images"]))
    if more > 0:
        log(f"  ... and {more} more damaged image(s): see {out / summary['skipped_list']}")


def clip_manifest(manifest: Path, out: Path, *, min_frames: int = 16, face_scale: float = 2.5,
                  face_shift: float = 0.15, workers: int | None = None, chunk_size: int = 8,
                  log: Log = to_stderr) -> dict[str, Any]:
    """Write the clip index of MANIFEST into OUT (`nia clips`); returns its summary."""
    from common.delivery.manifest import default_workers, read_manifest
    from common.targets.clip_index import CLIP_INDEX_NAME
    from common.targets.clip_labels import ClipOptions
    from common.targets.clips import SUMMARY_NAME, write_clip_dataset
    from common.verdicts.provenance import sha256_file

    df, root = read_manifest(manifest)
    if "split" not in df.columns:
        raise PrepareError(f"{manifest}: no column 'split': run nia split first")
    options = ClipOptions(min_frames=min_frames, face_scale=face_scale, face_shift=face_shift)
    summary = write_clip_dataset(df, root, Path(out), options=options, workers=workers or default_workers(),
                                 chunk_size=chunk_size, manifest_sha256=sha256_file(manifest), progress=True)
    log(f"clips: {summary['usable']} usable of {summary['videos']} videos "
        f"({summary['videos_probed']} read, {summary['videos_reused']} unchanged since the last run)")
    for split, counts in summary["by_split"].items():
        log(f"  {split}: {counts['usable']} usable")
    for reason, count in summary["unusable"].items():
        log(f"  skipped, {reason}: {count}")
    log(f"  labels: {summary['label_sources']}, {summary['label_mismatches']} name/JSON mismatch(es); "
        f"regions: {summary['region_sources']}")
    rotated = summary["videos_rotated"]
    if rotated:
        log(f"warning: {len(rotated)} video(s) tagged with a rotation, read as stored (not turned; their "
            f"labels are taken in the stored frame's pixels), e.g. {rotated[0]}")
    log(f"wrote {Path(out) / CLIP_INDEX_NAME} and {Path(out) / SUMMARY_NAME}")
    return summary
