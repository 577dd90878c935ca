"""One set of runs and its pipeline (smallbatch.analysis.runset), on stored records whose
cells, margin, bests, ranges, edges and chance are computed here by hand."""

import math

import pandas as pd
import pytest

from smallbatch import analysis
from smallbatch.store import save_result
from smallbatch.studies import Study
from smallbatch.train import TrainResult


def spec(name="fake", seeds=(0, 1, 2), **base) -> dict:
    return {"name": name, "base": {"data": "synthetic", "train_subset": 256, "num_epochs": 1,
                                   **base},
            "grid": [{"batch_size": [4, 64], "base_lr": {"pow2": [-6, -2]},
                      "seed": list(seeds)}]}


SCATTER = 0.01  # seeds 0, 1, 2 score -0.01, 0, +0.01 about each cell: a seed SD of 0.01


def accuracy(m: int, log2_lr: int, seed: int, scatter: float = SCATTER) -> float | None:
    """m = 4 peaks at 2^-4 (0.90), m = 64 at 2^-5 (0.80), each falling 0.015 an octave;
    m = 64 diverges at 2^-2 in every seed."""
    if m == 64 and log2_lr == -2:
        return None
    peak, top = (-4, 0.90) if m == 4 else (-5, 0.80)
    return top - 0.015 * abs(log2_lr - peak) + scatter * (seed - 1)


def stored_study(folder, scatter: float = SCATTER, **kwargs) -> analysis.StudyData:
    study = Study.from_mapping(spec(**kwargs), "scaled")
    for config in study.trials():
        value = accuracy(config.batch_size, round(math.log2(config.base_lr)), config.seed,
                         scatter)
        save_result(TrainResult(config=config, status="complete" if value else "diverged",
                                epochs=[], test_accuracy=value,
                                provenance={"git_commit": "abc123"}), folder)
    return analysis.study_data(study, results_dir=folder)


@pytest.fixture()
def runs(tmp_path):
    return analysis.RunSet.of(stored_study(tmp_path))


def test_a_run_set_holds_its_trials_label_note_and_chance(runs):
    assert runs.label == analysis.study_label(runs.study)
    assert len(runs.trials) == 2 * 5 * 3 and len(runs.frame) == 30 and runs.stored
    assert runs.batch_sizes == [4, 64]
    assert runs.chance == pytest.approx(0.1)  # synthetic: 10 classes
    assert runs.test_size == 2000  # no test subset: the synthetic test split
    assert "30 of 30 trials" in runs.note


def test_the_pipeline_by_hand(runs):
    # every completed cell has seeds -0.01, 0, +0.01: SD 0.01, margin 2 x 0.01
    assert runs.margin == runs.own_margin == pytest.approx(0.02)
    cells = runs.cells.set_index(["batch_size", "log2_base_lr"])
    assert cells.loc[(4, -4), "median"] == pytest.approx(0.90)
    assert cells.loc[(64, -2), "diverged"] == 3 and cells.loc[(64, -2), "median"] == 0.1
    assert runs.bests["log2_base_lr"].to_dict() == {4: -4, 64: -5}
    assert runs.bests["median"].tolist() == pytest.approx([0.90, 0.80])
    # within 0.02 of each m's own best: 0.885 (one octave off m = 4's peak) and 0.785 are,
    # 0.87 and 0.77 are not
    ranges = runs.ranges
    assert ranges.loc[4, ["lowest", "highest", "octaves", "tried"]].tolist() == [-5, -3, 3, 5]
    assert ranges.loc[64, ["lowest", "highest", "octaves", "tried"]].tolist() == [-6, -4, 3, 5]
    # m = 4: 2^-6 and 2^-2 score 0.87, more than 0.02 below: both sides shown. m = 64:
    # 2^-6 (0.785) is within the margin, so no slow side; 2^-2 diverged: a failing side
    edges = runs.edges
    assert edges.loc[4, ["slow_side", "failing_side", "inside"]].tolist() == [True, True, True]
    assert edges.loc[64, ["slow_side", "failing_side", "inside"]].tolist() == [False, True,
                                                                               True]
    # held out: each fold still picks the peak, scored 0.89, 0.90, 0.91 (median 0.90)
    held = runs.held_out
    assert held.loc[4, "log2_base_lr"] == -4 and held.loc[4, "median"] == pytest.approx(0.90)
    assert held.loc[4, "seeds"] == 3 and held.loc[4, "low"] == pytest.approx(0.89)


def test_a_wider_seed_scatter_gives_a_wider_margin_and_range(tmp_path):
    wide = analysis.RunSet.of(stored_study(tmp_path, scatter=0.02))
    assert wide.margin == pytest.approx(0.04)
    # 0.87 (two octaves off m = 4's peak) is within 0.04 now; 0.855 is not
    assert wide.ranges.loc[4, ["lowest", "highest", "octaves"]].tolist() == [-6, -2, 5]
    assert not wide.edges.loc[4, "slow_side"] and not wide.edges.loc[4, "failing_side"]


def test_one_seed_per_cell_takes_the_binomial_error_of_the_sets_test_size(tmp_path):
    # seed 0 alone: no repeats, so 1 point plus twice the binomial standard error at the
    # best accuracy (0.89: m = 4's peak less the seed's offset)
    alone = analysis.RunSet.of(stored_study(tmp_path / "a", seeds=(0,)))
    assert alone.margin == pytest.approx(0.01 + 2 * math.sqrt(0.89 * 0.11 / 2000))
    subset = analysis.RunSet.of(stored_study(tmp_path / "b", seeds=(0,), test_subset=500))
    assert subset.test_size == 500
    assert subset.margin == pytest.approx(0.01 + 2 * math.sqrt(0.89 * 0.11 / 500))


def test_chance_follows_the_data_sets_classes(tmp_path):
    hundred = analysis.RunSet.of(stored_study(tmp_path, data="cifar100", train_subset=1024))
    assert hundred.chance == pytest.approx(0.01) and hundred.test_size == 10_000
    # a run that diverged scores that chance in its cell
    cell = hundred.cells.set_index(["batch_size", "log2_base_lr"]).loc[(64, -2)]
    assert cell["median"] == pytest.approx(0.01)


def test_sets_under_one_margin_read_with_the_larger(tmp_path):
    narrow = analysis.RunSet.of(stored_study(tmp_path / "n"), "narrow")
    wide = analysis.RunSet.of(stored_study(tmp_path / "w", scatter=0.02), "wide")
    both = analysis.under_one_margin(narrow, wide)
    assert [s.margin for s in both] == pytest.approx([0.04, 0.04])
    assert [s.own_margin for s in both] == pytest.approx([0.02, 0.04])
    assert [s.label for s in both] == ["narrow", "wide"]
    # the narrow set's range and edges follow the shared margin; the set itself is unchanged
    assert both[0].ranges.loc[4, "octaves"] == 5 and narrow.ranges.loc[4, "octaves"] == 3
    assert not both[0].edges.loc[4, "slow_side"] and narrow.edges.loc[4, "slow_side"]
    assert narrow.margin == pytest.approx(0.02)
    with pytest.raises(ValueError):
        analysis.under_one_margin()


def test_only_some_batch_sizes_keeps_the_whole_sets_margin(runs):
    wide = runs.with_margin(0.04)
    part = wide.only([64])
    assert part.batch_sizes == [64] and set(part.frame["batch_size"]) == {64}
    assert part.margin == pytest.approx(0.04) and part.label == runs.label
    assert len(part.trials) == 15 and part.data.total == 15
    assert part.bests.index.tolist() == [64]
    pd.testing.assert_frame_equal(part.edges, wide.edges.loc[[64]])


def test_ghost_sets_read_per_m_and_bn_batch(tmp_path):
    study = Study.from_mapping({
        "name": "ghost", "base": {"data": "synthetic", "train_subset": 256, "num_epochs": 1},
        "grid": [{"batch_size": [64], "bn_batch_size": [4, None], "base_lr": {"pow2": [-6, -4]},
                  "seed": [0, 1, 2]}]}, "scaled")
    for config in study.trials():
        lr = round(math.log2(config.base_lr))
        value = (0.9 if config.bn_batch_size == 4 else 0.8) - 0.02 * abs(lr + 5) \
            + 0.005 * (config.seed - 1)
        save_result(TrainResult(config=config, status="complete", epochs=[],
                                test_accuracy=value), tmp_path)
    ghost = analysis.RunSet.of(analysis.study_data(study, results_dir=tmp_path),
                               by=analysis.GHOST_CURVE)
    assert ghost.bests.index.tolist() == [(64, 4), (64, 64)]
    assert ghost.bests["median"].tolist() == pytest.approx([0.9, 0.8])
    assert ghost.edges.loc[(64, 4), "best"] == -5 and ghost.held_out.loc[(64, 64), "seeds"] == 3
    with pytest.raises(ValueError, match="per m"):
        ghost.ranges
    with pytest.raises(ValueError, match="by must be"):
        analysis.RunSet.of(ghost.data, by=("bn_batch",))


def test_run_sets_split_a_study_and_leave_out_sets_with_nothing_stored(tmp_path):
    study = Study.from_mapping({
        "name": "aug", "base": {"data": "synthetic", "train_subset": 256, "num_epochs": 1},
        "grid": [{"augment": [False, True], "batch_size": [4], "base_lr": {"pow2": [-5, -4]},
                  "seed": [0]}]}, "scaled")
    for config in study.trials():
        if not config.augment:
            save_result(TrainResult(config=config, status="complete", epochs=[],
                                    test_accuracy=0.8), tmp_path)
    data = analysis.study_data(study, results_dir=tmp_path)
    sets = analysis.run_sets([data])
    assert list(sets) == [f"{analysis.study_label(study)}, no augmentation"]
    one = sets[f"{analysis.study_label(study)}, no augmentation"]
    assert len(one.trials) == 2 and one.data.selection == "augment = False"
    with pytest.raises(ValueError, match="give it a label"):
        analysis.RunSet.of(one.data)
    framed = analysis.frames(sets.values())
    assert list(framed) == [one.label] and framed[one.label] is one.frame


def test_bn_pairs_pair_sets_that_differ_only_in_batch_norm(tmp_path):
    def one(name, **base):
        return analysis.RunSet.of(stored_study(tmp_path / name, name=name, seeds=(0,), **base),
                                  name)

    sets = [one("bn", batch_norm="all"), one("nobn", batch_norm="none"),
            one("longer", batch_norm="none", num_epochs=2),
            one("other-bn", batch_norm="all", train_subset=512)]
    pairs = analysis.bn_pairs(sets)
    assert [(a.label, b.label) for a, b in pairs] == [("bn", "nobn")]
    # with nothing to pair with, no pair
    assert analysis.bn_pairs(sets[:1]) == [] and analysis.bn_pairs(sets[1:3]) == []


def test_the_published_batch_norm_pairs_come_from_the_studies_configs():
    data = [analysis.study_data(name, "scaled") for name in analysis.BATCH_LR_STUDIES]
    sets = {label: analysis.RunSet.of(side, label)
            for label, side in analysis.compared_runs(data).items()}
    names = [(a.study.name, b.study.name) for a, b in analysis.bn_pairs(sets)]
    assert names == [("resnet-bn", "resnet-nobn"), ("alexnet-bn", "alexnet-nobn"),
                     ("alexnet-convbn", "alexnet-nobn")]


def test_a_set_with_nothing_stored_has_the_margin_of_a_90_percent_accuracy(tmp_path):
    study = Study.from_mapping(spec(), "scaled")
    empty = analysis.RunSet.of(analysis.study_data(study, results_dir=tmp_path))
    assert not empty.stored and empty.batch_sizes == [] and len(empty.trials) == 30
    assert empty.margin == pytest.approx(0.01 + 2 * math.sqrt(0.9 * 0.1 / 2000))
