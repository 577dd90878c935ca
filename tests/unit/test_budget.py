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
