"""Data commands: prepare, index, stats, split (heavy imports stay inside the commands)."""
from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path

import click
from common.atomic import write_bytes_atomic, write_csv_atomic, write_text_atomic

EXISTING = click.Path(exists=True, path_type=Path)


def _numbers(text: str | None, kind: type, option: str) -> tuple | None:
    if text is None:
        return None
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected three comma-separated numbers, got {text!r}", param_hint=option) from None


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``4G``, ``512M``, ``100K``, ``0`` -> bytes (binary units); click.BadParameter otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise click.BadParameter(f"expected a size such as 4G, 512M or 0, got {text!r}")
    return int(float(match[1]) * _SIZE_UNITS[match[2].upper()])


def _size_option(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    return parse_size(value)


@click.command()
@click.argument("src", type=EXISTING)
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option("--keep-merged", is_flag=True, help="Keep merged zips in DEST/.nia-prepare (default: delete once extracted).")
@click.option("--max-ratio", type=click.FloatRange(min=1.0), default=100.0, show_default=True,
              help="Refuse an archive, or a member over 1 MiB, that expands more than this many times "
                   "(a decompression bomb; real deliveries: PNG and mp4 about 1, JSON about 6).")
@click.option("--max-member-size", default="4G", show_default=True, callback=_size_option,
              help="Refuse an archive with a member larger than this.")
@click.option("--min-free", default="1G", show_default=True, callback=_size_option,
              help="Refuse an archive whose files would leave less than this free on DEST's file system.")
def prepare(src: Path, dest: Path, keep_merged: bool, max_ratio: float, max_member_size: int, min_free: int) -> None:
    """Merge zip parts and extract an AI Hub delivery SRC into DEST.

    Parts x.zip.part0..N are joined in numeric order; an empty or truncated
    merge is refused. Member names are decoded as UTF-8 or CP949; an archive
    with a member that would escape DEST, a likely decompression bomb or not
    enough free space is refused before anything of it is written; a damaged
    member (bad CRC) is named. A refused archive is listed on stderr and the
    others are prepared; the run then exits 2. A rerun skips finished archives.

    \b
    Example:
        nia prepare /media/usb/NIA_eye /data/nia
    """
    from common.delivery.prepare import Limits, PrepareError, prepare as run

    limits = Limits(max_ratio=max_ratio, max_member_bytes=max_member_size, min_free_bytes=min_free)
    try:
        result = run(src, dest, keep_merged=keep_merged, progress=True, limits=limits)
    except PrepareError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"extracted {len(result.extracted)} archive(s) ({result.n_files} files written, "
               f"{result.n_reused_files} already complete); skipped {len(result.skipped)} finished archive(s)")
    if result.ignored:
        click.echo(f"ignored {len(result.ignored)} non-archive file(s) in SRC, e.g. {result.ignored[0]}")
    for archive, names in result.duplicates.items():
        click.echo(f"warning: {archive}: {len(names)} duplicate member name(s) extracted once (the first copy), "
                   f"e.g. {names[0]!r}", err=True)
    for archive, names in result.links.items():
        click.echo(f"warning: {archive}: {len(names)} symlink member(s) not extracted, e.g. {names[0]!r}", err=True)
    for reason in result.refused.values():
        click.echo(f"refused: {reason}", err=True)
    if result.stopped:
        raise click.ClickException(f"stopped: {result.stopped}")
    if result.refused:
        n = len(result.refused)
        raise click.ClickException(f"{n} archive(s) refused (named above), {len(result.extracted)} extracted, "
                                   f"{len(result.skipped)} already done; fix them and run again")


@click.command()
@click.argument("root", type=EXISTING)
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Manifest to write (.parquet).")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default="0: all cores", help="Parser processes.")
@click.option("--full", is_flag=True, help="Re-parse every label instead of reusing unchanged rows of OUT.")
def index(root: Path, out: Path, workers: int, full: bool) -> None:
    """Index the extracted tree ROOT into a manifest (one row per sample).

    Pairs PNG and JSON by stem anywhere under ROOT, finds mp4 videos, parses
    and validates every label in parallel. Rows of an existing OUT whose JSON
    has the same size and mtime are reused.

    \b
    Example:
        nia index /data/nia --out build/manifest.parquet
    """
    from common.delivery.manifest import ManifestError
    from common.prepare_steps import PrepareError, index_tree

    try:
        index_tree(root, out, workers=workers or None, reuse=not full, log=click.echo,
                   warn=partial(click.echo, err=True))
    except (ManifestError, PrepareError) as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.argument("manifest", type=EXISTING)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for stats.csv, stats.json, stats.png, synthetic_tracks.csv (default: beside MANIFEST).")
def stats(manifest: Path, out: Path | None) -> None:
    """Compare the manifest with the published composition and flag quality problems.

    \b
    Example:
        nia stats build/manifest.parquet --out build/stats
    """
    from common.atomic import check_writable_folder
    from common.delivery.manifest import ManifestError, read_manifest
    from common.delivery.stats import compute_stats, format_flags, format_table

    prefix = "" if out else f"{manifest.stem}."
    out = check_writable_folder(out or manifest.parent)  # before the work: a read-only --out fails at once
    try:
        df, _ = read_manifest(manifest)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from None
    table, flags, tracks = compute_stats(df)
    click.echo(format_table(table))
    click.echo("")
    click.echo(format_flags(flags))
    write_csv_atomic(out / f"{prefix}stats.csv", table, index=False)
    write_csv_atomic(out / f"{prefix}synthetic_tracks.csv", tracks, index=False)
    payload = {"composition": table.astype(object).where(table.notna(), None).to_dict(orient="records"),
               "flags": flags}
    write_text_atomic(out / f"{prefix}stats.json", json.dumps(payload, indent=2, ensure_ascii=False))
    from common.report.plots import composition_bars

    write_bytes_atomic(out / f"{prefix}stats.png", composition_bars(table))
    click.echo(f"saved {out / f'{prefix}stats.csv'}, stats.json, stats.png (published vs measured), "
               "synthetic_tracks.csv")


@click.command()
@click.argument("manifest", type=EXISTING)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the unit order.")
@click.option("--ratios", default=None, help="train,val,test shares [default: 80.5,9.8,9.8 for frames, 80,10,10 for videos].")
@click.option("--counts", default=None, help="train,val,test exact sample counts instead of ratios.")
@click.option("--by", type=click.Choice(["subject", "video"]), default="subject", show_default=True,
              help="Unit kept whole in one split.")
@click.option("--from-list", "from_list", type=EXISTING, multiple=True,
              help="Official lists: a folder of train/val/test.txt or the files (one name per line).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for train/val/test.txt (default: MANIFEST's folder/splits).")
def split(manifest: Path, seed: int, ratios: str | None, counts: str | None, by: str,
          from_list: tuple[Path, ...], out: Path | None) -> None:
    """Write deterministic train/val/test splits into MANIFEST and list files.

    Subject-disjoint (by the file name's subject) and stratified by display
    and state by default; frames always share their video's split. A row
    whose name and JSON name different people is left out and counted
    (OUT/summary.json, OUT/unassigned.csv). Prints the SHA-256 of the sorted
    (sample_id, split) assignment so two auditors can compare.

    \b
    Example:
        nia split build/manifest.parquet --seed 0
        nia split build/manifest.parquet --from-list official_lists/
    """
    from common.delivery.manifest import ManifestError
    from common.delivery.splits import SplitError
    from common.prepare_steps import split_manifest

    if from_list and (ratios or counts):
        raise click.UsageError("--from-list cannot be combined with --ratios or --counts")
    try:
        split_manifest(manifest, out, seed=seed, ratios=_numbers(ratios, float, "--ratios"),
                       counts=_numbers(counts, int, "--counts"), by=by, from_list=from_list, log=click.echo,
                       warn=partial(click.echo, err=True))
    except (ManifestError, SplitError) as exc:
        raise click.ClickException(str(exc)) from None


COMMANDS: list[click.Command] = [prepare, index, stats, split]
