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
    two = figures.best_and_range({f"runs {k}": pair for k in range(2)},
                                 {f"runs {k}": 0.01 for k in range(2)}, "T")
    margins = {f"runs {k}": 0.01 * (k + 1) for k in range(7)}
    seven = figures.best_and_range({f"runs {k}": pair for k in range(7)}, margins, "T")
    lines = [t for t in seven.data if t.showlegend is not False]
    assert len({t.line.color for t in lines}) == 7  # seven sets of runs, seven colours
    # each set's own margin: named in its legend line, drawn below its own best
    assert [t.name for t in lines][2] == "runs 2 (noise margin 3.0 points)"
    below = [t for t in seven.data if t.name == "runs 2: best less its noise margin"]
    assert len(below) == 1 and list(below[0].y) == pytest.approx([0.85 - 0.03] * 2)
    assert "each set's noise margin" in seven.layout.annotations[1].text
    # the legend hangs from below the axes and the figure grows by a line per set of runs
    assert seven.layout.legend.yanchor == "top" and seven.layout.legend.y < 0
    assert seven.layout.margin.b - two.layout.margin.b == seven.layout.height - two.layout.height
    assert seven.layout.height - two.layout.height == 5 * 24


def test_steps_to_target_slider_shows_one_target_at_a_time_with_its_fit():
    from smallbatch.analysis import budget

    rows = []
    for m in (16, 32, 64, 128, 256):
        for seed in range(3):
            for target, steps in (("easy", 12_800 / m), ("hard", 100 + 12_800 / m)):
                rows.append({"target": target, "config_hash": f"{target}{m}{seed}",
                             "batch_size": m, "base_lr": 0.1, "seed": seed,
                             "steps": steps * (1 + 0.01 * seed)})
    frame = pd.DataFrame(rows)
    targets = {}
    for target, part in frame.groupby("target", sort=False):
        targets[target] = (budget.best_steps_to_target(part), budget.critical_batch(part))
    fig = figures.steps_to_target(targets, "t")
    [slider] = fig.layout.sliders
    assert [step.label for step in slider.steps] == ["easy", "hard"]
    for k, step in enumerate(slider.steps):
        shown = [t for t, v in zip(fig.data, step.args[0]["visible"]) if v]
        # points and perfect scaling in both panels, and the fit only where it fits
        assert len(shown) == (4 if k == 0 else 6)
        assert ("no diminishing returns" if k == 0 else "B_crit = 128") in step.args[1]["title.text"]
    fit = next(t for t in fig.data if t.name.startswith("S = ") and t.xaxis == "x")
    assert fit.y[0] == pytest.approx(100 + 12_800 / 16, rel=0.02)


def test_accuracy_at_steps_slider_has_one_step_per_step_count():
    best = pd.DataFrame({"log2_base_lr": [-5, -7], "median": [0.8, 0.7], "low": [0.79, 0.69],
                         "high": [0.81, 0.71], "seeds": [3, 3], "schedule_fraction": [0.1, 0.4]},
                        index=pd.Index([32, 128], name="batch_size"))
    fig = figures.accuracy_at_steps({256: best, 1024: best.assign(median=[0.85, 0.86])}, "t")
    [slider] = fig.layout.sliders
    assert [s.args[0]["visible"] for s in slider.steps] == [[True, False], [False, True]]
    assert list(fig.data[1].y) == [0.85, 0.86]


def test_accuracy_and_warmup_figures_shade_the_noise_margin_below_the_best():
    cells = pd.DataFrame({"batch_size": [2, 2, 4, 4], "log2_base_lr": [-3, -2, -3, -2],
                          "median": [0.8, 0.85, 0.82, 0.8], "low": 0.0, "high": 1.0,
                          "seeds": 3, "diverged": 0})
    plain = figures.accuracy_vs_lr(cells, "T")
    assert not plain.layout.shapes
    fig = figures.accuracy_vs_lr(cells, "T", margin=0.02)
    (band,) = fig.layout.shapes
    assert (band.y0, band.y1) == (pytest.approx(0.83), pytest.approx(0.85))
    assert len(fig.data) == len(plain.data)  # a shape, not a trace: the slider is unchanged
    warm = figures.warmup_comparison(cells, cells.assign(median=cells["median"] + 0.05), "W",
                                     margin=0.01)
    assert sorted((s.y0, s.y1) for s in warm.layout.shapes) == [
        (pytest.approx(0.86), pytest.approx(0.87)), (pytest.approx(0.89), pytest.approx(0.90))]
