"""Live controls in Jupyter (book: the "Live controls" sections of the theory chapters): a
row of sliders and menus above an output area, and a draw function that is called again
with the controls' values whenever one of them moves.

ipywidgets is optional at runtime: it is imported only when a live figure is built. The
book build runs these cells, but the static page drops widget outputs (a cell left with
nothing else is hidden); every figure of the static page has its own plotly controls, so
the live ones only add recomputation in Jupyter.

A control is described here (:class:`Control`, made by :func:`int_slider`,
:func:`choice_slider`, :func:`menu` and :func:`log_slider`) and built as an ipywidget by
:func:`live_figure`, so the chapters' widgets are written once, without importing
ipywidgets where they are described.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Control", "int_slider", "choice_slider", "menu", "log_slider", "live_figure"]


@dataclass(frozen=True)
class Control:
    """One control: the ipywidgets class (``widget``, e.g. "IntSlider") and its keyword
    arguments, in the order they are passed."""

    widget: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def build(self, widgets):
        """The ipywidget (``widgets`` is the ipywidgets module)."""
        return getattr(widgets, self.widget)(**self.arguments)


def int_slider(description: str, value: int, low: int, high: int) -> Control:
    """An integer slider from ``low`` to ``high`` (both included), starting at ``value``."""
    if not low <= value <= high:
        raise ValueError(f"{description}: value {value} is outside [{low}, {high}]")
    return Control("IntSlider", dict(value=value, min=low, max=high, description=description))


def choice_slider(description: str, options: Sequence, value) -> Control:
    """A slider over the listed ``options`` (e.g. the batch sizes of a grid)."""
    options = list(options)
    if value not in options:
        raise ValueError(f"{description}: value {value!r} is not one of {options}")
    return Control("SelectionSlider", dict(options=options, value=value,
                                           description=description))


def menu(description: str, options: Sequence, value=None) -> Control:
    """A drop-down menu of ``options``; ``value=None``: the first option."""
    options = list(options)
    if not options:
        raise ValueError(f"{description}: a menu needs at least one option")
    if value is None:
        return Control("Dropdown", dict(options=options, description=description))
    if value not in options:
        raise ValueError(f"{description}: value {value!r} is not one of {options}")
    return Control("Dropdown", dict(options=options, value=value, description=description))


def log_slider(description: str, value: float, *, base: float, low: float, high: float,
               step: float) -> Control:
    """A slider over base^low ... base^high, moving ``step`` in the exponent."""
    return Control("FloatLogSlider", dict(value=value, base=base, min=low, max=high, step=step,
                                          description=description))


def live_figure(draw: Callable[..., Any], controls: Mapping[str, Control], *,
                placeholder: Any = None):
    """The controls in a row above an output area that shows ``draw(**values)``, values being
    ``{name: the control's value}`` for the named ``controls``; every move of a control
    draws again and replaces what the output area showed (book: "Live controls").

    Args:
        draw: returns what to show (a figure, a DataFrame, Markdown ...).
        controls: keyword argument of ``draw`` -> :class:`Control`, in display order.
        placeholder: shown until the first move instead of drawing at once (for a draw
            that is slow or loads data); None: draw at once.

    Returns:
        the ipywidgets ``VBox`` to display: ``HBox(controls)`` above an ``Output``.
    """
    import ipywidgets as widgets
    from IPython.display import display

    if not controls:
        raise ValueError("a live figure needs at least one control")
    built = {name: control.build(widgets) for name, control in controls.items()}
    output = widgets.Output()

    def show(shown) -> None:
        with output:
            output.clear_output(wait=True)
            display(shown)

    def redraw(change=None) -> None:
        show(draw(**{name: control.value for name, control in built.items()}))

    for control in built.values():
        control.observe(redraw, names="value")
    if placeholder is None:
        redraw()
    else:
        show(placeholder)
    return widgets.VBox([widgets.HBox(list(built.values())), output])
