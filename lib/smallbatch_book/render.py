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
"""

from __future__ import annotations

import os

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


def figure_html(fig, *, div_id: str | None = None) -> str:
    """Return the book's HTML snippet for a figure (a plotly Figure or figure dict).

    The snippet expects ``window.Plotly`` to exist already; see ``smallbatch_book.sphinxext``.
    """
    import plotly.io as pio

    return pio.to_html(
        fig,
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
    )


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
