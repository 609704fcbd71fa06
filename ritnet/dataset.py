"""Per-eye crops and class maps for RIT-Net, read from a crop dataset
(`nia crops` output: `OUT/{split}/r_eye|l_eye/{sample_id}.jpg` + `.png`,
class values 0 background, 1 eye region, 2 iris; docs/architecture.md
"Crop dataset").

Everything per image happens in the item, i.e. in DataLoader workers:
decoding, the published preprocessing (`ritnet.preprocess`), the training
augmentation and the loss targets (`ritnet.targets`).

Left and right eyes are fed as they are (no mirroring): the reference
trains with a random horizontal flip of every other image, so the network
learns both orientations anyway, and an unmirrored input keeps predictions,
overlays and the original model's framing in the crop's own pixels.

Training augmentation: the reference's (`dataset.py`) cheap, generic ones,
in its order, with its probabilities (those of the code, where its README
differs), every pixel quantity scaled from its 400x640 OpenEDS frame to the
crop by s = crop width / 400:
    after the gamma table: Gaussian blur (p 0.2; 7x7 kernel, sigma 2..6 in
    the reference -> odd kernel ~ 7 s, sigma * s), then translation (p 0.4;
    image and class map shifted up, down, left or right, the reference's
    2..38 px of 400 wide / 640 high as the same fraction of the crop's
    width / height, zero fill = background);
    after CLAHE: horizontal flip (p 0.5) of image and class map.
Left out: the starburst overlay (a fixed reflection pattern cut from one
OpenEDS training image, drawn at fixed 400x640 coordinates) and the random
white lines (OpenEDS's glasses reflections), both specific to that
head-mounted camera. Each random choice is a function of (seed, epoch,
item index), so any worker or DDP process draws the same ones.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from common.imread import read_image
from common.parquet_read import read_schema
from common.targets.crop_rows import CropRows, read_crop_rows
from common.targets.crops import CROP_INDEX_NAME
from ritnet.preprocess import apply_clahe, apply_gamma, normalise, preprocess, to_grey
from ritnet.targets import segmentation_targets

SEG_CROPS = ("r_eye", "l_eye")
SEG_COLUMNS = ("crop_id", "sample_id", "crop", "split", "jpg_path", "png_path", "subject", "inst")
DEFAULT_MARGIN = 0.25  # `nia crops --margin` default, for an index without its crop options
REFERENCE_WIDTH, REFERENCE_HEIGHT = 400, 640  # the OpenEDS frame the reference's pixel amounts refer to

FLIP_P, BLUR_P, SHIFT_P = 0.5, 0.2, 0.4


def read_seg_crops(data_dir: str | Path, split: str | None) -> CropRows:
    """Per-eye crop rows (`crop` r_eye / l_eye) of `split` (all if None) with their JPG and class-map PNG.

    Rows whose JPG or PNG file is missing are set aside and counted
    (`missing_image`, then `missing_class_map`), never dropped silently.
    """
    return read_crop_rows(data_dir, crops=SEG_CROPS, split=split, columns=SEG_COLUMNS, labels={},
                          files={"missing_image": "jpg_path", "missing_class_map": "png_path"})


@dataclass(frozen=True)
class Augmentation:
    """One item's random choices: flip, shift (dx, dy) in crop pixels, blur sigma (0 = none)."""

    flip: bool = False
    shift: tuple[int, int] = (0, 0)
    blur_sigma: float = 0.0


def draw_augmentation(rng: np.random.Generator, width: int, height: int) -> Augmentation:
    """The reference's augmentation draws, scaled to a width x height crop (see the module docstring)."""
    flip = rng.random() < FLIP_P
    blur, sigma = rng.random() < BLUR_P, int(rng.integers(2, 7))
    shift, mode, amount = rng.random() < SHIFT_P, int(rng.integers(0, 4)), 2 * int(rng.integers(1, 20))
    dx = dy = 0
    if shift:
        if mode < 2:
            dy = round(amount * height / REFERENCE_HEIGHT) * (1 if mode == 0 else -1)
        else:
            dx = round(amount * width / REFERENCE_WIDTH) * (1 if mode == 2 else -1)
    return Augmentation(flip, (dx, dy), sigma * width / REFERENCE_WIDTH if blur else 0.0)


def shift_image(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Content moved by (dx, dy) pixels (positive = right / down), zeros where nothing moves in."""
    out = np.zeros_like(image)
    height, width = image.shape[:2]
    if abs(dx) >= width or abs(dy) >= height:
        return out
    src = image[max(0, -dy):height - max(0, dy), max(0, -dx):width - max(0, dx)]
    out[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return out


def blur(grey: np.ndarray, sigma: float, width: int) -> np.ndarray:
    """Gaussian blur with the reference's 7x7 kernel scaled to the crop (odd, at least 3)."""
    ksize = max(3, 2 * round(3.5 * width / REFERENCE_WIDTH) + 1)
    return cv2.GaussianBlur(grey, (ksize, ksize), sigma)


def prepare_pair(grey: np.ndarray, class_map: np.ndarray, aug: Augmentation | None) -> tuple[np.ndarray, np.ndarray]:
    """Grey uint8 + class map -> (normalised float32 image, class map), augmented as the reference orders it."""
    grey = apply_gamma(grey)
    if aug is not None and aug.blur_sigma > 0:
        grey = blur(grey, aug.blur_sigma, grey.shape[1])
    if aug is not None and aug.shift != (0, 0):
        grey, class_map = shift_image(grey, *aug.shift), shift_image(class_map, *aug.shift)
    grey = apply_clahe(grey)
    if aug is not None and aug.flip:
        grey, class_map = grey[:, ::-1], class_map[:, ::-1]
    return normalise(np.ascontiguousarray(grey)), np.ascontiguousarray(class_map)


def read_pair(jpg_path: str, png_path: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(grey uint8 HxW, class map uint8 HxW) at width x height, or None if OpenCV cannot read either file.

    The image is resized with INTER_AREA and the map with INTER_NEAREST when
    they are not already at that size. A map that is not one 8-bit channel
    raises ValueError naming the file.
    """
    image = read_image(jpg_path, cv2.IMREAD_UNCHANGED)
    class_map = read_image(png_path, cv2.IMREAD_UNCHANGED)
    if image is None or class_map is None:
        return None
    if class_map.ndim != 2 or class_map.dtype != np.uint8:
        raise ValueError(f"{png_path}: class map must be a single-channel 8-bit PNG, got "
                         f"{class_map.dtype} {class_map.shape}")
    grey = to_grey(image)
    if grey.shape != (height, width):
        grey = cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)
    if class_map.shape != (height, width):
        class_map = cv2.resize(class_map, (width, height), interpolation=cv2.INTER_NEAREST)
    return grey, class_map


Targets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class EyeSegCrops(Dataset):
    """Item i -> (image float32 (1, H, W), (class map int64 (H, W), boundary weights float32 (H, W),
    distance maps float32 (C, H, W)), i, ok).

    `ok` is False when the JPG or the PNG could not be decoded; everything
    is zeros then and the caller counts the item. With `train=True` the
    reference's augmentation is applied (module docstring); its draws are a
    function of (seed, epoch, i): call `set_epoch` before each epoch.
    """

    def __init__(self, root: str | Path, jpg_paths: list[str], png_paths: list[str], *, width: int, height: int,
                 num_classes: int = 3, train: bool = False, seed: int = 0) -> None:
        if len(jpg_paths) != len(png_paths):
            raise ValueError(f"EyeSegCrops: {len(jpg_paths)} images but {len(png_paths)} class maps")
        self.jpg_paths = [str(Path(root) / p) for p in jpg_paths]
        self.png_paths = [str(Path(root) / p) for p in png_paths]
        self.width, self.height, self.num_classes = width, height, num_classes
        self.train, self.seed, self.epoch = train, seed, 0

    @classmethod
    def from_rows(cls, root: str | Path, rows: pd.DataFrame, *, width: int, height: int, train: bool, seed: int,
                  num_classes: int = 3) -> "EyeSegCrops":
        return cls(root, list(rows["jpg_path"]), list(rows["png_path"]), width=width, height=height,
                   num_classes=num_classes, train=train, seed=seed)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose augmentation to draw (call before building the epoch's iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.jpg_paths)

    def augmentation(self, index: int) -> Augmentation | None:
        if not self.train:
            return None
        return draw_augmentation(np.random.default_rng([self.seed, self.epoch, index]), self.width, self.height)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Targets, int, bool]:
        pair = read_pair(self.jpg_paths[index], self.png_paths[index], self.width, self.height)
        if pair is None:
            return self._zeros(index)
        image, class_map = prepare_pair(*pair, self.augmentation(index))
        weights, distances = segmentation_targets(class_map, self.num_classes)
        targets = (torch.from_numpy(class_map.astype(np.int64)), torch.from_numpy(weights),
                   torch.from_numpy(distances))
        return torch.from_numpy(image)[None], targets, index, True

    def _zeros(self, index: int) -> tuple[torch.Tensor, Targets, int, bool]:
        h, w = self.height, self.width
        targets = (torch.zeros(h, w, dtype=torch.int64), torch.zeros(h, w), torch.zeros(self.num_classes, h, w))
        return torch.zeros(1, h, w), targets, index, False


def prepare_batch(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A loader batch -> the network input on `device` (the items are preprocessed float32 already)."""
    return images.to(device, non_blocking=True)


@dataclass(frozen=True)
class CropGeometry:
    """The size (width, height) of a split's per-eye crops and the crop margin they were cut with."""

    width: int
    height: int
    margin: float
    margin_source: str   # "index metadata" or "default (no nia.crop_options in the index)"


def crop_geometry(data_dir: str | Path, rows: pd.DataFrame) -> CropGeometry:
    """Size of the first readable class map of `rows` (every map is checked against it when read) and the
    `nia crops` margin from the index metadata. ValueError naming the folder when no map reads."""
    data_dir = Path(data_dir)
    size = None
    for png in rows["png_path"]:
        class_map = read_image(str(data_dir / png), cv2.IMREAD_UNCHANGED)
        if class_map is not None:
            size = class_map.shape[1], class_map.shape[0]
            break
    if size is None:
        raise ValueError(f"{data_dir}: none of the {len(rows)} class maps of the split can be read")
    metadata = read_schema(data_dir / CROP_INDEX_NAME).metadata or {}
    options = metadata.get(b"nia.crop_options")
    if options is None:
        return CropGeometry(*size, DEFAULT_MARGIN, "default (no nia.crop_options in the index)")
    return CropGeometry(*size, float(json.loads(options)["margin"]), "index metadata")


def read_class_map(path: str | Path, num_classes: int, size: tuple[int, int] | None = None) -> np.ndarray | None:
    """A truth class map (uint8 HxW), None when OpenCV cannot decode it; ValueError naming the file when it
    is not one 8-bit channel, not `size` (width, height), or holds a class >= `num_classes`."""
    class_map = read_image(str(path), cv2.IMREAD_UNCHANGED)
    if class_map is None:
        return None
    if class_map.ndim != 2 or class_map.dtype != np.uint8:
        raise ValueError(f"{path}: class map must be a single-channel 8-bit PNG, got {class_map.dtype} "
                         f"{class_map.shape}")
    if size is not None and class_map.shape != (size[1], size[0]):
        raise ValueError(f"{path}: class map is {class_map.shape[1]}x{class_map.shape[0]}, expected the split's "
                         f"crop size {size[0]}x{size[1]}")
    if class_map.size and int(class_map.max()) >= num_classes:
        raise ValueError(f"{path}: class map holds class {int(class_map.max())}, expected 0..{num_classes - 1}")
    return class_map


class ScoringCrops(Dataset):
    """Item i -> (network input float32 (1, H, W), class map uint8 at the crop's own size, i, ok), for scoring.

    The grey crop is resized to the network input (INTER_AREA, as in
    training) when the sizes differ, then preprocessed as published; the
    class map keeps the crop's pixels, where every prediction is scored.
    `frame` (an original OpenEDS model) replaces the resize: it maps the grey
    crop to that model's input frame (`ritnet.checkpoint.frame_crop`).
    Every class map must be `map_size` (width, height): another size is an
    error naming the file, and so is a class value >= `num_classes`. `ok` is
    False when the JPG or PNG cannot be decoded.
    """

    def __init__(self, root: str | Path, jpg_paths: list[str], png_paths: list[str], *, width: int, height: int,
                 map_size: tuple[int, int], num_classes: int = 3,
                 frame: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        if len(jpg_paths) != len(png_paths):
            raise ValueError(f"ScoringCrops: {len(jpg_paths)} images but {len(png_paths)} class maps")
        self.num_classes = num_classes
        self.jpg_paths = [str(Path(root) / p) for p in jpg_paths]
        self.png_paths = [str(Path(root) / p) for p in png_paths]
        self.width, self.height, self.map_size, self.frame = width, height, map_size, frame
        blank = np.zeros((map_size[1], map_size[0]), np.uint8)
        self.input_shape = (height, width) if frame is None else frame(blank).shape[:2]

    @classmethod
    def from_rows(cls, root: str | Path, rows: pd.DataFrame, **kwargs: object) -> "ScoringCrops":
        return cls(root, list(rows["jpg_path"]), list(rows["png_path"]), **kwargs)

    def __len__(self) -> int:
        return len(self.jpg_paths)

    def grey_and_map(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(grey uint8 crop at map size, class map uint8), or None when either file cannot be decoded."""
        image = read_image(self.jpg_paths[index], cv2.IMREAD_UNCHANGED)
        class_map = read_class_map(self.png_paths[index], self.num_classes, self.map_size)
        if image is None or class_map is None:
            return None
        grey = to_grey(image)
        if grey.shape != class_map.shape:
            grey = cv2.resize(grey, self.map_size, interpolation=cv2.INTER_AREA)
        return grey, class_map

    def network_input(self, grey: np.ndarray) -> np.ndarray:
        """float32 (H, W): the preprocessed network input of a grey crop."""
        if self.frame is not None:
            return preprocess(self.frame(grey))
        if grey.shape != (self.height, self.width):
            grey = cv2.resize(grey, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return preprocess(grey)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
        pair = self.grey_and_map(index)
        if pair is None:
            blank_map = torch.zeros(self.map_size[1], self.map_size[0], dtype=torch.uint8)
            return torch.zeros(1, *self.input_shape), blank_map, index, False
        grey, class_map = pair
        return torch.from_numpy(self.network_input(grey))[None], torch.from_numpy(class_map), index, True
