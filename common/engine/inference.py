"""Run a model over a loader and keep one row of outputs per dataset item,
shared by each test's validation and by training's per-epoch evaluation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from common.engine.batches import to_device


@dataclass(frozen=True)
class Outputs:
    """Per dataset item: the decoded outputs (NaN where the item was not read) and the read flag."""

    values: np.ndarray   # (N, K) float64
    ok: np.ndarray       # (N,) bool


def run_inference(model: torch.nn.Module, loader: DataLoader, device: torch.device, *,
                  prepare: Callable[[torch.Tensor, torch.device], torch.Tensor],
                  decode: Callable[[Any, Any], torch.Tensor], n_items: int | None = None, amp: bool = False,
                  progress: bool = True) -> Outputs:
    """`decode(model(prepare(inputs)), targets_on_device)` -> `(B, K)` for every batch, placed by dataset index.

    Any sampler order (or a DistributedSampler shard) fills the right rows;
    rows never visited stay NaN with ok = False. Mixed precision only on
    CUDA and only when `amp` (validation runs float32 for reproducibility).
    """
    size = n_items if n_items is not None else len(loader.dataset)
    values: np.ndarray | None = None
    ok = np.zeros(size, dtype=bool)
    model.eval()
    with torch.inference_mode():
        for inputs, targets, index, readable in tqdm(loader, desc="predict", unit="batch",
                                                      disable=None if progress else True, leave=False):
            batch = prepare(inputs, device)
            with torch.autocast(device_type=device.type, enabled=amp and device.type == "cuda"):
                outputs = model(batch)
            decoded = decode(outputs, to_device(targets, device)).cpu().double().numpy()
            decoded = decoded.reshape(len(decoded), -1)
            if values is None:
                values = np.full((size, decoded.shape[1]), np.nan)
            rows = index.numpy()
            values[rows] = decoded
            ok[rows] = readable.numpy()
    if values is None:
        values = np.full((size, 0), np.nan)
    values[~ok] = np.nan
    return Outputs(values, ok)
