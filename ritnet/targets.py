"""Per-pixel training targets derived from a class map, as the RITnet
reference computes them in its dataset (`dataset.py`, `utils.one_hot2dist`),
in numpy/OpenCV so that DataLoader workers compute them.

Boundary weights (for the boundary-aware cross-entropy):
    edges   = cv2.Canny(class_map, 0, 3) > 0        # class steps of 1 give Sobel magnitudes of 4 > 3
    dilated = edges, or the edge pixel directly above   # see below
    weights = 20 * dilated                          # 0 or 20; the loss multiplies CE by (1 + weights)
The reference calls `cv2.dilate(edges, (3, 3))`: OpenCV takes the tuple as
the structuring element itself, a 2x1 column of ones anchored at its lower
cell, not as a kernel size, so each edge pixel spreads one row down
(checked against OpenCV 4.6 in the tests). We reproduce what the reference
computes, not a 3x3 dilation. Canny's non-maximum suppression puts the
edge of a straight step on the lower-valued side's pixel row or column.

Distance maps (for the surface loss), one per class c, signed and scaled by
the image diagonal sqrt((H - 1)^2 + (W - 1)^2):
    outside c:  + Euclidean distance to the nearest pixel of c
    inside c:   - (Euclidean distance to the nearest pixel not in c - 1)   (0 on c's border)
An absent class gives zeros (as in the reference). A class covering the
whole image also gives zeros: the reference's scipy call returns an
artefact there (distances to a virtual pixel outside the image); it cannot
occur in a crop with background margins.
OpenCV's exact Euclidean transform (DIST_MASK_PRECISE) agrees with scipy's
`distance_transform_edt` to float32 rounding. It runs OpenCV's own code,
never Intel IPP's (`_without_ipp`), so that the maps are the same bytes on
every call and on both stacks.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import cv2
import numpy as np

BOUNDARY_WEIGHT = 20.0
CANNY_THRESHOLDS = (0, 3)


def _check_class_map(class_map: np.ndarray, num_classes: int | None = None) -> None:
    if class_map.ndim != 2 or class_map.dtype != np.uint8:
        raise ValueError(f"class map: uint8 HxW expected, got {class_map.dtype} {class_map.shape}")
    if num_classes is not None and class_map.size and int(class_map.max()) >= num_classes:
        raise ValueError(f"class map: value {int(class_map.max())} found, expected classes 0..{num_classes - 1}")


def boundary_edges(class_map: np.ndarray) -> np.ndarray:
    """bool HxW: Canny edges of the class map with the reference's thresholds (0, 3)."""
    _check_class_map(class_map)
    return cv2.Canny(class_map, *CANNY_THRESHOLDS) > 0


def dilate_down(mask: np.ndarray) -> np.ndarray:
    """bool HxW: a pixel is set when it or the pixel directly above is set.

    What `cv2.dilate(x, (3, 3))` does (the tuple becomes a 2x1 element).
    """
    out = mask.copy()
    out[1:] |= mask[:-1]
    return out


def boundary_weights(class_map: np.ndarray, weight: float = BOUNDARY_WEIGHT) -> np.ndarray:
    """float32 HxW: `weight` on the (reference-dilated) class boundaries, 0 elsewhere."""
    return dilate_down(boundary_edges(class_map)).astype(np.float32) * np.float32(weight)


@contextmanager
def _without_ipp() -> Iterator[None]:
    """OpenCV's own implementations in this thread, not Intel IPP's; the caller's setting comes back after.

    PyPI's OpenCV (the current stack; Debian's is built without IPP) hands
    the precise distance transform to IPP, whose float32 results change in
    the last bit from one call to the next within a process (1-ulp
    differences on a few % of the pixels of the same crop read twice,
    OpenCV 4.11). The surface loss's gradients follow, and Adam turns them
    into different weights: two training runs, or a run and its resumed
    copy, ended up to 8e-3 apart. OpenCV's own code repeats exactly and gives
    the bytes of Debian's OpenCV 4.6. OpenCV keeps the switch per thread.
    """
    previous = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    try:
        yield
    finally:
        cv2.ipp.setUseIPP(previous)


def _distance_to_zero(mask: np.ndarray) -> np.ndarray:
    """float32: for each set pixel, the Euclidean distance to the nearest unset one (0 on unset pixels)."""
    with _without_ipp():
        return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """float32 HxW signed distance of one class mask, scaled by the diagonal (see the module docstring)."""
    if mask.ndim != 2:
        raise ValueError(f"signed_distance: HxW mask expected, got shape {mask.shape}")
    height, width = mask.shape
    inside = mask.astype(bool)
    if not inside.any() or inside.all():
        return np.zeros(mask.shape, dtype=np.float32)
    outside = ~inside
    result = _distance_to_zero(outside) * outside - (_distance_to_zero(inside) - 1.0) * inside
    diagonal = np.sqrt((height - 1) ** 2 + (width - 1) ** 2)
    return (result / diagonal).astype(np.float32)


def distance_maps(class_map: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 (num_classes, H, W): `signed_distance(class_map == c)` for each class c."""
    _check_class_map(class_map, num_classes)
    return np.stack([signed_distance(class_map == c) for c in range(num_classes)])


def segmentation_targets(class_map: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(boundary weights float32 HxW, distance maps float32 CxHxW) of one class map."""
    return boundary_weights(class_map), distance_maps(class_map, num_classes)
