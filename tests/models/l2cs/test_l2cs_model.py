"""l2cs.model and l2cs.checkpoint: shapes, torchvision layout, original and ImageNet weights."""
from __future__ import annotations

import zipfile
from collections import OrderedDict

import pytest
import torch
import torchvision

from common.engine.checkpoint import is_safetensors, save_checkpoint
from l2cs.checkpoint import FORMAT, load_imagenet_backbone, load_model, read_checkpoint
from l2cs.config import preset
from l2cs.model import L2CS, build_model, fold_batchnorm


@pytest.fixture(scope="module")
def resnet50() -> L2CS:
    torch.manual_seed(0)
    return L2CS(arch="resnet50", num_bins=90).eval()


@pytest.mark.parametrize("arch,base_width", [("resnet18", 8), ("resnet34", 8), ("resnet50", 8)])
def test_forward_shapes_no_nan(arch: str, base_width: int) -> None:
    model = L2CS(arch=arch, num_bins=28, base_width=base_width).eval()
    pitch, yaw = model(torch.randn(2, 3, 32, 64))
    assert pitch.shape == yaw.shape == (2, 28)
    assert torch.isfinite(pitch).all() and torch.isfinite(yaw).all()


def test_resnet50_has_torchvision_layout(resnet50: L2CS) -> None:
    ours = resnet50.state_dict()
    theirs = torchvision.models.resnet50().state_dict()
    backbone = {k: v.shape for k, v in ours.items() if not k.startswith(("fc_pitch", "fc_yaw"))}
    assert backbone == {k: v.shape for k, v in theirs.items() if not k.startswith("fc.")}
    assert resnet50.fc_pitch.weight.shape == resnet50.fc_yaw.weight.shape == (90, 2048)


def test_imagenet_weights_load_from_local_file(tmp_path, resnet50: L2CS) -> None:
    imagenet = torchvision.models.resnet50()
    path = tmp_path / "resnet50-imagenet.pth"
    torch.save(imagenet.state_dict(), path)
    model = L2CS(arch="resnet50", num_bins=90)
    info = load_imagenet_backbone(model, path)
    assert info["init"] == "imagenet"
    assert torch.equal(model.layer3[2].conv2.weight, imagenet.layer3[2].conv2.weight)
    assert torch.equal(model.bn1.running_var, imagenet.bn1.running_var)
    with pytest.raises(ValueError, match="ImageNet weights do not fit L2CS"):
        load_imagenet_backbone(L2CS(arch="resnet18", num_bins=90), path)


def _original_state(model: L2CS, prefix: str = "") -> OrderedDict:
    """A state_dict in the original repository's key names (heads, unused fc_finetune)."""
    state = OrderedDict()
    for key, value in model.state_dict().items():
        key = key.replace("fc_yaw.", "fc_yaw_gaze.").replace("fc_pitch.", "fc_pitch_gaze.")
        state[prefix + key] = value.clone()
    state[prefix + "fc_finetune.weight"] = torch.zeros(3, model.num_features + 3)
    state[prefix + "fc_finetune.bias"] = torch.zeros(3)
    return state


@pytest.mark.parametrize("prefix", ["", "module."])
def test_original_checkpoint_keys_load(tmp_path, resnet50: L2CS, prefix: str) -> None:
    path = tmp_path / "L2CSNet_gaze360.pkl"
    original = _original_state(resnet50, prefix)
    torch.save(original, path)
    loaded = load_model(path)
    model, config, info = loaded.model, loaded.config, loaded.facts
    assert (config.arch, config.bin_count, config.bin_width, config.bin_start) == ("resnet50", 90, 4.0, -180.0)
    assert config.bin_anchor == "edge" and info["weights_format"] == "original-l2cs"
    # the reference's fc_yaw_gaze feeds its horizontal angle: it is our yaw head
    assert torch.equal(model.fc_yaw.weight, original[prefix + "fc_yaw_gaze.weight"])
    assert torch.equal(model.fc_pitch.bias, original[prefix + "fc_pitch_gaze.bias"])
    assert not any("finetune" in k for k in model.state_dict())


def test_original_mpiigaze_checkpoint_gets_mpiigaze_bins(tmp_path) -> None:
    path = tmp_path / "fold0.pkl"
    torch.save(_original_state(L2CS(arch="resnet18", num_bins=28)), path)
    config = load_model(path).config
    assert (config.arch, config.bin_count, config.bin_width, config.bin_start) == ("resnet18", 28, 3.0, -42.0)


def test_our_checkpoint_round_trip(tmp_path) -> None:
    config = preset("demo", base_width=8)
    model = build_model(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    model(torch.randn(2, 3, 32, 64))[0].sum().backward()
    optimizer.step()
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"model": model.state_dict(), "config": config.to_dict(), "epoch": 7,
                           "optimizer": optimizer.state_dict(), "val_mae_deg": 3.25}, FORMAT)
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temp file left
    assert is_safetensors(path) and not zipfile.is_zipfile(path)  # tensors + JSON, nothing to unpickle
    loaded = load_model(path)
    assert loaded.config == config and loaded.facts["epoch"] == 7 and loaded.facts["bin_anchor"] == "centre"
    assert torch.equal(loaded.model.layer1[0].conv1.weight, model.layer1[0].conv1.weight)
    state = read_checkpoint(path)
    assert state["val_mae_deg"] == 3.25
    assert state["optimizer"]["param_groups"][0]["lr"] == config.lr
    optimizer.load_state_dict(state["optimizer"])  # accepted as is


def test_unknown_weights_file_is_named(tmp_path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="other.pt: neither a nia-l2cs/2 checkpoint"):
        load_model(path)


def test_fold_batchnorm_keeps_outputs() -> None:
    model = L2CS(arch="resnet50", num_bins=90, base_width=8).eval()
    for module in model.modules():  # non-trivial statistics so folding matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 64, 128)
    before = model(x)
    fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    after = model(x)
    for b, a in zip(before, after):  # logits of order 100: float32 rounding differs after folding
        assert torch.allclose(b, a, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(L2CS(arch="resnet18", num_bins=90, base_width=8).train())


def test_our_checkpoint_opens_without_any_unpickler(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10, item 8: our weights are tensors + JSON; reading them must not reach pickle or torch.load at all."""
    import pickle

    config = preset("demo", base_width=8)
    model = build_model(config)
    save_checkpoint(tmp_path / "w.pt", {"model": model.state_dict(), "config": config.to_dict(), "epoch": 1}, FORMAT)

    def refuse(*_args, **_kwargs):
        raise AssertionError("an unpickler was used to read our checkpoint")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    loaded = load_model(tmp_path / "w.pt")
    assert loaded.config == config and loaded.facts["weights_format"] == FORMAT
    assert torch.equal(loaded.model.fc_pitch.weight, model.fc_pitch.weight)
