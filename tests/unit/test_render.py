"""The book's figure renderer takes the provenance note out of a figure's title and puts it
in a line under the figure (book: every chapter with a figure; smallbatch_book.render)."""

import json
import re

import plotly.graph_objects as go
import pytest

from smallbatch.figures.style import _highlight_slider, _note_room, _title_box, _with_note
from smallbatch_book import render

NOTE = ("study resnet-bn (scaled): 312 of 312 trials stored; code commit(s) 25888aa21d, "
        "25d16e0ea3, 39f2dcb5ab, 5caf0f1538, bcc387290a, f4c968bbba")
TWO_NOTES = NOTE + "; study resnet-nobn (scaled): 280 of 288 trials stored; code commit(s) none"


def _figure(note: str) -> go.Figure:
    """A figure as smallbatch.figures builds one: a title with its note, the note's room in
    the top margin and the height, and a slider whose steps retitle the figure."""
    fig = go.Figure([go.Scatter(x=[1, 2], y=[1, 2], name="m = 2"),
                     go.Scatter(x=[1, 2], y=[2, 1], name="m = 4")])

    def heading(key):
        return _with_note("Accuracy" if key is None else f"Accuracy: m = {key}", note)

    fig.update_layout(title=_title_box(heading(None)), height=500 + _note_room(note),
                      margin=dict(t=100 + _note_room(note)),
                      sliders=[_highlight_slider([2, 4], [2, 4], heading, pad=50,
                                                 prefix="m: ")])
    return fig


def _payload(html: str) -> tuple[list, dict]:
    """The data and layout a snippet passes to Plotly.newPlot."""
    start = html.index("Plotly.newPlot(")
    decoder = json.JSONDecoder()
    rest = html[html.index("[", start):]
    data, end = decoder.raw_decode(rest)
    rest = rest[end:].lstrip(" ,\n")
    layout, _ = decoder.raw_decode(rest)
    return data, layout


@pytest.mark.parametrize("note", [NOTE, TWO_NOTES, "study s (scaled): 4 of 4 trials stored"])
def test_split_note_gives_the_title_and_the_note_rejoined(note):
    title = _with_note("Accuracy against η̃", note)
    assert title.count("<sup>") >= (2 if len(note) > 100 else 1)  # a long note is wrapped
    assert render.split_note(title) == ("Accuracy against η̃", note)


@pytest.mark.parametrize("title", [
    "Accuracy against η̃",
    # a <sup> line that carries data stays in the title: a slider's value, the explorer's cell
    "Learning-rate scaling, m = 128<br><sup>η: linear 0.5, sqrt 0.25, none 0.125</sup>",
    "Update covariance, m = 32<br><sup>measured / predicted<br>after 1 epoch: 0.902</sup>",
    "resnet-bn: Fashion-MNIST<br><sup>m = 16, η̃ = 2^-5: median 0.8906 over 3 seeds</sup>",
    # provenance-like words that are not a provenance note
    "Two studies<br><sup>the study of trials stored in results/</sup>",
])
def test_split_note_leaves_other_titles_whole(title):
    assert render.split_note(title) == (title, "")


def test_the_note_leaves_the_title_the_slider_steps_and_the_margin_it_had_added():
    fig = _figure(TWO_NOTES)
    room = _note_room(TWO_NOTES)
    assert room > 0
    before = fig.to_dict()
    moved, note = render.move_note_out_of_title(before)
    assert note == TWO_NOTES
    layout = moved["layout"]
    assert layout["title"]["text"] == "Accuracy"
    assert layout["title"]["yref"] == "container"  # the rest of the title box is kept
    assert layout["margin"]["t"] == 100 and layout["height"] == 500
    titles = [step["args"][1]["title.text"] for step in layout["sliders"][0]["steps"]]
    assert titles == ["Accuracy", "Accuracy: m = 2", "Accuracy: m = 4"]
    assert "trials stored" not in json.dumps(moved)
    # the figure passed in is not changed
    assert before == fig.to_dict()


def test_a_figure_without_a_note_comes_back_unchanged():
    fig = _figure("").to_dict()
    moved, note = render.move_note_out_of_title(fig)
    assert (moved, note) == (fig, "")
    assert render.note_html("") == ""


def test_figure_html_puts_the_note_in_a_line_under_the_figure():
    html = render.figure_html(_figure(NOTE))
    data, layout = _payload(html)
    assert layout["title"]["text"] == "Accuracy"
    assert "trials stored" not in json.dumps(layout)
    notes = re.findall(rf'<p class="{render.NOTE_CLASS}">(.*?)</p>', html)
    assert notes == [NOTE]
    assert html.index("plotly-graph-div") < html.index(render.NOTE_CLASS)
    assert [trace["name"] for trace in data] == ["m = 2", "m = 4"]

    plain = render.figure_html(_figure(""))
    assert render.NOTE_CLASS not in plain


def test_the_note_line_is_escaped_html():
    assert render.note_html("study a<b (scaled): 1 of 1 trials stored; code commit(s) x&amp;y") \
        == f'<p class="{render.NOTE_CLASS}">study a&lt;b (scaled): 1 of 1 trials stored; ' \
           'code commit(s) x&amp;y</p>'
