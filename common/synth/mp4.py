"""Write the synthetic mp4s: OpenCV's writer by default, FFmpeg for a chosen keyframe interval, and
variable frame rates by rewriting the container's timing table.

Default (``keyframe_interval=None``, no ``frame_durations``): ``cv2.VideoWriter``
with ``mp4v`` (MPEG-4 Part 2), exactly as before these options existed. It
puts a keyframe every 12 frames, a value OpenCV 4.6 fixes (its
``OPENCV_FFMPEG_WRITER_OPTIONS`` reach only hardware encoders).

``keyframe_interval=N``: the same codec encoded by the ``ffmpeg`` program
(``-g N``, no B-frames unless asked, scene-cut keyframes off, single thread, bit-exact
flags, so reruns are byte-identical). Needed only to write such files
(``scripts/install-system-deps.sh`` installs it); nothing reads videos with it.

``frame_durations``: a variable-frame-rate file. The coded frames stay as
written; only the mp4's time-to-sample table (``stts``: how long each frame
is shown) and the durations in ``mvhd``/``tkhd``/``mdhd``/``elst`` are
rewritten, which is what a phone's variable-rate recording looks like to a
reader: same frames, irregular timestamps. Durations are in units of the
nominal interval ``1 / fps`` and become whole ticks of the track's timescale.
Requires the moov box last and no composition offsets (``ctts``, B-frames):
both hold for the files written here.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from common.atomic import atomic_path

_STBL = ("moov", "trak", "mdia", "minf", "stbl")


class Mp4Error(RuntimeError):
    """An mp4 this module cannot write or edit; names the file or the box."""


Box = tuple[str, int, int, int]  # type, offset, header length, size


def iter_boxes(data: bytes | bytearray, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes (type, offset, header length, size) that lie one after another in ``data[start:end]``."""
    end = len(data) if end is None else end
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        elif size == 0:
            size = end - offset
        name = kind.decode("latin-1")
        if size < header or offset + size > end:
            raise Mp4Error(f"box {name!r} at byte {offset} has an impossible size {size}")
        yield name, offset, header, size
        offset += size


def find_box(data: bytes | bytearray, path: Sequence[str]) -> list[Box]:
    """The chain of boxes along ``path`` (e.g. moov/trak/mdia/mdhd); each step must be unique."""
    start, end, chain = 0, len(data), []
    for name in path:
        hits = [box for box in iter_boxes(data, start, end) if box[0] == name]
        if len(hits) != 1:
            raise Mp4Error(f"{'/'.join(path)}: expected one {name!r} box, found {len(hits)}")
        chain.append(hits[0])
        _, offset, header, size = hits[0]
        start, end = offset + header, offset + size
    return chain


def _stbl_children(data: bytes | bytearray) -> dict[str, Box]:
    _, offset, header, size = find_box(data, _STBL)[-1]
    return {box[0]: box for box in iter_boxes(data, offset + header, offset + size)}


def _full_box_field(data: bytes | bytearray, box: Box, v0: int, v1: int) -> tuple[int, int]:
    """(byte offset, width) of a field at ``v0`` (version 0) or ``v1`` (version 1) bytes after the header."""
    _, offset, header, _ = box
    version = data[offset + header]
    return (offset + header + v0, 4) if version == 0 else (offset + header + v1, 8)


def _get(data: bytes | bytearray, where: tuple[int, int]) -> int:
    offset, width = where
    return struct.unpack_from(">I" if width == 4 else ">Q", data, offset)[0]


def _put(data: bytearray, where: tuple[int, int], value: int) -> None:
    offset, width = where
    struct.pack_into(">I" if width == 4 else ">Q", data, offset, value)


def media_timescale(data: bytes | bytearray) -> int:
    """Ticks per second of the (single) track's timestamps (``mdhd``)."""
    return _get(data, _full_box_field(data, find_box(data, ("moov", "trak", "mdia", "mdhd"))[-1], 12, 20))


def sample_durations(data: bytes | bytearray) -> list[int]:
    """Each frame's duration in timescale ticks, from the time-to-sample table (``stts``)."""
    _, offset, header, _ = _stbl_children(data)["stts"]
    (count,) = struct.unpack_from(">I", data, offset + header + 4)
    runs = struct.unpack_from(f">{2 * count}I", data, offset + header + 8)
    return [delta for n, delta in zip(runs[0::2], runs[1::2]) for _ in range(n)]


def sync_samples(data: bytes | bytearray) -> list[int] | None:
    """0-based indices of the keyframes (``stss``); None when the table is absent (every frame is one)."""
    box = _stbl_children(data).get("stss")
    if box is None:
        return None
    _, offset, header, _ = box
    (count,) = struct.unpack_from(">I", data, offset + header + 4)
    return [k - 1 for k in struct.unpack_from(f">{count}I", data, offset + header + 8)]


def retime(data: bytes, ticks: Sequence[int]) -> bytes:
    """The mp4 with frame ``i`` shown for ``ticks[i]`` timescale ticks (a new ``stts``; durations updated)."""
    out = bytearray(data)
    if [box[0] for box in iter_boxes(out)][-1:] != ["moov"]:
        raise Mp4Error("the moov box must come last (its growth would move the frame data otherwise)")
    chain = find_box(out, _STBL)
    children = _stbl_children(out)
    if "ctts" in children:
        raise Mp4Error("frames have composition offsets (ctts, B-frames): retiming them is not supported")
    _, stsz, header, _ = children["stsz"]
    (n_samples,) = struct.unpack_from(">I", out, stsz + header + 8)
    if len(ticks) != n_samples or min(ticks, default=1) < 1:
        raise Mp4Error(f"need {n_samples} durations of at least one tick, "
                       f"got {len(ticks)} (min {min(ticks, default=0)})")
    runs: list[list[int]] = []
    for tick in ticks:
        if runs and runs[-1][1] == tick:
            runs[-1][0] += 1
        else:
            runs.append([1, int(tick)])
    body = struct.pack(">II", 0, len(runs)) + b"".join(struct.pack(">II", n, d) for n, d in runs)
    stts = struct.pack(">I4s", 8 + len(body), b"stts") + body

    media_total = int(sum(ticks))
    mdhd = find_box(out, ("moov", "trak", "mdia", "mdhd"))[-1]
    mvhd = find_box(out, ("moov", "mvhd"))[-1]
    tkhd = find_box(out, ("moov", "trak", "tkhd"))[-1]
    movie_scale = _get(out, _full_box_field(out, mvhd, 12, 20))
    movie_total = round(media_total * movie_scale / media_timescale(out))
    _put(out, _full_box_field(out, mdhd, 16, 24), media_total)
    _put(out, _full_box_field(out, mvhd, 16, 24), movie_total)
    _put(out, _full_box_field(out, tkhd, 20, 28), movie_total)
    _set_edit_duration(out, movie_total)

    _, old, _, old_size = children["stts"]
    out[old:old + old_size] = stts
    for _, offset, box_header, size in chain:  # moov, trak, mdia, minf, stbl grow with stts
        if box_header != 8:
            raise Mp4Error(f"box at byte {offset} uses a 64-bit size: not supported")
        struct.pack_into(">I", out, offset, size + len(stts) - old_size)
    return bytes(out)


def _set_edit_duration(out: bytearray, movie_total: int) -> None:
    """The single edit (``elst``) spans the new duration; a file without an edit list needs nothing."""
    try:
        elst = find_box(out, ("moov", "trak", "edts", "elst"))[-1]
    except Mp4Error:
        return
    _, offset, header, _ = elst
    version = out[offset + header]
    (count,) = struct.unpack_from(">I", out, offset + header + 4)
    if count != 1:
        raise Mp4Error(f"edit list with {count} entries: only a single edit is supported")
    _put(out, (offset + header + 8, 4 if version == 0 else 8), movie_total)


def vfr_durations(n_frames: int, rng: np.random.Generator) -> list[float]:
    """Frame durations (units of 1/fps) of a phone-like variable rate: stretches of 4-12 frames at the
    nominal rate or at a third of it (equally likely; the first at the nominal rate), each frame
    +-10 % jitter."""
    durations: list[float] = []
    slow = False
    while len(durations) < n_frames:
        length = int(rng.integers(4, 13))
        durations += [(3.0 if slow else 1.0) * float(rng.uniform(0.9, 1.1)) for _ in range(length)]
        slow = bool(rng.random() < 0.5)
    return durations[:n_frames]


def _bgr(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame


def _write_opencv(tmp: Path, frames: Sequence[np.ndarray], fps: float, target: Path) -> None:
    import cv2

    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise Mp4Error(f"{target}: OpenCV cannot open an mp4v video writer (FFmpeg backend missing?)")
    for frame in frames:
        writer.write(_bgr(frame))
    writer.release()


def _write_ffmpeg(tmp: Path, frames: Sequence[np.ndarray], fps: float, keyframe_interval: int, b_frames: int,
                  target: Path) -> None:
    program = shutil.which("ffmpeg")
    if program is None:
        raise Mp4Error(f"{target}: a keyframe interval needs the ffmpeg program (scripts/install-system-deps.sh "
                       "installs it; OpenCV's writer fixes the interval at 12)")
    height, width = frames[0].shape[:2]
    command = [program, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "bgr24", "-video_size", f"{width}x{height}",
               "-framerate", repr(float(fps)), "-i", "pipe:", "-c:v", "mpeg4", "-g", str(keyframe_interval), "-bf", str(b_frames),
               "-sc_threshold", "1000000000", "-q:v", "3", "-pix_fmt", "yuv420p", "-threads", "1",
               "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1", "-f", "mp4", str(tmp)]
    raw = b"".join(np.ascontiguousarray(_bgr(frame)).tobytes() for frame in frames)
    result = subprocess.run(command, input=raw, capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise Mp4Error(f"{target}: ffmpeg failed ({result.returncode}): {message[-1] if message else 'no message'}")


def write_mp4(path: str | Path, frames: Sequence[np.ndarray], fps: float, *, keyframe_interval: int | None = None,
              b_frames: int = 0, frame_durations: Sequence[float] | None = None) -> None:
    """Write ``frames`` (BGR, or grey stored as three equal channels) as an mp4, atomically.

    ``keyframe_interval`` None: OpenCV's writer (a keyframe every 12 frames);
    N: ffmpeg with a keyframe every N frames and up to ``b_frames`` B-frames
    (frames coded after a later one, so decoding order is not display order).
    ``frame_durations`` (one per frame, units of ``1 / fps``) makes the file
    variable-frame-rate (not with B-frames).
    """
    target = Path(path)
    if not frames:
        raise Mp4Error(f"{target}: no frames to write")
    if keyframe_interval is not None and keyframe_interval < 1:
        raise Mp4Error(f"{target}: keyframe interval must be >= 1, got {keyframe_interval}")
    if b_frames and keyframe_interval is None:
        raise Mp4Error(f"{target}: B-frames need a keyframe interval (the ffmpeg path)")
    if frame_durations is not None and len(frame_durations) != len(frames):
        raise Mp4Error(f"{target}: {len(frame_durations)} frame durations for {len(frames)} frames")
    with atomic_path(target, keep_suffix=True) as tmp:  # the temp name keeps .mp4: OpenCV picks the container by it
        if keyframe_interval is None:
            _write_opencv(tmp, frames, fps, target)
        else:
            _write_ffmpeg(tmp, frames, fps, keyframe_interval, b_frames, target)
        if frame_durations is not None:
            data = tmp.read_bytes()
            tick = media_timescale(data) / fps
            tmp.write_bytes(retime(data, [max(1, round(d * tick)) for d in frame_durations]))
