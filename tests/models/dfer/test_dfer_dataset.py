"""dfer.dataset: exact frames in each item, shapes, seeded augmentation, regions, skips, batch layout."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from common.targets.clip_index import CLIP_INDEX_NAME
from dfer.config import preset
from dfer.dataset import StateClips, prepare_batch, read_state_clips
from dfer.sampling import eval_indices
from tests.dfer_fakes import STATE_COLOURS, FakeClip, clip_name, frame_numbers, write_clip_set

CONFIG = preset("demo", seed=5, input_size=112, random_crop=True)  # the published input and augmentation
CLIPS = [
    FakeClip(clip_name(1, 1, "F"), "test", "F", "001", n_frames=16),
    FakeClip(clip_name(1, 2, "N"), "test", "N", "001", n_frames=40),
    FakeClip(clip_name(2, 1, "S"), "test", "S", "002", n_frames=23),
    FakeClip(clip_name(2, 2, "A"), "test", "A", "002", reason="unreadable"),
    FakeClip(clip_name(2, 3, "D"), "test", "D", "002", reason="too_short"),
    FakeClip(clip_name(2, 4, "D"), "test", "D", "002", reason="no_state"),
    FakeClip(clip_name(3, 1, "D"), "train", "D", "003", n_frames=30),
]


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory) -> Path:
    return write_clip_set(tmp_path_factory.mktemp("dfer_clips"), CLIPS)


def test_a_frame_cache_gives_the_items_a_fresh_read_gives(clips_dir: Path) -> None:
    """The demo's cache (no random crop): every epoch's frames and flips equal reading the mp4 again."""
    rows = read_state_clips(clips_dir, "test").rows
    demo = preset("demo", seed=5)
    for train in (False, True):
        cached, fresh = StateClips(rows, demo, train=train, cache=True), StateClips(rows, demo, train=train)
        for epoch in (1, 2, 3):
            cached.set_epoch(epoch)
            fresh.set_epoch(epoch)
            for i in range(len(rows)):
                (a, _, _, ok_a), (b, _, _, ok_b) = cached[i], fresh[i]
                assert ok_a and ok_b and torch.equal(a, b), (train, epoch, i)
        assert cached.cache is not None and sorted(cached.cache) == list(range(len(rows)))
    assert StateClips(rows, CONFIG, train=True, cache=True).cache is None  # a random crop is never cached


def test_rows_and_every_skip_of_the_split(clips_dir: Path) -> None:
    rows = read_state_clips(clips_dir, "test")
    assert list(rows.rows["clip_id"]) == sorted(c.clip_id for c in CLIPS[:3])
    assert rows.skipped == {"unreadable_video": 1, "too_short_video": 1, "no_state_label": 1}
    assert rows.n_in_split == 6
    by_id = rows.rows.set_index("clip_id")
    assert by_id.loc[CLIPS[1].clip_id, "target"] == 4 and by_id.loc[CLIPS[2].clip_id, "target"] == 1  # N, S
    assert Path(by_id.loc[CLIPS[0].clip_id, "video_file"]).is_file()


def test_min_frames_and_missing_videos_are_counted(clips_dir: Path, tmp_path: Path) -> None:
    assert read_state_clips(clips_dir, "test", min_frames=24).skipped["too_short_video"] == 1 + 2  # 16 and 23 frames
    moved = tmp_path / "videos"
    moved.mkdir()
    for clip in CLIPS[:2]:  # the third mp4 is not moved; a move keeps the size and mtime nia clips recorded
        shutil.copy2(clips_dir.parent / "videos" / f"{clip.clip_id}.mp4", moved / f"{clip.clip_id}.mp4")
    rows = read_state_clips(clips_dir, "test", videos=moved)
    assert len(rows.rows) == 2 and rows.skipped["missing_video"] == 1 and rows.n_in_split == 6


def test_eval_items_hold_exactly_the_published_frames(clips_dir: Path) -> None:
    rows = read_state_clips(clips_dir, "test").rows
    dataset = StateClips(rows, CONFIG, train=False)
    for i, n_frames in enumerate(rows["n_frames"]):
        clip, target, index, ok = dataset[i]
        assert ok and index == i and clip.dtype == torch.uint8 and tuple(clip.shape) == (16, 3, 112, 112)
        assert int(target) == int(rows["target"][i]) and target.dtype == torch.int64
        assert frame_numbers(clip.numpy()) == list(eval_indices(int(n_frames)))
    assert list(eval_indices(40)) == [2, 3, 7, 8, 12, 13, 17, 18, 21, 22, 26, 27, 31, 32, 36, 37]


def test_training_items_are_a_function_of_seed_epoch_and_index(clips_dir: Path) -> None:
    rows = read_state_clips(clips_dir, "test").rows
    first, again = StateClips(rows, CONFIG, train=True), StateClips(rows, CONFIG, train=True)
    first.set_epoch(3)
    again.set_epoch(3)
    clip_a, clip_b = first[1][0], again[1][0]
    assert torch.equal(clip_a, clip_b)
    again.set_epoch(4)
    assert not torch.equal(clip_a, again[1][0])
    for epoch in range(1, 6):  # one random start inside each of the 8 segments of a 40-frame clip (39 starts)
        first.set_epoch(epoch)
        starts = first.frame_indices(1, first.rng(1))[::2]
        assert all(k * 39 // 8 <= s < (k + 1) * 39 // 8 for k, s in enumerate(starts)), starts


def test_the_item_sees_only_its_region(tmp_path: Path) -> None:
    clip = FakeClip(clip_name(9, 1, "D"), "test", "D", "009")
    clips_dir = write_clip_set(tmp_path, [clip], region=(40, 48, 120, 96))  # below the code blocks
    item = StateClips(read_state_clips(clips_dir, "test").rows, CONFIG, train=False)[0][0]
    rgb = np.array(STATE_COLOURS["D"][::-1], dtype=np.float64)
    assert np.abs(item.numpy().astype(np.float64).mean(axis=(0, 2, 3)) - rgb).max() < 4  # codec noise only


def test_a_video_that_no_longer_decodes_is_an_unreadable_item(tmp_path: Path) -> None:
    clip = FakeClip(clip_name(9, 2, "S"), "test", "S", "009")
    clips_dir = write_clip_set(tmp_path, [clip])
    rows = read_state_clips(clips_dir, "test").rows  # read before the change (read after it, it is refused)
    (tmp_path / "videos" / f"{clip.clip_id}.mp4").write_bytes(b"not a video any more")
    clip_tensor, target, index, ok = StateClips(rows, CONFIG, train=False)[0]
    assert not ok and int(target) == 1 and index == 0
    assert clip_tensor.shape == (16, 3, 112, 112) and int(clip_tensor.max()) == 0


def test_an_index_that_is_not_a_clip_index_names_the_file(tmp_path: Path) -> None:
    pd.DataFrame({"crop_id": ["a"]}).to_parquet(tmp_path / CLIP_INDEX_NAME)
    with pytest.raises(ValueError, match=f"{CLIP_INDEX_NAME}: parquet metadata lacks 'nia.root'"):
        read_state_clips(tmp_path, "test")


def test_prepare_batch_scales_once_and_lays_frames_out_channels_last() -> None:
    clips = torch.randint(0, 256, (2, 16, 3, 8, 8), dtype=torch.uint8)
    batch = prepare_batch(clips, torch.device("cpu"))
    assert batch.dtype == torch.float32 and batch.shape == clips.shape
    assert torch.equal(batch, clips.float() / 255.0)
    frames = batch.reshape(32, 3, 8, 8)
    assert frames.is_contiguous(memory_format=torch.channels_last)
    assert frames.data_ptr() == batch.data_ptr()  # a view, not a copy
