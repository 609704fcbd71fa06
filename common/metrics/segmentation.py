"""mIoU from one confusion matrix accumulated over the whole test set.

Counts are integers accumulated batch by batch (one ``bincount`` per batch)
and divided once at the end, so the result does not depend on batch size or
order. IoU of class c = TP_c / (TP_c + FP_c + FN_c) = intersection / union.

Absent classes: a class that appears in neither prediction nor truth has
union 0; its IoU is NaN and it is *skipped* in the mean (not counted as 0 or
1). The RITnet reference instead loops over ``range(len(np.unique(...)))``,
which names the wrong classes whenever a class id is missing from an image;
here classes are always indexed by their id 0..num_classes-1.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


class ConfusionMatrix:
    """Integer confusion matrix, rows = truth, columns = prediction.

    ``update`` takes class maps of equal shape as numpy arrays or torch tensors
    (any device). Values must lie in 0..num_classes-1; truth pixels equal to
    ``ignore_index`` are left out and counted in ``n_ignored``. Any other value
    raises ValueError, so bad input is never silently dropped.
    """

    def __init__(self, num_classes: int, *, ignore_index: int | None = None) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes is {num_classes}; expected >= 1")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.n_ignored = 0

    def update(self, pred: Any, truth: Any) -> None:
        """Add one batch (any shape, equal for both) to the counts."""
        pred_a, truth_a = _to_numpy(pred), _to_numpy(truth)
        if pred_a.shape != truth_a.shape:
            raise ValueError(f"prediction has shape {pred_a.shape} but truth has {truth_a.shape}; expected equal")
        pred_a, truth_a = pred_a.reshape(-1).astype(np.int64), truth_a.reshape(-1).astype(np.int64)
        if self.ignore_index is not None:
            keep = truth_a != self.ignore_index
            self.n_ignored += int(keep.size - keep.sum())
            pred_a, truth_a = pred_a[keep], truth_a[keep]
        _check_range(pred_a, self.num_classes, "prediction")
        _check_range(truth_a, self.num_classes, "truth")
        n = self.num_classes
        self.matrix += np.bincount(truth_a * n + pred_a, minlength=n * n).reshape(n, n)

    def intersections(self) -> np.ndarray:
        """Per-class true positives (pixels), shape (num_classes,)."""
        return np.diag(self.matrix).copy()

    def unions(self) -> np.ndarray:
        """Per-class union = truth pixels + predicted pixels - intersection."""
        return self.matrix.sum(axis=0) + self.matrix.sum(axis=1) - np.diag(self.matrix)

    def iou_per_class(self) -> np.ndarray:
        """Per-class IoU in [0, 1]; NaN for a class absent from both sides."""
        return iou_from_counts(self.intersections(), self.unions())

    def miou(self, *, include_background: bool = True) -> float:
        """Mean IoU over present classes; class 0 is background."""
        return miou_from_counts(self.intersections(), self.unions(), include_background=include_background)


def count_classes(columns: Any) -> list[str]:
    """Class names of a per-sample table's ``inter_<class>`` count columns, in column order (each has its
    ``union_<class>`` twin: the counts ``iou_from_counts`` sums)."""
    return [str(c)[len("inter_"):] for c in columns if str(c).startswith("inter_")]


def intersection_union(pred: Any, truth: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class (intersections, unions) of one image: the per-sample CSV columns.

    Summing these over samples and calling ``miou_from_counts`` gives exactly
    the dataset mIoU of a ``ConfusionMatrix`` fed the same images.
    """
    matrix = ConfusionMatrix(num_classes)
    matrix.update(pred, truth)
    return matrix.intersections(), matrix.unions()


def iou_from_counts(intersections: npt.ArrayLike, unions: npt.ArrayLike) -> np.ndarray:
    """IoU = intersection / union per class (last axis); NaN where union is 0."""
    inter = np.asarray(intersections, dtype=np.float64)
    union = np.asarray(unions, dtype=np.float64)
    if inter.shape != union.shape:
        raise ValueError(f"intersections shape {inter.shape} != unions shape {union.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), np.nan)


def miou_from_counts(
    intersections: npt.ArrayLike, unions: npt.ArrayLike, *, include_background: bool = True
) -> float | np.ndarray:
    """Mean IoU over the last axis, skipping absent classes (NaN IoU).

    With ``include_background=False`` class 0 is left out. A 2D input (rows of
    summed counts, as the bootstrap passes) gives one mIoU per row. Returns NaN
    when no class is present at all.
    """
    iou = iou_from_counts(intersections, unions)
    if not include_background:
        iou = iou[..., 1:]
    present = ~np.isnan(iou)
    n_present = present.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = np.where(present, iou, 0.0).sum(axis=-1) / np.where(n_present > 0, n_present, 1)
    result = np.where(n_present > 0, result, np.nan)
    return float(result) if result.ndim == 0 else result


def _to_numpy(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, on any device
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _check_range(values: np.ndarray, num_classes: int, what: str) -> None:
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        bad = values[(values < 0) | (values >= num_classes)]
        raise ValueError(
            f"{what} has class id {int(bad[0])} ({bad.size} pixels out of range); "
            f"expected 0..{num_classes - 1}"
        )
