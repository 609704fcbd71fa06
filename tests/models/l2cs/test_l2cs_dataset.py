"""l2cs.dataset: reading the crop index, decoding, flipping, batch normalisation."""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from l2cs.config import IMAGENET_MEAN, IMAGENET_STD
from common.engine.batches import normalize_batch
from l2cs.dataset import EyeCrops, read_eye_crops
from tests.l2cs_fakes import make_fake_crops


@pytest.fixture()
def crops(tmp_path):
    return make_fake_crops(tmp_path / "crops", {"train": 6, "test": 4})


def test_reads_eye_crops_of_one_split_and_counts_set_asides(crops) -> None:
    index = pd.read_parquet(crops / "index.parquet")
    other = index.iloc[[0]].assign(crop="r_eye", crop_id="x_r_eye", split="test")
    index.loc[index["split"] == "test", "gaze_pitch_deg"] = [np.nan, 1.0, 2.0, 3.0]
    (crops / index.loc[index["split"] == "test", "jpg_path"].iloc[1]).unlink()
    pd.concat([index, other]).to_parquet(crops / "index.parquet")
    test = read_eye_crops(crops, "test")
    assert len(test.rows) == 2 and set(test.rows["crop"]) == {"eyes"}
    assert test.skipped == {"no_gaze_label": 1, "missing_image": 1}
    assert len(read_eye_crops(crops, "train").rows) == 6


def test_missing_index_and_empty_split_are_named(crops, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="expected a crop dataset directory with index.parquet"):
        read_eye_crops(tmp_path, "test")
    with pytest.raises(ValueError, match=r"no 'eyes' crops in split 'val'; splits present: \['test', 'train'\]"):
        read_eye_crops(crops, "val")


def test_grey_ir_crop_becomes_three_equal_channels_and_is_resized(tmp_path) -> None:
    grey = np.tile(np.arange(0, 200, 5, dtype=np.uint8), (20, 1))  # 20 x 40
    cv2.imwrite(str(tmp_path / "ir.png"), grey)
    dataset = EyeCrops(tmp_path, ["ir.png"], np.array([[1.0, 2.0]]), width=20, height=10)
    image, target, index, ok = dataset[0]
    assert ok and index == 0 and image.dtype == torch.uint8 and image.shape == (3, 10, 20)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    assert target.tolist() == [1.0, 2.0]


def test_unreadable_image_is_flagged_not_raised(tmp_path) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    image, _, _, ok = EyeCrops(tmp_path, ["bad.jpg"], np.zeros((1, 2)), width=8, height=4)[0]
    assert not ok and image.shape == (3, 4, 8) and int(image.sum()) == 0


def test_flip_mirrors_image_negates_yaw_keeps_pitch(crops) -> None:
    rows = read_eye_crops(crops, "train").rows
    plain = EyeCrops.from_rows(crops, rows, width=64, height=32)
    flipping = EyeCrops.from_rows(crops, rows, width=64, height=32, flip_prob=1.0)
    image, target, _, _ = plain[0]
    flipped, flipped_target, _, _ = flipping[0]
    assert torch.equal(flipped, image.flip(-1))
    assert flipped_target.tolist() == [target[0].item(), -target[1].item()]


def test_flips_depend_on_seed_epoch_index_only(crops) -> None:
    rows = read_eye_crops(crops, "train").rows
    a = EyeCrops.from_rows(crops, rows, width=64, height=32, flip_prob=0.5, seed=3)
    b = EyeCrops.from_rows(crops, rows, width=64, height=32, flip_prob=0.5, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert [a.flipped(i) for i in range(6)] == [b.flipped(i) for i in reversed(range(6))][::-1]
    draws = {tuple(a.flipped(i) for i in range(6)) for epoch in range(8) if a.set_epoch(epoch) is None}
    assert len(draws) > 1  # different epochs draw different flips


def test_normalize_batch_hand_values() -> None:
    images = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    images[0, 0] = 255
    batch = normalize_batch(images, torch.device("cpu"), IMAGENET_MEAN, IMAGENET_STD)
    assert batch.dtype == torch.float32 and batch.is_contiguous(memory_format=torch.channels_last)
    assert batch[0, 0, 0, 0].item() == pytest.approx((1 - 0.485) / 0.229, rel=1e-6)
    assert batch[0, 2, 1, 1].item() == pytest.approx(-0.406 / 0.225, rel=1e-6)
