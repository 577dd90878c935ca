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
