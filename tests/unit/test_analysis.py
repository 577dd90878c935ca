"""The experiments chapters' analysis (smallbatch.analysis) on records with known answers."""

import dataclasses
import math
import sys

import numpy as np
import pandas as pd
import pytest

from smallbatch import analysis
from smallbatch.store import save_result
from smallbatch.studies import Study
from smallbatch.train import TrainResult

SPEC = {"name": "fake", "base": {"data": "synthetic", "train_subset": 256, "num_epochs": 1},
        "grid": [{"batch_size": [4, 64], "base_lr": {"pow2": [-6, -2]}, "seed": [0, 1, 2]}]}


def accuracy(m: int, log2_lr: int, seed: int) -> float | None:
    """A known landscape: m = 4 peaks at 2^-4 (0.90), m = 64 at 2^-5 (0.80); m = 64
    diverges at 2^-2; seeds add +-0.005."""
    if m == 64 and log2_lr == -2:
        return None
    peak, top = (-4, 0.90) if m == 4 else (-5, 0.80)
    return top - 0.03 * abs(log2_lr - peak) + 0.005 * (seed - 1)


@pytest.fixture()
def stored(tmp_path):
    study = Study.from_mapping(SPEC, "scaled")
    for config in study.trials():
        value = accuracy(config.batch_size, round(math.log2(config.base_lr)), config.seed)
        if (config.batch_size, config.seed) == (4, 2) and config.base_lr == 2.0 ** -6:
            continue  # one trial not run yet
        save_result(TrainResult(config=config, status="complete" if value else "diverged",
                                epochs=[], test_accuracy=value,
                                provenance={"git_commit": "abc123"}), tmp_path)
    # a record of a trial outside the study is ignored
    other = study.base.replace(batch_size=8)
    save_result(TrainResult(config=other, status="complete", epochs=[], test_accuracy=0.99),
                tmp_path)
    return analysis.study_data(study, results_dir=tmp_path)


def test_study_data_counts_and_scores(stored):
    assert stored.total == 2 * 5 * 3 and stored.missing == 1 and not stored.complete
    assert len(stored.frame) == 29 and 8 not in set(stored.frame["batch_size"])
    diverged = stored.frame[stored.frame["status"] == "diverged"]
    assert len(diverged) == 3 and np.allclose(diverged["score"], 0.1)  # chance, 10 classes
    assert stored.commits == ("abc123",)
    assert "29 of 30 trials" in stored.provenance_note()


def test_cells_best_and_margin(stored):
    cells = analysis.cell_summary(stored.frame)
    cell = cells.set_index(["batch_size", "log2_base_lr"]).loc[(4, -4)]
    assert cell["seeds"] == 3 and cell["median"] == pytest.approx(0.90)
    assert cell["low"] == pytest.approx(0.895) and cell["high"] == pytest.approx(0.905)
    best = analysis.best_per_batch(cells)
    assert best.loc[4, "log2_base_lr"] == -4 and best.loc[64, "log2_base_lr"] == -5
    assert best.loc[64, "median"] == pytest.approx(0.80)
    # seed spread is +-0.005 (sd 0.005): 2 x sd = 0.01, the floor
    assert analysis.noise_margin(stored.frame) == pytest.approx(0.01)


def test_noise_margin_counts_only_seeds_as_repeats(stored):
    # one seed per config, but four m_BN per (m, eta_tilde): those are cells, not repeats
    frame = stored.frame[stored.frame["seed"] == 0]
    ghost = pd.concat([frame.assign(bn_batch_size=b, score=frame["score"] + 0.01 * i)
                       for i, b in enumerate([2, 4, 8, None])], ignore_index=True)
    best = 0.895 + 0.03  # the binomial error at the best accuracy (seed 0 peaks at 0.895)
    assert analysis.noise_margin(ghost, test_size=5000) == pytest.approx(
        0.01 + 2 * math.sqrt(best * (1 - best) / 5000))


def test_noise_margin_grows_with_seed_spread(stored):
    frame = stored.frame.copy()
    frame["score"] = frame["score"] + np.where(frame["seed"] == 0, -0.02, 0.0)
    assert analysis.noise_margin(frame) > 0.02
    one_seed = stored.frame[stored.frame["seed"] == 0]
    assert analysis.noise_margin(one_seed, test_size=5000) == pytest.approx(
        0.01 + 2 * math.sqrt(0.895 * 0.105 / 5000))


def test_noise_margin_is_the_seed_spread_near_each_best(stored):
    # seeds scatter by +-0.05 at m = 4, eta_tilde = 2^-6, 6 points below that m's best (as
    # near a divergence edge): the spread of every cell grows, the margin does not
    frame = stored.frame.copy()
    edge = (frame["batch_size"] == 4) & (frame["log2_base_lr"] == -6)
    frame.loc[edge, "score"] += 0.05 * (frame.loc[edge, "seed"] - 1)
    assert analysis.seed_spread(frame, near_best=None) > 0.01
    assert analysis.seed_spread(frame) == pytest.approx(0.005)
    assert analysis.noise_margin(frame) == pytest.approx(0.01)
    # the same scatter at a best cell does set the margin
    peak = (frame["batch_size"] == 4) & (frame["log2_base_lr"] == -4)
    frame.loc[peak, "score"] += 0.05 * (frame.loc[peak, "seed"] - 1)
    assert analysis.noise_margin(frame) > 0.03


def test_good_range_against_global_and_own_best(stored):
    cells = analysis.cell_summary(stored.frame)
    own = analysis.good_range(cells, margin=0.035, reference="own")
    # within 0.035 of own peak: the peak and one octave either side
    assert own.loc[4, ["lowest", "highest", "octaves"]].tolist() == [-5, -3, 3]
    assert own.loc[64, ["lowest", "highest", "octaves"]].tolist() == [-6, -4, 3]
    glob = analysis.good_range(cells, margin=0.035, reference="global")
    assert glob.loc[4, "octaves"] == 3 and glob.loc[64, "octaves"] == 0
    assert math.isnan(glob.loc[64, "lowest"])
    with pytest.raises(ValueError, match="reference"):
        analysis.good_range(cells, 0.01, reference="best")


def best_table(values: dict[int, float], seeds: int | dict[int, int] = 3):
    import pandas as pd

    table = pd.DataFrame({"median": values, "log2_base_lr": -5, "low": 0, "high": 1,
                          "seeds": 3, "diverged": 0})
    if isinstance(seeds, dict):
        for m, n in seeds.items():
            table.loc[m, "seeds"] = n
    else:
        table["seeds"] = seeds
    return table


@pytest.mark.parametrize("values,verdict", [
    ({2: 0.90, 32: 0.89, 128: 0.85, 1024: 0.80}, "agrees"),
    ({2: 0.90, 32: 0.89, 128: 0.895, 1024: 0.80}, analysis.EQUIVALENT),  # large within margin
    ({2: 0.80, 32: 0.85, 128: 0.90, 1024: 0.88}, "disagrees"),
    ({2: 0.895, 32: 0.88, 128: 0.90, 1024: 0.88}, analysis.EQUIVALENT),  # small within margin
    ({2: 0.85, 32: 0.85, 64: 0.90, 128: 0.84}, "disagrees"),  # m = 64 beats every small m
    ({2: 0.90, 32: 0.90, 128: 0.90, 1024: 0.90}, analysis.EQUIVALENT),  # no effect at all
])
def test_small_batches_best_verdict(values, verdict):
    result = analysis.verdict_small_batches_best(best_table(values), margin=0.01)
    assert result.verdict == verdict
    assert f"best m = {max(values, key=values.get)}" in result.measurement


def test_small_batches_best_needs_three_seeds_at_the_bests_it_compares():
    values = {2: 0.90, 32: 0.89, 128: 0.85, 1024: 0.80}
    # one seed at a best that is not compared (m = 32, m = 1024): still agrees
    assert analysis.verdict_small_batches_best(
        best_table(values, {32: 1, 1024: 1}), 0.01).verdict == "agrees"
    result = analysis.verdict_small_batches_best(best_table(values, {128: 2}), 0.01)
    assert result.verdict == "cannot decide" and "fewer than 3 seeds at the best of 128 (2)" \
        in result.measurement
    assert analysis.verdict_small_batches_best(best_table(values, 1), 0.01,
                                                  min_seeds=1).verdict == "agrees"


def test_small_batches_best_cannot_decide_when_a_losing_best_is_at_a_window_end():
    import pandas as pd

    values = {2: 0.90, 32: 0.89, 128: 0.85, 1024: 0.80}
    edges = pd.DataFrame({"inside": {2: True, 32: True, 128: True, 1024: False}})
    result = analysis.verdict_small_batches_best(best_table(values), 0.01, edges)
    assert result.verdict == "cannot decide"
    assert "the best of 1024 is at an end" in result.measurement
    edges.loc[1024, "inside"] = True
    edges.loc[2, "inside"] = False  # the winning side at an end does not weaken "agrees"
    assert analysis.verdict_small_batches_best(best_table(values), 0.01,
                                                  edges).verdict == "agrees"
    # "equivalent" rests on both sides: the small-batch best at an end could rise past it
    level = {2: 0.90, 32: 0.89, 128: 0.90, 1024: 0.80}
    assert analysis.verdict_small_batches_best(best_table(level), 0.01,
                                                  edges).verdict == "cannot decide"


@pytest.mark.parametrize("values,verdict", [
    ({2: 0.91, 4: 0.90, 8: 0.89, 64: 0.85}, "agrees"),
    ({2: 0.88, 4: 0.89, 8: 0.91, 64: 0.85}, "disagrees"),
    ({2: 0.90, 4: 0.89, 8: 0.895, 64: 0.85}, analysis.EQUIVALENT),
    ({2: 0.90, 4: 0.90, 8: 0.90, 64: 0.90}, analysis.EQUIVALENT),  # no effect: never agrees
    ({8: 0.90, 64: 0.85}, "cannot decide"),  # no m <= 4
])
def test_smallest_batches_best_verdict(values, verdict):
    result = analysis.verdict_smallest_best(best_table(values), 0.01)
    assert result.verdict == verdict and result.claim == analysis.CLAIM_SMALLEST_BEST
    assert analysis.CLAIM_SMALLEST_BEST in analysis.CAVEATS


def test_smallest_batches_best_needs_seeds_and_a_losing_best_inside_its_window():
    import pandas as pd

    values = {2: 0.91, 4: 0.90, 8: 0.89, 64: 0.85}
    assert analysis.verdict_smallest_best(best_table(values, {2: 1}),
                                             0.01).verdict == "cannot decide"
    edges = pd.DataFrame({"inside": {2: False, 4: True, 8: False, 64: True}})
    result = analysis.verdict_smallest_best(best_table(values), 0.01, edges)
    assert result.verdict == "cannot decide" and "best of 8 is at an end" in result.measurement


@pytest.mark.parametrize("counts,verdict", [
    ([6, 5, 4, 2], "agrees"), ([2, 3, 4, 6], "disagrees"),
    ([4, 4, 4, 4], analysis.EQUIVALENT),  # no effect: never agrees
    ([4, 6, 3, 5], analysis.EQUIVALENT)])
def test_range_shrinks_verdict(counts, verdict):
    import pandas as pd

    ranges = pd.DataFrame({"octaves": counts}, index=[2, 16, 128, 1024])
    assert analysis.verdict_range_shrinks(ranges).verdict == verdict


def test_range_shrinks_cannot_decide_on_too_few_seeds_or_a_window_that_misses_a_side():
    import pandas as pd

    ranges = pd.DataFrame({"octaves": [6, 5, 4, 2]}, index=[2, 16, 128, 1024])
    seeds = pd.Series({2: 3, 16: 3, 128: 1, 1024: 3})
    result = analysis.verdict_range_shrinks(ranges, seeds=seeds)
    assert result.verdict == "cannot decide" and "m = 128" in result.measurement
    edges = pd.DataFrame({"slow_side": [True] * 4, "failing_side": [False, True, True, True]},
                         index=[2, 16, 128, 1024])
    # m = 2's window misses its failing side, but "agrees" reads only the large m as narrow
    assert analysis.verdict_range_shrinks(ranges, edges).verdict == "agrees"
    edges.loc[1024, "slow_side"] = False  # now a count read as narrow is a lower bound
    result = analysis.verdict_range_shrinks(ranges, edges)
    assert result.verdict == "cannot decide" and "m = 1024 misses a side" in result.measurement


@pytest.mark.parametrize("sizes", [[2, 4], [2, 4, 8, 16], [128, 256, 512, 1024], [2, 16, 128]])
def test_range_shrinks_needs_small_and_large_batches(sizes):
    import pandas as pd

    # a clear trend, but over too few m, or over small or large m only
    ranges = pd.DataFrame({"octaves": list(range(len(sizes), 0, -1))}, index=sizes)
    assert analysis.verdict_range_shrinks(ranges).verdict == "cannot decide"


def test_smoke_study_runs_end_to_end():
    data = analysis.load_or_run("resnet-bn", "smoke")
    assert data.complete and len(data.frame) == data.total
    assert "All" in analysis.missing_note(data)


def test_edges_reached(stored):
    cells = analysis.cell_summary(stored.frame)
    edges = analysis.edges_reached(cells, margin=0.035)
    # m = 4: window 2^-6..2^-2 around a peak at 2^-4: both ends 0.06 below
    assert edges.loc[4, ["best", "slow_side", "failing_side"]].tolist() == [-4, True, True]
    # m = 64: peak 2^-5, 2^-6 only 0.03 below (within the margin); 2^-2 diverged
    assert edges.loc[64, ["best", "slow_side", "failing_side"]].tolist() == [-5, False, True]
    assert edges.loc[64, "tried"] == "2^-6 to 2^-2"
    assert edges["inside"].tolist() == [True, True]
    # grouped by more than m (as for ghost batch norm): one row per group
    by_seed = analysis.edges_reached(
        analysis.cell_summary(stored.frame, by=("batch_size", "seed", "log2_base_lr")),
        margin=0.035, by=("batch_size", "seed"))
    assert len(by_seed) == 6 and by_seed.loc[(4, 1), "best"] == -4
    # a window that stops at its best: not inside
    cut = cells[~((cells["batch_size"] == 4) & (cells["log2_base_lr"] > -4))]
    assert not analysis.edges_reached(cut, margin=0.035).loc[4, "inside"]
    # the overview: one row per set of runs, one column per m, what is missing spelled out
    overview = analysis.edges_overview({"all": edges, "cut": analysis.edges_reached(
        cut[cut["batch_size"] == 4], margin=0.035)})
    assert overview.loc["all"].to_dict() == {4: "-4", 64: "-5 (no slow side)"}
    assert overview.loc["cut"].to_dict() == {4: "-4 (no failing side, best at an end)", 64: ""}


@pytest.mark.parametrize("bn,none,verdict", [
    ({2: 0.90, 1024: 0.85}, {2: 0.88, 1024: 0.70}, "agrees"),
    ({2: 0.90, 1024: 0.70}, {2: 0.88, 1024: 0.85}, "disagrees"),
    ({2: 0.90, 1024: 0.85}, {2: 0.88, 1024: 0.825}, analysis.EQUIVALENT),
    ({2: 0.90, 1024: 0.85}, {2: 0.90, 1024: 0.85}, analysis.EQUIVALENT)])  # no effect
def test_bn_gap_verdict(bn, none, verdict):
    result = analysis.verdict_bn_widens_gap(best_table(bn), best_table(none), margin=0.01)
    assert result.verdict == verdict
    few = analysis.verdict_bn_widens_gap(best_table(bn), best_table(none, {1024: 1}), 0.01)
    assert few.verdict == "cannot decide" and "without BN: fewer than 3" in few.measurement


def test_process_hours_share_an_ensembles_busy_time():
    import pandas as pd

    frame = pd.DataFrame({"wall_time": [7200.0, 7200.0, 1800.0],
                          "busy_time": [3600.0, 3600.0, 1800.0],
                          "provenance_ensemble_size": [2, 2, None]})
    assert analysis.process_hours(frame) == pytest.approx(1.5)


def _timed_result(epoch_times, *, batch_size=4, steps_per_epoch=64, status="complete",
                  num_steps=None):
    from smallbatch.train import EpochMetrics, TrainConfig

    config = TrainConfig(data="synthetic", batch_size=batch_size, base_lr=0.01,
                         num_epochs=len(epoch_times))
    epochs, clock = [], 0.0
    for e, seconds in enumerate(epoch_times, start=1):
        clock += seconds
        epochs.append(EpochMetrics(epoch=e, train_loss=1.0, train_accuracy=0.5, test_loss=1.0,
                                   test_accuracy=0.5, lr=0.01,
                                   examples_seen=e * steps_per_epoch * batch_size,
                                   wall_time=clock))
    steps = num_steps if num_steps is not None else len(epoch_times) * steps_per_epoch
    return TrainResult(config=config, status=status, epochs=epochs, test_accuracy=None,
                       num_steps=steps,
                       wall_time=clock if status == "complete" else clock + 5.0)


def test_busy_time_leaves_out_a_paused_epoch():
    from smallbatch.store import busy_time

    # an epoch paused for 2,000 s among 10 s epochs counts as 10 s
    assert busy_time(_timed_result([10, 2010, 10, 12, 9])) == pytest.approx(50.0)
    # an unpaused run keeps about its wall time, never more
    steady = _timed_result([10, 10, 10, 10])
    assert busy_time(steady) == pytest.approx(40.0) == steady.wall_time
    assert busy_time(_timed_result([10, 30])) == pytest.approx(40.0)  # two epochs: their mean
    # a run that diverged half-way through its third epoch: 2.5 epochs of the median
    diverged = _timed_result([10, 10], status="diverged", num_steps=160)
    assert busy_time(diverged) == pytest.approx(25.0)
    # no finished epoch: the wall time
    assert busy_time(TrainResult(config=steady.config, status="diverged", epochs=[],
                                 test_accuracy=None, num_steps=3, wall_time=7.0)) == 7.0


def test_missing_note_names_the_command(stored, tmp_path):
    note = analysis.missing_note(stored)
    assert "29 of 30" in note and "smallbatch sweep fake --scale scaled" in note
    empty = analysis.study_data(stored.study, results_dir=tmp_path / "none")
    assert empty.frame.empty and "**Not run:** none of the 30" in analysis.missing_note(empty)


def test_curves_by_batch_take_the_median_over_seeds(tmp_path):
    from smallbatch import figures
    from smallbatch.train import EpochMetrics

    study = Study.from_mapping(SPEC, "scaled")
    for config in study.trials():
        if config.base_lr not in (2.0 ** -4, 2.0 ** -5):
            continue
        epochs = [EpochMetrics(epoch=e, train_loss=1.0 / e + config.seed, train_accuracy=0.5,
                               test_loss=1.0, test_accuracy=0.1 * e, lr=0.1,
                               examples_seen=256 // config.batch_size * config.batch_size * e,
                               wall_time=e) for e in (1, 2)]
        save_result(TrainResult(config=config, status="complete", epochs=epochs,
                                test_accuracy=0.2), tmp_path)
    data = analysis.study_data(study, results_dir=tmp_path)
    fixed = analysis.curves_by_batch(data, -4)
    assert sorted(fixed["batch_size"].unique()) == [4, 64]
    row = fixed[(fixed["batch_size"] == 64) & (fixed["epoch"] == 2)].iloc[0]
    assert row["train_loss"] == pytest.approx(1.5)  # seeds add 0, 1, 2: median 1
    assert row["steps"] == 8 and row["seeds"] == 3
    own = analysis.curves_by_batch(data, {4: -4, 64: -5})
    assert set(zip(own["batch_size"], own["log2_base_lr"])) == {(4, -4), (64, -5)}
    fig = figures.training_curves_by_batch(fixed, "curves")
    assert len(fig.data) == 4 * 2 and len(fig.layout.sliders[0].steps) == 3
    # top row against examples seen (256 a epoch for both m here), bottom against steps
    assert list(fig.data[0].x) == [256, 512]
    assert list(fig.data[4].x) == [64, 128]  # m = 4: 64 steps an epoch
    assert fig.layout.xaxis.title.text == "examples seen (one epoch = 256)"
    assert list(fig.layout.xaxis.tickvals) == [256, 512]
    assert list(fig.layout.xaxis.ticktext) == ["256", "512"]
    assert figures.style._short_count(8192) == "8.2k" and figures.style._short_count(81920) == "82k"


def ghost(values: dict[int, dict[int, float]]):
    import pandas as pd

    rows = [{"batch_size": m, "bn_batch": b, "median": v, "log2_base_lr": -6, "low": v,
             "high": v, "seeds": 3, "diverged": 0}
            for m, by_bn in values.items() for b, v in by_bn.items()]
    return pd.DataFrame(rows).set_index(["batch_size", "bn_batch"])


def test_ghost_table_picks_the_best_lr_and_treats_none_as_m():
    import pandas as pd

    frame = pd.DataFrame({
        "batch_size": [64] * 4, "bn_batch_size": [8, 8, None, None],
        "log2_base_lr": [-7, -6, -7, -6], "seed": 0, "status": "complete",
        "score": [0.80, 0.85, 0.82, 0.81]})
    table = analysis.ghost_table(frame)
    assert table.loc[(64, 8), "log2_base_lr"] == -6 and table.loc[(64, 8), "median"] == 0.85
    assert table.loc[(64, 64), "median"] == 0.82
    tied = frame.assign(score=[0.85, 0.85, 0.81, 0.82])  # a tie: the smaller eta (best_first)
    table = analysis.ghost_table(tied)
    assert table.loc[(64, 8), "log2_base_lr"] == -7 and table.loc[(64, 64), "log2_base_lr"] == -6


def test_fall_with_m_compares_ordinary_batch_norm_with_each_common_bn_batch():
    table = ghost({64: {4: 0.90, 8: 0.91, 64: 0.92}, 256: {4: 0.85, 256: 0.80}})
    ordinary, at_fixed = analysis.fall_with_m(table)
    assert ordinary == pytest.approx(0.12)  # 0.92 at m_BN = m = 64, 0.80 at 256
    assert list(at_fixed.index) == [4] and at_fixed[4] == pytest.approx(0.05)  # 8: m = 64 only
    assert analysis.fall_with_m(ghost({64: {4: 0.9, 64: 0.9}})) is None


def test_short_windows_keeps_the_windows_missing_a_side_or_with_a_best_at_an_end():
    edges = pd.DataFrame({"slow_side": [True, False, True, True],
                          "failing_side": [True, True, False, True],
                          "inside": [True, True, True, False]},
                         index=pd.Index([2, 4, 8, 16], name="batch_size"))
    assert list(analysis.short_windows(edges).index) == [4, 8, 16]


@pytest.mark.parametrize("values,small,independent", [
    ({64: {4: 0.90, 8: 0.91, 64: 0.85}, 256: {4: 0.89, 8: 0.90, 256: 0.80}}, "agrees", "agrees"),
    ({64: {4: 0.80, 64: 0.90}, 256: {4: 0.80, 256: 0.90}}, "disagrees", "disagrees"),
    # m = 256 contradicts the claim, which is made at every m
    ({64: {4: 0.90, 64: 0.85}, 256: {4: 0.80, 256: 0.90}}, "disagrees", "disagrees"),
    # ahead at m = 64, level at m = 256, where m_BN makes no difference
    ({64: {4: 0.90, 64: 0.85}, 256: {4: 0.905, 256: 0.90}}, analysis.EQUIVALENT,
     "cannot decide"),
    # no m_BN effect anywhere: neither claim may agree
    ({64: {4: 0.90, 8: 0.90, 64: 0.90}, 256: {4: 0.90, 8: 0.90, 256: 0.90}},
     analysis.EQUIVALENT, "cannot decide"),
])
def test_ghost_verdicts(values, small, independent):
    table = ghost(values)
    assert analysis.verdict_small_bn_batch(table, 0.01).verdict == small
    assert analysis.verdict_bn_batch_independent(table, 0.01).verdict == independent


def test_bn_batch_independence_names_the_worst_and_needs_seeds():
    table = ghost({64: {2: 0.80, 8: 0.91, 64: 0.90}, 256: {2: 0.78, 8: 0.90, 256: 0.895}})
    result = analysis.verdict_bn_batch_independent(table, 0.01)
    assert result.verdict == "agrees" and "common to all: [8]" in result.measurement
    assert "the worst m_BN: m = 64: 2, m = 256: 2" in result.measurement
    table.loc[(256, 8), "seeds"] = 1
    assert analysis.verdict_bn_batch_independent(table, 0.01).verdict == "cannot decide"


def test_ghost_verdict_cannot_decide_when_the_losing_point_is_at_a_window_end():
    import pandas as pd

    table = ghost({64: {4: 0.80, 64: 0.90}, 256: {4: 0.80, 256: 0.90}})  # "disagrees"
    inside = pd.DataFrame({"inside": {(64, 4): True, (64, 64): False, (256, 4): True,
                                      (256, 256): True}})
    inside.index.names = ["batch_size", "bn_batch"]
    # the winner (ordinary BN at m = 64) at an end does not matter ...
    assert analysis.verdict_small_bn_batch(table, 0.01, inside).verdict == "disagrees"
    # ... a loser (m_BN = 4 at m = 256) at an end does, at that m; m = 64 still disagrees
    inside.loc[(256, 4), "inside"] = False
    result = analysis.verdict_small_bn_batch(table, 0.01, inside)
    assert result.verdict == "disagrees" and "(256, 4) is at an end" in result.measurement
    inside.loc[(64, 4), "inside"] = False
    assert analysis.verdict_small_bn_batch(table, 0.01, inside).verdict == "cannot decide"


@pytest.mark.parametrize("with_w,without,small_best,helps,gap", [
    ({256: 0.85, 1024: 0.80}, {256: 0.82, 1024: 0.75}, 0.90, "agrees", "agrees"),
    ({256: 0.85, 1024: 0.70}, {256: 0.82, 1024: 0.75}, 0.90, "disagrees", "agrees"),
    # warm-up brings the large batches level with the small ones: the gap closed
    ({256: 0.90, 1024: 0.895}, {256: 0.82, 1024: 0.75}, 0.90, "agrees", analysis.EQUIVALENT),
    ({256: 0.95, 1024: 0.93}, {256: 0.82, 1024: 0.75}, 0.90, "agrees", "disagrees"),
    # helps at m = 1024 only; the gap is read there
    ({256: 0.825, 1024: 0.80}, {256: 0.82, 1024: 0.75}, 0.90, analysis.EQUIVALENT, "agrees"),
    # warm-up does nothing: it does not help, and there is no narrowing to test
    ({256: 0.82, 1024: 0.75}, {256: 0.82, 1024: 0.75}, 0.90, analysis.EQUIVALENT,
     "cannot decide"),
])
def test_warmup_verdicts(with_w, without, small_best, helps, gap):
    result = analysis.verdict_warmup(best_table(with_w), best_table(without), small_best,
                                        margin=0.01)
    assert [v.verdict for v in result] == [helps, gap]


def test_warmup_verdicts_need_seeds():
    with_w, without = best_table({256: 0.85, 1024: 0.80}), best_table({256: 0.82, 1024: 0.75})
    result = analysis.verdict_warmup(with_w, without, 0.90, 0.01, small_seeds=1)
    assert [v.verdict for v in result] == ["agrees", "cannot decide"]
    result = analysis.verdict_warmup(best_table({256: 0.85, 1024: 0.80}, {1024: 2}), without,
                                        0.90, 0.01)
    assert [v.verdict for v in result] == ["cannot decide", "agrees"]  # gap read at m = 256


def test_warmup_verdicts_cannot_decide_when_a_losing_best_is_at_a_window_end():
    import pandas as pd

    def edges(outside):
        return pd.DataFrame({"inside": {256: 256 not in outside, 1024: 1024 not in outside}})

    with_w, without = best_table({256: 0.85, 1024: 0.80}), best_table({256: 0.82, 1024: 0.75})
    # both agree; a winner at a window's end does not matter ...
    result = analysis.verdict_warmup(with_w, without, 0.90, 0.01,
                                        edges_with=edges(set()), edges_without=edges(set()))
    assert [v.verdict for v in result] == ["agrees", "agrees"]
    # ... the runs without warm-up lose "helps": one of them at an end leaves m = 1024
    # undecided (and the gap is then read at m = 256 alone)
    result = analysis.verdict_warmup(with_w, without, 0.90, 0.01,
                                        edges_with=edges(set()), edges_without=edges({1024}))
    assert [v.verdict for v in result] == ["cannot decide", "agrees"]
    assert "the best of 1024 is at an end" in result[0].measurement
    # warm-up's runs lose "does not close the gap" (and win "helps")
    result = analysis.verdict_warmup(with_w, without, 0.90, 0.01,
                                        edges_with=edges({256}), edges_without=edges(set()))
    assert [v.verdict for v in result] == ["agrees", "cannot decide"]
    assert "the best of 256 is at an end" in result[1].measurement
    # "disagrees" at m = 1024 rests on warm-up's best there
    worse = best_table({256: 0.85, 1024: 0.70})
    result = analysis.verdict_warmup(worse, without, 0.90, 0.01,
                                        edges_with=edges({256}), edges_without=edges(set()))
    assert result[0].verdict == "disagrees"  # m = 256, at an end, is not where it lost
    result = analysis.verdict_warmup(worse, without, 0.90, 0.01,
                                        edges_with=edges({1024}), edges_without=edges(set()))
    assert result[0].verdict == "cannot decide"


def test_ghost_and_warmup_figures_draw_each_series():
    from smallbatch import figures

    table = ghost({64: {4: 0.90, 8: 0.91, 64: 0.85}, 256: {4: 0.89, 256: 0.80}})
    fig = figures.ghost_batch_norm(table, "ghost")
    assert [t.name for t in fig.data if t.mode == "lines+markers"] == ["m = 64", "m = 256"]
    import pandas as pd

    cells = pd.DataFrame({"batch_size": [256, 256, 1024], "log2_base_lr": [-8, -7, -9],
                          "median": [0.8, 0.82, 0.7], "low": 0.0, "high": 1.0})
    fig = figures.warmup_comparison(cells, cells, "warm-up")
    assert len(fig.data) == 4  # two series in each of two panels


def test_variants_split_a_study_along_its_extra_axis(tmp_path):
    spec = {"name": "aug", "base": {"data": "synthetic", "train_subset": 256, "num_epochs": 1},
            "grid": [{"augment": [False, True], "batch_size": [4, 64],
                      "base_lr": {"pow2": [-5, -4]}, "seed": [0]}]}
    study = Study.from_mapping(spec, "scaled")
    for config in study.trials():
        if config.augment and config.batch_size == 64 and config.base_lr == 2.0 ** -4:
            continue  # one trial of the augmented side not run yet
        value = 0.7 + 0.1 * config.augment
        save_result(TrainResult(config=config, status="complete", epochs=[],
                                test_accuracy=value,
                                provenance={"git_commit": "c0ffee" if config.augment
                                            else "abc123"}), tmp_path)
    data = analysis.study_data(study, results_dir=tmp_path)
    sides = analysis.variants(data)
    assert sorted(sides) == [f"{analysis.study_label(study)}, augmented",
                             f"{analysis.study_label(study)}, no augmentation"]
    plain = sides[f"{analysis.study_label(study)}, no augmentation"]
    augmented = sides[f"{analysis.study_label(study)}, augmented"]
    assert (plain.total, plain.missing, augmented.total, augmented.missing) == (4, 0, 4, 1)
    assert plain.complete and not augmented.complete
    assert set(plain.frame["augment"]) == {False} and len(augmented.frame) == 3
    assert np.allclose(augmented.frame["score"], 0.8) and len(augmented.results) == 3
    assert plain.commits == ("abc123",) and augmented.commits == ("c0ffee",)
    assert "augment = True): 3 of 4 trials" in augmented.provenance_note()


def test_study_data_keeps_its_trials_and_variants_split_them_without_expanding_again(
        tmp_path, monkeypatch):
    spec = {"name": "aug", "base": {"data": "synthetic", "train_subset": 256, "num_epochs": 1},
            "grid": [{"augment": [False, True], "batch_size": [4, 64],
                      "base_lr": {"pow2": [-5, -4]}, "seed": [0]}]}
    study = Study.from_mapping(spec, "scaled")
    data = analysis.study_data(study, results_dir=tmp_path)  # nothing stored
    assert data.trials == tuple(study.trials()) and data.total == 8 and data.missing == 8

    def expand(*args):
        raise AssertionError("the grid was expanded again")

    monkeypatch.setattr(analysis.cells, "validate_study", expand)
    sides = analysis.variants(data)
    assert [len(side.trials) for side in sides.values()] == [4, 4]
    assert all({c.augment for c in side.trials} == {side.selection == "augment = True"}
               for side in sides.values())
    part = analysis.subset(data, lambda config: config.batch_size == 64)
    assert part.total == 4 and part.selection == "" and part.frame.empty


def test_variants_leave_a_study_without_extra_axis_whole(stored):
    sides = analysis.variants(stored)
    assert list(sides) == [analysis.study_label(stored.study)]
    assert sides[analysis.study_label(stored.study)] is stored


def test_verdict_table_states_each_rule_once():
    first = analysis.Verdict("claim A", "0.9 against 0.8", "rule a", "agrees")
    second = analysis.Verdict("claim A", "0.7 against 0.8", "rule a", "disagrees")
    third = analysis.Verdict("claim B", "too few", "rule b", "cannot decide")
    table, rules = analysis.verdict_table([("runs 1", first), ("runs 2", second),
                                              ("runs 1", third)])
    assert list(table.columns) == ["runs", "paper's claim", "our measurement", "verdict"]
    assert table["verdict"].tolist() == ["agrees", "disagrees", "cannot decide"]
    assert rules.count("rule a") == 1 and "- *claim A*: rule a." in rules
    assert "- *claim B*: rule b." in rules
    alone, _ = analysis.verdict_table([("runs 1", third)], runs=False)
    assert list(alone.columns) == ["paper's claim", "our measurement", "verdict"]
    empty, no_rules = analysis.verdict_table([])
    assert empty.empty and no_rules == ""
    with pytest.raises(ValueError, match="not one of"):
        analysis.Verdict("claim", "x", "r", "inconclusive")


def test_verdict_table_says_when_the_held_out_measurement_is_the_same_not_that_bests_are():
    # the measurement names only the bests the rule reads, so an equal text does not show
    # that every fold chose the same bests
    verdict = analysis.Verdict("claim A", "0.9 against 0.8", "rule a", "agrees")
    moved = analysis.Verdict("claim A", "0.85 against 0.8", "rule a", "agrees")
    table, _ = analysis.verdict_table([analysis.Assessed("runs", verdict, verdict, 0.9, 100),
                                       analysis.Assessed("runs", verdict, moved, 0.7, 100)])
    assert table["held out"].tolist() == ["agrees (the same measurement)",
                                          "agrees: 0.85 against 0.8"]
    assert table["same verdict in resamples"].tolist() == ["90% of 100", "70% of 100"]


def test_discussion_groups_verdicts_and_explains_what_is_not_confirmed():
    agree = analysis.Verdict(analysis.CLAIM_SMALL_BEST, "x", "r", "agrees")
    open_ = analysis.Verdict(analysis.CLAIM_RANGE_SHRINKS, "y", "r", "cannot decide")
    against = analysis.Verdict(analysis.CLAIM_SMALL_BEST, "z", "r", "disagrees")
    text = analysis.discussion([("study A", agree), ("study B", open_),
                                   ("study C", against)])
    assert text.index("agree with") < text.index("disagree with") < text.index("cannot decide")
    # the caveat stands beside every verdict, the agreeing one first of all
    caveat = f"*Caveat:* {analysis.CAVEATS[analysis.CLAIM_SMALL_BEST]}."
    assert f"*{analysis.CLAIM_SMALL_BEST}*: study A. {caveat}" in text
    assert f"*{analysis.CLAIM_SMALL_BEST}*: study C. {caveat}" in text
    assert analysis.CAVEATS[analysis.CLAIM_RANGE_SHRINKS] in text
    assert analysis.discussion([]).startswith("No verdicts")
    # every claim a verdict function can make has its caveat
    assert {analysis.CLAIM_SMALL_BEST, analysis.CLAIM_RANGE_SHRINKS,
            analysis.CLAIM_BN_GAP, analysis.CLAIM_SMALL_BN_BATCH,
            analysis.CLAIM_BN_BATCH_INDEPENDENT, analysis.CLAIM_WARMUP_HELPS,
            analysis.CLAIM_WARMUP_GAP, analysis.CLAIM_CURVES,
            analysis.CLAIM_EQUAL_STEPS, analysis.CLAIM_SMALLEST_BEST} == set(analysis.CAVEATS)


def test_compared_runs_refuse_two_sets_with_one_label(stored):
    other = dataclasses.replace(stored, study=dataclasses.replace(stored.study, name="twin"))
    with pytest.raises(ValueError, match="'fake' and 'twin'"):
        analysis.compared_runs([stored, other])
    assert list(analysis.compared_runs([stored])) == [analysis.study_label(stored.study)]


def _curves(rows, seeds=3):
    import pandas as pd
    return pd.DataFrame([{"batch_size": m, "log2_base_lr": -8, "epoch": e, "steps": 0,
                          "examples_seen": 0, "train_loss": 1.0, "test_accuracy": a,
                          "seeds": seeds} for m, e, a in rows])


def test_curves_verdict_reads_the_last_epoch_and_counts_diverged_as_chance():
    # m = 4 climbs to 0.85; m = 256 reaches 0.80: small ahead by 0.05 at the end
    rows = [(4, e, 0.6 + 0.05 * e) for e in range(1, 6)] + \
           [(256, e, 0.55 + 0.05 * e) for e in range(1, 6)]
    verdict = analysis.verdict_curves_small_ahead(_curves(rows), 0.01, num_epochs=5)
    assert verdict.verdict == "agrees" and "in 5 of 5 epochs" in verdict.measurement
    assert verdict.claim == analysis.CLAIM_CURVES
    # the large batch ahead instead
    swapped = [(256 if m == 4 else 4, e, a) for m, e, a in rows]
    assert analysis.verdict_curves_small_ahead(
        _curves(swapped), 0.01, num_epochs=5).verdict == "disagrees"
    # within the margin: equivalent
    assert analysis.verdict_curves_small_ahead(
        _curves(rows), 0.06, num_epochs=5).verdict == analysis.EQUIVALENT
    # no effect: the same curve at every m never agrees
    level = [(m, e, 0.6 + 0.05 * e) for m in (4, 256) for e in range(1, 6)]
    assert analysis.verdict_curves_small_ahead(
        _curves(level), 0.01, num_epochs=5).verdict == analysis.EQUIVALENT
    # one seed per curve: cannot decide
    assert analysis.verdict_curves_small_ahead(
        _curves(rows, seeds=1), 0.01, num_epochs=5).verdict == "cannot decide"
    # the small batch diverged after epoch 2: chance at the end, so the large one is ahead
    early = [(4, e, 0.9) for e in (1, 2)] + [(256, e, 0.5) for e in range(1, 6)]
    verdict = analysis.verdict_curves_small_ahead(_curves(early), 0.01, num_epochs=5)
    assert verdict.verdict == "disagrees" and "0.1000" in verdict.measurement
    only_small = [(4, e, 0.9) for e in range(1, 6)]
    assert analysis.verdict_curves_small_ahead(
        _curves(only_small), 0.01, num_epochs=5).verdict == "cannot decide"


def test_cost_summary_rates_from_stored_trials_and_projects_the_rest(tmp_path):
    spec = {"name": "cost", "base": {"data": "synthetic", "train_subset": 256, "num_epochs": 2},
            "grid": [{"batch_size": [4, 64], "base_lr": {"pow2": [-5, -4]}, "seed": [0]}]}
    study = Study.from_mapping(spec, "scaled")
    trials = study.trials()  # 4 trials of 2 x 256 = 512 examples each
    # two trained in one ensemble of 2 (10 s wall each: 5 process-seconds apiece), one alone
    for config, wall, size in ((trials[0], 10.0, 2), (trials[1], 10.0, 2), (trials[2], 2.0, 1)):
        save_result(TrainResult(config=config, status="complete", epochs=[],
                                test_accuracy=0.5, wall_time=wall,
                                provenance={"ensemble_size": size}), tmp_path)
    cost = analysis.cost_summary(analysis.study_data(study, results_dir=tmp_path))
    assert (cost["trials"], cost["stored"], cost["examples"]) == (4, 3, 4 * 512)
    assert cost["process_hours"] == pytest.approx(12.0 / 3600)
    assert cost["examples_per_second"] == pytest.approx(3 * 512 / 12.0)
    assert cost["hours_to_go"] == pytest.approx(512 / (3 * 512 / 12.0) / 3600)
    empty = analysis.cost_summary(analysis.study_data(study, results_dir=tmp_path / "no"))
    assert empty["examples_per_second"] is None and empty["hours_to_go"] is None


def test_scaled_costs_total_the_studies_and_set_them_against_the_budget(tmp_path):
    spec = {"name": "cost", "base": {"data": "synthetic", "train_subset": 256, "num_epochs": 2},
            "grid": [{"batch_size": [4, 64], "base_lr": {"pow2": [-5, -4]}, "seed": [0]}]}
    study = Study.from_mapping(spec, "scaled")
    for config in study.trials()[:2]:  # 2 of 4 stored, 3,600 s each: 2 process-hours
        save_result(TrainResult(config=config, status="complete", epochs=[],
                                test_accuracy=0.5, wall_time=3600.0,
                                provenance={"ensemble_size": 1}), tmp_path)
    data = analysis.study_data(study, results_dir=tmp_path)
    table, totals, why = analysis.scaled_costs([data])
    assert table.loc["cost", "process-hours (stored)"] == pytest.approx(2.0)
    assert table.loc["cost", "process-hours to go"] == pytest.approx(2.0)
    assert totals == ("4 trials and 0.0M training examples; the 2 stored took 2.0 "
                      "process-hours. At the stored trials' rates the rest would take about "
                      "2.0 more (a run that diverges stops early; one that shares its cores "
                      "takes longer): about 4 "
                      "process-hours in all, 0.7 times the 6 CPU-hours this project set as "
                      "the scaled studies' budget.")
    assert why == ""  # 4 h is within the 6 h budget
    # a run two studies share is counted once in the time, and the text says so
    _, twice, _ = analysis.scaled_costs([data, data])
    assert ("the 4 stored took 4.0 process-hours, counting 2 runs twice that two studies "
            "share: 2 distinct runs took 2.0. At the stored trials' rates the rest would take "
            "about 4.0 more") in twice
    empty = analysis.study_data(study, results_dir=tmp_path / "none")
    _, totals, why = analysis.scaled_costs([empty])
    assert "The rest" not in totals and "no stored trial yet" in why
    for config in study.trials()[:2]:  # 5 h each: 10 stored, 10 to go, past the 6 h budget
        save_result(TrainResult(config=config, status="complete", epochs=[],
                                test_accuracy=0.5, wall_time=5 * 3600.0,
                                provenance={"ensemble_size": 1}), tmp_path / "dear")
    _, totals, why = analysis.scaled_costs(
        [analysis.study_data(study, results_dir=tmp_path / "dear")])
    assert "about 20 process-hours in all, 3.3 times" in totals
    assert why.startswith("What took them past it")
    for config in study.trials()[2:]:  # every trial stored: nothing left to estimate
        save_result(TrainResult(config=config, status="complete", epochs=[],
                                test_accuracy=0.5, wall_time=5 * 3600.0,
                                provenance={"ensemble_size": 1}), tmp_path / "dear")
    _, totals, why = analysis.scaled_costs(
        [analysis.study_data(study, results_dir=tmp_path / "dear")])
    assert totals.endswith("the 4 stored took 20.0 process-hours. Every trial is stored: "
                           "that is 3.3 times the 6 CPU-hours this project set as the scaled "
                           "studies' budget.")
    assert "the rest" not in totals and why.startswith("What took them past it")


def test_full_protocol_table_lists_every_study_with_a_full_version():
    from smallbatch.studies import study_names

    table = analysis.full_protocol_table()
    assert set(table.index) == set(study_names()) - {"smoke"} - set(
        analysis.SCALED_ONLY_STUDIES)
    assert table.loc["resnet-bn", "epochs"] == 82 and table.loc["cifar-augment",
                                                                "augmentation"] == "grid"
    assert table.loc["resnet-bn", "batch sizes"] == "2-2048"
    assert pd.isna(table.loc["imagenet", "training examples"])  # only its files tell


def test_study_protocol_counts_steps_and_warmup_steps():
    from smallbatch.studies import load_study

    warm = analysis.study_protocol(load_study("warmup", "scaled"))
    # 8,192 images, 10 epochs: 320 steps at m = 256 and 80 at m = 1024; 5% of them warm up
    assert warm["SGD steps per run"].to_dict() == {256: 320, 1024: 80}
    assert warm["warm-up steps"].to_dict() == {256: "16", 1024: "4"}
    assert warm["seeds"].to_dict() == {256: 3, 1024: 3}
    assert warm["log2 η̃ tried"].to_dict() == {256: "-14 to -5", 1024: "-15 to -5"}
    plain = analysis.study_protocol(load_study("resnet-bn", "scaled"))
    assert "warm-up steps" not in plain
    assert plain.loc[2, "trials"] == 33 and plain.loc[2, "SGD steps per run"] == 40960
    assert "also varied" not in plain
    # a grid with another axis says what else is varied, so trials = values x seeds x that
    both = analysis.study_protocol(load_study("cifar-augment", "scaled"))
    assert both.loc[2, "also varied"] == "augment: False, True"
    # seed 0 at every point, seeds 1 and 2 at the best and its neighbours of each curve
    # (and beside a best that moved): counted from the grid's own trials
    at_2 = [c for c in load_study("cifar-augment", "scaled").trials() if c.batch_size == 2]
    repeated = len({(c.augment, c.base_lr) for c in at_2 if c.seed == 2})
    assert repeated >= 6  # three values on each of the two curves at least
    assert both.loc[2, "seeds"] == (f"3 at {repeated} of {2 * both.loc[2, 'η̃ values']} "
                                    "points, 1 elsewhere")
    assert both.loc[2, "trials"] == 2 * both.loc[2, "η̃ values"] + 2 * repeated
    ghost = analysis.study_protocol(load_study("ghost-bn", "scaled"))
    assert ghost.loc[64, "also varied"] == "bn_batch_size: 2, 4, 8, 16, 32, 64"


def test_published_studies_are_what_make_studies_runs():
    from smallbatch import presets
    from smallbatch.studies import study_names

    import subprocess

    # make studies takes its list from PUBLISHED_STUDIES (no copy in the Makefile): the
    # command it would run, executed up to the list, gives exactly that list
    dry = subprocess.run(["make", "-n", "-C", str(presets.repo_root()), "studies",
                          f"PY={sys.executable}", "STAMP="], capture_output=True, text=True,
                         check=True).stdout
    listing = dry.split("for study in ", 1)[1].split("; do", 1)[0]
    shown = subprocess.run(["bash", "-c", f"echo {listing}"], capture_output=True, text=True,
                           check=True).stdout.split()
    assert tuple(shown) == analysis.PUBLISHED_STUDIES
    assert set(analysis.PUBLISHED_STUDIES) <= set(study_names())


def test_every_named_study_is_published_or_full_only():
    """A study in neither list would be shown by no chapter (unless its sweep is still
    under way: TRAINING_STUDIES, never published at the same time)."""
    from smallbatch.studies import load_study, study_names

    shown = set(analysis.PUBLISHED_STUDIES) | set(analysis.FULL_ONLY_STUDIES)
    assert set(study_names()) - {"smoke"} == shown | set(analysis.TRAINING_STUDIES)
    assert not set(analysis.TRAINING_STUDIES) & shown
    assert not set(analysis.PUBLISHED_STUDIES) & set(analysis.FULL_ONLY_STUDIES)
    for name in analysis.FULL_ONLY_STUDIES:  # no scaled override: scaled is the full grid
        assert load_study(name, "scaled").trials() == load_study(name, "full").trials()


def test_a_diverged_run_scores_chance_for_its_data_sets_classes(tmp_path):
    spec = {**SPEC, "base": {**SPEC["base"], "data": "cifar100"}}
    study = Study.from_mapping(spec, "scaled")
    config = study.trials()[0]
    save_result(TrainResult(config=config, status="diverged", epochs=[], test_accuracy=None),
                tmp_path)
    data = analysis.study_data(study, results_dir=tmp_path)
    assert data.num_classes == 100 and data.frame["score"].tolist() == [pytest.approx(0.01)]


def test_the_claims_table_is_shown_escaped_left_aligned_and_without_its_index():
    verdict = analysis.Verdict(claim="m <= 32 is <best>", measurement="0.9 & 0.8",
                               rule="r", verdict="agrees")
    table, rules = analysis.verdict_table([("runs A", verdict)])
    html = analysis.claims_style(table).to_html()
    assert "m &lt;= 32 is &lt;best&gt;" in html and "0.9 &amp; 0.8" in html
    assert "text-align: left" in html
    assert 'class="row_heading' not in html  # no index column
    assert "*m <= 32 is <best>*: r." in rules


def _equal_steps_best(medians, seeds=(3, 3, 3, 3)):
    return pd.DataFrame({"log2_base_lr": [-5, -7, -8, -10], "median": medians,
                         "low": medians, "high": medians, "seeds": list(seeds),
                         "diverged": 0}, index=pd.Index([32, 128, 256, 1024], name="batch_size"))


@pytest.mark.parametrize("medians, seeds, at_end, expected", [
    ([0.88, 0.90, 0.91, 0.895], (3, 3, 3, 3), [], "agrees"),
    ([0.88, 0.885, 0.875, 0.88], (3, 3, 3, 3), [], "equivalent within the noise margin"),
    ([0.88, 0.885, 0.875, 0.86], (3, 3, 3, 3), [], "disagrees"),
    ([0.88, 0.885, 0.875, 0.88], (3, 3, 2, 3), [], "cannot decide"),
    ([0.88, 0.885, 0.875, 0.88], (3, 3, 3, 3), [1024], "cannot decide"),
    # a deficit beyond the margin decides against the claim even beside an undecided m
    ([0.88, 0.885, 0.85, 0.88], (3, 3, 3, 2), [], "disagrees"),
])
def test_the_equal_steps_verdict_returns_each_of_its_four_outcomes(medians, seeds, at_end,
                                                                   expected):
    best = _equal_steps_best(medians, seeds)
    edges = pd.DataFrame({"inside": [m not in at_end for m in best.index]}, index=best.index)
    verdict, per_m = analysis.verdict_equal_steps(best, 32, 0.01, edges)
    assert verdict.verdict == expected
    assert set(per_m) == {128, 256, 1024}
    assert verdict.claim == analysis.CLAIM_EQUAL_STEPS


def test_the_equal_steps_verdict_needs_the_reference_and_a_larger_batch():
    best = _equal_steps_best([0.88, 0.9, 0.9, 0.9]).loc[[128, 256]]
    verdict, per_m = analysis.verdict_equal_steps(best, 32, 0.01)
    assert verdict.verdict == "cannot decide" and per_m == {}


def test_seed_gaps_empty_when_every_best_and_neighbour_has_three_seeds(stored):
    # the one missing trial, (m = 4, 2^-6, seed 2), is two octaves below m = 4's best
    assert analysis.seed_gaps(stored.frame).empty


def _one_seed_except(frame, keep):
    """``frame`` with seeds 1 and 2 only at the (m, log2 eta_tilde) cells in ``keep``."""
    cells = list(zip(frame["batch_size"], frame["log2_base_lr"]))
    return frame[[seed == 0 or cell in keep for seed, cell in zip(frame["seed"], cells)]]


def test_seed_gaps_follow_a_best_that_moved(stored):
    # seeds 1-2 only where seed 0 would not put the best: m = 4 at 2^-6 and 2^-5, m = 64
    # at 2^-5 and its neighbours. m = 4's best is then 2^-4 (seed 0 alone, 0.895) with
    # 2^-3 above it on one seed; 2^-5 below has 3 seeds and is not named.
    keep = {(4, -6), (4, -5), (64, -6), (64, -5), (64, -4)}
    gaps = analysis.seed_gaps(_one_seed_except(stored.frame, keep))
    assert list(gaps.columns) == ["batch_size", "log2_base_lr", "role", "seeds"]
    assert gaps.to_dict("records") == [
        {"batch_size": 4, "log2_base_lr": -4, "role": "best", "seeds": 1},
        {"batch_size": 4, "log2_base_lr": -3, "role": "above", "seeds": 1}]
    # a stricter requirement names the 3-seed cells too; a looser one nothing
    assert len(analysis.seed_gaps(stored.frame, min_seeds=4)) == 6
    assert analysis.seed_gaps(_one_seed_except(stored.frame, keep), min_seeds=1).empty


def test_seed_gaps_at_a_window_end_and_on_a_split_axis(stored):
    # m = 4 tried only from 2^-4 up: its best is the window's lowest value, no "below"
    frame = stored.frame[(stored.frame["batch_size"] == 64)
                         | (stored.frame["log2_base_lr"] >= -4)]
    frame = _one_seed_except(frame, {(64, -6), (64, -5), (64, -4)})
    gaps = analysis.seed_gaps(frame)
    assert gaps[["batch_size", "log2_base_lr", "role"]].values.tolist() == [
        [4, -4, "best"], [4, -3, "above"]]
    # a config axis that varies (augment) makes separate curves, and a column of its own
    both = pd.concat([frame.assign(augment=False),
                      stored.frame.assign(augment=True)], ignore_index=True)
    gaps = analysis.seed_gaps(both)
    assert list(gaps.columns[:2]) == ["batch_size", "augment"]
    assert set(gaps["augment"]) == {False}


def test_seed_gaps_keep_a_curve_whose_setting_is_missing(stored):
    # m_BN None (batch norm over the whole batch) is a curve of its own, not dropped
    thin = _one_seed_except(stored.frame, {(4, -6), (4, -5), (64, -6), (64, -5), (64, -4)})
    both = pd.concat([stored.frame.assign(bn_batch_size=2),
                      thin.assign(bn_batch_size=None)], ignore_index=True)
    gaps = analysis.seed_gaps(both)
    assert list(gaps.columns[:2]) == ["batch_size", "bn_batch_size"]
    assert gaps[["batch_size", "log2_base_lr", "role"]].values.tolist() == [
        [4, -4, "best"], [4, -3, "above"]]
    assert gaps["bn_batch_size"].isna().all()
    assert analysis.count_curves(both) == 4
    table, _ = analysis.seeds_overview({"ghost": both})
    assert list(table.index) == [("ghost", "m = 4, m_BN = none")]


def test_best_first_takes_the_highest_median_and_the_smaller_eta_on_a_tie():
    cells = pd.DataFrame({"batch_size": [4, 4, 4, 64, 64], "log2_base_lr": [-3, -5, -4, -6, -5],
                          "median": [0.8, 0.9, 0.9, 0.7, 0.85]})
    assert analysis.best_first(cells)["log2_base_lr"].tolist() == [-5, -4, -5, -3, -6]
    ordered = analysis.best_first(cells, ["batch_size"])
    assert ordered[["batch_size", "log2_base_lr"]].values.tolist() == [
        [4, -5], [4, -4], [4, -3], [64, -5], [64, -6]]


def test_seed_gap_grid_fills_the_gaps(stored):
    keep = {(4, -6), (4, -5), (64, -6), (64, -5), (64, -4)}
    frame = _one_seed_except(stored.frame, keep)
    blocks = analysis.seed_gap_grid(analysis.seed_gaps(frame))
    assert blocks[0] == {"batch_size": [4], "base_lr": {"pow2": [-4, -4]}, "seed": [0, 1, 2]}
    spec = dict(SPEC, grid=blocks)
    trials = Study.from_mapping(spec, "scaled").trials()
    assert sorted((c.batch_size, round(math.log2(c.base_lr)), c.seed) for c in trials) == [
        (4, -4, 0), (4, -4, 1), (4, -4, 2), (4, -3, 0), (4, -3, 1), (4, -3, 2)]


def test_seeds_overview_names_the_short_cells_per_set(stored):
    keep = {(4, -6), (4, -5), (64, -6), (64, -5), (64, -4)}
    table, text = analysis.seeds_overview({"full": stored.frame,
                                           "thin": _one_seed_except(stored.frame, keep)})
    assert list(table.index) == [("thin", "m = 4")]  # one row per short curve
    assert table.loc[("thin", "m = 4"), "best"] == "2^-4"
    assert table.loc[("thin", "m = 4"), "short cells (log2 η̃ : seeds stored)"] == \
        "2^-4 best: 1, 2^-3: 1"
    assert text.startswith("1 of 4 curves have fewer than 3 seeds at their best η̃ or at the "
                           "η̃ tried on either side of it (full: 0 of 2; thin: 1 of 2).")
    table, text = analysis.seeds_overview({"full": stored.frame})
    assert table.empty
    assert text == ("Every one of the 2 curves has at least 3 seeds at its best η̃ and at the "
                    "η̃ tried on either side of it.")


def test_seed_gap_grid_writes_a_missing_setting_as_none():
    gaps = pd.DataFrame([{"batch_size": np.int64(64), "bn_batch_size": float("nan"),
                          "log2_base_lr": -6, "role": "best", "seeds": 1}])
    assert analysis.seed_gap_grid(gaps, seeds=(1, 2)) == [
        {"batch_size": [64], "bn_batch_size": [None], "base_lr": {"pow2": [-6, -6]},
         "seed": [1, 2]}]
    assert type(analysis.seed_gap_grid(gaps)[0]["batch_size"][0]) is int


def _scattered_frame(far_scores=(0.50, 0.70, 0.60)):
    """m = 4: two cells whose three seeds are 1 point apart (variance 1e-4 each); m = 64: one
    cell whose seeds scatter by ``far_scores``."""
    rows = [(4, 2.0 ** -5, seed, 0.90 + 0.01 * seed) for seed in range(3)]
    rows += [(4, 2.0 ** -4, seed, 0.89 + 0.01 * seed) for seed in range(3)]
    rows += [(64, 2.0 ** -5, seed, score) for seed, score in enumerate(far_scores)]
    frame = pd.DataFrame(rows, columns=["batch_size", "base_lr", "seed", "score"])
    return frame.assign(status="complete", log2_base_lr=np.log2(frame["base_lr"]).astype(int))


def test_spread_by_point_names_the_point_that_sets_the_pooled_spread():
    frame = _scattered_frame()
    by_point = analysis.spread_by_point(frame)
    assert list(by_point.columns) == ["batch_size", "spread", "spread_without"]
    assert by_point["batch_size"].tolist() == [64, 4]  # most scattered first
    assert by_point["spread"].tolist() == pytest.approx([0.1, 0.01])
    assert by_point["spread_without"].tolist() == pytest.approx([0.01, 0.1])
    # the pooled spread: (2 x 1e-4 + 2 x 1e-4 + 2 x 1e-2) / 6 degrees of freedom
    assert analysis.seed_spread(frame) == pytest.approx(math.sqrt(0.0204 / 6))


def test_margins_overview_says_when_one_point_sets_a_margin():
    frames = {"scattered": _scattered_frame(), "even": _scattered_frame((0.60, 0.61, 0.62))}
    margins = {label: analysis.noise_margin(frame) for label, frame in frames.items()}
    table, text = analysis.margins_overview(frames, margins)
    assert table.loc["scattered", "most scattered point"] == "m = 64"
    assert table.loc["scattered", "noise margin"] == pytest.approx(200 * math.sqrt(0.0204 / 6))
    assert table.loc["scattered", "margin without it"] == pytest.approx(2.0)  # 2 x 1 point
    assert table.loc["even", "margin without it"] == pytest.approx(2.0)
    assert table["margin rests on it"].tolist() == [True, False]
    assert text.startswith("One point of the grid sets most of the margin of scattered "
                           "(m = 64: 11.66 points with it, 2.00 without).")
    assert "even" not in text  # every point of it scatters alike: nothing named
    table, text = analysis.margins_overview({"even": frames["even"]},
                                            {"even": margins["even"]})
    assert text.startswith("No set's margin rests on one point")
