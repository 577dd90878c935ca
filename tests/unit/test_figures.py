"""Figures: built from data, with controls that work without a kernel."""

import json
from pathlib import Path

import pandas as pd
import pytest

from smallbatch import figures

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "throughput.json"


def test_training_curves_needs_the_history_columns():
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.0], "test_loss": [2.1, 1.2],
                            "train_accuracy": [0.3, 0.6], "test_accuracy": [0.3, 0.5]})
    fig = figures.training_curves(history, "t")
    assert [list(t.y) for t in fig.data][-1] == [0.3, 0.5]
    with pytest.raises(ValueError, match="test_accuracy"):
        figures.training_curves(history.drop(columns="test_accuracy"))


def test_throughput_figure_from_the_committed_benchmark():
    benchmark = json.loads(BENCHMARK.read_text())
    fig = figures.throughput(benchmark)
    assert len(fig.data) == 2 * 6  # five families and the target line, per BN setting
    [menu] = fig.layout.updatemenus
    assert len(menu.buttons) == 2
    for button, bn in zip(menu.buttons, (True, False)):
        shown = button.args[0]["visible"]
        assert shown == [bn] * 6 + [not bn] * 6
        assert "title.text" in button.args[1]
    # the curves are the measurements: the best grouped rate at m = 2 with BN
    grouped = next(t for t in fig.data if "grouped" in t.name and t.visible)
    best = max(r["examples_per_second"] for r in benchmark["rows"]
               if r["bn"] and r["m"] == 2 and r["mode"] == "grouped" and r["processes"] == 2)
    assert grouped.y[0] == best


def test_a_long_note_wraps_under_the_title_and_makes_room_for_itself():
    cells = pd.DataFrame({"batch_size": [2, 2, 4, 4], "log2_base_lr": [-3, -2, -3, -2],
                          "median": [0.8, 0.85, 0.82, 0.8], "low": [0.8, 0.84, 0.81, 0.79],
                          "high": [0.81, 0.86, 0.83, 0.8], "seeds": [3] * 4,
                          "diverged": [0] * 4})
    short = figures.accuracy_heatmap(cells, "T", "study s (scaled): 4 of 4 trials stored")
    commits = ", ".join(f"{k:07d}abc" for k in range(12))
    note = f"study s (scaled): 4 of 4 trials stored; code commit(s) {commits}"
    long = figures.accuracy_heatmap(cells, "T", note)
    lines = long.layout.title.text.split("<br>")
    assert lines[0] == "T" and len(lines) == 4  # the title and three lines of note
    assert all(line.startswith("<sup>") and len(line) <= figures.style.NOTE_WIDTH + 11
               for line in lines[1:])
    assert " ".join(line[5:-6] for line in lines[1:]) == note  # nothing lost in the wrap
    assert long.layout.margin.t == short.layout.margin.t + 2 * figures.style.NOTE_LINE_PX
    assert long.layout.height == short.layout.height + 2 * figures.style.NOTE_LINE_PX


def test_best_and_range_gives_each_set_of_runs_its_colour_and_legend_line():
    from smallbatch import analysis

    cells = pd.DataFrame({"batch_size": [2, 2, 4, 4], "log2_base_lr": [-3, -2, -3, -2],
                          "median": [0.8, 0.85, 0.82, 0.8], "low": [0.8, 0.84, 0.81, 0.79],
                          "high": [0.81, 0.86, 0.83, 0.8], "seeds": [3] * 4,
                          "diverged": [0] * 4})
    pair = (analysis.best_per_batch(cells), analysis.good_range(cells, 0.01, reference="own"))
    two = figures.best_and_range({f"runs {k}": pair for k in range(2)}, 0.01, "T")
    seven = figures.best_and_range({f"runs {k}": pair for k in range(7)}, 0.01, "T")
    lines = [t for t in seven.data if t.showlegend is not False]
    assert len({t.line.color for t in lines}) == 7  # seven sets of runs, seven colours
    # the legend hangs from below the axes and the figure grows by a line per set of runs
    assert seven.layout.legend.yanchor == "top" and seven.layout.legend.y < 0
    assert seven.layout.margin.b - two.layout.margin.b == seven.layout.height - two.layout.height
    assert seven.layout.height - two.layout.height == 5 * 24
