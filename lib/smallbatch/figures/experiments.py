"""The experiments chapters' figures (book part "The experiments"): accuracy against the
learning rate per batch size, best and good range per batch size, training curves, ghost
batch norm and warm-up.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis.cells import best_first
from ..data import DATASET_LABELS
from .style import (SERIES_COLOURS, _batch_colours, _highlight_slider, _log2_axis,
                    _margin_band, _margin_line, _note_room, _short_count, _spread, _title_box,
                    _with_note)


def accuracy_vs_lr(cells: pd.DataFrame, title: str, note: str = "",
                   chance: float | None = None, margin: float | None = None) -> go.Figure:
    """Test accuracy (median over seeds, bars: min to max) against log2 eta_tilde, one
    curve per batch size m, as in the paper's figures; a slider picks one m (the others
    fade) and writes its best point into the title; its first step shows every m alike.

    Args:
        cells: ``analysis.cell_summary`` output (batch_size, log2_base_lr, median, low,
            high, seeds, diverged).
        title: the figure title; ``note``: a second line (study, trials, commit).
        chance: draw the chance level as a dotted line.
        margin: shade the noise margin below the best cell of all m.
    """
    needed = {"batch_size", "log2_base_lr", "median", "low", "high", "seeds", "diverged"}
    if needed - set(cells.columns):
        raise ValueError("pass smallbatch.analysis.cell_summary(...) output")
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
    if margin is not None and cells["median"].notna().any():
        _margin_band(fig, float(cells["median"].max()), margin, what="the best of all m")

    def heading(selected: int | None) -> str:
        if selected is None:
            return _with_note(title, note)
        rows = cells[cells["batch_size"] == selected]
        best = best_first(rows).iloc[0]
        text = (f"{title}: m = {selected}, best η̃ = 2^{int(best['log2_base_lr'])}, median "
                f"{best['median']:.4f} (seeds {best['low']:.4f} to {best['high']:.4f})")
        return _with_note(text, note)

    low, high = int(cells["log2_base_lr"].min()), int(cells["log2_base_lr"].max())
    fig.update_layout(
        title=_title_box(heading(None)), height=560 + _note_room(note),
        margin=dict(t=100 + _note_room(note)),
        xaxis=dict(title_text="base learning rate log2 η̃ (η̃ = η / m)", dtick=1,
                   range=[low - 0.5, high + 0.5]),
        yaxis=dict(title_text="test accuracy (median of last 5 epochs)"),
        legend=dict(title_text="batch size"),
        sliders=[_highlight_slider(batch_sizes, batch_sizes, heading, pad=50,
                                   prefix="highlighted batch size: ")])
    return fig


def accuracy_vs_lr_of(runs) -> go.Figure:
    """:func:`accuracy_vs_lr` of one set of runs (an ``analysis.RunSet``): its cells, titled
    by its label, with its provenance note, its chance level and its noise margin (book:
    "Batch size against learning rate")."""
    return accuracy_vs_lr(runs.cells, runs.label, runs.note, chance=runs.chance,
                          margin=runs.margin)


def best_and_range_by_data(runs: dict) -> list[go.Figure]:
    """:func:`best_and_range` of several sets of runs (label -> ``analysis.RunSet``), one
    figure per data set (in the order the sets first use it), each set with its own margin
    (book: "Best accuracy and the range of good eta_tilde against m")."""
    by_data: dict[str, list] = {}
    for one in runs.values():
        by_data.setdefault(one.base.data, []).append(one)
    return [best_and_range({one.label: (one.bests, one.ranges) for one in sets},
                           {one.label: one.margin for one in sets},
                           "Best accuracy and the range of good η̃ against m: "
                           f"{DATASET_LABELS[data]}",
                           "; ".join(one.note for one in sets))
            for data, sets in by_data.items()]


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


def best_and_range(studies: dict, margins: dict, title: str, note: str = "",
                   own: bool = True) -> go.Figure:
    """Left: the best median test accuracy against m (bars: min to max over seeds at that
    cell), one line per study, with a dotted line at that study's best less its noise
    margin. Right: the range of log2 eta_tilde whose median is within that study's margin
    of each m's own best (``own``, ``good_range(reference="own")``) or of the study's
    overall best (``own=False``), against m: a bar from the lowest to the highest, the
    best marked by an open circle.

    Args:
        studies: label -> (best, ranges) from ``analysis.best_per_batch`` and
            ``analysis.good_range`` (computed with ``margins[label]``).
        margins: label -> that study's noise margin (named in the legend).
    """
    reference = "each m's" if own else "the overall"
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
        "best test accuracy against m",
        f"η̃ within each set's noise margin<br>of {reference} best, against m"))
    for k, (label, (best, ranges)) in enumerate(studies.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        sizes = [int(m) for m in best.index]
        margin = margins[label]
        fig.add_trace(go.Scatter(
            x=sizes, y=best["median"], mode="lines+markers", legendgroup=label,
            name=f"{label} (noise margin {100 * margin:.1f} points)",
            line=dict(color=colour),
            error_y=dict(type="data", symmetric=False, array=best["high"] - best["median"],
                         arrayminus=best["median"] - best["low"]),
            customdata=best["log2_base_lr"],
            hovertemplate=f"{label}, m = %{{x}}: %{{y:.4f}} at log2 η̃ = "
                          "%{customdata}<extra></extra>"), row=1, col=1)
        if len(best):
            fig.add_trace(_margin_line(sizes, float(best["median"].max()), margin, colour,
                                       label), row=1, col=1)
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
    axis = _log2_axis("batch size m (log2 scale)", all_sizes, pad=0.15)
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


_CURVE_PANELS = (  # (column, x, panel title, y title)
    ("train_loss", "examples_seen", "training loss against examples seen",
     "mean cross-entropy (nats)"),
    ("test_accuracy", "examples_seen", "test accuracy against examples seen", "test accuracy"),
    ("train_loss", "steps", "training loss against SGD steps", "mean cross-entropy (nats)"),
    ("test_accuracy", "steps", "test accuracy against SGD steps", "test accuracy"),
)


def training_curves_by_batch(curves: pd.DataFrame, title: str, note: str = "") -> go.Figure:
    """Per-epoch training loss and test accuracy, one curve per batch size m, against examples
    seen (the epochs, when every m sees the same examples per epoch, are marked on the axis)
    and against SGD steps (log scale), median over seeds; a slider highlights one m (book:
    "Training curves"; paper Fig 4).

    Args:
        curves: one row per (batch_size, epoch) with columns batch_size, epoch, steps,
            examples_seen, train_loss, test_accuracy, seeds (``analysis.curves_by_batch``
            output).
    """
    needed = {"batch_size", "epoch", "steps", "examples_seen", "train_loss", "test_accuracy",
              "seeds"}
    if needed - set(curves.columns):
        raise ValueError("pass smallbatch.analysis.curves_by_batch(...) output")
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
                      sliders=[_highlight_slider(owner, batch_sizes, heading, pad=60,
                                                 prefix="highlighted batch size: ")])
    return fig


def ghost_batch_norm(table: pd.DataFrame, title: str, note: str = "",
                     margin: float | None = None) -> go.Figure:
    """Best test accuracy over eta_tilde against the batch-norm batch m_BN (log2 axis), one
    curve per SGD batch size m; the point m_BN = m (ordinary batch norm) is ringed (book:
    "Batch norm's own batch"; paper Figs 13-14). With ``margin``, a dotted line per m at
    its best less the noise margin.

    Args:
        table: ``analysis.ghost_table`` output (index batch_size, bn_batch).
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
        if margin is not None:
            fig.add_trace(_margin_line(rows.index, float(rows["median"].max()), margin,
                                       colours[m], f"m = {m}"))
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
        xaxis=_log2_axis("batch-norm batch m_BN (log2 scale)", bn_sizes, pad=0.15),
        yaxis=dict(title_text="best test accuracy over η̃ (median of last 5 epochs)"))
    return fig


def warmup_comparison(with_warmup: pd.DataFrame, without: pd.DataFrame, title: str,
                      note: str = "", margin: float | None = None) -> go.Figure:
    """Test accuracy against log2 eta_tilde with and without warm-up, one panel per batch
    size m (median over seeds, bars: lowest to highest seed) (book: "Warm-up"; paper Figs
    9-10).

    Args:
        with_warmup, without: ``analysis.cell_summary`` outputs.
        margin: shade the noise margin below each panel's best.
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
        if margin is not None:
            tops = [c.loc[c["batch_size"] == m, "median"].max() for c in (without, with_warmup)]
            _margin_band(fig, float(max(tops)), margin, row=1, col=col,
                         what=f"m = {m}'s best")
    fig.update_xaxes(title_text="log2 η̃", dtick=2)
    fig.update_yaxes(title_text="test accuracy (median of last 5 epochs)", row=1, col=1)
    fig.update_layout(title=_title_box(_with_note(title, note)),
                      height=480 + _note_room(note), margin=dict(t=100 + _note_room(note)),
                      legend=dict(orientation="h", y=-0.2))
    return fig
