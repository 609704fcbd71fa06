"""Which 16 frames of a clip the model sees: 8 segments x 2 consecutive frames.

The reference (zengqunzhao/Former-DFER, `dataloader/dataset_DFEW.py`,
`num_segments=8, duration=2`) works on the R = F - 1 possible pair starts of
an F-frame clip (a pair starting at s is frames s and s + 1):

* test: with tick = R / 8, segment k's start is int(tick / 2 + k * tick), the
  middle of the k-th eighth of the starts. We compute the same numbers in
  integers, ((2k + 1) * R) // 16, which is what the float formula means
  without its rounding risk; for every F >= 16 the pairs do not overlap and
  stay inside the clip.
* training, where ours differs: the reference cuts the starts into 8 segments
  of floor(R / 8) starts each and draws one start per segment, so the last
  R mod 8 starts are never drawn: a 16-frame clip trains on frames 0-8 only
  (pairs 0-1, 1-2, ..., 7-8), a 24-frame clip on frames 0-16, while the test
  indices of the same clips span all of them. We draw start k uniformly from
  the same segments the test indices sit in the middle of, [k * R // 8,
  (k + 1) * R // 8), so training and test see the same temporal span, and
  every start can be drawn. For long clips the two differ by under one
  segment's worth of frames at the end.
* clips under 16 frames: the reference then lets pairs overlap (test indices
  all 0 at F <= 9). We refuse them by default (`ShortClipError`, which the
  clip dataset counts under its own reason), and with `pad=True` stretch the
  clip over the 16 slots by repeating frames in order, index i -> i * F // 16,
  the same in training and test: every frame is seen, in order, as the
  segments do for a long clip.
"""
from __future__ import annotations

import numpy as np

SEGMENTS = 8
FRAMES_PER_SEGMENT = 2


class ShortClipError(ValueError):
    """A clip with fewer frames than the model needs (and padding not asked for)."""

    def __init__(self, name: str, num_frames: int, needed: int) -> None:
        super().__init__(f"{name}: {num_frames} frames, {needed} needed; pass pad=True to repeat frames")
        self.num_frames = num_frames
        self.needed = needed


def eval_indices(num_frames: int, *, segments: int = SEGMENTS, frames_per_segment: int = FRAMES_PER_SEGMENT,
                 pad: bool = False, name: str = "clip") -> np.ndarray:
    """The published centred indices: `segments * frames_per_segment` frame numbers, int64, ascending."""
    starts = _short_clip(num_frames, segments, frames_per_segment, pad, name)
    if starts is not None:
        return starts
    k = np.arange(segments, dtype=np.int64)
    first = ((2 * k + 1) * _start_count(num_frames, frames_per_segment)) // (2 * segments)
    return _expand(first, frames_per_segment)


def train_indices(num_frames: int, rng: np.random.Generator, *, segments: int = SEGMENTS,
                  frames_per_segment: int = FRAMES_PER_SEGMENT, pad: bool = False,
                  name: str = "clip") -> np.ndarray:
    """One random start inside each segment (see the module docstring): a function of `rng` alone."""
    starts = _short_clip(num_frames, segments, frames_per_segment, pad, name)
    if starts is not None:
        return starts
    k = np.arange(segments, dtype=np.int64)
    count = _start_count(num_frames, frames_per_segment)
    first = rng.integers(k * count // segments, (k + 1) * count // segments)
    return _expand(first.astype(np.int64), frames_per_segment)


def _start_count(num_frames: int, frames_per_segment: int) -> int:
    return num_frames - frames_per_segment + 1


def _expand(first: np.ndarray, frames_per_segment: int) -> np.ndarray:
    return (first[:, None] + np.arange(frames_per_segment, dtype=np.int64)).reshape(-1)


def _short_clip(num_frames: int, segments: int, frames_per_segment: int, pad: bool, name: str) -> np.ndarray | None:
    """Indices for a clip under the needed length (stretched), None for a long enough one."""
    if segments < 1 or frames_per_segment < 1:
        raise ValueError(f"segments {segments} and frames_per_segment {frames_per_segment} must be >= 1")
    needed = segments * frames_per_segment
    if num_frames >= needed:
        return None
    if num_frames < 1 or not pad:
        if num_frames < 1:
            raise ValueError(f"{name}: {num_frames} frames, nothing to sample")
        raise ShortClipError(name, num_frames, needed)
    return np.arange(needed, dtype=np.int64) * num_frames // needed


def sample_indices(num_frames: int, *, train: bool, rng: np.random.Generator | None = None,
                   segments: int = SEGMENTS, frames_per_segment: int = FRAMES_PER_SEGMENT, pad: bool = False,
                   name: str = "clip") -> np.ndarray:
    """`train_indices` (needs `rng`) or `eval_indices`."""
    if not train:
        return eval_indices(num_frames, segments=segments, frames_per_segment=frames_per_segment, pad=pad, name=name)
    if rng is None:
        raise ValueError("sample_indices(train=True) needs an rng (numpy.random.Generator)")
    return train_indices(num_frames, rng, segments=segments, frames_per_segment=frames_per_segment, pad=pad,
                         name=name)
