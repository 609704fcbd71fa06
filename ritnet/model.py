"""DenseNet2D of RITnet (Chaudhary et al., 2019, "RITnet: Real-time Semantic
Segmentation of the Eye for Gaze Tracking", ICCVW; reference code
github.com/AayushKrChaudhary/RITnet, `densenet.py`).

A U-Net of DenseNet-style blocks at one constant width (32 channels):
five down blocks (the second to the fifth start with 2x2 average pooling,
so the bottleneck is 1/16 of the input), four up blocks (nearest
upsampling by 2, then the matching down block's output concatenated as a
skip), and a 1x1 convolution to the class scores. Inside a block every
convolution sees the concatenation of the block input and the earlier
outputs; each 3x3 convolution (after its 1x1 reduction, where there is one)
is followed by dropout and LeakyReLU (slope 0.01). Only the down blocks end
in BatchNorm, as in the reference.

Module and parameter names follow the reference (`down_block1.conv1`,
`down_block1.bn`, `up_block1.conv11`, `out_conv1`, ...), so its
state_dicts (e.g. the shipped `best_model.pkl`) load with `strict=True`.
Published size: 248,900 parameters at its 4 OpenEDS classes, 248,867 at
the NIA's 3.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DOWNSAMPLING = 16  # four 2x2 poolings: input height and width must be multiples of this
INIT_CHOICES = ("reference", "torch")


def _dropout(p: float) -> nn.Module:
    return nn.Dropout(p=p) if p > 0 else nn.Identity()


class DownBlock(nn.Module):
    """[2x2 average pool] -> three densely connected conv stages -> BatchNorm.

    Stage 1: 3x3 conv of the input. Stage 2: 1x1 then 3x3 conv of
    [input, stage 1]. Stage 3: 1x1 then 3x3 conv of [input, stage 1, stage 2].
    """

    def __init__(self, in_channels: int, channels: int, *, pool: bool, dropout: float) -> None:
        super().__init__()
        self.pool = pool
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1)
        self.conv21 = nn.Conv2d(in_channels + channels, channels, kernel_size=1)
        self.conv22 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv31 = nn.Conv2d(in_channels + 2 * channels, channels, kernel_size=1)
        self.conv32 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.dropout1, self.dropout2, self.dropout3 = _dropout(dropout), _dropout(dropout), _dropout(dropout)
        self.relu = nn.LeakyReLU()
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool:
            x = F.avg_pool2d(x, kernel_size=2)
        stage1 = self.relu(self.dropout1(self.conv1(x)))
        dense1 = torch.cat((x, stage1), dim=1)
        stage2 = self.relu(self.dropout2(self.conv22(self.conv21(dense1))))
        dense2 = torch.cat((dense1, stage2), dim=1)
        stage3 = self.relu(self.dropout3(self.conv32(self.conv31(dense2))))
        return self.bn(stage3)


class UpBlock(nn.Module):
    """Nearest x2 upsampling, [upsampled, skip] concatenated, then two densely connected conv stages."""

    def __init__(self, skip_channels: int, in_channels: int, channels: int, *, dropout: float) -> None:
        super().__init__()
        self.conv11 = nn.Conv2d(skip_channels + in_channels, channels, kernel_size=1)
        self.conv12 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv21 = nn.Conv2d(skip_channels + in_channels + channels, channels, kernel_size=1)
        self.conv22 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.dropout1, self.dropout2 = _dropout(dropout), _dropout(dropout)
        self.relu = nn.LeakyReLU()

    def forward(self, skip: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat((F.interpolate(x, scale_factor=2, mode="nearest"), skip), dim=1)
        stage1 = self.relu(self.dropout1(self.conv12(self.conv11(x))))
        dense1 = torch.cat((x, stage1), dim=1)
        return self.relu(self.dropout2(self.conv22(self.conv21(dense1))))


class DenseNet2D(nn.Module):
    """RITnet's segmentation network; returns class scores (N, num_classes, H, W).

    Args:
        in_channels: image channels (1: RITnet works on grey images).
        num_classes: output classes (3 for the NIA class maps, 4 for OpenEDS).
        channels: the constant block width; 32 is the published network,
            smaller values make the `demo` network.
        dropout: dropout probability after each 3x3 convolution and before
            the output convolution (0.2 published; 0 removes the layers,
            which have no parameters, so state_dicts stay compatible).
        init: "reference" draws the weights as the reference does (conv
            weights N(0, 2 / (k * k * out_channels)), i.e. scaled by fan-out);
            "torch" keeps PyTorch's default (scaled by fan-in). The reference's
            1x1 convolutions reduce 64-96 channels to 32 at a fan-out scale, so
            each up block multiplies the activations' spread and the initial
            class scores have a standard deviation of ~430 at width 32 (~130
            at width 8; ~0.1 with "torch"): the softmax starts saturated and
            learning starts slowly. `official` keeps the reference's; the
            demo takes "torch" (docs/ritnet.md has the measurement).
    """

    def __init__(self, *, in_channels: int = 1, num_classes: int = 3, channels: int = 32,
                 dropout: float = 0.2, init: str = "reference") -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 2 or channels < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"DenseNet2D: in_channels >= 1, num_classes >= 2, channels >= 1 and 0 <= dropout < 1 "
                             f"expected, got {in_channels}, {num_classes}, {channels}, {dropout}")
        if init not in INIT_CHOICES:
            raise ValueError(f"DenseNet2D: init {init!r}, expected one of {INIT_CHOICES}")
        self.in_channels, self.num_classes, self.channels = in_channels, num_classes, channels
        self.down_block1 = DownBlock(in_channels, channels, pool=False, dropout=dropout)
        self.down_block2 = DownBlock(channels, channels, pool=True, dropout=dropout)
        self.down_block3 = DownBlock(channels, channels, pool=True, dropout=dropout)
        self.down_block4 = DownBlock(channels, channels, pool=True, dropout=dropout)
        self.down_block5 = DownBlock(channels, channels, pool=True, dropout=dropout)
        self.up_block1 = UpBlock(channels, channels, channels, dropout=dropout)
        self.up_block2 = UpBlock(channels, channels, channels, dropout=dropout)
        self.up_block3 = UpBlock(channels, channels, channels, dropout=dropout)
        self.up_block4 = UpBlock(channels, channels, channels, dropout=dropout)
        self.dropout1 = _dropout(dropout)
        self.out_conv1 = nn.Conv2d(channels, num_classes, kernel_size=1)
        if init == "reference":
            self._init_weights()

    def _init_weights(self) -> None:
        """The reference's initialisation: conv weights N(0, 2 / (k * k * out_channels)), zero biases, BN (1, 0)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x.shape[-2], x.shape[-1])
        x1 = self.down_block1(x)
        x2 = self.down_block2(x1)
        x3 = self.down_block3(x2)
        x4 = self.down_block4(x3)
        x5 = self.down_block5(x4)
        x = self.up_block1(x4, x5)
        x = self.up_block2(x3, x)
        x = self.up_block3(x2, x)
        x = self.up_block4(x1, x)
        return self.out_conv1(self.dropout1(x))


def check_input_size(height: int, width: int) -> None:
    """ValueError unless both sides are positive multiples of 16 (pooling and upsampling must meet again)."""
    if height < DOWNSAMPLING or width < DOWNSAMPLING or height % DOWNSAMPLING or width % DOWNSAMPLING:
        raise ValueError(f"DenseNet2D input {width}x{height} (W x H): both sides must be positive multiples of "
                         f"{DOWNSAMPLING} (e.g. the 160x96 per-eye crop)")


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
