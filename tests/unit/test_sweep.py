"""Studies and sweeps: expansion, bad input before training, the store, resume, executors."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from smallbatch.store import (RecordError, epochs_frame, load_records, save_result,
                                trials_frame)
from smallbatch.studies import (Study, StudyError, dry_run, ensemble_groups, load_study,
                              run_study, seed_major, study_names)
from smallbatch.train import TrainResult, config_hash

SMOKE = {
    "name": "tiny",
    "base": {"data": "synthetic", "model": "resnet8", "train_subset": 128,
             "test_subset": 50, "num_epochs": 1},
    "grid": {"batch_size": [8, 32], "base_lr": {"pow2": [-8, -7]}, "seed": [0]},
}


def tiny(**changes) -> Study:
    spec = json.loads(json.dumps(SMOKE))
    for key, value in changes.items():
        spec[key] = value
    return Study.from_mapping(spec, "smoke")


def metrics(result: TrainResult):
    return [(e.train_loss, e.test_loss, e.test_accuracy) for e in result.epochs]


# studies ------------------------------------------------------------------------------------

def test_study_expands_the_grid_with_pow2_axes_and_scale_overrides():
    study = tiny(scales={"smoke": {"grid": {"seed": [0, 1]}, "base": {"num_epochs": 2}}})
    trials = study.trials()
    assert len(trials) == 2 * 2 * 2
    assert sorted({t.base_lr for t in trials}) == [2.0**-8, 2.0**-7]
    assert {t.num_epochs for t in trials} == {2}
    assert len({config_hash(t) for t in trials}) == 8
    assert study.results_dir.parts[-2:] == ("tiny", "smoke")


def test_named_study_and_yaml_file(tmp_path):
    assert "smoke" in study_names()
    study = load_study("smoke", "smoke")
    assert study.base.data == "synthetic" and len(study.trials()) == 12
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nbase: {data: synthetic, train_subset: 64}\n"
                    "grid: {batch_size: [4], base_lr: [2^-8, '0.01']}\n")
    assert [t.base_lr for t in load_study(path, "smoke").trials()] == [2.0**-8, 0.01]


@pytest.mark.parametrize("change,message", [
    (dict(grid={}), "empty grid"),
    (dict(grid={"batch_size": []}), "empty grid.*batch_size"),
    (dict(grid={"batch_sise": [2]}), "unknown TrainConfig field 'batch_sise'"),
    (dict(grid={"batch_size": [256]}), "batch_size=256 is larger than the training set"),
    (dict(base={**SMOKE["base"], "bn_batch_size": 3}), "bn_batch_size=3 does not divide"),
    (dict(base={**SMOKE["base"], "augment": True}), None),  # fine: not in the grid
    (dict(base={**SMOKE["base"], "batch_size": 4}), "both fixed in base and varied"),
])
def test_bad_studies_fail_before_training(change, message, tmp_path):
    if message is None:
        tiny(**change)
        return
    with pytest.raises(StudyError, match=message):
        run_study(tiny(**change), results_dir=tmp_path, progress=False)
    assert not list(tmp_path.glob("*.json"))


def test_unknown_study_lists_the_named_ones():
    with pytest.raises(StudyError, match="unknown study 'nope'.*smoke"):
        load_study("nope")


def test_unwritable_results_folder_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RecordError, match="not writable"):
        run_study(tiny(), results_dir=blocker / "results", progress=False)


def test_ensemble_groups_share_everything_but_the_optimiser():
    study = tiny(grid={"batch_size": [8, 32], "base_lr": {"pow2": [-9, -6]}, "seed": [0, 1]})
    groups = ensemble_groups(study.trials(), max_size=3, max_step_examples=10**6)
    assert sorted(len(g) for g in groups) == [1, 1, 1, 1, 3, 3, 3, 3]
    for group in groups:
        assert len({(c.batch_size, c.seed) for c in group}) == 1
    assert sum(len(g) for g in groups) == 16
    # large batches: at most max_step_examples // m members per ensemble
    capped = ensemble_groups(study.trials(), max_size=16, max_step_examples=64)
    assert sorted(len(g) for g in capped) == [2, 2, 2, 2, 4, 4]


def test_packed_seeds_keep_a_learning_rate_column_together():
    study = tiny(grid={"batch_size": [8, 32], "base_lr": {"pow2": [-9, -7]},
                       "seed": [0, 1, 2]})
    groups = ensemble_groups(study.trials(), max_size=16, max_step_examples=10**6,
                             pack_seeds=True)
    assert sorted(len(g) for g in groups) == [9, 9]  # one per m: 3 learning rates x 3 seeds
    for group in groups:
        assert len({c.batch_size for c in group}) == 1
        assert [c.seed for c in group] == [0, 1, 2] * 3  # column by column, seeds together
    # split at 6 members: two whole columns, then the last one, never a column cut
    split = ensemble_groups(study.trials(), max_size=6, max_step_examples=10**6,
                            pack_seeds=True)
    assert sorted(len(g) for g in split) == [3, 3, 6, 6]
    for group in split:
        lrs = [c.base_lr for c in group]
        assert all(lrs.count(lr) == 3 for lr in lrs)
    assert seed_major(split) == split  # every packed group holds seed 0
    unpacked = ensemble_groups(study.trials(), max_size=16, max_step_examples=10**6)
    assert all(len({c.seed for c in g}) == 1 for g in unpacked) and len(unpacked) == 6


def test_a_packed_sweep_stores_what_an_unpacked_one_does(tmp_path):
    """pack_seeds changes how trials are grouped, not what each one computes: the stored
    records of a packed sweep equal those of seed-by-seed ensembles (float32 rounding)."""
    study = tiny(grid={"batch_size": [8], "base_lr": {"pow2": [-9, -8]}, "seed": [0, 1]})
    packed = run_study(study, results_dir=tmp_path / "packed", progress=False,
                       pack_seeds=True)
    plain = run_study(study, results_dir=tmp_path / "plain", progress=False)
    assert packed.trained == plain.trained == 4
    a = load_records(tmp_path / "packed").results
    b = load_records(tmp_path / "plain").results
    assert set(a) == set(b)
    for digest in a:
        assert a[digest].provenance["ensemble_size"] == 4
        assert b[digest].provenance["ensemble_size"] == 2
        for x, y in zip(a[digest].epochs, b[digest].epochs):
            assert x.train_loss == pytest.approx(y.train_loss, rel=1e-3)


def test_the_ensemble_caps_are_chosen_for_the_device():
    import torch

    from smallbatch.studies import ENSEMBLE_LIMITS, MAX_STEP_EXAMPLES, ensemble_limits

    assert ensemble_limits("cpu") == (16, MAX_STEP_EXAMPLES)
    members, examples = ensemble_limits(torch.device("cuda"))  # no GPU needed to ask
    assert (members, examples) == ENSEMBLE_LIMITS["cuda"] and members >= 256
    study = tiny(grid={"batch_size": [2], "base_lr": {"pow2": [-9, 1]}, "seed": [0, 1, 2]})
    on_cuda = ensemble_groups(study.trials(), members, examples, pack_seeds=True)
    assert [len(g) for g in on_cuda] == [33]  # the whole m = 2 column and its seeds at once
    assert max(len(g) for g in ensemble_groups(study.trials(), *ensemble_limits("cpu"))) == 11


def test_sweeps_train_seed_by_seed():
    study = tiny(grid={"batch_size": [8, 32, 128], "base_lr": {"pow2": [-9, -8]},
                       "seed": [0, 1]})
    groups = ensemble_groups(study.trials(), max_size=16, max_step_examples=10**6)
    assert [(g[0].batch_size, g[0].seed) for g in groups][:2] == [(8, 0), (8, 1)]
    order = [(g[0].seed, g[0].batch_size) for g in seed_major(groups)]
    assert order == [(0, 8), (0, 32), (0, 128), (1, 8), (1, 32), (1, 128)]


def test_calibration_times_the_ensemble_a_sweep_would_build(monkeypatch):
    """calibrate_rates builds each batch size's model as setup_run does (the seed's initial
    weights, channels_last on CPU) and its ensemble with the sweep's builder (grouped, or
    vmap where grouped cannot), here without loading the data."""
    import torch

    from smallbatch.studies import calibrate_rates, run
    from smallbatch.train import setup_run

    built = []

    def builder(models, method, channels_last):
        built.append((models, method, channels_last))
        return real(models, method, channels_last)

    real = run._build_ensemble
    monkeypatch.setattr(run, "_build_ensemble", builder)
    study = tiny()
    rates = calibrate_rates(study, device="cpu", seconds=0.0, input_shape=(1, 28, 28),
                            num_classes=10)
    assert sorted(rates) == [8, 32] and all(rate > 0 for rate in rates.values())
    assert [(len(models), method, channels_last) for models, method, channels_last in built] \
        == [(2, "auto", True), (2, "auto", True)]  # K = 2: two rates, one seed per ensemble
    config = study.trials()[0]
    shape = run._DataShape((1, 28, 28), 10)
    _, _, want, _ = setup_run(config, data=shape, device="cpu")
    model = built[0][0][0]
    stem = next(p for p in model.parameters() if p.dim() == 4)
    assert stem.is_contiguous(memory_format=torch.channels_last)
    for name, tensor in want.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


# running, storing, resuming -------------------------------------------------------------------

def test_run_stores_every_trial_and_a_rerun_trains_nothing(tmp_path):
    study = tiny()
    report = run_study(study, results_dir=tmp_path, progress=False)
    assert report.trained == 4 and report.already_stored == 0 and report.failed == 0
    assert sum(report.status_counts.values()) == 4 and "missing" not in report.status_counts
    assert len(list(tmp_path.glob("*.json"))) == 4
    again = run_study(study, results_dir=tmp_path, progress=False)
    assert again.trained == 0 and again.already_stored == 4

    records = load_records(tmp_path)
    trials = trials_frame(records)
    assert list(trials.batch_size) == [8, 8, 32, 32]
    assert set(trials.provenance_git_commit.astype(str)) and "provenance_torch_version" in trials
    epochs = epochs_frame(records)
    assert len(epochs) == 4 and {"test_accuracy", "train_loss"} <= set(epochs.columns)

    table = dry_run(study, results_dir=tmp_path)
    assert set(table.status) <= {"complete", "diverged"}


def test_failed_trials_are_retried_and_bad_records_skipped_by_name(tmp_path):
    study = tiny()
    first = study.trials()[0]
    save_result(TrainResult(config=first, status="failed", epochs=[], test_accuracy=None,
                            error="boom"), tmp_path)
    (tmp_path / "0000000000000000.json").write_text("{broken")
    foreign = tmp_path / "1111111111111111.json"
    foreign.write_text((tmp_path / f"{config_hash(first)}.json").read_text())
    with pytest.warns(UserWarning, match="0000000000000000.json"):
        report = run_study(study, results_dir=tmp_path, progress=False)
    assert report.trained == 4  # the failed one again, plus the three missing
    records = load_records(tmp_path, warn=False)
    assert len(records.results) == 4
    assert records.results[config_hash(first)].status in ("complete", "diverged")
    assert any("1111111111111111.json" in p and "foreign" in p for p in records.problems)


def test_sweep_killed_midway_resumes_without_loss_or_duplicates(tmp_path):
    """SIGKILL a real `smallbatch sweep` after its first records land; rerun; compare."""
    study_file = tmp_path / "kill.yaml"
    study_file.write_text(json.dumps({**SMOKE, "name": "kill", "grid": {
        "batch_size": [4, 8, 16, 32], "base_lr": {"pow2": [-8, -7]}, "seed": [0]}}))
    command = [sys.executable, "-m", "smallbatch.cli", "sweep", str(study_file), "--scale",
               "smoke", "--quiet", "--max-ensemble", "1"]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    process = subprocess.Popen(command + ["--results", str(killed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(killed.glob("*.json")):
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished_before = {p.name for p in killed.glob("*.json")}
    assert 1 <= len(finished_before) < 8, "the kill should land mid-sweep"

    subprocess.run(command + ["--results", str(killed)], check=True, capture_output=True)
    subprocess.run(command + ["--results", str(clean)], check=True, capture_output=True)
    resumed = load_records(killed, warn=False).results
    reference = load_records(clean, warn=False).results
    assert sorted(resumed) == sorted(reference) and len(resumed) == 8
    assert sorted(p.name for p in killed.iterdir()) == sorted(f"{h}.json" for h in resumed)
    for digest, result in reference.items():
        assert metrics(resumed[digest]) == metrics(result), digest


@pytest.mark.parametrize("executor", ["processes", "dask"])
def test_worker_executors_match_the_inline_run(executor, tmp_path):
    study = tiny()
    run_study(study, results_dir=tmp_path / "inline", progress=False)
    report = run_study(study, results_dir=tmp_path / executor, executor=executor, workers=2,
                       progress=False)
    assert report.trained == 4 and report.failed == 0
    inline = load_records(tmp_path / "inline", warn=False).results
    other = load_records(tmp_path / executor, warn=False).results
    assert sorted(inline) == sorted(other)
    for digest, result in inline.items():
        # one thread per worker against two inline: float sums may round differently
        for (a, b) in zip(metrics(result), metrics(other[digest])):
            assert a == pytest.approx(b, rel=1e-3, abs=1e-3)
        assert other[digest].provenance["threads"] == 1


def test_dask_through_a_scheduler_address(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        report = run_study(tiny(), results_dir=tmp_path, executor="dask",
                           scheduler=cluster.scheduler_address, progress=False)
    assert report.trained == 4 and report.failed == 0
    assert report.executor.startswith(f"Dask scheduler {cluster.scheduler_address}")


def test_a_failing_trial_is_stored_as_failed_with_its_error(tmp_path, capsys):
    from smallbatch.cli import main

    study_file = tmp_path / "nodata.yaml"
    study_file.write_text(json.dumps({**SMOKE, "name": "nodata",
                                      "base": {**SMOKE["base"], "data": "cifar100"}}))
    code = main(["sweep", str(study_file), "--scale", "smoke", "--quiet",
                 "--results", str(tmp_path / "out"), "--data-root", str(tmp_path / "empty")])
    assert code == 1
    assert "DataError" in capsys.readouterr().err
    records = load_records(tmp_path / "out", warn=False).results
    assert len(records) == 4 and {r.status for r in records.values()} == {"failed"}
    assert all("DataError" in r.error for r in records.values())


def test_grid_blocks_are_a_union_and_overrides_apply_to_each():
    spec = {"name": "blocks", "base": {"data": "synthetic", "train_subset": 256},
            "grid": [{"batch_size": [2, 4], "base_lr": {"pow2": [-3, -2]}},
                     {"batch_size": [4, 8], "base_lr": {"pow2": [-2, -1]}}],
            "scales": {"smoke": {"grid": {"seed": [0, 1]}}}}
    scaled = Study.from_mapping(spec, "scaled")
    points = [(c.batch_size, c.base_lr) for c in scaled.trials()]
    # (4, 2^-2) is in both blocks and appears once
    assert points == [(2, 0.125), (2, 0.25), (4, 0.125), (4, 0.25), (4, 0.5), (8, 0.25),
                      (8, 0.5)]
    smoke = Study.from_mapping(spec, "smoke")
    assert len(smoke.trials()) == 2 * len(points)
    replaced = Study.from_mapping({**spec, "scales": {"smoke": {"grid": [{"batch_size": [2]}]}}},
                                  "smoke")
    assert [c.batch_size for c in replaced.trials()] == [2]
    with pytest.raises(StudyError, match="non-empty list"):
        Study.from_mapping({**spec, "grid": []}, "scaled")
    with pytest.raises(StudyError, match="both fixed in base and varied"):
        Study.from_mapping({**spec, "grid": [{"batch_size": [2]}, {"train_subset": [128]}]},
                           "scaled")


def test_threads_per_worker_are_set_and_checked():
    from smallbatch.studies.run import _make_executor

    inline = _make_executor("inline", 1, None, threads=1)
    assert inline.threads == 1 and "1 thread" in inline.description
    inline.close()
    local = _make_executor("processes", 2, None)
    assert local.threads == max(1, (os.cpu_count() or 1) // 2)
    local.close()
    with pytest.raises(StudyError, match="threads must be >= 1"):
        _make_executor("inline", 1, None, threads=0)


def test_a_sweep_records_the_commit_it_started_at(tmp_path, monkeypatch):
    """Workers import their code when a sweep starts; a run that ends after the checkout
    has moved on must still name the commit it was trained by, not the HEAD of its end."""
    from smallbatch import provenance

    monkeypatch.delenv("SMALLBATCH_COMMIT", raising=False)
    heads = iter(["aaaa111", "bbbb222", "bbbb222", "bbbb222", "bbbb222", "bbbb222"])
    monkeypatch.setattr(provenance, "git_commit", lambda: next(heads))
    report = run_study(tiny(), results_dir=tmp_path, progress=False)
    records = load_records(tmp_path).results.values()
    assert report.trained == 4 and {r.provenance["git_commit"] for r in records} == {"aaaa111"}
    assert "SMALLBATCH_COMMIT" not in os.environ  # the inline executor leaves no trace
    monkeypatch.setenv("SMALLBATCH_COMMIT", "cccc333")  # a pinned commit wins
    assert provenance.run_provenance("cpu")["git_commit"] == "cccc333"
