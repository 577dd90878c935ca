"""The downloadable tables (smallbatch.analysis.tables) on records with known values and on
the stored study resnet-bn, and results/README.md against the stored records."""

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smallbatch import analysis
from smallbatch.presets import repo_root
from smallbatch.store import save_result
from smallbatch.studies import StudyError, load_study, validate_study
from smallbatch.train import EpochMetrics, TrainConfig, TrainResult, config_hash

RESULTS = repo_root() / "results"

SPEC = """\
name: {name}
base: {{data: synthetic, train_subset: 256, test_subset: 100, num_epochs: 3}}
grid:
  - {{batch_size: [4, 64], base_lr: {{pow2: [-6, -5]}}, seed: [0, 1]}}
"""

MISSING_TRIAL = (64, 2.0 ** -6, 1)   # (m, eta_tilde, seed): no record
DIVERGED_TRIAL = (64, 2.0 ** -5, 0)  # diverged in its third epoch
FAILED_TRIAL = (4, 2.0 ** -5, 1)     # raised: a "failed" record


def _key(config: TrainConfig) -> tuple:
    return (config.batch_size, config.base_lr, config.seed)


def _record(config: TrainConfig) -> TrainResult:
    """A result with values that differ from trial to trial and epoch to epoch."""
    m, lr, seed = _key(config)
    if _key(config) == FAILED_TRIAL:
        return TrainResult(config=config, status="failed", epochs=[], test_accuracy=None,
                           error="RuntimeError: out of memory")
    steps = 256 // m
    finished = 2 if _key(config) == DIVERGED_TRIAL else config.num_epochs
    salt = m / 1000 + seed / 100 - math.log2(lr) / 10000
    epochs = [EpochMetrics(epoch=e, train_loss=1.0 / e + salt, train_accuracy=0.5 + salt,
                           test_loss=2.0 / e + salt, test_accuracy=0.3 + 0.1 * e + salt / 3,
                           lr=m * lr * (0.1 if e == 3 else 1.0),
                           examples_seen=e * steps * m, wall_time=1.5 * e + salt)
              for e in range(1, finished + 1)]
    provenance = {"git_commit": f"commit{seed}", "smallbatch_version": "0.1.0",
                  "torch_version": "2.14.1", "python_version": "3.11.7", "device": "cpu",
                  "device_name": "AMD EPYC", "threads": 1 + seed, "hostname": "vm",
                  "ensemble_size": 2, "ensemble_method": "grouped",
                  "ensemble_examples_per_second": 1000.0 + m}
    if _key(config) == DIVERGED_TRIAL:
        return TrainResult(config=config, status="diverged", epochs=epochs,
                           test_accuracy=None, diverged_epoch=3, diverged_step=2 * steps + 3,
                           num_steps=2 * steps + 3, num_parameters=1234,
                           data_label="Synthetic", wall_time=4.25,
                           examples_per_second=321.0, provenance=provenance)
    return TrainResult(config=config, status="complete", epochs=epochs,
                       test_accuracy=float(np.median([e.test_accuracy for e in epochs])),
                       num_steps=config.num_epochs * steps, num_parameters=1234,
                       data_label="Synthetic", wall_time=5.0 + salt,
                       examples_per_second=123.0 + salt, provenance=provenance)


@pytest.fixture()
def stored(tmp_path, monkeypatch):
    """Study "tabled" (8 trials: 5 complete, 1 diverged, 1 failed, 1 missing) and study
    "empty" (nothing stored), their records under $SMALLBATCH_RESULTS in tmp_path."""
    monkeypatch.setenv("SMALLBATCH_RESULTS", str(tmp_path / "results"))
    for name in ("tabled", "empty"):
        (tmp_path / f"{name}.yaml").write_text(SPEC.format(name=name))
    study = load_study(tmp_path / "tabled.yaml", "scaled")
    results = {}
    for config in study.trials():
        if _key(config) == MISSING_TRIAL:
            continue
        results[config_hash(config)] = _record(config)
        save_result(results[config_hash(config)], study.results_dir)
    # a record of a trial outside the grid is left out
    save_result(_record(study.base.replace(batch_size=8)), study.results_dir)
    return study, results, tmp_path


def _stored_rows(table, results):
    return {h: table.set_index("config_hash").loc[h] for h in results}


def test_the_trials_table_has_one_row_per_grid_trial_with_its_status(stored):
    study, results, _ = stored
    table = analysis.trials_table(study, "scaled")
    grid = validate_study(study)
    assert len(table) == len(grid) == 8
    assert set(table["config_hash"]) == {config_hash(c) for c in grid}
    assert table["status"].value_counts().to_dict() == {"complete": 5, "diverged": 1,
                                                          "failed": 1, "missing": 1}
    fields = ["config_hash", *TrainConfig().to_dict()]
    assert list(table.columns[:len(fields) + 1]) == [*fields, "log2_base_lr"]
    order = list(zip(table["batch_size"], table["base_lr"], table["seed"],
                     table["config_hash"]))
    assert order == sorted(order)
    # the same table from the study's name (a YAML file here) and from its folder
    assert analysis.trials_table(stored[2] / "tabled.yaml").equals(table)
    assert analysis.trials_table(study, results_dir=study.results_dir).equals(table)


def test_the_trials_table_holds_what_each_record_holds(stored):
    study, results, _ = stored
    table = analysis.trials_table(study, "scaled")
    rows = table.set_index("config_hash")
    for key, result in results.items():
        row = rows.loc[key]
        for name, value in result.config.to_dict().items():
            expected = json.dumps(value) if name == "lr_milestones" else value
            assert (pd.isna(row[name]) if value is None else row[name] == expected), name
        assert row["status"] == result.status
        assert row["peak_lr"] == result.config.peak_lr
        assert row["log2_base_lr"] == round(math.log2(result.config.base_lr))
        assert row["num_steps"] == result.num_steps
        assert row["examples_seen"] == result.num_steps * result.config.batch_size
        assert row["wall_time"] == result.wall_time
        assert row["examples_per_second"] == result.examples_per_second
        assert row["epochs_completed"] == len(result.epochs)
        for field in ("git_commit", "threads", "device", "hostname", "ensemble_size",
                      "torch_version"):
            if result.provenance:
                assert row[f"provenance_{field}"] == result.provenance[field]
        if result.status == "complete":
            assert row["headline_test_accuracy"] == result.test_accuracy
        else:  # the record's own value (none), not chance: the status tells
            assert pd.isna(row["headline_test_accuracy"])
        if result.epochs:
            last = result.epochs[-1]
            assert (row["final_test_loss"], row["final_test_accuracy"],
                    row["final_train_loss"], row["final_train_accuracy"]) == (
                last.test_loss, last.test_accuracy, last.train_loss, last.train_accuracy)
        else:
            assert pd.isna(row["final_test_loss"])
    diverged = table[table["status"] == "diverged"].iloc[0]
    assert (diverged["diverged_epoch"], diverged["diverged_step"]) == (3, 2 * 4 + 3)
    failed = table[table["status"] == "failed"].iloc[0]
    assert failed["error"] == "RuntimeError: out of memory"
    missing = table[table["status"] == "missing"].iloc[0]
    assert (missing["batch_size"], missing["base_lr"], missing["seed"]) == MISSING_TRIAL
    assert missing[["headline_test_accuracy", "num_steps", "wall_time",
                    "provenance_git_commit"]].isna().all()
    # complete trials: the headline is the analysis's score, as the figures plot it
    data = analysis.study_data(study)
    score = data.frame.set_index("config_hash")["score"]
    complete = table[table["status"] == "complete"]
    assert complete["headline_test_accuracy"].tolist() == score[complete["config_hash"]].tolist()


def test_the_epochs_table_has_one_row_per_stored_trial_and_epoch(stored):
    study, results, _ = stored
    table = analysis.epochs_table(study, "scaled")
    shown = {h: r for h, r in results.items() if r.status != "failed"}
    assert len(table) == sum(len(r.epochs) for r in shown.values()) == 5 * 3 + 2
    assert set(table["config_hash"]) == set(shown)
    assert list(table.columns) == [
        "config_hash", "batch_size", "base_lr", "log2_base_lr", "seed", "status", "epoch",
        "step", "test_accuracy", "test_loss", "train_loss", "train_accuracy", "lr",
        "examples_seen", "wall_time"]
    for row in table.itertuples():
        result = shown[row.config_hash]
        epoch = result.epochs[row.epoch - 1]
        assert (row.batch_size, row.base_lr, row.seed, row.status) == (
            *_key(result.config), result.status)
        assert row.step * row.batch_size == epoch.examples_seen
        for metric in ("test_accuracy", "test_loss", "train_loss", "train_accuracy", "lr",
                       "examples_seen", "wall_time"):
            assert getattr(row, metric) == getattr(epoch, metric), metric
    order = list(zip(table["batch_size"], table["base_lr"], table["seed"],
                     table["config_hash"], table["epoch"]))
    assert order == sorted(order)


def test_a_study_with_nothing_stored_has_only_missing_trials_and_no_epochs(stored):
    _, _, tmp_path = stored
    table = analysis.trials_table(tmp_path / "empty.yaml")
    assert len(table) == 8 and set(table["status"]) == {analysis.MISSING}
    assert list(table.columns) == list(analysis.trials_table(tmp_path / "tabled.yaml").columns)
    epochs = analysis.epochs_table(tmp_path / "empty.yaml")
    assert epochs.empty and "test_accuracy" in epochs and "step" in epochs


def test_the_epochs_table_names_the_axes_a_study_varies(tmp_path):
    spec = {"name": "ghosts", "base": {"data": "synthetic", "train_subset": 256,
                                       "num_epochs": 1},
            "grid": [{"batch_size": [16], "bn_batch_size": [4, None], "base_lr": [0.01],
                      "seed": [0]}]}
    from smallbatch.studies import Study

    study = Study.from_mapping(spec, "scaled")
    for config in study.trials():
        save_result(TrainResult(config=config, status="complete", epochs=[EpochMetrics(
            1, 1.0, 0.5, 1.0, 0.5, 0.16, 256, 1.0)], test_accuracy=0.5), tmp_path)
    table = analysis.epochs_table(study, results_dir=tmp_path)
    assert list(table.columns[:6]) == ["config_hash", "batch_size", "base_lr", "log2_base_lr",
                                       "seed", "bn_batch_size"]
    assert sorted(table["bn_batch_size"].tolist(), key=pd.isna)[0] == 4
    assert table["bn_batch_size"].isna().sum() == 1


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"config_hash": str})


def _same(written: pd.DataFrame, read: pd.DataFrame) -> None:
    assert list(read.columns) == list(written.columns)
    assert len(read) == len(written)
    for column in written:
        left, right = written[column], read[column]
        assert (left.isna().to_numpy() == right.isna().to_numpy()).all(), column
        known = ~left.isna().to_numpy()
        a = left.to_numpy(dtype=object)[known]
        b = right.to_numpy(dtype=object)[known]
        assert all(x == y for x, y in zip(a, b)), column  # exact, floats included


def test_write_tables_round_trips_through_read_csv(stored):
    study, _, tmp_path = stored
    folder = tmp_path / "data"
    paths = analysis.write_tables([tmp_path / "tabled.yaml", tmp_path / "empty.yaml"],
                                  "scaled", folder)
    assert [p.name for p in paths] == ["tabled-scaled-trials.csv", "tabled-scaled-epochs.csv"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in paths)  # no temp
    assert all(p.stat().st_mode & 0o444 == 0o444 for p in paths)  # a web page's files
    text = paths[0].read_bytes().decode("utf-8")
    assert text.startswith("config_hash,data,model,") and "\r" not in text
    _same(analysis.trials_table(study), _read(paths[0]))
    _same(analysis.epochs_table(study), _read(paths[1]))
    # a study with nothing stored writes nothing, and neither does a scale with nothing
    assert analysis.write_tables([tmp_path / "empty.yaml"], "scaled", folder) == []
    assert analysis.write_tables([tmp_path / "tabled.yaml"], "smoke", tmp_path / "s") == []
    assert not (tmp_path / "s").exists()


def test_downloads_html_links_exactly_the_files_written(stored):
    study, _, tmp_path = stored
    studies = [tmp_path / "tabled.yaml", tmp_path / "empty.yaml"]
    written = analysis.write_tables(studies, "scaled", tmp_path / "data")
    snippet = analysis.downloads_html(studies, "scaled")
    links = re.findall(r'<a href="([^"]+)" download>', snippet)
    assert links == [f"../data/{p.name}" for p in written]
    assert "tabled" in snippet and "6 of 8 trials stored" in snippet  # failed = not stored
    assert "empty" not in snippet and "style=" not in snippet
    other = analysis.downloads_html(studies, "scaled", base="files/")
    assert re.findall(r'href="([^"]+)"', other) == [f"files/{p.name}" for p in written]
    assert analysis.downloads_html([tmp_path / "empty.yaml"], "scaled") == ""
    assert analysis.downloads_html(studies, "smoke") == ""


def test_nothing_is_stored_at_smoke_so_no_links(tmp_path, monkeypatch):
    monkeypatch.setenv("SMALLBATCH_RESULTS", str(tmp_path))
    assert analysis.downloads_html(analysis.PUBLISHED_STUDIES, "smoke") == ""
    assert analysis.write_tables(analysis.PUBLISHED_STUDIES, "smoke", tmp_path / "d") == []


def test_names_and_errors():
    assert analysis.table_file_name("resnet-bn", "scaled", "trials") == \
        "resnet-bn-scaled-trials.csv"
    assert analysis.table_file_name("resnet-bn", "full", "epochs") == \
        "resnet-bn-full-epochs.csv"
    assert analysis.TABLE_KINDS == ("trials", "epochs")
    with pytest.raises(ValueError, match="unknown table kind 'cells'.*trials, epochs"):
        analysis.table_file_name("resnet-bn", "scaled", "cells")
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        analysis.table_file_name("resnet-bn", "huge", "trials")
    with pytest.raises(ValueError, match="cannot name a file"):
        analysis.table_file_name("a/b", "scaled", "trials")
    with pytest.raises(StudyError, match="unknown study 'nope'"):
        analysis.trials_table("nope")
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        analysis.epochs_table("resnet-bn", "huge")
    with pytest.raises(StudyError, match="unknown study 'nope'"):
        analysis.write_tables(["nope"], "scaled", "/nonexistent")
    with pytest.raises(ValueError, match="not 'scaled'"):
        analysis.trials_table(load_study("resnet-bn", "smoke"), "scaled")


# the stored study resnet-bn ----------------------------------------------------------------

@pytest.fixture()
def published(monkeypatch):
    monkeypatch.delenv("SMALLBATCH_RESULTS", raising=False)


def test_the_stored_study_agrees_with_the_analysis(published):
    data = analysis.study_data("resnet-bn", "scaled")
    if not data.results:
        pytest.skip("no stored trial of resnet-bn at scaled")
    table = analysis.trials_table("resnet-bn", "scaled")
    assert len(table) == data.total == len(validate_study(load_study("resnet-bn", "scaled")))
    stored = table[table["status"] != "missing"].set_index("config_hash")
    frame = data.frame.set_index("config_hash")
    assert sorted(stored.index) == sorted(frame.index)
    frame = frame.loc[stored.index]
    complete = (frame["status"] == "complete").to_numpy()
    # the CSV's headline is the score the figures plot, for every complete trial
    assert (stored["headline_test_accuracy"].to_numpy()[complete]
            == frame["score"].to_numpy()[complete]).all()
    # a diverged trial: no headline in the CSV, chance in the figures, the status says so
    assert stored["headline_test_accuracy"][~complete].isna().all()
    assert (frame["score"][~complete] == 1 / data.num_classes).all()
    assert (stored["status"] == frame["status"]).all()
    assert (stored["log2_base_lr"] == frame["log2_base_lr"]).all()
    assert (stored["busy_time"] == frame["busy_time"]).all()
    epochs = analysis.epochs_table("resnet-bn", "scaled")
    assert len(epochs) == sum(len(r.epochs) for r in data.results)


# results/README.md against the records -----------------------------------------------------

def _documented() -> set[str]:
    return set(re.findall(r"`([^`\n]+)`", (RESULTS / "README.md").read_text()))


def _records() -> tuple[list[dict], list[dict]]:
    """The stored trial records (published studies and the quickstart) and measurements."""
    trials, measurements = [], []
    for path in sorted(RESULTS.glob("*/*/*.json")):
        record = json.loads(path.read_text())
        (measurements if "kind" in record else trials).append(record)
    return trials, measurements


def test_the_results_readme_documents_every_field_of_the_records():
    trials, measurements = _records()
    if not trials:
        pytest.skip("no stored records")
    documented = _documented()
    parts = {"top level": set(), "config": set(), "provenance": set(), "epochs": set()}
    for record in trials:
        parts["top level"] |= set(record)
        parts["config"] |= set(record["config"])
        parts["provenance"] |= set(record["provenance"])
        for epoch in record["epochs"]:
            parts["epochs"] |= set(epoch)
    for record in measurements:
        parts["top level"] |= set(record)
        parts["provenance"] |= set(record["provenance"])
    for part, keys in parts.items():
        assert not keys - documented, f"{part} fields missing from results/README.md"
    assert {"complete", "diverged", "failed"} <= documented  # the status values
    # and every TrainConfig field, whether or not a record shows it yet
    assert not set(TrainConfig().to_dict()) - documented


def test_the_results_readme_hash_recipes_give_the_file_names():
    """The README's plain-JSON recipes reproduce every stored record's file name."""
    for path in sorted(RESULTS.glob("*/*/*.json")):
        record = json.loads(path.read_text())
        if "kind" in record:
            text = json.dumps({"kind": record["kind"], "config": record["config"]},
                              sort_keys=True)
        else:
            text = json.dumps(record["config"], sort_keys=True, separators=(",", ":"))
        assert hashlib.sha256(text.encode()).hexdigest()[:16] == record["config_hash"] \
            == path.stem, path
