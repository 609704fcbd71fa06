"""Weight initialisation shared by the ResNet-based models (L2CS-Net, Former-DFER)."""
from __future__ import annotations

from torch import nn


def init_resnet_weights(model: nn.Module) -> None:
    """torchvision's ResNet initialisation: Kaiming-normal (fan-out) convolutions, BatchNorm 1 / 0."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
