"""dfer.model: the published parameter count and names, shapes and finiteness on tiny models."""
from __future__ import annotations

import pytest
import torch

from dfer.config import PRESETS, preset
from dfer.model import Attention, FormerDFER, build_model, count_parameters, stage_output_size

# Measured on the reference code (zengqunzhao/Former-DFER, models/ST_Former.GenerateModel()): 18,031,943 at
# 7 classes; the classifier is Linear(512, classes), so 5 classes have 2 x 513 fewer.
PUBLISHED_PARAMS_7 = 18_031_943
PUBLISHED_PARAMS_5 = 18_030_917


def test_published_parameter_count() -> None:
    assert count_parameters(FormerDFER(num_classes=7)) == PUBLISHED_PARAMS_7
    assert count_parameters(FormerDFER(num_classes=5)) == PUBLISHED_PARAMS_5
    assert count_parameters(build_model(PRESETS["official"])) == PUBLISHED_PARAMS_5


def test_reference_parameter_names_and_shapes() -> None:
    state = FormerDFER(num_classes=7).state_dict()
    # a sample of the reference's keys, as listed by GenerateModel().state_dict()
    expected = {
        "s_former.conv1.weight": (64, 3, 7, 7),
        "s_former.layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "s_former.layer4.1.bn2.running_var": (512,),
        "s_former.pos_embedding": (1, 49, 256),
        "s_former.spatial_transformer.layers.0.0.fn.norm.weight": (256,),
        "s_former.spatial_transformer.layers.0.0.fn.fn.to_qkv.weight": (768, 256),
        "s_former.spatial_transformer.layers.0.0.fn.fn.to_out.0.weight": (256, 256),
        "s_former.spatial_transformer.layers.0.1.fn.fn.net.0.weight": (512, 256),
        "s_former.spatial_transformer.layers.0.1.fn.fn.net.3.weight": (256, 512),
        "t_former.cls_token": (1, 1, 512),
        "t_former.pos_embedding": (1, 17, 512),
        "t_former.spatial_transformer.layers.2.0.fn.fn.to_qkv.weight": (1536, 512),
        "t_former.spatial_transformer.layers.2.1.fn.fn.net.0.weight": (1024, 512),
        "fc.weight": (7, 512),
        "fc.bias": (7,),
    }
    assert {k: tuple(state[k].shape) for k in expected} == expected
    assert len(state) == 169  # the reference's state_dict has 169 entries
    assert "s_former.fc.weight" not in state and "t_former.spatial_transformer.layers.3.0.fn.norm.weight" not in state


def test_parameter_order_matches_reference_registration() -> None:
    """An original optimizer state is indexed by parameter position: the first and last names must match."""
    names = [name for name, _ in FormerDFER(base_width=8).named_parameters()]
    assert names[:2] == ["s_former.pos_embedding", "s_former.conv1.weight"]
    assert names[-4:] == ["t_former.spatial_transformer.layers.2.1.fn.fn.net.3.weight",
                          "t_former.spatial_transformer.layers.2.1.fn.fn.net.3.bias", "fc.weight", "fc.bias"]


@pytest.mark.parametrize("input_size,tokens", [(112, 7), (64, 4), (32, 2)])
def test_token_grid(input_size: int, tokens: int) -> None:
    assert stage_output_size(input_size, 4) == tokens
    model = FormerDFER(base_width=8, input_size=input_size)
    assert model.s_former.pos_embedding.shape == (1, tokens * tokens, 32)


def test_tiny_forward_shapes_no_nan() -> None:
    torch.manual_seed(0)
    model = FormerDFER(num_classes=5, base_width=8, num_frames=4, input_size=32, t_depth=1).eval()
    clips = torch.rand(3, 4, 3, 32, 32)
    with torch.no_grad():
        scores = model(clips)
        features = model.forward_features(clips)
    assert scores.shape == (3, 5) and features.shape == (3, 64)
    assert torch.isfinite(scores).all()


def test_demo_model_trains_one_step() -> None:
    torch.manual_seed(0)
    model = build_model(preset("demo", frames=4, segments=2, input_size=32))
    clips, labels = torch.rand(2, 4, 3, 32, 32), torch.tensor([0, 4])
    loss = torch.nn.functional.cross_entropy(model(clips), labels)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.t_former.cls_token.grad.abs().sum() > 0 and model.s_former.pos_embedding.grad.abs().sum() > 0


def test_frames_are_independent_in_the_cs_former() -> None:
    """CS-Former works per frame: changing frame 2 of clip 0 leaves the other frames' features alone."""
    torch.manual_seed(0)
    model = FormerDFER(base_width=8, num_frames=4, input_size=32).eval()
    clips = torch.rand(2, 4, 3, 32, 32)
    changed = clips.clone()
    changed[0, 2] = torch.rand(3, 32, 32)
    with torch.no_grad():
        a = model.s_former(clips.reshape(8, 3, 32, 32)).reshape(2, 4, -1)
        b = model.s_former(changed.reshape(8, 3, 32, 32)).reshape(2, 4, -1)
        out_a, out_b = model(clips), model(changed)
    differs = (a - b).abs().amax(dim=-1) > 1e-6
    assert differs.tolist() == [[False, False, True, False], [False, False, False, False]]
    assert torch.allclose(out_a[1], out_b[1]) and not torch.allclose(out_a[0], out_b[0])


def test_wrong_input_shape_is_one_line_error() -> None:
    model = FormerDFER(base_width=8, num_frames=4, input_size=32)
    with pytest.raises(ValueError, match=r"clips: shape \(1, 3, 3, 32, 32\), expected \(N, 4, 3, 32, 32\)"):
        model(torch.rand(1, 3, 3, 32, 32))


def test_bad_widths_refused() -> None:
    with pytest.raises(ValueError, match="multiple of heads"):
        FormerDFER(base_width=3)


def test_attention_splits_heads_like_the_reference() -> None:
    """Head i owns channels [i*d, (i+1)*d) of q, k and v (einops 'b n (h d)'), which original weights rely on."""
    torch.manual_seed(0)
    attention = Attention(dim=12, heads=3, dim_head=4).eval()
    x = torch.randn(2, 5, 12)
    q, k, v = attention.to_qkv(x).chunk(3, dim=-1)
    heads = []
    for i in range(3):
        part = slice(4 * i, 4 * i + 4)
        weights = torch.softmax(q[..., part] @ k[..., part].transpose(1, 2) / 2.0, dim=-1)   # scale 4 ** -0.5
        heads.append(weights @ v[..., part])
    expected = attention.to_out(torch.cat(heads, dim=-1))
    with torch.no_grad():
        assert torch.allclose(attention(x), expected, atol=1e-6)
