"""The experiments chapters' analysis (smallbatch.experiments) on records with known answers."""

import math

import numpy as np
import pytest

from smallbatch import experiments
from smallbatch.results import save_result
from smallbatch.sweep import Study
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
    return experiments.study_data(study, results_dir=tmp_path)


def test_study_data_counts_and_scores(stored):
    assert stored.total == 2 * 5 * 3 and stored.missing == 1 and not stored.complete
    assert len(stored.frame) == 29 and 8 not in set(stored.frame["batch_size"])
    diverged = stored.frame[stored.frame["status"] == "diverged"]
    assert len(diverged) == 3 and np.allclose(diverged["score"], 0.1)  # chance, 10 classes
    assert stored.commits == ("abc123",)
    assert "29 of 30 trials" in stored.provenance_note()


def test_cells_best_and_margin(stored):
    cells = experiments.cell_summary(stored.frame)
    cell = cells.set_index(["batch_size", "log2_base_lr"]).loc[(4, -4)]
    assert cell["seeds"] == 3 and cell["median"] == pytest.approx(0.90)
    assert cell["low"] == pytest.approx(0.895) and cell["high"] == pytest.approx(0.905)
    best = experiments.best_per_batch(cells)
    assert best.loc[4, "log2_base_lr"] == -4 and best.loc[64, "log2_base_lr"] == -5
    assert best.loc[64, "median"] == pytest.approx(0.80)
    # seed spread is +-0.005 (sd 0.005): 2 x sd = 0.01, the floor
    assert experiments.noise_margin(stored.frame) == pytest.approx(0.01)


def test_noise_margin_grows_with_seed_spread(stored):
    frame = stored.frame.copy()
    frame["score"] = frame["score"] + np.where(frame["seed"] == 0, -0.02, 0.0)
    assert experiments.noise_margin(frame) > 0.02
    one_seed = stored.frame[stored.frame["seed"] == 0]
    assert experiments.noise_margin(one_seed, test_size=5000) == pytest.approx(
        0.01 + 2 * math.sqrt(0.09 / 5000))


def test_good_range_against_global_and_own_best(stored):
    cells = experiments.cell_summary(stored.frame)
    own = experiments.good_range(cells, margin=0.035, reference="own")
    # within 0.035 of own peak: the peak and one octave either side
    assert own.loc[4, ["lowest", "highest", "octaves"]].tolist() == [-5, -3, 3]
    assert own.loc[64, ["lowest", "highest", "octaves"]].tolist() == [-6, -4, 3]
    glob = experiments.good_range(cells, margin=0.035, reference="global")
    assert glob.loc[4, "octaves"] == 3 and glob.loc[64, "octaves"] == 0
    assert math.isnan(glob.loc[64, "lowest"])
    with pytest.raises(ValueError, match="reference"):
        experiments.good_range(cells, 0.01, reference="best")


def best_table(values: dict[int, float]):
    import pandas as pd

    return pd.DataFrame({"median": values, "log2_base_lr": -5, "low": 0, "high": 1,
                         "seeds": 1, "diverged": 0})


@pytest.mark.parametrize("values,verdict", [
    ({2: 0.90, 32: 0.89, 128: 0.85, 1024: 0.80}, "agrees"),
    ({2: 0.90, 32: 0.89, 128: 0.895, 1024: 0.80}, "inconclusive"),  # large m within margin
    ({2: 0.80, 32: 0.85, 128: 0.90, 1024: 0.88}, "disagrees"),
    ({2: 0.895, 32: 0.88, 128: 0.90, 1024: 0.88}, "inconclusive"),  # small m within margin
])
def test_small_batches_best_verdict(values, verdict):
    result = experiments.verdict_small_batches_best(best_table(values), margin=0.01)
    assert result.verdict == verdict
    assert f"best m = {max(values, key=values.get)}" in result.measurement


@pytest.mark.parametrize("counts,verdict", [
    ([6, 5, 4, 2], "agrees"), ([2, 3, 4, 6], "disagrees"), ([4, 4, 4, 4], "inconclusive"),
    ([4, 6, 3, 5], "inconclusive")])
def test_range_shrinks_verdict(counts, verdict):
    import pandas as pd

    ranges = pd.DataFrame({"octaves": counts}, index=[2, 16, 128, 1024])
    assert experiments.verdict_range_shrinks(ranges).verdict == verdict


def test_smoke_study_runs_end_to_end():
    data = experiments.load_or_run("resnet-bn", "smoke")
    assert data.complete and len(data.frame) == data.total
    assert "All" in experiments.missing_note(data)


def test_edges_reached(stored):
    cells = experiments.cell_summary(stored.frame)
    edges = experiments.edges_reached(cells, margin=0.035)
    # m = 4: window 2^-6..2^-2 around a peak at 2^-4: both ends 0.06 below
    assert edges.loc[4, ["best", "slow_side", "failing_side"]].tolist() == [-4, True, True]
    # m = 64: peak 2^-5, 2^-6 only 0.03 below (within the margin); 2^-2 diverged
    assert edges.loc[64, ["best", "slow_side", "failing_side"]].tolist() == [-5, False, True]
    assert edges.loc[64, "tried"] == "2^-6 to 2^-2"


@pytest.mark.parametrize("bn,none,verdict", [
    ({2: 0.90, 1024: 0.85}, {2: 0.88, 1024: 0.70}, "agrees"),
    ({2: 0.90, 1024: 0.70}, {2: 0.88, 1024: 0.85}, "disagrees"),
    ({2: 0.90, 1024: 0.85}, {2: 0.88, 1024: 0.825}, "inconclusive")])
def test_bn_gap_verdict(bn, none, verdict):
    result = experiments.verdict_bn_widens_gap(best_table(bn), best_table(none), margin=0.01)
    assert result.verdict == verdict


def test_process_hours_share_an_ensembles_wall_time():
    import pandas as pd

    frame = pd.DataFrame({"wall_time": [3600.0, 3600.0, 1800.0],
                          "provenance_ensemble_size": [2, 2, None]})
    assert experiments.process_hours(frame) == pytest.approx(1.5)
