"""What every figure of the book shares: a title with its provenance note in small type, the
log2 batch-size and learning-rate axes, slider steps that highlight or restyle traces, the
colours of batch sizes and of compared sets of runs.
"""

from __future__ import annotations

import math
import textwrap

import plotly.graph_objects as go


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


def _log2_axis(title: str, values=None, *, pad: float = 0.1, octaves: int = 1) -> dict:
    """A log axis with a tick every ``octaves`` powers of two, labelled as integers; with
    ``values``, its range reaches ``pad`` decades past their smallest and largest."""
    axis = dict(title_text=title, type="log", dtick=octaves * math.log10(2), tickformat="d")
    if values is not None:
        axis["range"] = [math.log10(min(values)) - pad, math.log10(max(values)) + pad]
    return axis


def _log2_batch_axis(batch_sizes) -> dict:
    return _log2_axis("batch size B (log2 scale)", batch_sizes)


def _nan_to_none(values) -> list:
    return [None if v is None or not math.isfinite(v) else float(v) for v in values]


def _spread(batch_sizes, index: int, count: int, octaves: float = 0.12) -> list[float]:
    """Batch sizes shifted by a fraction of an octave so ``count`` series side by side do
    not hide each other's error bars; series ``index`` of ``count``."""
    shift = 2.0 ** (octaves * (index - (count - 1) / 2))
    return [m * shift for m in batch_sizes]


def _batch_colours(batch_sizes) -> dict[int, str]:
    """One colour per batch size along a perceptual scale (small m dark, large m yellow)."""
    from plotly.colors import sample_colorscale

    count = len(batch_sizes)
    positions = [k / max(1, count - 1) for k in range(count)]
    return dict(zip(batch_sizes, sample_colorscale("Viridis", [0.9 * p for p in positions])))


# Distinct colours for the sets of runs one figure compares (up to seven; then they repeat).
SERIES_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _lr_axis(lrs) -> dict:
    low, high = math.log10(min(lrs)), math.log10(max(lrs))
    return dict(title_text="base learning rate η̃ (per example, log scale)", type="log",
                exponentformat="power", range=[low - 0.2, high + 0.2])


def _short_count(value: float) -> str:
    """8192 -> "8.2k", 81920 -> "82k", 1.2e6 -> "1.2M": short tick labels."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            scaled = value / scale
            return f"{scaled:.1f}{suffix}" if scaled < 10 else f"{scaled:.0f}{suffix}"
    return f"{value:.0f}"


def _margin_band(fig: go.Figure, top: float, margin: float, *, row=None, col=None,
                 what: str = "the best") -> None:
    """Shade the noise margin below ``top``, [top - margin, top]: a point inside the band is
    not read as different from the best (book: the verdicts' rules)."""
    where = {} if row is None else {"row": row, "col": col}
    fig.add_hrect(y0=top - margin, y1=top, fillcolor="grey", opacity=0.15, line_width=0,
                  annotation_text=f"noise margin below {what} ({100 * margin:.1f} points)",
                  annotation_position="bottom left", annotation_font_size=10, **where)


def _margin_line(x, top: float, margin: float, colour: str, label: str) -> go.Scatter:
    """A dotted line at ``top - margin`` over ``x``, in a series' colour, grouped with the
    series ``label`` (for figures with several series, each with its own best and margin)."""
    return go.Scatter(x=list(x), y=[top - margin] * len(x), mode="lines", legendgroup=label,
                      name=f"{label}: best less its noise margin", showlegend=False,
                      line=dict(color=colour, dash="dot", width=1),
                      hovertemplate=(f"{label}: best {top:.4f} less its noise margin "
                                     f"{margin:.4f}<extra></extra>"))


HIGHLIGHT_OPACITY = 0.15  # the traces a highlight slider leaves in the background


def _highlight_slider(owners, keys, heading, *, pad: int, prefix: str) -> dict:
    """A slider that highlights one key's traces at a time: "all" first (every trace at
    full opacity and width 2), then one step per key (its traces at width 4, the others
    faded to HIGHLIGHT_OPACITY at width 1), each step retitling the figure with
    ``heading(key)`` (``heading(None)`` for "all"). ``owners``: the key of each trace."""
    steps = [dict(method="update", label="all",
                  args=[{"opacity": [1.0] * len(owners), "line.width": [2] * len(owners)},
                        {"title.text": heading(None)}])]
    for key in keys:
        steps.append(dict(method="update", label=str(key),
                          args=[{"opacity": [1.0 if o == key else HIGHLIGHT_OPACITY
                                             for o in owners],
                                 "line.width": [4 if o == key else 1 for o in owners]},
                                {"title.text": heading(key)}]))
    return dict(active=0, steps=steps, pad=dict(t=pad), currentvalue=dict(prefix=prefix))
