"""The full protocol's cost tables (smallbatch.analysis.costs) on benchmark records with
known answers, and on the committed records."""

import json

import pytest

from smallbatch import analysis, presets


def _cost(device, name, hours, rates):
    return {"device": device, "device_name": name, "threads": 2, "torch": "2.14.1",
            "measured": "2026-11-01T00:00:00+00:00", "commit": "0123456789abcdef",
            "studies": [{"study": study, "hours": h, "rates": rates} for study, h in hours.items()]}


def _write(folder, stem, record):
    (folder / f"{stem}.json").write_text(json.dumps(record))


def test_hours_and_the_gpu_against_the_cpu(tmp_path):
    _write(tmp_path, "full_cost_cpu", _cost("cpu", "AMD EPYC", {"resnet-bn": 100.0, "x": 50.0},
                                            {"2": 1000.0, "64": 2000.0}))
    _write(tmp_path, "full_cost_cuda", _cost("cuda", "H100", {"resnet-bn": 20.0, "x": 25.0},
                                             {"2": 2000.0, "64": 20000.0}))
    bench = analysis.load_benchmarks(tmp_path)
    assert set(bench.costs) == {"cpu", "cuda"} and bench.checks == {} and bench.caps is None
    hours = analysis.hours_by_study(bench.costs)
    assert hours.loc["all studies", "AMD EPYC (cpu)"] == 150.0
    assert hours.loc["all studies", "H100 (cuda)"] == 45.0
    rates, speedup = analysis.gpu_against_cpu(bench.costs, hours)
    assert list(rates.index) == [2, 64]
    assert rates["GPU / CPU"].tolist() == [2.0, 10.0]
    assert speedup["resnet-bn"] == 5.0 and speedup["x"] == 2.0
    assert speedup["all studies"] == pytest.approx(150 / 45)
    assert "**AMD EPYC (cpu)**: 2 threads, torch 2.14.1" in analysis.machine_lines(bench.costs)
    only_cpu = {"cpu": bench.costs["cpu"]}
    assert analysis.gpu_against_cpu(only_cpu, analysis.hours_by_study(only_cpu)) is None


def test_cost_check_and_the_ensemble_cap(tmp_path):
    check = {"device": "cpu", "device_name": "AMD EPYC", "data": "cifar10-jpeg",
             "train_subset": 2048, "rows": [
                 {"batch_size": 2, "members": 8, "real_rate": 90.0, "calibrated_rate": 100.0,
                  "ratio": 0.9},
                 {"batch_size": 64, "members": 1, "real_rate": 120.0, "calibrated_rate": 100.0,
                  "ratio": 1.2}]}
    table, trained = analysis.cost_check_table({"cpu": check})
    assert table["ratio"].tolist() == [0.9, 1.2]
    assert trained == "AMD EPYC (cpu): cifar10-jpeg, 2,048 training images"
    caps = {"device_name": "H100", "default_cap": 64, "rows": [
        {"study": "s", "cap": 64, "hours": 10.0, "rates": {"2": 100.0, "32": 100.0}},
        {"study": "s", "cap": 256, "hours": 8.0, "rates": {"2": 110.0, "32": 300.0}}]}
    by_cap, numbers = analysis.ensemble_cap_summary(caps)
    assert by_cap.loc["s"].tolist() == [10.0, 8.0]
    assert numbers["gain_max"] == 3.0 and numbers["saved_max"] == pytest.approx(0.2)
    assert numbers["small_gain"] == pytest.approx(0.1)


def test_the_committed_benchmark_records_read():
    bench = analysis.load_benchmarks(presets.repo_root() / "benchmarks" / "results")
    assert "cpu" in bench.costs
    hours = analysis.hours_by_study(bench.costs)
    assert (hours.loc["all studies"] > 0).all()
