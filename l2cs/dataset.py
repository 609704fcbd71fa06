"""Two-eye crops for L2CS-Net, read from a crop dataset (`nia crops` output,
see docs/architecture.md "Crop dataset").

The Dataset only decodes (OpenCV, in DataLoader workers) and returns uint8
CHW tensors; scaling and normalisation happen once per batch on the device
(`prepare_batch`), so no per-image float work is done in Python.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from common.imread import read_image
from common.targets.crop_rows import CropRows, read_crop_rows
from common.engine.batches import normalize_batch
from l2cs.config import IMAGENET_MEAN, IMAGENET_STD

EYES_CROP = "eyes"
INDEX_COLUMNS = ("crop_id", "sample_id", "crop", "split", "jpg_path", "subject", "inst",
                 "gaze_pitch_deg", "gaze_yaw_deg")


def read_eye_crops(data_dir: str | Path, split: str | None) -> CropRows:
    """Rows of `data_dir/index.parquet` with crop == "eyes" (and the split, unless None).

    Rows without a gaze label or whose JPG is missing are set aside and
    counted (`no_gaze_label`, `missing_image`), never dropped silently.
    Raises FileNotFoundError / ValueError naming the file and what was expected.
    """
    return read_crop_rows(data_dir, crops=(EYES_CROP,), split=split, columns=INDEX_COLUMNS,
                          labels={"no_gaze_label": ("gaze_pitch_deg", "gaze_yaw_deg")},
                          files={"missing_image": "jpg_path"})


def decode_rgb(path: str, width: int, height: int) -> np.ndarray | None:
    """HxWx3 uint8 RGB at (width, height), or None if OpenCV cannot read it.

    IMREAD_COLOR replicates a grey (IR) image to 3 channels.
    """
    image = read_image(path, cv2.IMREAD_COLOR)
    if image is None:
        return None
    if image.shape[1] != width or image.shape[0] != height:
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class EyeCrops(Dataset):
    """Item i -> (uint8 image (3, H, W), target (2,) = [pitch, yaw] deg, i, ok).

    `ok` is False when the image could not be decoded (the image is then
    zeros): the caller counts it. With `flip_prob` > 0 an item is mirrored
    horizontally, which negates yaw and keeps pitch; the decision is a
    function of (seed, epoch, i), so it is the same whichever process or
    worker loads the item (DDP and resume give the same augmentation).
    """

    def __init__(self, root: str | Path, jpg_paths: list[str], targets: np.ndarray, *, width: int, height: int,
                 flip_prob: float = 0.0, seed: int = 0) -> None:
        if len(jpg_paths) != len(targets):
            raise ValueError(f"EyeCrops: {len(jpg_paths)} paths but {len(targets)} targets")
        self.paths = [str(Path(root) / p) for p in jpg_paths]
        self.targets = torch.as_tensor(np.asarray(targets, dtype=np.float32).reshape(-1, 2))
        self.width, self.height = width, height
        self.flip_prob, self.seed, self.epoch = flip_prob, seed, 0

    @classmethod
    def from_rows(cls, root: str | Path, rows: pd.DataFrame, **kwargs: object) -> "EyeCrops":
        targets = rows[["gaze_pitch_deg", "gaze_yaw_deg"]].to_numpy(dtype=np.float32)
        return cls(root, list(rows["jpg_path"]), targets, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose flips to draw (call before building the epoch's iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def flipped(self, index: int) -> bool:
        if self.flip_prob <= 0:
            return False
        return bool(np.random.default_rng([self.seed, self.epoch, index]).random() < self.flip_prob)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
        image = decode_rgb(self.paths[index], self.width, self.height)
        target = self.targets[index].clone()
        if image is None:
            return torch.zeros(3, self.height, self.width, dtype=torch.uint8), target, index, False
        if self.flipped(index):
            image = image[:, ::-1]
            target[1] = -target[1]
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), target, index, True


def prepare_batch(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N, 3, H, W) crops -> ImageNet-normalised float32 channels_last batch on `device`."""
    return normalize_batch(images, device, IMAGENET_MEAN, IMAGENET_STD)
