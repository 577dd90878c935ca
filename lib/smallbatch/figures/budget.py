"""The figures of "Budget against batch size" (book part "The experiments"): steps and
examples to a target against m with McCandlish's trade-off, the best accuracy at equal SGD
steps, and fit against generalisation gap at each m's best.

Sliders here switch which traces are visible; every state is precomputed, so they work in
the static book.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis import budget
from .style import (SERIES_COLOURS, _log2_axis, _nan_to_none, _note_room, _short_count,
                    _title_box, _with_note)


def _visibility_slider(owners, keys, heading, *, active: int, pad: int, prefix: str) -> dict:
    """A slider with one step per key that shows only that key's traces (``owners``: the
    key of each trace, None for traces shown at every step) and retitles the figure with
    ``heading(key)``."""
    steps = [dict(method="update", label=str(label),
                  args=[{"visible": [o is None or o == key for o in owners]},
                        {"title.text": heading(key)}])
             for key, label in keys]
    return dict(active=active, steps=steps, pad=dict(t=pad), currentvalue=dict(prefix=prefix))


def steps_to_target(targets: dict, title: str, note: str = "") -> go.Figure:
    """Left: SGD steps to a target accuracy against m; right: training examples (m times
    the steps), both log-log. Per m the fastest cell's median over seeds, with a bar from
    its fastest to its slowest seed (a seed that never reached the target has no bar top);
    dashed: perfect scaling from the smallest m (steps halve as m doubles, examples stay
    constant); solid: McCandlish's S = S_min + E_min / m where it fits. A slider picks the
    target.

    Args:
        targets: label -> (best, critical), from ``budget.best_steps_to_target`` and
            ``budget.critical_batch`` of that target.
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
        "SGD steps to the target", "training examples to the target"))
    owners, keys, headings = [], [], {}
    labels = list(targets)
    sizes_all = sorted({int(m) for best, _ in targets.values() for m in best.index})
    for k, label in enumerate(labels):
        best, critical = targets[label]
        visible = k == len(labels) // 2
        sizes = [int(m) for m in best.index]
        headings[label] = "B_crit = " + budget.critical_batch_text(critical) + " examples" \
            if critical["status"] == "fit" else budget.critical_batch_text(critical)
        if sizes:
            for col, scale in ((1, 1), (2, None)):
                factor = np.ones(len(sizes)) if scale else np.asarray(sizes, dtype=float)
                median = best["median_steps"].to_numpy() * factor
                high = best["high_steps"].to_numpy() * factor
                low = best["low_steps"].to_numpy() * factor
                fig.add_trace(go.Scatter(
                    x=sizes, y=median, mode="markers+lines", name="fastest cell (median)",
                    legendgroup="points", showlegend=col == 1, visible=visible,
                    line=dict(color=SERIES_COLOURS[0]),
                    error_y=dict(type="data", symmetric=False,
                                 array=_nan_to_none(np.where(np.isfinite(high), high - median,
                                                             np.nan)),
                                 arrayminus=_nan_to_none(median - low)),
                    customdata=np.stack([best["base_lr"].to_numpy(),
                                         best["reached"].to_numpy(),
                                         best["seeds"].to_numpy()], axis=1),
                    hovertemplate="m = %{x}: %{y:.0f} at η̃ = %{customdata[0]:.3g} "
                                  "(%{customdata[1]} of %{customdata[2]} seeds reached it)"
                                  "<extra></extra>"), row=1, col=col)
                owners.append(label)
                ref = (median[0] * sizes[0] / np.asarray(sizes, dtype=float) if scale
                       else np.full(len(sizes), median[0]))
                fig.add_trace(go.Scatter(
                    x=sizes, y=ref, mode="lines", name="perfect scaling", legendgroup="perfect",
                    showlegend=col == 1, visible=visible,
                    line=dict(color="grey", dash="dash"), hoverinfo="skip"), row=1, col=col)
                owners.append(label)
                if critical["status"] == "fit":
                    grid = np.geomspace(min(sizes), max(sizes), 60)
                    curve = critical["fit"].steps(grid) * (grid if not scale else 1)
                    fig.add_trace(go.Scatter(
                        x=grid, y=curve, mode="lines", name="S = S_min + E_min / m",
                        legendgroup="fit", showlegend=col == 1, visible=visible,
                        line=dict(color=SERIES_COLOURS[1]), hoverinfo="skip"), row=1, col=col)
                    owners.append(label)
    active = len(labels) // 2

    def heading(label):
        return _with_note(f"{title}: target {label}; {headings[label]}", note)

    fig.update_xaxes(**_log2_axis("batch size m (log2 scale)", sizes_all or [1, 2], pad=0.15))
    fig.update_yaxes(type="log", title_text="SGD steps", row=1, col=1)
    fig.update_yaxes(type="log", title_text="training examples", row=1, col=2)
    room = _note_room(note)
    fig.update_layout(title=_title_box(heading(labels[active]) if labels else title),
                      height=520 + room, margin=dict(t=130 + room, b=150),
                      legend=dict(orientation="h", yanchor="top", y=-0.22, x=0),
                      sliders=[_visibility_slider(owners, [(lab, lab) for lab in labels],
                                                  heading, active=active, pad=90,
                                                  prefix="target: ")] if labels else [])
    return fig


def equal_steps(series: dict, reference: int, margin: float, title: str, note: str = ""
                ) -> go.Figure:
    """The best test accuracy against m, one line per set of runs (e.g. every m given the
    same SGD steps, and every m given the same epochs), with a bar from the lowest to the
    highest seed at each best cell; the band is the noise margin below the first set's best
    at m = ``reference``.

    Args:
        series: label -> ``best_per_batch`` table (median, low, high, log2_base_lr, seeds).
    """
    fig = go.Figure()
    first = next(iter(series.values()))
    if reference in first.index:
        bar = float(first.loc[reference, "median"])
        fig.add_hrect(y0=bar - margin, y1=bar + margin, fillcolor="grey", opacity=0.15,
                      line_width=0)
        fig.add_hline(y=bar, line=dict(color="grey", dash="dot"),
                      annotation_text=f"m = {reference}'s best ± margin",
                      annotation_position="bottom left")
    sizes_all = sorted({int(m) for best in series.values() for m in best.index})
    for k, (label, best) in enumerate(series.items()):
        sizes = [int(m) for m in best.index]
        fig.add_trace(go.Scatter(
            x=sizes, y=best["median"], mode="lines+markers", name=label,
            line=dict(color=SERIES_COLOURS[k % len(SERIES_COLOURS)]),
            error_y=dict(type="data", symmetric=False, array=best["high"] - best["median"],
                         arrayminus=best["median"] - best["low"]),
            customdata=np.stack([best["log2_base_lr"], best["seeds"]], axis=1),
            hovertemplate=f"{label}, m = %{{x}}: %{{y:.4f}} at log2 η̃ = %{{customdata[0]}} "
                          "(%{customdata[1]} seeds)<extra></extra>"))
    room = _note_room(note)
    fig.update_layout(title=_title_box(_with_note(title, note)), height=480 + room,
                      margin=dict(t=110 + room, b=120),
                      xaxis=_log2_axis("batch size m (log2 scale)", sizes_all, pad=0.15),
                      yaxis_title="best test accuracy (median of the last 5 epochs)",
                      legend=dict(orientation="h", yanchor="top", y=-0.2, x=0))
    return fig


def accuracy_at_steps(by_steps: dict, title: str, note: str = "") -> go.Figure:
    """The best test accuracy reached after exactly S SGD steps against m, a slider over S.
    Per m the best cell's median over seeds (bars: lowest to highest seed); the hover says
    how far through its own schedule that m's runs are at S.

    Args:
        by_steps: S -> ``budget.best_at_steps`` table.
    """
    fig = go.Figure()
    owners, keys = [], []
    counts = list(by_steps)
    active = len(counts) // 2
    sizes_all = sorted({int(m) for best in by_steps.values() for m in best.index})
    for k, steps in enumerate(counts):
        best = by_steps[steps]
        keys.append((steps, _short_count(steps)))
        fig.add_trace(go.Scatter(
            x=[int(m) for m in best.index], y=best["median"], mode="lines+markers",
            name=f"after {steps} steps", visible=k == active, showlegend=False,
            line=dict(color=SERIES_COLOURS[0]),
            error_y=dict(type="data", symmetric=False, array=best["high"] - best["median"],
                         arrayminus=best["median"] - best["low"]),
            customdata=np.stack([best["log2_base_lr"], best["schedule_fraction"]], axis=1),
            hovertemplate="m = %{x}: %{y:.4f} at log2 η̃ = %{customdata[0]}, "
                          "%{customdata[1]:.0%} through its schedule<extra></extra>"))
        owners.append(steps)

    def heading(steps):
        return _with_note(f"{title}: after {steps:,} SGD steps", note)

    room = _note_room(note)
    fig.update_layout(
        title=_title_box(heading(counts[active]) if counts else title), height=500 + room,
        margin=dict(t=110 + room, b=110),
        xaxis=_log2_axis("batch size m (log2 scale)", sizes_all or [1, 2], pad=0.15),
        yaxis_title="best test accuracy at that step",
        sliders=[_visibility_slider(owners, keys, heading, active=active, pad=60,
                                    prefix="SGD steps: ")] if counts else [])
    return fig


def fit_and_gap(tables: dict, title: str, note: str = "") -> go.Figure:
    """At each m's best cell: left, the last epoch's training loss (log); right, the
    training accuracy less the test accuracy (the generalisation gap), one line per set of
    runs.

    Args:
        tables: label -> ``budget.fit_at_best`` table.
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
        "training loss, last epoch (train mode)", "training less test accuracy, last epoch"))
    sizes_all = sorted({int(m) for t in tables.values() for m in t.index})
    for k, (label, table) in enumerate(tables.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        sizes = [int(m) for m in table.index]
        for col, column in ((1, "train_loss"), (2, "gap")):
            fig.add_trace(go.Scatter(
                x=sizes, y=table[column], mode="lines+markers", name=label, legendgroup=label,
                showlegend=col == 1, line=dict(color=colour),
                hovertemplate=f"{label}, m = %{{x}}: %{{y:.4f}}<extra></extra>"), row=1, col=col)
    fig.update_xaxes(**_log2_axis("batch size m (log2 scale)", sizes_all or [1, 2], pad=0.15))
    fig.update_yaxes(type="log", title_text="mean cross-entropy (nats)", row=1, col=1)
    fig.update_yaxes(title_text="accuracy gap", row=1, col=2)
    room = _note_room(note)
    legend_room = 24 * len(tables)
    fig.update_layout(title=_title_box(_with_note(title, note)),
                      height=480 + room + legend_room,
                      margin=dict(t=110 + room, b=90 + legend_room),
                      legend=dict(orientation="h", yanchor="top", y=-0.25, x=0))
    return fig
