"""The experiments chapters' sections (smallbatch.analysis.experiments and the RunSet
figures), on stored records whose answers are worked out here by hand."""

import dataclasses
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from smallbatch import analysis, figures
from smallbatch.store import save_result
from smallbatch.studies import Study, load_study
from smallbatch.train import EpochMetrics, TrainResult


def accuracy(m: int, log2_lr: int, seed: int, tops=(0.90, 0.80)) -> float | None:
    """m = 4 peaks at 2^-4 (tops[0]), a larger m (64) at 2^-5 (tops[1]), each falling 0.015
    an octave; seeds add -0.01, 0, +0.01; the larger m diverges at 2^-2 in every seed."""
    if m != 4 and log2_lr == -2:
        return None
    peak, top = (-4, tops[0]) if m == 4 else (-5, tops[1])
    return top - 0.015 * abs(log2_lr - peak) + 0.01 * (seed - 1)


def stored(folder, name="fake", tops=(0.90, 0.80), sizes=(4, 64), **base
           ) -> analysis.StudyData:
    """A study over m = ``sizes`` (m = 4, then a larger one), log2 eta_tilde -6 ... -2 and
    seeds 0-2 with :func:`accuracy`; each complete run has two epochs whose last training
    loss is 0.2 at its m's peak, plus 0.1 an octave away and 0.01 a seed, and whose first
    epoch's test accuracy is 0.1 below its last."""
    spec = {"name": name, "base": {"data": "synthetic", "train_subset": 256, "num_epochs": 2,
                                   **base},
            "grid": [{"batch_size": list(sizes), "base_lr": {"pow2": [-6, -2]},
                      "seed": [0, 1, 2]}]}
    study = Study.from_mapping(spec, "scaled")
    for config in study.trials():
        m, lr = config.batch_size, round(math.log2(config.base_lr))
        value = accuracy(m, lr, config.seed, tops)
        loss = 0.2 + 0.1 * abs(lr - (-4 if m == 4 else -5)) + 0.01 * config.seed
        epochs = [] if value is None else [
            EpochMetrics(epoch=e, train_loss=loss * (3 - e), train_accuracy=0.5,
                         test_loss=1.0, test_accuracy=value - 0.1 * (2 - e), lr=0.1,
                         examples_seen=256 * e, wall_time=e) for e in (1, 2)]
        save_result(TrainResult(config=config, status="complete" if value else "diverged",
                                epochs=epochs, test_accuracy=value,
                                provenance={"git_commit": "abc123"}), folder)
    return analysis.study_data(study, results_dir=folder)


@pytest.fixture()
def pair(tmp_path):
    """Two sets of AlexNet runs, with batch norm and without; without it the best at
    m = 64 is 0.70, not 0.80."""
    bn = stored(tmp_path / "bn", "with", model="alexnet", batch_norm="all")
    none = stored(tmp_path / "none", "without", tops=(0.90, 0.70), model="alexnet",
                  batch_norm="none")
    return analysis.run_sets([bn, none])


# ------------------------------------------------------------ "Batch size against learning rate"

def test_the_batch_size_chapter_adds_the_full_only_studies_at_the_full_scale():
    assert analysis.batch_lr_studies("scaled") == list(analysis.BATCH_LR_STUDIES)
    assert analysis.batch_lr_studies("full") == [*analysis.BATCH_LR_STUDIES,
                                                 *analysis.FULL_ONLY_STUDIES]


def test_study_notes_protocols_and_stored_trials_name_each_study(tmp_path):
    data = {"fake": stored(tmp_path)}
    label = analysis.study_label(data["fake"].study)
    assert analysis.study_notes(data) == [
        f"**fake** ({label}): All 30 trials of study `fake` at the scaled scale are stored."]
    ((heading, protocol),) = analysis.protocol_tables(data)
    assert heading == f"**fake**: {label}, 2 epochs"
    assert protocol.loc[4, "SGD steps per run"] == 64 * 2
    table = analysis.stored_trials(data).data
    assert table.loc["fake", ["trials stored", "trials in the study"]].tolist() == [30, 30]
    assert table.loc["fake", "code commit(s)"] == "abc123"


def test_window_edges_name_the_windows_that_miss_a_side(pair):
    text, table = analysis.window_edges(pair)
    # margin 0.02 (seed SD 0.01); at m = 64 the slowest eta_tilde, 2^-6, is 0.015 below the
    # best: no slow side (in both sets)
    labels = list(pair)
    assert text == (f"2 of 4 windows miss a side or have their best at an end: "
                    f"{labels[0]}: m = 64; {labels[1]}: m = 64.")
    assert table.loc[labels[0], 4] == "-4" and table.loc[labels[0], 64] == "-5 (no slow side)"


def test_margins_style_shows_points_and_one_seed_where_there_are_no_repeats():
    table = pd.DataFrame({"noise margin": [2.0, 1.5], "its seed SD": [0.514, None],
                          "most scattered point": ["m = 4", ""],
                          "margin rests on it": [True, False]}, index=["a", "b"])
    html = analysis.margins_style(table).to_html()
    assert "0.51" in html and "one seed" in html and "runs (points)" in html
    assert "2.00" in html and "True" in html


def test_lowest_training_loss_per_m_beside_the_best_accuracy(pair):
    fit = analysis.lowest_training_loss(pair, "alexnet")
    labels = list(pair)
    # the lowest last-epoch loss is at each m's peak, seed 0: 0.2; m = 64's diverged runs
    # have no epochs and are left out
    assert fit[(labels[0], "lowest training loss")].tolist() == pytest.approx([0.2, 0.2])
    assert fit[(labels[1], "best test accuracy")].tolist() == pytest.approx([0.90, 0.70])
    assert analysis.lowest_loss_text(fit) == (
        f"At m = 4: {labels[0]}: lowest training loss 0.200, best test accuracy 0.900; "
        f"{labels[1]}: lowest training loss 0.200, best test accuracy 0.900.")
    assert analysis.lowest_training_loss(pair, "resnet8").empty


def test_batch_lr_verdicts_read_each_set_and_the_batch_norm_pair_under_one_margin(pair):
    verdicts = analysis.batch_lr_verdicts(pair)
    assert len(verdicts) == 3 + 3 + 1
    gap = verdicts[-1]
    assert gap.where == "alexnet, batch norm against none"
    assert gap.verdict.claim == analysis.CLAIM_BN_GAP
    # drop to the largest m: 0.10 with batch norm, 0.20 without: more than the margin
    assert gap.verdict.verdict == analysis.AGREES
    assert "0.1000 with BN" in gap.verdict.measurement
    assert "margin 0.0200" in gap.verdict.measurement


def test_the_batch_norm_verdict_takes_the_noisier_sets_margin(tmp_path):
    bn = stored(tmp_path / "bn", "with", model="alexnet", batch_norm="all")
    # without batch norm: the same drop plus 0.03, but seeds three times as scattered
    frame = stored(tmp_path / "none", "without", tops=(0.90, 0.77), model="alexnet",
                   batch_norm="none")
    scattered = frame.frame.assign(score=frame.frame["score"]
                                   + 0.02 * (frame.frame["seed"] - 1)
                                   * (frame.frame["status"] == "complete"))
    none = dataclasses.replace(frame, frame=scattered)
    sets = analysis.run_sets([bn, none])
    gap = analysis.batch_lr_verdicts(sets)[-1]
    # own margins 0.02 and 0.06: read with 0.06, a difference of 0.03 is no difference
    assert "margin 0.0600" in gap.verdict.measurement
    assert gap.verdict.verdict == analysis.EQUIVALENT


def test_verdict_counts_and_incomplete_studies():
    claims = pd.DataFrame({"verdict": [analysis.AGREES, analysis.AGREES, analysis.CANNOT_DECIDE]})
    data = {"a": SimpleNamespace(complete=True), "b": SimpleNamespace(complete=False)}
    assert analysis.verdict_counts(claims, data) == (
        "Verdicts: 2 agree, 0 disagree, 0 find no difference beyond the noise margin, 1 "
        "cannot decide. **These rest on incomplete studies (b); they will change as the "
        "remaining trials are stored.**")
    assert analysis.verdict_counts(claims, {"a": data["a"]}).endswith("1 cannot decide.")
    assert analysis.verdict_counts(claims.iloc[:0], data).startswith("No verdicts")


def test_resting_margins_name_the_sets_whose_margin_rests_on_one_point():
    margins = pd.DataFrame({"margin rests on it": [True, False, True]}, index=["a", "b", "c"])
    claims = pd.DataFrame({"verdict": [analysis.AGREES]})
    assert analysis.resting_margins(margins, claims).startswith("The noise margin of a, c rests")
    assert analysis.resting_margins(margins.iloc[1:2], claims) is None
    assert analysis.resting_margins(margins, claims.iloc[:0]) is None


def test_weight_decay_table_follows_each_best(tmp_path):
    # named resnet-bn, so the full scale's weight decay is the headline study's, 1e-4
    headline = analysis.RunSet.of(stored(tmp_path, "resnet-bn"))
    styled, text = analysis.weight_decay_table(headline)
    table = styled.data
    assert table["best log2 η̃"].to_dict() == {4: -4, 64: -5}
    assert table["SGD steps"].to_dict() == {4: 128, 64: 8}
    # per-example decay: about exp(-lambda eta_tilde N s), N the examples seen (2 x 256)
    # and s the schedule's mean factor (1/2 + 1/4 x 0.1 + 1/4 x 0.01)
    for m, log2_lr in ((4, -4), (64, -5)):
        expected = math.exp(-1e-4 * 2.0 ** log2_lr * 512 * 0.5275)
        assert table.loc[m, "weights × (decay alone, one run)"] == pytest.approx(expected,
                                                                                 rel=1e-6)
    assert text.startswith("With λ = 0.0001 (the `full` scale's), the decay alone would have "
                           "multiplied the weights by 0.998 (m = 4) to 0.999 (m = 64)")


def test_the_run_set_figures_use_its_chance_margin_and_data_sets(pair, tmp_path):
    one = next(iter(pair.values()))
    fig = figures.accuracy_vs_lr_of(one)
    assert fig.layout.shapes[0].y0 == pytest.approx(0.1)  # chance, 10 classes
    hundred = analysis.RunSet.of(stored(tmp_path, data="cifar100", train_subset=1024))
    assert figures.accuracy_vs_lr_of(hundred).layout.shapes[0].y0 == pytest.approx(0.01)
    assert one.label in fig.layout.title.text
    (both,) = figures.best_and_range_by_data(pair)  # one data set: one figure
    assert both.layout.title.text.startswith("Best accuracy and the range of good η̃ "
                                             "against m: Synthetic")
    assert "noise margin 2.0 points" in both.data[0].name


# ------------------------------------------------------------ "Batch norm's own batch"

GHOST_BESTS = {(64, 4): 0.90, (64, None): 0.88, (256, 4): 0.89, (256, None): 0.80}


@pytest.fixture()
def ghost(tmp_path):
    """A ghost-batch-norm study: the best of each (m, m_BN) is GHOST_BESTS, at 2^-5 but for
    ordinary batch norm at m = 256, whose best is at 2^-4, the top of its window; 0.02 an
    octave off the best, seeds +-0.005 (margin: the 0.01 floor)."""
    study = Study.from_mapping({
        "name": "ghost", "base": {"data": "synthetic", "train_subset": 1024, "num_epochs": 1},
        "grid": [{"batch_size": [64, 256], "bn_batch_size": [4, None],
                  "base_lr": {"pow2": [-6, -4]}, "seed": [0, 1, 2]}]}, "scaled")
    for config in study.trials():
        key = (config.batch_size, config.bn_batch_size)
        peak = -4 if key == (256, None) else -5
        value = (GHOST_BESTS[key] - 0.02 * abs(round(math.log2(config.base_lr)) - peak)
                 + 0.005 * (config.seed - 1))
        save_result(TrainResult(config=config, status="complete", epochs=[],
                                test_accuracy=value), tmp_path)
    data = analysis.study_data(study, results_dir=tmp_path)
    return analysis.RunSet.of(data, by=analysis.GHOST_CURVE)


def test_the_fall_with_m_with_ordinary_batch_norm_and_at_a_fixed_bn_batch(ghost, tmp_path):
    assert ghost.margin == pytest.approx(0.01)
    assert analysis.fall_with_m_text(ghost) == (
        "From $m = 64$ to $m = 256$ the best accuracy falls by 0.0800 with ordinary batch "
        "norm, and at a fixed $m_{\\mathrm{BN}}$ by 4: 0.0100 (noise margin 0.0100). Where "
        "the fall at a fixed $m_{\\mathrm{BN}}$ is as large as with ordinary batch norm, the "
        "batch-size effect here is not a batch-norm-batch effect.")
    one_m = ghost.only([64])
    assert analysis.fall_with_m_text(one_m) is None
    with pytest.raises(ValueError, match="GHOST_CURVE"):
        analysis.fall_with_m_text(analysis.RunSet.of(stored(tmp_path)))


def test_ghost_edges_name_the_points_with_a_best_at_an_end(ghost):
    assert analysis.ghost_edges_text(ghost.edges) == (
        "1 of 4 stored $(m, m_{\\mathrm{BN}})$ points have their best $\\tilde\\eta$ at an end "
        "of their window: (256, 256); 1 have a window that misses a side (no slow side or no "
        "failing side) or a best at an end: (256, 256).")
    inside = ghost.edges[ghost.edges["inside"]]
    assert analysis.ghost_edges_text(inside) == (
        "0 of 3 stored $(m, m_{\\mathrm{BN}})$ points have their best $\\tilde\\eta$ at an end "
        "of their window; 0 have a window that misses a side (no slow side or no failing "
        "side) or a best at an end.")


def test_ghost_verdicts_read_both_claims_per_m_and_bn_batch(ghost):
    small, independent = analysis.ghost_verdicts(ghost)
    assert small.verdict.claim == analysis.CLAIM_SMALL_BN_BATCH
    assert independent.verdict.claim == analysis.CLAIM_BN_BATCH_INDEPENDENT
    assert small.where == ghost.label and small.held_out is not None and small.resamples
    # m_BN = 4 beats ordinary batch norm at both m by more than the margin, but at m = 256
    # the losing ordinary batch norm has its best at the top of its window (the set's edges)
    assert small.verdict.verdict == analysis.CANNOT_DECIDE
    assert "the best of (256, 256) is at an end of its η̃ window" in small.verdict.measurement
    assert "m = 64: best m_BN = 4" in small.verdict.measurement
    empty = dataclasses.replace(ghost.data, frame=ghost.frame.iloc[:0])
    assert analysis.ghost_verdicts(analysis.RunSet.of(empty, by=analysis.GHOST_CURVE)) == []


# ------------------------------------------------------------ "Warm-up"

@pytest.fixture()
def warmup(tmp_path):
    """With warm-up: m = 64 only, its best 0.83 at 2^-4, 0.015 an octave off it, seeds
    +-0.02 (a seed SD of 0.02: margin 0.04). Without: :func:`stored` (m = 4 and 64, margin
    0.02)."""
    study = Study.from_mapping({
        "name": "warm", "base": {"data": "synthetic", "train_subset": 256, "num_epochs": 2,
                                 "warmup": True},
        "grid": [{"batch_size": [64], "base_lr": {"pow2": [-6, -2]}, "seed": [0, 1, 2]}]},
        "scaled")
    for config in study.trials():
        value = (0.83 - 0.015 * abs(round(math.log2(config.base_lr)) + 4)
                 + 0.02 * (config.seed - 1))
        save_result(TrainResult(config=config, status="complete", epochs=[],
                                test_accuracy=value), tmp_path / "warm")
    warm = analysis.study_data(study, results_dir=tmp_path / "warm")
    return analysis.warmup_sets(warm, stored(tmp_path / "plain"))


def test_warmup_sets_are_read_under_the_larger_margin(warmup):
    with_warmup, without = warmup
    assert (with_warmup.label, without.label) == ("with warm-up", "without")
    assert with_warmup.own_margin == pytest.approx(0.04)
    assert without.own_margin == pytest.approx(0.02)
    assert with_warmup.margin == without.margin == pytest.approx(0.04)


def test_warmup_side_by_side_at_the_batch_sizes_with_warmup(warmup):
    styled, text = analysis.warmup_side_by_side(*warmup)
    table = styled.data
    assert table.index.tolist() == [("with warm-up", 64), ("without", 64)]
    # within 0.04 of 0.83: every eta_tilde tried (the farthest is 0.80); of 0.80 without
    # warm-up: 2^-6 to 2^-3 (0.77), not 2^-2 (diverged)
    assert table.loc[("with warm-up", 64)].tolist() == pytest.approx([-4, 0.83, -6, -2, 5, 5])
    assert table.loc[("without", 64)].tolist() == pytest.approx([-5, 0.80, -6, -3, 4, 5])
    assert text == "Margin: 0.0400 (the larger of the two sets of runs' noise margins)."


def test_warmup_edges_at_the_batch_sizes_with_warmup_and_the_shared_margin(warmup):
    edges = analysis.warmup_edges(*warmup)
    assert list(edges) == ["with warm-up", "without"]
    assert edges["without"].index.tolist() == [64]
    # 2^-6 is 0.03 below either best: within the shared 0.04, so no slow side in either
    assert not edges["with warm-up"].loc[64, "slow_side"]
    assert not edges["without"].loc[64, "slow_side"] and edges["without"].loc[64, "failing_side"]


def test_warmup_verdicts_need_a_small_batch_without_warmup(warmup):
    with_warmup, without = warmup
    helps, gap = analysis.warmup_verdicts(with_warmup, without)
    assert helps.verdict.claim == analysis.CLAIM_WARMUP_HELPS
    assert gap.verdict.claim == analysis.CLAIM_WARMUP_GAP
    assert helps.where == analysis.study_label(with_warmup.study)
    # 0.83 against 0.80 at m = 64: less than the shared margin of 0.04
    assert helps.verdict.verdict == analysis.EQUIVALENT
    assert analysis.warmup_verdicts(with_warmup, without.only([64])) == []


def test_warmup_steps_here_and_in_the_full_protocol():
    # here 8,192 images and 10 epochs: 32 x 10 = 320 steps at m = 256, 8 x 10 = 80 at
    # m = 1024; in the full protocol 50,000 images and 82 epochs: 195 x 82 = 15,990 and
    # 48 x 82 = 3,936; warm-up is the first 5%, rounded up
    assert analysis.warmup_steps_text(load_study("warmup", "scaled")) == (
        "Warm-up steps of one run: m = 256: 16 of 320 here, 800 of 15,990 in the full "
        "protocol; m = 1024: 4 of 80 here, 197 of 3,936 in the full protocol.")


# ------------------------------------------------------------ "Training curves"

def test_curves_at_each_ms_best_and_its_table(tmp_path):
    runs = analysis.RunSet.of(stored(tmp_path))
    own = analysis.curves_at_best(runs)
    assert set(zip(own["batch_size"], own["log2_base_lr"])) == {(4, -4), (64, -5)}
    last = own[own["epoch"] == 2].set_index("batch_size")["test_accuracy"]
    assert last.tolist() == pytest.approx([0.90, 0.80])
    table = analysis.best_lr_table(runs).data
    assert table.index.name == "batch size m"
    assert table.loc[4].tolist() == pytest.approx([-4, 0.90, 3])
    assert table.loc[64].tolist() == pytest.approx([-5, 0.80, 3])


def test_last_epoch_table_of_the_curves_at_one_eta(tmp_path):
    runs = analysis.RunSet.of(stored(tmp_path))
    table = analysis.last_epoch_table(runs.curves(-4)).data
    # m = 4 at its peak: 512 examples in two epochs are 128 steps, losses 0.20, 0.21, 0.22;
    # m = 64 one octave off its peak: 8 steps, losses 0.30 ... 0.32, accuracy 0.785
    assert table.loc[4].tolist() == pytest.approx([2, 128, 0.21, 0.90, 3])
    assert table.loc[64].tolist() == pytest.approx([2, 8, 0.31, 0.785, 3])


def test_curves_verdicts_compare_small_and_large_batches_at_one_eta(tmp_path):
    runs = analysis.RunSet.of(stored(tmp_path, sizes=(4, 128)))
    (verdict,) = analysis.curves_verdicts(runs, -4)
    assert verdict.where == f"{runs.label}, η̃ = 2^-4" and verdict.held_out is None
    # after epoch 2: m = 4 at 0.90, m = 128 at 0.785; ahead by more than 0.02 in both epochs
    assert verdict.verdict.verdict == analysis.AGREES
    assert verdict.verdict.measurement.startswith(
        "after epoch 2: best m <= 32 (m = 4) 0.9000, best m >= 128 (m = 128) 0.7850; small "
        "ahead by more than the margin in 2 of 2 epochs; margin 0.0200")
    assert analysis.curves_verdicts(runs, -9) == []  # no curve there
