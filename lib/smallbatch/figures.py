"""Plotly figures from tidy DataFrames (one row per run and epoch).

Importing this module switches plotly to the book's renderer when the book is being built
(``smallbatch.render``); in Jupyter nothing changes.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import render

render.activate_if_building()

__all__ = ["training_curves", "throughput"]


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


_METHOD_STYLE = {  # configuration family -> (legend name, colour, dash)
    "naive": ("naive loop (DataLoader, 1 process)", "#7f7f7f", "dot"),
    "single1": ("single-run trainer, 1 process x 2 threads", "#1f77b4", "dash"),
    "single2": ("single-run trainer, 2 processes x 1 thread", "#1f77b4", "solid"),
    "grouped": ("lock-step ensemble, grouped, best K, 2 processes", "#d62728", "solid"),
    "vmap": ("lock-step ensemble, vmap, K=8, 2 processes", "#ff7f0e", "dash"),
}


def _family(row: dict) -> str | None:
    if row["mode"] == "single":
        return "single2" if row["processes"] > 1 else "single1"
    if row["mode"] == "grouped" and row["processes"] == 1:
        return None  # shown in the table, not the figure
    return row["mode"]


def throughput(benchmark: dict) -> go.Figure:
    """Training examples/s against batch size for each way of training (book: "Sweep engine").

    One curve per configuration family (for the grouped ensembles, the best K at each m),
    a dashed line at 0.8x the best large-batch single-model rate of the same run, and
    buttons that switch between ResNet-8 with and without batch norm.

    Args:
        benchmark: the parsed benchmarks/results/throughput.json.
    """
    rows = [r for r in benchmark["rows"] if "error" not in r]
    fig = go.Figure()
    visibility = []
    for bn in (True, False):
        reference = benchmark["summary"]["bn" if bn else "no_bn"]["reference_large_batch_rate"]
        for family, (name, color, dash) in _METHOD_STYLE.items():
            best: dict[int, dict] = {}
            for row in rows:
                if row["bn"] == bn and _family(row) == family:
                    if row["m"] not in best or (row["examples_per_second"]
                                                > best[row["m"]]["examples_per_second"]):
                        best[row["m"]] = row
            ms = sorted(best)
            fig.add_trace(go.Scatter(
                x=ms, y=[best[m]["examples_per_second"] for m in ms], name=name,
                mode="lines+markers", line=dict(color=color, dash=dash), visible=bn,
                customdata=[[best[m]["members"], best[m]["examples_per_second"] / reference]
                            for m in ms],
                hovertemplate="m=%{x}: %{y:,.0f} examples/s (K=%{customdata[0]}, "
                              "%{customdata[1]:.2f}x the reference)<extra></extra>"))
            visibility.append(bn)
        ms = sorted({r["m"] for r in rows})
        fig.add_trace(go.Scatter(x=[ms[0], ms[-1]], y=[0.8 * reference] * 2, mode="lines",
                                 name="0.8 x best large-batch single model (target)",
                                 line=dict(color="black", dash="dot", width=1), visible=bn))
        visibility.append(bn)
    buttons = []
    for bn, label in ((True, "with batch norm"), (False, "without batch norm")):
        shown = [v == bn for v in visibility]
        buttons.append(dict(label=f"ResNet-8 {label}", method="update",
                            args=[{"visible": shown},
                                  {"title.text": f"Training throughput, ResNet-8 {label}"}]))
    fig.update_layout(
        title=dict(text="Training throughput, ResNet-8 with batch norm", y=0.98,
                   yanchor="top"),
        updatemenus=[dict(type="buttons", direction="right", buttons=buttons, x=0, y=1.04,
                          xanchor="left", yanchor="bottom", showactive=True)],
        xaxis=dict(title_text="batch size m (log2 scale)", type="log", dtick=math.log10(2),
                   tickformat="d"),
        yaxis=dict(title_text="training examples per second", rangemode="tozero"),
        legend=dict(orientation="h", y=-0.25), height=560, margin=dict(t=130))
    return fig
