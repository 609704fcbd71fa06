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
CHECKS = ("PNG file", SIZE_CHECK, BOUNDS_CHECK)  # "PNG file": common.png_header
_SLICE = 1 << 16  # rows per step of the bounds check (bounds the temporary arrays)
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
    rows = np.flatnonzero(has)
    names = key.dictionary.to_pylist()
    errors = {}
    for i in wrong:
        g = group[i]
        common_size = sizes[best[g]]
        errors[int(rows[i])] = (f"{png_path[int(rows[i])].as_py()}: {SIZE_CHECK}: {w[i]}x{h[i]}, but "
                                f"{counts[g, best[g]]} of the {totals[g]} {names[g]} images are "
                                f"{common_size >> 32}x{common_size & 0xFFFFFFFF}")
    return errors


def _outside(x: np.ndarray, y: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    t = TOLERANCE_PX
    return (x < -t) | (y < -t) | (x > w + t) | (y > h + t)  # NaN width (no header): False


def _rows_outside(labels: pa.Table, width: np.ndarray, height: np.ndarray, start: int) -> set[int]:
    """Rows (of the slice starting at ``start``) with any checked point outside their image."""
    bad: set[int] = set()
    n = labels.num_rows
    for _, column in POLYGONS:
        polygons = labels.column(column).combine_chunks()
        flat = _numpy(pc.list_flatten(polygons), np.nan)
        parent = pc.list_parent_indices(polygons).to_numpy(zero_copy_only=False)[0::2]
        hit = _outside(flat[0::2], flat[1::2], width[start + parent], height[start + parent])
        bad.update((start + parent[hit]).tolist())
    for _, cx, cy in POINTS:
        x, y = _numpy(labels.column(cx), np.nan), _numpy(labels.column(cy), np.nan)
        hit = _outside(x, y, width[start:start + n], height[start:start + n])
        bad.update((start + np.flatnonzero(hit)).tolist())
    return bad


def _first_outside(labels: pa.Table, row: int, w: float, h: float) -> tuple[str, float, float]:
    """The first shape point of ``row`` outside its image (in POLYGONS then POINTS order)."""
    one = labels.slice(row, 1).to_pylist()[0]
    for name, column in POLYGONS:
        flat = one[column] or []
        for x, y in zip(flat[0::2], flat[1::2]):
            if _outside(np.float64(x), np.float64(y), w, h):
                return f"{name} point", x, y
    for name, cx, cy in POINTS:
        x, y = one[cx], one[cy]
        if x is not None and y is not None and _outside(np.float64(x), np.float64(y), w, h):
            return name, x, y
    raise RuntimeError(f"internal error: row {row} has no point outside its image")


def bounds_errors(json_path: pa.ChunkedArray, labels: pa.Table, width: pa.ChunkedArray,
                  height: pa.ChunkedArray) -> dict[int, str]:
    """{row: error} for every row whose label shapes reach outside its PNG (``labels``: the label columns)."""
    w = _numpy(pc.cast(width, pa.float64()), np.nan)
    h = _numpy(pc.cast(height, pa.float64()), np.nan)
    bad: set[int] = set()
    for start in range(0, labels.num_rows, _SLICE):
        bad |= _rows_outside(labels.slice(start, _SLICE), w, h, start)
    errors = {}
    for row in sorted(bad):
        shape, x, y = _first_outside(labels, row, w[row], h[row])
        errors[row] = (f"{json_path[row].as_py()}: {BOUNDS_CHECK}: {shape} ({float(x):.1f}, {float(y):.1f}) lies "
                       f"outside the {int(w[row])}x{int(h[row])} PNG (tolerance {TOLERANCE_PX:g} px)")
    return errors


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
