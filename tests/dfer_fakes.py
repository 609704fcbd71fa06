"""Tiny clip datasets for the Former-DFER tests: real mp4s whose frames say which frame they are.

Every frame carries its number in 8 black/white blocks along the top (as in
tests/unit/targets/test_video.py, 16 px each, readable after resizing) on a background
whose colour is the clip's state, so a tiny network learns the states in a
few epochs. The index parquet is written as `nia clips` writes it (same
columns and `nia.root`), without a manifest.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.synth.mp4 import write_mp4
from common.targets.clip_index import CLIP_INDEX_NAME, INDEX_COLUMNS, write_index

STATES = ("F", "S", "D", "A", "N")
# BGR background per state: far apart, so colour alone separates them
STATE_COLOURS = {"F": (40, 40, 200), "S": (40, 200, 40), "D": (200, 40, 40), "A": (40, 200, 200), "N": (200, 40, 200)}
WIDTH, HEIGHT = 160, 96


@dataclass(frozen=True)
class FakeClip:
    clip_id: str
    split: str
    state: str
    subject: str
    n_frames: int = 16
    reason: str = ""          # a `nia clips` reason: the clip is then unusable (no mp4 is needed)


def clip_name(subject: int, scenario: int, state: str) -> str:
    return f"NIA22EYE_S1_{subject:03d}_T1_S{scenario:02d}_S_rgb_{state}_D_T"


def coded_frame(index: int, state: str, size: tuple[int, int] = (WIDTH, HEIGHT)) -> np.ndarray:
    """A BGR frame: the number in blocks over the top 32 rows of the left 128 px, the state's colour below
    (with a gradient and a moving bar at other sizes than the default, so that a codec has work to do)."""
    frame = np.zeros((size[1], size[0], 3), np.uint8)
    frame[:] = STATE_COLOURS[state]
    if size != (WIDTH, HEIGHT):
        frame[..., 1] = (np.arange(size[0]) * 255 // size[0]).astype(np.uint8)
        x = (index * 7) % max(1, size[0] - 24)
        frame[40:, x:x + 24] = 255
    for bit in range(8):
        value = 255 if (index >> bit) & 1 else 0
        frame[0:16, 16 * bit:16 * bit + 16] = value
        frame[16:32, 16 * bit:16 * bit + 16] = 255 - value
    return frame


def plain_frame(state: str, size: tuple[int, int] = (WIDTH, HEIGHT)) -> np.ndarray:
    """A BGR frame of the state's colour only."""
    frame = np.empty((size[1], size[0], 3), np.uint8)
    frame[:] = STATE_COLOURS[state]
    return frame


def frame_numbers(clip: np.ndarray, width: int = WIDTH) -> list[int]:
    """The numbers the frames of an RGB clip (T, 3, H, W) or (T, H, W, 3) carry, read at the block centres."""
    if clip.shape[1] == 3:
        clip = clip.transpose(0, 2, 3, 1)
    height_scale, width_scale = clip.shape[1] / HEIGHT, clip.shape[2] / width
    numbers = []
    for frame in clip.astype(np.float64):
        bits = []
        for bit in range(8):
            x = int((16 * bit + 8) * width_scale)
            top, bottom = frame[int(8 * height_scale), x].mean(), frame[int(24 * height_scale), x].mean()
            assert (top > 128) != (bottom > 128), f"frame code unreadable at bit {bit}: {top:.0f}/{bottom:.0f}"
            bits.append(top > 128)
        numbers.append(sum(1 << k for k, on in enumerate(bits) if on))
    return numbers


def balanced_clips(per_split: dict[str, int], subjects_per_split: int = 2, n_frames: int = 16,
                   first_subject: int = 1) -> list[FakeClip]:
    """`per_split[split]` clips per split, states in turn, subjects disjoint between splits (and numbered from
    `first_subject`: sets made with other numbers share no clip name)."""
    clips, subject = [], first_subject
    for split, count in per_split.items():
        for k in range(count):
            state = STATES[k % len(STATES)]
            number = subject + k % subjects_per_split
            clips.append(FakeClip(clip_name(number, k + 1, state), split, state, f"{number:03d}", n_frames))
        subject += subjects_per_split
    return clips


def write_clip_set(base: Path, clips: list[FakeClip], *, region: tuple[int, int, int, int] | None = None,
                   size: tuple[int, int] = (WIDTH, HEIGHT), coded: bool = True) -> Path:
    """mp4s of `size` (W, H) under base/videos and the clip index under base/clips; returns base/clips.

    `region` (default: the whole frame) is every clip's `x0, y0, x1, y1`. `coded=False` leaves the frame
    numbers out: every frame is the state's colour alone (a task a tiny network learns in a few epochs).
    """
    videos, out = base / "videos", base / "clips"
    videos.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    x0, y0, x1, y1 = region or (0, 0, *size)
    rows = []
    for clip in clips:
        rel = f"{clip.clip_id}.mp4"
        stat = (1, 1)  # no mp4 for an unusable clip
        if not clip.reason:
            frames = [coded_frame(i, clip.state, size) if coded else plain_frame(clip.state, size)
                      for i in range(clip.n_frames)]
            write_mp4(videos / rel, frames, 30.0)
            stat = ((videos / rel).stat().st_size, (videos / rel).stat().st_mtime_ns)  # as nia clips records them
        rows.append({"clip_id": clip.clip_id, "video_path": rel, "split": clip.split, "state": clip.state,
                     "label_source": "json", "label_mismatch": "", "n_frames": clip.n_frames,
                     "header_frames": clip.n_frames, "width": size[0], "height": size[1], "x0": x0, "y0": y0,
                     "x1": x1, "y1": y1, "region_source": "fixed", "label_frames": 0, "subject": clip.subject,
                     "inst": "S", "image": "rgb", "posture": "D", "usable": not clip.reason, "reason": clip.reason,
                     "error": "", "video_size": stat[0], "video_mtime_ns": stat[1]})
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    for column in ("n_frames", "header_frames", "width", "height", "x0", "y0", "x1", "y1", "label_frames",
                   "video_size", "video_mtime_ns"):
        index[column] = index[column].astype("Int64")
    write_index(index, out / CLIP_INDEX_NAME, {"nia.root": str(videos.resolve()), "nia.manifest_sha256": "",
                                               "nia.clip_options": "{}", "nia.clips_summary": "{}"})
    return out
