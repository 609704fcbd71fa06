"""L2CS-Net (Abdelrahman et al., 2022, "L2CS-Net: Fine-Grained Gaze Estimation
in Unconstrained Environments"): a ResNet backbone with global average
pooling and two separate fully connected heads, one per gaze angle, each
scoring the angle bins.

The backbone uses the BasicBlock / Bottleneck blocks of `common.nn.resnet` in the
torchvision layout, so its parameter names (conv1, bn1, layer1..layer4) are
those of torchvision's ImageNet ResNets and of the original L2CS-Net
checkpoints; torchvision itself is not needed (`common/nn/resnet.py` says why).
The heads are named for what they predict: `fc_pitch` (vertical, positive =
up) and `fc_yaw` (horizontal); `l2cs.checkpoint` maps the reference's names
onto them.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from common.nn.init import init_resnet_weights
from common.nn.resnet import BasicBlock, Bottleneck
from l2cs.config import L2CSConfig

ARCH_LAYOUTS: dict[str, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnet152": (Bottleneck, (3, 8, 36, 3)),
}


class L2CS(nn.Module):
    """ResNet backbone + one bin classifier per angle.

    Args:
        arch: a key of ARCH_LAYOUTS.
        num_bins: bins per angle (90 for the NIA configuration).
        base_width: stem channels; 64 is the published network, and each stage
            doubles it. Smaller values make the `demo` network.
    """

    def __init__(self, *, arch: str = "resnet50", num_bins: int = 90, base_width: int = 64) -> None:
        super().__init__()
        if arch not in ARCH_LAYOUTS:
            raise ValueError(f"arch {arch!r}, expected one of {sorted(ARCH_LAYOUTS)}")
        block, depths = ARCH_LAYOUTS[arch]
        self.inplanes = base_width
        self.conv1 = nn.Conv2d(3, base_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, base_width, depths[0], stride=1)
        self.layer2 = self._make_layer(block, base_width * 2, depths[1], stride=2)
        self.layer3 = self._make_layer(block, base_width * 4, depths[2], stride=2)
        self.layer4 = self._make_layer(block, base_width * 8, depths[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = base_width * 8 * block.expansion
        self.fc_pitch = nn.Linear(self.num_features, num_bins)
        self.fc_yaw = nn.Linear(self.num_features, num_bins)
        self._init_weights()

    def _make_layer(self, block: type[nn.Module], planes: int, depth: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, depth)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        init_resnet_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised images -> (N, num_features) pooled features."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward_head(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features -> (pitch logits, yaw logits), each (N, num_bins)."""
        return self.fc_pitch(features), self.fc_yaw(features)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_head(self.forward_features(x))


def build_model(config: L2CSConfig) -> L2CS:
    """A randomly initialised L2CS for `config`."""
    return L2CS(arch=config.arch, num_bins=config.bin_count, base_width=config.base_width)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm into the convolution before it, for inference only.

    Works on the torchvision block layout (convK followed by bnK, and the
    `downsample` Sequential of conv + bn) and the stem. The model must be in
    eval mode; it is changed in place and returned. Outputs agree with the
    unfolded model to float rounding.
    """
    if model.training:
        raise ValueError("fold_batchnorm: the model must be in eval mode (model.eval())")
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential) and len(module) == 2 \
                and isinstance(module[0], nn.Conv2d) and isinstance(module[1], nn.BatchNorm2d):
            module[0] = fuse_conv_bn_eval(module[0], module[1])
            module[1] = nn.Identity()
            continue
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Conv2d) and name.startswith("conv"):
                bn = getattr(module, "bn" + name[len("conv"):], None)
                if isinstance(bn, nn.BatchNorm2d):
                    setattr(module, name, fuse_conv_bn_eval(child, bn))
                    setattr(module, "bn" + name[len("conv"):], nn.Identity())
    return model
