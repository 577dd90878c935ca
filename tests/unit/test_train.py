"""The single-run trainer: the update rule, the schedule, divergence, determinism, bad input."""

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from smallbatch.data import load_data
from smallbatch.models import build_model
from smallbatch.store import RecordError, load_result, save_result
from smallbatch.studies import train_or_load
from smallbatch.train import (ConfigError, TrainConfig, TrainResult, config_hash,
                              learning_rate, lr_at_step, make_optimizer, sgd_step, train,
                              warmup_steps)

SMOKE = TrainConfig(data="synthetic", model="resnet8", batch_size=32, base_lr=2.0**-8,
                    num_epochs=2, train_subset=512, test_subset=200)


@pytest.fixture(scope="module")
def synthetic():
    return load_data("synthetic", train_subset=512, test_subset=200)


# the update rule ----------------------------------------------------------------------------

@pytest.mark.parametrize("batch_norm", ["none", "all"])
@pytest.mark.parametrize("weight_decay,scaling", [(0.0, "per_example"), (1e-2, "per_example"),
                                                  (1e-2, "per_step")])
def test_mean_loss_step_equals_sum_form_update(batch_norm, weight_decay, scaling):
    """lr = m * eta_tilde on the mean loss == theta - eta_tilde * sum_i grad(L_i + reg)."""
    m, eta_tilde = 8, 2.0**-5
    config = TrainConfig(batch_size=m, base_lr=eta_tilde, batch_norm=batch_norm,
                         weight_decay=weight_decay, weight_decay_scaling=scaling)
    torch.manual_seed(0)
    model = build_model("resnet8", in_channels=1, num_classes=10, batch_norm=batch_norm)
    reference = build_model("resnet8", in_channels=1, num_classes=10, batch_norm=batch_norm)
    reference.load_state_dict(model.state_dict())
    x, y = torch.randn(m, 1, 28, 28), torch.randint(0, 10, (m,))

    sgd_step(model, make_optimizer(model, config), x, y, config.peak_lr)

    # the paper's sum form, by autograd: per-example losses summed, no 1/m anywhere
    params = list(reference.parameters())
    summed = F.cross_entropy(reference(x), y, reduction="sum")
    # per_example: lambda/2 |theta|^2 in each of the m example losses; per_step: once
    copies = m if scaling == "per_example" else 1
    summed = summed + copies * weight_decay / 2 * sum((p ** 2).sum() for p in params)
    grads = torch.autograd.grad(summed, params)
    with torch.no_grad():
        expected = [p - eta_tilde * g for p, g in zip(params, grads)]
    for got, want in zip(model.parameters(), expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_learning_rate_rules():
    assert learning_rate(2.0**-8, 64, "linear") == 0.25
    assert learning_rate(2.0**-8, 64, "sqrt", reference_batch_size=16) == pytest.approx(
        16 * 2.0**-8 * 2)
    assert learning_rate(2.0**-8, 64, "none", reference_batch_size=16) == 16 * 2.0**-8
    for rule in ("linear", "sqrt", "none"):  # all agree at the reference batch size
        assert learning_rate(0.01, 16, rule, 16) == pytest.approx(0.16)
    with pytest.raises(ConfigError, match="linear, sqrt, none"):
        learning_rate(0.01, 16, "cubic")


# the schedule ------------------------------------------------------------------------------

def test_step_schedule_divides_by_ten_at_half_and_three_quarters():
    total, peak = 200, 0.5
    values = {s: lr_at_step(s, total, peak) for s in (0, 99, 100, 149, 150, 199)}
    assert values == {0: 0.5, 99: 0.5, 100: pytest.approx(0.05), 149: pytest.approx(0.05),
                      150: pytest.approx(0.005), 199: pytest.approx(0.005)}


def test_warmup_rises_linearly_from_a_32nd():
    total, peak = 200, 0.64  # 5% of 200 = 10 warm-up steps
    lr = [lr_at_step(s, total, peak, warmup=True) for s in range(12)]
    assert lr[0] == pytest.approx(0.02)
    assert lr[5] == pytest.approx(0.02 + (0.64 - 0.02) * 5 / 10)
    assert lr[10] == lr[11] == 0.64
    assert all(b > a for a, b in zip(lr[:10], lr[1:11]))
    assert lr_at_step(120, total, peak, warmup=True) == pytest.approx(0.064)
    assert warmup_steps(200) == 10 and warmup_steps(80) == 4 and warmup_steps(81) == 5


def test_training_applies_the_schedule(synthetic):
    result = train(SMOKE.replace(num_epochs=4), data=synthetic, progress=False)
    lrs = [e.lr for e in result.epochs]  # LR of each epoch's last step: 16 steps an epoch
    peak = SMOKE.peak_lr
    assert lrs == pytest.approx([peak, peak, peak * 0.1, peak * 0.01])  # decays at steps 32, 48
    assert result.num_steps == 4 * (512 // 32)
    assert result.epochs[-1].examples_seen == 4 * 512


# results ------------------------------------------------------------------------------------

def test_run_learns_and_reports_the_paper_metric():
    config = SMOKE.replace(train_subset=1024, base_lr=2.0**-6, num_epochs=6)
    result = train(config, progress=False)
    assert result.status == "complete"
    accuracies = [e.test_accuracy for e in result.epochs]
    assert result.test_accuracy == sorted(accuracies[-5:])[2]  # median of the last five
    assert result.test_accuracy > 0.5  # 10 classes: chance is 0.1
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss
    assert result.data_label.startswith("Synthetic")


def test_same_seed_identical_metrics_other_seed_differs(synthetic):
    def metrics(result):
        return [(e.train_loss, e.test_loss, e.test_accuracy) for e in result.epochs]

    first = train(SMOKE, data=synthetic, progress=False)
    second = train(SMOKE, data=synthetic, progress=False)
    other = train(SMOKE.replace(seed=1), data=synthetic, progress=False)
    assert metrics(first) == metrics(second)
    assert metrics(first) != metrics(other)


def test_divergence_is_recorded_not_raised(synthetic):
    config = SMOKE.replace(batch_norm="none", base_lr=2.0**2)  # eta = 128
    result = train(config, data=synthetic, progress=False)
    assert result.status == "diverged"
    assert result.diverged_epoch == 1
    assert 1 <= result.diverged_step <= 512 // 32
    assert result.test_accuracy is None
    assert result.epochs == []
    json.dumps(result.to_dict())  # a diverged run is a storable result


def test_divergence_threshold_catches_an_explosion_without_nans(synthetic):
    # a threshold below any real loss: the first check declares the run diverged
    result = train(SMOKE.replace(divergence_loss=1e-9), data=synthetic, progress=False,
                   check_every=3)
    assert result.status == "diverged" and result.diverged_step == 3


def test_result_store_roundtrip(tmp_path, synthetic):
    result = train(SMOKE.replace(num_epochs=1), data=synthetic, progress=False)
    path = save_result(result, tmp_path)
    assert path.name == f"{config_hash(result.config)}.json"
    loaded = load_result(result.config, tmp_path)
    assert loaded == result
    assert load_result(result.config.replace(seed=5), tmp_path) is None
    # train_or_load serves the stored record instead of training again
    assert train_or_load(result.config, tmp_path, data=synthetic) == result
    path.write_text("{not json")
    with pytest.raises(RecordError, match=path.name):
        load_result(result.config, tmp_path)


def test_stored_only_serves_stored_runs_and_refuses_to_train_missing_ones(tmp_path, synthetic,
                                                                         monkeypatch):
    from smallbatch.store import measure_or_load
    from smallbatch.store import STORED_ONLY_ENV, NotStoredError

    result = train(SMOKE.replace(num_epochs=1), data=synthetic, progress=False)
    save_result(result, tmp_path)
    monkeypatch.setenv(STORED_ONLY_ENV, "1")
    assert train_or_load(result.config, tmp_path, data=synthetic) == result
    missing = result.config.replace(seed=7)
    with pytest.raises(NotStoredError, match=f"{config_hash(missing)}.*--compute-missing"):
        train_or_load(missing, tmp_path, data=synthetic)
    assert load_result(missing, tmp_path) is None  # nothing trained, nothing stored

    @dataclasses.dataclass(frozen=True)
    class Probe:
        a: int = 1

    def compute():
        raise AssertionError("computed although stored-only")
    with pytest.raises(NotStoredError, match="measurement probe"):
        measure_or_load("probe", Probe(), compute, tmp_path)
    # smoke (no results folder) computes whatever the setting; "0" lifts it
    cpu = torch.device("cpu")
    assert measure_or_load("probe", Probe(), lambda: ({"v": 1}, cpu), None)["values"] == {"v": 1}
    monkeypatch.setenv(STORED_ONLY_ENV, "0")
    assert measure_or_load("probe", Probe(), lambda: ({"v": 2}, cpu),
                           tmp_path)["values"] == {"v": 2}


def test_result_history_frame(synthetic):
    result = train(SMOKE.replace(num_epochs=1), data=synthetic, progress=False)
    frame = result.history()
    assert list(frame["epoch"]) == [1]
    assert {"train_loss", "test_loss", "test_accuracy", "config_hash"} <= set(frame.columns)
    assert TrainResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_config_hash_changes_with_any_field():
    assert config_hash(SMOKE) == config_hash(SMOKE.replace())
    assert config_hash(SMOKE) != config_hash(SMOKE.replace(base_lr=2.0**-7))
    assert config_hash(SMOKE) != config_hash(SMOKE.replace(warmup=True))


# bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("changes,message", [
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
    (dict(batch_size=1024), "batch_size=1024 is larger than the training set \\(512 examples\\)"),
    (dict(base_lr=0.0), "base_lr must be a finite number > 0"),
    (dict(base_lr=-1.0), "base_lr must be a finite number > 0"),
    (dict(model="vgg16"), "unknown model 'vgg16'; choose one of: alexnet, resnet8"),
    (dict(data="mnist"), "unknown data set 'mnist'; choose one of: fashion-mnist"),
    (dict(bn_batch_size=5), "bn_batch_size=5 does not divide batch_size=32"),
    (dict(batch_norm="conv"), "batch_norm='conv' is not available for resnet8"),
    (dict(lr_scaling="cubic"), "unknown lr_scaling 'cubic'; choose one of: linear, sqrt, none"),
    (dict(num_epochs=0), "num_epochs must be an integer >= 1"),
])
def test_bad_input_is_rejected_with_what_is_allowed(changes, message, synthetic):
    with pytest.raises(ConfigError, match=message):
        train(SMOKE.replace(**changes), data=synthetic, progress=False)


def test_unknown_device_message():
    with pytest.raises(ConfigError, match="device"):
        train(SMOKE, device="tpu", progress=False)


def test_measurement_header_names_the_machine_and_takes_the_commit_from_the_environment(
        monkeypatch):
    from smallbatch.provenance import git_commit, measurement_header

    monkeypatch.delenv("SMALLBATCH_COMMIT", raising=False)
    header = measurement_header("cpu")
    assert header["device"] == "cpu" and header["device_name"]
    assert header["threads"] == torch.get_num_threads()
    assert header["torch"] == torch.__version__
    assert header["commit"] == git_commit()
    monkeypatch.setenv("SMALLBATCH_COMMIT", "0123abc")
    assert measurement_header("cpu")["commit"] == "0123abc"


def test_a_cpu_run_records_the_kind_of_cpu_its_rounding_depends_on(monkeypatch, tmp_path):
    from smallbatch import provenance

    record = provenance.run_provenance("cpu")
    assert record["cpu_id"] == provenance.cpu_id()
    assert record["cpu_id"].endswith(torch.backends.cpu.get_cpu_capability())
    # two hosts that share a model name but not a model are told apart
    info = tmp_path / "cpuinfo"
    real_read = provenance.Path.read_text
    ids = []
    for model in ("17", "1"):
        info.write_text(f"vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: {model}\n"
                        f"model name\t: AMD EPYC\nstepping\t: 1\n")
        monkeypatch.setattr(provenance.Path, "read_text",
                            lambda self, *a, **k: real_read(info) if str(self) == "/proc/cpuinfo"
                            else real_read(self, *a, **k))
        ids.append(provenance.cpu_id())
        provenance.cpu_name.cache_clear()  # cached from the real /proc/cpuinfo above
        try:
            assert provenance.cpu_name() == "AMD EPYC"
        finally:
            provenance.cpu_name.cache_clear()  # later tests read this machine's again
    assert ids[0].startswith("AuthenticAMD 25/17/1 ") and ids[0] != ids[1]


def test_write_measurement_writes_the_record_and_its_table(tmp_path):
    import json

    from smallbatch.provenance import write_measurement

    path = write_measurement(tmp_path / "new", "bench_cpu", {"rate": 1.5}, ["# t", "| a |"])
    assert json.loads(path.read_text()) == {"rate": 1.5}
    assert (tmp_path / "new" / "bench_cpu.md").read_text() == "# t\n| a |\n"
