"""RITnet's input preprocessing, as published (reference `dataset.py`, README
"Required Preprocessing"): grey image -> gamma 0.8 look-up table -> CLAHE
(clip limit 1.5, 8x8 tiles) -> x / 255 normalised to mean 0.5, std 0.5,
i.e. values in [-1, 1].

The gamma table is the reference's: `255 * (i / 255) ** 0.8` in float64,
TRUNCATED to uint8 (it applies the float table with cv2.LUT and casts the
result with np.uint8 before CLAHE), not rounded: entry 128 is 146
(146.918 in float) and entry 5 is 10 (10.977), where rounding gives 147
and 11; 141 of the 256 entries differ between the two.

NIA crops: RGB crops are decoded by OpenCV as BGR and converted to grey
with cv2.COLOR_BGR2GRAY (0.299 R + 0.587 G + 0.114 B, the same weights as
the reference's PIL `convert("L")`); IR crops are single-channel already.
Everything here is numpy/OpenCV on one image, cheap enough for DataLoader
workers.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

GAMMA = 0.8
CLAHE_CLIP_LIMIT = 1.5
CLAHE_TILES = (8, 8)
MEAN, STD = 0.5, 0.5


@lru_cache(maxsize=4)
def gamma_table(gamma: float = GAMMA) -> np.ndarray:
    """uint8 (256,) table: floor(255 * linspace(0, 1, 256) ** gamma), the reference's float maths truncated."""
    table = 255.0 * (np.linspace(0.0, 1.0, 256) ** gamma)
    table = table.astype(np.uint8)  # truncation toward zero, as np.uint8() of the reference's float image
    table.setflags(write=False)
    return table


@lru_cache(maxsize=1)
def _clahe() -> cv2.CLAHE:
    # one object per process (workers fork or spawn their own); it holds no image state between calls
    return cv2.createCLAHE(clipLimit=CLAHE_CLIP_LIMIT, tileGridSize=CLAHE_TILES)


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 HxW grey from an OpenCV decode: HxW as is, HxWx1 squeezed, BGR / BGRA converted."""
    if image.dtype != np.uint8:
        raise ValueError(f"to_grey: uint8 image expected, got {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"to_grey: expected HxW, HxWx1, HxWx3 (BGR) or HxWx4 (BGRA), got shape {image.shape}")


def apply_gamma(grey: np.ndarray, gamma: float = GAMMA) -> np.ndarray:
    """uint8 grey through the truncated gamma table."""
    return cv2.LUT(grey, gamma_table(gamma))


def apply_clahe(grey: np.ndarray) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation, clip limit 1.5 on 8x8 tiles (uint8 in, uint8 out)."""
    return _clahe().apply(grey)


def normalise(grey: np.ndarray) -> np.ndarray:
    """uint8 -> float32 (x / 255 - 0.5) / 0.5, as torchvision's ToTensor + Normalize([0.5], [0.5])."""
    return ((grey.astype(np.float32) / np.float32(255.0)) - np.float32(MEAN)) / np.float32(STD)


def preprocess(image: np.ndarray) -> np.ndarray:
    """The whole published chain for inference: grey -> gamma -> CLAHE -> float32 HxW in [-1, 1].

    (Training applies the reference's augmentations between the gamma and
    CLAHE steps; `ritnet.dataset` composes the steps itself.)
    """
    return normalise(apply_clahe(apply_gamma(to_grey(image))))
