"""``nia gaze`` and ``nia crops``: derived training targets from a manifest."""
from __future__ import annotations

from pathlib import Path

import click

from common.cli.sizes import parse_size

GAZE_METHODS = ("geometric", "normal")


def _size(value: str) -> tuple[int, int]:
    width, height = parse_size(value, "224x112")
    if width < 2 or height < 2:
        raise click.BadParameter(f"width and height must be at least 2, got {value!r}")
    return width, height


def _read_manifest(path: str):
    from common.delivery.manifest import ManifestError, read_manifest

    try:
        return read_manifest(path)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from None


def _load_profiles(explicit: str | None, root: Path):
    from common.targets.gaze import resolve_profile_path
    from common.targets.profiles import ProfileError, load_profiles

    path, why = resolve_profile_path(explicit, root)
    try:
        profiles = load_profiles(path)
    except (OSError, ProfileError) as exc:
        raise click.ClickException(f"cannot load the device profile: {exc}") from None
    click.echo(f"profile: {profiles.path} ({why}), sha256 {profiles.sha256[:12]}", err=True)
    return profiles


def _derive(df, profiles, method: str):
    from common.targets.gaze import add_gaze_columns

    merged, result = add_gaze_columns(df, profiles, method)
    click.echo(f"gaze ({method}): derived for {result.n_derived} of {len(df)} rows", err=True)
    for reason, count in sorted(result.skipped.items()):
        click.echo(f"  no gaze, {reason}: {count}", err=True)
    return merged, result


profile_option = click.option(
    "--profile", type=click.Path(exists=True, dir_okay=False), default=None,
    help="Device profile JSON. Default: device_profiles.json at the manifest's root if present, else the bundled one.")
method_option = click.option(
    "--method", type=click.Choice(GAZE_METHODS), default="geometric", show_default=True,
    help="Gaze derivation: eye from iris centres + distance.cam (geometric), or on the screen normal (normal).")


@click.command("gaze")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the manifest with gaze columns. Default: update MANIFEST in place.")
@profile_option
@method_option
def gaze_command(manifest: str, out: str | None, profile: str | None, method: str) -> None:
    """Add gaze ground truth (pitch/yaw in degrees, 3D vectors in mm) to a manifest.

    Rows where gaze cannot be derived get NaN and are counted by reason.
    See docs/gaze.md for the convention and every assumption.

    \b
    Example:
        nia gaze build/manifest.parquet --method normal --out build/manifest_normal.parquet
    """
    from common.delivery.manifest import ManifestError, write_manifest

    df, root = _read_manifest(manifest)
    profiles = _load_profiles(profile, root)
    merged, _ = _derive(df, profiles, method)
    target = Path(out) if out else Path(manifest)
    try:
        write_manifest(merged, target, root)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {target}", err=True)


@click.command("crops")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--split-column", default="split", show_default=True,
              help="Manifest column naming each row's split folder; 'none' puts every crop under all/.")
@click.option("--eyes-size", default="224x112", show_default=True, help="Two-eye crop size WIDTHxHEIGHT (L2CS-Net).")
@click.option("--eye-size", default="160x96", show_default=True, help="Per-eye crop size WIDTHxHEIGHT (RIT-Net).")
@click.option("--margin", type=click.FloatRange(0.0, 5.0), default=0.25, show_default=True,
              help="Relative margin added on each side of the eyelid bounding box.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Processes. Default: the cores this process may use.")
@click.option("--chunk-size", type=click.IntRange(1), default=64, show_default=True, help="Frames per work item.")
@profile_option
@method_option
def crops_command(manifest: str, out: str, split_column: str, eyes_size: str, eye_size: str, margin: float,
                  workers: int | None, chunk_size: int, profile: str | None, method: str) -> None:
    """Write the eye-crop dataset (JPG + class-map PNG + JSON per crop) and OUT/index.parquet.

    Per valid frame: a two-eye crop (eyes/) and one crop per eye (r_eye/, l_eye/)
    under OUT/{split}/. Gaze is taken from the manifest, or derived with
    --method/--profile when the manifest has no gaze columns. Resumable: a crop
    is kept only when its three files exist and its inputs (label, image,
    split, options, gaze) are the ones it was made from; every other one is
    written again. A summary is printed and saved as OUT/crops_summary.json;
    every crop not made is listed in OUT/crops_skipped.csv.

    \b
    Example:
        nia crops build/manifest.parquet build/crops --workers 8
        nia crops build/manifest.parquet build/crops_all --split-column none
    """
    import pandas as pd

    from common.targets.crops import SUMMARY_NAME, CropOptions, write_crop_dataset
    from common.targets.gaze import DERIVATION_COLUMNS, every_derivation
    from common.delivery.manifest import default_workers
    from common.verdicts.provenance import sha256_file

    split = None if split_column.lower() == "none" else split_column
    options = CropOptions(eyes_size=_size(eyes_size), eye_size=_size(eye_size), margin=margin)
    df, root = _read_manifest(manifest)
    if split is not None and split not in df.columns:
        raise click.ClickException(f"{manifest}: no column {split!r}: run nia split first "
                                   "(or pass --split-column none to put every crop under all/)")
    profiles = _load_profiles(profile, root)
    if "gaze_pitch_deg" in df.columns:
        methods = sorted(set(df["gaze_method"].dropna())) if "gaze_method" in df.columns else []
        click.echo(f"gaze: taken from the manifest (method {', '.join(methods) or 'unknown'})", err=True)
    else:
        df, _ = _derive(df, profiles, method)
    df = pd.concat([df.drop(columns=[c for c in DERIVATION_COLUMNS if c in df.columns]),
                    every_derivation(df, profiles)], axis=1)  # the label under each method, for the report
    summary = write_crop_dataset(
        df, root, Path(out), split_column=split, options=options, workers=workers or default_workers(),
        chunk_size=chunk_size, manifest_sha256=sha256_file(manifest), progress=True)
    click.echo(f"crops: {summary['crops_written']} written ({summary['crops_rebuilt']} of them rebuilt: "
               f"inputs changed), {summary['crops_already_present']} already present with the same inputs, "
               f"{summary['crops_in_index']} in the index ({summary['crops_by_name']})", err=True)
    for reason, count in {**summary["rows_skipped"], **summary["crops_skipped"]}.items():
        click.echo(f"  skipped, {reason}: {count}", err=True)
    _name_damaged(summary, Path(out))
    click.echo(f"wrote {Path(out) / 'index.parquet'}, {Path(out) / SUMMARY_NAME} and "
               f"{Path(out) / summary['skipped_list']}", err=True)


def _name_damaged(summary: dict, out: Path, shown: int = 10) -> None:
    """The damaged images, one line each (at most ``shown``; all of them in the skipped list)."""
    for entry in summary["damaged_images"][:shown]:
        click.echo(f"  {entry['reason']}: {entry['detail']}", err=True)  # the detail starts with the file
    more = summary["damaged_images_total"] - min(shown, len(summary["damaged_images"]))
    if more > 0:
        click.echo(f"  ... and {more} more damaged image(s): see {out / summary['skipped_list']}", err=True)


COMMANDS: list[click.Command] = [gaze_command, crops_command]
