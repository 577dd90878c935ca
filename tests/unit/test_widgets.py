"""The live controls of the theory chapters (book: their "Live controls" sections), without a
browser: a control's value is set from Python, and the draw function must be called with
the new values and its result must replace what the output area showed. The last test runs
a real kernel (nbclient mimics the frontend's Output widget) and reads the output back."""

import math

from types import SimpleNamespace

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
from IPython.display import Markdown
from nbclient import NotebookClient

from smallbatch import figures, presets, theory
from smallbatch.figures import theory as figure_module
from smallbatch.figures.widgets import (choice_slider, int_slider, live_figure, log_slider,
                                        menu)
from smallbatch.theory.checkpoints import theory_checkpoints

widgets = pytest.importorskip("ipywidgets")


@pytest.fixture
def shown(monkeypatch):
    """What the live figures display, in order (IPython's display, replaced)."""
    displayed = []
    monkeypatch.setattr("IPython.display.display", lambda obj: displayed.append(obj))
    return displayed


def controls_of(box) -> list:
    return list(box.children[0].children)


def test_controls_refuse_values_they_cannot_take():
    with pytest.raises(ValueError, match="outside"):
        int_slider("k", 7, 0, 5)
    with pytest.raises(ValueError, match="not one of"):
        choice_slider("m", [1, 2, 4], 3)
    with pytest.raises(ValueError, match="not one of"):
        menu("rule", ["linear"], "sqrt")
    with pytest.raises(ValueError, match="at least one option"):
        menu("rule", [])
    with pytest.raises(ValueError, match="at least one control"):
        live_figure(lambda: None, {})


def test_a_move_draws_again_with_the_new_values(shown):
    calls = []

    def draw(k, word, rate):
        calls.append((k, word, rate))
        return f"drawn {k} {word} {rate:g}"

    box = live_figure(draw, {"k": int_slider("k", 2, 0, 5), "word": menu("word", ["a", "b"]),
                             "rate": log_slider("rate", 0.25, base=2, low=-4, high=0,
                                                step=1)})
    assert isinstance(box, widgets.VBox) and isinstance(box.children[1], widgets.Output)
    k, word, rate = controls_of(box)
    assert (k.min, k.max, k.value, k.description) == (0, 5, 2, "k")
    assert calls == [(2, "a", 0.25)] and shown == ["drawn 2 a 0.25"]  # drawn at once
    k.value = 4
    word.value = "b"
    rate.value = 0.5
    assert calls[1:] == [(4, "a", 0.25), (4, "b", 0.25), (4, "b", 0.5)]
    assert shown[-1] == "drawn 4 b 0.5"


def test_a_placeholder_is_shown_until_the_first_move(shown):
    calls = []
    box = live_figure(lambda m: calls.append(m) or m, {"m": choice_slider("m", [1, 2, 4], 2)},
                      placeholder="move a slider")
    assert calls == [] and shown == ["move a slider"]
    controls_of(box)[0].value = 4
    assert calls == [4] and shown == ["move a slider", 4]


def test_in_a_kernel_the_output_area_holds_the_latest_drawing():
    """Executed by a kernel: the Output widget's stored state (what a frontend shows) holds
    only the drawing for the values set last, not the first one."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(
            "from smallbatch.figures.widgets import int_slider, live_figure, menu\n"
            "calls = []\n"
            "def draw(k, word):\n"
            "    calls.append((k, word))\n"
            "    return f'drawn {k} {word}'\n"
            "box = live_figure(draw, {'k': int_slider('k', 2, 0, 5), "
            "'word': menu('word', ['a', 'b'])})\n"
            "box"),
        nbformat.v4.new_code_cell(
            "box.children[0].children[0].value = 4\n"
            "box.children[0].children[1].value = 'b'\n"
            "calls"),
    ])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    assert nb.cells[1].outputs[0]["data"]["text/plain"] == "[(2, 'a'), (4, 'a'), (4, 'b')]"
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    [output] = [m["state"] for m in state.values() if m["model_name"] == "OutputModel"]
    assert [o["data"]["text/plain"] for o in output["outputs"]] == ["'drawn 4 b'"]


# ------------------------------------------------------------- the chapters' live figures

def test_lr_scaling_live_shows_the_row_of_the_chosen_m_and_rule(shown):
    settings = presets.lr_scaling("scaled")
    box = figures.lr_scaling_live(settings)
    slider, rule = controls_of(box)
    assert (slider.value, slider.min, slider.max, slider.description) == (5, 0, 14, "log2 m")
    assert list(rule.options) == list(theory.SCALING_RULES) and rule.value == "linear"
    assert shown[-1].columns.tolist() == ["linear, m = 32"]
    slider.value, rule.value = 10, "sqrt"
    expected = theory.scaling_at(1024, "sqrt", settings.base_lr, settings.reference_batch_size,
                                 settings.dataset_size)
    pd.testing.assert_frame_equal(shown[-1], expected)
    assert shown[-1].loc["eta"].iloc[0] == pytest.approx(32 * 2.0 ** -8 * math.sqrt(1024 / 32))


def _noise_record(label: str, ratios):
    """A gradient-noise record whose batches at m = 4 are ``ratios`` times the prediction."""
    num_train, trace_sigma = 100, 3.0
    predicted = 4 * trace_sigma * (num_train - 4) / (num_train - 1)
    return {"values": {"checkpoint": label, "num_train": num_train,
                       "per_example_sq_deviations": [trace_sigma] * 10,
                       "batch_sq_deviations": {"2": [1.0, 2.0],
                                               "4": [r * predicted for r in ratios]}}}


def test_gradient_noise_live_draws_the_chosen_checkpoint_and_m(shown):
    records = [_noise_record("start", [1.0, 1.0]), _noise_record("end", [0.5, 1.5, 2.5])]
    box = figures.gradient_noise_live(records, [2, 4])
    checkpoint, batch = controls_of(box)
    assert list(checkpoint.options) == ["start", "end"] and checkpoint.value == "start"
    assert batch.value == 4 and batch.description == "m"  # the middle of the grid
    checkpoint.value = "end"
    fig = shown[-1]
    assert fig.layout.title.text == "end, m = 4: |S - mG|² / prediction over 3 batches"
    assert np.allclose(fig.data[0].x, [0.5, 1.5, 2.5])
    assert [shape.x0 for shape in fig.layout.shapes] == pytest.approx([1.0, 1.5])


def test_stale_gradients_live_computes_nothing_before_the_first_move(shown, monkeypatch):
    """The network is built on the first move, once; a tiny one stands in for ResNet-8."""
    built = []

    def tiny_model_at(checkpoint, device):
        built.append((checkpoint, device))
        torch.manual_seed(0)
        x = torch.randn(200, 1, 6, 6, generator=torch.Generator().manual_seed(1))
        y = torch.randint(0, 3, (200,), generator=torch.Generator().manual_seed(2))
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(),
                                    torch.nn.Flatten(), torch.nn.Linear(32, 3))
        return model, SimpleNamespace(num_train=200, train_x=x, train_y=y), device, None

    monkeypatch.setattr(figure_module, "model_at", tiny_model_at)
    checkpoint = theory_checkpoints("smoke")[0]
    box = figures.stale_gradients_live(checkpoint, device="cpu")
    m, n, draw = controls_of(box)
    assert (list(m.options), m.value, list(n.options), n.value) == ([1, 2, 4, 8, 16, 32], 4,
                                                                    [2, 4, 8, 16], 4)
    assert (draw.min, draw.max, draw.value, draw.description) == (0, 9, 0, "draw")
    assert built == [] and len(shown) == 1 and isinstance(shown[0], Markdown)
    assert "initialisation" in shown[0].data and "synthetic" in shown[0].data
    n.value = 2
    fig = shown[-1]
    assert fig.layout.title.text == "initialisation: n = 2 steps of m = 4 against one of 8"
    measured, predicted = (np.asarray(trace.y, dtype=float) for trace in fig.data)
    # at the smallest eta_tilde the distance is its second-order prediction
    assert measured[0] == pytest.approx(predicted[0], rel=1e-3)
    draw.value = 3
    m.value = 8
    assert shown[-1].layout.title.text == "initialisation: n = 2 steps of m = 8 against one of 16"
    assert built == [(checkpoint, "cpu")]  # built once


def test_nqm_live_draws_the_chosen_batch_size_and_step(shown):
    settings = presets.nqm("smoke")
    h = theory.nqm_curvatures(settings.dim)
    box = figures.nqm_live(settings, h)
    batch, lr = controls_of(box)
    assert batch.value == 16 and list(batch.options) == list(settings.batch_sizes)
    assert (lr.value, lr.base, lr.min, lr.max) == (0.25, 2, -12, math.log2(1.99))
    batch.value = 64
    fig = shown[-1]
    assert fig.layout.title.text == "E[L], B = 64, a = 0.25"
    last = max(settings.curve_steps)
    expected = 0.5 * np.sum(h * theory.nqm_second_moments(last, 64, 0.25, h))
    assert fig.data[0].x[-1] == last and fig.data[0].y[-1] == pytest.approx(expected)
