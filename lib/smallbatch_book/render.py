"""Plotly renderer for the static book: figures as inline HTML, plotly.js served locally.

In a papermill kernel plotly's default renderer emits only its own mimetype
(``application/vnd.plotly.v1+json``), which myst-nb cannot put into static HTML, so the
figure would be missing from the book. The ``smallbatch_book`` renderer emits a
``text/html`` snippet instead: a ``<div>`` plus a ``Plotly.newPlot`` call, without
plotly.js itself. The book's Sphinx extension (``smallbatch_book.sphinxext``) loads the
plotly.min.js shipped in the plotly package from ``_static`` on every page that has a
figure, so the rendered book makes no request outside its own folder.

``smallbatch_book.build`` sets ``SMALLBATCH_BOOK_BUILD=1`` in the kernels it starts and
has each run ``activate_if_building()`` before the first cell, which switches the default
renderer: notebooks need no boilerplate, no library module changes plotly's state, and
Jupyter keeps its usual renderer.
Nothing here does I/O or touches plotly's state at import time.

A figure's provenance note (study, trials stored, code commits: what
``smallbatch.figures.style._with_note`` hangs under a title in ``<sup>`` lines) is not
part of its title in the book: :func:`figure_html` takes it out of the title, out of every
title a slider step or a menu button sets, and out of the room the note had added to the
top margin and the height, and puts it in a small line under the figure
(``<p class="smallbatch-figure-note">``, styled in ``book/_static/smallbatch.css``).
``book/_static/responsive.js`` fits each figure to narrow screens in the browser.
"""

from __future__ import annotations

import copy
import html
import os
import re

RENDERER_NAME = "smallbatch_book"
BUILD_ENV_VAR = "SMALLBATCH_BOOK_BUILD"

# Plotly.js config for every figure in the book: resize with the page column, and no
# control that leads off the page (the modebar's plotly logo links to plotly.com; "send
# to cloud" uploads the figure). Only keys plotly.py knows: an unknown one makes it warn,
# and the warning would be printed into the notebook's output.
PLOTLY_CONFIG: dict = {
    "responsive": True,
    "displaylogo": False,
    "showSendToCloud": False,
    "toImageButtonOptions": {"format": "png", "scale": 2},
}

# A figure without an explicit layout.height gets this many pixels. plotly's own default
# ("100%") collapses to nothing inside a block whose height is set by its content.
DEFAULT_HEIGHT_PX = 480

# The class of the line under a figure that holds its provenance note.
NOTE_CLASS = "smallbatch-figure-note"

# The pixels one wrapped line of note added to a figure's top margin and height beyond the
# first (smallbatch.figures.style.NOTE_LINE_PX; kept here so that the book layer does not
# reach into a figure module's private names).
NOTE_LINE_PX = 24

_SUP_LINE = re.compile(r"^\s*<sup>(.*?)</sup>\s*$", re.DOTALL)
# A provenance note as smallbatch.analysis.StudyData.provenance_note writes it (several
# are joined with "; ").
_PROVENANCE = re.compile(r"^study \S+ \(.*?\): \d+ of \d+ trials stored\b")


def split_note(title: str) -> tuple[str, str]:
    """Split a figure title into (title, provenance note).

    The note is the run of ``<sup>`` lines that ends the title (separated by ``<br>``),
    when together they read as a provenance note ("study NAME (SCALE...): N of N trials
    stored; code commit(s) ..."); its wrapped lines are joined again with spaces. Any
    other title, a ``<sup>`` line that carries data (a slider's value, the explorer's cell)
    included, comes back whole with an empty note.
    """
    parts = title.split("<br>")
    for start in range(1, len(parts)):
        lines = [_SUP_LINE.match(part) for part in parts[start:]]
        if all(lines):
            note = " ".join(line.group(1).strip() for line in lines)
            if _PROVENANCE.match(note):
                return "<br>".join(parts[:start]), note
    return title, ""


def _title_text(title) -> str | None:
    if isinstance(title, str):
        return title
    if isinstance(title, dict) and isinstance(title.get("text"), str):
        return title["text"]
    return None


def _take_note(owner: dict, key: str) -> tuple[str, int]:
    """Take the provenance note out of the title ``owner[key]`` (a string, or a dict with
    ``text``), in place; return the note and how many ``<sup>`` lines it had."""
    text = _title_text(owner.get(key))
    if text is None:
        return "", 0
    plain, note = split_note(text)
    if not note:
        return "", 0
    if isinstance(owner[key], dict):
        owner[key] = {**owner[key], "text": plain}
    else:
        owner[key] = plain
    return note, text.count("<br>") - plain.count("<br>")


def _control_updates(layout: dict):
    """Every layout update a slider step or menu button of ``layout`` applies."""
    controls = [(s, "steps") for s in layout.get("sliders") or []]
    controls += [(m, "buttons") for m in layout.get("updatemenus") or []]
    for control, key in controls:
        for item in control.get(key) or []:
            method = item.get("method")
            for args_key in ("args", "args2"):
                args = item.get(args_key) or []
                # "update": [data, layout, traces]; "relayout": [layout]; "animate" and
                # "restyle" set no title.
                index = {"update": 1, "relayout": 0}.get(method)
                if index is not None and len(args) > index and isinstance(args[index], dict):
                    yield args[index]


def move_note_out_of_title(fig: dict) -> tuple[dict, str]:
    """Return (a copy of ``fig`` without its provenance note, the note).

    The note leaves the layout's title, every title a slider step or menu button sets, and
    every frame's title; the top margin and the height lose the room the note's extra lines
    had added (NOTE_LINE_PX a line beyond the first). A figure without a note comes back
    unchanged, with an empty note. Different notes (rare: a step with its own) are joined
    with "; " in the order met.
    """
    fig = copy.deepcopy(fig)
    layout = fig.setdefault("layout", {})
    note, lines = _take_note(layout, "title")
    notes = [note] if note else []
    updates = list(_control_updates(layout))
    updates += [f["layout"] for f in fig.get("frames") or [] if isinstance(f.get("layout"), dict)]
    for update in updates:
        for key in ("title.text", "title"):  # the keys plotly.js's relayout takes
            found, found_lines = _take_note(update, key)
            if found:
                notes.append(found)
                lines = lines or found_lines
    if not notes:
        return fig, ""
    # The room the note took beyond its first line (style._note_room), as the figure's own
    # title had it (a step's title hangs in the same box).
    room = NOTE_LINE_PX * max(0, lines - 1)
    margin = layout.get("margin") or {}
    if room and isinstance(margin.get("t"), (int, float)) and margin["t"] > room:
        layout["margin"] = {**margin, "t": margin["t"] - room}
        if isinstance(layout.get("height"), (int, float)) and layout["height"] > room:
            layout["height"] -= room
    unique = list(dict.fromkeys(notes))
    return fig, "; ".join(unique)


def note_html(note: str) -> str:
    """The line under a figure that holds its provenance note (empty for no note)."""
    if not note:
        return ""
    return f'<p class="{NOTE_CLASS}">{html.escape(html.unescape(note))}</p>'


def figure_html(fig, *, div_id: str | None = None) -> str:
    """Return the book's HTML snippet for a figure (a plotly Figure or figure dict): the
    figure without its provenance note in the title, and the note in a line under it
    (:func:`move_note_out_of_title`).

    The snippet expects ``window.Plotly`` to exist already; see ``smallbatch_book.sphinxext``.
    """
    import plotly.io as pio

    fig_dict = fig.to_dict() if hasattr(fig, "to_dict") else fig
    fig_dict, note = move_note_out_of_title(fig_dict)
    return pio.to_html(
        fig_dict,
        config=PLOTLY_CONFIG,
        include_plotlyjs=False,
        include_mathjax=False,
        full_html=False,
        default_width="100%",
        default_height=f"{DEFAULT_HEIGHT_PX}px",
        div_id=div_id,
        # A figure with frames waits for the reader; the sliders drive it.
        auto_play=False,
        validate=False,
    ) + note_html(note)


def _renderer_class():
    # Defined lazily so that importing this module does not import plotly.
    from plotly.io.base_renderers import MimetypeRenderer

    class BookHtmlRenderer(MimetypeRenderer):
        """Inline ``text/html`` for the static book; plotly.js comes from ``_static``."""

        def to_mimebundle(self, fig_dict):
            return {"text/html": figure_html(fig_dict)}

    return BookHtmlRenderer


def register() -> None:
    """Register the ``smallbatch_book`` renderer with plotly (idempotent)."""
    import plotly.io as pio

    if RENDERER_NAME not in pio.renderers:
        pio.renderers[RENDERER_NAME] = _renderer_class()()


def is_building() -> bool:
    """True inside a kernel started by the book build (``SMALLBATCH_BOOK_BUILD=1``)."""
    return os.environ.get(BUILD_ENV_VAR, "") == "1"


def activate_if_building() -> bool:
    """Make ``smallbatch_book`` plotly's default renderer if the book is being built.

    Returns whether it did. Outside the book build (Jupyter, scripts) nothing changes.
    """
    if not is_building():
        return False
    import plotly.io as pio

    register()
    pio.renderers.default = RENDERER_NAME
    return True
