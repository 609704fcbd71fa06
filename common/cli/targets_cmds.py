"""``nia gaze`` and ``nia crops``: derived training targets from a manifest."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import click

from common.cli.sizes import parse_image_size

GAZE_METHODS = ("geometric", "normal")


def _size(value: str) -> tuple[int, int]:
    width, height = parse_image_size(value, "224x112")
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
    from common.prepare_steps import PrepareError, load_gaze_profiles

    try:
        return load_gaze_profiles(explicit, root, log=_to_stderr)
    except PrepareError as exc:
        raise click.ClickException(str(exc)) from None


_to_stderr = partial(click.echo, err=True)


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
    from common.prepare_steps import derive_gaze

    df, root = _read_manifest(manifest)
    profiles = _load_profiles(profile, root)
    merged, _ = derive_gaze(df, profiles, method, log=_to_stderr)
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
    from common.delivery.manifest import ManifestError
    from common.prepare_steps import PrepareError, crop_manifest

    try:
        crop_manifest(Path(manifest), Path(out), split_column=None if split_column.lower() == "none" else split_column,
                      eyes_size=_size(eyes_size), eye_size=_size(eye_size), margin=margin, workers=workers,
                      chunk_size=chunk_size, profile=profile, method=method, log=_to_stderr)
    except (ManifestError, PrepareError) as exc:
        raise click.ClickException(str(exc)) from None


COMMANDS: list[click.Command] = [gaze_command, crops_command]
