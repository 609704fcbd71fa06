"""ritnet.dataset and common.targets.crop_rows: row selection with counted set-asides, items, augmentation."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from common.targets.crop_rows import read_crop_rows
from ritnet.dataset import (Augmentation, EyeSegCrops, draw_augmentation, prepare_pair, read_seg_crops,
                            shift_image)
from ritnet.preprocess import preprocess
from ritnet.targets import segmentation_targets

W, H = 32, 16


def _class_map(shift: int = 0) -> np.ndarray:
    class_map = np.zeros((H, W), dtype=np.uint8)
    cv2.ellipse(class_map, (16 + shift, 8), (12, 5), 0, 0, 360, 1, -1)
    cv2.circle(class_map, (16 + shift, 8), 3, 2, -1)
    return class_map


def _image(class_map: np.ndarray, colour: bool) -> np.ndarray:
    grey = (60 + 60 * class_map + np.arange(W)[None, :]).astype(np.uint8)
    return cv2.merge([grey, grey // 2, grey]) if colour else grey


@pytest.fixture()
def crop_dir(tmp_path: Path) -> Path:
    """Six r_eye/l_eye rows in test (one without JPG, one without PNG, one corrupt JPG, one IR), two in train,
    plus two-eye rows that must be ignored."""
    rows = []
    for i, (split, crop) in enumerate([("test", "r_eye"), ("test", "l_eye"), ("test", "r_eye"), ("test", "l_eye"),
                                       ("test", "r_eye"), ("test", "l_eye"), ("train", "r_eye"), ("train", "l_eye"),
                                       ("test", "eyes")]):
        sid = f"s{i}"
        folder = tmp_path / split / crop
        folder.mkdir(parents=True, exist_ok=True)
        jpg, png = f"{split}/{crop}/{sid}.jpg", f"{split}/{crop}/{sid}.png"
        class_map = _class_map(shift=i % 3)
        if i != 1:
            cv2.imwrite(str(tmp_path / jpg), _image(class_map, colour=i != 3))
        if i != 2:
            cv2.imwrite(str(tmp_path / png), class_map)
        if i == 4:
            (tmp_path / jpg).write_bytes(b"not a jpeg")
        rows.append({"crop_id": f"{sid}_{crop}", "sample_id": sid, "crop": crop, "split": split, "jpg_path": jpg,
                     "png_path": png, "subject": f"{i % 2:03d}", "inst": "S"})
    pd.DataFrame(rows).to_parquet(tmp_path / "index.parquet")
    return tmp_path


def test_read_seg_crops_counts_what_it_sets_aside(crop_dir: Path) -> None:
    selected = read_seg_crops(crop_dir, "test")
    assert selected.skipped == {"missing_image": 1, "missing_class_map": 1}
    assert selected.rows["sample_id"].tolist() == ["s0", "s3", "s4", "s5"]
    assert set(read_seg_crops(crop_dir, None).rows["split"]) == {"test", "train"}
    with pytest.raises(ValueError, match=r"no 'r_eye'/'l_eye' crops in split 'val'; splits present: \['test', 'train'\]"):
        read_seg_crops(crop_dir, "val")
    with pytest.raises(FileNotFoundError, match="index.parquet"):
        read_seg_crops(crop_dir / "test", "test")


def test_read_crop_rows_counts_each_row_once_under_its_first_reason(crop_dir: Path) -> None:
    frame = pd.read_parquet(crop_dir / "index.parquet")
    frame.loc[frame["sample_id"].isin(["s0", "s1"]), "inst"] = None  # s1 also lacks its JPG
    frame.to_parquet(crop_dir / "index.parquet")
    selected = read_crop_rows(crop_dir, crops=("r_eye", "l_eye"), split="test", columns=("jpg_path", "inst"),
                              labels={"no_inst": ("inst",)}, files={"missing_image": "jpg_path"})
    assert selected.skipped == {"no_inst": 2}
    assert selected.rows["sample_id"].tolist() == ["s2", "s3", "s4", "s5"]
    with pytest.raises(ValueError, match=r"missing columns \['gaze'\]"):
        read_crop_rows(crop_dir, crops=("eyes",), split="test", columns=("gaze",), labels={}, files={})


def test_item_is_the_preprocessed_crop_and_its_targets(crop_dir: Path) -> None:
    rows = read_seg_crops(crop_dir, "test").rows
    data = EyeSegCrops.from_rows(crop_dir, rows, width=W, height=H, train=False, seed=0)
    assert len(data) == 4
    for i in (0, 1):  # a colour crop and a grey (IR) one
        image, (class_map, weights, distances), index, ok = data[i]
        assert ok and index == i
        assert image.shape == (1, H, W) and image.dtype == torch.float32
        decoded = cv2.imread(str(crop_dir / rows["jpg_path"][i]), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(image[0].numpy(), preprocess(decoded))
        truth = cv2.imread(str(crop_dir / rows["png_path"][i]), cv2.IMREAD_UNCHANGED)
        assert class_map.dtype == torch.int64 and np.array_equal(class_map.numpy(), truth)
        expected_weights, expected_distances = segmentation_targets(truth, 3)
        assert weights.dtype == torch.float32 and np.array_equal(weights.numpy(), expected_weights)
        assert distances.shape == (3, H, W) and np.array_equal(distances.numpy(), expected_distances)


def test_unreadable_image_gives_zeros_and_not_ok(crop_dir: Path) -> None:
    rows = read_seg_crops(crop_dir, "test").rows
    data = EyeSegCrops.from_rows(crop_dir, rows, width=W, height=H, train=False, seed=0)
    image, (class_map, weights, distances), index, ok = data[2]  # s4, the corrupt JPG
    assert not ok and index == 2
    assert not image.any() and not class_map.any() and not weights.any() and distances.shape == (3, H, W)
    batch = torch.utils.data.default_collate([data[0], data[2]])
    assert batch[0].shape == (2, 1, H, W) and batch[1][2].shape == (2, 3, H, W) and batch[3].tolist() == [True, False]


def test_resized_to_the_requested_size_and_bad_maps_refused(crop_dir: Path) -> None:
    rows = read_seg_crops(crop_dir, "test").rows
    image, (class_map, _, _), _, ok = EyeSegCrops.from_rows(crop_dir, rows, width=16, height=16, train=False,
                                                            seed=0)[0]
    assert ok and image.shape == (1, 16, 16) and set(class_map.unique().tolist()) <= {0, 1, 2}
    cv2.imwrite(str(crop_dir / rows["png_path"][0]), np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match=r"s0.png: class map must be a single-channel 8-bit PNG"):
        EyeSegCrops.from_rows(crop_dir, rows, width=W, height=H, train=False, seed=0)[0]


def test_augmentation_is_a_function_of_seed_epoch_and_index(crop_dir: Path) -> None:
    rows = read_seg_crops(crop_dir, None).rows
    data = EyeSegCrops.from_rows(crop_dir, rows, width=W, height=H, train=True, seed=3)
    again = EyeSegCrops.from_rows(crop_dir, rows, width=W, height=H, train=True, seed=3)
    data.set_epoch(2)
    again.set_epoch(2)
    for i in range(len(data)):
        assert data.augmentation(i) == again.augmentation(i)
        assert torch.equal(data[i][0], again[i][0])
    data.set_epoch(1)
    first = [data.augmentation(i) for i in range(50)]
    data.set_epoch(2)
    assert first != [data.augmentation(i) for i in range(50)]
    assert EyeSegCrops.from_rows(crop_dir, rows, width=W, height=H, train=False, seed=3).augmentation(0) is None


def test_augmentation_draws_follow_the_reference_rates_and_ranges() -> None:
    draws = [draw_augmentation(np.random.default_rng([0, 0, i]), 160, 96) for i in range(4000)]
    assert np.mean([d.flip for d in draws]) == pytest.approx(0.5, abs=0.03)
    assert np.mean([d.blur_sigma > 0 for d in draws]) == pytest.approx(0.2, abs=0.03)
    assert np.mean([d.shift != (0, 0) for d in draws]) == pytest.approx(0.4, abs=0.03)
    dx = [abs(d.shift[0]) for d in draws]
    dy = [abs(d.shift[1]) for d in draws]
    assert max(dx) == 15 and max(dy) == 6   # 38 px of 400 wide / 640 high, at 160 x 96
    assert all(d.shift[0] == 0 or d.shift[1] == 0 for d in draws)
    sigmas = {round(d.blur_sigma, 6) for d in draws if d.blur_sigma}
    assert sigmas == {round(s * 160 / 400, 6) for s in range(2, 7)}


def test_flip_and_shift_move_image_and_map_together() -> None:
    class_map = _class_map()
    grey = _image(class_map, colour=False)
    plain_image, plain_map = prepare_pair(grey, class_map, None)
    flipped_image, flipped_map = prepare_pair(grey, class_map, Augmentation(flip=True))
    assert np.array_equal(flipped_image, plain_image[:, ::-1]) and np.array_equal(flipped_map, class_map[:, ::-1])
    _, shifted_map = prepare_pair(grey, class_map, Augmentation(shift=(3, -2)))
    assert np.array_equal(shifted_map[:-2, 3:], class_map[2:, :-3])
    assert not shifted_map[:, :3].any() and not shifted_map[-2:].any()
    assert shift_image(np.ones((2, 2), np.uint8), 5, 0).sum() == 0
