"""Detect eye-tracker tracks (``pose.point`` over a video's frames) that look synthetic.

The builder's scripts replaced short eye-tracker files by made-up tracks: one
constant point, a straight diagonal sweep, a constant x = 30, zig-zags. A
real track has fixations with sensor jitter and saccades, so it is neither
constant, nor on one straight line, nor piecewise exactly linear. All tests
allow 1 px of slack for integer rounding.
"""
from __future__ import annotations

import numpy as np

MIN_POINTS = 5      # fewer points cannot tell a pattern from chance
TOLERANCE_PX = 1.0  # rounding slack


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


def synthetic_reason(points: np.ndarray | list) -> str | None:
    """Why this track looks synthetic, or None (also None for fewer than MIN_POINTS points).

    ``points``: (n, 2) gaze points in frame order.
    """
    p = np.asarray(points, dtype=float).reshape(-1, 2)
    p = p[np.isfinite(p).all(axis=1)]
    if len(p) < MIN_POINTS:
        return None
    span = p.max(axis=0) - p.min(axis=0)
    if np.all(span <= TOLERANCE_PX):
        return f"constant point ({p[0, 0]:g}, {p[0, 1]:g}) over {len(p)} frames"
    if span[0] <= TOLERANCE_PX:
        return f"constant x = {p[0, 0]:g} over {len(p)} frames"
    if span[1] <= TOLERANCE_PX:
        return f"constant y = {p[0, 1]:g} over {len(p)} frames"
    if (_straight_line_residual(p) <= TOLERANCE_PX and _is_monotonic(p[:, 0]) and _is_monotonic(p[:, 1])):
        return (f"straight diagonal sweep from ({p[0, 0]:g}, {p[0, 1]:g}) to ({p[-1, 0]:g}, {p[-1, 1]:g}) "
                f"over {len(p)} frames")
    zigzag, turns = _is_zigzag(p)
    if zigzag:
        return f"zig-zag: straight segments with {turns} turns over {len(p)} frames"
    return None
