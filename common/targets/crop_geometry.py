"""Crop boxes and the crop transform (docs/targets.md), and the options that size them.

Boxes: the bounding box of the eyelid polygon(s) grown by a relative
``margin`` on every side, then the shorter side expanded to the output aspect
ratio, then snapped to whole pixels. The crop is cut from the frame (zeros
where the box leaves it) and resized with ``cv2.INTER_AREA``.

Transform, with integer coordinates at pixel centres on both sides::

    x' = (x - x0) * scale_x,   y' = (y - y0) * scale_y
    scale_x = out_width / box_width_px,   x0 = box_left_px - 0.5 + 0.5 / scale_x

which is the mapping ``cv2.resize`` uses between pixel centres, so labels
transformed with it land where the resized image shows them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from common.targets.masks import EyeShapes


CROP_NAMES = ("eyes", "r_eye", "l_eye")


@dataclass(frozen=True)
class CropOptions:
    """Output sizes (width, height), relative margin and JPEG quality."""

    eyes_size: tuple[int, int] = (224, 112)
    eye_size: tuple[int, int] = (160, 96)
    margin: float = 0.25
    jpeg_quality: int = 95

    def size_of(self, crop: str) -> tuple[int, int]:
        return self.eyes_size if crop == "eyes" else self.eye_size

    def for_crop(self, crop: str) -> dict:
        """The options that make ``crop`` (its input fingerprint's share)."""
        return {"size": list(self.size_of(crop)), "margin": self.margin, "jpeg_quality": self.jpeg_quality}

    def as_dict(self) -> dict:
        """The options as JSON-ready values (the summary and the index metadata)."""
        return {"eyes_size": list(self.eyes_size), "eye_size": list(self.eye_size),
                "margin": self.margin, "jpeg_quality": self.jpeg_quality}


@dataclass(frozen=True)
class CropBox:
    """A whole-pixel box of the frame (left/top pixel index, size in pixels) and its output size."""

    left: int
    top: int
    width_px: int
    height_px: int
    out_width: int
    out_height: int

    @property
    def scale_x(self) -> float:
        return self.out_width / self.width_px

    @property
    def scale_y(self) -> float:
        return self.out_height / self.height_px

    @property
    def x0(self) -> float:
        return self.left - 0.5 + 0.5 / self.scale_x

    @property
    def y0(self) -> float:
        return self.top - 0.5 + 0.5 / self.scale_y

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Frame pixel coordinates (..., 2) -> crop pixel coordinates."""
        return (np.asarray(points, dtype=np.float64) - [self.x0, self.y0]) * [self.scale_x, self.scale_y]

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Crop pixel coordinates (..., 2) -> frame pixel coordinates (the inverse of ``to_crop``)."""
        return np.asarray(points, dtype=np.float64) / [self.scale_x, self.scale_y] + [self.x0, self.y0]


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def crop_box(points: np.ndarray, out_size: tuple[int, int], margin: float) -> CropBox:
    """The box around ``points`` (n, 2) grown by ``margin`` per side and widened to the output aspect."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    (xmin, ymin), (xmax, ymax) = pts.min(axis=0), pts.max(axis=0)
    out_width, out_height = out_size
    aspect = out_width / out_height
    width = max((xmax - xmin) * (1.0 + 2.0 * margin), 2.0)
    height = max((ymax - ymin) * (1.0 + 2.0 * margin), 2.0)
    if width < height * aspect:
        width = height * aspect
    else:
        height = width / aspect
    width_px, height_px = max(2, _round_half_up(width)), max(2, _round_half_up(height))
    left = _round_half_up((xmin + xmax) / 2.0 - width_px / 2.0 + 0.5)
    top = _round_half_up((ymin + ymax) / 2.0 - height_px / 2.0 + 0.5)
    return CropBox(left, top, width_px, height_px, out_width, out_height)


def inside_fraction(box: CropBox, width: int, height: int) -> float:
    """The share of the box's area that lies inside a ``width`` x ``height`` frame."""
    inside_x = max(0, min(box.left + box.width_px, width) - max(box.left, 0))
    inside_y = max(0, min(box.top + box.height_px, height) - max(box.top, 0))
    return inside_x * inside_y / (box.width_px * box.height_px)


def cut_and_resize(image: np.ndarray, box: CropBox) -> np.ndarray:
    """The box's pixels (zeros outside the frame), resized to the output size with INTER_AREA."""
    import cv2

    height, width = image.shape[:2]
    x0, x1 = max(box.left, 0), min(box.left + box.width_px, width)
    y0, y1 = max(box.top, 0), min(box.top + box.height_px, height)
    if x0 == box.left and y0 == box.top and x1 - x0 == box.width_px and y1 - y0 == box.height_px:
        patch = image[y0:y1, x0:x1]
    else:
        patch = np.zeros((box.height_px, box.width_px) + image.shape[2:], dtype=image.dtype)
        if x0 < x1 and y0 < y1:
            patch[y0 - box.top:y1 - box.top, x0 - box.left:x1 - box.left] = image[y0:y1, x0:x1]
    return cv2.resize(patch, (box.out_width, box.out_height), interpolation=cv2.INTER_AREA)


def plan_boxes(eyes: dict[str, EyeShapes], options: CropOptions) -> tuple[dict[str, CropBox], list[str]]:
    """Boxes for the crops a row allows, and one reason per crop it does not."""
    boxes: dict[str, CropBox] = {}
    reasons: list[str] = []
    for side in "rl":
        if eyes[side].eyelid is None:
            reasons.append(f"{side}_eye: no {side}_eyelid polygon")
        else:
            boxes[f"{side}_eye"] = crop_box(eyes[side].eyelid, options.eye_size, options.margin)
    if eyes["r"].eyelid is None or eyes["l"].eyelid is None:
        reasons.append("eyes: needs both eyelid polygons")
    else:
        both = np.concatenate([eyes["r"].eyelid, eyes["l"].eyelid])
        boxes["eyes"] = crop_box(both, options.eyes_size, options.margin)
    return {name: boxes[name] for name in CROP_NAMES if name in boxes}, reasons
