"""dfer.config: published defaults, the step schedule, round trip and validation."""
from __future__ import annotations

import pytest

from common.delivery.filenames import STATES as FILENAME_STATES
from dfer.config import PRESETS, STATES, DFERConfig, lr_at, preset


def test_official_is_the_published_recipe() -> None:
    c = PRESETS["official"]
    assert STATES == ("F", "S", "D", "A", "N") and STATES is FILENAME_STATES
    assert (c.num_classes, c.frames, c.segments, c.frames_per_segment, c.input_size) == (5, 16, 8, 2, 112)
    assert (c.optimizer, c.lr, c.momentum, c.weight_decay, c.batch_size, c.epochs) == ("sgd", 0.01, 0.9, 1e-4, 8, 100)
    assert (c.lr_step, c.lr_gamma, c.base_width, c.s_depth, c.t_depth, c.heads) == (40, 0.1, 64, 1, 3, 8)
    assert c.dropout == 0.0
    assert c.pad_short is False and c.patience >= c.lr_step


def test_step_schedule_like_steplr_40_01() -> None:
    c = PRESETS["official"]
    rates = {epoch: lr_at(c, epoch) for epoch in (1, 40, 41, 80, 81, 100)}
    assert rates[1] == rates[40] == 0.01
    assert rates[41] == pytest.approx(1e-3) and rates[80] == pytest.approx(1e-3)
    assert rates[81] == pytest.approx(1e-4) and rates[100] == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="epochs count from 1"):
        lr_at(c, 0)


def test_shares_the_engine_fields() -> None:
    from common.engine.train import TrainConfig

    c = PRESETS["official"]
    assert isinstance(c, TrainConfig) and (c.lr, c.batch_size, c.epochs, c.patience) == (0.01, 8, 100, 40)
    assert (c.amp, c.seed, c.workers, c.bn_mode, c.crop_scale) == (True, 0, 2, "train", 0.08)


def test_round_trip_and_unknown_keys() -> None:
    c = preset("demo", seed=3)
    assert DFERConfig.from_dict(c.to_dict()) == c and c.seed == 3
    with pytest.raises(ValueError, match=r"config: unknown keys \['colour'\]"):
        DFERConfig.from_dict({**c.to_dict(), "colour": 1})
    with pytest.raises(ValueError, match="preset 'fast'"):
        preset("fast")


@pytest.mark.parametrize("changes,field", [
    ({"frames": 15}, "config.frames: 15, expected segments x frames_per_segment = 16"),
    ({"base_width": 5}, "config.base_width: 5"),
    ({"optimizer": "adam"}, "config.optimizer: 'adam'"),
    ({"lr_gamma": 0.0}, "config.lr_gamma"),
    ({"momentum": 1.0}, "config.momentum"),
    ({"num_classes": 1}, "config.num_classes"),
    ({"patience": 0}, "config.patience: 0, expected >= 1"),
    ({"bn_mode": "off"}, "config.bn_mode: 'off'"),
    ({"crop_scale": 0.0}, "config.crop_scale: 0.0"),
])
def test_validation_names_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}".replace("(", r"\(").replace("[", r"\[")):
        preset("official", **changes)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_early_stopping_cannot_end_a_run_before_its_next_step(name: str) -> None:
    config = PRESETS[name]
    assert config.patience >= min(config.lr_step, config.epochs)


def test_demo_is_tiny_and_valid() -> None:
    demo = PRESETS["demo"].validated()
    assert demo.base_width < 16 and demo.frames == 16 and demo.input_size == 64  # docs/dfer.md, "Demo recipe"
    assert demo.model_kwargs()["base_width"] == demo.base_width
    # its frame cache only lives where no random crop is drawn and no worker process holds the dataset
    assert demo.cache_frames and not demo.random_crop and demo.workers == 0


def test_the_official_preset_is_the_published_recipe() -> None:
    official = PRESETS["official"]
    assert (official.base_width, official.t_depth, official.input_size, official.frames) == (64, 3, 112, 16)
    assert official.random_crop and official.crop_scale == 0.08 and not official.cache_frames
