"""WAR, UAR, per-class recall and the confusion matrix of a classifier.

WAR (weighted average recall) is the per-class recall weighted by class
frequency in the truth, which equals plain accuracy. UAR (unweighted average
recall) is the mean of the per-class recalls over classes that occur in the
truth: a class with no true samples has recall NaN and is skipped, since
"recall of nothing" is undefined (it is not counted as 0 or 1).
Classes are integer ids 0..num_classes-1 (map labels to ids first).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from common.metrics.segmentation import ConfusionMatrix, _to_numpy


def confusion_matrix(pred: Any, truth: Any, num_classes: int) -> np.ndarray:
    """Integer matrix (num_classes, num_classes): rows = truth, columns = prediction."""
    pred_a, truth_a = _to_numpy(pred).reshape(-1), _to_numpy(truth).reshape(-1)
    if pred_a.shape != truth_a.shape:
        raise ValueError(f"{pred_a.size} predictions but {truth_a.size} truths; expected equal counts")
    counts = ConfusionMatrix(num_classes)
    counts.update(pred_a, truth_a)
    return counts.matrix


def recall_per_class(matrix: np.ndarray) -> np.ndarray:
    """Per-class recall = TP / true count; NaN for a class with no true samples."""
    counts = np.asarray(matrix, dtype=np.float64)
    totals = counts.sum(axis=-1)
    diag = np.diagonal(counts, axis1=-2, axis2=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, diag / np.where(totals > 0, totals, 1.0), np.nan)


def war(matrix: np.ndarray) -> float:
    """Weighted average recall = accuracy = trace / total. Raises on an empty matrix."""
    counts = np.asarray(matrix)
    total = counts.sum()
    if total == 0:
        raise ValueError("WAR of 0 samples is undefined; expected at least one sample")
    return float(np.trace(counts) / total)


def uar(matrix: np.ndarray) -> float:
    """Unweighted average recall: mean recall over classes present in the truth."""
    recall = recall_per_class(matrix)
    if np.isnan(recall).all():
        raise ValueError("UAR of 0 samples is undefined; expected at least one sample")
    return float(np.nanmean(recall))
