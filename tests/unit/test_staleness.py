"""n small steps against one large step (smallbatch.theory.staleness): each derivation checked
against an independent computation, in float64."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from smallbatch import figures, presets
from smallbatch.store import MeasurementError, measurement_path
from smallbatch.theory import staleness
from smallbatch.theory.checkpoints import model_at, theory_checkpoints
from smallbatch.theory.staleness import FlatModel, StaleGradientConfig


def tiny_network() -> nn.Module:
    """119 parameters: a 3x3 convolution, a ReLU and a linear layer on 1x6x6 inputs."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))


def tiny_examples(count: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(count, 1, 6, 6, generator=generator),
            torch.randint(0, 3, (count,), generator=generator))


@pytest.fixture(scope="module")
def smoke_network():
    """ResNet-8 without batch norm at its initialisation, on the synthetic smoke data."""
    model, data, _, _ = model_at(theory_checkpoints("smoke")[0], device="cpu")
    return FlatModel(model), data


def test_hessian_vector_products_match_the_full_hessian():
    net = FlatModel(tiny_network())
    x, y = tiny_examples(5, seed=1)
    hessian = torch.autograd.functional.hessian(
        lambda theta: F.cross_entropy(net.logits(theta, x), y, reduction="sum"), net.theta)
    vectors = torch.randn(3, net.theta.numel(), dtype=torch.float64)
    products = net.hvp(net.theta, x, y, vectors)
    assert hessian.abs().max() > 0.1  # a real curvature, not a zero matrix
    torch.testing.assert_close(products, vectors @ hessian.T, rtol=1e-10, atol=1e-12)


def _plain_sgd(model: nn.Module, batches, lr: float) -> torch.Tensor:
    """torch.optim.SGD on the mean cross-entropy, one step per batch; flat parameters."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for x, y in batches:
        optimizer.zero_grad()
        F.cross_entropy(model(x.double()), y).backward()
        optimizer.step()
    return torch.nn.utils.parameters_to_vector(model.parameters()).detach()


def test_both_paths_are_plain_sgd_steps():
    """Path A = n SGD steps with lr = m eta_tilde on the mean loss; path B = one step with
    lr = n m eta_tilde on the mean loss of all n m examples (the sum form, book section 1)."""
    m, n, eta = 4, 3, 0.05
    x, y = tiny_examples(n * m, seed=2)
    batches = [(x[j * m:(j + 1) * m], y[j * m:(j + 1) * m]) for j in range(n)]
    net = FlatModel(tiny_network())
    steps = list(staleness.small_steps(net, net.theta, batches, eta))
    terms = staleness.second_order_terms(net, net.theta, batches)
    reference_a = _plain_sgd(tiny_network().double(), batches, lr=m * eta)
    reference_b = _plain_sgd(tiny_network().double(), [(x, y)], lr=n * m * eta)
    theta_a = net.theta + steps[-1][0]
    theta_b = net.theta - eta * terms.sums[n]
    assert (theta_a - theta_b).norm() > 1e-3  # the two paths really differ at this eta
    torch.testing.assert_close(theta_a, reference_a, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(theta_b, reference_b, rtol=1e-10, atol=1e-12)

    eval_x, eval_y = tiny_examples(7, seed=3)
    rows = staleness.compare_paths(net, batches, eval_x, eval_y, [eta], [1, n])
    row = next(r for r in rows if r["n"] == n)
    assert row["distance"] == pytest.approx(float((reference_a - reference_b).norm()), rel=1e-10)
    model = tiny_network().double()
    torch.nn.utils.vector_to_parameters(reference_a, model.parameters())
    with torch.no_grad():
        loss_a = F.cross_entropy(model(eval_x.double()), eval_y).item()
    assert row["loss_a"] == pytest.approx(loss_a, rel=1e-12)


def test_one_small_step_is_the_large_step(smoke_network):
    net, data = smoke_network
    batches = [(data.train_x[4 * j:4 * j + 4], data.train_y[4 * j:4 * j + 4]) for j in range(2)]
    rows = staleness.compare_paths(net, batches, data.train_x[-8:], data.train_y[-8:],
                                   [2.0 ** -20, 2.0 ** -6], [1, 2])
    one = [r for r in rows if r["n"] == 1]
    assert all(r["distance"] == 0.0 and r["loss_a"] == r["loss_b"] for r in one)
    assert all(r["sign_changes"] == 0 for r in one)
    assert all(r["distance"] > 0 for r in rows if r["n"] == 2)


def test_second_order_prediction_is_the_small_learning_rate_limit(smoke_network):
    """distance / (eta_tilde^2 |c_n|) -> 1 and a log-log slope of 2 where no ReLU input
    changes sign; at a training-sized eta_tilde the prediction is off."""
    net, data = smoke_network
    m, n = 4, 4
    batches = [(data.train_x[m * j:m * (j + 1)], data.train_y[m * j:m * (j + 1)])
               for j in range(n)]
    small = [2.0 ** -34, 2.0 ** -32, 2.0 ** -30]
    rows = staleness.compare_paths(net, batches, data.train_x[-8:], data.train_y[-8:],
                                   small + [2.0 ** -6], [n], loss_from=1.0)
    frame = pd.DataFrame(rows).assign(checkpoint="init", epochs=0, draw=0)
    frame["ratio"] = frame["distance"] / frame["predicted_distance"]
    at_small = frame[frame["base_lr"].isin(small)]
    assert (at_small["sign_changes"] == 0).all()
    assert abs(at_small["ratio"].iloc[0] - 1) < 0.01
    [slope] = staleness.fit_distance_slopes(frame, points=3)["slope"]
    assert slope == pytest.approx(2.0, abs=0.05)
    large = frame[frame["base_lr"] == 2.0 ** -6]
    assert abs(large["ratio"].iloc[0] - 1) > 0.1


def test_measurement_is_stored_and_reloaded(tmp_path, monkeypatch):
    config = StaleGradientConfig(theory_checkpoints("smoke")[0], batch_size=2,
                                 max_steps=2, base_lrs=(2.0 ** -30, 2.0 ** -8),
                                 loss_from=2.0 ** -10, eval_size=4, draws=1)
    record = staleness.measure(config, tmp_path, device="cpu")
    assert measurement_path(tmp_path, staleness.KIND, config).exists()
    frame = staleness.stale_frame([record])
    assert len(frame) == 2 * 2  # n = 1, 2 by two eta_tilde
    evaluated = frame["base_lr"] >= config.loss_from
    assert frame.loc[evaluated, "loss_a"].notna().all()
    assert frame.loc[~evaluated, "loss_a"].isna().all() and (~evaluated).sum() == 2

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a stored measurement")

    monkeypatch.setattr(staleness, "compute", fail)
    assert staleness.measure(config, tmp_path) == record
    with pytest.raises(AssertionError, match="recomputed"):  # another config is not served
        staleness.measure(StaleGradientConfig(config.checkpoint, batch_size=2, max_steps=2,
                                              base_lrs=config.base_lrs, eval_size=4, draws=2),
                          tmp_path)


def test_config_refuses_what_cannot_be_measured():
    checkpoint = theory_checkpoints("smoke")[0]
    with pytest.raises(MeasurementError, match="positive"):
        StaleGradientConfig(checkpoint, base_lrs=(0.0,))
    assert StaleGradientConfig(checkpoint, max_steps=12).step_counts == (1, 2, 4, 8, 12)
    with pytest.raises(MeasurementError, match="training examples"):
        staleness.draw_indices(100, StaleGradientConfig(checkpoint, batch_size=8, max_steps=8,
                                                        eval_size=40))
    with pytest.raises(MeasurementError, match="batch norm"):
        FlatModel(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))


def _synthetic_frame(power: float, bend: float) -> pd.DataFrame:
    """distance = eta^power (1 + bend eta) per draw, prediction eta^2: a known answer."""
    rows = []
    for draw, scale in enumerate((1.0, 1.5)):
        for eta in (2.0 ** k for k in range(-12, -1)):
            rows.append(dict(checkpoint="c", epochs=0, draw=draw, n=2, base_lr=eta,
                             distance=scale * eta ** power * (1 + bend * eta),
                             predicted_distance=scale * eta ** 2))
    frame = pd.DataFrame(rows)
    frame["ratio"] = frame["distance"] / frame["predicted_distance"]
    frame["loss_evaluated"] = True
    return frame


def test_slopes_and_limits_recover_a_known_answer():
    [fit] = staleness.fit_distance_slopes(_synthetic_frame(2.0, 0.0)).to_dict("records")
    assert fit["slope"] == pytest.approx(2.0, abs=1e-9) and fit["ratio_at_smallest"] == 1.0
    [fit] = staleness.fit_distance_slopes(_synthetic_frame(3.0, 0.0)).to_dict("records")
    assert fit["slope"] == pytest.approx(3.0, abs=1e-9)
    frame = _synthetic_frame(2.0, 1.0)  # off by eta: first beyond 10% at eta = 2^-3
    for column in ("loss_a", "loss_b", "predicted_loss_a", "predicted_loss_b"):
        frame[column] = 1.0 + frame["base_lr"]
    frame["loss_at_checkpoint"] = 1.0
    frame["gap"] = frame["predicted_gap"] = 0.5
    frame["sign_changes"] = np.where(frame["base_lr"] >= 2.0 ** -5, 3, 0)
    [limit] = staleness.prediction_limits(frame, tolerance=0.1).to_dict("records")
    assert limit["distance"] == 2.0 ** -3 and limit["first_sign_change"] == 2.0 ** -5
    assert math.isnan(limit["loss_a"]) and math.isnan(limit["gap"])


def test_figure_has_a_slider_over_n_and_log_axes(smoke_network):
    net, data = smoke_network
    batches = [(data.train_x[2 * j:2 * j + 2], data.train_y[2 * j:2 * j + 2]) for j in range(4)]
    records = []
    for label, epochs in (("initialisation", 0), ("after 1 epoch", 1)):
        rows = [dict(r, draw=d) for d in range(2)
                for r in staleness.compare_paths(net, batches, data.train_x[-4:],
                                                 data.train_y[-4:], [2.0 ** -30, 2.0 ** -8],
                                                 [1, 2, 4], loss_from=2.0 ** -10)]
        records.append({"config": {"batch_size": 2, "loss_from": 2.0 ** -10},
                        "values": {"checkpoint": label, "epochs": epochs,
                                   "table": {k: [r[k] for r in rows] for k in rows[0]}}})
    frame = staleness.stale_frame(records)
    fig = figures.stale_gradients(frame)
    [slider] = fig.layout.sliders
    assert [step.label for step in slider.steps] == ["2", "4"]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert any(trace.line.dash == "dash" for trace in fig.data)
    # the steps restyle the curves: n = 4 shows larger distances than n = 2
    first, last = (np.nanmax([v for v in step.args[0]["y"][0] if v is not None])
                   for step in slider.steps)
    assert last > first
    bands = [trace for trace in fig.data if trace.fill == "toself"]
    assert bands and all(v is not None for trace in bands for v in trace.y)

    losses = figures.stale_gradient_losses(frame)
    assert [step.label for step in losses.layout.sliders[0].steps] == ["2", "4"]
    assert {a.text for a in losses.layout.annotations} == {"initialisation", "after 1 epoch"}
    assert all(min(trace.x) >= 2.0 ** -10 for trace in losses.data[:8])  # evaluated only


def test_loss_gaps_count_the_lower_path_and_not_two_divergences():
    rows = [dict(checkpoint="c", epochs=0, draw=d, n=2, base_lr=eta, loss_evaluated=True,
                 loss_a=a, loss_b=b, gap=a - b, predicted_gap=0.0)
            for d, (eta, a, b) in enumerate([(0.1, 1.0, 2.0), (0.1, 1.0, 0.5),
                                              (0.2, math.nan, 1e6), (0.2, math.nan, 0.9)])]
    frame = pd.DataFrame(rows)
    gaps = staleness.loss_gaps(frame).set_index("base_lr")
    assert gaps.loc[0.1, ["a_lower", "b_lower", "both_diverged"]].tolist() == [1, 1, 0]
    # a path that left the floats is the higher one, unless the other diverged as well
    assert gaps.loc[0.2, ["a_lower", "b_lower", "both_diverged"]].tolist() == [0, 1, 1]


def test_growth_with_n_recovers_the_shared_mean_shape():
    """|c_n| = n(n-1)/2 exactly (and a measured distance growing as n^2) give back the
    shared-mean reference exponent and 2."""
    rows = [dict(checkpoint="c", epochs=0, draw=d, n=n, base_lr=eta,
                 predicted_distance=eta ** 2 * (d + 1) * n * (n - 1) / 2,
                 distance=eta ** 2 * n ** 2)
            for d in range(2) for n in (1, 2, 4, 8, 16) for eta in (2.0 ** -20, 2.0 ** -10)]
    [growth] = staleness.n_exponents(pd.DataFrame(rows), base_lr=2.0 ** -10).to_dict("records")
    assert growth["c_exponent"] == pytest.approx(growth["mean_gradient_exponent"], abs=1e-9)
    assert growth["distance_exponent"] == pytest.approx(2.0, abs=1e-9)
    assert growth["noise_exponent"] < growth["mean_gradient_exponent"] - 0.4


def test_loss_figure_leaves_out_values_far_above_its_panels(smoke_network):
    """A diverging path's loss (here 1e214) never reaches the figure: SVG cannot place it."""
    net, data = smoke_network
    batches = [(data.train_x[2 * j:2 * j + 2], data.train_y[2 * j:2 * j + 2]) for j in range(2)]
    rows = [dict(r, draw=0) for r in staleness.compare_paths(
        net, batches, data.train_x[-4:], data.train_y[-4:], [2.0 ** -12, 2.0 ** -8], [1, 2],
        loss_from=2.0 ** -12)]
    blown = [r for r in rows if r["n"] == 2 and r["base_lr"] == 2.0 ** -8][0]
    blown["loss_b"] = 7.6e214
    records = [{"config": {"batch_size": 2, "loss_from": 2.0 ** -12},
                "values": {"checkpoint": "initialisation", "epochs": 0,
                           "table": {k: [r[k] for r in rows] for k in rows[0]}}}]
    fig = figures.stale_gradient_losses(staleness.stale_frame(records))
    drawn = [v for trace in fig.data for v in (trace.y or []) if v is not None]
    drawn += [v for step in fig.layout.sliders[0].steps for ys in step.args[0]["y"]
              for v in ys if v is not None]
    assert drawn and max(drawn) < 1e6


# ------------------------------------------------------------- what the chapter shows

def test_grid_runs_known_answers():
    grid = [2.0 ** k for k in (-24, -20, -16, -12, -8, -4)]
    chosen = {2.0 ** -24, 2.0 ** -20, 2.0 ** -16, 2.0 ** -4}
    assert staleness.grid_runs(grid, chosen) == "2^-24 to 2^-16, 2^-4"
    assert staleness.grid_runs(grid, {2.0 ** -12}) == "2^-12"
    assert staleness.grid_runs(grid, set(grid)) == "2^-24 to 2^-4"
    assert staleness.grid_runs(grid, set()) == "none"


def tiny_data(count: int = 20, seed: int = 3) -> SimpleNamespace:
    """What paths_on_draw reads of a data set: num_train, train_x and train_y."""
    x, y = tiny_examples(count, seed)
    return SimpleNamespace(num_train=count, train_x=x, train_y=y)


def test_paths_on_a_draw_are_compare_paths_on_its_batches():
    net, data = FlatModel(tiny_network()), tiny_data()
    rows = staleness.paths_on_draw(net, data, 2, 3, draw=5, base_lrs=[2.0 ** -30, 2.0 ** -8])
    order = np.random.default_rng(5).permutation(data.num_train)[:6]
    batches = [(data.train_x[order[2 * j:2 * j + 2]], data.train_y[order[2 * j:2 * j + 2]])
               for j in range(3)]
    expected = pd.DataFrame(staleness.compare_paths(
        net, batches, data.train_x[:1], data.train_y[:1], [2.0 ** -30, 2.0 ** -8], [3],
        loss_from=1.0))
    pd.testing.assert_frame_equal(rows, expected)
    assert rows["n"].tolist() == [3, 3] and rows["loss_a"].isna().all()
    assert rows["distance"].iloc[0] == pytest.approx(rows["predicted_distance"].iloc[0],
                                                     rel=1e-3)
    other = staleness.paths_on_draw(net, data, 2, 3, draw=6, base_lrs=[2.0 ** -30])
    assert other["distance"].iloc[0] != rows["distance"].iloc[0]  # another draw of batches
    with pytest.raises(MeasurementError, match="training examples"):
        staleness.paths_on_draw(net, data, 4, 6, draw=0)


def test_protocol_rows_from_the_settings():
    settings = presets.stale_gradients("scaled")
    column = staleness.protocol(settings, theory_checkpoints("scaled"),
                                presets.study_dir("stale-gradients", "scaled"))[
        "stale-gradient measurement"]
    assert column["small batch m"] == settings.batch_size
    assert column["small steps n"] == (f"1, 2, 4, ..., {settings.max_steps} (large batch n m "
                                       f"up to {settings.max_steps * settings.batch_size})")
    assert column["eta_tilde grid"].endswith(f", {len(settings.base_lrs)} values")
    assert column["losses evaluated from eta_tilde"] == "2^-24"
    assert column["stored in"] == "results/stale-gradients/scaled"


def test_measurements_table_adds_the_loss_and_accuracy_at_each_checkpoint():
    records = [{"values": {"checkpoint": label, "checkpoint_test_accuracy": accuracy},
                "config_hash": label, "provenance": {"git_commit": "abc", "device_name": "cpu"},
                "wall_time": 120} for label, accuracy in (("start", None), ("end", 0.75))]
    frame = pd.DataFrame({"checkpoint": ["start", "start", "end"],
                          "loss_at_checkpoint": [2.3, 2.3, 0.5]})
    styled = staleness.measurements_table(records, frame)
    assert styled.data["eval loss at the checkpoint"].tolist() == [2.3, 0.5]
    assert styled.data["minutes"].tolist() == [2.0, 2.0]
    assert "(initial weights)" in styled.to_html() and "0.750" in styled.to_html()


def test_slope_table_and_text_from_a_known_answer():
    frame = _synthetic_frame(2.0, 0.0)
    frame["sign_changes"] = np.where(frame["base_lr"] == 2.0 ** -10, 4, 0)
    summary = staleness.slope_summary(frame, points=3)
    assert summary.loc[("c", 2), "sign changes at the fitted points"] == 4
    table = staleness.slope_table(summary)
    assert table.loc[("c", 2), "fitted over eta_tilde"] == "2^-12 to 2^-10"
    assert table.loc[("c", 2), "fitted slope: mean ± sd [min, max]"].startswith("2.0000 ± 0.0000")
    assert table.loc[("c", 2), "predicted slope"] == 2.0
    text = staleness.slope_text(summary)
    assert text.startswith("Over every checkpoint and $n$, the fitted slope is at most ")
    assert "from 2 and the ratio" in text and "at most 0 from 1" in text
    steeper = _synthetic_frame(3.0, 0.0)
    steeper["sign_changes"] = 0
    assert "slope is at most 1 from 2" in staleness.slope_text(
        staleness.slope_summary(steeper, points=3))


def test_limits_table_and_text():
    limits = pd.DataFrame([
        dict(checkpoint="c", epochs=0, n=2, distance=2.0 ** -3, loss_a=np.nan, loss_b=2.0 ** -6,
             gap=np.nan, first_sign_change=2.0 ** -5),
        dict(checkpoint="c", epochs=0, n=4, distance=np.nan, loss_a=np.nan, loss_b=np.nan,
             gap=np.nan, first_sign_change=np.nan)])
    table = staleness.limits_table(limits)
    assert table.loc[("c", 2)].tolist() == ["2^-3", "", "2^-6", "", "2^-5"]
    assert table.loc[("c", 4)].tolist() == [""] * 5
    assert table.columns[-1] == "first ReLU sign change"
    assert staleness.limits_text(limits, 0.1).endswith("within 10% at every $\\tilde\\eta$ "
                                                       "below the first ReLU sign change: **yes**.")
    early = limits.assign(distance=[2.0 ** -8, np.nan])  # off before the first sign change
    assert staleness.limits_text(early, 0.05).endswith("**no**.")
    assert "within 5%" in staleness.limits_text(early, 0.05)


def test_growth_table_names_the_closer_shape():
    rows = [dict(checkpoint="c", epochs=0, draw=d, n=n, base_lr=eta,
                 predicted_distance=eta ** 2 * (d + 1) * n * (n - 1) / 2, distance=eta ** 2 * n ** 2)
            for d in range(2) for n in (1, 2, 4, 8, 16) for eta in (2.0 ** -20, 2.0 ** -10)]
    table = staleness.growth_table(pd.DataFrame(rows), base_lr=2.0 ** -10).data
    assert table.loc["c", "|c_n| closer to"] == "shared mean"
    assert table.loc["c", "n"] == "2 to 16"
    assert table.loc["c", "exponent of the measured distance at eta_tilde = 2^-10"] == \
        "2.000 ± 0.000"


def _gap_frame(a_lower_everywhere: bool = False) -> pd.DataFrame:
    """Two checkpoints, two draws, n = 2 and 4: path B lower at 2^-8 and 2^-6, A at 2^-4,
    each in one draw at 2^-2, both diverged at 2^0 (the first checkpoint: A lower
    everywhere below 2^0 when ``a_lower_everywhere``)."""
    rows = []
    for checkpoint, epochs in (("initialisation", 0), ("after 1 epoch", 1)):
        for draw in range(2):
            for n in (2, 4):
                for k in (-8, -6, -4, -2, 0):
                    a, b = {-8: (1.1, 1.0), -6: (1.1, 1.0), -4: (0.9, 1.0),
                            -2: (0.9, 1.0) if draw == 0 else (1.1, 1.0),
                            0: (math.nan, 1e30)}[k]
                    if a_lower_everywhere and epochs == 0 and k < 0:
                        a, b = 0.9, 1.0
                    rows.append(dict(checkpoint=checkpoint, epochs=epochs, draw=draw, n=n,
                                     base_lr=2.0 ** k, loss_evaluated=True, loss_a=a, loss_b=b,
                                     gap=a - b, predicted_gap=0.0))
    return pd.DataFrame(rows)


def test_gap_tables_and_the_two_regimes():
    at_max = staleness.largest_n_gaps(_gap_frame())
    assert set(at_max["n"]) == {4} and list(at_max["checkpoint"].unique()) == [
        "initialisation", "after 1 epoch"]
    table = staleness.gap_table(at_max).data
    assert table.index.names == ["checkpoint", "eta_tilde"]
    assert table.loc[("initialisation", "2^-2"), ["A lower", "B lower"]].tolist() == [1, 1]
    assert table.loc[("initialisation", "2^0"), "both diverged"] == 2
    every = staleness.lower_in_every_draw(at_max)
    assert every["initialisation"] == {"b_lower": {2.0 ** -8, 2.0 ** -6}, "a_lower": {2.0 ** -4},
                                       "both_diverged": {1.0}}
    [first, _] = staleness.regime_texts(at_max)
    assert first == ("**initialisation**, n = 4: one large step lower in every draw at η̃ = "
                     "2^-8 to 2^-6; n small steps lower in every draw at 2^-4; both diverged "
                     "in every draw at 2^0.")
    assert staleness.regimes_text(at_max).startswith("In this measurement, at every checkpoint")
    mixed = staleness.largest_n_gaps(_gap_frame(a_lower_everywhere=True))
    assert "one large step lower in every draw at η̃ = none" in staleness.regime_texts(mixed)[0]
    assert staleness.regimes_text(mixed).startswith("In this measurement the two regimes do "
                                                    "not both appear")


def _early_late_frame(relative_late: float) -> pd.DataFrame:
    """|V_n| = 2 at both checkpoints, |c_n| = 8 at the first and 1 at the second; at the
    training eta_tilde 2^-4 the distance is 0.5 (first) and ``relative_late`` (second) of
    the step."""
    rows = []
    for checkpoint, epochs, c, relative in (("initialisation", 0, 8.0, 0.5),
                                            ("after 1 epoch", 1, 1.0, relative_late)):
        for draw in range(2):
            for n in (2, 4):
                for eta in (2.0 ** -20, 2.0 ** -4):
                    rows.append(dict(checkpoint=checkpoint, epochs=epochs, draw=draw, n=n,
                                     base_lr=eta, update_norm=2.0 * eta,
                                     predicted_distance=c * eta ** 2,
                                     distance=relative * 2.0 * eta, gap=-0.1, sign_changes=3,
                                     loss_at_checkpoint=2.3 - epochs))
    return pd.DataFrame(rows)


def test_early_late_from_a_known_answer():
    table = staleness.early_late(_early_late_frame(0.1), base_lr=2.0 ** -4)
    assert list(table.index) == ["initialisation", "after 1 epoch"]
    assert table["v"].tolist() == pytest.approx([2.0, 2.0])
    assert table["c"].tolist() == pytest.approx([8.0, 1.0])
    assert table["crossover"].tolist() == pytest.approx([0.25, 2.0])
    assert table["relative"].tolist() == pytest.approx([0.5, 0.1])
    assert "Both point to the start of training" in staleness.early_late_text(table)
    shown = staleness.early_late_table(table, 2.0 ** -4).data
    assert "|θ_A - θ_B| / |θ_B - θ_k| at 2^-4" in shown.columns
    other = staleness.early_late(_early_late_frame(0.9), base_lr=2.0 ** -4)
    text = staleness.early_late_text(other)
    assert "**after 1 epoch**" in text and "do not both single out" in text
    with pytest.raises(ValueError, match="not on the measured grid"):
        staleness.early_late(_early_late_frame(0.1), base_lr=2.0 ** -5)
