"""Batches between the DataLoader and the network.

Every dataset item of the three tests is `(inputs, targets, index, ok)`:
`inputs` a tensor (an image `(C, H, W)` or a clip `(T, C, H, W)`), `targets`
a tensor or a tuple of tensors, `index` the item's position in its dataset
(so predictions land on the right row whatever the sampler), `ok` False when
the item could not be read (its tensors are then zeros and the caller counts
it). Decoding happens in DataLoader workers; scaling and normalisation once
per batch on the device.
"""
from __future__ import annotations

from typing import Any, Sequence

import cv2
import torch

from common.cores import release_from_binding


def worker_init(_: int) -> None:
    """One thread per DataLoader worker for OpenCV and torch: the workers are the parallelism. A worker forked
    from a training thread bound to one CPU may run on all the binding's CPUs (`release_from_binding`)."""
    release_from_binding()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def normalize_batch(images: torch.Tensor, device: torch.device, mean: Sequence[float], std: Sequence[float],
                    channels_last: bool = True) -> torch.Tensor:
    """uint8 `(N, C, H, W)` or `(N, T, C, H, W)` -> float32 ((x / 255) - mean) / std on `device`, in one fused pass.

    Both copies to a GPU are asynchronous: the constants are built on the CPU
    and sent with non_blocking (building them with `device=` would make a
    blocking copy, i.e. wait for the GPU's queued work on every batch).
    `channels_last` applies to 4-D batches.
    """
    images = images.to(device, non_blocking=True)
    affine = torch.tensor([[1.0 / (255.0 * s) for s in std], [m / s for m, s in zip(mean, std)]])
    shape = [2] + [1] * images.dim()
    shape[-3] = len(mean)
    scale, shift = affine.to(device, non_blocking=True).view(shape)
    batch = torch.addcmul(-shift, images.float(), scale)
    return batch.contiguous(memory_format=torch.channels_last) if channels_last and batch.dim() == 4 else batch


def to_device(value: Any, device: torch.device) -> Any:
    """A tensor, or a tuple/list of tensors, on `device` (asynchronous from pinned memory)."""
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(v, device) for v in value)
    return value.to(device, non_blocking=True)


def keep_rows(value: Any, keep: torch.Tensor) -> Any:
    """Rows `keep` (a boolean mask) of a tensor, or of every tensor of a tuple/list."""
    if isinstance(value, (tuple, list)):
        return type(value)(keep_rows(v, keep) for v in value)
    return value[keep]


def batch_length(value: Any) -> int:
    """Number of items in a batch of targets (a tensor or a tuple of tensors)."""
    return len(value[0]) if isinstance(value, (tuple, list)) else len(value)
