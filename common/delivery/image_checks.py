"""`nia index`: each image checked against its delivery and its labels, from the PNG header's size.

Two checks, vectorised over the manifest's columns (no image is decoded):

* **Image size.** The delivery's size for a display and image type (the
  name's ``device`` and ``image_type``, else the JSON's ``inst`` and
  ``image``) is the size that a strict majority (more than half) of that
  group's readable PNGs have. A PNG of another size is invalid: a 160x90 or
  1280x720 frame among 640x360 ones (a thumbnail, a re-encode, a frame of
  another camera) would be cropped where its labels are not. A group without
  a strict majority has no delivery size and marks nothing (``nia stats``
  lists the sizes of every group): with no majority, the data cannot say
  which size is right. All PNGs count, whatever their labels: the size is
  the images' property.
* **Labels inside the image.** Every eyelid vertex, centre point and iris
  centre must lie in ``[-TOLERANCE_PX, width + TOLERANCE_PX]`` x
  ``[-TOLERANCE_PX, height + TOLERANCE_PX]``: 2 px covers both pixel
  conventions (centres at integers or at half-integers) and a click on the
  border, and nothing more; labels made for another resolution miss by far
  more. The iris ellipse's extent is not checked: it is the whole iris and
  may legitimately reach past the visible eye.

Errors read ``{file}: {check}: {what}``; ``CHECKS`` lists the check names.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TOLERANCE_PX = 2.0
SIZE_CHECK = "image size"
BOUNDS_CHECK = "labels outside image"
CHECKS = ("PNG file", SIZE_CHECK, BOUNDS_CHECK)  # "PNG file": common.delivery.png_header
_SLICE = 1 << 14  # rows per step of the bounds check: its temporary arrays stay under 20 MB
# (shape name, column(s)): polygons are flattened [x0, y0, x1, y1, ...]; points are (x, y) column pairs
POLYGONS = (("r_eyelid", "r_eyelid"), ("l_eyelid", "l_eyelid"))
POINTS = (("r_iris centre", "r_iris_cx", "r_iris_cy"), ("l_iris centre", "l_iris_cx", "l_iris_cy"),
          ("r_center point", "r_center_x", "r_center_y"), ("l_center point", "l_center_x", "l_center_y"))


def _numpy(array: pa.Array | pa.ChunkedArray, fill) -> np.ndarray:
    return pc.fill_null(array, fill).to_numpy(zero_copy_only=False)


def _group_key(name_group: tuple[pa.ChunkedArray, pa.ChunkedArray],
               json_group: tuple[pa.ChunkedArray, pa.ChunkedArray]) -> pa.Array:
    """``device/image_type`` from the name, else from the JSON, else ``?``."""
    parts = [pc.fill_null(pc.coalesce(n, j), "?") for n, j in zip(name_group, json_group)]
    return pc.binary_join_element_wise(*parts, "/")


def size_errors(png_path: pa.ChunkedArray, width: pa.ChunkedArray, height: pa.ChunkedArray,
                name_group: tuple[pa.ChunkedArray, pa.ChunkedArray],
                json_group: tuple[pa.ChunkedArray, pa.ChunkedArray]) -> dict[int, str]:
    """{row: error} for every readable PNG whose size is not its group's strict-majority size."""
    has = pc.is_valid(width).to_numpy(zero_copy_only=False)
    if not has.any():
        return {}
    key = pc.dictionary_encode(_group_key(name_group, json_group)).combine_chunks()
    group = key.indices.to_numpy(zero_copy_only=False)[has]
    w, h = _numpy(width, 0)[has], _numpy(height, 0)[has]
    sizes, size = np.unique(w * (1 << 32) + h, return_inverse=True)
    n_groups, n_sizes = len(key.dictionary), len(sizes)
    counts = np.bincount(group * n_sizes + size, minlength=n_groups * n_sizes).reshape(n_groups, n_sizes)
    best, totals = counts.argmax(axis=1), counts.sum(axis=1)
    strict = 2 * counts.max(axis=1) > totals
    wrong = np.flatnonzero(strict[group] & (size != best[group]))
    if not len(wrong):
        return {}
    rows = np.flatnonzero(has)[wrong]
    paths = pc.take(png_path, pa.array(rows, type=pa.int64())).to_pylist()
    names = key.dictionary.to_pylist()
    errors = {}
    for row, path, i in zip(rows.tolist(), paths, wrong.tolist()):
        g = group[i]
        common_size = int(sizes[best[g]])
        errors[row] = (f"{path}: {SIZE_CHECK}: {w[i]}x{h[i]}, but {counts[g, best[g]]} of the {totals[g]} "
                       f"{names[g]} images are {common_size >> 32}x{common_size & 0xFFFFFFFF}")
    return errors


def _outside(x: np.ndarray, y: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    t = TOLERANCE_PX
    return (x < -t) | (y < -t) | (x > w + t) | (y > h + t)  # NaN width (no header): False


def _first_outside(labels: pa.Table, width: np.ndarray, height: np.ndarray,
                   start: int) -> dict[int, tuple[str, float, float]]:
    """{row: (shape, x, y)} of the first point outside its image, for the rows of the slice ``labels``
    (which starts at row ``start``) that have one; shapes in POLYGONS then POINTS order."""
    found: dict[int, tuple[str, float, float]] = {}
    n = labels.num_rows
    for name, column in POLYGONS:
        polygons = labels.column(column).combine_chunks()
        flat = _numpy(pc.list_flatten(polygons), np.nan)
        x, y = flat[0::2], flat[1::2]
        parent = pc.list_parent_indices(polygons).to_numpy(zero_copy_only=False)[0::2]
        hit = np.flatnonzero(_outside(x, y, width[start + parent], height[start + parent]))
        rows, first = np.unique(parent[hit], return_index=True)  # parents ascend: the first hit of each row
        for row, i in zip(rows.tolist(), hit[first].tolist()):
            found.setdefault(start + row, (f"{name} point", x[i], y[i]))
    for name, cx, cy in POINTS:
        x, y = _numpy(labels.column(cx), np.nan), _numpy(labels.column(cy), np.nan)
        for row in np.flatnonzero(_outside(x, y, width[start:start + n], height[start:start + n])).tolist():
            found.setdefault(start + row, (name, x[row], y[row]))
    return found


def bounds_errors(json_path: pa.ChunkedArray, labels: pa.Table, width: pa.ChunkedArray,
                  height: pa.ChunkedArray) -> dict[int, str]:
    """{row: error} for every row whose label shapes reach outside its PNG (``labels``: the label columns)."""
    w = _numpy(pc.cast(width, pa.float64()), np.nan)
    h = _numpy(pc.cast(height, pa.float64()), np.nan)
    found: dict[int, tuple[str, float, float]] = {}
    for start in range(0, labels.num_rows, _SLICE):
        found.update(_first_outside(labels.slice(start, _SLICE), w, h, start))
    rows = sorted(found)
    names = pc.take(json_path, pa.array(rows, type=pa.int64())).to_pylist() if rows else []
    return {row: (f"{name}: {BOUNDS_CHECK}: {found[row][0]} ({found[row][1]:.1f}, {found[row][2]:.1f}) lies "
                  f"outside the {int(w[row])}x{int(h[row])} PNG (tolerance {TOLERANCE_PX:g} px)")
            for row, name in zip(rows, names)}


def image_errors(png: pa.Table, json_path: pa.ChunkedArray, labels: pa.Table,
                 name_group: tuple[pa.ChunkedArray, pa.ChunkedArray],
                 json_group: tuple[pa.ChunkedArray, pa.ChunkedArray]) -> pa.Array:
    """Per row: the PNG's own error, else its size error, else its bounds error, else ''.

    ``png`` holds ``path, width, height, png_error`` aligned with the rows.
    """
    error = pc.fill_null(png.column("png_error"), "").combine_chunks()
    width, height = png.column("width"), png.column("height")
    found = bounds_errors(json_path, labels, width, height)
    found.update(size_errors(png.column("path"), width, height, name_group, json_group))  # size first
    rows = np.array(sorted(found), dtype=np.int64)
    if not len(rows):
        return error
    rows = rows[pc.equal(error.take(rows), "").to_numpy(zero_copy_only=False)]  # the PNG's own error first
    mask = np.zeros(len(error), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(error, pa.array(mask), pa.array([found[r] for r in rows.tolist()], pa.string()))
