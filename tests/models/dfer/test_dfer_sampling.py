"""dfer.sampling: the published 8 x 2 frame indices for long, exact-16 and short clips."""
from __future__ import annotations

import numpy as np
import pytest

from dfer.sampling import ShortClipError, eval_indices, sample_indices, train_indices


def reference_test_starts(num_frames: int) -> list[int]:
    """dataset_DFEW._get_test_indices as published (8 segments, duration 2), for clips of >= 16 frames."""
    tick = (num_frames - 2 + 1) / 8.0
    return [int(tick / 2.0 + tick * x) for x in range(8)]


def test_eval_indices_by_hand() -> None:
    # 16 frames: tick 15/8 = 1.875, starts int(0.9375 + 1.875 k) = 0, 2, ..., 14: every frame once
    assert eval_indices(16).tolist() == list(range(16))
    # 100 frames: tick 99/8 = 12.375, starts int(6.1875 + 12.375 k)
    assert eval_indices(100).tolist() == [6, 7, 18, 19, 30, 31, 43, 44, 55, 56, 68, 69, 80, 81, 92, 93]


def test_eval_indices_are_the_reference_formula() -> None:
    for num_frames in list(range(16, 400)) + [1_000, 9_001, 54_321]:
        indices = eval_indices(num_frames)
        starts = indices[::2]
        assert starts.tolist() == reference_test_starts(num_frames), num_frames
        assert (indices[1::2] == starts + 1).all()
        assert indices.dtype == np.int64 and len(indices) == 16
        assert (np.diff(indices) >= 1).all() and indices[-1] < num_frames  # pairs never overlap, stay inside


@pytest.mark.parametrize("num_frames", [16, 17, 23, 24, 31, 100, 301])
def test_train_indices_stay_in_their_segment_and_cover_every_start(num_frames: int) -> None:
    starts_count = num_frames - 1
    lo = [k * starts_count // 8 for k in range(8)]
    hi = [(k + 1) * starts_count // 8 for k in range(8)]
    rng = np.random.default_rng(0)
    seen: set[int] = set()
    for _ in range(400):
        indices = train_indices(num_frames, rng)
        starts = indices[::2]
        assert (indices[1::2] == starts + 1).all() and len(indices) == 16
        assert all(lo[k] <= s < hi[k] for k, s in enumerate(starts))
        seen.update(starts.tolist())
    assert seen == set(range(starts_count))   # the reference never draws the last (F - 1) mod 8 starts
    # the test indices sit inside the same segments
    assert all(lo[k] <= s < hi[k] for k, s in enumerate(eval_indices(num_frames)[::2]))


def test_train_indices_exact_16_by_hand() -> None:
    # 15 starts in segments [0,1) [1,3) [3,5) [5,7) [7,9) [9,11) [11,13) [13,15)
    rng = np.random.default_rng(3)
    starts = train_indices(16, rng)[::2]
    assert starts[0] == 0 and all(2 * k - 1 <= s <= 2 * k for k, s in enumerate(starts) if k > 0)


def test_train_indices_depend_only_on_the_rng() -> None:
    a = [train_indices(200, np.random.default_rng(7)).tolist() for _ in range(2)]
    b = train_indices(200, np.random.default_rng(8)).tolist()
    assert a[0] == a[1] and a[0] != b


@pytest.mark.parametrize("num_frames", [1, 9, 15])
def test_short_clips_refused_by_default(num_frames: int) -> None:
    with pytest.raises(ShortClipError, match=rf"^v01: {num_frames} frames, 16 needed; pass pad=True") as info:
        eval_indices(num_frames, name="v01")
    assert info.value.num_frames == num_frames
    with pytest.raises(ShortClipError):
        train_indices(num_frames, np.random.default_rng(0))


def test_short_clips_padded_by_repetition_when_asked() -> None:
    assert eval_indices(10, pad=True).tolist() == [0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 6, 7, 8, 8, 9]
    assert eval_indices(1, pad=True).tolist() == [0] * 16
    assert eval_indices(8, pad=True).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]
    assert train_indices(10, np.random.default_rng(0), pad=True).tolist() == eval_indices(10, pad=True).tolist()
    assert eval_indices(20, pad=True).tolist() == eval_indices(20).tolist()   # pad only touches short clips
    with pytest.raises(ValueError, match="0 frames, nothing to sample"):
        eval_indices(0, pad=True)


def test_sample_indices_dispatch() -> None:
    assert sample_indices(40, train=False).tolist() == eval_indices(40).tolist()
    assert sample_indices(40, train=True, rng=np.random.default_rng(1)).tolist() == \
        train_indices(40, np.random.default_rng(1)).tolist()
    with pytest.raises(ValueError, match="needs an rng"):
        sample_indices(40, train=True)
