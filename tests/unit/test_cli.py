"""The command line: `smallbatch train` prints a result as JSON and rejects bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from smallbatch.cli import main
from smallbatch.studies import parse_number


def test_parse_number_accepts_powers_of_two():
    assert parse_number("2^-8") == 2.0**-8
    assert parse_number("2**-3") == 0.125
    assert parse_number("0.01") == 0.01


def test_train_json(capsys):
    code = main(["train", "--data", "synthetic", "--train-subset", "256", "--test-subset",
                 "100", "--num-epochs", "1", "--batch-size", "16", "--base-lr", "2^-7",
                 "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "complete"
    assert result["config"]["base_lr"] == 2.0**-7
    assert result["config"]["batch_size"] == 16
    assert len(result["epochs"]) == 1
    assert result["num_steps"] == 256 // 16


def test_train_stores_result(tmp_path, capsys):
    code = main(["train", "--data", "synthetic", "--train-subset", "128", "--test-subset",
                 "50", "--num-epochs", "1", "--quiet", "--results", str(tmp_path)])
    assert code == 0
    assert "median test accuracy of the last 5 epochs" in capsys.readouterr().out
    assert len(list(tmp_path.glob("*.json"))) == 1


@pytest.mark.parametrize("args,message", [
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--base-lr", "-1"], "base_lr must be a finite number > 0"),
    (["--model", "vgg"], "unknown model 'vgg'"),
    (["--bn-batch-size", "3"], "bn_batch_size=3 does not divide batch_size=32"),
])
def test_train_bad_input_exit_code_and_message(args, message, capsys):
    code = main(["train", "--data", "synthetic", "--train-subset", "128", *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "smallbatch"
    assert script.exists(), "pip install -e . should put the smallbatch script beside python"
    out = subprocess.run([str(script), "train", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "--base-lr" in out and "--bn-batch-size" in out and "--json" in out


def test_sweep_dry_run_with_calibration_and_results_summary(tmp_path, capsys):
    assert main(["sweep", "smoke", "--scale", "smoke", "--dry-run", "--calibrate",
                 "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "12 trials in" in out and "12 missing" in out
    assert "6,144 training examples, about" in out and "calibrated now" in out
    assert not list(tmp_path.glob("*.json"))  # a dry run trains nothing
    assert main(["sweep", "smoke", "--scale", "smoke", "--dry-run", "--results",
                 str(tmp_path)]) == 0  # no stored runs, no calibration: no rate to use
    assert "time unknown: no stored run at m = 8, 32 to take a rate from" in \
        capsys.readouterr().out
    assert main(["sweep", "smoke", "--scale", "smoke", "--quiet",
                 "--results", str(tmp_path)]) == 0
    assert "12 trials" in capsys.readouterr().out
    assert main(["sweep", "smoke", "--scale", "smoke", "--dry-run", "--results",
                 str(tmp_path)]) == 0
    assert "nothing to train: all 12 trials are stored" in capsys.readouterr().out
    assert main(["results", "smoke", "--scale", "smoke", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "12 records" in out and "median test accuracy over seeds" in out


def test_sweep_unknown_study_exit_code(capsys):
    assert main(["sweep", "no-such-study"]) == 2
    assert "unknown study 'no-such-study'" in capsys.readouterr().err


def test_sweep_max_step_examples_sizes_the_ensembles(tmp_path, capsys):
    args = ["sweep", "smoke", "--scale", "smoke", "--dry-run", "--results", str(tmp_path)]
    assert main(args) == 0
    assert "12 trials in 6 lock-step ensembles" in capsys.readouterr().out
    assert main(args + ["--max-step-examples", "1"]) == 0  # every trial alone
    assert "12 trials in 12 lock-step ensembles" in capsys.readouterr().out
    assert main(args + ["--max-step-examples", "0"]) == 2
    assert "--max-step-examples must be at least 1" in capsys.readouterr().err
