"""The variance derivation measured (book: "The variance derivation, measured"): per-example
gradients against autograd one example at a time, tr(Sigma) against an exact enumeration,
E|S - mG|^2 = m tr(Sigma)(N - m)/(N - 1) against Monte Carlo, the slope fit against
records with a known answer, and the measurement store."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from smallbatch import presets
from smallbatch.data import load_data
from smallbatch.store import MeasurementError, load_measurement, measurement_path
from smallbatch.theory import gradnoise
from smallbatch.theory.checkpoints import Checkpoint, model_at, theory_checkpoints
from smallbatch.models import build_model
from smallbatch.train import TrainConfig

CONFIG = TrainConfig(data="synthetic", model="resnet8", batch_norm="none", train_subset=48,
                     test_subset=20, batch_size=8, base_lr=2.0 ** -8, seed=3)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    data = load_data("synthetic", train_subset=48, test_subset=20)
    model = build_model("resnet8", in_channels=1, num_classes=data.num_classes, input_size=28,
                        batch_norm="none").double()
    return data, model


def autograd_one_by_one(model, x, y):
    rows = []
    for xi, yi in zip(x, y):
        loss = F.cross_entropy(model(xi[None]), yi[None])
        grads = torch.autograd.grad(loss, list(model.parameters()))
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def test_per_example_gradients_match_autograd(tiny):
    """vmap(grad) == one backward pass per example, to 1e-10 in float64."""
    data, model = tiny
    x, y = data.train_x[:6].double(), data.train_y[:6]
    vectorised = gradnoise.per_example_gradients(model, x, y)
    looped = autograd_one_by_one(model, x, y)
    assert vectorised.shape == looped.shape == (6, sum(p.numel() for p in model.parameters()))
    torch.testing.assert_close(vectorised, looped, rtol=1e-10, atol=1e-12)


def test_summed_and_full_gradient_match_per_example_sums(tiny):
    data, model = tiny
    x, y = data.train_x.double(), data.train_y
    per_example = autograd_one_by_one(model, x, y)
    torch.testing.assert_close(gradnoise.summed_gradient(model, x[:10], y[:10]),
                               per_example[:10].sum(0), rtol=1e-10, atol=1e-12)
    mean, loss = gradnoise.full_gradient(model, x, y)
    torch.testing.assert_close(mean, per_example.mean(0), rtol=1e-10, atol=1e-12)
    assert loss == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-10)


def test_trace_sigma_equals_exact_enumeration_when_every_example_is_used():
    """With per_example = N the estimate is the population trace itself (up to float32
    rounding of the per-example gradients): (1/N) sum_i |g_i - G|^2."""
    config = gradnoise.GradientNoiseConfig(Checkpoint(CONFIG, 0), per_example=48,
                                           batch_sizes=(2,), draws=2)
    values, _ = gradnoise.compute(config)
    model, data, _, _ = model_at(Checkpoint(CONFIG, 0))
    g = autograd_one_by_one(model, data.train_x, data.train_y).double()
    exact = ((g - g.mean(0)) ** 2).sum(1).mean().item()
    assert np.mean(values["per_example_sq_deviations"]) == pytest.approx(exact, rel=1e-5)
    assert values["grad_norm_sq"] == pytest.approx((g.mean(0) ** 2).sum().item(), rel=1e-5)


def test_batch_noise_matches_the_finite_population_formula():
    """Monte Carlo over 600 batches (without replacement, N = 48): the mean of |S - mG|^2
    agrees with m tr(Sigma)(N - m)/(N - 1) within 4 standard errors, at m = 4 and at
    m = 40, where the finite-population factor 8/47 matters (without it the prediction
    would be ~6x too large and the test fails)."""
    config = gradnoise.GradientNoiseConfig(Checkpoint(CONFIG, 0), per_example=48,
                                           batch_sizes=(4, 40), draws=600)
    values, _ = gradnoise.compute(config)
    trace_sigma = np.mean(values["per_example_sq_deviations"])  # exact: every example
    for m in (4, 40):
        draws = np.asarray(values["batch_sq_deviations"][str(m)])
        predicted = gradnoise.predicted_sq_deviation(m, trace_sigma, 48)
        se = draws.std(ddof=1) / math.sqrt(len(draws))
        assert abs(draws.mean() - predicted) < 4 * se, (m, draws.mean(), predicted, se)
    assert gradnoise.predicted_sq_deviation(40, 1.0, 48) == pytest.approx(40 * 8 / 47)


def fake_record(exponent: float, label: str = "fake", noise: float = 0.0, seed: int = 0):
    """A record whose V(m) is m^exponent tr(Sigma) (N - m)/(N - 1), with optional noise."""
    rng = np.random.default_rng(seed)
    num_train, trace_sigma = 10_000, 2.0
    batches = {}
    for m in (1, 2, 4, 8, 16, 32, 64, 128):
        centre = m ** exponent * trace_sigma * (num_train - m) / (num_train - 1)
        batches[str(m)] = list(centre * (1 + noise * rng.standard_normal(200)))
    return {"values": {"checkpoint": label, "num_train": num_train, "grad_norm_sq": 0.5,
                       "train_loss": 1.0, "per_example_sq_deviations": [trace_sigma] * 100,
                       "batch_sq_deviations": batches}}


def test_slope_fit_recovers_the_exponent_and_flags_a_wrong_one():
    exact = gradnoise.fit_variance_slopes([fake_record(1.0)]).set_index("rule")
    assert exact.loc["linear", "slope"] == pytest.approx(1.0, abs=1e-12)
    assert exact.loc["sqrt", "slope"] == pytest.approx(0.0, abs=1e-12)
    assert exact.loc["none", "slope"] == pytest.approx(-1.0, abs=1e-12)
    assert exact.loc["linear", "b_simple"] == pytest.approx(4.0)
    noisy = gradnoise.fit_variance_slopes([fake_record(1.0, noise=0.3)]).set_index("rule")
    assert noisy.loc["linear", "slope_low"] < 1.0 < noisy.loc["linear", "slope_high"]
    assert noisy["consistent"].all()
    wrong = gradnoise.fit_variance_slopes([fake_record(1.2, noise=0.3)]).set_index("rule")
    assert wrong.loc["linear", "slope"] == pytest.approx(1.2, abs=0.03)
    assert not wrong["consistent"].any()


def test_noise_frame_applies_each_rule():
    frame = gradnoise.noise_frame([fake_record(1.0)], base_lr=0.01, reference_batch_size=4)
    linear = frame[frame.rule == "linear"].set_index("batch_size")
    sqrt = frame[frame.rule == "sqrt"].set_index("batch_size")
    assert np.allclose(linear["eta_tilde"], 0.01)
    assert sqrt.loc[16, "eta_tilde"] == pytest.approx(0.01 * math.sqrt(4 / 16))
    assert np.allclose(linear["ratio"], 1.0) and np.allclose(linear["measured"], linear["predicted"])
    # the square-root rule holds the (finite-population corrected) update variance fixed
    corrected = sqrt["measured"] / ((10_000 - sqrt.index) / 9_999)
    assert np.allclose(corrected, corrected.iloc[0])


def test_batch_norm_checkpoint_is_rejected():
    config = gradnoise.GradientNoiseConfig(Checkpoint(CONFIG.replace(batch_norm="all"), 0),
                                           per_example=8, batch_sizes=(2,), draws=2)
    with pytest.raises(MeasurementError, match="batch norm"):
        gradnoise.compute(config)


def test_bad_sizes_are_rejected():
    with pytest.raises(MeasurementError, match="two samples"):
        gradnoise.GradientNoiseConfig(Checkpoint(CONFIG), per_example=1, batch_sizes=(2,),
                                      draws=4)
    config = gradnoise.GradientNoiseConfig(Checkpoint(CONFIG), per_example=8,
                                           batch_sizes=(64,), draws=2)
    with pytest.raises(MeasurementError, match="the data have 48"):
        gradnoise.compute(config)


def test_measurement_is_stored_and_reloaded_not_recomputed(tmp_path, monkeypatch):
    config = gradnoise.GradientNoiseConfig(Checkpoint(CONFIG, 1), per_example=8,
                                           batch_sizes=(1, 4), draws=3)
    first = gradnoise.measure(config, tmp_path)
    assert first["provenance"]["torch_version"] == torch.__version__
    assert first["values"]["checkpoint"] == "after 1 epoch"
    assert first["values"]["checkpoint_test_accuracy"] is not None
    path = measurement_path(tmp_path, gradnoise.KIND, config)
    assert path.is_file() and json.loads(path.read_text())["config_hash"] == path.stem

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a stored measurement")

    monkeypatch.setattr(gradnoise, "compute", fail)
    assert gradnoise.measure(config, tmp_path) == first
    # another config is another record: it would be computed
    with pytest.raises(AssertionError, match="recomputed"):
        gradnoise.measure(config.__class__(config.checkpoint, 8, (1, 4), 4), tmp_path)
    # a record of another config under this name is refused, not served
    other = json.loads(path.read_text())
    other["config"]["draws"] = 99
    path.write_text(json.dumps(other))
    with pytest.raises(MeasurementError, match="another config"):
        load_measurement(tmp_path, gradnoise.KIND, config)
    path.write_text("{not json")
    with pytest.raises(MeasurementError, match="not a readable"):
        load_measurement(tmp_path, gradnoise.KIND, config)


def test_checkpoint_that_diverges_is_an_error():
    config = gradnoise.GradientNoiseConfig(Checkpoint(CONFIG.replace(base_lr=64.0), 1),
                                           per_example=8, batch_sizes=(2,), draws=2)
    with pytest.raises(MeasurementError, match="diverged"):
        gradnoise.compute(config)


def test_presets_name_valid_configs():
    for scale in presets.SCALES:
        settings = presets.gradient_noise(scale)
        for checkpoint in theory_checkpoints(scale):
            assert checkpoint.config.batch_norm == "none"
            gradnoise.GradientNoiseConfig(checkpoint, settings.per_example,
                                          settings.batch_sizes, settings.draws)


# ------------------------------------------------------------- what the chapter shows

def test_deviation_ratios_are_the_draws_over_their_prediction():
    record = fake_record(1.0)
    predicted = gradnoise.predicted_sq_deviation(8, 2.0, 10_000)
    record["values"]["batch_sq_deviations"]["8"] = [0.5 * predicted, 2.0 * predicted]
    assert gradnoise.deviation_ratios(record, 8) == pytest.approx([0.5, 2.0])
    assert gradnoise.deviation_ratios(fake_record(1.0), 64) == pytest.approx([1.0] * 200)
    with pytest.raises(ValueError, match="no batches of m = 3"):
        gradnoise.deviation_ratios(record, 3)


def test_top_share_known_answers():
    assert gradnoise.top_share([1.0] * 100) == pytest.approx(0.01)
    assert gradnoise.top_share([1.0] * 99 + [101.0]) == pytest.approx(101 / 200)
    assert gradnoise.top_share([3.0, 1.0], fraction=0.01) == pytest.approx(0.75)  # >= 1 example
    assert gradnoise.top_share([1.0] * 10, fraction=0.5) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="fraction"):
        gradnoise.top_share([1.0], fraction=0.0)


def test_protocol_rows_from_the_settings():
    settings = presets.gradient_noise("scaled")
    table = gradnoise.protocol(settings, theory_checkpoints("scaled"),
                               presets.study_dir("gradient-noise", "scaled"))
    column = table["gradient-noise measurement"]
    assert column["per-example gradients for tr(Sigma)"] == "4,096"
    assert column["batch sizes m"] == "1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024"
    assert column["batches drawn per m"] == 64
    assert column["eta_tilde at m_ref (for the update scale)"] == "2^-10 at m_ref = 32"


def _ratio_frame(intervals: dict) -> pd.DataFrame:
    """noise_frame-like rows: per checkpoint, (ratio, low, high) of the linear rule (and a
    sqrt row that must be ignored)."""
    rows = []
    for checkpoint, triples in intervals.items():
        for m, (ratio, low, high) in enumerate(triples, start=1):
            for rule in ("linear", "sqrt"):
                rows.append(dict(checkpoint=checkpoint, batch_size=m, rule=rule, ratio=ratio,
                                 ratio_low=low if rule == "linear" else 5.0,
                                 ratio_high=high if rule == "linear" else 6.0))
    return pd.DataFrame(rows)


def test_ratio_table_and_text_count_the_intervals_that_contain_1():
    frame = _ratio_frame({"start": [(1.0, 0.9, 1.1), (1.02, 0.99, 1.05), (0.9, 0.8, 0.95)],
                          "end": [(1.1, 1.04, 1.2), (1.0, 1.0, 1.0)]})
    ratios = gradnoise.ratio_table(frame).data
    assert list(ratios.index) == ["start", "end"]
    assert ratios["ratios"].tolist() == [3, 2]
    assert ratios["95% interval contains 1"].tolist() == [2, 1]
    assert ratios.loc["start", "median ratio"] == pytest.approx(1.0)
    assert (ratios.loc["start", "lowest"], ratios.loc["end", "highest"]) == (0.9, 1.1)
    slopes = gradnoise.fit_variance_slopes([fake_record(1.0, "start", noise=0.3),
                                            fake_record(1.2, "end", noise=0.3)])
    text = gradnoise.derivation_text(frame, slopes)
    assert "in 3 of 6 fits" in text
    # two misses: 1 - 0.95 and 1.04 - 1, the larger is 5%
    assert "3 of 5 ratios" in text and "the other 2 miss it by at most 5.0%" in text
    inside = _ratio_frame({"start": [(1.0, 0.9, 1.1)]})
    text = gradnoise.derivation_text(
        inside, gradnoise.fit_variance_slopes([fake_record(1.0, "start", noise=0.3)]))
    assert "in all 3 fits" in text and "1 of 1 ratios" in text and "miss" not in text


def test_slope_table_states_each_verdict():
    slopes = gradnoise.fit_variance_slopes([fake_record(1.0, "exact", noise=0.3),
                                            fake_record(1.2, "wrong", noise=0.3)])
    table = gradnoise.slope_table(slopes)
    assert list(table.columns) == ["predicted slope", "fitted slope [95% interval]", "verdict",
                                   "m", "draws"]
    assert (table.loc["exact", "verdict"] == "consistent").all()
    assert (table.loc["wrong", "verdict"] == "inconsistent").all()
    assert table.loc[("exact", "linear"), "fitted slope [95% interval]"].startswith("1.0")
    assert table.loc[("exact", "none"), "m"] == "1-128"


def test_moments_and_the_noise_scale_text():
    early, late = fake_record(1.0, "start"), fake_record(1.0, "end")
    early["values"]["checkpoint_test_accuracy"] = None
    late["values"]["checkpoint_test_accuracy"] = 0.9
    late["values"]["grad_norm_sq"] = 0.25  # B_simple = 2 / 0.25 = 8, from 2 / 0.5 = 4
    late["values"]["per_example_sq_deviations"] = [2.0] * 99 + [200.0]
    records = [early, late]
    moments = gradnoise.checkpoint_moments(records, gradnoise.fit_variance_slopes(records))
    assert list(moments.index) == ["start", "end"]
    assert moments.loc["start", "top_share"] == pytest.approx(0.01)
    assert moments.loc["end", "top_share"] == pytest.approx(200 / 398)
    assert math.isnan(moments.loc["start", "test_accuracy"])
    assert moments.loc["end", "test_accuracy"] == 0.9
    assert "(initial weights)" in gradnoise.moments_table(moments).to_html()
    text = gradnoise.noise_scale_text(moments)
    assert text.startswith("From start to end, tr(Σ) changed by a factor of 1.99 and |G|² by a "
                           "factor of 0.5, so the simple noise scale went from 4 to 15.9 "
                           "examples. Training made the gradient noisier")
    reverse = gradnoise.noise_scale_text(moments.iloc[::-1])
    assert "less noisy" in reverse
    with pytest.raises(ValueError, match="no record"):
        gradnoise.checkpoint_moments([early], gradnoise.fit_variance_slopes(records))
