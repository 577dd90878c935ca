"""Plotly figures from tidy DataFrames (one row per run and epoch).

Importing this module switches plotly to the book's renderer when the book is being built
(``smallbatch.render``); in Jupyter nothing changes.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import render

# A figure's note (study, trials stored, code commits) goes under its title in small type,
# wrapped so that it fits the book's column; each extra line adds to the top margin and the
# height, so the plot keeps its size.
NOTE_WIDTH = 100  # characters per line
NOTE_LINE_PX = 24  # the height of one line of <sup> text, with its spacing


def _note_lines(note: str) -> list[str]:
    return textwrap.wrap(note, NOTE_WIDTH, break_on_hyphens=False) if note else []


def _with_note(title: str, note: str) -> str:
    """``title`` with ``note`` below it in small type, wrapped at NOTE_WIDTH characters."""
    lines = _note_lines(note)
    return "<br>".join([title] + [f"<sup>{line}</sup>" for line in lines])


def _title_box(text: str) -> dict:
    """A figure's title (text from :func:`_with_note`) hung from the top of the figure, so a
    longer note grows downwards into the room :func:`_note_room` adds."""
    return dict(text=text, y=1, yref="container", yanchor="top", pad=dict(t=36))


def _note_room(note: str) -> int:
    """Pixels to add to a figure's top margin and height, which leave room for its title and
    one line of note: NOTE_LINE_PX for every further line of the wrapped note."""
    return NOTE_LINE_PX * max(0, len(_note_lines(note)) - 1)

render.activate_if_building()

__all__ = ["training_curves", "throughput", "nqm_loss_curves", "nqm_steps_to_target",
           "lr_scaling", "gradient_noise", "stale_gradients", "stale_gradient_losses",
           "accuracy_vs_lr", "accuracy_heatmap", "best_and_range", "training_curves_by_batch",
           "ghost_batch_norm", "warmup_comparison"]


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


def _marker_steps(fig: go.Figure, curves: int, labels, markers, heading) -> list[dict]:
    """Slider steps that keep the figure's first ``curves`` traces as they are and move the
    marker traces after them: ``markers(i)`` gives their (xs, ys) at step i and
    ``heading(i)`` the title. Every value is precomputed, so the slider works in the static
    book."""
    curve_x = [list(trace.x) for trace in fig.data[:curves]]
    curve_y = [list(trace.y) for trace in fig.data[:curves]]
    steps = []
    for index, label in enumerate(labels):
        xs, ys = markers(index)
        steps.append(dict(method="update", label=str(label),
                          args=[{"x": curve_x + xs, "y": curve_y + ys},
                                {"title.text": heading(index)}]))
    return steps


def _restyle_steps(values, curves, heading, traces: list[int]) -> list[dict]:
    """Slider steps, one per value v: ``curves(v)`` gives the (xs, ys) of the ``traces``
    (indices) and ``heading(v)`` the title; precomputed, so it works in the static book."""
    steps = []
    for value in values:
        xs, ys = curves(value)
        steps.append(dict(method="update", label=str(value),
                          args=[{"x": xs, "y": ys}, {"title.text": heading(value)}, traces]))
    return steps


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

    slider_steps = _marker_steps(fig, curves, batch_sizes, markers, heading)
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


_CHECKPOINT_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")

# (rule or "ratio", panel title, y axis title)
_NOISE_PANELS = (
    ("linear", "linear rule: η̃ fixed", "tr Cov[Δθ] (parameter units²)"),
    ("sqrt", "square-root rule: η̃ ∝ 1/√m", "tr Cov[Δθ] (parameter units²)"),
    ("ratio", "measured / predicted", "ratio (1 = the derivation)"),
)


def gradient_noise(frame: pd.DataFrame, title: str = "Update covariance against batch size"
                   ) -> go.Figure:
    """The trace of one update's covariance against m, measured (markers, bootstrap 95%
    error bars) and predicted (dashed), under the linear and the square-root rule, and their
    ratio; one colour per checkpoint; a slider over m marks a batch size on every panel and
    writes the ratios into the title (book: "The variance derivation, measured").

    Args:
        frame: ``smallbatch.gradnoise.noise_frame`` output with the "linear" and "sqrt" rules.
    """
    needed = {"checkpoint", "batch_size", "rule", "measured", "measured_low", "measured_high",
              "predicted", "ratio", "ratio_low", "ratio_high"}
    if needed - set(frame.columns) or not {"linear", "sqrt"} <= set(frame["rule"]):
        raise ValueError("pass smallbatch.gradnoise.noise_frame(...) output with the linear "
                         "and sqrt rules")
    checkpoints = list(dict.fromkeys(frame["checkpoint"]))
    batch_sizes = sorted(int(m) for m in frame["batch_size"].unique())

    def column(checkpoint: str, rule: str, name: str) -> list[float]:
        rows = frame[(frame["checkpoint"] == checkpoint) & (frame["rule"] == rule)]
        return rows.set_index("batch_size")[name].reindex(batch_sizes).astype(float).tolist()

    # two panels side by side, the ratio below across both: fits the book's text column
    cells = [(1, 1), (1, 2), (2, 1)]
    fig = make_subplots(rows=2, cols=2, specs=[[{}, {}], [{"colspan": 2}, None]],
                        subplot_titles=[t for _, t, _ in _NOISE_PANELS],
                        horizontal_spacing=0.14, vertical_spacing=0.16)
    for k, checkpoint in enumerate(checkpoints):
        colour = _CHECKPOINT_COLOURS[k % len(_CHECKPOINT_COLOURS)]
        for (row, col), (panel, _, _) in zip(cells, _NOISE_PANELS):
            rule, prefix = ("linear", "ratio") if panel == "ratio" else (panel, "measured")
            y = column(checkpoint, rule, prefix)
            low, high = column(checkpoint, rule, f"{prefix}_low"), \
                column(checkpoint, rule, f"{prefix}_high")
            # the ratio panel shares one y scale: shift each checkpoint a little along x
            x = _spread(batch_sizes, k, len(checkpoints)) if panel == "ratio" else batch_sizes
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="markers", name=checkpoint, legendgroup=checkpoint,
                showlegend=(row, col) == (1, 1), marker=dict(color=colour, size=7),
                error_y=dict(type="data", symmetric=False,
                             array=[h - v for h, v in zip(high, y)],
                             arrayminus=[v - lo for v, lo in zip(y, low)]),
                hovertemplate=f"{checkpoint}, m = %{{x}}: %{{y:.4g}}<extra></extra>"),
                row=row, col=col)
            predicted = [1.0] * len(batch_sizes) if panel == "ratio" else \
                column(checkpoint, rule, "predicted")
            fig.add_trace(go.Scatter(
                x=batch_sizes, y=predicted, mode="lines", name="predicted",
                legendgroup="predicted", showlegend=(row, col) == (1, 1) and k == 0,
                line=dict(color=colour if panel != "ratio" else "black", dash="dash",
                          width=1.5), hoverinfo="skip"), row=row, col=col)
    curves = len(fig.data)

    def markers(index: int) -> tuple[list, list]:
        m = batch_sizes[index]
        xs, ys = [], []
        for panel, _, _ in _NOISE_PANELS:
            rule, name = ("linear", "ratio") if panel == "ratio" else (panel, "measured")
            xs.append([_spread(batch_sizes, k, len(checkpoints))[index] if panel == "ratio"
                       else m for k in range(len(checkpoints))])
            ys.append([column(c, rule, name)[index] for c in checkpoints])
        return xs, ys

    active = len(batch_sizes) // 2
    for (row, col), x, y in zip(cells, *markers(active)):
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="markers", name="selected m", legendgroup="selected",
            showlegend=(row, col) == (1, 1), hoverinfo="skip",
            marker=dict(size=14, symbol="circle-open", color="black", line=dict(width=2))),
            row=row, col=col)

    def heading(index: int) -> str:
        ratios = "<br>".join(
            f"{c}: {column(c, 'linear', 'ratio')[index]:.3f} "
            f"[{column(c, 'linear', 'ratio_low')[index]:.3f}, "
            f"{column(c, 'linear', 'ratio_high')[index]:.3f}]" for c in checkpoints)
        return (f"{title}, m = {batch_sizes[index]}<br><sup>measured / predicted (95% "
                f"interval)<br>{ratios}</sup>")

    steps = _marker_steps(fig, curves, batch_sizes, markers, heading)
    octaves = 1 if len(batch_sizes) <= 8 else 2
    fig.update_xaxes(title_text="batch size m (log2 scale)", type="log", tickformat="d",
                     dtick=octaves * math.log10(2),
                     range=[math.log10(min(batch_sizes)) - 0.15,
                            math.log10(max(batch_sizes)) + 0.15])
    for (row, col), (panel, _, y_title) in zip(cells, _NOISE_PANELS):
        fig.update_yaxes(title_text=y_title, type="linear" if panel == "ratio" else "log",
                         exponentformat="power", row=row, col=col)
    fig.update_layout(
        title=dict(text=heading(active)),
        sliders=[dict(active=active, steps=steps, pad=dict(t=60),
                      currentvalue=dict(prefix="batch size m = "))],
        legend=dict(orientation="h", y=-0.3), height=940, margin=dict(t=200, b=150))
    return fig


def _spread(batch_sizes, index: int, count: int, octaves: float = 0.12) -> list[float]:
    """Batch sizes shifted by a fraction of an octave so ``count`` series side by side do
    not hide each other's error bars; series ``index`` of ``count``."""
    shift = 2.0 ** (octaves * (index - (count - 1) / 2))
    return [m * shift for m in batch_sizes]


# The experiments chapters ------------------------------------------------------------------

def _batch_colours(batch_sizes) -> dict[int, str]:
    """One colour per batch size along a perceptual scale (small m dark, large m yellow)."""
    from plotly.colors import sample_colorscale

    count = len(batch_sizes)
    positions = [k / max(1, count - 1) for k in range(count)]
    return dict(zip(batch_sizes, sample_colorscale("Viridis", [0.9 * p for p in positions])))


def accuracy_vs_lr(cells: pd.DataFrame, title: str, note: str = "",
                   chance: float | None = None) -> go.Figure:
    """Test accuracy (median over seeds, bars: min to max) against log2 eta_tilde, one
    curve per batch size m, as in the paper's figures; a slider picks one m (the others
    fade) and writes its best point into the title; its first step shows every m alike.

    Args:
        cells: ``experiments.cell_summary`` output (batch_size, log2_base_lr, median, low,
            high, seeds, diverged).
        title: the figure title; ``note``: a second line (study, trials, commit).
        chance: draw the chance level as a dotted line.
    """
    needed = {"batch_size", "log2_base_lr", "median", "low", "high", "seeds", "diverged"}
    if needed - set(cells.columns):
        raise ValueError("pass smallbatch.experiments.cell_summary(...) output")
    batch_sizes = sorted(int(m) for m in cells["batch_size"].unique())
    colours = _batch_colours(batch_sizes)
    fig = go.Figure()
    for m in batch_sizes:
        rows = cells[cells["batch_size"] == m].sort_values("log2_base_lr")
        symbols = ["x" if d == s else ("diamond" if d else "circle")
                   for d, s in zip(rows["diverged"], rows["seeds"])]
        fig.add_trace(go.Scatter(
            x=rows["log2_base_lr"], y=rows["median"], mode="lines+markers", name=f"m = {m}",
            line=dict(color=colours[m], width=2), marker=dict(symbol=symbols, size=7),
            error_y=dict(type="data", symmetric=False, array=rows["high"] - rows["median"],
                         arrayminus=rows["median"] - rows["low"], thickness=1),
            customdata=np.stack([rows["seeds"], rows["diverged"], rows["low"], rows["high"]],
                                axis=1),
            hovertemplate=(f"m = {m}, log2 η̃ = %{{x}}<br>median %{{y:.4f}} "
                           "(min %{customdata[2]:.4f}, max %{customdata[3]:.4f})<br>"
                           "%{customdata[0]} seed(s), %{customdata[1]} diverged<extra></extra>")))
    if chance is not None:
        fig.add_hline(y=chance, line=dict(color="grey", dash="dot"),
                      annotation_text="chance", annotation_position="bottom right")

    def heading(selected: int | None) -> str:
        if selected is None:
            return _with_note(title, note)
        rows = cells[cells["batch_size"] == selected]
        best = rows.sort_values(["median", "log2_base_lr"], ascending=[False, True]).iloc[0]
        text = (f"{title}: m = {selected}, best η̃ = 2^{int(best['log2_base_lr'])}, median "
                f"{best['median']:.4f} (seeds {best['low']:.4f} to {best['high']:.4f})")
        return _with_note(text, note)

    steps = [dict(method="update", label="all",
                  args=[{"opacity": [1.0] * len(batch_sizes),
                         "line.width": [2] * len(batch_sizes)}, {"title.text": heading(None)}])]
    for m in batch_sizes:
        steps.append(dict(method="update", label=str(m),
                          args=[{"opacity": [1.0 if b == m else 0.15 for b in batch_sizes],
                                 "line.width": [4 if b == m else 1 for b in batch_sizes]},
                                {"title.text": heading(m)}]))
    low, high = int(cells["log2_base_lr"].min()), int(cells["log2_base_lr"].max())
    fig.update_layout(
        title=_title_box(heading(None)), height=560 + _note_room(note),
        margin=dict(t=100 + _note_room(note)),
        xaxis=dict(title_text="base learning rate log2 η̃ (η̃ = η / m)", dtick=1,
                   range=[low - 0.5, high + 0.5]),
        yaxis=dict(title_text="test accuracy (median of last 5 epochs)"),
        legend=dict(title_text="batch size"),
        sliders=[dict(active=0, steps=steps, pad=dict(t=50),
                      currentvalue=dict(prefix="highlighted batch size: "))])
    return fig


def accuracy_heatmap(cells: pd.DataFrame, title: str, note: str = "") -> go.Figure:
    """Median test accuracy over (log2 eta_tilde, m) as a heat map; untried cells blank,
    cells where every seed diverged marked "div"."""
    table = cells.pivot(index="batch_size", columns="log2_base_lr", values="median")
    failed = cells.assign(all_diverged=cells["diverged"] == cells["seeds"]).pivot(
        index="batch_size", columns="log2_base_lr", values="all_diverged")
    text = [["" if pd.isna(v) else ("div" if failed.loc[m, c] else f"{100 * v:.1f}")
             for c, v in row.items()] for m, row in table.iterrows()]
    fig = go.Figure(go.Heatmap(
        z=table.to_numpy(), x=list(table.columns), y=[str(m) for m in table.index], text=text,
        texttemplate="%{text}", textfont=dict(size=9), colorscale="Viridis",
        colorbar=dict(title="test accuracy"),
        hovertemplate="m = %{y}, log2 η̃ = %{x}: %{z:.4f}<extra></extra>"))
    fig.update_layout(title=_title_box(_with_note(title, note)),
                      height=490 + _note_room(note), margin=dict(t=100 + _note_room(note)),
                      xaxis=dict(title_text="base learning rate log2 η̃", dtick=1),
                      yaxis=dict(title_text="batch size m", type="category"))
    return fig


# Distinct colours for the sets of runs one figure compares (up to seven; then they repeat).
SERIES_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def best_and_range(studies: dict, margin: float, title: str, note: str = "",
                   own: bool = True) -> go.Figure:
    """Left: the best median test accuracy against m (bars: min to max over seeds at that
    cell), one line per study. Right: the range of log2 eta_tilde whose median is within
    ``margin`` of each m's own best (``own``, ``good_range(reference="own")``) or of the
    study's overall best (``own=False``), against m: a bar from the lowest to the highest,
    the best marked by an open circle.

    Args:
        studies: label -> (best, ranges) from ``experiments.best_per_batch`` and
            ``experiments.good_range``.
    """
    reference = "each m's" if own else "the overall"
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
        "best test accuracy against m",
        f"η̃ within {100 * margin:.1f} points of {reference} best, against m"))
    for k, (label, (best, ranges)) in enumerate(studies.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        sizes = [int(m) for m in best.index]
        fig.add_trace(go.Scatter(
            x=sizes, y=best["median"], mode="lines+markers", name=label, legendgroup=label,
            line=dict(color=colour),
            error_y=dict(type="data", symmetric=False, array=best["high"] - best["median"],
                         arrayminus=best["median"] - best["low"]),
            customdata=best["log2_base_lr"],
            hovertemplate=f"{label}, m = %{{x}}: %{{y:.4f}} at log2 η̃ = "
                          "%{customdata}<extra></extra>"), row=1, col=1)
        shifted = _spread(list(ranges.index), k, len(studies), octaves=0.15)
        has = ranges["octaves"] > 0
        fig.add_trace(go.Scatter(
            x=[x for x, h in zip(shifted, has) if h],
            y=[(lo + hi) / 2 for lo, hi, h in zip(ranges["lowest"], ranges["highest"], has) if h],
            mode="markers", name=label, legendgroup=label, showlegend=False,
            marker=dict(color=colour, size=1),
            error_y=dict(type="data", thickness=6, width=0,
                         array=[(hi - lo) / 2 + 0.4 for lo, hi, h in
                                zip(ranges["lowest"], ranges["highest"], has) if h]),
            hovertemplate=f"{label}, m = %{{x:.0f}}<extra></extra>"), row=1, col=2)
        fig.add_trace(go.Scatter(
            x=shifted, y=list(best["log2_base_lr"].reindex(ranges.index)), mode="markers",
            name=f"{label}: best η̃", legendgroup=label, showlegend=False,
            marker=dict(color="white", size=7, line=dict(color=colour, width=2)),
            hovertemplate=f"{label}, m = %{{x:.0f}}: best log2 η̃ = %{{y}}<extra></extra>"),
            row=1, col=2)
    all_sizes = sorted({int(m) for best, _ in studies.values() for m in best.index})
    axis = dict(type="log", tickformat="d", dtick=math.log10(2),
                range=[math.log10(min(all_sizes)) - 0.15, math.log10(max(all_sizes)) + 0.15],
                title_text="batch size m (log2 scale)")
    fig.update_xaxes(**axis)
    fig.update_yaxes(title_text="test accuracy (median of last 5 epochs)", row=1, col=1)
    fig.update_yaxes(title_text="log2 η̃", dtick=1, row=1, col=2)
    # one legend line per set of runs (the labels are long), hung below the axis titles
    legend_room = 24 * len(studies)
    fig.update_layout(title=_title_box(_with_note(title, note)),
                      height=500 + _note_room(note) + legend_room,
                      margin=dict(t=110 + _note_room(note), b=90 + legend_room),
                      legend=dict(orientation="h", yanchor="top", y=-0.3, x=0))
    return fig


# Chapter 3: n small steps against one large step -----------------------------------------

def _stale_series(frame: pd.DataFrame, column: str, statistic: str) -> pd.Series:
    """``statistic`` (median, min, max) of ``column`` over the draws, per eta_tilde."""
    return frame.groupby("base_lr")[column].agg(statistic)


def _stale_band(frame: pd.DataFrame, column: str) -> tuple[list, list]:
    """The closed outline of the min-max band of ``column`` over the draws, over the
    eta_tilde where both edges are finite (a None would break the outline)."""
    low = _stale_series(frame, column, "min")
    high = _stale_series(frame, column, "max")
    finite = [lr for lr in low.index if math.isfinite(low[lr]) and math.isfinite(high[lr])]
    return (finite + finite[::-1],
            [float(high[lr]) for lr in finite] + [float(low[lr]) for lr in finite[::-1]])


def _stale_steps(frame: pd.DataFrame) -> tuple[list, list[int]]:
    needed = {"checkpoint", "epochs", "batch_size", "draw", "n", "base_lr", "distance",
              "predicted_distance", "ratio", "loss_a", "loss_b", "predicted_loss_a",
              "predicted_loss_b", "loss_at_checkpoint"}
    if needed - set(frame.columns):
        raise ValueError(f"frame lacks column(s) {sorted(needed - set(frame.columns))}; "
                         "pass smallbatch.staleness.stale_frame(...)")
    checkpoints = list(frame.sort_values("epochs")["checkpoint"].unique())
    return checkpoints, sorted(int(n) for n in frame["n"].unique() if n > 1)


def _lr_axis(lrs) -> dict:
    low, high = math.log10(min(lrs)), math.log10(max(lrs))
    return dict(title_text="base learning rate η̃ (per example, log scale)", type="log",
                exponentformat="power", range=[low - 0.2, high + 0.2])


def stale_gradients(frame: pd.DataFrame, title: str = "n small steps against one large "
                    "step") -> go.Figure:
    """The distance |θ_A − θ_B| between n steps of batch m and one step of batch n m from the
    same weights, against η̃ (log-log), measured (median line, min-max band over the draws)
    and predicted to second order (dashed, η̃² |c_n|), and their ratio; one colour per
    checkpoint; a slider over n (book: "n small steps against one large step").

    Every slider step restyles the curves from precomputed values, so it works in the
    static book.

    Args:
        frame: ``smallbatch.staleness.stale_frame`` output.
    """
    checkpoints, steps = _stale_steps(frame)
    lrs = sorted(frame["base_lr"].unique())
    batch_size = int(frame["batch_size"].iloc[0])

    def curves(n: int) -> tuple[list, list]:
        xs, ys = [], []
        for checkpoint in checkpoints:
            part = frame[(frame["checkpoint"] == checkpoint) & (frame["n"] == n)]
            for column in ("distance", "ratio"):
                band_x, band_y = _stale_band(part, column)
                median = _stale_series(part, column, "median")
                xs += [band_x, list(median.index)]
                ys += [band_y, _nan_to_none(median)]
                if column == "distance":
                    predicted = _stale_series(part, "predicted_distance", "median")
                    xs.append(list(predicted.index))
                    ys.append(_nan_to_none(predicted))
        return xs, ys

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        "distance |θ_A − θ_B|", "measured / predicted distance"))
    active = len(steps) - 1
    xs, ys = curves(steps[active])
    traces = iter(zip(xs, ys))
    for k, checkpoint in enumerate(checkpoints):
        colour = _CHECKPOINT_COLOURS[k % len(_CHECKPOINT_COLOURS)]
        for col, column in ((1, "distance"), (2, "ratio")):
            x, y = next(traces)
            fig.add_trace(go.Scatter(x=x, y=y, fill="toself", mode="none", opacity=0.2,
                                     fillcolor=colour, legendgroup=checkpoint,
                                     showlegend=False, hoverinfo="skip"), row=1, col=col)
            x, y = next(traces)
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="lines+markers", name=f"{checkpoint}: measured (median, "
                "min-max over draws)" if col == 1 else checkpoint, legendgroup=checkpoint,
                showlegend=col == 1, line=dict(color=colour), marker=dict(size=5),
                hovertemplate=f"{checkpoint}, η̃ = %{{x:.3g}}: %{{y:.4g}}<extra></extra>"),
                row=1, col=col)
            if column == "distance":
                x, y = next(traces)
                fig.add_trace(go.Scatter(
                    x=x, y=y, mode="lines", name=f"{checkpoint}: predicted η̃² |c_n|",
                    legendgroup=checkpoint, line=dict(color=colour, dash="dash"),
                    hovertemplate=f"{checkpoint}, predicted: %{{y:.4g}}<extra></extra>"),
                    row=1, col=1)
    restyled = list(range(len(fig.data)))
    fig.add_trace(go.Scatter(x=[min(lrs), max(lrs)], y=[1, 1], mode="lines",
                             name="ratio 1: the second-order prediction",
                             line=dict(color="black", dash="dot", width=1),
                             hoverinfo="skip"), row=1, col=2)

    def heading(n: int) -> str:
        return (f"{title}: n = {n} steps of m = {batch_size} against one step of "
                f"n m = {n * batch_size}")

    slider_steps = _restyle_steps(steps, curves, heading, restyled)
    fig.update_xaxes(**_lr_axis(lrs))
    fig.update_yaxes(title_text="|θ_A − θ_B| (parameter units, log scale)", type="log",
                     exponentformat="power", row=1, col=1)
    fig.update_yaxes(title_text="measured / predicted (log scale)", type="log", row=1, col=2)
    fig.update_layout(
        title=dict(text=heading(steps[active])),
        sliders=[dict(active=active, steps=slider_steps, pad=dict(t=70),
                      currentvalue=dict(prefix="small steps n = "))],
        legend=dict(orientation="h", y=-0.5), height=640, margin=dict(t=90))
    return fig


_PATH_STYLE = {  # column -> (legend name, colour, dash)
    "loss_a": ("path A: n steps of m", "#2ca02c", "solid"),
    "loss_b": ("path B: one step of n m", "#d62728", "solid"),
    "predicted_loss_a": ("path A, second-order prediction", "#2ca02c", "dash"),
    "predicted_loss_b": ("path B, second-order prediction", "#d62728", "dash"),
}


def stale_gradient_losses(frame: pd.DataFrame, title: str = "Loss reached by n small steps "
                          "and by one large step") -> go.Figure:
    """The mean eval loss at θ_A and θ_B against η̃, measured (median over the draws) and
    predicted by the second-order Taylor expansion around θ_k (dashed), one panel per
    checkpoint with the loss at θ_k dotted, and a slider over n (book: "n small steps
    against one large step"). Only η̃ at which the losses were evaluated are drawn; the
    y range of a panel runs from the lowest measured loss to L(θ_k) plus half its distance
    from there (at least 10% of L(θ_k)), so a diverging path leaves the panel at the top.

    Args:
        frame: ``smallbatch.staleness.stale_frame`` output.
    """
    checkpoints, steps = _stale_steps(frame)
    frame = frame[frame["loss_b"].notna()]
    lrs = sorted(frame["base_lr"].unique())
    batch_size = int(frame["batch_size"].iloc[0])

    ranges = {}  # checkpoint -> (y range, cap): the panel's range and the clip level
    for checkpoint in checkpoints:
        part = frame[frame["checkpoint"] == checkpoint]
        start = float(part["loss_at_checkpoint"].iloc[0])
        medians = part.groupby(["n", "base_lr"])[["loss_a", "loss_b"]].median()
        lowest = float(medians.min().min())
        top = start + max(0.5 * (start - lowest), 0.1 * start)
        span = top - lowest
        # values more than 10 panel heights above the panel (diverging paths, up to 1e200
        # and more) are left out: off the panel either way, and too large for SVG coordinates
        ranges[checkpoint] = ([lowest - 0.05 * span, top + 0.05 * span], top + 10 * span)

    def curves(n: int) -> tuple[list, list]:
        xs, ys = [], []
        for checkpoint in checkpoints:
            part = frame[(frame["checkpoint"] == checkpoint) & (frame["n"] == n)]
            cap = ranges[checkpoint][1]
            for column in _PATH_STYLE:
                median = _stale_series(part, column, "median")
                xs.append(list(median.index))
                ys.append([None if v is None or v > cap else v for v in _nan_to_none(median)])
        return xs, ys

    fig = make_subplots(rows=1, cols=len(checkpoints), subplot_titles=checkpoints,
                        horizontal_spacing=0.06)
    active = len(steps) - 1
    xs, ys = curves(steps[active])
    traces = iter(zip(xs, ys))
    for col, checkpoint in enumerate(checkpoints, start=1):
        for column, (name, colour, dash) in _PATH_STYLE.items():
            x, y = next(traces)
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="lines+markers" if dash == "solid" else "lines", name=name,
                legendgroup=column, showlegend=col == 1, marker=dict(size=5),
                line=dict(color=colour, dash=dash),
                hovertemplate=f"{name}, η̃ = %{{x:.3g}}: %{{y:.5g}}<extra></extra>"),
                row=1, col=col)
    restyled = list(range(len(fig.data)))
    for col, checkpoint in enumerate(checkpoints, start=1):
        part = frame[frame["checkpoint"] == checkpoint]
        start = float(part["loss_at_checkpoint"].iloc[0])
        fig.add_trace(go.Scatter(x=[min(lrs), max(lrs)], y=[start, start], mode="lines",
                                 name="loss at θ_k", legendgroup="start", showlegend=col == 1,
                                 line=dict(color="grey", dash="dot", width=1),
                                 hoverinfo="skip"), row=1, col=col)
        fig.update_yaxes(range=ranges[checkpoint][0], row=1, col=col)

    def heading(n: int) -> str:
        return f"{title}: n = {n}, m = {batch_size}, n m = {n * batch_size}"

    slider_steps = _restyle_steps(steps, curves, heading, restyled)
    fig.update_xaxes(**_lr_axis(lrs))
    fig.update_xaxes(title_text="η̃ (log scale)")
    fig.update_yaxes(title_text="mean cross-entropy on the eval set (nats)", row=1, col=1)
    fig.update_layout(
        title=dict(text=heading(steps[active])),
        sliders=[dict(active=active, steps=slider_steps, pad=dict(t=70),
                      currentvalue=dict(prefix="small steps n = "))],
        legend=dict(orientation="h", y=-0.5), height=560, margin=dict(t=90))
    return fig


_CURVE_PANELS = (  # (column, x, panel title, y title)
    ("train_loss", "examples_seen", "training loss against examples seen",
     "mean cross-entropy (nats)"),
    ("test_accuracy", "examples_seen", "test accuracy against examples seen", "test accuracy"),
    ("train_loss", "steps", "training loss against SGD steps", "mean cross-entropy (nats)"),
    ("test_accuracy", "steps", "test accuracy against SGD steps", "test accuracy"),
)


def _short_count(value: float) -> str:
    """8192 -> "8.2k", 81920 -> "82k", 1.2e6 -> "1.2M": short tick labels."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            scaled = value / scale
            return f"{scaled:.1f}{suffix}" if scaled < 10 else f"{scaled:.0f}{suffix}"
    return f"{value:.0f}"


def training_curves_by_batch(curves: pd.DataFrame, title: str, note: str = "") -> go.Figure:
    """Per-epoch training loss and test accuracy, one curve per batch size m, against examples
    seen (the epochs, when every m sees the same examples per epoch, are marked on the axis)
    and against SGD steps (log scale), median over seeds; a slider highlights one m (book:
    "Training curves"; paper Fig 4).

    Args:
        curves: one row per (batch_size, epoch) with columns batch_size, epoch, steps,
            examples_seen, train_loss, test_accuracy, seeds (``experiments.curves_by_batch``
            output).
    """
    needed = {"batch_size", "epoch", "steps", "examples_seen", "train_loss", "test_accuracy",
              "seeds"}
    if needed - set(curves.columns):
        raise ValueError("pass smallbatch.experiments.curves_by_batch(...) output")
    batch_sizes = sorted(int(m) for m in curves["batch_size"].unique())
    colours = _batch_colours(batch_sizes)
    fig = make_subplots(rows=2, cols=2, subplot_titles=[p[2] for p in _CURVE_PANELS],
                        horizontal_spacing=0.1, vertical_spacing=0.2)
    cells = [(1, 1), (1, 2), (2, 1), (2, 2)]
    owner = []  # batch size of each trace, for the slider
    for (column, x, _, _), (row, col) in zip(_CURVE_PANELS, cells):
        for m in batch_sizes:
            part = curves[curves["batch_size"] == m].sort_values("epoch")
            fig.add_trace(go.Scatter(
                x=part[x], y=part[column], mode="lines+markers", name=f"m = {m}",
                legendgroup=str(m), showlegend=(row, col) == (1, 1),
                line=dict(color=colours[m], width=2), marker=dict(size=4),
                customdata=part[["seeds", "epoch"]].to_numpy(),
                hovertemplate=(f"m = {m}, {x.replace('_', ' ')} %{{x:,}} (epoch "
                               "%{customdata[1]}): %{y:.4f} (median of %{customdata[0]} "
                               "seed(s))<extra></extra>")), row=row, col=col)
            owner.append(m)

    def heading(selected: int | None) -> str:
        text = title if selected is None else f"{title}: m = {selected} highlighted"
        return _with_note(text, note)

    steps = [dict(method="update", label="all",
                  args=[{"opacity": [1.0] * len(owner), "line.width": [2] * len(owner)},
                        {"title.text": heading(None)}])]
    for m in batch_sizes:
        steps.append(dict(method="update", label=str(m),
                          args=[{"opacity": [1.0 if o == m else 0.15 for o in owner],
                                 "line.width": [4 if o == m else 1 for o in owner]},
                                {"title.text": heading(m)}]))
    per_epoch = (curves["examples_seen"] / curves["epoch"]).round().unique()
    if len(per_epoch) == 1:  # the same examples per epoch for every m: mark the epochs
        epochs = sorted(int(e) for e in curves["epoch"].unique())
        every = max(1, math.ceil(len(epochs) / 6))  # at most about six labelled ticks
        shown = epochs[::-1][::every][::-1]
        fig.update_xaxes(title_text=f"examples seen (one epoch = {int(per_epoch[0]):,})",
                         tickvals=[e * per_epoch[0] for e in shown],
                         ticktext=[_short_count(e * per_epoch[0]) for e in shown],
                         tickangle=0, row=1)
    else:
        fig.update_xaxes(title_text="examples seen", row=1)
    fig.update_xaxes(title_text="SGD steps (log scale)", type="log", row=2)
    for (_, _, _, y_title), (row, col) in zip(_CURVE_PANELS, cells):
        fig.update_yaxes(title_text=y_title, row=row, col=col,
                         type="log" if "loss" in y_title or "cross" in y_title else "linear")
    fig.update_layout(title=_title_box(heading(None)), height=820 + _note_room(note),
                      margin=dict(t=100 + _note_room(note)),
                      legend=dict(title_text="batch size"),
                      sliders=[dict(active=0, steps=steps, pad=dict(t=60),
                                    currentvalue=dict(prefix="highlighted batch size: "))])
    return fig


def ghost_batch_norm(table: pd.DataFrame, title: str, note: str = "") -> go.Figure:
    """Best test accuracy over eta_tilde against the batch-norm batch m_BN (log2 axis), one
    curve per SGD batch size m; the point m_BN = m (ordinary batch norm) is ringed (book:
    "Batch norm's own batch"; paper Figs 13-14).

    Args:
        table: ``experiments.ghost_table`` output (index batch_size, bn_batch).
    """
    sizes = sorted({int(m) for m in table.index.get_level_values("batch_size")})
    colours = _batch_colours(sizes)
    fig = go.Figure()
    for m in sizes:
        rows = table.xs(m, level="batch_size").sort_index()
        fig.add_trace(go.Scatter(
            x=list(rows.index), y=rows["median"], mode="lines+markers", name=f"m = {m}",
            line=dict(color=colours[m], width=2),
            error_y=dict(type="data", symmetric=False, array=rows["high"] - rows["median"],
                         arrayminus=rows["median"] - rows["low"], thickness=1),
            customdata=rows["log2_base_lr"],
            hovertemplate=(f"m = {m}, m_BN = %{{x}}: %{{y:.4f}} at log2 η̃ = "
                           "%{customdata}<extra></extra>")))
        if m in rows.index:
            fig.add_trace(go.Scatter(
                x=[m], y=[rows.loc[m, "median"]], mode="markers", showlegend=m == sizes[0],
                name="m_BN = m (ordinary batch norm)", legendgroup="ordinary",
                marker=dict(size=15, symbol="circle-open", color="black", line=dict(width=2)),
                hoverinfo="skip"))
    bn_sizes = sorted({int(b) for b in table.index.get_level_values("bn_batch")})
    fig.update_layout(
        title=_title_box(_with_note(title, note)), height=500 + _note_room(note),
        margin=dict(t=100 + _note_room(note)),
        xaxis=dict(title_text="batch-norm batch m_BN (log2 scale)", type="log", tickformat="d",
                   dtick=math.log10(2), range=[math.log10(min(bn_sizes)) - 0.15,
                                               math.log10(max(bn_sizes)) + 0.15]),
        yaxis=dict(title_text="best test accuracy over η̃ (median of last 5 epochs)"))
    return fig


def warmup_comparison(with_warmup: pd.DataFrame, without: pd.DataFrame, title: str,
                      note: str = "") -> go.Figure:
    """Test accuracy against log2 eta_tilde with and without warm-up, one panel per batch
    size m (median over seeds, bars: lowest to highest seed) (book: "Warm-up"; paper Figs
    9-10).

    Args:
        with_warmup, without: ``experiments.cell_summary`` outputs.
    """
    sizes = sorted(set(int(m) for m in with_warmup["batch_size"]) &
                   set(int(m) for m in without["batch_size"]))
    fig = make_subplots(rows=1, cols=max(1, len(sizes)), shared_yaxes=True,
                        subplot_titles=[f"m = {m}" for m in sizes], horizontal_spacing=0.05)
    for col, m in enumerate(sizes, start=1):
        for cells, name, colour in ((without, "no warm-up", "#7f7f7f"),
                                    (with_warmup, "5% linear warm-up", "#d62728")):
            rows = cells[cells["batch_size"] == m].sort_values("log2_base_lr")
            fig.add_trace(go.Scatter(
                x=rows["log2_base_lr"], y=rows["median"], mode="lines+markers", name=name,
                legendgroup=name, showlegend=col == 1, line=dict(color=colour),
                error_y=dict(type="data", symmetric=False, array=rows["high"] - rows["median"],
                             arrayminus=rows["median"] - rows["low"], thickness=1),
                hovertemplate=f"{name}, m = {m}, log2 η̃ = %{{x}}: %{{y:.4f}}<extra></extra>"),
                row=1, col=col)
    fig.update_xaxes(title_text="log2 η̃", dtick=2)
    fig.update_yaxes(title_text="test accuracy (median of last 5 epochs)", row=1, col=1)
    fig.update_layout(title=_title_box(_with_note(title, note)),
                      height=480 + _note_room(note), margin=dict(t=100 + _note_room(note)),
                      legend=dict(orientation="h", y=-0.2))
    return fig
