"""The steps-to-target analysis (analysis.steps): first reach on validation, the fastest
cell and its neighbours, and the rules that can fail: B_crit only inside the measured m
range and stable when one m is left out, and B_simple against it within a factor."""

import math

import numpy as np
import pandas as pd
import pytest

from smallbatch.analysis import steps
from smallbatch.analysis.claims import AGREES, CANNOT_DECIDE, DISAGREES
from smallbatch.train import EvalPoint, TrainConfig, TrainResult

BASE = TrainConfig(data="synthetic", train_subset=256, test_subset=100, validation_subset=100,
                   lr_milestones=(), eval_growth=1.05, stop_accuracy=0.87)


def point(step, accuracy):
    return EvalPoint(step=step, examples_seen=step, validation_loss=1.0,
                     validation_accuracy=accuracy, test_loss=None, test_accuracy=None,
                     wall_time=0.0)


def run(m, log2_lr, seed, curve, status="complete"):
    """A stored-looking run whose validation accuracy is ``curve`` (step -> accuracy)."""
    config = BASE.replace(batch_size=m, base_lr=2.0 ** log2_lr, seed=seed)
    return TrainResult(config=config, status=status, epochs=[], test_accuracy=0.5,
                       evaluations=[point(s, a) for s, a in sorted(curve.items())],
                       eval_time=1.0, wall_time=4.0)


def test_first_reach_is_the_first_evaluation_at_or_above_the_target():
    evaluations = [point(10, 0.5), point(20, 0.81), point(21, 0.79), point(22, 0.9)]
    assert steps.first_reach(evaluations, 0.8) == (20, 10)
    assert steps.first_reach(evaluations, 0.85) == (22, 21)
    assert steps.first_reach(evaluations, 0.95) == (None, 22)
    assert steps.first_reach(evaluations, 0.4) == (10, 0)


def test_reach_table_reads_validation_and_measures_resolution():
    results = [run(4, -6, 0, {100: 0.7, 105: 0.81, 110: 0.86}),
               run(4, -6, 1, {100: 0.7, 105: 0.79}, status="diverged")]
    table = steps.reach_table(results, targets=(0.8, 0.85))
    first = table[(table["seed"] == 0) & (table["target"] == 0.8)].iloc[0]
    assert (first["step"], first["examples"]) == (105, 420)
    assert first["unobserved"] == pytest.approx(4 / 105)
    assert table[table["seed"] == 1]["step"].isna().all()   # a diverged run reaches nothing
    with pytest.raises(ValueError, match="not step-resolved"):
        steps.reach_table([TrainResult(config=BASE.replace(eval_growth=None), status="complete",
                                       epochs=[], test_accuracy=0.5)])


def grid(steps_of):
    """Runs at m x log2 eta_tilde (3 seeds each) whose validation accuracy crosses 0.8 at
    ``steps_of(m, log2_lr)`` (None: never)."""
    results = []
    for (m, lr), step in steps_of.items():
        for seed in range(3):
            curve = {1: 0.1} if step is None else {step - 1: 0.5, step: 0.9}
            results.append(run(m, lr, seed, curve))
    return results


def test_the_fastest_cell_knows_whether_it_has_slower_neighbours_on_both_sides():
    results = grid({(8, -7): 300, (8, -6): 200, (8, -5): None,     # inside: slower, failing
                    (16, -7): 300, (16, -6): 150})                  # at the top end
    cells = steps.cell_steps(steps.reach_table(results, targets=(0.8,)))
    fastest = steps.fastest_cells(cells).set_index("batch_size")
    assert fastest.loc[8, ["log2_base_lr", "steps", "seeds"]].tolist() == [-6, 200, 3]
    assert fastest.loc[8, "inside"] and not fastest.loc[16, "inside"]
    assert fastest.loc[16, "slower_below"] and not fastest.loc[16, "slower_above"]
    assert fastest.loc[16, "examples"] == 150 * 16


def test_a_seed_that_never_arrives_makes_a_cell_slow():
    results = grid({(8, -6): 100})
    results[-1] = run(8, -6, 2, {1: 0.1})          # one of three seeds never arrives
    cells = steps.cell_steps(steps.reach_table(results, targets=(0.8,)))
    assert cells.iloc[0]["median_steps"] == 100 and cells.iloc[0]["reached"] == 2
    results[-2] = run(8, -6, 1, {1: 0.1})          # two of three: the median never arrives
    cells = steps.cell_steps(steps.reach_table(results, targets=(0.8,)))
    assert math.isinf(cells.iloc[0]["median_steps"])
    assert steps.fastest_cells(cells).empty


def fastest_from(s_of_m, target=0.8):
    return pd.DataFrame([{"target": target, "batch_size": m, "steps": s, "inside": True}
                         for m, s in s_of_m.items()])


SIZES = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


def test_a_known_critical_batch_is_found():
    """S = 500 + 32,000 / m: B_crit = 64, inside the range, stable when one m is left out."""
    found = steps.critical_batch(fastest_from({m: 500 + 32_000 / m for m in SIZES}), 0.8)
    assert found.outcome == AGREES and found.measured
    assert found.b_crit == pytest.approx(64, rel=1e-6)
    assert all(b == pytest.approx(64, rel=1e-6) for b in found.leave_one_out.values())


def test_a_critical_batch_outside_the_range_cannot_be_decided():
    """Perfect scaling over every m measured (B_crit = 5,000 > 1,024): not reported."""
    found = steps.critical_batch(fastest_from({m: 10 + 50_000 / m for m in SIZES}), 0.8)
    assert found.outcome == CANNOT_DECIDE and "outside the measured m" in found.reason
    assert found.b_crit == pytest.approx(5000, rel=1e-6)


def test_a_critical_batch_that_one_m_moves_cannot_be_decided():
    """Three batch sizes follow B_crit = 16, a fourth far off it: leaving it out moves the
    fit by more than a factor of 2."""
    s = {m: 1000 + 16_000 / m for m in (2, 8, 32)}
    s[128] = 4_000
    found = steps.critical_batch(fastest_from(s), 0.8)
    assert found.outcome == CANNOT_DECIDE and "leaving one m out" in found.reason
    assert len(found.leave_one_out) == 4


def test_too_few_batch_sizes_or_no_fit_cannot_be_decided():
    found = steps.critical_batch(fastest_from({2: 100, 4: 60, 8: 40}), 0.8)
    assert found.outcome == CANNOT_DECIDE and "only 3 batch size(s)" in found.reason
    rising = steps.critical_batch(fastest_from({m: 10 * m for m in (2, 4, 8, 16)}), 0.8)
    assert rising.outcome == CANNOT_DECIDE and "S_min" in rising.reason
    assert steps.critical_batch(fastest_from({2: 1}), 0.9).outcome == CANNOT_DECIDE


def test_the_noise_scale_comparison_can_fail():
    measured = steps.critical_batch(fastest_from({m: 500 + 32_000 / m for m in SIZES}), 0.8)
    assert steps.compare_noise_scale(measured, 150)[0] == AGREES       # 2.3 x 64
    assert steps.compare_noise_scale(measured, 30)[0] == AGREES        # 0.47 x
    outcome, reason = steps.compare_noise_scale(measured, 2400)        # 37 x: the chapter's
    assert outcome == DISAGREES and "beyond a factor of 3" in reason
    assert steps.compare_noise_scale(measured, 16)[0] == DISAGREES     # 0.25 x
    assert steps.compare_noise_scale(measured, None)[0] == CANNOT_DECIDE
    unmeasured = steps.critical_batch(fastest_from({2: 100}), 0.8)
    assert steps.compare_noise_scale(unmeasured, 100)[0] == CANNOT_DECIDE


def test_the_hardest_target_is_the_one_most_batch_sizes_reach():
    rows = [{"target": t, "batch_size": m} for t in (0.8, 0.85) for m in SIZES]
    rows += [{"target": 0.87, "batch_size": m} for m in SIZES[:7]]     # 7 of 10
    fastest = pd.DataFrame(rows)
    assert steps.hardest_target(fastest, SIZES) == 0.85
    assert steps.hardest_target(fastest, SIZES, share=0.7) == 0.87
    assert steps.hardest_target(fastest.iloc[:0], SIZES) is None


def test_evaluation_cost_is_evaluation_over_training_time():
    table = steps.evaluation_cost([run(4, -6, 0, {1: 0.1}), run(4, -5, 0, {1: 0.1}),
                                   run(8, -6, 0, {1: 0.1})])
    assert table.loc[4, "evaluation_s"] == 2 and table.loc[4, "training_s"] == 6
    assert table.loc[8, "evaluation / training"] == pytest.approx(1 / 3)
    assert np.isfinite(table["evaluation / training"]).all()
