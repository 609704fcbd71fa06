"""``nia clips``: the clip dataset of the observer-state test from a manifest."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import click


@click.command("clips")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--min-frames", type=click.IntRange(1), default=16, show_default=True,
              help="Fewer frames than this makes a clip unusable (too_short); Former-DFER reads 16.")
@click.option("--face-scale", type=click.FloatRange(1.0, 20.0), default=2.5, show_default=True,
              help="Side of the square the model sees, in eye distances beyond the eyes' own box.")
@click.option("--face-shift", type=click.FloatRange(-1.0, 1.0), default=0.15, show_default=True,
              help="How far the square's centre lies below the eyes, as a fraction of its side.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Processes counting frames. Default: the cores this process may use.")
@click.option("--chunk-size", type=click.IntRange(1), default=8, show_default=True, help="Videos per work item.")
def clips_command(manifest: str, out: str, min_frames: int, face_scale: float, face_shift: float,
                  workers: int | None, chunk_size: int) -> None:
    """Write the clip index OUT/index.parquet: per video its state, split, frame count and region.

    Frames are counted by decoding each mp4 once (in parallel; a rerun reads
    again only mp4s whose size or mtime changed). The region is a face-sized
    square around the eyes of the video's labelled frames, or the centred
    square of the frame where it has none. Videos it cannot use stay in the
    index with usable = False and a reason (unreadable, too_short, no_state,
    invalid_row, no_split), counted in OUT/clips_summary.json.
    See docs/architecture.md, "Clip dataset".

    \b
    Example:
        nia clips build/manifest.parquet build/clips --workers 4
    """
    from common.delivery.manifest import ManifestError
    from common.prepare_steps import PrepareError, clip_manifest
    from common.targets.clip_index import ClipIndexError

    try:
        clip_manifest(Path(manifest), Path(out), min_frames=min_frames, face_scale=face_scale, face_shift=face_shift,
                      workers=workers, chunk_size=chunk_size, log=partial(click.echo, err=True))
    except (ManifestError, ClipIndexError, PrepareError) as exc:
        raise click.ClickException(str(exc)) from None


COMMANDS: list[click.Command] = [clips_command]
