"""Report figures as PNG bytes (matplotlib Agg, no display needed).

Each function takes plain arrays/frames and returns one PNG; the HTML embeds
them as base64. Sizes are small (about 700x350 px) to keep the HTML light.
"""
from __future__ import annotations

import io
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

_SIZE = (7.0, 3.5)
_DPI = 100


def angular_error_histogram(errors_deg: np.ndarray, threshold_deg: float) -> bytes:
    """Histogram of per-sample angular errors with the mean and the threshold marked."""
    fig, ax = plt.subplots(figsize=_SIZE)
    ax.hist(errors_deg, bins=min(60, max(10, int(np.sqrt(len(errors_deg))))), color="#4c78a8")
    ax.axvline(float(np.mean(errors_deg)), color="black", linestyle="-", label=f"mean {np.mean(errors_deg):.2f} deg")
    ax.axvline(threshold_deg, color="#d62728", linestyle="--", label=f"threshold {threshold_deg:g} deg")
    ax.set(xlabel="angular error (deg)", ylabel="samples", title="Angular error per sample")
    ax.legend()
    return _png(fig)


def error_by_group(per_sample: pd.DataFrame, value: str, group: str, ylabel: str, title: str) -> bytes:
    """Mean of ``value`` per ``group`` (e.g. error by display), bars labelled with n."""
    stats = per_sample.groupby(group, dropna=False)[value].agg(["mean", "count"]).sort_index()
    fig, ax = plt.subplots(figsize=_SIZE)
    bars = ax.bar([str(g) for g in stats.index], stats["mean"], color="#72b7b2")
    for bar, count in zip(bars, stats["count"]):
        ax.annotate(f"n={count}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set(xlabel=group, ylabel=ylabel, title=title)
    return _png(fig)


def bars_per_class(values: Sequence[float], classes: Sequence[str], ylabel: str, title: str) -> bytes:
    """Per-class bars in percent (IoU or recall); NaN classes are labelled 'absent'."""
    fig, ax = plt.subplots(figsize=_SIZE)
    shown = [0.0 if np.isnan(v) else 100 * v for v in values]
    bars = ax.bar(list(classes), shown, color="#54a24b")
    for bar, v in zip(bars, values):
        label = "absent" if np.isnan(v) else f"{100 * v:.1f}"
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    ax.set(ylabel=ylabel, title=title, ylim=(0, 105))
    return _png(fig)


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
    return _png(fig)


def training_curves(log: pd.DataFrame, metric: str, metric_label: str, threshold: float | None = None, *,
                    higher_is_better: bool = False) -> bytes:
    """Per-epoch train loss (left axis) and the validation metric (right axis) of a training log.

    ``log`` has one row per epoch with ``epoch``, ``train_loss`` and ``metric``
    columns (the log.csv each train.py writes); the best epoch is marked, so a
    person sees at a glance where early stopping took the weights from.
    """
    fig, loss_ax = plt.subplots(figsize=_SIZE)
    epochs = log["epoch"].astype(int).to_numpy()
    loss_ax.plot(epochs, log["train_loss"].astype(float), color="#4c78a8", marker="o", label="train loss")
    loss_ax.set(xlabel="epoch", ylabel="train loss", title="Training curves")
    metric_ax = loss_ax.twinx()
    values = log[metric].astype(float).to_numpy()
    metric_ax.plot(epochs, values, color="#f58518", marker="s", label=metric_label)
    if threshold is not None:
        metric_ax.axhline(threshold, color="#d62728", linestyle="--", label=f"threshold {threshold:g}")
    if np.isfinite(values).any():
        best = int(np.nanargmax(values) if higher_is_better else np.nanargmin(values))
        metric_ax.plot([epochs[best]], [values[best]], marker="*", markersize=14, color="black",
                       linestyle="none", label=f"best: epoch {epochs[best]}")
    metric_ax.set_ylabel(metric_label)
    handles = loss_ax.get_legend_handles_labels()[0] + metric_ax.get_legend_handles_labels()[0]
    loss_ax.legend(handles=handles, loc="upper right")
    return _png(fig)


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
    return _png(fig)


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    # no timestamps in the PNG metadata, so a rerun gives identical bytes
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
