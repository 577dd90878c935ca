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

__all__ = ["training_curves", "throughput", "nqm_loss_curves", "nqm_steps_to_target",
           "lr_scaling"]


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


# ------------------------------------------------------------- noisy quadratic model

_RULE_STYLE = {  # LR choice -> (legend name, colour, dash)
    "tuned": ("LR tuned per batch size", "#d62728", "solid"),
    "linear": ("linear rule from the smallest B", "#1f77b4", "dash"),
    "sqrt": ("square-root rule from the smallest B", "#2ca02c", "dot"),
}


def _log2_batch_axis(batch_sizes) -> dict:
    return dict(title_text="batch size B (log2 scale)", type="log", dtick=math.log10(2),
                tickformat="d", range=[math.log10(min(batch_sizes)) - 0.1,
                                       math.log10(max(batch_sizes)) + 0.1])


def _nan_to_none(values) -> list:
    return [None if v is None or not math.isfinite(v) else float(v) for v in values]


def nqm_loss_curves(table: pd.DataFrame, title: str = "Noisy quadratic model: expected loss "
                    "of SGD") -> go.Figure:
    """E[L] against SGD steps, one curve per batch size, with a slider over the learning rate
    (book: "The noisy quadratic model").

    Every slider step restyles the y data of all curves from precomputed values, so the
    slider works in the static book.

    Args:
        table: ``smallbatch.theory.nqm_loss_table`` output (batch_size, lr, step,
            expected_loss); steps >= 1 (the x axis is logarithmic).
    """
    table = table[table["step"] >= 1].sort_values(["lr", "batch_size", "step"])
    lrs = sorted(table["lr"].unique())
    batch_sizes = sorted(table["batch_size"].unique())
    steps = sorted(table["step"].unique())
    grid = {key: g["expected_loss"].to_numpy() for key, g in table.groupby(["lr", "batch_size"])}
    active = len(lrs) // 2
    palette = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725", "#f89540", "#cc4778",
               "#7e03a8"]
    fig = go.Figure()
    for i, b in enumerate(batch_sizes):
        fig.add_trace(go.Scatter(
            x=steps, y=_nan_to_none(grid[(lrs[active], b)]), mode="lines", name=f"B = {b}",
            line=dict(color=palette[i % len(palette)]),
            hovertemplate=f"B = {b}, step %{{x}}: E[L] = %{{y:.4g}}<extra></extra>"))

    def heading(lr: float) -> str:
        return f"{title}, step size a = 2^{math.log2(lr):.2f} = {lr:.3g}"

    slider_steps = [dict(method="update", label=f"2^{math.log2(lr):.2f}",
                         args=[{"y": [_nan_to_none(grid[(lr, b)]) for b in batch_sizes]},
                               {"title.text": heading(lr)}])
                    for lr in lrs]
    fig.update_layout(
        title=dict(text=heading(lrs[active])),
        sliders=[dict(active=active, steps=slider_steps, pad=dict(t=60),
                      currentvalue=dict(prefix="step size a (on the mean loss) = "))],
        xaxis=dict(title_text="SGD steps t (log scale)", type="log"),
        yaxis=dict(title_text="expected loss E[L] (log scale)", type="log"),
        legend=dict(title_text="batch size"), height=560, margin=dict(t=80))
    return fig


def nqm_steps_to_target(table: pd.DataFrame, critical: dict | None = None,
                        title: str = "Noisy quadratic model: steps to reach the target "
                        "loss") -> go.Figure:
    """Steps to reach a target E[L] against batch size, for the LR tuned per B and the
    linear and square-root rules, with the perfect-scaling line steps ∝ 1/B through the
    tuned value at the smallest B and a slider over the target (book: "The noisy quadratic
    model").

    Args:
        table: ``smallbatch.theory.nqm_scaling_table`` output.
        critical: optional {target: critical batch size}, drawn as a vertical line.
    """
    targets = sorted(table["target"].unique(), reverse=True)
    batch_sizes = sorted(table["batch_size"].unique())
    rules = [r for r in _RULE_STYLE if r in set(table["rule"])]

    def series(target) -> tuple[list, str]:
        part = table[table["target"] == target]
        ys = []
        for rule in rules:
            s = part[part["rule"] == rule].set_index("batch_size")["steps"]
            ys.append(_nan_to_none([s.get(b, float("nan")) for b in batch_sizes]))
        tuned = part[part["rule"] == "tuned"].set_index("batch_size")["steps"]
        first = tuned.get(batch_sizes[0], float("nan"))
        ys.append(_nan_to_none([first * batch_sizes[0] / b for b in batch_sizes]))
        xs = [None] * 2
        if critical and critical.get(target) is not None:
            xs = [critical[target]] * 2
        finite = [v for y in ys for v in y if v is not None]
        span = [min(finite) / 2, max(finite) * 2] if finite else [1, 10]
        return ys + [span], xs

    def heading(target) -> str:
        extra = ""
        if critical and critical.get(target) is not None:
            extra = f"; critical batch size {critical[target]}"
        return f"{title} E[L] ≤ {target:g}{extra}"

    fig = go.Figure()
    active = 0
    ys, xs = series(targets[active])
    for rule, y in zip(rules, ys):
        name, color, dash = _RULE_STYLE[rule]
        fig.add_trace(go.Scatter(x=batch_sizes, y=y, name=name, mode="lines+markers",
                                 line=dict(color=color, dash=dash),
                                 hovertemplate="B = %{x}: %{y:,.0f} steps<extra></extra>"))
    fig.add_trace(go.Scatter(x=batch_sizes, y=ys[len(rules)], mode="lines",
                             name="perfect scaling (steps ∝ 1/B)",
                             line=dict(color="black", dash="dot", width=1), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=xs, y=ys[-1], mode="lines", name="critical batch size",
                             line=dict(color="#7f7f7f", width=1, dash="dashdot"),
                             hoverinfo="skip"))
    slider_steps = []
    for target in targets:
        ys_t, xs_t = series(target)
        slider_steps.append(dict(
            method="update", label=f"{target:g}",
            args=[{"y": ys_t, "x": [batch_sizes] * (len(rules) + 1) + [xs_t]},
                  {"title.text": heading(target)}]))
    fig.update_layout(
        title=dict(text=heading(targets[active])),
        sliders=[dict(active=active, steps=slider_steps, pad=dict(t=60),
                      currentvalue=dict(prefix="target expected loss = "))],
        xaxis=_log2_batch_axis(batch_sizes),
        yaxis=dict(title_text="SGD steps to reach the target (log scale)", type="log"),
        legend=dict(orientation="h", y=-0.45), height=600, margin=dict(t=80))
    return fig


_SCALING_STYLE = {  # learning-rate scaling rule -> (legend name, colour, dash)
    "linear": ("linear: η ∝ m", "#1f77b4", "solid"),
    "sqrt": ("square root: η ∝ √m", "#2ca02c", "dash"),
    "none": ("none: η constant (TF Playground)", "#d62728", "dot"),
}

# (column of theory.scaling_table, panel title, y axis title)
_SCALING_PANELS = [
    ("eta", "learning rate η (mean form)", "η (per update, on the mean loss)"),
    ("eta_tilde", "base learning rate η̃ = η / m", "η̃ (per example, on the summed loss)"),
    ("mean_update_per_example", "mean update per example",
     "|E[Δθ]| / m (units of |G|)"),
    ("update_variance", "variance of one update", "tr Cov[Δθ] (units of tr Σ)"),
]


def lr_scaling(table: pd.DataFrame, title: str = "Learning-rate scaling") -> go.Figure:
    """η, η̃, the mean update per example and the variance of one update against the batch
    size m, one curve per scaling rule, with a slider over m that moves a marker on every
    panel and writes the values into the title (book: "Learning-rate scaling").

    Every slider step restyles the x and y data of all traces from precomputed values (the
    curves are unchanged; the markers move), so the slider works in the static book.

    Args:
        table: ``smallbatch.theory.scaling_table`` output.
        title: the first line of the figure title.
    """
    missing = ({"rule", "batch_size"} | {c for c, _, _ in _SCALING_PANELS}) - set(table.columns)
    if missing:
        raise ValueError(f"table lacks column(s) {sorted(missing)}; "
                         "pass smallbatch.theory.scaling_table(...)")
    batch_sizes = sorted(int(b) for b in table["batch_size"].unique())
    rules = [r for r in _SCALING_STYLE if r in set(table["rule"])]
    values = {(rule, column): table[table["rule"] == rule].set_index("batch_size")[column]
              .reindex(batch_sizes).to_numpy(dtype=float)
              for rule in rules for column, _, _ in _SCALING_PANELS}
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t, _ in _SCALING_PANELS],
                        horizontal_spacing=0.14, vertical_spacing=0.2)
    cells = [(1, 1), (1, 2), (2, 1), (2, 2)]
    for (column, _, _), (row, col) in zip(_SCALING_PANELS, cells):
        for rule in rules:
            name, color, dash = _SCALING_STYLE[rule]
            fig.add_trace(go.Scatter(
                x=batch_sizes, y=_nan_to_none(values[(rule, column)]), mode="lines",
                name=name, legendgroup=rule, showlegend=(row, col) == (1, 1),
                line=dict(color=color, dash=dash),
                hovertemplate=f"{rule}, m = %{{x}}: %{{y:.4g}}<extra></extra>"), row=row, col=col)
    curves = len(fig.data)

    def markers(index: int) -> tuple[list, list]:
        m = batch_sizes[index]
        return ([[m] * len(rules) for _ in _SCALING_PANELS],
                [[float(values[(rule, column)][index]) for rule in rules]
                 for column, _, _ in _SCALING_PANELS])

    active = len(batch_sizes) // 2
    xs, ys = markers(active)
    for k, ((row, col), x, y) in enumerate(zip(cells, xs, ys)):
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="markers", name="selected m", legendgroup="selected",
            showlegend=k == 0, hoverinfo="skip",
            marker=dict(size=11, color=[_SCALING_STYLE[r][1] for r in rules],
                        line=dict(color="black", width=1.5))), row=row, col=col)

    def heading(index: int) -> str:
        m = batch_sizes[index]
        eta = ", ".join(f"{rule} {values[(rule, 'eta')][index]:.3g}" for rule in rules)
        var = ", ".join(f"{rule} {values[(rule, 'update_variance')][index]:.3g}"
                        for rule in rules)
        return f"{title}, m = {m}<br><sup>η: {eta}; tr Cov[Δθ]: {var}</sup>"

    curve_x = [batch_sizes] * curves
    curve_y = [list(trace.y) for trace in fig.data[:curves]]
    slider_steps = []
    for index, m in enumerate(batch_sizes):
        xs, ys = markers(index)
        slider_steps.append(dict(method="update", label=str(m),
                                 args=[{"x": curve_x + xs, "y": curve_y + ys},
                                       {"title.text": heading(index)}]))
    octaves = 1 if len(batch_sizes) <= 8 else 2  # a tick every 2 octaves fits half a page
    axis = dict(type="log", dtick=octaves * math.log10(2), tickformat="d",
                range=[math.log10(min(batch_sizes)) - 0.1, math.log10(max(batch_sizes)) + 0.1])
    fig.update_xaxes(title_text="batch size m (log2 scale)", **axis)
    for (_, _, y_title), (row, col) in zip(_SCALING_PANELS, cells):
        fig.update_yaxes(title_text=y_title, type="log", dtick=1, exponentformat="power",
                         row=row, col=col)  # dtick=1: one label per decade
    fig.update_layout(
        title=dict(text=heading(active)),
        sliders=[dict(active=active, steps=slider_steps, pad=dict(t=70),
                      currentvalue=dict(prefix="batch size m = "))],
        legend=dict(orientation="h", y=-0.32), height=820, margin=dict(t=110))
    return fig
