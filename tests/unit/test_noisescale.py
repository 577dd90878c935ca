"""The noise scale along a run (book: "The noise scale along a run"): the two-batch
estimator against the exact B_simple of a model whose per-example gradients are known, the
two estimators against each other on a ResNet, batch norm's running statistics, the
measurement store and the configs that are refused."""

import json
import math

import numpy as np
import pytest
import torch

from smallbatch import presets
from smallbatch.analysis import budget
from smallbatch.data import load_data
from smallbatch.models import build_model
from smallbatch.store import MeasurementError, load_measurement, measurement_path
from smallbatch.theory import noisescale
from smallbatch.theory.checkpoints import Checkpoint
from smallbatch.train import TrainConfig

CONFIG = TrainConfig(data="synthetic", model="resnet8", batch_norm="none", train_subset=48,
                     test_subset=20, batch_size=8, base_lr=2.0 ** -8, seed=3)


def record(config: noisescale.NoiseScaleConfig, values: dict) -> dict:
    """A record as :func:`noisescale.measure` stores it, for the analysis."""
    return {"config": {"small_batch": config.small_batch, "big_batch": config.big_batch},
            "values": {"batch_norm": "none", "checkpoint": "test", "epochs": 0, "steps": 0,
                       "checkpoint_test_accuracy": None, **values}}


def test_two_batch_estimate_matches_the_exact_noise_scale_of_a_linear_model():
    """Softmax regression on 64 fixed examples, float64: its per-example gradients (closed
    form) give the exact tr(Sigma) and |G|^2 (B_simple = 42). Over 600 batches of 2 and 300 of 32 drawn
    with replacement, mean |G_B|^2 agrees with |G|^2 + tr(Sigma)/B within 4 standard errors
    at both sizes; the without-replacement value |G|^2 + tr(Sigma)/B (N - B)/(N - 1), which
    has 49% of the noise at B = 32 (0.6 standard deviations of one draw, 10 standard errors
    of the mean of 300), is rejected, so the check can fail. The exact B_simple lies in the
    two-batch estimate's 95% bootstrap interval."""
    torch.manual_seed(0)
    num_train = 64
    x = torch.randn(num_train, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (num_train,))
    model = torch.nn.Linear(6, 3).double()
    # closed form: example i's gradient is (p_i - e_{y_i}) x_i^T for the weight, p_i - e_{y_i}
    # for the bias (p_i: its softmax output), in model.parameters() order
    with torch.no_grad():
        residual = torch.softmax(model(x), dim=1) - torch.nn.functional.one_hot(y, 3)
    g = torch.cat([(residual[:, :, None] * x[:, None, :]).reshape(num_train, -1), residual], 1)
    gradient = g.mean(0)
    grad_sq = float((gradient ** 2).sum())
    trace = float(((g - gradient) ** 2).sum(1).mean())

    generator = torch.Generator().manual_seed(1)
    draws = {2: 600, 32: 300}
    norms = {b: np.asarray(noisescale.batch_sq_norms(model, x, y, b, n, generator, group=256))
             for b, n in draws.items()}
    for b, values in norms.items():
        se = values.std(ddof=1) / math.sqrt(len(values))
        assert abs(values.mean() - (grad_sq + trace / b)) < 4 * se, (b, values.mean(), se)
    big = norms[32]
    without = grad_sq + trace / 32 * (num_train - 32) / (num_train - 1)
    assert abs(big.mean() - without) > 4 * big.std(ddof=1) / math.sqrt(len(big))

    config = noisescale.NoiseScaleConfig(Checkpoint(CONFIG), small_batch=2, big_batch=32,
                                         draws=600, big_draws=300)
    frame = noisescale.noise_scale_frame([record(config, {"small_sq_norms": list(norms[2]),
                                                          "big_sq_norms": list(big)})])
    row = frame.iloc[0]
    assert row.b_simple_low < trace / grad_sq < row.b_simple_high
    assert (row.draws, row.big_draws) == (600, 300)
    assert math.isnan(row.b_simple_per_example)


def test_an_unresolved_signal_makes_the_interval_unbounded_not_nan():
    """Big-batch norms that barely undercut tr(Sigma)/B_big: many resamples estimate
    |G|^2 <= 0, so the upper end is inf (B_simple could be anything above the lower end)."""
    config = noisescale.NoiseScaleConfig(Checkpoint(CONFIG), small_batch=2, big_batch=32,
                                         draws=4)
    rng = np.random.default_rng(0)
    small = list(1.0 + 0.3 * rng.standard_normal(50))  # mean ~ |G|^2 + tr/2 with |G|^2 ~ 0
    big = list(1 / 16 + 0.05 * rng.standard_normal(50))
    row = noisescale.noise_scale_frame([record(config, {"small_sq_norms": small,
                                                        "big_sq_norms": big})]).iloc[0]
    assert row.b_simple_high == math.inf and 0 < row.b_simple_low < math.inf


def test_two_batch_and_per_example_estimates_agree_on_a_resnet():
    """ResNet-8 without BN at initialisation, 48 synthetic examples, all of them per-example:
    the per-example B_simple is exact (float32 gradients), and the two-batch estimate from
    batches of 2 and 16 (100 and 30 draws) brackets it in its 95% interval."""
    config = noisescale.NoiseScaleConfig(Checkpoint(CONFIG), small_batch=2, big_batch=16,
                                         draws=100, big_draws=30, per_example=48)
    values, _ = noisescale.compute(config)
    row = noisescale.noise_scale_frame([record(config, values)]).iloc[0]
    assert row.per_example == 48 and row.b_simple_per_example > 0
    assert row.b_simple_low < row.b_simple_per_example < row.b_simple_high
    assert values["bn_group"] is None and values["checkpoint_test_accuracy"] is None


def test_the_grouping_changes_nothing_without_batch_norm():
    data = load_data("synthetic", train_subset=48, test_subset=20)
    torch.manual_seed(0)
    model = build_model("resnet8", in_channels=1, num_classes=data.num_classes, input_size=28,
                        batch_norm="none").double()
    x, y = data.train_x[:12].double(), data.train_y[:12]
    torch.testing.assert_close(noisescale.mean_gradient(model, x, y, group=3),
                               noisescale.mean_gradient(model, x, y, group=12),
                               rtol=1e-10, atol=1e-12)


def test_batch_norm_running_statistics_do_not_enter_and_are_restored():
    """In train mode BN normalises by batch statistics: random running means and variances
    leave |G_B|^2 unchanged, and the measurement leaves the buffers as it found them."""
    data = load_data("synthetic", train_subset=48, test_subset=20)
    torch.manual_seed(0)
    model = build_model("resnet8", in_channels=1, num_classes=data.num_classes, input_size=28,
                        batch_norm="all")
    x, y = data.train_x, data.train_y

    def norms():
        generator = torch.Generator().manual_seed(5)
        return noisescale.batch_sq_norms(model, x, y, 8, 3, generator, group=8)

    first = norms()
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                buffer.copy_(torch.rand_like(buffer) + 0.5)
    before = {name: b.clone() for name, b in model.named_buffers()}
    assert norms() == first
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, before[name]), name


def test_measurement_is_stored_and_reloaded_not_recomputed(tmp_path, monkeypatch):
    config = noisescale.NoiseScaleConfig(Checkpoint(CONFIG, 1, run_epochs=2), small_batch=2,
                                         big_batch=8, draws=3, big_draws=2, per_example=8)
    first = noisescale.measure(config, tmp_path)
    values = first["values"]
    assert values["checkpoint"] == "epoch 1 of 2"
    assert (values["epochs"], values["run_epochs"], values["steps"]) == (1, 2, 48 // 8)
    assert len(values["small_sq_norms"]) == 3 and len(values["big_sq_norms"]) == 2
    assert len(values["per_example_sq_deviations"]) == 8 and values["grad_sq_norm"] > 0
    assert values["checkpoint_test_accuracies"] == [values["checkpoint_test_accuracy"]]
    path = measurement_path(tmp_path, noisescale.KIND, config)
    assert json.loads(path.read_text())["config_hash"] == path.stem

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a stored measurement")

    monkeypatch.setattr(noisescale, "compute", fail)
    assert noisescale.measure(config, tmp_path) == first
    with pytest.raises(AssertionError, match="recomputed"):  # another config: computed
        noisescale.measure(noisescale.NoiseScaleConfig(config.checkpoint, 2, 8, 4),
                           tmp_path)


BN = CONFIG.replace(batch_norm="all")


@pytest.mark.parametrize("checkpoint, kwargs, match", [
    (CONFIG, dict(small_batch=8, big_batch=8, draws=2), "0 < small_batch < big_batch"),
    (CONFIG, dict(small_batch=0, big_batch=8, draws=2), "0 < small_batch < big_batch"),
    (CONFIG, dict(small_batch=2, big_batch=8, draws=1), "draws and big_draws must be >= 2"),
    (CONFIG, dict(small_batch=2, big_batch=8, draws=4, big_draws=1), "must be >= 2"),
    (CONFIG, dict(small_batch=2, big_batch=8, draws=2, per_example=1), "0 \\(none\\) or >= 2"),
    (BN, dict(small_batch=8, big_batch=16, draws=2, per_example=8), "batch norm"),
    (BN, dict(small_batch=4, big_batch=16, draws=2), "multiples of 8"),
])
def test_bad_configs_are_refused(checkpoint, kwargs, match):
    with pytest.raises(MeasurementError, match=match):
        noisescale.NoiseScaleConfig(Checkpoint(checkpoint), **kwargs)


def test_batches_larger_than_the_data_are_refused():
    config = noisescale.NoiseScaleConfig(Checkpoint(CONFIG), small_batch=8, big_batch=64,
                                         draws=2)
    with pytest.raises(MeasurementError, match="the data have 48"):
        noisescale.compute(config)


def test_smoke_presets_name_valid_configs():
    """The smoke recipe is each study's smoke trial (no stored records needed), with
    per-example gradients only for the network without batch norm."""
    configs = budget.noise_scale_configs(presets.noise_scale("smoke"), "smoke")
    assert {c.checkpoint.config.batch_norm: c.per_example > 0 for c in configs} == \
        {"all": False, "none": True}
    for config in configs:
        assert config.checkpoint.run_epochs == config.checkpoint.config.num_epochs


def test_the_scaled_presets_are_stored():
    """Every scaled measurement is in results/noise-scale/scaled under its hash (a changed
    preset or best eta_tilde would name records that are not stored), and each checkpoint
    is the stored trial's recipe."""
    configs = budget.noise_scale_configs(presets.noise_scale("scaled"), "scaled")
    folder = presets.study_dir("noise-scale", "scaled")
    assert len(configs) == 6
    for config in configs:
        assert load_measurement(folder, noisescale.KIND, config) is not None, config
        study = "resnet-bn" if config.checkpoint.config.batch_norm == "all" else "resnet-nobn"
        assert budget.stored_trial(config.checkpoint.config, study, "scaled") is not None


def test_measurements_along_a_run_are_its_checkpoints_with_per_example_gradients_without_bn():
    settings = presets.noise_scale("scaled")  # epochs 1, 5 and 8 of the run
    with_bn = CONFIG.replace(batch_norm="all", num_epochs=10)
    measured = noisescale.measurements_along(with_bn, settings)
    assert [c.checkpoint.epochs for c in measured] == [1, 5, 8]
    assert {(c.checkpoint.run_epochs, c.per_example, c.small_batch, c.big_batch)
            for c in measured} == {(10, 0, settings.small_batch, settings.big_batch)}
    without = noisescale.measurements_along(CONFIG.replace(num_epochs=10), settings)
    assert {c.per_example for c in without} == {settings.per_example}
    # the estimator theory owns, re-exported where the chapter's analysis reads it
    assert budget.two_batch_noise_scale is noisescale.two_batch_noise_scale


def test_a_recipe_off_the_grid_or_without_records_is_refused():
    with pytest.raises(MeasurementError, match="choose a cell of its grid"):
        budget.recipe("resnet-bn", "smoke", batch_size=4, base_lr=2.0 ** 5)
    with pytest.raises(MeasurementError, match="no stored trials"):
        budget.recipe("resnet-bn", "scaled", batch_size=3)


def test_the_scaled_measurements_are_read_and_set_against_their_stored_trials(monkeypatch):
    """measure_noise_scale reads the six stored records (nothing is measured) and sets each
    checkpoint against the stored trial it reproduces: the difference is the checkpoint's
    test accuracy less the trial's at the same epoch."""
    def fail(*args, **kwargs):
        raise AssertionError("a scaled measurement is not stored")

    monkeypatch.setattr(noisescale, "compute", fail)
    measured = budget.measure_noise_scale("scaled")
    assert len(measured.frame) == 6 and measured.settings == presets.noise_scale("scaled")
    assert (measured.frame["per_example"] > 0).sum() == 3  # without batch norm only
    reproduced = measured.reproduced
    assert len(reproduced) == 6 and set(reproduced["epochs"]) == {1, 5, 8}
    assert np.allclose(reproduced["difference"], reproduced["checkpoint_test_accuracy"]
                       - reproduced["trial_test_accuracy"])
    assert (reproduced["difference"].abs() < 0.2).all()
