"""``cv2.imread`` with OpenCV's refusals turned into one line naming the file (issue 19, item 10).

OpenCV raises ``cv2.error`` (not None) for an image whose header declares more
than ``CV_IO_MAX_IMAGE_PIXELS`` (2^30) pixels; uncaught, that is an internal
error naming no file. A file OpenCV cannot decode still gives None, as before.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class ImageReadError(ValueError):
    """OpenCV refused to decode an image; the message names the file."""


def read_image(path: str | Path, flags: int) -> np.ndarray | None:
    """``cv2.imread(path, flags)``; ImageReadError naming the file where OpenCV raises."""
    import cv2

    try:
        return cv2.imread(str(path), flags)
    except cv2.error as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ImageReadError(f"{path}: OpenCV refuses to decode it: {lines[-1] if lines else 'cv2.error'}") from None
