"""The sweep engine's figure (book: "How the grids are trained"): training throughput of
each implementation against the batch size.
"""

from __future__ import annotations

import plotly.graph_objects as go

from ..analysis.costs import TARGET_RATE_RATIO
from .style import _log2_axis

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
    a dashed line at the target (``TARGET_RATE_RATIO`` times the best large-batch
    single-model rate of the same run), and
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
        fig.add_trace(go.Scatter(x=[ms[0], ms[-1]], y=[TARGET_RATE_RATIO * reference] * 2,
                                 mode="lines", name=f"{TARGET_RATE_RATIO:g} x best "
                                 "large-batch single model (target)",
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
        xaxis=_log2_axis("batch size m (log2 scale)"),
        yaxis=dict(title_text="training examples per second", rangemode="tozero"),
        legend=dict(orientation="h", y=-0.25), height=560, margin=dict(t=130))
    return fig
