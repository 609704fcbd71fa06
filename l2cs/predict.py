"""Batched inference over an EyeCrops loader, shared by validation and the
training loop's per-epoch evaluation."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from l2cs.bins import BinSpec
from l2cs.config import IMAGENET_MEAN, IMAGENET_STD
from l2cs.dataset import normalize_batch


@dataclass(frozen=True)
class GazePredictions:
    """Per dataset item: predicted [pitch, yaw] deg (NaN where not decoded) and the decode flag."""

    pitch_yaw: np.ndarray   # (N, 2) float64
    ok: np.ndarray          # (N,) bool


def predict(model: torch.nn.Module, loader: DataLoader, bins: BinSpec, device: torch.device, *,
            n_items: int | None = None, amp: bool = False, progress: bool = True) -> GazePredictions:
    """Run `model` over `loader` (EyeCrops items) and decode both angles.

    Items are placed by their dataset index, so any sampler order (or a
    DistributedSampler shard) fills the right rows; rows never visited stay NaN
    with ok = False.
    """
    size = n_items if n_items is not None else len(loader.dataset)
    out = np.full((size, 2), np.nan)
    ok = np.zeros(size, dtype=bool)
    model.eval()
    with torch.inference_mode():
        for images, _, index, decoded in tqdm(loader, desc="predict", unit="batch", disable=None if progress else True,
                                               leave=False):
            batch = normalize_batch(images, device, IMAGENET_MEAN, IMAGENET_STD)
            with torch.autocast(device_type=device.type, enabled=amp and device.type == "cuda"):
                pitch_logits, yaw_logits = model(batch)
            pitch_yaw = torch.stack([bins.decode(pitch_logits), bins.decode(yaw_logits)], dim=1)
            rows = index.numpy()
            out[rows] = pitch_yaw.cpu().double().numpy()
            ok[rows] = decoded.numpy()
    out[~ok] = np.nan
    return GazePredictions(out, ok)
