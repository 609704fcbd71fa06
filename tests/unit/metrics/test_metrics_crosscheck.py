"""Cross-checks against scikit-learn and torchmetrics on random inputs (test-only dependencies)."""
import numpy as np
import pytest
import torch

from common.metrics.classification import confusion_matrix, recall_per_class, uar, war
from common.metrics.segmentation import ConfusionMatrix

NUM_CLASSES = 5


def _random_labels(seed: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, NUM_CLASSES, size=shape)
    pred = np.where(rng.random(shape) < 0.6, truth, rng.integers(0, NUM_CLASSES, size=shape))
    return pred, truth


def test_classification_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    pred, truth = _random_labels(0, (500,))
    matrix = confusion_matrix(pred, truth, NUM_CLASSES)
    np.testing.assert_array_equal(matrix, metrics.confusion_matrix(truth, pred, labels=range(NUM_CLASSES)))
    assert war(matrix) == pytest.approx(metrics.accuracy_score(truth, pred))
    assert uar(matrix) == pytest.approx(metrics.recall_score(truth, pred, average="macro"))
    assert uar(matrix) == pytest.approx(metrics.balanced_accuracy_score(truth, pred))
    np.testing.assert_allclose(recall_per_class(matrix), metrics.recall_score(truth, pred, average=None))


def test_iou_matches_sklearn_jaccard():
    metrics = pytest.importorskip("sklearn.metrics")
    pred, truth = _random_labels(1, (3, 16, 16))
    cm = ConfusionMatrix(NUM_CLASSES)
    cm.update(pred, truth)
    expected = metrics.jaccard_score(truth.ravel(), pred.ravel(), average=None, labels=range(NUM_CLASSES))
    np.testing.assert_allclose(cm.iou_per_class(), expected)
    assert cm.miou() == pytest.approx(expected.mean())


def test_iou_and_recall_match_torchmetrics():
    classification = pytest.importorskip("torchmetrics.classification")
    pred, truth = _random_labels(2, (4, 12, 12))
    jaccard = classification.MulticlassJaccardIndex(num_classes=NUM_CLASSES, average=None)
    cm = ConfusionMatrix(NUM_CLASSES)
    for p, t in zip(torch.from_numpy(pred), torch.from_numpy(truth)):
        jaccard.update(p[None], t[None])
        cm.update(p, t)
    np.testing.assert_allclose(cm.iou_per_class(), jaccard.compute().numpy(), rtol=1e-6)

    flat_pred, flat_truth = torch.from_numpy(pred.ravel()), torch.from_numpy(truth.ravel())
    recall = classification.MulticlassRecall(num_classes=NUM_CLASSES, average="macro")
    accuracy = classification.MulticlassAccuracy(num_classes=NUM_CLASSES, average="micro")
    matrix = confusion_matrix(flat_pred, flat_truth, NUM_CLASSES)
    assert uar(matrix) == pytest.approx(float(recall(flat_pred, flat_truth)), rel=1e-6)
    assert war(matrix) == pytest.approx(float(accuracy(flat_pred, flat_truth)), rel=1e-6)
