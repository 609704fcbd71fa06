"""ritnet.checkpoint and ritnet.config: original checkpoints, class mapping, OpenEDS framing, presets."""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ritnet.checkpoint import (frame_crop, load_model, openeds_framing, predict_original, to_nia_classes,
                               unframe_scores)
from ritnet.config import PRESETS, RITConfig, preset
from ritnet.model import DenseNet2D


def _original_state(num_classes: int = 4, channels: int = 32, prefix: str = "") -> OrderedDict:
    """Random weights in the reference's key names (ours are the same), BatchNorm statistics included."""
    torch.manual_seed(0)
    model = DenseNet2D(num_classes=num_classes, channels=channels)
    state = OrderedDict()
    for key, value in model.state_dict().items():
        state[prefix + key] = torch.randn_like(value.float()).to(value.dtype) if value.is_floating_point() else value
    return state


@pytest.mark.parametrize("legacy", [True, False])
def test_original_checkpoint_loads_strictly(tmp_path: Path, legacy: bool) -> None:
    state = _original_state()
    path = tmp_path / "best_model.pkl"
    # the shipped file predates torch's zip format
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    loaded = load_model(path)
    assert (loaded.model.num_classes, loaded.model.channels, loaded.config) == (4, 32, None)
    assert not loaded.model.training
    ours = loaded.model.state_dict()
    assert list(ours) == list(state) and all(torch.equal(ours[k], state[k]) for k in state)


def test_dataparallel_prefix_and_narrow_widths(tmp_path: Path) -> None:
    path = tmp_path / "w.pkl"
    torch.save(_original_state(num_classes=3, channels=8, prefix="module."), path)
    loaded = load_model(path)
    assert (loaded.model.num_classes, loaded.model.channels) == (3, 8)


def test_our_checkpoint_with_config(tmp_path: Path) -> None:
    config = preset("demo")
    path = tmp_path / "best.pt"
    torch.save({"format": "nia-rit/1", "model": _original_state(3, config.channels),
                "json": json.dumps({"config": config.to_dict(), "epoch": 3})}, path)
    loaded = load_model(path)
    assert loaded.config == config


def test_wrong_files_are_refused(tmp_path: Path) -> None:
    state = _original_state(channels=8)
    del state["out_conv1.weight"]
    torch.save(state, tmp_path / "a.pkl")
    with pytest.raises(ValueError, match="not a RITnet DenseNet2D state_dict"):
        load_model(tmp_path / "a.pkl")
    state = _original_state(channels=8)
    state["up_block2.conv12.weight"] = torch.zeros(8, 8, 1, 1)
    torch.save(state, tmp_path / "b.pkl")
    with pytest.raises(ValueError, match="b.pkl: weights do not fit DenseNet2D"):
        load_model(tmp_path / "b.pkl")
    torch.save([1, 2], tmp_path / "c.pkl")
    with pytest.raises(ValueError, match="expected a state_dict"):
        load_model(tmp_path / "c.pkl")


def test_class_mapping_is_exact() -> None:
    openeds = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], dtype=np.uint8)
    expected = [[0, 1, 2, 2], [2, 2, 1, 0]]
    assert to_nia_classes(openeds).tolist() == expected and to_nia_classes(openeds).dtype == np.uint8
    assert to_nia_classes(torch.from_numpy(openeds).long()).tolist() == expected
    with pytest.raises(ValueError, match="OpenEDS classes 0..3 expected"):
        to_nia_classes(np.array([4]))


def test_framing_geometry() -> None:
    # margin 0.25: the eyelid box is 160 / 1.5 wide; scaled to 400 -> x3.75: 600 x 360, centred
    framing = openeds_framing(160, 96, margin=0.25)
    assert (framing.resized_width, framing.resized_height, framing.left, framing.top) == (600, 360, -100, 140)
    framing = openeds_framing(160, 96, margin=0.3)  # x4: 640 x 384
    assert (framing.resized_width, framing.resized_height, framing.left, framing.top) == (640, 384, -120, 128)
    crop = np.tile(np.arange(160, dtype=np.uint8), (96, 1))
    crop[0] = 200
    frame = frame_crop(crop, framing, interpolation=cv2.INTER_NEAREST)
    assert frame.shape == (640, 400)
    assert np.array_equal(frame[128:512], np.repeat(np.repeat(crop, 4, 0), 4, 1)[:, 120:520])
    assert (frame[:128] == 200).all() and np.array_equal(frame[512:], np.repeat(frame[511:512], 128, 0))
    with pytest.raises(ValueError, match="does not match the framing's 160x96"):
        frame_crop(crop[:, :100], framing)


def test_unframing_inverts_framing_exactly() -> None:
    framing = openeds_framing(160, 96, margin=0.3)
    class_map = np.zeros((96, 160), dtype=np.uint8)
    cv2.ellipse(class_map, (80, 48), (50, 25), 0, 0, 360, 1, -1)
    cv2.circle(class_map, (85, 45), 15, 2, -1)
    class_map[40:50, 80:90] = 3
    framed = frame_crop(class_map, framing, interpolation=cv2.INTER_NEAREST)
    scores = torch.nn.functional.one_hot(torch.from_numpy(framed).long(), 4).permute(2, 0, 1)[None].float() * 50
    back = unframe_scores(scores, framing)
    assert back.shape == (1, 4, 96, 160)
    recovered = back.argmax(dim=1)[0].numpy()
    # crop columns 30..129 are inside the frame (120 / 4 .. 520 / 4); the rest is background
    assert np.array_equal(recovered[:, 30:130], class_map[:, 30:130])
    assert not recovered[:, :30].any() and not recovered[:, 130:].any()


def test_predict_original_runs_at_the_frame_and_maps_classes() -> None:
    model = DenseNet2D(num_classes=4, channels=4).eval()
    with torch.no_grad():
        model.out_conv1.weight.zero_()
        model.out_conv1.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 5.0]))  # "pupil" everywhere in the frame
    crops = [np.full((96, 160), 90, dtype=np.uint8), np.full((96, 160, 3), 40, dtype=np.uint8)[:, :, 0]]
    pred = predict_original(model, crops, openeds_framing(160, 96, margin=0.3))
    assert pred.shape == (2, 96, 160) and pred.dtype == np.uint8
    assert (pred[:, :, 30:130] == 2).all() and not pred[:, :, :30].any() and not pred[:, :, 130:].any()
    with pytest.raises(ValueError, match="4-class OpenEDS model expected"):
        predict_original(DenseNet2D(num_classes=3, channels=4), crops, openeds_framing(160, 96))


def test_config_round_trip_presets_and_validation() -> None:
    official = PRESETS["official"]
    assert (official.channels, official.dropout, official.input_width, official.input_height, official.num_classes,
            official.lr, official.batch_size, official.epochs) == (32, 0.2, 160, 96, 3, 1e-3, 16, 100)
    assert (official.plateau_factor, official.plateau_patience) == (0.1, 5)
    for config in PRESETS.values():
        assert RITConfig.from_dict(config.to_dict()) == config.validated()
    assert preset("official", epochs=3, seed=None).epochs == 3
    with pytest.raises(ValueError, match=r"unknown keys \['width'\]"):
        RITConfig.from_dict({"width": 3})
    with pytest.raises(ValueError, match="config.input_width: 150, expected a positive multiple of 16"):
        preset("official", input_width=150)
    with pytest.raises(ValueError, match="config.dropout"):
        preset("demo", dropout=1.5)
    with pytest.raises(ValueError, match="preset 'fast'"):
        preset("fast")


def test_our_safetensors_checkpoint_and_a_config_that_does_not_fit(tmp_path: Path) -> None:
    from common.engine.checkpoint import save_checkpoint
    from ritnet.checkpoint import FORMAT

    config = preset("demo", channels=4)
    state = _original_state(3, 4)
    save_checkpoint(tmp_path / "best.pt", {"model": state, "config": config.to_dict(), "epoch": 2, "init": "x"}, FORMAT)
    loaded = load_model(tmp_path / "best.pt")
    assert (loaded.model.channels, loaded.facts["epoch"]) == (4, 2) and loaded.config == config
    save_checkpoint(tmp_path / "bad.pt", {"model": state, "config": preset("demo", channels=8).to_dict()}, FORMAT)
    with pytest.raises(ValueError, match="bad.pt: weights of width 4 and 3 classes, but its config says 8 and 3"):
        load_model(tmp_path / "bad.pt")
    save_checkpoint(tmp_path / "l2cs.pt", {"model": state, "config": {}}, "nia-l2cs/2")
    with pytest.raises(ValueError, match="format 'nia-l2cs/2', expected nia-rit/1"):
        load_model(tmp_path / "l2cs.pt")
