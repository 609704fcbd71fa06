"""Figures as PNG bytes (matplotlib's Agg backend: no display needed), for any layer.

The shared primitive (the backend, the size, :func:`png_bytes`) and the
training curves that ``train.py`` writes beside its log
(:mod:`common.engine.training_log`); the report's own figures are
:mod:`common.report.plots`.
"""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

FIGURE_SIZE = (7.0, 3.5)  # inches: about 700x350 px at DPI
DPI = 100


def training_curves(log: pd.DataFrame, metric: str, metric_label: str, threshold: float | None = None, *,
                    higher_is_better: bool = False) -> bytes:
    """Per-epoch train loss (left axis) and the validation metric (right axis) of a training log.

    ``log`` has one row per epoch with ``epoch``, ``train_loss`` and ``metric``
    columns (the log.csv each train.py writes); the best epoch is marked, so a
    person sees at a glance where early stopping took the weights from.
    """
    fig, loss_ax = plt.subplots(figsize=FIGURE_SIZE)
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
    return png_bytes(fig)


def png_bytes(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes, the same on every run; the figure is closed."""
    buffer = io.BytesIO()
    fig.tight_layout()
    # no timestamps in the PNG metadata, so a rerun gives identical bytes
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
