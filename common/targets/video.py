"""Exact-frame video reading: count a video's frames and read chosen frames by walking its stream.

Frames are numbered 0, 1, 2, ... in the order the stream presents them, and
both functions get them the one way that cannot miscount: decode forward
from the first frame, ``cap.grab()`` for every frame (it demuxes and decodes,
nothing more) and ``cap.retrieve()`` (colour conversion, the costly part)
only for the frames asked for.

Why not seek: OpenCV's ``CAP_PROP_POS_FRAMES`` and a seek to
``index / fps`` both turn a frame number into a time through one frame rate.
Phones record at a variable frame rate, and on such files those seeks land
on other frames (the Former-DFER issue measured 6 of 16 right; our test file,
whose rate drops from 30 to 10 fps halfway, gets 8 of 16, tests/unit/targets/test_video.py),
while on constant-rate files every method is right. Likewise the frame
count in the container header (``CAP_PROP_FRAME_COUNT``) is a declaration,
not a count: ``count_frames`` reads the stream. A file whose stream yields
fewer frames than its header declares is damaged (truncated mp4s decode
their last, partial frame as a copy of the one before); :func:`probe`
reports both numbers so that a caller can refuse it.

Cost: reading frame ``k`` decodes frames ``0..k`` once; 16 frames of one
video cost one pass over the stream up to the last of them.

Orientation: frames are returned as stored. OpenCV (4.5 and later) turns
the frames of an mp4 tagged with a rotation (a phone held upright) by
default; a label's pixel coordinates then no longer match the frame they are
applied to (issue 19: the eye region cut from a turned frame changed a
prediction from N to F without a word). The labels are taken in the stored
frame's coordinates, so auto-rotation is switched off
(``CAP_PROP_ORIENTATION_AUTO``) and :func:`probe` reports the tag
(``rotation``, degrees) so that ``nia clips`` can count and name such files.
"""
from __future__ import annotations

import operator
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


class VideoError(ValueError):
    """A video that cannot be read as asked; the message names the file (and the frame where there is one)."""

    def __init__(self, path: str | os.PathLike, message: str, frame: int | None = None) -> None:
        self.path = str(path)
        self.frame = frame
        where = self.path if frame is None else f"{self.path}: frame {frame}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class VideoInfo:
    """What one pass over a video's stream found.

    ``n_frames``: frames the stream yields (counted); ``header_frames``: frames
    the container declares (``CAP_PROP_FRAME_COUNT``, 0 when it declares none);
    ``width``/``height``: the size of the frames :func:`read_frames` returns
    (0 when no frame decodes), as stored; ``rotation``: the container's rotation
    tag in degrees (0 when none), which is not applied.
    """

    n_frames: int
    header_frames: int
    width: int
    height: int
    rotation: int = 0


def _open(path: str | os.PathLike):
    """An opened ``cv2.VideoCapture`` on OpenCV's FFmpeg backend, or a VideoError saying why not."""
    import cv2

    file = Path(path)
    if not file.is_file():
        raise VideoError(path, "no such file" if not file.exists() else "not a file")
    if file.stat().st_size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    cap = cv2.VideoCapture(str(file), cv2.CAP_FFMPEG)
    if hasattr(cv2, "CAP_PROP_ORIENTATION_AUTO"):  # frames as stored: the labels' coordinates (module docstring)
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    if not cap.isOpened():
        cap.release()
        raise VideoError(path, "OpenCV (FFmpeg) cannot open it as a video: not a video it can decode, or damaged "
                               "(an mp4 cut short loses its index, written last)")
    return cap


def count_frames(path: str | os.PathLike) -> int:
    """The number of frames the video's stream yields, counted by grabbing each (no colour conversion)."""
    cap = _open(path)
    try:
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def probe(path: str | os.PathLike) -> VideoInfo:
    """One pass over the stream: the frame count, the header's declared count and the frame size."""
    import cv2

    cap = _open(path)
    try:
        header = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
        meta = getattr(cv2, "CAP_PROP_ORIENTATION_META", None)
        rotation = int(cap.get(meta) or 0) % 360 if meta is not None else 0
        width = height = 0
        if cap.grab():
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                raise VideoError(path, "could not be decoded", frame=0)
            height, width = frame.shape[:2]
            n = 1
            while cap.grab():
                n += 1
        else:
            n = 0
        return VideoInfo(n_frames=n, header_frames=header, width=int(width), height=int(height), rotation=rotation)
    finally:
        cap.release()


def _check_region(region: Sequence[int] | None) -> tuple[int, int, int, int] | None:
    if region is None:
        return None
    try:
        x0, y0, x1, y1 = (operator.index(v) for v in region)
    except (TypeError, ValueError):
        raise ValueError(f"region must be four integers (x0, y0, x1, y1), got {region!r}") from None
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"region (x0, y0, x1, y1) must have x0 < x1 and y0 < y1, got {region!r}")
    return x0, y0, x1, y1


def _check_size(size: Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        width, height = (operator.index(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be two integers (width, height), got {size!r}") from None
    if width < 1 or height < 1:
        raise ValueError(f"size (width, height) must be at least 1x1, got {size!r}")
    return width, height


def _shape(frame: np.ndarray, region: tuple[int, int, int, int] | None, size: tuple[int, int] | None) -> np.ndarray:
    """BGR frame -> RGB, cut to ``region`` (zeros where it leaves the frame) and resized to ``size`` (INTER_AREA)."""
    import cv2

    from common.targets.crop_geometry import CropBox, cut_and_resize

    if region is not None or size is not None:
        x0, y0, x1, y1 = region if region is not None else (0, 0, frame.shape[1], frame.shape[0])
        out_w, out_h = size if size is not None else (x1 - x0, y1 - y0)
        if (x0, y0, x1, y1) != (0, 0, frame.shape[1], frame.shape[0]) or (out_w, out_h) != (x1 - x0, y1 - y0):
            frame = cut_and_resize(frame, CropBox(x0, y0, x1 - x0, y1 - y0, out_w, out_h))
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def read_frames(path: str | os.PathLike, indices: Sequence[int], *,
                region: Sequence[int] | None = None, size: Sequence[int] | None = None) -> np.ndarray:
    """Frames ``indices`` of the video as ``(len(indices), H, W, 3)`` uint8 RGB, in the order given.

    Indices may repeat and need not be sorted; each wanted frame is decoded
    and converted once. ``region=(x0, y0, x1, y1)`` (pixels, x1/y1 exclusive)
    cuts each returned frame, with zeros where the region leaves the frame;
    ``size=(width, height)`` then resizes it (``cv2.INTER_AREA``), so no full
    frame is kept. An index past the end of the stream, a negative index or a
    frame that does not decode raises :class:`VideoError` naming file and frame.
    """
    wanted_list = []
    for value in indices:
        k = operator.index(value)
        if k < 0:
            raise VideoError(path, "negative frame index", frame=k)
        wanted_list.append(k)
    box, out_size = _check_region(region), _check_size(size)
    wanted = set(wanted_list)
    cap = _open(path)
    try:
        if not wanted:
            return _empty(cap, box, out_size)
        frames: dict[int, np.ndarray] = {}
        last = max(wanted)
        for i in range(last + 1):
            if not cap.grab():
                missing = min(k for k in wanted if k >= i)
                raise VideoError(path, f"past the end of the stream, which has {i} frames", frame=missing)
            if i in wanted:
                ok, frame = cap.retrieve()
                if not ok or frame is None:
                    raise VideoError(path, "could not be decoded", frame=i)
                frames[i] = _shape(frame, box, out_size)
    finally:
        cap.release()
    return np.stack([frames[k] for k in wanted_list])


def _empty(cap, box: tuple[int, int, int, int] | None, size: tuple[int, int] | None) -> np.ndarray:
    """A (0, H, W, 3) array with the height and width the frames would have had."""
    import cv2

    if size is not None:
        width, height = size
    elif box is not None:
        width, height = box[2] - box[0], box[3] - box[1]
    else:
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    return np.zeros((0, height, width, 3), dtype=np.uint8)
