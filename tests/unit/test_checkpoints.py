"""Checkpoints part-way through a longer run (book: the theory chapters): the rescaled
schedule puts every decay on the long run's step, the model after k epochs is the long
run's after k epochs, and records of checkpoints without ``run_epochs`` keep their hashes."""

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from smallbatch import presets
from smallbatch.store import MeasurementError, load_measurement, measurement_hash
from smallbatch.theory import gradnoise, staleness
from smallbatch.theory.checkpoints import (Checkpoint, check_schedule, log2_label, model_at,
                                           protocol_table, records_table, theory_checkpoints)
from smallbatch.train import TrainConfig, train

# 32 examples at m = 8: 4 steps per epoch; over 4 epochs the decays fall at steps 8 and 12,
# the first steps of epochs 3 and 4: the first decay is inside a 3-epoch checkpoint.
TINY = TrainConfig(data="synthetic", model="resnet8", batch_norm="all", train_subset=32,
                   test_subset=20, batch_size=8, base_lr=2.0 ** -6, seed=1,
                   lr_milestones=(0.5, 0.75))


def test_checkpoint_is_the_long_run_after_k_epochs():
    """Every per-epoch metric of Checkpoint(cfg, 3, run_epochs=4) equals the first 3 epochs
    of the 4-epoch run (same machine, same seed: bit for bit). A 2-epoch run with the
    milestones unscaled (decays at steps 4 and 6) does not: the check would pass if the
    schedule did not matter to it."""
    long = train(TINY.replace(num_epochs=4), progress=False, channels_last=False)
    _, _, _, part = model_at(Checkpoint(TINY, 3, run_epochs=4))
    _, _, _, naive = model_at(Checkpoint(TINY, 2))

    def metrics(result):
        return [{k: v for k, v in dataclasses.asdict(e).items() if k != "wall_time"}
                for e in result.epochs[:3]]

    # the LR of each epoch's last step: the first decay falls in epoch 3
    assert [e["lr"] for e in metrics(long)] == pytest.approx([2 ** -3, 2 ** -3, 2 ** -3 / 10])
    assert metrics(part) == metrics(long)
    assert metrics(naive)[1] != metrics(long)[1]


def test_rescaled_milestones_for_the_scaled_checkpoints():
    """Epochs 1, 5 and 8 of 10 with decays at 50% and 75%: none, none (the first decay is
    the step after epoch 5), and both at 5/8 and 15/16 of 8 epochs; every step's LR is the
    long run's at the scaled study's 256 steps per epoch and at other epoch lengths."""
    config = TrainConfig(lr_milestones=(0.5, 0.75), num_epochs=10)
    expected = {1: (), 5: (), 8: (0.625, 0.9375)}
    for epochs, milestones in expected.items():
        checkpoint = Checkpoint(config, epochs, run_epochs=10)
        assert checkpoint.trained_config.lr_milestones == milestones
        assert checkpoint.trained_config.num_epochs == epochs
        for steps_per_epoch in (1, 3, 7, 256):
            check_schedule(checkpoint, steps_per_epoch)


def test_a_rescaled_milestone_off_the_long_runs_step_is_an_error():
    """0.1 of 5 epochs of 5 steps is step 2.5, rounded to 2; rescaled to 3 epochs it is
    0.1 * 5/3 * 15 = 2.5000000000000004, rounded to 3: refused, not trained."""
    checkpoint = Checkpoint(TrainConfig(lr_milestones=(0.1,)), 3, run_epochs=5)
    with pytest.raises(MeasurementError, match="does not put its decays"):
        check_schedule(checkpoint, 5)


def test_run_epochs_is_checked_labelled_and_stored():
    with pytest.raises(MeasurementError, match="run_epochs >= 5"):
        Checkpoint(TINY, 5, run_epochs=4)
    checkpoint = Checkpoint(TINY, 5, run_epochs=10)
    assert checkpoint.label == "epoch 5 of 10"
    assert Checkpoint(TINY, 5).label == "after 5 epochs"
    assert Checkpoint.from_dict(checkpoint.to_dict()) == checkpoint
    assert Checkpoint.from_dict(json.loads(json.dumps(checkpoint.to_dict()))) == checkpoint
    assert "run_epochs" not in Checkpoint(TINY, 5).to_dict()
    assert Checkpoint(TINY, 5).to_dict() == {"config": TINY.to_dict(), "epochs": 5}


@pytest.mark.parametrize("kind, cls", [(gradnoise.KIND, gradnoise.GradientNoiseConfig),
                                       (staleness.KIND, staleness.StaleGradientConfig)])
def test_stored_records_still_load_by_hash(kind, cls):
    """The committed records of checkpoints without run_epochs: their configs, rebuilt
    through Checkpoint.from_dict, hash to their file names and load."""
    folder = presets.study_dir(kind, "scaled")
    paths = sorted(Path(folder).glob("*.json"))
    assert paths, f"no stored {kind} records in {folder}"
    for path in paths:
        values = json.loads(path.read_text())["config"]
        config = cls(checkpoint=Checkpoint.from_dict(values.pop("checkpoint")),
                     **{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
        assert measurement_hash(kind, config) == path.stem
        assert load_measurement(folder, kind, config) is not None


# ------------------------------------------ where the checkpoints live, and the two tables

def test_presets_import_nothing_above_the_core():
    """presets is core: it names sizes and imports no theory, analysis, studies or figures
    (the theory chapters' checkpoints live in theory.checkpoints)."""
    tree = ast.parse((Path(presets.__file__)).read_text())
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names]
    upward = [name for name in imported
              if any(part in name.split(".") for part in UPPER_LAYERS)]
    assert not upward, f"presets imports upward: {upward}"
    assert not hasattr(presets, "theory_checkpoints")


UPPER_LAYERS = ("theory", "analysis", "studies", "figures", "live")


def test_theory_checkpoints_at_each_scale():
    smoke, scaled = theory_checkpoints("smoke"), theory_checkpoints("scaled")
    assert [c.epochs for c in smoke] == [0, 1] and [c.epochs for c in scaled] == [0, 1, 5]
    assert smoke[0].config.data == "synthetic" and scaled[0].config.data == "fashion-mnist"
    assert {c.config.batch_norm for c in smoke + scaled} == {"none"}
    assert theory_checkpoints("full") == scaled
    with pytest.raises(ValueError, match="unknown scale"):
        theory_checkpoints("huge")


def test_log2_label():
    assert log2_label(2.0 ** -10) == "2^-10"
    assert log2_label(1.0) == "2^0"
    assert log2_label(2.0 ** -9.5) == "2^-9.5"
    with pytest.raises(ValueError, match="positive"):
        log2_label(0.0)


def test_protocol_table_rows_in_order():
    checkpoints = theory_checkpoints("scaled")
    results = presets.study_dir("gradient-noise", "scaled")
    table = protocol_table(checkpoints, {"draws": 64, "m": "1, 2"}, results, name="a test")
    column = table["a test"]
    assert list(column.index) == ["network", "data", "checkpoints",
                                  "training to the checkpoints", "draws", "m", "stored in"]
    assert column["network"] == "resnet8, batch norm: none"
    assert column["data"] == "fashion-mnist (all training images)"
    assert column["checkpoints"] == "initialisation, after 1 epoch, after 5 epochs"
    assert column["training to the checkpoints"] == \
        "plain SGD, m = 32, eta_tilde = 2^-10, constant LR"
    assert column["draws"] == 64
    assert column["stored in"] == "results/gradient-noise/scaled"
    smoke = protocol_table(theory_checkpoints("smoke"), {}, None, name="smoke")["smoke"]
    assert smoke["data"] == "synthetic (512 training images)"
    assert smoke["stored in"] == "(smoke: not stored)"
    decayed = [Checkpoint(TINY, 2, run_epochs=4)]
    assert protocol_table(decayed, {}, None, name="x")["x"][
        "training to the checkpoints"].endswith("LR x 0.1 at 50%, 75% of the steps")
    with pytest.raises(ValueError, match="share one network"):
        protocol_table([checkpoints[0], smoke_checkpoint()], {}, None, name="mixed")
    with pytest.raises(ValueError, match="at least one"):
        protocol_table([], {}, None, name="none")


def smoke_checkpoint():
    return theory_checkpoints("smoke")[0]


def _record(label, commit, minutes):
    return {"values": {"checkpoint": label}, "config_hash": f"hash-{label}",
            "provenance": {"git_commit": commit, "device_name": "cpu"},
            "wall_time": 60 * minutes}


def test_records_table_one_row_per_record():
    records = [_record("initialisation", "0123456789abcdef", 1.25), _record("later", None, 3)]
    styled = records_table(records, {"accuracy": [None, 0.5]}, formats={"accuracy": "{:.2f}"},
                           na_rep="(none)")
    table = styled.data
    assert list(table.columns) == ["accuracy", "record", "commit", "device", "minutes"]
    assert table.loc["initialisation", "commit"] == "0123456789ab"
    assert table.loc["later", "commit"] == "?"
    assert table["minutes"].tolist() == [1.25, 3.0]
    html = styled.to_html()
    assert "(none)" in html and "0.50" in html and "1.2" in html
    with pytest.raises(ValueError, match="1 values for 2 records"):
        records_table(records, {"accuracy": [0.5]})
