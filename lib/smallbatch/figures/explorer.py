"""The explorer (book: "Explore the stored runs"): one figure over every stored run, with a
chooser for the set of runs and two sliders, batch size m and learning rate eta_tilde,
acting together.

Plotly's sliders act one at a time: a step can only apply its own precomputed change. So
the sliders and the chooser here change nothing themselves (method "skip"), and the book's
script ``book/_static/explorer.js`` redraws the figure from the data embedded in it
(``layout.meta.smallbatchExplorer``, from :func:`smallbatch.analysis.explorer_data`)
whenever one of them moves. This module draws the first state, in the same way.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis.explorer import best_cell, cell_text
from .style import _title_box

__all__ = ["explorer", "EXPLORER_META", "cell_traces"]


EXPLORER_META = "smallbatchExplorer"  # the key of the data in layout.meta

SEED_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")

PANELS = ("test accuracy against epoch", "training loss against epoch",
          "test accuracy against SGD steps", "median test accuracy against η̃ at this m")


def cell_traces(entry: dict, m: int, log2_lr: int, slots: int) -> list[dict]:
    """x, y and visibility of the figure's traces for one cell, in trace order: per seed
    slot, accuracy by epoch, loss by epoch, accuracy by step (slots x 3); then m's curve of
    median accuracy against log2 eta_tilde, and the chosen cell's seeds on it.
    ``explorer.js`` computes the same."""
    cell = entry["cells"].get(f"{m}|{log2_lr}")
    runs = []
    for k in range(slots):
        if cell is None or k >= len(cell["seeds"]):
            runs.append(None)
            continue
        acc, loss = cell["acc"][k], cell["loss"][k]
        epochs = list(range(1, len(acc) + 1))
        runs.append((cell["seeds"][k], epochs, acc, loss, [e * (cell["steps"] or 0)
                                                             for e in epochs]))
    traces = []
    for panel in range(3):
        for k, run in enumerate(runs):
            if run is None:
                traces.append({"x": [], "y": [], "visible": False, "name": f"slot {k}"})
                continue
            seed, epochs, acc, loss, steps = run
            x = steps if panel == 2 else epochs
            y = loss if panel == 1 else acc
            traces.append({"x": x, "y": y, "visible": True, "name": f"seed {seed}"})
    curve = entry["curve"].get(str(m), [])
    traces.append({"x": [p[0] for p in curve], "y": [p[1] for p in curve], "visible": True,
                   "name": f"m = {m}: median"})
    chosen = ([log2_lr] * len(cell["score"]), cell["score"]) if cell else ([], [])
    traces.append({"x": chosen[0], "y": chosen[1], "visible": bool(cell),
                   "name": "this cell's seeds"})
    return traces


def _title(entry: dict, m: int, log2_lr: int) -> str:
    return f"{entry['label']}<br><sup>{cell_text(entry, m, log2_lr)}</sup>"


def explorer(data: dict, first: str | None = None, m: int | None = None,
             log2_lr: int | None = None, *, controls: bool = True) -> go.Figure:
    """The explorer over :func:`~smallbatch.analysis.explorer_data`, showing the set
    labelled ``first`` (default: the first) at cell (m, 2^log2_lr) (default: the m with the
    highest best, at its best eta_tilde). ``controls=False`` leaves out the chooser, the
    sliders and the embedded data (:mod:`smallbatch.live` drives it with ipywidgets)."""
    sets = data["sets"]
    if not sets:
        raise ValueError("no stored run to explore: explorer_data found no set with runs")
    labels = [s["label"] for s in sets]
    index = labels.index(first) if first is not None else 0
    entry = sets[index]
    if m is None:
        m = best_cell(entry)[0]
    if log2_lr is None:
        log2_lr = entry["best"].get(str(m), entry["lr"][0])
    m, log2_lr = int(m), int(log2_lr)
    slots = max(len(c["seeds"]) for s in sets for c in s["cells"].values())

    fig = make_subplots(rows=2, cols=2, subplot_titles=PANELS, vertical_spacing=0.16,
                        horizontal_spacing=0.1)
    traces = cell_traces(entry, m, log2_lr, slots)
    for panel, (row, col) in enumerate([(1, 1), (1, 2), (2, 1)]):
        for k in range(slots):
            t = traces[panel * slots + k]
            fig.add_trace(go.Scatter(
                x=t["x"], y=t["y"], visible=t["visible"], name=t["name"],
                mode="lines+markers", marker=dict(size=4),
                line=dict(color=SEED_COLOURS[k % len(SEED_COLOURS)]),
                legendgroup=f"slot {k}", showlegend=panel == 0,
                hovertemplate="%{x}: %{y:.4f}<extra>%{fullData.name}</extra>"), row=row, col=col)
    curve, chosen = traces[-2], traces[-1]
    fig.add_trace(go.Scatter(x=curve["x"], y=curve["y"], name=curve["name"],
                             mode="lines+markers", line=dict(color="#7f7f7f"),
                             hovertemplate="log2 η̃ = %{x}: %{y:.4f}<extra></extra>"),
                  row=2, col=2)
    fig.add_trace(go.Scatter(x=chosen["x"], y=chosen["y"], visible=chosen["visible"],
                             name=chosen["name"], mode="markers",
                             marker=dict(size=11, symbol="diamond-open", color="#000000",
                                         line=dict(width=2)),
                             hovertemplate="log2 η̃ = %{x}: %{y:.4f}<extra></extra>"),
                  row=2, col=2)

    def slider(name, values, active, prefix, y):
        return dict(name=name, active=active, x=0.0, len=1.0, y=y, yanchor="top",
                    pad=dict(t=10, b=0), currentvalue=dict(prefix=prefix),
                    steps=[dict(method="skip", label=str(v), args=[None]) for v in values])

    lrs = entry["lr"]
    fig.update_layout(title=_title_box(_title(entry, m, log2_lr)),
                      legend=dict(orientation="h", x=0, y=1.06, yanchor="bottom"))
    if controls:
        fig.update_layout(
            height=900, margin=dict(t=170, b=230, l=60, r=20),
            meta={EXPLORER_META: data, "slots": slots},
            updatemenus=[dict(type="dropdown", direction="down", active=index, x=0, y=1.16,
                              xanchor="left", yanchor="bottom", showactive=True,
                              buttons=[dict(method="skip", label=label, args=[None])
                                       for label in labels])],
            sliders=[slider("m", entry["m"], entry["m"].index(m), "batch size m = ", -0.1),
                     slider("lr", lrs, lrs.index(log2_lr), "log2 η̃ = ", -0.24)])
    else:
        fig.update_layout(height=720, margin=dict(t=130, b=60, l=60, r=20))
    fig.update_xaxes(title_text="epoch", row=1, col=1)
    fig.update_xaxes(title_text="epoch", row=1, col=2)
    fig.update_xaxes(title_text="SGD steps", row=2, col=1)
    fig.update_xaxes(title_text="log2 η̃", row=2, col=2)
    fig.update_yaxes(type="log", row=1, col=2)
    return fig
