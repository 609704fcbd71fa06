"""Report figures as PNG bytes (matplotlib Agg, no display needed).

Each function takes plain arrays/frames and returns one PNG; the HTML embeds
them as base64. Sizes are small (about 700x350 px) to keep the HTML light.
The backend and the PNG writer are :mod:`common.plots`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from common.plots import FIGURE_SIZE, plt, png_bytes


def angular_error_histogram(errors_deg: np.ndarray, threshold_deg: float) -> bytes:
    """Histogram of per-sample angular errors with the mean and the threshold marked."""
    fig, ax = plt.subplots(figsize=FIGURE_SIZE)
    ax.hist(errors_deg, bins=min(60, max(10, int(np.sqrt(len(errors_deg))))), color="#4c78a8")
    ax.axvline(float(np.mean(errors_deg)), color="black", linestyle="-", label=f"mean {np.mean(errors_deg):.2f} deg")
    ax.axvline(threshold_deg, color="#d62728", linestyle="--", label=f"threshold {threshold_deg:g} deg")
    ax.set(xlabel="angular error (deg)", ylabel="samples", title="Angular error per sample")
    ax.legend()
    return png_bytes(fig)


def error_by_group(per_sample: pd.DataFrame, value: str, group: str, ylabel: str, title: str) -> bytes:
    """Mean of ``value`` per ``group`` (e.g. error by display), bars labelled with n."""
    stats = per_sample.groupby(group, dropna=False)[value].agg(["mean", "count"]).sort_index()
    fig, ax = plt.subplots(figsize=FIGURE_SIZE)
    bars = ax.bar([str(g) for g in stats.index], stats["mean"], color="#72b7b2")
    for bar, count in zip(bars, stats["count"]):
        ax.annotate(f"n={count}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set(xlabel=group, ylabel=ylabel, title=title)
    return png_bytes(fig)


def bars_per_class(values: Sequence[float], classes: Sequence[str], ylabel: str, title: str) -> bytes:
    """Per-class bars in percent (IoU or recall); NaN classes are labelled 'absent'."""
    fig, ax = plt.subplots(figsize=FIGURE_SIZE)
    shown = [0.0 if np.isnan(v) else 100 * v for v in values]
    bars = ax.bar(list(classes), shown, color="#54a24b")
    for bar, v in zip(bars, values):
        label = "absent" if np.isnan(v) else f"{100 * v:.1f}"
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    ax.set(ylabel=ylabel, title=title, ylim=(0, 105))
    return png_bytes(fig)


def confusion_matrix_plot(matrix: np.ndarray, classes: Sequence[str]) -> bytes:
    """Row-normalised confusion matrix (rows = truth) with the counts written in."""
    counts = np.asarray(matrix)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    fig, ax = plt.subplots(figsize=(5.0, 4.2))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(counts):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), labels=list(classes))
    ax.set_yticks(range(len(classes)), labels=list(classes))
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (row share, counts)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return png_bytes(fig)


def composition_bars(table: pd.DataFrame) -> bytes:
    """Published vs measured shares (percent rows of ``nia stats``' table), one panel per group."""
    shares = table[table["group"].astype(str).str.endswith("%")]
    groups = list(dict.fromkeys(shares["group"]))
    fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(3.2 * max(len(groups), 1), 3.2), squeeze=False)
    for ax, group in zip(axes[0], groups):
        rows = shares[shares["group"] == group]
        x = np.arange(len(rows))
        ax.bar(x - 0.2, rows["published"].astype(float), width=0.4, color="#bab0ac", label="published")
        ax.bar(x + 0.2, rows["measured"].astype(float), width=0.4, color="#4c78a8", label="measured")
        ax.set_xticks(x, rows["key"].astype(str))
        ax.set(title=str(group).replace(" %", ""), ylabel="%")
    axes[0][0].legend()
    return png_bytes(fig)
