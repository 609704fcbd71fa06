"""Two-eye crops for L2CS-Net, read from a crop dataset (`nia crops` output,
see docs/architecture.md "Crop dataset").

The Dataset only decodes (OpenCV, in DataLoader workers) and returns uint8
CHW tensors; scaling and normalisation happen once per batch on the device
(`normalize_batch`), so no per-image float work is done in Python.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from common.crops import CROP_INDEX_NAME as INDEX_NAME

EYES_CROP = "eyes"
INDEX_COLUMNS = ("crop_id", "sample_id", "crop", "split", "jpg_path", "subject", "inst",
                 "gaze_pitch_deg", "gaze_yaw_deg")


@dataclass(frozen=True)
class CropRows:
    """Eye-crop rows of one split, plus how many rows were set aside and why."""

    rows: pd.DataFrame
    skipped: dict[str, int]


def read_eye_crops(data_dir: str | Path, split: str | None) -> CropRows:
    """Rows of `data_dir/index.parquet` with crop == "eyes" (and the split, unless None).

    Rows without a gaze label or whose JPG is missing are set aside and
    counted (`no_gaze_label`, `missing_image`), never dropped silently.
    Raises FileNotFoundError / ValueError naming the file and what was expected.
    """
    data_dir = Path(data_dir)
    index_path = data_dir / INDEX_NAME
    if not index_path.is_file():
        raise FileNotFoundError(f"{data_dir}: expected a crop dataset directory with {INDEX_NAME} "
                                "(made by `nia crops MANIFEST OUT`)")
    frame = pd.read_parquet(index_path)
    missing = [c for c in INDEX_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{index_path}: missing columns {missing}; expected at least {list(INDEX_COLUMNS)}")
    rows = frame[frame["crop"] == EYES_CROP]
    if split is not None:
        rows = rows[rows["split"] == split]
    if rows.empty:
        splits = sorted(frame.loc[frame["crop"] == EYES_CROP, "split"].dropna().unique())
        raise ValueError(f"{index_path}: no '{EYES_CROP}' crops in split {split!r}; splits present: {splits}")
    no_label = rows["gaze_pitch_deg"].isna() | rows["gaze_yaw_deg"].isna()
    exists = np.array([(data_dir / p).is_file() if isinstance(p, str) else False for p in rows["jpg_path"]])
    missing_image = ~no_label.to_numpy() & ~exists
    keep = ~no_label.to_numpy() & exists
    skipped = {"no_gaze_label": int(no_label.sum()), "missing_image": int(missing_image.sum())}
    return CropRows(rows[keep].reset_index(drop=True), {k: v for k, v in skipped.items() if v})


def decode_rgb(path: str, width: int, height: int) -> np.ndarray | None:
    """HxWx3 uint8 RGB at (width, height), or None if OpenCV cannot read it.

    IMREAD_COLOR replicates a grey (IR) image to 3 channels.
    """
    image = cv2.imread(path, cv2.IMREAD_COLOR)
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


def worker_init(_: int) -> None:
    """One thread per DataLoader worker for OpenCV and torch: the workers are the parallelism."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def normalize_batch(images: torch.Tensor, device: torch.device, mean: tuple[float, float, float],
                    std: tuple[float, float, float], channels_last: bool = True) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 ((x / 255) - mean) / std on `device`, in one fused pass.

    Both copies to a GPU are asynchronous: the constants are built on the CPU
    and sent with non_blocking (building them with `device=` would make a
    blocking copy, i.e. wait for the GPU's queued work on every batch).
    """
    images = images.to(device, non_blocking=True)
    affine = torch.tensor([[1.0 / (255.0 * s) for s in std], [m / s for m, s in zip(mean, std)]])
    scale, shift = affine.to(device, non_blocking=True).view(2, 1, 3, 1, 1)
    batch = torch.addcmul(-shift, images.float(), scale)
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch
