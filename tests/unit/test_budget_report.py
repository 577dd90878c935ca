"""What "Budget against batch size" shows (smallbatch.analysis.budget_report), section by
section, on stored trials and small tables with known answers."""

import math

import pandas as pd
import pytest

from smallbatch import analysis, theory
from smallbatch.analysis import budget, budget_report
from smallbatch.analysis.budget_report import EQUAL_STEPS
from smallbatch.store import save_result
from smallbatch.studies import Study
from smallbatch.train import EpochMetrics, TrainConfig, TrainResult

# 256 training images: m = 8 takes 32 steps an epoch, m = 16 takes 16
SIZES, LOG2_LRS, SEEDS, EPOCHS = (8, 16), (-6, -4), (0, 1, 2), 4


def spec(name: str, data: str = "synthetic") -> dict:
    return {"name": name, "base": {"data": data, "train_subset": 256, "num_epochs": EPOCHS},
            "grid": [{"batch_size": list(SIZES), "base_lr": {"pow2": list(LOG2_LRS)},
                      "seed": list(SEEDS)}]}


def final_accuracy(m: int, log2_lr: int, seed: int, behind: float) -> float:
    """m = 8 peaks at 2^-5 (0.90), m = 16 at 2^-5 too, ``behind`` lower; seeds add
    +-0.002."""
    top = 0.90 - (behind if m == 16 else 0.0)
    return top - 0.05 * abs(log2_lr + 5) + 0.002 * (seed - 1)


def store_study(folder, name: str, *, behind: float = 0.0, skip=()):
    """Every trial of ``spec(name)`` stored in ``folder`` but those in ``skip`` ((m, seed)),
    its test accuracy rising linearly to :func:`final_accuracy` over its 4 epochs, each
    epoch 10 s long."""
    study = Study.from_mapping(spec(name), "scaled")
    for config in study.trials():
        if (config.batch_size, config.seed) in skip:
            continue
        final = final_accuracy(config.batch_size, round(math.log2(config.base_lr)),
                               config.seed, behind)
        per_epoch = 256 // config.batch_size * config.batch_size
        epochs = [EpochMetrics(epoch=e, train_loss=1.0 / e, train_accuracy=final * e / EPOCHS
                               + 0.01, test_loss=1.0, test_accuracy=final * e / EPOCHS,
                               lr=0.1, examples_seen=per_epoch * e, wall_time=10.0 * e)
                  for e in range(1, EPOCHS + 1)]
        save_result(TrainResult(config=config, status="complete", epochs=epochs,
                                test_accuracy=final, wall_time=10.0 * EPOCHS,
                                num_steps=256 // config.batch_size * EPOCHS,
                                provenance={"git_commit": "abc123"}), folder)
    return analysis.study_data(study, results_dir=folder)


@pytest.fixture()
def chapter(tmp_path):
    """A fixed-epoch study ("fake") and an equal-steps one in which m = 16 is 0.05 behind."""
    fixed = store_study(tmp_path / "fixed", "fake")
    equal = store_study(tmp_path / "equal", "fake-equal", behind=0.05)
    return {"fake": fixed}, equal


def test_budget_runs_takes_each_set_with_stored_trials_to_its_cells_margin_and_bests(
        chapter, tmp_path):
    studies, equal = chapter
    runs = budget_report.budget_runs(studies, equal, headline="fake")
    label = analysis.study_label(studies["fake"].study)
    assert runs.headline == label and list(runs.sides) == [label, EQUAL_STEPS]
    assert len(runs.epochs[label]) == len(SIZES) * 3 * len(SEEDS) * EPOCHS
    assert dict(runs.bests[label]["log2_base_lr"]) == {8: -5, 16: -5}
    assert runs.bests[EQUAL_STEPS].loc[16, "median"] == pytest.approx(0.85)
    assert runs.margins[label] == pytest.approx(analysis.noise_margin(
        studies["fake"].frame, test_size=studies["fake"].study.base.test_subset))
    assert runs.note(label, EQUAL_STEPS) == "; ".join([studies["fake"].provenance_note(),
                                                       equal.provenance_note()])
    # a set with no stored trial is shown, but has no statistics
    empty = analysis.study_data(Study.from_mapping(spec("none"), "scaled"),
                                results_dir=tmp_path / "none")
    runs = budget_report.budget_runs(studies, empty, headline="fake")
    assert EQUAL_STEPS in runs.sides and EQUAL_STEPS not in runs.bests
    with pytest.raises(ValueError, match="headline study 'resnet-bn'"):
        budget_report.budget_runs(studies, equal)


def test_stored_notes_name_each_study_and_what_is_missing(chapter, tmp_path):
    studies, equal = chapter
    partial = store_study(tmp_path / "partial", "fake-equal", skip={(16, 2)})
    notes = budget_report.stored_notes(studies, partial)
    assert len(notes) == 2 and notes[0].startswith("**fake** (")
    assert notes[1].startswith("**equal-steps** (") and "15 of 18 trials" in notes[1]


def test_steps_to_targets_and_the_critical_batch_table(chapter):
    studies, equal = chapter
    runs = budget_report.budget_runs(studies, equal, headline="fake")
    reach = budget_report.steps_to_targets(runs)
    assert list(reach) == list(runs.cells)
    # 0.90 - 0.10 = 0.80 is reached by m = 8's best cell (0.9 at epoch 4: 0.225 an epoch) at
    # epoch 4: 128 steps; m = 16's (16 steps an epoch) also at epoch 4: 64 steps
    easy_best, easy_critical = next(iter(reach[runs.headline].values()))
    assert dict(easy_best["median_steps"]) == {8: 128, 16: 64}
    assert easy_critical["status"] == "too few batch sizes"
    table = budget_report.critical_batch_table(reach)
    assert list(table.columns) == ["best − 10 points", "best − 5 points", "best − 3 points",
                                   "best − 2 points", "best − 1 points"]
    assert table.index.name == "runs: B_crit [95% interval], examples"
    assert table.loc[runs.headline, "best − 10 points"] == "only 2 m reached it: no fit"


def test_the_epoch_grid_text_gives_one_epochs_steps_at_the_smallest_and_largest_m(chapter):
    studies, _ = chapter
    text = budget_report.epoch_grid_text(studies["fake"])
    assert "in the headline study one epoch is 32 steps at m = 8 and 16 at m = 16." in text


def test_fit_sentences_say_whether_the_largest_m_underfits():
    def table(losses, gaps):
        return pd.DataFrame({"train_loss": losses, "gap": gaps},
                            index=pd.Index([32, 1024], name="batch_size"))

    text = budget_report.fit_sentences({
        "A": table([0.2, 0.6], [0.05, 0.01]), "B": table([0.3, 0.1], [0.02, 0.04]),
        "one m": table([0.2, 0.2], [0.0, 0.0]).iloc[:1]})
    assert text == (
        "*A*: at m = 1024 the best run underfits m = 32's (training loss 0.6000 against "
        "0.2000), and its gap between training and test accuracy is +0.0100 against "
        "+0.0500.\n\n*B*: at m = 1024 the best run fits the training set at least as well as "
        "m = 32's (training loss 0.1000 against 0.3000), and its gap between training and "
        "test accuracy is +0.0400 against +0.0200.")
    assert budget_report.fit_sentences({}) == ""


def test_fits_at_best_cover_the_headline_and_equal_steps_runs(chapter):
    runs = budget_report.budget_runs(*chapter, headline="fake")
    fits = budget_report.fits_at_best(runs)
    assert list(fits) == [runs.headline, EQUAL_STEPS]
    assert fits[EQUAL_STEPS].loc[16, "test_accuracy"] == pytest.approx(0.85)
    assert fits[EQUAL_STEPS].loc[16, "gap"] == pytest.approx(0.01)
    styled = budget_report.fit_table(fits)
    assert list(styled.data.index.names) == ["runs", "batch_size"] and len(styled.data) == 4


def test_the_saturation_table_reads_each_sets_learning_rate_saturation():
    best = pd.DataFrame({"log2_base_lr": [-3, -3, -5, -6], "median": [0.88, 0.89, 0.89, 0.86]},
                        index=pd.Index([4, 8, 32, 64], name="batch_size"))
    growing = best.assign(log2_base_lr=[-3, -3, -3, -3], median=0.89)
    saturation = {"A": budget.lr_saturation(best, 0.01),
                  "B": budget.lr_saturation(growing, 0.01)}
    table = budget_report.saturation_table(saturation, {"A": 0.01, "B": 0.02}).data
    assert table.loc["A", "best log2 η per m (m: value)"] == "4: -1, 8: 0, 32: 0, 64: 0"
    assert table.loc["A", "η stops growing from m ="] == 8
    assert table.loc["A", "accuracy falls from m ="] == 64
    assert table.loc["B", "η stops growing from m ="] == "still growing"
    assert table.loc["B", "accuracy falls from m ="] == "does not fall"


def test_best_at_equal_steps_keeps_the_step_counts_two_m_share(chapter):
    runs = budget_report.budget_runs(*chapter, headline="fake")
    # m = 8 ends epochs at 32, 64, 96, 128 steps; m = 16 at 16, 32, 48, 64
    by_steps = budget_report.best_at_equal_steps(runs, runs.headline)
    assert list(by_steps) == [32, 64]
    assert by_steps[32].loc[16, "median"] == pytest.approx(0.9 * 2 / 4)
    assert by_steps[32].loc[8, "schedule_fraction"] == pytest.approx(0.25)


def test_the_cost_text_counts_stored_trials_and_what_the_rest_would_take(chapter, tmp_path):
    _, equal = chapter
    text = budget_report.cost_text(equal)
    # 18 trials of 4 epochs of 256 images, 40 s each: 0.2 h
    assert text == ("18 of 18 trials stored, 0.0M training examples in all; the stored "
                    "trials took 0.2 process-hours of this project's 2-core machine (the m = 8 "
                    "runs among them were trained once, for the headline study).")
    partial = store_study(tmp_path / "partial", "fake-equal", skip={(16, 2), (8, 2)})
    # 6 missing trials at 40 s each: 240 s, 0.07 h
    assert budget_report.cost_text(partial).startswith("12 of 18 trials stored")
    assert budget_report.cost_text(partial).endswith("; the missing ones would take about "
                                                     "0.1 more.")


def test_the_equal_steps_verdict_and_its_series(chapter):
    runs = budget_report.budget_runs(*chapter, headline="fake")
    assert list(budget_report.equal_steps_series(runs)) == [
        EQUAL_STEPS, "every m given the same epochs (headline study)"]
    edges = analysis.edges_reached(runs.cells[EQUAL_STEPS], runs.margins[EQUAL_STEPS])
    found = budget_report.equal_steps_verdict(runs, 8, edges)
    # m = 16 is 0.05 behind m = 8 at equal steps, far more than the margin
    assert found.verdict.verdict == analysis.DISAGREES and found.reference == 8
    assert found.per_m[16][0] == pytest.approx(-0.05)
    assert len(found.claims) == 1 and "**Rules**" in found.rules
    assert found.caveat == (f"**Caveat beside this verdict, whatever it is:** "
                            f"{analysis.CAVEATS[analysis.CLAIM_EQUAL_STEPS]}.")


def _noise(rows):
    columns = ["batch_norm", "checkpoint", "b_simple", "b_simple_low", "b_simple_high",
               "b_simple_per_example", "b_simple_per_example_low",
               "b_simple_per_example_high", "per_example"]
    return pd.DataFrame(rows, columns=columns)


def test_the_noise_scale_notes_compare_the_estimators_and_the_reproduction():
    frame = _noise([("all", "epoch 1", 100.0, 50.0, 200.0, math.nan, math.nan, math.nan, 0),
                    ("none", "epoch 1", 100.0, 80.0, 120.0, 100.0, 90.0, 110.0, 64),
                    ("none", "epoch 5", 300.0, 250.0, 350.0, 150.0, 140.0, 160.0, 64)])
    assert budget_report.estimators_text(frame) == (
        "Without batch norm the two estimators' 95% intervals overlap at 1 of 2 checkpoints; "
        "the two-batch estimate over the per-example one: 1.00, 2.00.")
    assert budget_report.estimators_text(frame.iloc[:1]) is None
    reproduced = pd.DataFrame({"batch_norm": ["all"], "checkpoint": ["epoch 1"],
                               "difference": [-0.0123]})
    assert budget_report.reproduction_text(reproduced).endswith(
        "less the stored trial's at the same epoch: all, epoch 1: -0.0123.")
    assert budget_report.reproduction_text(reproduced.iloc[:0]) is None
    assert budget_report.noise_scale_notes(frame.iloc[:1], reproduced.iloc[:0]) == []
    assert len(budget_report.noise_scale_notes(frame, reproduced)) == 2


def test_the_noise_scale_table_has_the_chapters_columns():
    columns = ["batch_norm", "checkpoint", "epochs", "steps", "small_batch", "big_batch",
               "draws", "big_draws", "b_simple", "b_simple_low", "b_simple_high",
               "trace_sigma", "grad_sq_norm", "b_simple_per_example",
               "b_simple_per_example_low", "b_simple_per_example_high",
               "trace_sigma_per_example", "grad_sq_norm_exact", "per_example",
               "test_accuracy"]
    frame = pd.DataFrame([["all", "epoch 1", *range(len(columns) - 2)]], columns=columns)
    table = budget_report.noise_scale_table(frame).data
    assert list(table.index.names) == ["batch_norm", "checkpoint"]
    assert list(table.columns)[:3] == ["steps", "test accuracy", "B_simple (two-batch)"]
    assert "tr(Σ) (two-batch)" in table.columns and "epochs" not in table.columns
    assert table.iloc[0]["small draws"] == columns.index("draws") - 2


def test_the_yardstick_fits_the_tradeoff_and_reads_b_simple_nearest_b_crit():
    curvatures = theory.nqm_curvatures(100)
    sizes = [16, 32, 64, 128, 256, 512]
    rows = [{"rule": "tuned", "target": 0.5, "batch_size": m, "steps": 100 + 12_800 / m,
             "lr": 0.01} for m in sizes]  # B_crit = 12,800 / 100 = 128 exactly
    rows += [{"rule": "tuned", "target": 0.1, "batch_size": m, "steps": 10.0 * m, "lr": 0.01}
             for m in sizes]  # steps growing with m: no trade-off, no row
    rows += [{"rule": "linear", "target": 0.5, "batch_size": m, "steps": 1.0, "lr": 0.01}
             for m in sizes]  # another rule: not read
    table = budget_report.yardstick_from_scaling(pd.DataFrame(rows), curvatures)
    assert list(table.index) == [0.5]
    row = table.loc[0.5]
    assert row["B_crit (fit)"] == pytest.approx(128)
    moments = theory.nqm_second_moments(200, 128.0, 0.01, curvatures)
    expected = theory.nqm_noise_scales(moments, curvatures)["B_simple"]
    assert row["B_simple at the target"] == pytest.approx(expected)
    assert row["B_crit / B_simple"] == pytest.approx(128 / expected)


def test_the_noise_scale_is_set_against_the_observed_critical_batch():
    noise = _noise([("all", "epoch 1", 100.0, 0, 0, 0, 0, 0, 0),
                    ("all", "epoch 5", 400.0, 0, 0, 0, 0, 0, 0),
                    ("none", "epoch 1", 9.0, 0, 0, 0, 0, 0, 0)])
    yardstick = pd.DataFrame({"B_crit / B_simple": [0.5, 1.0]})
    fit = budget.TradeoffFit(s_min=100, e_min=12_800, b_crit=128, low=100, high=160)
    reach = {"best − 1 points": (None, {"status": "fit", "fit": fit}),
             "best − 2 points": (None, {"status": "too few batch sizes", "fit": None})}
    text = budget_report.noise_against_critical_text(noise, yardstick, reach, batch_size=32,
                                                     saturates_at=64)
    assert text == (
        "Along m = 32's run with batch norm, B_simple (two-batch) lies between 100 and 400 "
        "examples. With the noisy quadratic model's ratio B_crit / B_simple (0.5 to 1), that "
        "predicts a critical batch between 50 and 400. The critical batch observed in the "
        "equal-steps runs: best − 1 points: 128 [100, 160]. In the headline study the best "
        "step η stops growing from m = 64.")
    assert budget_report.noise_against_critical_text(
        noise.iloc[2:], yardstick.iloc[:0], {}, batch_size=32, saturates_at=64) == (
        "No noise-scale measurement or critical batch to compare at this scale.")


def _cells(medians: dict[int, list[float]]) -> pd.DataFrame:
    """cell_summary-like rows, three seeds each, log2 eta_tilde -5, -4, -3 per m."""
    return pd.DataFrame([{"batch_size": m, "log2_base_lr": lr, "seeds": 3, "diverged": 0,
                          "median": v, "low": v - 0.001, "high": v + 0.001, "std": 0.001}
                         for m, values in medians.items() for lr, v in zip((-5, -4, -3), values)])


def test_the_fixed_epoch_reading_gives_the_verdict_the_best_m_and_the_largest_ms_deficit():
    summary = _cells({16: [0.85, 0.89, 0.86], 1024: [0.70, 0.78, 0.75]})
    best = analysis.best_per_batch(summary)
    base = TrainConfig(train_subset=8192, num_epochs=10)
    text = budget_report.fixed_epoch_reading(best, 0.01, summary, base)
    assert text.startswith("- **At a fixed epoch budget (the paper's protocol) Masters and "
                           "Luschi's reading holds here** (the claim \"")
    assert text.endswith("the headline study's best is at m = 16 (0.8900); m = 1024, with 80 "
                         "steps, is 0.1100 behind it.")


def test_the_equal_steps_reading_sorts_the_batch_sizes_by_outcome():
    verdict = analysis.Verdict("claim", "measured", "rule", analysis.DISAGREES)
    per_m = {128: (0.0, analysis.EQUIVALENT), 256: (0.02, analysis.AGREES),
             1024: (-0.1, analysis.DISAGREES)}
    text = budget_report.equal_steps_reading(verdict, per_m, 32)
    assert text.startswith("- **Given the same steps (verdict: disagrees).** m = 128, 256 "
                           "reach m = 32's best within the noise margin")
    assert "m = 1024 stays more than the margin behind" in text and "undecided" not in text
    one = budget_report.equal_steps_reading(verdict, {128: (0.0, analysis.CANNOT_DECIDE)}, 32)
    assert one.endswith("m = 128: undecided (see the verdict's measurement: too few seeds "
                        "stored, or a best at an end of its window). ")


def test_the_fit_and_gap_reading_names_what_is_left_of_the_deficit():
    best = pd.DataFrame({"median": [0.90, 0.85]}, index=pd.Index([32, 1024]))
    def table(large_loss):
        return pd.DataFrame({"train_loss": [0.2, large_loss], "gap": [0.05, 0.10]},
                            index=pd.Index([32, 1024]))

    gap = budget_report.fit_and_gap_reading(table(0.1), best, 0.01)
    assert gap.startswith("- **Fit and gap.** With equal steps the largest batch, m = 1024, "
                          "fits its training set at least as well as m = 32 (training loss "
                          "0.1000 against 0.2000)")
    assert gap.endswith(": what is left of its deficit is a larger gap between training and "
                        "test, not underfitting (its extra epochs may explain it as well as its "
                        "batch size).")
    assert budget_report.fit_and_gap_reading(table(0.3), best, 0.01).endswith(
        "less well than m = 32 (training loss 0.3000 against 0.2000), and its gap between "
        "training and test accuracy is +0.1000 against +0.0500: what is left of its deficit "
        "is underfitting.")
    assert budget_report.fit_and_gap_reading(table(0.1), best, 0.1).endswith(
        "; its best is not more than the margin below m = 32's.")


def test_the_conclusion_reads_what_is_stored(chapter, tmp_path):
    runs = budget_report.budget_runs(*chapter, headline="fake")
    edges = analysis.edges_reached(runs.cells[EQUAL_STEPS], runs.margins[EQUAL_STEPS])
    verdict = budget_report.equal_steps_verdict(runs, 8, edges)
    text = budget_report.conclusion_text(runs, verdict, budget_report.fits_at_best(runs))
    bullets = text.split("\n")
    assert [b[:12] for b in bullets] == ["- **At a fix", "- **Given th", "- **Fit and "]
    assert bullets[1].startswith("- **Given the same steps (verdict: disagrees).** m = 16 "
                                 "stays more than the margin behind")
    empty = analysis.study_data(Study.from_mapping(spec("none"), "scaled"),
                                results_dir=tmp_path / "none")
    nothing = budget_report.budget_runs({"none": empty}, empty, headline="none")
    assert budget_report.conclusion_text(nothing, None, {}) == \
        "Nothing stored to conclude from at this scale."
