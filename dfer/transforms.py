"""Frame transforms of the published Former-DFER (zengqunzhao/Former-DFER,
`dataloader/video_transform.py` and the loaders in `dataset_DFEW.py`).

Training (`train_transform`): one random-sized crop and one horizontal flip
for all frames of a clip (`GroupRandomSizedCrop(112)`, `GroupRandomHorizontalFlip()`):
up to 10 tries of an area fraction uniform in [0.08, 1] and an aspect ratio
uniform in [3/4, 4/3], width and height rounded and swapped with probability
1/2; the first that fits is cut at a uniform position and resized to
112 x 112. If none fits, the fallback resizes the shorter side to 112 and cuts
a random 112 x 112 square. The flip has probability 1/2. With `crop=False`
(`DFERConfig.random_crop`, off in the demo preset) the frames are resized as
at test and only flipped.

Test (`eval_transform`): every frame resized to 112 x 112 (`GroupResize(112)`:
the aspect ratio is not kept).

Both end in `ToTorchFormatTensor`: values / 255, so [0, 1]. With
`as_uint8=True` they stop one step earlier and return the resized pixels
as uint8 `(T, 3, S, S)`, the reference's PIL images before
`ToTorchFormatTensor`: a DataLoader then moves a quarter of the bytes and
the division by 255 runs once per batch on the device (`dfer.dataset.prepare_batch`). The reference
defines `GroupNormalize` (mean/std) but none of its loaders applies it, so the
published model was trained and tested on [0, 1] inputs, and so are we.

Resizing: the reference resizes PIL images with `img.resize((w, h),
Image.BILINEAR)` (`GroupResize`, `GroupRandomSizedCrop`; its fallback through
torchvision's `Resize`, which calls the same). We call exactly that, frame by
frame, so the frames are bit-identical to the reference's. PIL's filter is
antialiased (its triangle kernel widens to the scale when it shrinks) and
rounds to whole grey levels between its horizontal and vertical passes, which
`F.interpolate(antialias=True)` does not: that differed by one grey level on
12-17 % of the values. PIL comes with python3-matplotlib and
python3-torchvision (Debian) or matplotlib (PyPI); it is listed as python3-pil.

Randomness comes only from the `numpy.random.Generator` passed in (the
reference draws from Python's global `random`).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

INPUT_SIZE = 112
CROP_SCALE = (0.08, 1.0)        # area fraction of the random-sized crop
CROP_RATIO = (3 / 4, 4 / 3)     # aspect ratio (w / h) range of the random-sized crop
CROP_TRIES = 10
FLIP_PROB = 0.5
BILINEAR = getattr(Image, "Resampling", Image).BILINEAR   # Image.BILINEAR before Pillow 9.1


class Box(NamedTuple):
    """A crop: left, top, width, height in pixels."""

    x: int
    y: int
    w: int
    h: int


def random_sized_box(height: int, width: int, rng: np.random.Generator, *, scale: tuple[float, float] = CROP_SCALE,
                     ratio: tuple[float, float] = CROP_RATIO, tries: int = CROP_TRIES) -> Box | None:
    """The reference's random-sized crop box for a (height, width) frame, or None when no try fits."""
    area = height * width
    for _ in range(tries):
        target = rng.uniform(*scale) * area
        aspect = rng.uniform(*ratio)
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if rng.random() < 0.5:
            w, h = h, w
        if w <= width and h <= height:
            return Box(int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h)
    return None


def fallback_box(height: int, width: int, size: int, rng: np.random.Generator) -> tuple[tuple[int, int], Box]:
    """The reference's fallback: shorter side resized to `size` (longer side truncated as torchvision's
    Resize does), then a random size x size square. Returns ((resized height, resized width), box)."""
    if height <= width:
        new_h, new_w = size, int(size * width / height)
    else:
        new_h, new_w = int(size * height / width), size
    return (new_h, new_w), Box(int(rng.integers(0, new_w - size + 1)), int(rng.integers(0, new_h - size + 1)),
                               size, size)


def train_transform(frames: np.ndarray, rng: np.random.Generator, *, size: int = INPUT_SIZE,
                    scale: tuple[float, float] = CROP_SCALE, ratio: tuple[float, float] = CROP_RATIO,
                    flip_prob: float = FLIP_PROB, as_uint8: bool = False, crop: bool = True) -> torch.Tensor:
    """uint8 RGB (T, H, W, 3) -> float32 (T, 3, size, size) in [0, 1] (or uint8 0-255 with `as_uint8`):
    the same random crop and flip for all frames. `crop=False` (the demo) resizes as `eval_transform`
    does and only flips: the result is then `random_flip(eval_transform(frames), rng)`."""
    _check_frames(frames)
    if not crop:
        return random_flip(eval_transform(frames, size=size, as_uint8=as_uint8), rng, flip_prob)
    height, width = frames.shape[1:3]
    box = random_sized_box(height, width, rng, scale=scale, ratio=ratio)
    if box is not None:   # the reference: img.crop(box), then img.resize((size, size))
        clip = _to_tensor(_resize(frames[:, box.y:box.y + box.h, box.x:box.x + box.w], size))
    else:
        resized, box = fallback_box(height, width, size, rng)
        clip = _to_tensor(_resize(frames, resized))[..., box.y:box.y + box.h, box.x:box.x + box.w]
    return _finish(random_flip(clip, rng, flip_prob), as_uint8)


def random_flip(clip: torch.Tensor, rng: np.random.Generator, flip_prob: float = FLIP_PROB) -> torch.Tensor:
    """(T, C, H, W) mirrored left-right as a whole with probability `flip_prob` (one draw from `rng`)."""
    return clip.flip(-1) if rng.random() < flip_prob else clip


def eval_transform(frames: np.ndarray, *, size: int = INPUT_SIZE, as_uint8: bool = False) -> torch.Tensor:
    """uint8 RGB (T, H, W, 3) -> float32 (T, 3, size, size) in [0, 1] (or uint8 0-255 with `as_uint8`),
    every frame resized (aspect not kept)."""
    _check_frames(frames)
    return _finish(_to_tensor(_resize(frames, size)), as_uint8)


def _check_frames(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        desc = f"{frames.dtype} {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise ValueError(f"frames: {desc}, expected a uint8 RGB array (T, H, W, 3)")
    if min(frames.shape[:3]) < 1:
        raise ValueError(f"frames: shape {frames.shape} has an empty dimension")


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> uint8 (T, 3, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)


def _resize(frames: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """uint8 (T, H, W, 3) frames resized to size (an int: a square; else (height, width)) as the reference
    does: PIL's `Image.resize((width, height), Image.BILINEAR)` on each frame."""
    height, width = (size, size) if isinstance(size, int) else size
    if tuple(frames.shape[1:3]) == (height, width):
        return frames
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(frame)).resize((width, height), BILINEAR))
                     for frame in frames])


def _finish(clip: torch.Tensor, as_uint8: bool = False) -> torch.Tensor:
    """uint8 (T, 3, H, W) -> itself (`as_uint8`) or float32 / 255, as the reference's ToTorchFormatTensor."""
    if as_uint8:
        return clip.contiguous()
    return clip.float().div_(255.0).contiguous()
