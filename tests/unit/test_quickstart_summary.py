"""The quickstart's run summary and title (smallbatch.figures.quickstart) on a run with
known settings."""

from smallbatch import figures, presets
from smallbatch.train import TrainResult


def _run(config):
    return TrainResult(config=config, status="complete", epochs=[], test_accuracy=0.9012,
                       num_parameters=75002, data_label="Fashion-MNIST", wall_time=612.4,
                       examples_per_second=9876.6,
                       provenance={"device": "cpu", "threads": 2, "git_commit": "abc123"})


def test_the_run_summary_states_the_runs_settings():
    result = _run(presets.quickstart("scaled"))
    table = figures.run_summary(result)
    assert list(table.columns) == ["quickstart run"]
    column = table["quickstart run"]
    # m = 32, eta_tilde = 2^-8, eta = m eta_tilde = 0.125
    assert column["m, eta_tilde, eta"] == "32, 2^-8, 0.125"
    assert column["model"] == "resnet8 (75,002 parameters)"
    assert column["median test accuracy, last 5 epochs"] == 0.9012
    assert column["wall time (s), training examples per second"] == "612, 9,877"
    assert column["device, threads"] == "cpu, 2" and column["code commit"] == "abc123"
    assert figures.run_title(result) == "Fashion-MNIST, resnet8, m = 32, η̃ = 2^-8 (η = 0.125)"
    # another m and eta_tilde: eta = 128 * 2^-10 = 0.125 again, the title says which
    other = _run(presets.quickstart("scaled").replace(batch_size=128, base_lr=2.0 ** -10))
    assert figures.run_summary(other, name="x")["x"]["m, eta_tilde, eta"] == "128, 2^-10, 0.125"
    assert "m = 128, η̃ = 2^-10" in figures.run_title(other)
