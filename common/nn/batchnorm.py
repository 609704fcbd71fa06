"""BatchNorm handling shared by the models' training."""
from __future__ import annotations

from torch import nn


def freeze_batchnorm_stats(model: nn.Module) -> None:
    """Put every BatchNorm in eval mode (running statistics fixed, affine still trained).

    Call after `model.train()`: it is how pretrained weights are fine-tuned
    with small per-process batches, and it makes DDP on CPU (no SyncBatchNorm
    there) compute exactly what one process computes.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
