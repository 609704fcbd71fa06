"""Bootstrap CIs over subjects: seeded, resample subjects, recompute from sums."""
import math

import numpy as np
import pytest

from common.metrics.bootstrap import bootstrap_ci, mean_ci, miou_ci, uar_ci


def test_two_subjects_give_hand_computed_extremes():
    # subject A: errors 1, 1; subject B: error 3. Replicates: AA -> 1, BB -> 3, AB -> 5/3.
    low, high = mean_ci([1.0, 1.0, 3.0], ["A", "A", "B"], n_boot=2000, seed=0)
    assert (low, high) == pytest.approx((1.0, 3.0))


def test_pooled_counts_not_mean_of_subject_ious():
    # A: IoU (1, 1/3) -> 2/3; B: IoU (1, 0) -> 1/2; A+B pooled: (4/4, 1/4) -> 0.625
    # (averaging per-subject mIoUs would give 0.5833). P(AB) = 1/2, so the 30 %..70 % band is AB only.
    inter = np.array([[1, 1], [3, 0]])
    union = np.array([[1, 3], [3, 1]])
    low, high = miou_ci(inter, union, ["A", "B"], n_boot=4000, seed=1, level=0.4)
    assert (low, high) == pytest.approx((0.625, 0.625))


def test_seeded_and_deterministic():
    rng = np.random.default_rng(2)
    values, subjects = rng.normal(5, 1, 200), rng.integers(0, 10, 200)
    first = mean_ci(values, subjects, seed=7)
    assert first == mean_ci(values, subjects, seed=7)
    assert first != mean_ci(values, subjects, seed=8)
    assert first[0] < values.mean() < first[1]


def test_one_subject_gives_no_interval_rather_than_a_zero_width_one():
    low, high = mean_ci([2.0, 4.0], ["S", "S"])
    assert math.isnan(low) and math.isnan(high)
    assert mean_ci([2.0, 4.0], ["S", "T"])[0] <= 3.0


def test_uar_ci_brackets_the_point_value():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 5, 300)
    pred = np.where(rng.random(300) < 0.7, truth, rng.integers(0, 5, 300))
    low, high = uar_ci(pred, truth, rng.integers(0, 12, 300), 5, n_boot=300)
    recalls = [np.mean(pred[truth == c] == c) for c in range(5)]
    assert low <= np.mean(recalls) <= high and high - low < 0.3


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="0 samples"):
        bootstrap_ci(np.zeros((0, 2)), [], lambda s: s[:, 0])
    with pytest.raises(ValueError, match="subject ids"):
        mean_ci([1.0, 2.0], ["A"])
