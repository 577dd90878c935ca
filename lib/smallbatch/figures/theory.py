"""The figures of the argument's chapters (book part "The argument"): learning-rate scaling,
the measured gradient noise, stale gradients, and the noisy quadratic model; and each
chapter's live controls in Jupyter (``*_live``, built with :func:`.widgets.live_figure`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..theory import gradnoise, staleness
from ..theory.checkpoints import Checkpoint, model_at
from ..theory.nqm import nqm_loss_table
from ..theory.scaling import SCALING_RULES, scaling_at
from .style import (_log2_axis, _log2_batch_axis, _lr_axis, _marker_steps, _nan_to_none,
                    _restyle_steps, _spread)
from .widgets import choice_slider, int_slider, live_figure, log_slider, menu


_RULE_STYLE = {  # LR choice -> (legend name, colour, dash)
    "tuned": ("LR tuned per batch size", "#d62728", "solid"),
    "linear": ("linear rule from the smallest B", "#1f77b4", "dash"),
    "sqrt": ("square-root rule from the smallest B", "#2ca02c", "dot"),
}


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
    fig.update_xaxes(**_log2_axis("batch size m (log2 scale)", batch_sizes, octaves=octaves))
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
        frame: ``smallbatch.theory.gradnoise.noise_frame`` output with the "linear" and
            "sqrt" rules.
    """
    needed = {"checkpoint", "batch_size", "rule", "measured", "measured_low", "measured_high",
              "predicted", "ratio", "ratio_low", "ratio_high"}
    if needed - set(frame.columns) or not {"linear", "sqrt"} <= set(frame["rule"]):
        raise ValueError("pass smallbatch.theory.gradnoise.noise_frame(...) output with the linear "
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
    fig.update_xaxes(**_log2_axis("batch size m (log2 scale)", batch_sizes, pad=0.15,
                                  octaves=octaves))
    for (row, col), (panel, _, y_title) in zip(cells, _NOISE_PANELS):
        fig.update_yaxes(title_text=y_title, type="linear" if panel == "ratio" else "log",
                         exponentformat="power", row=row, col=col)
    fig.update_layout(
        title=dict(text=heading(active)),
        sliders=[dict(active=active, steps=steps, pad=dict(t=60),
                      currentvalue=dict(prefix="batch size m = "))],
        legend=dict(orientation="h", y=-0.3), height=940, margin=dict(t=200, b=150))
    return fig


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
                         "pass smallbatch.theory.staleness.stale_frame(...)")
    checkpoints = list(frame.sort_values("epochs")["checkpoint"].unique())
    return checkpoints, sorted(int(n) for n in frame["n"].unique() if n > 1)


def stale_gradients(frame: pd.DataFrame, title: str = "n small steps against one large "
                    "step") -> go.Figure:
    """The distance |θ_A − θ_B| between n steps of batch m and one step of batch n m from the
    same weights, against η̃ (log-log), measured (median line, min-max band over the draws)
    and predicted to second order (dashed, η̃² |c_n|), and their ratio; one colour per
    checkpoint; a slider over n (book: "n small steps against one large step").

    Every slider step restyles the curves from precomputed values, so it works in the
    static book.

    Args:
        frame: ``smallbatch.theory.staleness.stale_frame`` output.
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
        frame: ``smallbatch.theory.staleness.stale_frame`` output.
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


# ------------------------------------------------------------- live controls, in Jupyter

def lr_scaling_live(settings, *, log2_batch_size: int = 5, log2_max: int = 14):
    """A slider over log2 m and a menu of rules that show :func:`~smallbatch.theory.scaling.
    scaling_at` for that batch size and rule (book: "Learning-rate scaling", live
    controls); ``settings`` is ``presets.lr_scaling(scale)`` (eta_tilde, m_ref, N)."""

    def draw(log2_m: int, rule: str) -> pd.DataFrame:
        return scaling_at(2 ** log2_m, rule, settings.base_lr, settings.reference_batch_size,
                          settings.dataset_size)

    return live_figure(draw, {"log2_m": int_slider("log2 m", log2_batch_size, 0, log2_max),
                              "rule": menu("rule", SCALING_RULES, "linear")})


def batch_noise_histogram(record: dict, batch_size: int) -> go.Figure:
    """The histogram of |S - m G|^2 over its prediction, one value per batch of size m drawn
    in a gradient-noise ``record``, with the prediction (1) and the mean of the draws marked
    (book: "The variance derivation, measured", live controls)."""
    ratios = gradnoise.deviation_ratios(record, batch_size)
    fig = go.Figure(go.Histogram(x=ratios, nbinsx=30, name="draws"))
    fig.add_vline(x=1.0, line_dash="dash", annotation_text="prediction")
    fig.add_vline(x=ratios.mean(), annotation_text="mean of the draws")
    fig.update_layout(title_text=f"{record['values']['checkpoint']}, m = {batch_size}: "
                                 f"|S - mG|² / prediction over {len(ratios)} batches",
                      xaxis_title="|S - mG|² / (m (N-m)/(N-1) tr Σ)",
                      yaxis_title="batches", height=400)
    return fig


def gradient_noise_live(records: Sequence[dict], batch_sizes: Sequence[int]):
    """A menu of checkpoints and a slider over m that draw :func:`batch_noise_histogram`
    (book: "The variance derivation, measured", live controls); it starts at the middle
    batch size."""
    by_label = {record["values"]["checkpoint"]: record for record in records}

    def draw(checkpoint: str, batch_size: int) -> go.Figure:
        return batch_noise_histogram(by_label[checkpoint], batch_size)

    return live_figure(draw, {
        "checkpoint": menu("checkpoint", by_label),
        "batch_size": choice_slider("m", batch_sizes, batch_sizes[len(batch_sizes) // 2])})


def stale_paths(rows: pd.DataFrame, label: str, batch_size: int, steps: int) -> go.Figure:
    """The distance |θ_A − θ_B| against η̃ on one draw, measured (with the ReLU sign
    changes on hover) and predicted η̃² |c_n| (book: "n small steps against one large
    step", live controls); ``rows`` is :func:`~smallbatch.theory.staleness.paths_on_draw`'s."""
    fig = go.Figure([
        go.Scatter(x=rows["base_lr"], y=rows["distance"], mode="lines+markers",
                   name="measured |θ_A − θ_B|", customdata=rows["sign_changes"],
                   hovertemplate="η̃ = %{x:.3g}: %{y:.4g}, ReLU sign changes %{customdata}"),
        go.Scatter(x=rows["base_lr"], y=rows["predicted_distance"], mode="lines",
                   name="predicted η̃² |c_n|", line=dict(dash="dash"))])
    fig.update_layout(title_text=f"{label}: n = {steps} steps of m = {batch_size} against "
                                 f"one of {steps * batch_size}",
                      xaxis=dict(title_text="η̃ (log scale)", type="log"),
                      yaxis=dict(title_text="|θ_A − θ_B| (log scale)", type="log"), height=420)
    return fig


def stale_gradients_live(checkpoint: Checkpoint, *, device: str = "auto"):
    """Sliders over m, n and the draw that recompute :func:`stale_paths` at ``checkpoint``
    (book: "n small steps against one large step", live controls). Nothing is computed
    until the first move: it builds the network at the checkpoint (training to it if need
    be) and loads its data set, once."""
    from IPython.display import Markdown

    network = {}  # the network and its data, built on the reader's first move

    def draw(batch_size: int, steps: int, draw_index: int) -> go.Figure:
        if not network:
            model, network["data"], _, _ = model_at(checkpoint, device=device)
            network["net"] = staleness.FlatModel(model)
        rows = staleness.paths_on_draw(network["net"], network["data"], batch_size, steps,
                                       draw_index)
        return stale_paths(rows, checkpoint.label, batch_size, steps)

    return live_figure(draw, {
        "batch_size": choice_slider("m", [1, 2, 4, 8, 16, 32], 4),
        "steps": choice_slider("n", [2, 4, 8, 16], 4),
        "draw_index": int_slider("draw", 0, 0, 9)},
        placeholder=Markdown("Move a slider to compute: the first move builds the network at "
                             f"{checkpoint.label} and loads its data set "
                             f"({checkpoint.config.data})."))


def nqm_loss_curve(batch_size: int, lr: float, steps: Sequence[int],
                   curvatures: np.ndarray) -> go.Figure:
    """E[L] against SGD steps for one batch size B and step size a, log-log (book: "The
    noisy quadratic model", live controls)."""
    table = nqm_loss_table([batch_size], [lr], steps, curvatures)
    fig = go.Figure(go.Scatter(x=table["step"], y=table["expected_loss"], mode="lines"))
    fig.update_layout(title_text=f"E[L], B = {batch_size}, a = {lr:.4g}",
                      xaxis=dict(title_text="SGD steps t (log scale)", type="log"),
                      yaxis=dict(title_text="expected loss E[L] (log scale)", type="log"),
                      height=420)
    return fig


def nqm_live(settings, curvatures: np.ndarray, *, batch_size: int = 16, lr: float = 0.25):
    """A slider over B and a log slider over a, from 2^-12 to 1.99 / max h (just under the
    stability edge 2 / max h), that draw :func:`nqm_loss_curve` at ``settings.curve_steps``
    (book: "The noisy quadratic model", live controls); ``settings`` is
    ``presets.nqm(scale)``."""
    steps = np.asarray(settings.curve_steps)
    highest = 1.99 / float(np.max(curvatures))

    def draw(batch_size: int, lr: float) -> go.Figure:
        return nqm_loss_curve(batch_size, lr, steps, curvatures)

    return live_figure(draw, {
        "batch_size": choice_slider("B", settings.batch_sizes, batch_size),
        "lr": log_slider("a", lr, base=2, low=-12, high=math.log2(highest), step=0.05)})
