"""``nia synth``: write a synthetic dataset in the exact NIA delivery format."""
from __future__ import annotations

import os
from pathlib import Path

import click

from common.cli.sizes import parse_image_size
from common.delivery.filenames import DEVICES


def _devices(text: str) -> tuple[str, ...]:
    codes = tuple(code.strip().upper() for code in text.split(",") if code.strip())
    unknown = [code for code in codes if code not in DEVICES]
    if not codes or unknown:
        raise click.BadParameter(f"expected display codes among {','.join(DEVICES)}, got {text!r}", param_hint="--devices")
    return codes


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--subjects", default=6, show_default=True, type=click.IntRange(1, 999), help="Number of people (metaid 001..N).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed: the same seed and options give byte-identical files.")
@click.option("--videos-per-subject", default=4, show_default=True, type=click.IntRange(1, 99), help="Clips per person.")
@click.option("--frames-per-video", default=24, show_default=True, type=click.IntRange(1), help="Frames per clip (Former-DFER reads 16: shorter clips are its too_short_video).")
@click.option("--size", "size", default="1920x1080", show_default=True, help="Frame size WxH; other than 1920x1080 also writes OUT/device_profiles.json.")
@click.option("--fps", default=30.0, show_default=True, type=click.FloatRange(1, 240), help="Frame rate of the mp4s.")
@click.option("--devices", default=",".join(DEVICES), show_default=True, help="Displays to draw from (comma-separated codes).")
@click.option("--workers", default=min(4, os.cpu_count() or 1), show_default=True, type=click.IntRange(1), help="Processes (one subject each).")
@click.option("--vfr", is_flag=True, default=False,
              help="Variable-frame-rate mp4s: stretches at the --fps rate or a third of it, +-10 %% jitter (same frames).")
@click.option("--keyframe-interval", type=click.IntRange(1), default=None, metavar="N",
              help="A keyframe every N frames (needs the ffmpeg program). Default: OpenCV's writer, every 12th.")
@click.option("--zip-parts", "zip_parts", default=None, metavar="SIZE", help="Also write AI Hub-style split zips (TS_/TL_*.zip.partN, e.g. 50M) into OUT/zips.")
def synth(out: Path, subjects: int, seed: int, videos_per_subject: int, frames_per_video: int, size: str, fps: float,
          devices: str, workers: int, vfr: bool, keyframe_interval: int | None, zip_parts: str | None) -> None:
    """Write a synthetic NIA-format dataset (PNG + JSON per frame, mp4 + JSON per clip) into OUT.

    Faces with two eyes whose irises follow the gaze geometry of
    docs/gaze.md, clips whose dynamics follow the observer state (F, S, D, A,
    N), in the AI Hub folder layout with the real file-name pattern; the true
    gaze per frame goes to OUT/.nia-synth/truth.csv. OUT must be empty or
    absent. See docs/synthetic.md for every assumption.

    \b
    Example:
        nia synth build/synth --subjects 6 --seed 0
        nia synth build/small --subjects 2 --size 640x360 --zip-parts 20M
        nia synth build/vfr --subjects 2 --size 640x360 --vfr --keyframe-interval 250
    """
    from common.synth.writer import SOURCE_DIR, LABEL_DIR, SynthConfig, SynthError, build_dataset
    from common.synth.zipparts import parse_size, write_zip_parts

    part_size = None
    if zip_parts is not None:
        try:
            part_size = parse_size(zip_parts)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--zip-parts") from None
    config = SynthConfig(subjects=subjects, seed=seed, videos_per_subject=videos_per_subject,
                         frames_per_video=frames_per_video, size=parse_image_size(size, "1920x1080", "--size"),
                         fps=fps, devices=_devices(devices), vfr=vfr, keyframe_interval=keyframe_interval)
    try:
        summary = build_dataset(out, config, workers=workers, progress=True)
    except (SynthError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {summary.n_videos} clip(s), {summary.n_frames} frame(s) of {summary.n_subjects} subject(s) to {out}")
    click.echo(f"  clips by display/type: {summary.by_device_type}; by state: {summary.by_state}")
    if part_size is not None:
        parts = write_zip_parts(out, SOURCE_DIR, LABEL_DIR, out / "zips", part_size)
        click.echo(f"  {len(parts)} zip part(s) in {out / 'zips'}")


COMMANDS: list[click.Command] = [synth]
