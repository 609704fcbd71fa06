"""WAR, UAR, per-class recall: hand-computed answers."""
import math

import numpy as np
import pytest

from common.metrics.classification import confusion_matrix, recall_per_class, uar, war

TRUTH = [0, 0, 0, 1, 1, 2]
PRED = [0, 0, 1, 1, 0, 2]


def test_hand_computed_war_uar_recall():
    matrix = confusion_matrix(PRED, TRUTH, 3)
    np.testing.assert_array_equal(matrix, [[2, 1, 0], [1, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(recall_per_class(matrix), [2 / 3, 1 / 2, 1.0])
    assert war(matrix) == pytest.approx(4 / 6)
    assert uar(matrix) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_class_without_true_samples_is_skipped_in_uar():
    matrix = confusion_matrix(PRED + [3], TRUTH + [2], 4)  # class 3 only predicted, never true
    assert math.isnan(recall_per_class(matrix)[3])
    assert uar(matrix) == pytest.approx((2 / 3 + 1 / 2 + 1 / 2) / 3)
    assert war(matrix) == pytest.approx(4 / 7)


def test_empty_and_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="0 samples"):
        war(np.zeros((3, 3), dtype=int))
    with pytest.raises(ValueError, match="0 samples"):
        uar(np.zeros((3, 3), dtype=int))
    with pytest.raises(ValueError, match="class id 5"):
        confusion_matrix([5], [0], 5)
    with pytest.raises(ValueError, match="expected equal counts"):
        confusion_matrix([0, 1], [0], 2)
