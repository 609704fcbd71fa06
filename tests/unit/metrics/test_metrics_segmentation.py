"""mIoU from one confusion matrix: hand-computed counts and edge cases."""
import math

import numpy as np
import pytest
import torch

from common.metrics.segmentation import ConfusionMatrix, intersection_union, iou_from_counts, miou_from_counts

PRED = np.array([[0, 1], [2, 2]])
TRUTH = np.array([[0, 1], [1, 2]])


def test_hand_computed_iou_and_miou():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TRUTH)
    np.testing.assert_array_equal(cm.matrix, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    np.testing.assert_array_equal(cm.intersections(), [1, 1, 1])
    np.testing.assert_array_equal(cm.unions(), [1, 2, 2])  # class 2: 1 true + 2 predicted - 1 shared
    np.testing.assert_allclose(cm.iou_per_class(), [1.0, 0.5, 0.5])
    assert cm.miou() == pytest.approx(2 / 3)
    assert cm.miou(include_background=False) == pytest.approx(0.5)


def test_class_absent_from_both_sides_is_skipped_not_zero():
    cm = ConfusionMatrix(4)
    cm.update(PRED, TRUTH)
    assert math.isnan(cm.iou_per_class()[3])
    assert cm.miou() == pytest.approx(2 / 3)


def test_classes_are_indexed_by_id_not_by_rank_of_unique_values():
    # regression for the RITnet reference bug: only classes 0 and 2 occur
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 2, 2]), np.array([0, 2, 0]))
    iou = cm.iou_per_class()
    assert iou[0] == pytest.approx(0.5) and math.isnan(iou[1]) and iou[2] == pytest.approx(0.5)


def test_batches_accumulate_like_one_big_batch_and_accept_torch():
    rng = np.random.default_rng(0)
    pred, truth = rng.integers(0, 3, size=(4, 8, 8)), rng.integers(0, 3, size=(4, 8, 8))
    whole, parts = ConfusionMatrix(3), ConfusionMatrix(3)
    whole.update(pred, truth)
    for i in range(4):
        parts.update(torch.from_numpy(pred[i]), torch.from_numpy(truth[i]))
    np.testing.assert_array_equal(whole.matrix, parts.matrix)
    assert whole.matrix.sum() == 4 * 8 * 8


def test_per_sample_counts_sum_to_the_dataset_miou():
    rng = np.random.default_rng(1)
    cm, inters, unions = ConfusionMatrix(3), [], []
    for _ in range(5):
        pred, truth = rng.integers(0, 3, size=(6, 6)), rng.integers(0, 3, size=(6, 6))
        cm.update(pred, truth)
        inter, union = intersection_union(pred, truth, 3)
        inters.append(inter)
        unions.append(union)
    assert miou_from_counts(np.sum(inters, 0), np.sum(unions, 0)) == pytest.approx(cm.miou())
    # per-row form used by the bootstrap: one mIoU per row
    rows = miou_from_counts(np.array(inters), np.array(unions))
    assert rows.shape == (5,)


def test_ignore_index_is_counted_and_out_of_range_is_refused():
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(np.array([0, 1, 1]), np.array([0, 255, 1]))
    assert cm.n_ignored == 1 and cm.matrix.sum() == 2
    with pytest.raises(ValueError, match="class id 3"):
        ConfusionMatrix(3).update(np.array([3]), np.array([0]))
    with pytest.raises(ValueError, match="expected equal"):
        ConfusionMatrix(3).update(np.zeros(2), np.zeros(3))


def test_no_class_present_gives_nan():
    assert math.isnan(miou_from_counts([0, 0], [0, 0]))
    assert math.isnan(iou_from_counts([0], [0])[0])
