"""The explorer's data and first state (smallbatch.analysis.explorer,
smallbatch.figures.explorer) on stored records with known answers. The browser test
(tests/book) checks that the page's script redraws it the same way."""

import math

import pytest

from smallbatch import analysis, figures
from smallbatch.figures.explorer import EXPLORER_META, cell_traces
from smallbatch.store import save_result
from smallbatch.studies import Study
from smallbatch.train import EpochMetrics, TrainResult

SPEC = {"name": "fake", "base": {"data": "synthetic", "train_subset": 256, "num_epochs": 3},
        "grid": [{"batch_size": [4], "base_lr": {"pow2": [-6, -5]}, "seed": [0, 1]},
                 {"batch_size": [64], "base_lr": {"pow2": [-8, -7]}, "seed": [0]}]}


def epochs(accuracies, batch_size):
    return [EpochMetrics(epoch=k + 1, train_loss=1.0 / (k + 1), train_accuracy=a,
                         test_loss=1.0, test_accuracy=a, lr=0.1,
                         examples_seen=256 * (k + 1), wall_time=1.0)
            for k, a in enumerate(accuracies)]


@pytest.fixture()
def stored(tmp_path):
    study = Study.from_mapping(SPEC, "scaled")
    for config in study.trials():
        log2_lr = round(math.log2(config.base_lr))
        if (config.batch_size, log2_lr) == (64, -7):  # diverged in its second epoch
            result = TrainResult(config=config, status="diverged",
                                 epochs=epochs([0.3], 64), test_accuracy=None,
                                 diverged_epoch=2)
        else:
            top = 0.8 + 0.01 * config.seed + (0.05 if log2_lr == -5 else 0.0)
            result = TrainResult(config=config, status="complete",
                                 epochs=epochs([top - 0.2, top - 0.1, top], config.batch_size),
                                 test_accuracy=top)
        save_result(result, tmp_path)
    return analysis.study_data(study, results_dir=tmp_path)


def test_explorer_data_keeps_every_run_of_every_cell(stored):
    data = analysis.explorer_data({"fake": stored})
    (entry,) = data["sets"]
    assert entry["m"] == [4, 64] and entry["lr"] == [-8, -7, -6, -5]
    assert entry["best"] == {"4": -5, "64": -8} and entry["window"]["64"] == [-8, -7]
    cell = entry["cells"]["4|-5"]
    assert cell["seeds"] == [0, 1] and cell["score"] == [0.85, 0.86]
    assert cell["acc"][1] == [0.66, 0.76, 0.86] and cell["loss"][0] == [1.0, 0.5, 0.3333]
    assert cell["steps"] == 64  # 256 examples per epoch at m = 4
    diverged = entry["cells"]["64|-7"]
    assert diverged["status"] == ["diverged"] and diverged["diverged"] == [2]
    assert diverged["score"] == [0.1]  # chance: ten classes
    assert entry["curve"]["4"] == [[-6, 0.805, 2], [-5, 0.855, 2]]


def test_cell_text_names_the_cell_its_seeds_and_what_is_missing(stored):
    (entry,) = analysis.explorer_data({"fake": stored})["sets"]
    assert analysis.cell_text(entry, 4, -5) == (
        "m = 4, η̃ = 2^-5 (this m's best): median 0.8550 over 2 seeds "
        "(seed 0 0.8500; seed 1 0.8600)")
    assert analysis.cell_text(entry, 64, -7) == (
        "m = 64, η̃ = 2^-7: median 0.1000 over 1 seed (seed 0 diverged in epoch 2)")
    assert analysis.cell_text(entry, 4, -8) == (
        "m = 4, η̃ = 2^-8: not trained (this set's window at m = 4 is 2^-6 to 2^-5)")
    assert analysis.cell_text(entry, 8, -8) == "m = 8, η̃ = 2^-8: no run of this set at m = 8"


def test_the_first_state_is_the_best_cell_and_its_traces_are_the_runs(stored):
    data = analysis.explorer_data({"fake": stored})
    fig = figures.explorer(data)
    (entry,) = data["sets"]
    assert fig.layout.meta[EXPLORER_META] == data and fig.layout.meta["slots"] == 2
    assert "m = 4, η̃ = 2^-5 (this m's best)" in fig.layout.title.text
    assert [s.label for s in fig.layout.sliders[0].steps] == ["4", "64"]
    assert fig.layout.sliders[0].active == 0 and fig.layout.sliders[1].active == 3
    assert all(step.method == "skip" for s in fig.layout.sliders for step in s.steps)
    traces = cell_traces(entry, 4, -5, 2)
    assert [list(t.y) for t in fig.data] == [t["y"] for t in traces]
    # accuracy against steps: 64 steps an epoch at m = 4
    assert traces[4]["x"] == [64, 128, 192] and traces[4]["y"] == [0.65, 0.75, 0.85]
    # an untrained cell hides every run trace and the marker, and keeps m's curve
    empty = cell_traces(entry, 64, -5, 2)
    assert not any(t["visible"] for t in empty[:6] + empty[7:])
    assert empty[6]["x"] == [-8, -7]
    with pytest.raises(ValueError, match="no stored run"):
        figures.explorer({"sets": []})


def test_explorer_sets_split_only_along_axes_that_m_does_not_fix(tmp_path):
    from smallbatch.studies import load_study

    ghost = analysis.study_data(load_study("ghost-bn", "scaled"), results_dir=tmp_path)
    equal = analysis.study_data(load_study("equal-steps", "scaled"), results_dir=tmp_path)
    sets = analysis.explorer_sets([ghost, equal])
    ghost_sets = [label for label in sets if label.startswith("ghost-bn")]
    assert len(ghost_sets) > 1 and all("bn_batch_size = " in g for g in ghost_sets)
    # equal-steps sets its epochs by m: one set, not one per m
    assert [label for label in sets if label.startswith("equal-steps")] == [
        "equal-steps: Fashion-MNIST, resnet8, batch norm, no augmentation"]
    assert sum(s.total for label, s in sets.items() if label.startswith("ghost-bn")) \
        == ghost.total
