"""Former-DFER (Zhao and Liu, ACM MM 2021, "Former-DFER: Dynamic Facial
Expression Recognition Transformer"), written from the published code
(github.com/zengqunzhao/Former-DFER, `models/ST_Former.py`, `S_Former.py`,
`T_Former.py`).

A clip of T frames (16) goes through:

* CS-Former (`s_former`), per frame: the ResNet-18 stem and stages 1-3, a
  pre-norm transformer encoder (1 layer, 8 heads of 32, MLP 512) over the
  7 x 7 = 49 tokens of the third stage (256 channels, learned positional
  embedding, no class token), the fourth stage, global average pooling -> 512;
* T-Former (`t_former`): a class token before the T frame features, a learned
  positional embedding, 3 pre-norm transformer layers (8 heads of 64, MLP 1024);
  the class token's output is the clip feature;
* `fc`: a linear classifier.

Parameter names are the reference's, so an original state_dict (once the
`module.` prefix of DataParallel is removed, see `dfer.checkpoint`) loads with
`load_state_dict` as it is. That fixes a few odd names: each transformer layer
is `layers.<i>.0` (attention) and `layers.<i>.1` (MLP), each a residual
wrapper `fn` around a pre-norm wrapper (`fn.norm`, `fn.fn`); the MLP's linear
layers are `net.0` and `net.3`; and the T-Former's encoder is also called
`spatial_transformer`. Modules are registered in the reference's order, so
`parameters()` comes in the same order and an original optimizer state
(indexed by position) lines up too.

Behaviour kept from the reference: tanh-approximated GELU, no dropout,
attention without a dropout, Kaiming-normal convolutions and unit/zero
BatchNorm in the CNN, standard-normal positional embeddings and class token,
PyTorch's default initialisation everywhere else. Differences, none of which
changes the published network: no einops (plain reshapes), the S-Former's
unused attention mask is left out, and the token count follows `input_size`
instead of slicing a fixed 49-token embedding (identical at 112 x 112).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from common.nn.init import init_resnet_weights
from common.nn.resnet import BasicBlock, conv1x1

if TYPE_CHECKING:
    from dfer.config import DFERConfig

PUBLISHED_WIDTH = 64       # ResNet-18 stem channels; the stages have 64, 128, 256, 512
PUBLISHED_CLASSES = 7      # DFEW's seven expressions
PARAMS_PUBLISHED = 18_031_943  # measured on the reference code (GenerateModel(), 7 classes)


def stage_output_size(input_size: int, stride2_layers: int) -> int:
    """Side of the feature map after `stride2_layers` stride-2 layers (conv 7/2 pad 3, max-pool 3/2 pad 1,
    conv 3/2 pad 1 all give floor((s - 1) / 2) + 1)."""
    size = input_size
    for _ in range(stride2_layers):
        size = (size - 1) // 2 + 1
    return size


class Residual(nn.Module):
    """x + fn(x); the wrapper exists for the reference's parameter names (`...fn.`)."""

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


class PreNorm(nn.Module):
    """fn(LayerNorm(x)) (`...fn.norm.`, `...fn.fn.`)."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class Attention(nn.Module):
    """Multi-head self-attention: one bias-free qkv projection, scaled dot product, output projection."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.dim_head = dim_head
        self.scale = dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, heads * dim_head * 3, bias=False)
        # The reference skips the output projection only for one head of size dim, never the case here.
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        q, k, v = (t.reshape(batch, tokens, self.heads, self.dim_head).transpose(1, 2)
                   for t in self.to_qkv(x).chunk(3, dim=-1))
        attn = (torch.matmul(q, k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(batch, tokens, self.heads * self.dim_head)
        return self.to_out(out)


class FeedForward(nn.Module):
    """Linear -> GELU (tanh form, as the reference writes it out) -> Linear; `net.0` and `net.3` hold the weights."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(approximate="tanh"), nn.Dropout(dropout),
                                 nn.Linear(hidden_dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Transformer(nn.Module):
    """`depth` pre-norm layers: x + Attention(LN(x)), then x + MLP(LN(x)). No final norm."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([Residual(PreNorm(dim, Attention(dim, heads, dim_head, dropout))),
                           Residual(PreNorm(dim, FeedForward(dim, mlp_dim, dropout)))])
            for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attention, mlp in self.layers:
            x = mlp(attention(x))
        return x


class SpatialFormer(nn.Module):
    """CS-Former: ResNet-18 with a transformer over the third stage's tokens; one 8*width feature per frame."""

    def __init__(self, *, width: int, input_size: int, depth: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(width, stride=1)
        self.layer2 = self._make_layer(width * 2, stride=2)
        self.layer3 = self._make_layer(width * 4, stride=2)
        self.layer4 = self._make_layer(width * 8, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        dim = width * 4
        num_tokens = stage_output_size(input_size, 4) ** 2   # 7 x 7 at 112
        self.pos_embedding = nn.Parameter(torch.randn(1, num_tokens, dim))
        self.spatial_transformer = Transformer(dim, depth, heads, dim // heads, dim * 2, dropout)
        self.num_features = width * 8
        init_resnet_weights(self)

    def _make_layer(self, planes: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes))
        first = BasicBlock(self.inplanes, planes, stride, downsample)
        self.inplanes = planes
        return nn.Sequential(first, BasicBlock(planes, planes))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 8 * width)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(frames))))
        x = self.layer3(self.layer2(self.layer1(x)))
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2) + self.pos_embedding
        x = self.spatial_transformer(tokens).transpose(1, 2).reshape(batch, channels, height, width)
        return torch.flatten(self.avgpool(self.layer4(x)), 1)


class TemporalFormer(nn.Module):
    """T-Former: class token + T frame features + positional embedding -> transformer -> the class token's output."""

    def __init__(self, *, dim: int, num_frames: int, depth: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, num_frames + 1, dim))
        # named "spatial_transformer" in the reference too (its T_Former.py reuses the name)
        self.spatial_transformer = Transformer(dim, depth, heads, dim // heads, dim * 2, dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, T, D) -> (N, D)."""
        cls = self.cls_token.expand(features.shape[0], -1, -1)
        x = torch.cat((cls, features), dim=1) + self.pos_embedding
        return self.spatial_transformer(x)[:, 0]


class FormerDFER(nn.Module):
    """Former-DFER: clip (N, T, 3, S, S) of floats in [0, 1] -> class scores (N, num_classes).

    Args:
        num_classes: output classes (5 NIA observer states; the published model has 7).
        base_width: ResNet stem channels; the stages have 1, 2, 4 and 8 times as many, the
            CS-Former works at 4x (and 8 heads of 4x/8), the T-Former at 8x. 64 is the
            published network; 8 or 16 make tiny test/demo models.
        num_frames: frames per clip (16 published: 8 segments x 2 frames).
        input_size: frame side in pixels (112 published).
        s_depth, t_depth: CS-Former and T-Former layers (1 and 3 published).
        heads: attention heads in both (8 published).
        dropout: in the MLPs and after attention (0 published).
    """

    def __init__(self, *, num_classes: int = 5, base_width: int = PUBLISHED_WIDTH, num_frames: int = 16,
                 input_size: int = 112, s_depth: int = 1, t_depth: int = 3, heads: int = 8,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if base_width < 1 or (base_width * 4) % heads:
            raise ValueError(f"base_width {base_width}: 4 * base_width must be a positive multiple of heads {heads}")
        if num_classes < 2 or num_frames < 1 or input_size < 16:
            raise ValueError(f"num_classes {num_classes} (>= 2), num_frames {num_frames} (>= 1), "
                             f"input_size {input_size} (>= 16) expected")
        self.num_frames = num_frames
        self.input_size = input_size
        self.s_former = SpatialFormer(width=base_width, input_size=input_size, depth=s_depth, heads=heads,
                                      dropout=dropout)
        self.t_former = TemporalFormer(dim=self.s_former.num_features, num_frames=num_frames, depth=t_depth,
                                       heads=heads, dropout=dropout)
        self.fc = nn.Linear(self.s_former.num_features, num_classes)

    def forward_features(self, clips: torch.Tensor) -> torch.Tensor:
        """(N, T, 3, S, S) -> clip features (N, 8 * base_width)."""
        expected = (self.num_frames, 3, self.input_size, self.input_size)
        if clips.dim() != 5 or tuple(clips.shape[1:]) != expected:
            raise ValueError(f"clips: shape {tuple(clips.shape)}, expected (N, {', '.join(map(str, expected))})")
        n = clips.shape[0]
        frames = self.s_former(clips.reshape(n * self.num_frames, *expected[1:]))
        return self.t_former(frames.reshape(n, self.num_frames, -1))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(clips))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(config: DFERConfig) -> FormerDFER:
    """The model a `DFERConfig` describes (randomly initialised)."""
    return FormerDFER(**config.model_kwargs())
