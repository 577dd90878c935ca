"""The full protocol's cost tables (smallbatch.analysis.costs) on benchmark records with
known answers, and on the committed records."""

import json
from types import SimpleNamespace

import pandas as pd
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


# ------------------------------------------------- the full protocol's texts and tables

def _four_records(tmp_path, cuda_torch="2.14.1"):
    """A CPU and a GPU cost record (the second's torch build given), a cost check on the
    CPU only, and an ensemble-cap record, in the benchmarks' schema."""
    _write(tmp_path, "full_cost_cpu", _cost("cpu", "AMD EPYC", {"resnet-bn": 100.0, "x": 50.0},
                                            {"2": 1000.0, "64": 2000.0}))
    gpu = _cost("cuda", "H100", {"resnet-bn": 20.0, "x": 25.0}, {"2": 2000.0, "64": 20000.0})
    _write(tmp_path, "full_cost_cuda", {**gpu, "torch": cuda_torch})
    _write(tmp_path, "cost_check_cpu", {
        "device": "cpu", "device_name": "AMD EPYC", "data": "cifar10-jpeg",
        "train_subset": 2048, "rows": [
            {"batch_size": 2, "members": 8, "real_rate": 90.0, "calibrated_rate": 100.0,
             "ratio": 0.9},
            {"batch_size": 64, "members": 1, "real_rate": 120.0, "calibrated_rate": 100.0,
             "ratio": 1.2}]})
    _write(tmp_path, "ensemble_cap_cuda", {
        "device_name": "H100", "default_cap": 64, "rows": [
            {"study": "s", "cap": 64, "hours": 10.0, "rates": {"2": 100.0, "32": 100.0}},
            {"study": "s", "cap": 256, "hours": 8.0, "rates": {"2": 110.0, "32": 300.0}}]})
    return analysis.load_benchmarks(tmp_path)


def test_the_notes_under_the_hours(tmp_path):
    bench = _four_records(tmp_path, cuda_torch="2.11.0")
    notes = analysis.hours_notes(bench.costs, ["resnet-bn", "x", "imagenet"])
    assert notes[0].startswith("Not costed: imagenet (")
    assert notes[1].startswith("The machines ran different torch builds (2.11.0, 2.14.1)")
    # every study costed, one torch build: nothing to say
    (tmp_path / "same").mkdir()
    same = _four_records(tmp_path / "same")
    assert analysis.hours_notes(same.costs, ["x", "resnet-bn"]) == []


def test_the_texts_state_the_records_numbers(tmp_path):
    bench = _four_records(tmp_path)
    hours = analysis.hours_by_study(bench.costs)
    rates, per_study = analysis.gpu_against_cpu(bench.costs, hours)
    text = analysis.gpu_against_cpu_text(rates, per_study)
    # resnet-bn 100 / 20 = 5, x 50 / 25 = 2, all 150 / 45; rates 2000 / 1000, 20000 / 2000
    assert text.startswith("Over the studies the GPU is 2.0 to 5.0 times faster than the CPU "
                           "(3.3 times over all of them). For ResNet-20 the gap is 2.0x at "
                           "m = 2 and 10.0x at m = 64:")
    check, _ = analysis.cost_check_table(bench.checks)
    text = analysis.cost_check_text(check, bench.checks, bench.costs)
    # the slowest real epoch at 0.9 of the calibrated rate: 1 / 0.9 - 1 = 11% longer
    assert text.startswith("Real training ran at 0.90 to 1.20 of the calibrated rate, so a "
                           "full sweep may take up to 11% longer")
    assert text.endswith(" Not checked on: H100 (cuda).")
    assert "Not checked on" not in analysis.cost_check_text(
        check, bench.checks, {"cpu": bench.costs["cpu"]})
    _, cap = analysis.ensemble_cap_summary(bench.caps)
    text = analysis.ensemble_cap_text(cap)
    # cap 256: 300 / 100 = 3x at m = 32, 1 - 8 / 10 = 20% saved, 110 / 100 - 1 = 10% at m = 2
    assert "as much as 3.0-3.0x" in text and "saves 20% to 20%" in text
    assert "m = 2 gains at most 10% from any cap" in text


def test_what_the_cost_section_shows_in_order(tmp_path):
    bench = _four_records(tmp_path)
    shown = analysis.full_cost_shown(bench, ["resnet-bn", "x", "imagenet"])
    kinds = ["text" if isinstance(s, str) else "table" for s in shown]
    # machines, hours, not costed, GPU/CPU rates and text, cost check and text, caps and text
    assert kinds == ["text", "table", "text", "table", "text", "table", "text", "table", "text"]
    assert shown[0] == analysis.machine_lines(bench.costs)
    assert "150 h" in shown[1].to_html() and "45 h" in shown[1].to_html()
    assert "10.0x" in shown[3].to_html()
    cpu_only = analysis.BenchmarkRecords({"cpu": bench.costs["cpu"]}, {}, None)
    shown = analysis.full_cost_shown(cpu_only, ["resnet-bn", "x"])
    assert len(shown) == 3 and shown[2].startswith("**No GPU measurement is stored**")
    with pytest.raises(ValueError, match="no full-cost record"):
        analysis.full_cost_shown(analysis.BenchmarkRecords({}, {}, None), ["x"])


def test_which_studies_have_full_scale_runs():
    def data(name, total, missing):
        return analysis.StudyData(SimpleNamespace(name=name, scale="full"), pd.DataFrame(),
                                  total=total, missing=missing, commits=(), problems=[],
                                  num_classes=10, trials=())

    table = analysis.full_scale_status([data("a", 10, 3), data("b", 4, 0)])
    assert table.loc["a"].tolist() == [7, 10, "smallbatch sweep a --scale full"]
    assert table.loc["b"].tolist() == [4, 4, ""]
    assert analysis.full_scale_status([]).empty


# ----------------------------------------------------------------- the sweep engine

def _per_m(naive_ratio, ratio, reference):
    return {"best": "grouped ensemble K=16 (2 procs x 1 thread)", "best_rate": ratio * reference,
            "ratio": ratio, "naive_rate": naive_ratio * reference, "naive_ratio": naive_ratio}


def _throughput(rows=()):
    """A throughput record in benchmarks/throughput.py's schema: a reference rate of 45,056 /
    3,600 examples/s, at which the grid below (11 trials of one epoch of 4,096 images: 45,056
    examples) takes exactly one hour."""
    reference = 45056 / 3600
    grid = {"trials": 11, "epochs": 1, "train_size": 4096}
    return {
        "machine": {"cpu": "AMD EPYC", "cores": 2, "python": "3.11.7", "torch": "2.14.1",
                    "cuda": False, "gpu": None, "git_commit": "0123456789abcdef",
                    "hostname": "vm", "date": "2026-11-24T04:49:31+00:00"},
        "quick": False, "rows": list(rows), "wall_time": 1.0,
        "summary": {
            "bn": {"reference_large_batch_rate": reference, "min_ratio": 0.85,
                   "per_batch_size": {"2": _per_m(0.2, 0.85, reference),
                                      "512": _per_m(0.5, 1.0, reference)},
                   "paper_grid": {**grid, "hours_engine": 10.0, "hours_naive": 32.0,
                                  "speedup": 3.2}},
            "no_bn": {"reference_large_batch_rate": reference, "min_ratio": 0.79,
                      "per_batch_size": {"2": _per_m(0.1, 0.79, reference),
                                         "512": _per_m(0.8, 1.1, reference)},
                      "paper_grid": {**grid, "hours_engine": 10.0, "hours_naive": 20.0,
                                     "speedup": 2.0}}}}


def _packing(rows):
    return {"measured": "2026-12-04T13:31:59+00:00", "device": "cpu", "device_name": "AMD EPYC",
            "threads": 1, "torch": "2.14.1", "python": "3.11.7", "commit": "0123456789abcdef",
            "study": "resnet-bn", "scale": "scaled", "max_ensemble": 16,
            "max_step_examples": 64, "trials": 12, "load_average_at_start": 2.46,
            "grid_hours": {"by seed": 1.5, "packed": 1.4}, "packed_over_by_seed": 1.4 / 1.5,
            "rows": rows}


def _packed_row(grouping, m, members, hours):
    return {"grouping": grouping, "batch_size": m, "members": members, "seeds": [0],
            "steps": 100, "step_ms": 1.0, "hours": hours}


def test_the_engine_records_load(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmarks/throughput.py"):
        analysis.load_engine_benchmarks(tmp_path)
    _write(tmp_path, "throughput", _throughput())
    _write(tmp_path, "seed_ensembles_cpu", _packing([]))
    engine = analysis.load_engine_benchmarks(tmp_path)
    assert engine.throughput["summary"]["bn"]["min_ratio"] == 0.85
    assert engine.small_batch_cuda is None
    _write(tmp_path, "small_batch_cuda", {"device_name": "H100"})
    assert analysis.load_engine_benchmarks(tmp_path).small_batch_cuda == {"device_name": "H100"}


def test_the_paper_grid_examples_and_hours():
    # whole batches only: 3,000 images are 2,048 examples at m = 2048, 2,560 at m = 512
    examples = analysis.paper_grid_examples({"trials": 22, "epochs": 2, "train_size": 3000})
    assert list(examples) == list(analysis.PAPER_GRID_BATCH_SIZES)
    assert examples[2] == 2 * 2 * 3000 and examples[512] == 2 * 2 * 2560
    assert examples[2048] == 2 * 2 * 2048
    grid = {"trials": 11, "epochs": 1, "train_size": 4096}  # 4,096 examples at every m
    assert analysis.paper_grid_hours(grid, 4096 / 3600) == pytest.approx(11.0)
    # m = 2 ... 32 nearest to 2 (rate 1), m = 64 ... 2048 nearest to 1024 (rate 2)
    assert analysis.paper_grid_hours(grid, {"2": 1.0, "1024": 2.0}) == \
        pytest.approx((5 * 4096 / 1 + 6 * 4096 / 2) / 3600)
    # a tie on the log2 scale (m = 4 between 2 and 8) goes to the smaller m
    assert analysis.paper_grid_hours(grid, {8: 1.0, 2: 4.0}) == \
        pytest.approx((2 * 4096 / 4 + 9 * 4096 / 1) / 3600)
    with pytest.raises(ValueError, match="not the same number"):
        analysis.paper_grid_examples({"trials": 12, "epochs": 1, "train_size": 4096})
    with pytest.raises(ValueError, match="positive"):
        analysis.paper_grid_hours(grid, 0.0)


def test_the_paper_grid_hours_are_the_throughput_benchmarks():
    """The committed record's engine and naive hours are paper_grid_hours at its rates."""
    engine = analysis.load_engine_benchmarks(presets.repo_root() / "benchmarks" / "results")
    for summary in engine.throughput["summary"].values():
        grid, per_m = summary["paper_grid"], summary["per_batch_size"]
        for rate, hours in (("best_rate", "hours_engine"), ("naive_rate", "hours_naive")):
            assert analysis.paper_grid_hours(grid, {m: v[rate] for m, v in per_m.items()}) \
                == pytest.approx(grid[hours], rel=1e-12)


def test_the_throughput_table_targets_and_ceiling():
    record = _throughput()
    assert analysis.throughput_machine(record) == (
        "measured on AMD EPYC (2 cores), torch 2.14.1, 2026-11-24T04:49:31+00:00, "
        "commit 0123456789abcdef")
    table = analysis.throughput_table(record)
    assert table.loc[("ResNet-8 with BN", 2), "naive / reference"] == 0.2
    assert table.loc[("ResNet-8 without BN", 512), "engine / reference"] == 1.1
    assert table.loc[("ResNet-8 with BN", 512), "engine (ex/s)"] == round(45056 / 3600)
    targets = analysis.engine_targets(record)
    # with BN: 0.85 >= 0.8 and 3.2 >= 3; without: 0.79 and 2.0 fall short
    assert targets["met"].tolist() == [True, True, False, False]
    assert targets["measured"].tolist()[:2] == ["lowest ratio 0.85", "3.2x (10 h against 32 h)"]
    assert targets["target"].tolist()[:2] == ["every m at >= 0.8x reference",
                                              "paper grid >= 3x faster than naive"]
    # the grid at the reference rate takes 1 h: the naive loop's 32 h and 20 h are the ceiling
    assert analysis.reference_ceiling(record).splitlines() == [
        "ResNet-8 with BN: the naive loop runs at 0.20-0.50 of the reference; an engine at the "
        "reference rate everywhere would be 32.0x faster than it; measured 3.2x",
        "ResNet-8 without BN: the naive loop runs at 0.10-0.80 of the reference; an engine at "
        "the reference rate everywhere would be 20.0x faster than it; measured 2.0x"]


def _rate_row(mode, bn, m, members, threads, processes, rate):
    return {"m": m, "bn": bn, "mode": mode, "members": members, "threads": threads,
            "processes": processes, "examples_per_second": rate, "device": "cpu"}


def test_vmap_against_the_grouped_module():
    rows = [_rate_row("grouped", True, 2, 8, 1, 2, 100.0),
            _rate_row("vmap", True, 2, 8, 1, 2, 80.0),
            _rate_row("grouped", True, 8, 8, 1, 2, 100.0),
            _rate_row("vmap", True, 8, 8, 1, 2, 120.0),
            _rate_row("grouped", False, 2, 8, 1, 2, 100.0),
            _rate_row("vmap", False, 2, 8, 1, 2, 90.0),
            # other configurations of the grouped module: not compared
            _rate_row("grouped", False, 2, 8, 2, 1, 50.0),
            _rate_row("grouped", False, 2, 16, 1, 2, 10.0),
            {**_rate_row("vmap", False, 8, 8, 1, 2, 1.0), "error": "out of memory"}]
    ratios, text = analysis.vmap_against_grouped(_throughput(rows))
    assert ratios.loc[2, "with"] == pytest.approx(0.8) and ratios.loc[8, "with"] == 1.2
    assert ratios.loc[2, "without"] == pytest.approx(0.9)
    assert text == ("K = 8, same run: without batch norm, vmap ran at 0.90-0.90 of the grouped "
                    "module's rate; with batch norm, vmap ran at 0.80-1.20 of the grouped "
                    "module's rate (faster at m = 8: `--method vmap` selects it).")
    with pytest.raises(ValueError, match="one \\(members, threads, processes\\)"):
        analysis.vmap_against_grouped(
            _throughput(rows + [_rate_row("vmap", True, 2, 4, 1, 2, 1.0)]))


def test_seeds_packed_against_one_seed_per_ensemble():
    rows = [_packed_row("by seed", 2, 4, 0.5), _packed_row("by seed", 2, 4, 0.5),
            _packed_row("packed", 2, 8, 0.8),
            _packed_row("by seed", 64, 1, 0.25), _packed_row("packed", 64, 1, 0.3),
            _packed_row("by seed", 64, 1, 0.25), _packed_row("packed", 64, 1, 0.3)]
    table, text = analysis.seed_packing(_packing(rows))
    assert table["m"].tolist() == [2, 64]
    assert table["ensembles by seed"].tolist() == [2, 2]
    assert table["ensembles packed"].tolist() == [1, 2]
    assert table["packed / by seed"].tolist() == pytest.approx([0.8, 1.2])
    first, second = text.splitlines()
    assert first == ("resnet-bn (scaled), 12 trials; AMD EPYC, 1 thread, load average 2.5; "
                     "measured 2026-12-04T13:31:59+00:00, commit 0123456789")
    assert second == ("whole grid: 1.5 h by seed, 1.4 h packed (packed / by seed = 0.93); where "
                      "both groupings train every run alone (m >= 64), the ratio ranges "
                      "1.20-1.20 (the noise)")
    # no m where every run trains alone: no noise range to state
    _, text = analysis.seed_packing(_packing(rows[:3]))
    assert "alone" not in text


def test_the_captured_step():
    header, engines, studies, total = analysis.captured_step(None)
    assert header.startswith("Not measured yet") and engines is studies is total is None
    record = {"device_name": "H100", "torch": "2.11.0", "measured": "2026-12-01",
              "commit": "0123456789abcdef", "new_step_mode": "graph",
              "engines": [{"batch_size": 2, "today_members": 16, "today_rate": 100.0,
                           "new_members": 512, "new_rate": 900.0, "speedup": 9.0}],
              "studies": [{"study": "a", "trials": 10, "examples": 5, "hours": 1000.4,
                           "rates": {}},
                          {"study": "b", "trials": 4, "examples": 5, "hours": 499.7,
                           "rates": {}}]}
    header, engines, studies, total = analysis.captured_step(record)
    assert header == "H100, torch 2.11.0, 2026-12-01, commit 0123456789; step mode graph"
    assert engines["speedup"].tolist() == [9.0]
    assert list(studies.columns) == ["study", "trials", "hours"]
    assert total == "The full protocol under the new engine: 1,500 GPU-hours"
