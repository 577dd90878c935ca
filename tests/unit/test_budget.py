"""Budget against batch size (smallbatch.analysis.budget), each on inputs with a known answer."""

import math

import numpy as np
import pandas as pd
import pytest

from smallbatch.analysis import budget


def _epochs(trials):
    """epochs_frame-like rows: trials = {hash: (m, base_lr, seed, steps_per_epoch, accs)}."""
    rows = []
    for key, (m, lr, seed, per_epoch, accs) in trials.items():
        for epoch, acc in enumerate(accs, start=1):
            rows.append({"config_hash": key, "batch_size": m, "base_lr": lr, "seed": seed,
                         "epoch": epoch, "examples_seen": epoch * per_epoch * m,
                         "test_accuracy": acc})
    return pd.DataFrame(rows)


def test_steps_to_target_is_the_first_epoch_at_or_above_it():
    frame = _epochs({"a": (8, 0.1, 0, 100, [0.5, 0.7, 0.9, 0.95]),
                     "b": (64, 0.1, 0, 10, [0.4, 0.6, 0.65, 0.7]),
                     "c": (64, 0.2, 0, 10, [0.6, 0.9, 0.8, 0.9])})
    table = budget.steps_to_target(frame, 0.9).set_index("config_hash")
    assert table.loc["a", "epoch"] == 3 and table.loc["a", "steps"] == 300
    assert table.loc["a", "examples"] == 300 * 8
    assert table.loc["c", "steps"] == 20  # reached at epoch 2, later dips do not matter
    assert math.isnan(table.loc["b", "steps"])  # never reached


def test_best_steps_takes_the_fastest_cell_by_its_median_over_seeds():
    per_trial = pd.DataFrame([
        # m = 8: eta 0.1 reaches in 300 / 320 / 340 steps; eta 0.2 faster in two seeds,
        # never in the third (counts as infinite, so its median is the slower 500)
        {"batch_size": 8, "base_lr": 0.1, "seed": s, "steps": v} for s, v in
        enumerate([300, 320, 340])] + [
        {"batch_size": 8, "base_lr": 0.2, "seed": s, "steps": v} for s, v in
        enumerate([200, 500, math.nan])] + [
        {"batch_size": 64, "base_lr": 0.1, "seed": s, "steps": math.nan} for s in range(3)])
    best = budget.best_steps_to_target(per_trial)
    assert list(best.index) == [8]  # m = 64 never reached: left out
    row = best.loc[8]
    assert row["base_lr"] == 0.1 and row["median_steps"] == 320
    assert (row["low_steps"], row["high_steps"], row["reached"]) == (300, 340, 3)
    assert row["median_examples"] == 320 * 8


def test_the_tradeoff_fit_recovers_a_known_critical_batch():
    s_min, e_min = 500.0, 64_000.0  # B_crit = 128
    m = np.array([2, 8, 32, 128, 512, 2048])
    exact = budget.fit_tradeoff(m, s_min + e_min / m)
    assert exact.s_min == pytest.approx(s_min) and exact.e_min == pytest.approx(e_min)
    assert exact.b_crit == pytest.approx(128)
    # (S/S_min - 1)(E/E_min - 1) = 1 holds on the fitted curve
    steps = exact.steps(m)
    assert np.allclose((steps / exact.s_min - 1) * (m * steps / exact.e_min - 1), 1)
    rng = np.random.default_rng(1)
    samples = [s_min * (1 + 128 / b) * rng.lognormal(0, 0.05, size=3) for b in m]
    noisy = budget.fit_tradeoff(m, [np.median(s) for s in samples], samples=samples)
    assert noisy.low < 128 < noisy.high and noisy.high / noisy.low < 2
    with pytest.raises(ValueError, match="do not follow"):
        budget.fit_tradeoff(m, 10.0 * m)  # steps that grow with m do not trade off
    with pytest.raises(ValueError, match="two or more"):
        budget.fit_tradeoff([8], [100.0])


def test_the_two_batch_estimator_is_unbiased_for_a_known_gradient_noise():
    rng = np.random.default_rng(0)
    dim, n = 20, 4000
    mean = rng.normal(size=dim) * 0.3
    per_example = mean + rng.normal(size=(n, dim)) * np.linspace(0.5, 2.0, dim)
    grad_sq = float(mean @ mean)
    trace = float((np.linspace(0.5, 2.0, dim) ** 2).sum())

    def mean_sq_norm(batch, draws=4000):
        picks = rng.integers(n, size=(draws, batch))  # with replacement
        g = per_example[picks].mean(axis=1)
        return float((g ** 2).sum(axis=1).mean())

    pop_mean = per_example.mean(axis=0)
    pop_grad_sq = float(pop_mean @ pop_mean)
    pop_trace = float(per_example.var(axis=0).sum())
    est = budget.two_batch_noise_scale(4, mean_sq_norm(4), 64, mean_sq_norm(64))
    assert est["grad_sq_norm"] == pytest.approx(pop_grad_sq, rel=0.1)
    assert est["trace_sigma"] == pytest.approx(pop_trace, rel=0.05)
    assert est["b_simple"] == pytest.approx(pop_trace / pop_grad_sq, rel=0.15)
    assert pop_trace / pop_grad_sq == pytest.approx(trace / grad_sq, rel=0.2)
    # exact expectations in, exact answers out
    exact = budget.two_batch_noise_scale(2, grad_sq + trace / 2, 32, grad_sq + trace / 32)
    assert exact["grad_sq_norm"] == pytest.approx(grad_sq)
    assert exact["trace_sigma"] == pytest.approx(trace)
    with pytest.raises(ValueError):
        budget.two_batch_noise_scale(32, 1.0, 32, 1.0)


def _per_trial(steps_of_m, seeds=3, jitter=0.0):
    """steps_to_target-like rows: one cell per m (base_lr 0.1) with ``steps_of_m(m)`` steps,
    each seed off by ``jitter`` (relative) in turn."""
    rows = []
    for m in (16, 32, 64, 128, 256, 512):
        for seed in range(seeds):
            value = steps_of_m(m) * (1 + jitter * (seed - 1))
            rows.append({"config_hash": f"{m}-{seed}", "batch_size": m, "base_lr": 0.1,
                         "seed": seed, "steps": value, "examples": value * m})
    return pd.DataFrame(rows)


def test_critical_batch_fits_the_tradeoff_where_returns_diminish_and_not_where_they_do_not():
    known = budget.critical_batch(_per_trial(lambda m: 100 + 12_800 / m, jitter=0.02))
    assert known["status"] == "fit"
    assert known["fit"].b_crit == pytest.approx(128, rel=0.05)
    assert known["fit"].low < 128 < known["fit"].high
    # steps halve with every doubling of m: no diminishing returns on the grid
    perfect = budget.critical_batch(_per_trial(lambda m: 51_200 / m))
    assert perfect["status"] == "no diminishing returns" and perfect["fit"] is None
    assert perfect["lower_bound"] == 512
    few = _per_trial(lambda m: 100 + 12_800 / m)
    few = few[few["batch_size"] <= 32]
    assert budget.critical_batch(few)["status"] == "too few batch sizes"


def _trials_and_epochs():
    """Two trials of 4 epochs on 256 images: m = 16 (16 steps an epoch), m = 64 (4 steps an
    epoch, diverged after epoch 2) and one m = 64 run of 8 epochs."""
    trials = pd.DataFrame([
        {"config_hash": "a", "batch_size": 16, "base_lr": 0.1, "log2_base_lr": -3, "seed": 0,
         "train_subset": 256, "num_epochs": 4, "status": "complete"},
        {"config_hash": "b", "batch_size": 64, "base_lr": 0.1, "log2_base_lr": -3, "seed": 0,
         "train_subset": 256, "num_epochs": 4, "status": "diverged"},
        {"config_hash": "c", "batch_size": 64, "base_lr": 0.05, "log2_base_lr": -4, "seed": 0,
         "train_subset": 256, "num_epochs": 16, "status": "complete"}])
    rows = []
    for key, m, accs in (("a", 16, [0.5, 0.6, 0.7, 0.8]), ("b", 64, [0.3, 0.2]),
                         ("c", 64, [0.1 + 0.05 * k for k in range(16)])):
        for epoch, acc in enumerate(accs, start=1):
            rows.append({"config_hash": key, "batch_size": m, "epoch": epoch,
                         "examples_seen": 256 * epoch, "test_accuracy": acc,
                         "train_loss": 1.0 / epoch, "train_accuracy": acc + 0.1})
    return trials, pd.DataFrame(rows)


def test_accuracy_at_steps_reads_the_epoch_ending_there_and_scores_a_diverged_run_as_chance():
    trials, epochs = _trials_and_epochs()
    at = budget.accuracy_at_steps(trials, epochs, 16, chance=0.1).set_index("config_hash")
    # 16 steps: the end of m = 16's first epoch and of m = 64's fourth
    assert at.loc["a", "score"] == 0.5 and at.loc["a", "schedule_fraction"] == 0.25
    assert at.loc["b", "score"] == 0.1  # diverged after epoch 2 (8 steps): chance
    assert at.loc["c", "score"] == pytest.approx(0.25)
    assert at.loc["c", "schedule_fraction"] == 0.25
    at = budget.accuracy_at_steps(trials, epochs, 6, chance=0.1)
    assert at.empty  # no epoch ends at 6 steps
    at = budget.accuracy_at_steps(trials, epochs, 64, chance=0.1).set_index("config_hash")
    assert list(at.index) == ["a", "c"]  # b's run is 16 steps long: left out
    best = budget.best_at_steps(budget.accuracy_at_steps(trials, epochs, 16, chance=0.1))
    assert best.loc[64, "log2_base_lr"] == -4 and best.loc[64, "median"] == pytest.approx(0.25)
    tie = pd.DataFrame({"batch_size": 16, "log2_base_lr": [-3, -5, -4], "seed": 0,
                        "score": [0.7, 0.7, 0.6], "schedule_fraction": 1.0})
    assert budget.best_at_steps(tie).loc[16, "log2_base_lr"] == -5  # a tie: the smaller eta


def test_fit_at_best_reads_the_last_epoch_of_the_best_cell():
    trials, epochs = _trials_and_epochs()
    best = pd.DataFrame({"log2_base_lr": [-3, -4], "median": [0.8, 0.85]},
                        index=pd.Index([16, 64], name="batch_size"))
    table = budget.fit_at_best(trials, epochs, best)
    assert table.loc[16, "train_loss"] == pytest.approx(0.25)
    assert table.loc[16, "gap"] == pytest.approx(0.1)
    assert table.loc[64, "test_accuracy"] == pytest.approx(0.85)


def test_lr_saturation_finds_where_the_step_stops_growing_and_where_accuracy_falls():
    # eta = m * eta_tilde grows to m = 32 (log2 eta 0), then stays; accuracy falls from 128
    best = pd.DataFrame({"log2_base_lr": [-3, -3, -5, -6, -7, -8],
                         "median": [0.88, 0.89, 0.89, 0.885, 0.86, 0.84]},
                        index=pd.Index([4, 8, 32, 64, 128, 256], name="batch_size"))
    found = budget.lr_saturation(best, margin=0.01)
    assert list(found["table"]["log2_lr"]) == [-1, 0, 0, 0, 0, 0]
    assert found["saturates_at"] == 8 and found["falls_from"] == 128
    growing = best.assign(log2_base_lr=[-3, -3, -4, -4, -4, -4], median=0.89)
    found = budget.lr_saturation(growing, margin=0.01)
    assert found["saturates_at"] is None and found["falls_from"] is None


def test_critical_batch_with_one_seed_has_no_interval_and_says_so():
    found = budget.critical_batch(_per_trial(lambda m: 100 + 12_800 / m, seeds=1))
    assert found["status"] == "fit" and math.isnan(found["fit"].low)
    assert budget.critical_batch_text(found) == "128 (one seed: no interval)"
    spread = budget.critical_batch(_per_trial(lambda m: 100 + 12_800 / m, jitter=0.02))
    assert budget.critical_batch_text(spread).startswith("128 [")
    perfect = budget.critical_batch(_per_trial(lambda m: 51_200 / m))
    assert budget.critical_batch_text(perfect) == "> 512 (no diminishing returns)"
    # a fit whose own B_crit lies far beyond every m tried does not locate it either
    nearly = budget.critical_batch(_per_trial(lambda m: 1e-3 + 51_200 / m, seeds=1))
    assert nearly["status"] == "fit" and nearly["fit"].b_crit > 100 * 512
    assert budget.critical_batch_text(nearly) == "> 512 (no diminishing returns)"


def test_weight_decay_shrink_multiplies_each_steps_decay():
    from smallbatch.train import TrainConfig

    flat = TrainConfig(batch_size=8, base_lr=2.0 ** -6, num_epochs=2, lr_milestones=())
    # 64 images, m = 8: 16 steps at eta = 8 / 64 = 0.125, each shrinking by 1 - eta * lambda
    assert budget.weight_decay_shrink(flat, 1e-2, 64) == pytest.approx((1 - 0.125e-2) ** 16)
    # the paper's schedule: 8 steps at eta, 4 at eta / 10, 4 at eta / 100
    decayed = flat.replace(lr_milestones=(0.5, 0.75))
    expected = (1 - 0.125e-2) ** 8 * (1 - 0.125e-3) ** 4 * (1 - 0.125e-4) ** 4
    assert budget.weight_decay_shrink(decayed, 1e-2, 64) == pytest.approx(expected)
    # per-step decay is lambda / m: eight times less at m = 8
    per_step = flat.replace(weight_decay_scaling="per_step")
    assert budget.weight_decay_shrink(per_step, 1e-2, 64) == pytest.approx(
        (1 - 0.125e-2 / 8) ** 16)
    assert budget.weight_decay_shrink(flat, 0.0, 64) == 1.0
