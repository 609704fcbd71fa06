"""Seeded bootstrap confidence intervals over subjects.

Samples of one person are correlated, so we resample *subjects* with
replacement, not samples. Each sample contributes a row of additive counts
(e.g. [error, 1] for a mean, per-class intersections and unions for mIoU);
rows are summed per subject once, each bootstrap replicate is a weighted sum
of subject rows (weight = how often the subject was drawn), and the metric is
recomputed from those sums. The interval is the percentile interval of the
replicates. Same inputs + same seed = same interval, on any machine.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import numpy.typing as npt

from common.metrics.classification import recall_per_class
from common.metrics.segmentation import miou_from_counts

#: Replicates used unless a caller asks otherwise.
DEFAULT_N_BOOT = 1000


def bootstrap_ci(
    contributions: npt.ArrayLike,
    subjects: Sequence[object] | np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of ``statistic`` under resampling of subjects.

    Args:
        contributions: (N, K) additive per-sample counts (a 1D array is one column).
        subjects: N subject ids, one per sample.
        statistic: maps (B, K) summed counts to B metric values (vectorised).
        n_boot: number of replicates. seed: RNG seed. level: e.g. 0.95.

    Replicates where the statistic is NaN (e.g. no class present) are left
    out of the quantiles; if all are NaN the interval is (nan, nan). Fewer
    than two subjects give (nan, nan) too: resampling one subject only ever
    reproduces the point estimate, which would look like a zero-width
    interval rather than "unknown".
    """
    counts = np.asarray(contributions, dtype=np.float64)
    if counts.ndim == 1:
        counts = counts[:, None]
    subject_ids = np.asarray(subjects)
    if counts.shape[0] != subject_ids.shape[0]:
        raise ValueError(f"{counts.shape[0]} contribution rows but {subject_ids.shape[0]} subject ids")
    if counts.shape[0] == 0:
        raise ValueError("bootstrap over 0 samples is undefined; expected at least one sample")
    if not 0 < level < 1:
        raise ValueError(f"level is {level}; expected a fraction in (0, 1)")
    per_subject = subject_sums(counts, subject_ids)
    n_subjects = per_subject.shape[0]
    if n_subjects < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_subjects, np.full(n_subjects, 1.0 / n_subjects), size=n_boot)
    values = np.asarray(statistic(weights @ per_subject), dtype=np.float64)
    if np.isnan(values).all():
        return (float("nan"), float("nan"))
    tail = (1.0 - level) / 2.0
    low, high = np.nanquantile(values, [tail, 1.0 - tail])
    return (float(low), float(high))


def subject_sums(counts: np.ndarray, subject_ids: np.ndarray) -> np.ndarray:
    """Sum (N, K) rows per subject -> (S, K), subjects in sorted order."""
    _, inverse = np.unique(subject_ids, return_inverse=True)
    n_subjects = int(inverse.max()) + 1
    return np.stack(
        [np.bincount(inverse, weights=counts[:, k], minlength=n_subjects) for k in range(counts.shape[1])],
        axis=1,
    )


def mean_ci(values: npt.ArrayLike, subjects: Sequence[object] | np.ndarray, **kwargs: float) -> tuple[float, float]:
    """CI of a plain mean (mean angular error; WAR when values are 0/1 correct)."""
    v = np.asarray(values, dtype=np.float64)
    return bootstrap_ci(np.stack([v, np.ones_like(v)], axis=1), subjects, _ratio, **kwargs)


def miou_ci(
    intersections: npt.ArrayLike,
    unions: npt.ArrayLike,
    subjects: Sequence[object] | np.ndarray,
    *,
    include_background: bool = True,
    **kwargs: float,
) -> tuple[float, float]:
    """CI of mIoU from per-sample (N, C) intersections and unions."""
    inter = np.asarray(intersections, dtype=np.float64)
    union = np.asarray(unions, dtype=np.float64)
    n_classes = inter.shape[1]

    def statistic(sums: np.ndarray) -> np.ndarray:
        return np.asarray(
            miou_from_counts(sums[:, :n_classes], sums[:, n_classes:], include_background=include_background)
        )

    return bootstrap_ci(np.concatenate([inter, union], axis=1), subjects, statistic, **kwargs)


def uar_ci(
    pred: npt.ArrayLike, truth: npt.ArrayLike, subjects: Sequence[object] | np.ndarray, num_classes: int,
    **kwargs: float,
) -> tuple[float, float]:
    """CI of UAR from integer predictions and truths (one-hot confusion rows)."""
    pred_a, truth_a = np.asarray(pred, dtype=np.int64), np.asarray(truth, dtype=np.int64)
    cells = np.zeros((pred_a.size, num_classes * num_classes))
    cells[np.arange(pred_a.size), truth_a * num_classes + pred_a] = 1.0

    def statistic(sums: np.ndarray) -> np.ndarray:
        # every replicate holds >= 1 sample, so each row has a present class
        return np.nanmean(recall_per_class(sums.reshape(-1, num_classes, num_classes)), axis=1)

    return bootstrap_ci(cells, subjects, statistic, **kwargs)


def _ratio(sums: np.ndarray) -> np.ndarray:
    return sums[:, 0] / sums[:, 1]
