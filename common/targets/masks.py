"""Class maps (0 background, 1 eye region, 2 iris) from eyelid polygons and iris ellipses.

Rule (docs/targets.md): pixel (column j, row i) belongs to a shape when its
centre, the point x = j, y = i in the shape's pixel coordinates (OpenCV's
convention: integer coordinates are pixel centres), is inside it. Polygons use
the even-odd rule with sub-pixel vertices; an ellipse contains the points with
((u / rx)^2 + (v / ry)^2 <= 1) in its own axes. The labelled iris ellipse is
the whole iris and reaches under the lids, so class 2 = ellipse ∩ eyelid
polygon of the same eye; class 1 = eyelid polygon minus class 2.

Ellipse ``rotate`` is in degrees and turns the ``rx`` axis from the image +x
axis towards +y (clockwise on screen, as in ``cv2.ellipse``): the axis of
``rx`` points along (cos rotate, sin rotate). The published example has
rotate = 0 and bounding-box ``points`` equal to (cx -/+ rx, cy -/+ ry), so it
cannot fix the sign; this choice is an assumption (docs/targets.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

BACKGROUND, EYE_REGION, IRIS = 0, 1, 2
CLASS_NAMES = ("background", "eye region", "iris")  # index = class value in every class map


@dataclass(frozen=True)
class Ellipse:
    """A rotated ellipse in pixel coordinates; ``rotate_deg`` as in the module docstring."""

    cx: float
    cy: float
    rx: float
    ry: float
    rotate_deg: float = 0.0

    def axes(self) -> np.ndarray:
        """2x2 matrix whose columns are the semi-axis vectors (rx axis, ry axis)."""
        t = math.radians(self.rotate_deg)
        c, s = math.cos(t), math.sin(t)
        return np.array([[c * self.rx, -s * self.ry], [s * self.rx, c * self.ry]])

    def scaled(self, x0: float, y0: float, scale_x: float, scale_y: float) -> "Ellipse":
        """The same ellipse after x' = (x - x0) * scale_x, y' = (y - y0) * scale_y.

        An axis-aligned scaling keeps an ellipse an ellipse, with new axes: the
        singular vectors of diag(scale) @ axes(). The axis nearest the image of
        the old ``rx`` axis stays ``rx``, so equal scales keep ``rotate_deg``.
        """
        m = np.diag([scale_x, scale_y]) @ self.axes()
        u, sigma, _ = np.linalg.svd(m)
        old_rx_axis = m[:, 0]
        if abs(u[:, 0] @ old_rx_axis) < abs(u[:, 1] @ old_rx_axis):
            u, sigma = u[:, ::-1], sigma[::-1]
        if u[:, 0] @ old_rx_axis < 0:
            u = u * np.array([-1.0, 1.0])
        return Ellipse(
            cx=(self.cx - x0) * scale_x,
            cy=(self.cy - y0) * scale_y,
            rx=float(sigma[0]),
            ry=float(sigma[1]),
            rotate_deg=math.degrees(math.atan2(u[1, 0], u[0, 0])),
        )

    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the rotated ellipse."""
        half = np.linalg.norm(self.axes(), axis=1)
        return self.cx - half[0], self.cy - half[1], self.cx + half[0], self.cy + half[1]


@dataclass(frozen=True)
class EyeShapes:
    """One eye's eyelid polygon ((n, 2) array, or None) and iris ellipse (or None)."""

    eyelid: np.ndarray | None
    iris: Ellipse | None

    @classmethod
    def from_row(cls, row: Any, side: str) -> "EyeShapes":
        """Shapes of eye ``side`` ('r' or 'l') from a manifest row (mapping or namedtuple-like)."""
        get = row.get if hasattr(row, "get") else lambda key: getattr(row, key, None)
        flat = get(f"{side}_eyelid")
        eyelid = None
        if flat is not None and len(flat) >= 6:
            eyelid = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
        values = [get(f"{side}_iris_{k}") for k in ("cx", "cy", "rx", "ry")]
        iris = None
        if all(v is not None and np.isfinite(v) for v in values):
            rotate = get(f"{side}_iris_rotate")
            rotate = float(rotate) if rotate is not None and np.isfinite(rotate) else 0.0
            iris = Ellipse(*(float(v) for v in values), rotate_deg=rotate)
        return cls(eyelid=eyelid, iris=iris)

    def transformed(self, x0: float, y0: float, scale_x: float, scale_y: float) -> "EyeShapes":
        """Both shapes after x' = (x - x0) * scale_x, y' = (y - y0) * scale_y."""
        eyelid = None
        if self.eyelid is not None:
            eyelid = (self.eyelid - np.array([x0, y0])) * np.array([scale_x, scale_y])
        iris = self.iris.scaled(x0, y0, scale_x, scale_y) if self.iris is not None else None
        return EyeShapes(eyelid=eyelid, iris=iris)


def _window(xmin: float, ymin: float, xmax: float, ymax: float, width: int, height: int) -> tuple[slice, slice] | None:
    """Rows and columns whose centres can fall inside the bounds, clipped to the canvas."""
    j0, j1 = max(0, math.ceil(xmin)), min(width - 1, math.floor(xmax))
    i0, i1 = max(0, math.ceil(ymin)), min(height - 1, math.floor(ymax))
    if j0 > j1 or i0 > i1:
        return None
    return slice(i0, i1 + 1), slice(j0, j1 + 1)


def polygon_mask(vertices: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boolean (height, width) mask of pixel centres inside the polygon (even-odd rule).

    Scanline crossing test: an edge crosses row y when exactly one end has
    y_end <= y (half-open, so a vertex on the row counts once); a centre is
    inside when an odd number of crossings lie strictly to its right.
    """
    mask = np.zeros((height, width), dtype=bool)
    v = np.asarray(vertices, dtype=np.float64)
    if len(v) < 3:
        return mask
    window = _window(*v.min(axis=0), *v.max(axis=0), width, height)
    if window is None:
        return mask
    rows, cols = window
    ys = np.arange(rows.start, rows.stop, dtype=np.float64)[:, None]
    xs = np.arange(cols.start, cols.stop, dtype=np.float64)
    a, b = v, np.roll(v, -1, axis=0)
    crosses = (a[:, 1] <= ys) != (b[:, 1] <= ys)  # (rows, edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = a[:, 0] + (ys - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    xc = np.where(crosses, xc, -np.inf)
    count = (xc[:, :, None] > xs[None, None, :]).sum(axis=1)
    mask[rows, cols] = (count % 2) == 1
    return mask


def ellipse_mask(ellipse: Ellipse, width: int, height: int) -> np.ndarray:
    """Boolean (height, width) mask of pixel centres inside the rotated ellipse."""
    mask = np.zeros((height, width), dtype=bool)
    if not (ellipse.rx > 0 and ellipse.ry > 0):
        return mask
    window = _window(*ellipse.bounds(), width, height)
    if window is None:
        return mask
    rows, cols = window
    dy = np.arange(rows.start, rows.stop, dtype=np.float64)[:, None] - ellipse.cy
    dx = np.arange(cols.start, cols.stop, dtype=np.float64)[None, :] - ellipse.cx
    t = math.radians(ellipse.rotate_deg)
    u = dx * math.cos(t) + dy * math.sin(t)
    w = -dx * math.sin(t) + dy * math.cos(t)
    mask[rows, cols] = (u / ellipse.rx) ** 2 + (w / ellipse.ry) ** 2 <= 1.0
    return mask


def class_map(eyes: Sequence[EyeShapes], width: int, height: int) -> np.ndarray:
    """uint8 (height, width) class map of all eyes, shapes already in the map's pixel coordinates.

    An eye without an eyelid polygon contributes nothing: its iris cannot be
    clipped, and the eye region is defined by the lid.
    """
    out = np.zeros((height, width), dtype=np.uint8)
    for eye in eyes:
        if eye.eyelid is None:
            continue
        lid = polygon_mask(eye.eyelid, width, height)
        out[lid & (out == BACKGROUND)] = EYE_REGION
        if eye.iris is not None:
            out[lid & ellipse_mask(eye.iris, width, height)] = IRIS
    return out
