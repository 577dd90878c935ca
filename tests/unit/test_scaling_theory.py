"""Learning-rate scaling (book: "Learning-rate scaling"): the closed forms of
``theory.scaling_table`` against Monte Carlo and autograd, the rules' invariants, and the
figure's slider."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from smallbatch import figures, presets, theory
from smallbatch.train import learning_rate

# a fixed, non-diagonal per-example gradient distribution: mean G, covariance SIGMA
G = np.array([0.5, -1.0, 0.25])
_A = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.5, 0.4]])
SIGMA = _A @ _A.T  # off-diagonal entries 0.6, -0.3, 0.22


def sample_update_moments(batch_size: int, lr: float, samples: int, seed: int = 0):
    """Empirical mean and covariance of the mean-form update -lr * (1/m) sum_i g_i over
    ``samples`` independent mini-batches of Gaussian per-example gradients."""
    rng = np.random.default_rng(seed)
    grads = rng.multivariate_normal(G, SIGMA, size=(samples, batch_size))
    updates = -lr * grads.mean(axis=1)
    return updates.mean(axis=0), np.cov(updates, rowvar=False)


@pytest.mark.parametrize("batch_size,lr", [(1, 0.1), (8, 0.5), (64, 2.0)])
def test_update_covariance_matches_monte_carlo(batch_size, lr):
    """Cov[update] = eta^2 Sigma / m within 5% (relative Frobenius) from 20,000 updates; the
    sampling error of a covariance from n samples is about sqrt(2 / n) = 1% per entry."""
    mean, cov = sample_update_moments(batch_size, lr, samples=20_000)
    closed = lr ** 2 * SIGMA / batch_size
    assert np.linalg.norm(cov - closed) / np.linalg.norm(closed) < 0.05
    # the mean update is -eta G; its standard error is sqrt(diag(closed) / 20,000)
    assert np.all(np.abs(mean + lr * G) < 5 * np.sqrt(np.diag(closed) / 20_000))
    # and the table's trace and mean norm agree with the same samples
    row = theory.scaling_table([batch_size], lr / batch_size, batch_size, rules=["linear"],
                               grad_mean_sq=float(G @ G), grad_var=float(np.trace(SIGMA))).iloc[0]
    assert row["eta"] == pytest.approx(lr, rel=1e-12)
    assert np.trace(cov) == pytest.approx(row["update_variance"], rel=0.05)
    assert row["update_variance"] == pytest.approx(np.trace(closed), rel=1e-12)
    assert row["mean_update"] == pytest.approx(np.linalg.norm(mean), rel=0.05)


def test_covariance_shrinks_as_one_over_m_in_the_mean_form():
    """At a fixed eta, quadrupling m divides the sampled covariance by 4 (to within 7%)."""
    _, small = sample_update_moments(4, 1.0, samples=20_000, seed=1)
    _, large = sample_update_moments(16, 1.0, samples=20_000, seed=2)
    assert np.linalg.norm(small / 4 - large) / np.linalg.norm(large) < 0.07


@pytest.mark.parametrize("batch_size", [1, 5, 32])
def test_sum_form_equals_mean_form_by_autograd(batch_size):
    """theta - eta_tilde sum_i grad L_i == one torch SGD step on the mean loss with
    lr = learning_rate(eta_tilde, m, "linear") = m * eta_tilde."""
    eta_tilde = 2.0 ** -6
    torch.manual_seed(batch_size)
    model = torch.nn.Linear(4, 2).double()
    x, y = torch.randn(batch_size, 4, dtype=torch.float64), torch.randn(batch_size, 2,
                                                                         dtype=torch.float64)
    params = [p.detach().clone().requires_grad_(True) for p in model.parameters()]

    lr = learning_rate(eta_tilde, batch_size, "linear", reference_batch_size=1)
    assert lr == batch_size * eta_tilde
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss = ((model(x) - y) ** 2).sum(dim=1).mean()  # mean over examples
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    weight, bias = params
    summed = ((x @ weight.T + bias - y) ** 2).sum()  # sum over examples: no 1/m anywhere
    grads = torch.autograd.grad(summed, params)
    for got, p, g in zip(model.parameters(), params, grads):
        torch.testing.assert_close(got.detach(), (p - eta_tilde * g).detach(), rtol=1e-12,
                                   atol=1e-14)
    # and the step really moved the parameters (the comparison is not vacuous)
    assert not torch.allclose(model.weight.detach(), weight.detach())


@pytest.fixture
def table():
    return theory.scaling_table([1, 2, 4, 16, 32, 64, 1024, 8192], base_lr=2.0 ** -8,
                                reference_batch_size=32, grad_mean_sq=2.25, grad_var=3.5,
                                dataset_size=50_000)


def _column(table, rule, column):
    return table[table["rule"] == rule].sort_values("batch_size")[column].to_numpy()


def test_linear_rule_keeps_the_mean_update_per_example_and_the_epoch_variance(table):
    per_example = _column(table, "linear", "mean_update_per_example")
    np.testing.assert_allclose(per_example, 2.0 ** -8 * 1.5, rtol=1e-12)
    np.testing.assert_allclose(_column(table, "linear", "epoch_variance"),
                               50_000 * 2.0 ** -16 * 3.5, rtol=1e-12)
    np.testing.assert_allclose(_column(table, "linear", "epoch_movement"),
                               50_000 * 2.0 ** -8 * 1.5, rtol=1e-12)
    m = _column(table, "linear", "batch_size")
    np.testing.assert_allclose(_column(table, "linear", "update_variance"),
                               2.0 ** -16 * m * 3.5, rtol=1e-12)  # eta_tilde^2 m tr(Sigma)


def test_sqrt_rule_keeps_the_update_variance(table):
    variance = _column(table, "sqrt", "update_variance")
    np.testing.assert_allclose(variance, (32 * 2.0 ** -8) ** 2 * 3.5 / 32, rtol=1e-12)
    m = _column(table, "sqrt", "batch_size")
    np.testing.assert_allclose(_column(table, "sqrt", "eta_tilde") * np.sqrt(m),
                               2.0 ** -8 * math.sqrt(32), rtol=1e-12)
    assert np.ptp(_column(table, "sqrt", "mean_update_per_example")) > 0


def test_none_rule_keeps_eta_as_tensorflow_playground_does(table):
    np.testing.assert_allclose(_column(table, "none", "eta"), 32 * 2.0 ** -8, rtol=1e-12)
    m = _column(table, "none", "batch_size")
    np.testing.assert_allclose(_column(table, "none", "eta_tilde") * m, 32 * 2.0 ** -8,
                               rtol=1e-12)
    np.testing.assert_allclose(_column(table, "none", "update_variance") * m,
                               (32 * 2.0 ** -8) ** 2 * 3.5, rtol=1e-12)


def test_rules_agree_at_the_reference_batch_size_and_nowhere_else(table):
    numeric = [c for c in table.columns if c not in ("rule", "batch_size")]
    at_ref = table[table["batch_size"] == 32][numeric].to_numpy()
    np.testing.assert_allclose(at_ref, np.broadcast_to(at_ref[0], at_ref.shape), rtol=1e-12)
    for m in (2, 1024):
        etas = table[table["batch_size"] == m]["eta"]
        assert etas.nunique() == 3


def test_epoch_signal_to_noise_is_the_same_for_every_rule(table):
    """(N eta_tilde |G|)^2 / (N eta_tilde^2 tr Sigma) = N |G|^2 / tr Sigma, whatever the rule."""
    ratio = table["epoch_movement"] ** 2 / table["epoch_variance"]
    np.testing.assert_allclose(ratio, 50_000 * 2.25 / 3.5, rtol=1e-12)


def test_bad_moments_are_rejected():
    with pytest.raises(ValueError, match=">= 0"):
        theory.scaling_table([1], 0.1, 1, grad_var=-1.0)


def test_settings_grids():
    smoke, scaled = presets.lr_scaling("smoke"), presets.lr_scaling("scaled")
    assert len(smoke.batch_sizes) < len(scaled.batch_sizes)
    for s in (smoke, scaled):
        assert s.reference_batch_size in s.batch_sizes and {2, 1024} <= set(s.batch_sizes)


def test_figure_slider_moves_the_markers_and_writes_the_title(table):
    fig = figures.lr_scaling(table)
    batch_sizes = sorted(table["batch_size"].unique())
    (slider,) = fig.layout.sliders
    assert len(slider.steps) == len(batch_sizes)
    assert [s.label for s in slider.steps] == [str(m) for m in batch_sizes]
    drawn, titles = set(), set()
    for step in slider.steps:
        assert step.method == "update"
        data, layout = step.args
        assert set(layout) == {"title.text"} and "title" not in layout
        assert len(data["x"]) == len(data["y"]) == len(fig.data)
        drawn.add(tuple(tuple(y) for y in data["y"]) + tuple(tuple(x) for x in data["x"]))
        titles.add(layout["title.text"])
    assert len(drawn) == len(titles) == len(batch_sizes)
    # the marker on the eta panel sits on each rule's curve at the step's m
    step = slider.steps[-1]
    marker_eta = step.args[0]["y"][12]
    assert marker_eta == pytest.approx(
        [table[(table.rule == r) & (table.batch_size == 8192)]["eta"].item()
         for r in ("linear", "sqrt", "none")])
    assert fig.layout.title.text and all(a.title.text for a in
                                         (fig.layout.xaxis, fig.layout.yaxis, fig.layout.yaxis4))
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"


def test_figure_needs_the_table_columns():
    with pytest.raises(ValueError, match="scaling_table"):
        figures.lr_scaling(pd.DataFrame({"rule": ["linear"], "batch_size": [1]}))


# ------------------------------------------------------------- what the chapter shows

def test_scaling_at_is_the_tables_row(table):
    column = theory.scaling_at(64, "sqrt", 2.0 ** -8, 32, 50_000)
    assert column.columns.tolist() == ["sqrt, m = 64"]
    row = theory.scaling_table([64], 2.0 ** -8, 32, rules=["sqrt"]).iloc[0]
    assert column["sqrt, m = 64"].tolist() == row.drop("rule").tolist()
    assert column.loc["eta", "sqrt, m = 64"] == pytest.approx(32 * 2.0 ** -8 * math.sqrt(2))


def test_scaling_rows_pick_the_batch_sizes(table):
    shown = theory.scaling_rows(table, [2, 32, 1024, 32]).data
    assert shown.index.get_level_values("batch_size").unique().tolist() == [2, 32, 1024]
    assert shown.columns.tolist() == ["η", "η̃", "mean update per example",
                                      "variance of one update", "movement per epoch",
                                      "noise variance per epoch"]
    linear = shown.loc["linear"]
    assert linear.loc[1024, "variance of one update"] == pytest.approx(
        512 * linear.loc[2, "variance of one update"])
    with pytest.raises(ValueError, match=r"\[3\] are not in the table"):
        theory.scaling_rows(table, [3])


def test_scaling_protocol_states_the_settings():
    column = theory.scaling_protocol(presets.lr_scaling("scaled"))["learning-rate scaling"]
    assert column["reference batch size m_ref"] == 32
    assert column["base learning rate at m_ref (eta_tilde)"] == "2^-8 = 0.00390625"
    assert column["learning rate at m_ref (eta)"] == 0.125
    assert column["batch sizes m"] == "1 to 8,192 (powers of 2)"
    smoke = theory.scaling_protocol(presets.lr_scaling("smoke"))["learning-rate scaling"]
    assert smoke["batch sizes m"] == "1 to 1,024 (powers of 2)"
