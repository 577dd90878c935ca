"""The quickstart's figure and table (book: "Quickstart"): one run's training curves, and
what the run was and did."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def training_curves(history: pd.DataFrame, title: str = "") -> go.Figure:
    """Loss and test accuracy against epochs for one run (book: "Quickstart").

    Args:
        history: one row per epoch with the columns of ``TrainResult.history()``.
        title: the figure title (say which data, model, m and eta_tilde).
    """
    required = {"epoch", "train_loss", "test_loss", "test_accuracy", "train_accuracy"}
    missing = required - set(history.columns)
    if missing:
        raise ValueError(f"history lacks column(s) {sorted(missing)}; "
                         "pass TrainResult.history()")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Cross-entropy loss", "Accuracy"),
                        horizontal_spacing=0.12)
    epochs = history["epoch"]
    for column, name, dash, col in [("train_loss", "train loss", "dot", 1),
                                    ("test_loss", "test loss", "solid", 1),
                                    ("train_accuracy", "train accuracy", "dot", 2),
                                    ("test_accuracy", "test accuracy", "solid", 2)]:
        color = "#1f77b4" if "train" in column else "#d62728"
        fig.add_trace(go.Scatter(x=epochs, y=history[column], name=name, mode="lines+markers",
                                 line=dict(dash=dash, color=color)), row=1, col=col)
    fig.update_xaxes(title_text="epoch", dtick=1 if len(history) <= 20 else None)
    fig.update_yaxes(title_text="mean cross-entropy (nats)", row=1, col=1)
    fig.update_yaxes(title_text="accuracy (fraction correct)", range=[0, 1], row=1, col=2)
    fig.update_layout(title_text=title, height=420, legend=dict(orientation="h", y=-0.2),
                      margin=dict(t=80))
    return fig


def _lr_text(config) -> str:
    """"2^-8" for a base learning rate of 2^-8 (the chapters write eta_tilde as a power of 2)."""
    return f"2^{math.log2(config.base_lr):g}"


def run_summary(result, name: str = "quickstart run") -> pd.DataFrame:
    """One run in a column (book: "Quickstart"): its data and model (with its parameters),
    m, eta_tilde and eta, status, headline accuracy (the median test accuracy of the last
    five epochs), wall time and rate, device and threads, and code commit.

    Args:
        result: a ``TrainResult`` (``train_or_load``'s).
        name: the column's name.
    """
    config, provenance = result.config, result.provenance
    summary = {
        "data": result.data_label,
        "model": f"{config.model} ({result.num_parameters:,} parameters)",
        "m, eta_tilde, eta": f"{config.batch_size}, {_lr_text(config)}, {config.peak_lr:g}",
        "status": result.status,
        "median test accuracy, last 5 epochs": result.test_accuracy,
        "wall time (s), training examples per second":
            f"{result.wall_time:.0f}, {result.examples_per_second:,.0f}",
        "device, threads": f"{provenance['device']}, {provenance['threads']}",
        "code commit": provenance["git_commit"],
    }
    return pd.Series(summary, name=name).to_frame()


def run_title(result) -> str:
    """A figure title for one run (book: "Quickstart"): data, model, m, eta_tilde and eta."""
    config = result.config
    return (f"{result.data_label}, {config.model}, m = {config.batch_size}, "
            f"η̃ = {_lr_text(config)} (η = {config.peak_lr:g})")
