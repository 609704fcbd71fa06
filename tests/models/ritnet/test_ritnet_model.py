"""ritnet.model: the published DenseNet2D's size, layout and key names, shapes on tiny inputs."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ritnet.model import DenseNet2D, UpBlock, count_parameters

# Per-layer parameter counts of the reference's torchsummary table (its README), width 32, 4 classes.
REFERENCE_LAYERS = {
    "down_block1.conv1": 320, "down_block1.conv21": 1_088, "down_block1.conv22": 9_248,
    "down_block1.conv31": 2_112, "down_block1.conv32": 9_248, "down_block1.bn": 64,
    "down_block2.conv1": 9_248, "down_block2.conv21": 2_080, "down_block2.conv31": 3_104,
    "down_block5.conv32": 9_248, "down_block5.bn": 64,
    "up_block1.conv11": 2_080, "up_block1.conv12": 9_248, "up_block1.conv21": 3_104, "up_block1.conv22": 9_248,
    "up_block4.conv21": 3_104, "out_conv1": 132,
}


def test_parameter_counts_match_the_reference() -> None:
    assert count_parameters(DenseNet2D(num_classes=4)) == 248_900
    assert count_parameters(DenseNet2D(num_classes=3)) == 248_867
    assert count_parameters(DenseNet2D(num_classes=3, dropout=0.0)) == 248_867  # dropout has no parameters


def test_per_layer_counts_and_reference_key_names() -> None:
    model = DenseNet2D(num_classes=4)
    modules = dict(model.named_modules())
    for name, expected in REFERENCE_LAYERS.items():
        assert sum(p.numel() for p in modules[name].parameters()) == expected, name
    state = model.state_dict()
    assert len(state) == 109  # the shipped best_model.pkl's entry count
    for key in ("down_block1.bn.running_mean", "down_block3.bn.num_batches_tracked", "up_block4.conv22.bias",
                "out_conv1.weight"):
        assert key in state
    # BatchNorm only at the end of the five down blocks, as in the reference
    assert [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)] == \
        [f"down_block{i}.bn" for i in range(1, 6)]


def test_forward_shapes_no_nan_tiny() -> None:
    torch.manual_seed(0)
    model = DenseNet2D(num_classes=3, channels=4).eval()
    out = model(torch.randn(2, 1, 16, 48))
    assert out.shape == (2, 3, 16, 48)
    assert torch.isfinite(out).all()
    out = DenseNet2D(in_channels=3, num_classes=5, channels=4).eval()(torch.randn(1, 3, 32, 16))
    assert out.shape == (1, 5, 32, 16)


@pytest.mark.parametrize("height,width", [(96, 150), (20, 160), (8, 16)])
def test_input_sizes_must_be_multiples_of_16(height: int, width: int) -> None:
    with pytest.raises(ValueError, match=rf"input {width}x{height} \(W x H\).*multiples of 16"):
        DenseNet2D(channels=4)(torch.zeros(1, 1, height, width))


def test_dropout_only_in_training_mode() -> None:
    torch.manual_seed(0)
    model = DenseNet2D(channels=4, dropout=0.2)
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 5 * 3 + 4 * 2 + 1
    assert not any(isinstance(m, nn.Dropout) for m in DenseNet2D(channels=4, dropout=0.0).modules())
    x = torch.randn(1, 1, 16, 16)
    model.eval()
    assert torch.equal(model(x), model(x))


def test_up_block_puts_the_upsampled_input_before_the_skip() -> None:
    """[upsampled, skip] order (the reference's torch.cat((x, prev_feature_map))): weights trained
    on that order only work if it is kept."""
    block = UpBlock(skip_channels=1, in_channels=1, channels=1, dropout=0.0)
    with torch.no_grad():
        for conv in (block.conv11, block.conv12, block.conv21, block.conv22):
            conv.weight.zero_()
            conv.bias.zero_()
        block.conv11.weight[0, 0] = 1.0          # channel 0 of [upsampled, skip]
        block.conv12.weight[0, 0, 1, 1] = 1.0    # identity 3x3
        block.conv21.weight[0, 2] = 1.0          # the first stage's output
        block.conv22.weight[0, 0, 1, 1] = 1.0
    small = torch.tensor([[[[5.0]]]])
    out = block(torch.zeros(1, 1, 2, 2), small)
    assert torch.equal(out, torch.full((1, 1, 2, 2), 5.0))


def test_reference_initialisation_and_its_saturated_start() -> None:
    torch.manual_seed(0)
    model = DenseNet2D(channels=8)
    # N(0, 2 / (k * k * out_channels)): 3x3 conv to 8 channels -> std sqrt(2 / 72)
    assert model.down_block2.conv22.weight.std().item() == pytest.approx((2 / 72) ** 0.5, rel=0.1)
    assert not model.up_block3.conv21.bias.any()
    x = torch.randn(2, 1, 96, 160) * 0.5
    assert model(x).std().item() > 50                                   # softmax saturated at the start
    assert DenseNet2D(channels=8, init="torch")(x).std().item() < 1     # PyTorch's fan-in default


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="init 'xavier', expected one of"):
        DenseNet2D(init="xavier")
    with pytest.raises(ValueError, match="0 <= dropout < 1"):
        DenseNet2D(dropout=1.0)
    with pytest.raises(ValueError, match="num_classes >= 2"):
        DenseNet2D(num_classes=1)
