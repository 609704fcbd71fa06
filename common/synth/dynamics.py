"""Per-state time series of one clip: where the eyes look, how open they are, how the head moves.

Observer states (docs/synthetic.md) differ in these signals only:

- F focused: on-screen fixations of 6-15 frames, normal blinks (2-4 frames).
- S sleepy: drooping lids (openness 0.35-0.6), slow long blinks (7-14 frames), head nods.
- D lack of focus: short on-screen fixations and frequent 2-5 frame glances off the screen.
- A falling focus: the chance of looking away and the lid droop grow over the clip.
- N negligent: long stretches looking off the screen, or the eyes closed for long stretches.

Gaze targets are in the published 1920x1080 point space; off-screen targets
lie 80-600 mm beyond an edge of the screen and are kept unclipped (so the
label's ``pose.point`` may be negative or above 1920/1080).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLINK_RATE = 0.025  # blinks started per frame in normal blinking (about 45/min at 30 fps; clips are short)


@dataclass(frozen=True)
class Track:
    """Signals of one clip, one row per frame."""

    point_px: np.ndarray     # (n, 2) gaze target in the 1920x1080 point space (unclipped)
    on_screen: np.ndarray    # (n,) bool
    openness: np.ndarray     # (n,) 0 = closed .. 1 = wide open
    head_deg: np.ndarray     # (n, 3) head rotation relative to the clip's base pose: pitch, yaw, roll
    shift_mm: np.ndarray     # (n, 3) head translation relative to the base position (screen frame)


class _Screen:
    """Converts between screen millimetres and the point space."""

    def __init__(self, screen_mm: tuple[float, float], point_space: tuple[int, int]) -> None:
        self.size_px = np.array(point_space, dtype=np.float64)
        self.px_per_mm = self.size_px / np.array(screen_mm, dtype=np.float64)

    def on_point(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(0.08, 0.92, 2) * self.size_px

    def off_point(self, rng: np.random.Generator) -> np.ndarray:
        """A point 80-600 mm beyond a random edge (below more often: the lap, a desk)."""
        side = rng.choice(4, p=[0.25, 0.25, 0.35, 0.15])  # left, right, below, above
        beyond = rng.uniform(80.0, 600.0)
        point = rng.uniform(0.0, 1.0, 2) * self.size_px
        axis, sign = (0, -1) if side == 0 else (0, 1) if side == 1 else (1, 1) if side == 2 else (1, -1)
        edge = 0.0 if sign < 0 else self.size_px[axis]
        point[axis] = edge + sign * beyond * self.px_per_mm[axis]
        return point


def _segments(rng: np.random.Generator, n: int, length: tuple[int, int]) -> list[tuple[int, int]]:
    """Consecutive (start, stop) runs covering 0..n with lengths drawn in ``length``."""
    runs, start = [], 0
    while start < n:
        stop = min(n, start + int(rng.integers(length[0], length[1] + 1)))
        runs.append((start, stop))
        start = stop
    return runs


def _gaze(rng: np.random.Generator, screen: _Screen, n: int, fixation: tuple[int, int],
          p_off: np.ndarray, glance: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Fixations on the screen, each replaced by an off-screen glance with probability ``p_off[start]``."""
    points = np.zeros((n, 2))
    on = np.ones(n, dtype=bool)
    start = 0
    while start < n:
        if rng.random() < p_off[start]:
            stop = min(n, start + int(rng.integers(glance[0], glance[1] + 1)))
            points[start:stop] = screen.off_point(rng)
            on[start:stop] = False
        else:
            stop = min(n, start + int(rng.integers(fixation[0], fixation[1] + 1)))
            points[start:stop] = screen.on_point(rng)
        start = stop
    jitter = rng.normal(0.0, 4.0, (n, 2)) * screen.px_per_mm  # fixational drift, about 4 mm on the screen
    return points + jitter, on


def _blinks(rng: np.random.Generator, n: int, rate: np.ndarray, duration: tuple[int, int]) -> np.ndarray:
    """Multiplicative lid factor (n,): 1 except during blinks, 0 at the closed frame(s)."""
    factor = np.ones(n)
    t = 0
    while t < n:
        if rng.random() < rate[t]:
            d = int(rng.integers(duration[0], duration[1] + 1))
            k = np.arange(d)
            shape = 1.0 - np.sin(np.pi * (k + 0.5) / d) ** 2
            shape[d // 2] = 0.0
            stop = min(n, t + d)
            factor[t:stop] = np.minimum(factor[t:stop], shape[: stop - t])
            t += d + 2
        else:
            t += 1
    return factor


def _head(rng: np.random.Generator, n: int, sd_deg: float) -> np.ndarray:
    """Smooth random head drift (n, 3): a random walk, low-pass filtered."""
    walk = np.cumsum(rng.normal(0.0, sd_deg, (n, 3)), axis=0)
    kernel = np.ones(5) / 5.0
    smooth = np.stack([np.convolve(np.pad(walk[:, i], 2, mode="edge"), kernel, mode="valid") for i in range(3)], axis=1)
    return smooth * np.array([1.0, 1.0, 0.4])


def make_track(state: str, n: int, rng: np.random.Generator, screen_mm: tuple[float, float],
               point_space: tuple[int, int] = (1920, 1080)) -> Track:
    """The signals of an ``n``-frame clip in observer state ``state`` (F, S, D, A or N)."""
    screen = _Screen(screen_mm, point_space)
    ramp = np.linspace(0.0, 1.0, n)
    head = _head(rng, n, 0.4)
    if state == "F":
        point, on = _gaze(rng, screen, n, (6, 15), np.full(n, 0.03), (2, 3))
        openness = rng.uniform(0.85, 1.0) * _blinks(rng, n, np.full(n, BLINK_RATE), (2, 4))
    elif state == "S":
        point, on = _gaze(rng, screen, n, (12, 30), np.full(n, 0.05), (3, 6))
        base = rng.uniform(0.35, 0.6) - 0.1 * np.sin(np.pi * ramp * rng.uniform(0.5, 2.0)) ** 2
        openness = base * _blinks(rng, n, np.full(n, 0.06), (7, 14))
        head[:, 0] -= 6.0 * np.sin(np.pi * ramp * rng.uniform(0.5, 1.5)) ** 2  # nodding down
    elif state == "D":
        point, on = _gaze(rng, screen, n, (3, 8), np.full(n, 0.45), (2, 5))
        openness = rng.uniform(0.8, 1.0) * _blinks(rng, n, np.full(n, BLINK_RATE), (2, 4))
    elif state == "A":
        point, on = _gaze(rng, screen, n, (5, 12), 0.05 + 0.7 * ramp, (3, 8))
        openness = (1.0 - rng.uniform(0.25, 0.45) * ramp) * _blinks(rng, n, BLINK_RATE * (1 + 3 * ramp), (2, 6))
    elif state == "N":
        if rng.random() < 0.5:  # looking away for long stretches
            point, on = _gaze(rng, screen, n, (3, 6), np.full(n, 0.85), (max(4, n // 3), max(5, n)))
            openness = rng.uniform(0.7, 1.0) * _blinks(rng, n, np.full(n, BLINK_RATE), (2, 4))
        else:  # eyes closed for long stretches
            point, on = _gaze(rng, screen, n, (6, 15), np.full(n, 0.2), (3, 8))
            openness = np.full(n, rng.uniform(0.6, 0.9))
            length = int(n * rng.uniform(0.4, 0.7))
            start = int(rng.integers(0, n - length + 1))
            openness[start:start + length] = 0.0
    else:
        raise ValueError(f"observer state must be one of F, S, D, A, N, got {state!r}")
    shift = np.cumsum(rng.normal(0.0, 0.6, (n, 3)), axis=0)
    return Track(point_px=point, on_screen=on, openness=np.clip(openness, 0.0, 1.0), head_deg=head, shift_mm=shift)
