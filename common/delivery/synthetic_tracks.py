"""Detect eye-tracker tracks (``pose.point`` over a video's frames) that look synthetic.

The builder's scripts replaced short eye-tracker files by made-up tracks: one
constant point, a straight diagonal sweep, a constant x = 30, zig-zags. A
real track has fixations with sensor jitter and saccades, so it is neither
constant, nor on one straight line, nor piecewise exactly linear. All tests
allow 1 px of slack for integer rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_POINTS = 5      # fewer points cannot tell a pattern from chance
TOLERANCE_PX = 1.0  # rounding slack

# Pattern names: the keys of ``synthetic_track_by_pattern`` in ``nia stats`` output.
CONSTANT_POINT = "constant point"
CONSTANT_X = "constant x"
CONSTANT_Y = "constant y"
DIAGONAL_SWEEP = "straight diagonal sweep"
ZIGZAG = "zig-zag"
PATTERNS = (CONSTANT_POINT, CONSTANT_X, CONSTANT_Y, DIAGONAL_SWEEP, ZIGZAG)


@dataclass(frozen=True)
class SyntheticTrack:
    """A track that looks made up: which pattern (one of ``PATTERNS``) and a message with its numbers."""

    pattern: str
    message: str


def _straight_line_residual(points: np.ndarray) -> float:
    """Largest distance (px) of a point from the best straight line through all points."""
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    normal = vt[-1]
    return float(np.abs(centred @ normal).max())


def _is_monotonic(values: np.ndarray) -> bool:
    step = np.diff(values)
    return bool(np.all(step >= -TOLERANCE_PX) or np.all(step <= TOLERANCE_PX))


def _is_zigzag(points: np.ndarray) -> tuple[bool, int]:
    """Piecewise linear with turns: steps stay constant except where the direction flips,
    and segments last 3+ steps on average (sensor jitter flips direction almost every step)."""
    step = np.diff(points, axis=0)
    change = np.abs(np.diff(step, axis=0)).max(axis=1)
    flips = (np.sign(step[1:]) * np.sign(step[:-1]) < 0).any(axis=1)
    n_turns = int(flips.sum())
    straight = change <= 2 * TOLERANCE_PX
    long_segments = len(step) >= 3 * (n_turns + 1)
    return bool(n_turns >= 2 and long_segments and np.all(straight | flips)), n_turns


def classify_track(points: np.ndarray | list) -> SyntheticTrack | None:
    """The synthetic pattern this track follows, or None (also None for fewer than MIN_POINTS points).

    ``points``: (n, 2) gaze points in frame order; non-finite points are dropped.
    """
    p = np.asarray(points, dtype=float).reshape(-1, 2)
    p = p[np.isfinite(p).all(axis=1)]
    if len(p) < MIN_POINTS:
        return None
    n = len(p)
    span = p.max(axis=0) - p.min(axis=0)
    if np.all(span <= TOLERANCE_PX):
        return SyntheticTrack(CONSTANT_POINT, f"constant point ({p[0, 0]:g}, {p[0, 1]:g}) over {n} frames")
    if span[0] <= TOLERANCE_PX:
        return SyntheticTrack(CONSTANT_X, f"constant x = {p[0, 0]:g} over {n} frames")
    if span[1] <= TOLERANCE_PX:
        return SyntheticTrack(CONSTANT_Y, f"constant y = {p[0, 1]:g} over {n} frames")
    if (_straight_line_residual(p) <= TOLERANCE_PX and _is_monotonic(p[:, 0]) and _is_monotonic(p[:, 1])):
        return SyntheticTrack(DIAGONAL_SWEEP, f"straight diagonal sweep from ({p[0, 0]:g}, {p[0, 1]:g}) "
                                              f"to ({p[-1, 0]:g}, {p[-1, 1]:g}) over {n} frames")
    zigzag, turns = _is_zigzag(p)
    if zigzag:
        return SyntheticTrack(ZIGZAG, f"zig-zag: straight segments with {turns} turns over {n} frames")
    return None


def synthetic_reason(points: np.ndarray | list) -> str | None:
    """Why this track looks synthetic (``classify_track``'s message), or None."""
    track = classify_track(points)
    return track.message if track else None
