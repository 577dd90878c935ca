"""The noisy quadratic model's closed forms (smallbatch.theory) against independent
computations: the step-by-step recursion, a Monte Carlo simulation of noisy SGD, brute-force
searches; and the figures' sliders."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from smallbatch import figures, presets, theory
from smallbatch.train import learning_rate


def recursion(steps, batch_size, lr, h, initial=1.0):
    """E[L] after 0..steps by iterating s <- (1 - a h)^2 s + a^2 h / B."""
    s = np.full_like(h, initial)
    out = [0.5 * h @ s]
    for _ in range(steps):
        s = (1 - lr * h) ** 2 * s + lr * lr * h / batch_size
        out.append(0.5 * h @ s)
    return np.array(out)


@pytest.mark.parametrize("batch_size, lr, initial", [(1, 0.3, 1.0), (8, 1.9, 1.0),
                                                     (64, 1.0, 1.0), (2, 0.05, 3.0)])
def test_closed_form_equals_the_recursion(batch_size, lr, initial):
    h = theory.nqm_curvatures(300)
    closed = theory.nqm_expected_loss(400, batch_size, lr, h, initial)
    assert closed.shape == (401,)
    np.testing.assert_allclose(closed, recursion(400, batch_size, lr, h, initial), rtol=1e-12)


def test_closed_form_handles_zero_step_and_zero_curvature():
    h = np.array([1.0, 0.5, 0.0])
    np.testing.assert_allclose(theory.nqm_expected_loss(5, 4, 0.0, h), 0.75, rtol=1e-15)
    np.testing.assert_allclose(theory.nqm_expected_loss(50, 4, 0.7, h),
                               recursion(50, 4, 0.7, h), rtol=1e-12)


def test_closed_form_matches_monte_carlo_sgd():
    """20,000 independent runs of noisy SGD (d = 50, B = 4, a = 0.5), each mini-batch noise
    the mean of B per-example N(0, H) draws: the sample mean loss lies within 3 standard
    errors of the closed form at every checked step."""
    rng = np.random.default_rng(0)
    d, runs, batch_size, lr = 50, 20_000, 4, 0.5
    h = theory.nqm_curvatures(d)
    x = rng.standard_normal((runs, d))  # E[x_i^2] = 1, the closed form's initial = 1
    expected = theory.nqm_expected_loss(200, batch_size, lr, h)
    checked = 0
    for step in range(1, 201):
        noise = rng.standard_normal((runs, batch_size, d)).mean(1) * np.sqrt(h)
        x = x - lr * (h * x + noise)
        if step in (1, 5, 20, 50, 200):
            loss = 0.5 * (x * x) @ h
            se = loss.std(ddof=1) / math.sqrt(runs)
            assert abs(loss.mean() - expected[step]) < 3 * se, step
            checked += 1
    assert checked == 5


def brute_force_steps(batch_size, lr, target, h, max_steps):
    loss = theory.nqm_expected_loss(max_steps, batch_size, lr, h)
    hits = np.nonzero(loss <= target)[0]
    return int(hits[0]) if hits.size else None


@pytest.mark.parametrize("batch_size, lr, target", [
    (1, 0.2, 1.5), (4, 1.0, 0.8), (16, 1.5, 0.6), (1, 1.5, 1.5), (1, 1.9, 2.0),
    (2, 0.01, 0.5), (1, 0.5, 10.0)])
def test_steps_to_target_equals_brute_force(batch_size, lr, target):
    h = theory.nqm_curvatures(200)
    expected = brute_force_steps(batch_size, lr, target, h, 3000)
    assert theory.nqm_steps_to_target(batch_size, lr, target, h, 3000) == expected


def test_steps_to_target_when_the_loss_rises_first():
    """Initial second moments below the noise floor: E[L] is not monotone (the noisy
    coordinates rise while the others fall), so the search cannot bisect."""
    h = theory.nqm_curvatures(100)
    initial = np.where(np.arange(100) < 5, 0.0, 1.0)
    loss = theory.nqm_expected_loss(3000, 1, 1.5, h, initial)
    assert np.any(np.diff(loss) > 0) and np.any(np.diff(loss) < 0)
    for target in (loss[1:].min() * 1.0001, float(np.quantile(loss, 0.3)), loss[0] * 0.999):
        hits = np.nonzero(loss <= target)[0]
        want = int(hits[0]) if hits.size else None
        assert theory.nqm_steps_to_target(1, 1.5, target, h, 3000, initial) == want


def test_best_steps_to_target_is_the_minimum_over_the_grid():
    h = theory.nqm_curvatures(200)
    lrs = [2.0 ** (k / 2) for k in range(-8, 2)]
    steps, lr = theory.nqm_best_steps_to_target(4, 0.7, lrs, h, 5000)
    each = {a: brute_force_steps(4, a, 0.7, h, 5000) for a in lrs}
    best = min(v for v in each.values() if v is not None)
    assert steps == best and each[lr] == best


def test_unstable_step_size_is_flagged():
    h = theory.nqm_curvatures(10)
    assert theory.nqm_is_stable(1.99, h) and not theory.nqm_is_stable(2.0, h)
    with pytest.warns(theory.UnstableLearningRate):
        loss = theory.nqm_expected_loss(100, 4, 2.5, h)
    assert loss[-1] > 1e10 * loss[0]  # grows geometrically, (1 - 2.5)^2 = 2.25 per step
    with pytest.warns(theory.UnstableLearningRate):
        assert np.isinf(theory.nqm_expected_loss(2000, 4, 2.5, h)[-1])
    assert theory.nqm_steps_to_target(4, 2.0, 1e-3, h, 1000) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        theory.nqm_expected_loss(10, 4, 1.99, h)  # stable: no warning


@pytest.fixture(scope="module")
def scaling():
    """Steps to E[L] <= 0.05 for d = 1000, B = 1 ... 4096, quarter-octave LR grid."""
    h = theory.nqm_curvatures(1000)
    lrs = [2.0 ** (k / 4) for k in range(-44, 4)]
    return theory.nqm_scaling_table([2 ** k for k in range(13)], [0.05], lrs, h, 10 ** 7)


def test_perfect_scaling_at_small_batch_and_saturation_at_large_batch(scaling):
    tuned = scaling[scaling["rule"] == "tuned"].set_index("batch_size")["steps"]
    # perfect scaling: steps(B) / steps(2B) within 2% of 2 for B = 1, 2, 4
    for b in (1, 2, 4):
        assert tuned[b] / tuned[2 * b] == pytest.approx(2.0, rel=0.02), b
    # saturation: doubling B from 1024 to 4096 saves less than 5% of the steps
    assert tuned[1024] / tuned[4096] < 1.05
    # never fewer examples at a larger batch size (B * steps non-decreasing)
    examples = (tuned * tuned.index).to_numpy()
    assert np.all(np.diff(examples) >= 0)
    b_crit = theory.critical_batch_size(tuned.index, tuned.to_numpy())
    assert b_crit is not None and 8 <= b_crit <= 512
    assert tuned[b_crit] / tuned[2 * b_crit] < 1.5
    assert all(tuned[b] / tuned[2 * b] >= 1.5 for b in tuned.index if b < b_crit)


def test_scaling_rules_reuse_train_learning_rate(scaling):
    table = scaling.set_index(["rule", "batch_size"])
    lr_ref = table.loc[("tuned", 1), "lr"]
    for b in (2, 64):
        assert table.loc[("linear", b), "lr"] == learning_rate(lr_ref, b, "linear")
        assert table.loc[("sqrt", b), "lr"] == pytest.approx(lr_ref * math.sqrt(b))
    # the linear rule goes unstable (a >= 2) at large B: no steps there
    assert math.isnan(table.loc[("linear", 4096), "steps"])
    # tuned is never worse than either rule
    for rule in ("linear", "sqrt"):
        for b in range(13):
            s = table.loc[(rule, 2 ** b), "steps"]
            assert math.isnan(s) or table.loc[("tuned", 2 ** b), "steps"] <= s


def test_critical_batch_size_definition():
    # ratios 2, 1.67, 1.2: the first below 1.5 is at B = 4
    assert theory.critical_batch_size([1, 2, 4, 8], [100, 50, 30, 25]) == 4
    assert theory.critical_batch_size([1, 2, 4], [100, 50, 40]) == 2  # 50 / 40 = 1.25
    assert theory.critical_batch_size([1, 2, 4], [100, 50, 25]) is None
    assert theory.critical_batch_size([1, 2, 4], [100, 50, 40], ratio=1.2) is None


def test_noise_scales_from_the_model():
    h = np.array([1.0, 0.5, 0.25])
    x2 = np.array([1.0, 4.0, 16.0])
    scales = theory.nqm_noise_scales(x2, h)
    assert scales["B_simple"] == pytest.approx(1.75 / (1 + 1 + 1))
    assert scales["B_noise"] == pytest.approx((1 + 0.25 + 0.0625) / (1 + 0.5 + 0.25))


def test_loss_curve_figure_slider_changes_the_data():
    h = theory.nqm_curvatures(100)
    lrs = [0.05, 0.2, 0.8, 1.6]
    table = theory.nqm_loss_table([1, 16, 256], lrs, [1, 10, 100, 1000], h)
    fig = figures.nqm_loss_curves(table)
    (slider,) = fig.layout.sliders
    assert len(slider.steps) == len(lrs)
    ys = []
    for step in slider.steps:
        assert step.method == "update"
        data, layout = step.args
        assert set(layout) == {"title.text"} and "title" not in layout
        assert len(data["y"]) == 3
        ys.append(tuple(tuple(y) for y in data["y"]))
    assert len(set(ys)) == len(lrs)
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text and fig.layout.title.text


def test_steps_to_target_figure_slider_changes_the_data(scaling):
    h = theory.nqm_curvatures(300)
    table = theory.nqm_scaling_table([1, 2, 4, 8, 16, 32, 64], [1.0, 0.5, 0.3],
                                     [2.0 ** (k / 2) for k in range(-12, 2)], h, 10 ** 6)
    fig = figures.nqm_steps_to_target(table, {1.0: 8, 0.5: 16, 0.3: None})
    (slider,) = fig.layout.sliders
    assert len(slider.steps) == 3
    ys = set()
    for step in slider.steps:
        data, layout = step.args
        assert set(layout) == {"title.text"}
        assert len(data["y"]) == len(fig.data)
        ys.add(tuple(tuple(y) for y in data["y"]))
    assert len(ys) == 3
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.dtick == pytest.approx(math.log10(2))
    assert "log2" in fig.layout.xaxis.title.text


# ------------------------------------------------------------- what the chapter shows

def test_protocol_states_the_settings():
    settings = presets.nqm("scaled")
    h = theory.nqm_curvatures(settings.dim)
    column = theory.nqm_protocol(settings, h)["noisy quadratic model"]
    assert column["dimension d"] == f"{settings.dim:,}"
    # E[L(x_0)] = 1/2 sum_i 1/i: the harmonic number H_d / 2
    assert float(column["initial expected loss E[L(x_0)]"]) == pytest.approx(
        0.5 * sum(1 / i for i in range(1, settings.dim + 1)), abs=1e-3)
    assert column["step sizes a tried per batch size"].startswith(f"{len(settings.tuning_lrs)}, 2^")
    assert column["step budget"] == f"{settings.max_steps:,}"


def test_critical_batch_sizes_per_target(scaling):
    critical = theory.nqm_critical_batch_sizes(scaling, 1.5)
    tuned = scaling[scaling["rule"] == "tuned"]
    assert list(critical) == [0.05]
    assert critical[0.05] == theory.critical_batch_size(tuned["batch_size"], tuned["steps"], 1.5)
    assert theory.nqm_critical_batch_sizes(scaling, 1.05)[0.05] > critical[0.05]
    with pytest.raises(ValueError, match="no 'tuned' rows"):
        theory.nqm_critical_batch_sizes(scaling[scaling["rule"] != "tuned"])


def test_summary_table_reads_the_ends_of_the_grid(scaling):
    critical = theory.nqm_critical_batch_sizes(scaling)
    summary = theory.nqm_summary_table(scaling, critical).data
    tuned = scaling[scaling["rule"] == "tuned"].set_index("batch_size")
    row = summary.loc[0.05]
    assert row["critical B"] == critical[0.05]
    assert row["steps at B=1"] == tuned.loc[1, "steps"]
    assert row["tuned a at B=4,096"] == tuned.loc[4096, "lr"]
    assert row["examples at B=4,096"] == 4096 * tuned.loc[4096, "steps"]
    assert row["examples never fewer at a larger B"]
    # a table in which B = 2 reaches the target with fewer examples than B = 1
    cheaper = pd.DataFrame({"target": 0.1, "rule": "tuned", "batch_size": [1, 2, 4],
                            "lr": 0.5, "steps": [100.0, 40.0, 30.0]})
    assert not theory.nqm_summary_table(cheaper, {0.1: 2}).data.loc[
        0.1, "examples never fewer at a larger B"]


def test_noise_scale_table_at_x0_and_at_the_target(scaling):
    h = theory.nqm_curvatures(1000)
    critical = theory.nqm_critical_batch_sizes(scaling)
    table = theory.nqm_noise_scale_table(scaling, critical, h).data
    row = table.loc[0.05]
    # at x_0 (s_i = 1): B_simple = sum h / sum h^2, B_noise = sum h^2 / sum h^3
    assert row["B_simple at x_0"] == pytest.approx(h.sum() / (h ** 2).sum())
    assert row["B_noise at x_0"] == pytest.approx((h ** 2).sum() / (h ** 3).sum())
    assert row["B_simple at the target"] > row["B_simple at x_0"]  # the noise grows relative
    assert row["B_noise at the target / critical B"] == pytest.approx(
        row["B_noise at the target"] / critical[0.05])
    assert theory.nqm_noise_scale_table(scaling, {0.05: None}, h).data.empty
