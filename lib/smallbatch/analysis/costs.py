"""What training costs, from the committed benchmark records: the full protocol's cost
(book: "The full protocol") and the sweep engine's measurements (book: "The sweep engine").

Full protocol: the estimated hours of every study on each measured machine, the GPU
against the CPU, real training against the calibrated rate, and the ensemble-size cap on a
GPU, from the JSON files ``benchmarks/full_cost.py``, ``benchmarks/cost_check.py`` and
``benchmarks/ensemble_cap.py`` write into ``benchmarks/results/``.

Sweep engine: throughput of each way of training against the batch size
(``benchmarks/throughput.py``), seeds packed into one ensemble
(``benchmarks/seed_ensembles.py``) and the captured step on CUDA
(``benchmarks/small_batch_cuda.py``).

Each function returns tables, numbers and short texts; the chapter shows them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .cells import StudyData

__all__ = ["BenchmarkRecords", "load_benchmarks", "machine", "machine_lines", "hours_by_study",
           "gpu_against_cpu", "cost_check_table", "ensemble_cap_summary",
           "hours_notes", "gpu_against_cpu_text", "cost_check_text", "ensemble_cap_text",
           "full_cost_shown", "full_scale_status",
           "EngineRecords", "load_engine_benchmarks", "TARGET_RATE_RATIO",
           "TARGET_GRID_SPEEDUP", "PAPER_GRID_BATCH_SIZES", "paper_grid_examples",
           "paper_grid_hours", "throughput_machine", "throughput_table", "engine_targets",
           "reference_ceiling", "vmap_against_grouped", "seed_packing", "captured_step"]

REFERENCE_STUDY = "resnet-bn"  # the study whose per-m rates the GPU-CPU table shows


@dataclass(frozen=True)
class BenchmarkRecords:
    """The cost records found, by device ("cpu", "cuda", ...)."""

    costs: dict[str, dict]         # full_cost_<device>.json
    checks: dict[str, dict]        # cost_check_<device>.json
    caps: dict | None              # ensemble_cap_cuda.json, if measured


def load_benchmarks(folder: str | Path) -> BenchmarkRecords:
    """Every full-cost, cost-check and ensemble-cap record in ``folder``."""
    folder = Path(folder)

    def by_device(pattern: str) -> dict[str, dict]:
        records = (json.loads(p.read_text()) for p in sorted(folder.glob(pattern)))
        return {r["device"]: r for r in records}

    cap_path = folder / "ensemble_cap_cuda.json"
    return BenchmarkRecords(costs=by_device("full_cost_*.json"),
                            checks=by_device("cost_check_*.json"),
                            caps=json.loads(cap_path.read_text()) if cap_path.exists() else None)


def machine(record: dict) -> str:
    """A record's machine, as the tables name it: "<device name> (<device>)"."""
    return f"{record['device_name']} ({record['device']})"


def machine_lines(costs: dict[str, dict]) -> str:
    """Markdown: one line per measured machine (threads, torch, when, commit)."""
    return "\n".join(f"- **{machine(r)}**: {r['threads']} threads, torch {r['torch']}, measured "
                     f"{r['measured']}, commit {str(r['commit'])[:10]}" for r in costs.values())


def hours_by_study(costs: dict[str, dict]) -> pd.DataFrame:
    """Estimated hours of each study (rows, then "all studies") on each machine (columns)."""
    hours = pd.DataFrame({machine(r): {s["study"]: s["hours"] for s in r["studies"]}
                          for r in costs.values()})
    hours.index.name = "study"
    hours.loc["all studies"] = hours.sum()
    return hours


def gpu_against_cpu(costs: dict[str, dict], hours: pd.DataFrame):
    """With a CPU and a GPU record: (rates, speed-up) where ``rates`` holds the reference
    study's examples/s per m on each machine and their ratio ("GPU / CPU"), and
    ``speed-up`` the CPU hours over the GPU hours of each study (and of all of them).
    None without both records."""
    gpu = [d for d in costs if d.startswith("cuda")]
    if not gpu or "cpu" not in costs:
        return None
    g, c = costs[gpu[0]], costs["cpu"]
    per_study = hours[machine(c)] / hours[machine(g)]
    rates = pd.DataFrame({
        machine(r): {int(m): v for m, v in next(s["rates"] for s in r["studies"]
                                                  if s["study"] == REFERENCE_STUDY).items()}
        for r in (c, g)})
    rates.index.name = "m"
    rates["GPU / CPU"] = rates[machine(g)] / rates[machine(c)]
    return rates, per_study


def cost_check_table(checks: dict[str, dict]) -> tuple[pd.DataFrame, str]:
    """One real epoch against the calibrated rate, per machine and m (members, both rates,
    their ratio), and what was trained, in words."""
    check = pd.concat([pd.DataFrame(r["rows"]).assign(machine=machine(r))
                       for r in checks.values()])
    check = check.rename(columns={"batch_size": "m"}).set_index(["machine", "m"])[
        ["members", "real_rate", "calibrated_rate", "ratio"]]
    trained = "; ".join(f"{machine(r)}: {r['data']}, "
                        + (f"{r['train_subset']:,} training images" if r["train_subset"]
                           else "all training images") for r in checks.values())
    return check, trained


def ensemble_cap_summary(caps: dict) -> tuple[pd.DataFrame, dict[str, float]]:
    """Hours of each study against the cap on examples per ensemble step (study x cap), and
    the numbers the chapter states: the range over studies of the largest per-m speed-up
    any cap gives (``gain_min``, ``gain_max``), of the share of a study's time the best cap
    saves (``saved_min``, ``saved_max``), and the most any cap speeds up m = 2
    (``small_gain``)."""
    by_cap = pd.DataFrame(caps["rows"]).pivot(index="study", columns="cap", values="hours")
    default = caps["default_cap"]
    rates = {(r["study"], r["cap"]): r["rates"] for r in caps["rows"]}
    gain = {s: max(rates[(s, cap)][m] / rates[(s, default)][m]
                   for cap in by_cap.columns for m in rates[(s, cap)])
            for s in by_cap.index}
    saved = 1 - by_cap.min(axis=1) / by_cap[default]
    small_gain = max(rates[(s, cap)]["2"] / rates[(s, default)]["2"] - 1 for s, cap in rates)
    return by_cap, {"gain_min": min(gain.values()), "gain_max": max(gain.values()),
                    "saved_min": saved.min(), "saved_max": saved.max(),
                    "small_gain": small_gain}


def hours_notes(costs: dict[str, dict], studies: Iterable[str]) -> list[str]:
    """Markdown notes under the table of hours (book: "The full protocol"): the ``studies``
    that no full-cost record costs, and the torch builds where the machines ran different
    ones. Empty when neither applies."""
    costed = {s["study"] for r in costs.values() for s in r["studies"]}
    notes = []
    uncosted = [s for s in studies if s not in costed]
    if uncosted:
        notes.append(f"Not costed: {', '.join(uncosted)} (no random-input shape is known "
                     "for its data set here; its dry run lists the trials).")
    versions = {r["torch"] for r in costs.values()}
    if len(versions) > 1:
        notes.append(
            f"The machines ran different torch builds ({', '.join(sorted(versions))}): the "
            "GPU machine had its own build and no package index to install the pinned one "
            "from. Its rates are for that build.")
    return notes


def gpu_against_cpu_text(rates: pd.DataFrame, per_study: pd.Series) -> str:
    """Markdown: how much faster the GPU is than the CPU, over the studies and at the ends of
    the reference study's batch sizes (book: "The full protocol"); ``rates`` and
    ``per_study`` as :func:`gpu_against_cpu` returns them."""
    studies = per_study.drop("all studies")
    return (
        f"Over the studies the GPU is {studies.min():.1f} to {studies.max():.1f} times faster "
        f"than the CPU ({per_study['all studies']:.1f} times over all of them). For ResNet-20 "
        f"the gap is {rates['GPU / CPU'].iloc[0]:.1f}x at m = {rates.index[0]} and "
        f"{rates['GPU / CPU'].iloc[-1]:.1f}x at m = {rates.index[-1]}: a step at small m is "
        "too little work to fill the GPU, so the GPU runs far below its capacity there. That "
        "is the practical cost of small batches on parallel hardware, the reason large "
        "batches are used in the first place, and the other side of the trade-off the "
        "experiments chapters measure.")


def cost_check_text(check: pd.DataFrame, checks: dict[str, dict],
                    costs: dict[str, dict]) -> str:
    """Markdown: the range of real training's rate over the calibrated one, how much longer
    a sweep may take for it, and the costed machines not checked (book: "The full
    protocol"); ``check`` as :func:`cost_check_table` returns it."""
    low = check["ratio"].min()
    unchecked = [machine(costs[d]) for d in costs if d not in checks]
    return (f"Real training ran at {low:.2f} to {check['ratio'].max():.2f} of the calibrated "
            f"rate, so a full sweep may take up to {1 / low - 1:.0%} longer than the table of "
            "hours says (a ratio above 1 is the calibration's own noise: a few timed steps)."
            + (f" Not checked on: {', '.join(unchecked)}." if unchecked else ""))


def ensemble_cap_text(cap: Mapping[str, float]) -> str:
    """Markdown: what a larger cap on examples per ensemble step gains on a GPU (book: "The
    full protocol"); ``cap``: the numbers :func:`ensemble_cap_summary` returns."""
    return (f"A larger cap speeds some batch sizes up by as much as "
            f"{cap['gain_min']:.1f}-{cap['gain_max']:.1f}x (the m = 16 to 128 ensembles, "
            f"which the default cap keeps to a few members), but the best cap saves "
            f"{cap['saved_min']:.0%} to {cap['saved_max']:.0%} of a study's time: the cost is "
            f"in the smallest batches, and m = 2 gains at most {cap['small_gain']:.0%} from "
            "any cap; and at large m an ensemble of two to four members runs slower than "
            "single runs (the per-m rates are in `benchmarks/results/ensemble_cap_cuda.md`), "
            "so no single cap is best at every m. The sweep keeps its default; on a GPU, "
            "`smallbatch sweep ... --max-step-examples N` sets another.")


_NO_GPU = ("**No GPU measurement is stored**: no GPU was available to this project when the "
           "chapter was built, so the GPU cost is not stated here. Run "
           "`.venv/bin/python benchmarks/full_cost.py --device cuda` on one to add it.")


def full_cost_shown(bench: BenchmarkRecords, studies: Iterable[str]) -> list:
    """What the chapter shows of the full protocol's cost (book: "The full protocol",
    section "Cost"), in order: Markdown texts (``str``) and styled tables (pandas
    ``Styler``). The machines; the hours of each study on each (:func:`hours_by_study`) and
    :func:`hours_notes`; the GPU against the CPU (:func:`gpu_against_cpu`), or that no GPU
    was measured; real training against the calibrated rate (:func:`cost_check_table`),
    where checked; the ensemble-size cap on a GPU (:func:`ensemble_cap_summary`), where
    measured.

    Args:
        bench: the records, :func:`load_benchmarks`.
        studies: the full-scale studies the chapter lists (those not costed are named).
    """
    costs = bench.costs
    if not costs:
        raise ValueError("no full-cost record (full_cost_<device>.json) among the benchmark "
                         "records: run benchmarks/full_cost.py to write one")
    hours = hours_by_study(costs)
    shown: list = [machine_lines(costs), hours.style.format(
        "{:,.0f} h", na_rep="not measured").set_caption(
        "Estimated wall time of each study at full scale (one process on the whole machine)")]
    shown += hours_notes(costs, studies)
    versus = gpu_against_cpu(costs, hours)
    if not any(d.startswith("cuda") for d in costs):
        shown.append(_NO_GPU)
    elif versus is not None:
        rates, per_study = versus
        cpu_name, gpu_name = rates.columns[0], rates.columns[1]
        shown.append(rates.style.format({cpu_name: "{:,.0f}", gpu_name: "{:,.0f}",
                                         "GPU / CPU": "{:.1f}x"}).set_caption(
            f"ResNet-20 with BN ({REFERENCE_STUDY} at full scale): training examples per "
            "second of the lock-step ensemble at each m"))
        shown.append(gpu_against_cpu_text(rates, per_study))
    if bench.checks:
        check, trained = cost_check_table(bench.checks)
        shown.append(check.rename(columns={"real_rate": "real examples/s",
                                           "calibrated_rate": "calibrated examples/s",
                                           "ratio": "real / calibrated"}).style.format(
            {"real examples/s": "{:,.0f}", "calibrated examples/s": "{:,.0f}",
             "real / calibrated": "{:.2f}"}).set_caption(
            "One real epoch (data, augmentation, test evaluation) against the calibrated "
            f"rate ({trained})"))
        shown.append(cost_check_text(check, bench.checks, costs))
    if bench.caps is not None:
        by_cap, cap = ensemble_cap_summary(bench.caps)
        shown.append(by_cap.style.format("{:,.0f} h").set_caption(
            f"{bench.caps['device_name']}: estimated wall time against the cap on examples "
            f"per ensemble step (the sweep's is {bench.caps['default_cap']})"))
        shown.append(ensemble_cap_text(cap))
    return shown


def full_scale_status(data: Iterable[StudyData]) -> pd.DataFrame:
    """Which studies have full-scale runs stored (book: "The full protocol", "Results at
    full size"): per study, the trials stored, the trials it has, and the command that
    trains what is missing ("" when nothing is)."""
    rows = [{"study": d.study.name, "trials stored": d.total - d.missing,
             "trials in the study": d.total,
             "to train what is missing": (f"smallbatch sweep {d.study.name} --scale "
                                          f"{d.study.scale}" if d.missing else "")}
            for d in data]
    return pd.DataFrame(rows, columns=["study", "trials stored", "trials in the study",
                                       "to train what is missing"]).set_index("study")


# ---------------------------------------------------------------- the sweep engine

@dataclass(frozen=True)
class EngineRecords:
    """The sweep engine's benchmark records (book: "The sweep engine")."""

    throughput: dict               # throughput.json (benchmarks/throughput.py)
    seed_ensembles: dict           # seed_ensembles_cpu.json (benchmarks/seed_ensembles.py)
    small_batch_cuda: dict | None  # small_batch_cuda.json, once measured on a GPU


def _read_record(path: Path, written_by: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"no benchmark record {path}: {written_by} writes it")
    return json.loads(path.read_text())


def load_engine_benchmarks(folder: str | Path) -> EngineRecords:
    """The throughput, seed-packing and (if measured) captured-step records in ``folder``."""
    folder = Path(folder)
    cuda = folder / "small_batch_cuda.json"
    return EngineRecords(
        throughput=_read_record(folder / "throughput.json", "benchmarks/throughput.py"),
        seed_ensembles=_read_record(folder / "seed_ensembles_cpu.json",
                                    "benchmarks/seed_ensembles.py"),
        small_batch_cuda=(_read_record(cuda, "benchmarks/small_batch_cuda.py")
                          if cuda.is_file() else None))


# The engine's targets (book: "The sweep engine"): every m trains at no less than this share
# of the best large-batch (m >= 512) single-model rate measured in the same run ...
TARGET_RATE_RATIO = 0.8
# ... and the paper-size grid finishes at least this many times faster than the naive loop
# run trial by trial.
TARGET_GRID_SPEEDUP = 3

# The paper's grid as benchmarks/throughput.py costs it (its record's "paper_grid"): m = 2,
# 4, ..., 2048, each at the same learning rates, for "epochs" epochs of "train_size" images.
PAPER_GRID_BATCH_SIZES = tuple(2 ** k for k in range(1, 12))

# throughput.json's summaries (keys) and the model each measured, as the chapter names it
_THROUGHPUT_MODELS = {"bn": "ResNet-8 with BN", "no_bn": "ResNet-8 without BN"}


def paper_grid_examples(grid: Mapping) -> dict[int, float]:
    """Training examples of the paper-size grid at each m of :data:`PAPER_GRID_BATCH_SIZES`
    (every trial runs ``grid["epochs"]`` epochs of whole batches of
    ``grid["train_size"]`` images); ``grid``: a throughput record's ``paper_grid``."""
    batch_sizes = len(PAPER_GRID_BATCH_SIZES)
    if grid["trials"] % batch_sizes:
        raise ValueError(f"the paper grid's {grid['trials']} trials are not the same number "
                         f"at each of its {batch_sizes} batch sizes")
    per_m = grid["trials"] / batch_sizes
    return {m: per_m * grid["epochs"] * (grid["train_size"] // m) * m
            for m in PAPER_GRID_BATCH_SIZES}


def paper_grid_hours(grid: Mapping, rate: float | Mapping) -> float:
    """Hours the paper-size grid trains at ``rate`` training examples per second (book: "The
    sweep engine"): the grid's examples (:func:`paper_grid_examples`) over the rate.

    Args:
        grid: a throughput record's ``paper_grid``.
        rate: one rate for every m, or the rates measured at some m (keyed by m, as int or
            str); each m of the grid is then taken at the nearest measured m on a log2 scale
            (m = 2048 at m = 1024's rate), as ``benchmarks/throughput.py`` costs the grid.
    """
    examples = paper_grid_examples(grid)
    if not isinstance(rate, Mapping):
        if not rate > 0:
            raise ValueError(f"a rate must be positive, got {rate}")
        return sum(examples.values()) / rate / 3600
    measured = {int(m): r for m, r in rate.items()}
    if not measured or min(measured.values()) <= 0:
        raise ValueError(f"rates must be given for some m and be positive, got {dict(rate)}")
    known = sorted(measured)
    return sum(e / measured[min(known, key=lambda k: abs(math.log2(k) - math.log2(m)))]
               for m, e in examples.items()) / 3600


def throughput_machine(benchmark: dict) -> str:
    """Where and when the throughput benchmark ran, in one line (book: "The sweep engine")."""
    where = benchmark["machine"]
    return (f"measured on {where['cpu']} ({where['cores']} cores), torch {where['torch']}, "
            f"{where['date']}, commit {where['git_commit']}")


def throughput_table(benchmark: dict) -> pd.DataFrame:
    """Per model and m: the naive loop's rate and the engine's best configuration and rate,
    each also as a share of the reference (the best large-batch single-model rate of the
    same run), rounded as the chapter shows them (book: "The sweep engine")."""
    rows = []
    for key, model in _THROUGHPUT_MODELS.items():
        for m, v in benchmark["summary"][key]["per_batch_size"].items():
            rows.append({"model": model, "m": int(m),
                         "naive loop (ex/s)": round(v["naive_rate"]),
                         "naive / reference": round(v["naive_ratio"], 2),
                         "best engine configuration": v["best"],
                         "engine (ex/s)": round(v["best_rate"]),
                         "engine / reference": round(v["ratio"], 2)})
    return pd.DataFrame(rows).set_index(["model", "m"])


def engine_targets(benchmark: dict) -> pd.DataFrame:
    """The engine's two targets per model (:data:`TARGET_RATE_RATIO` at every m,
    :data:`TARGET_GRID_SPEEDUP` over the paper grid), what was measured, and whether each
    is met (book: "The sweep engine")."""
    checks = []
    for key, model in _THROUGHPUT_MODELS.items():
        summary = benchmark["summary"][key]
        grid = summary["paper_grid"]
        checks.append({"model": model,
                       "target": f"every m at >= {TARGET_RATE_RATIO:g}x reference",
                       "measured": f"lowest ratio {summary['min_ratio']:.2f}",
                       "met": summary["min_ratio"] >= TARGET_RATE_RATIO})
        checks.append({"model": model,
                       "target": f"paper grid >= {TARGET_GRID_SPEEDUP:g}x faster than naive",
                       "measured": f"{grid['speedup']:.1f}x ({grid['hours_engine']:,.0f} h "
                                   f"against {grid['hours_naive']:,.0f} h)",
                       "met": grid["speedup"] >= TARGET_GRID_SPEEDUP})
    return pd.DataFrame(checks)


def reference_ceiling(benchmark: dict) -> str:
    """One line per model: the naive loop's range of rates as a share of the reference, the
    speed-up over it of an engine at the reference rate at every m (the grid's ceiling,
    :func:`paper_grid_hours`), and the speed-up measured (book: "The sweep engine")."""
    lines = []
    for key, model in _THROUGHPUT_MODELS.items():
        summary = benchmark["summary"][key]
        grid = summary["paper_grid"]
        at_reference = paper_grid_hours(grid, summary["reference_large_batch_rate"])
        naive = [v["naive_ratio"] for v in summary["per_batch_size"].values()]
        lines.append(f"{model}: the naive loop runs at {min(naive):.2f}-{max(naive):.2f} of "
                     "the reference; an engine at the reference rate everywhere would be "
                     f"{grid['hours_naive'] / at_reference:.1f}x faster than it; measured "
                     f"{grid['speedup']:.1f}x")
    return "\n".join(lines)


def vmap_against_grouped(benchmark: dict) -> tuple[pd.DataFrame, str]:
    """The vmap ensemble's rate over the grouped module's, at the ensemble size, threads and
    processes the vmap runs were measured with, in the same benchmark run (book: "The sweep
    engine").

    Returns the ratios (m x batch norm "with"/"without") and a Markdown sentence: their
    range with and without batch norm, and the m where vmap was faster."""
    rows = [r for r in benchmark["rows"] if "error" not in r]
    measured = {(r["members"], r["threads"], r["processes"]) for r in rows
                if r["mode"] == "vmap"}
    if len(measured) != 1:
        raise ValueError("expected the vmap ensembles measured at one (members, threads, "
                         f"processes), found {sorted(measured)}")
    (members, threads, processes), = measured
    pairs: dict[tuple, dict[str, float]] = {}
    for row in rows:
        if row["mode"] in ("grouped", "vmap") and (
                row["members"], row["threads"], row["processes"]) == (members, threads,
                                                                      processes):
            pairs.setdefault((row["bn"], row["m"]), {})[row["mode"]] = row["examples_per_second"]
    versus = pd.DataFrame([{"batch norm": "with" if bn else "without", "m": m,
                            "vmap / grouped": rates["vmap"] / rates["grouped"]}
                           for (bn, m), rates in sorted(pairs.items()) if len(rates) == 2])
    if versus.empty:
        raise ValueError(f"no m where both the vmap and the grouped ensemble of K = {members} "
                         "were measured")
    lines = []
    for side, part in versus.groupby("batch norm", sort=False):
        ratio = part["vmap / grouped"]
        faster = part.loc[ratio > 1, "m"].tolist()
        lines.append(f"{side} batch norm, vmap ran at {ratio.min():.2f}-{ratio.max():.2f} of "
                     "the grouped module's rate"
                     + (f" (faster at m = {', '.join(map(str, faster))}: `--method vmap` "
                        "selects it)" if faster else ""))
    text = f"K = {members}, same run: " + "; ".join(lines) + "."
    return versus.pivot(index="m", columns="batch norm", values="vmap / grouped"), text


def seed_packing(packing: dict) -> tuple[pd.DataFrame, str]:
    """Seeds packed into one ensemble against one seed per ensemble (book: "The sweep
    engine", "Seeds in one ensemble"), from ``seed_ensembles_<device>.json``.

    Returns one row per m (the ensembles and the hours of each grouping, and packed / by
    seed), and two lines: what was measured, where and when; the whole grid's hours under
    each grouping, and the range of the ratio where both groupings train every run alone
    (the measurement's noise)."""
    per_m: dict[int, dict] = {}
    largest: dict[int, int] = {}
    for row in packing["rows"]:
        m = row["batch_size"]
        largest[m] = max(largest.get(m, 0), row["members"])
        entry = per_m.setdefault(m, {"m": m})
        side = "by seed" if row["grouping"] == "by seed" else "packed"
        entry[f"ensembles {side}"] = entry.get(f"ensembles {side}", 0) + 1
        entry[f"hours {side}"] = entry.get(f"hours {side}", 0.0) + row["hours"]
    table = pd.DataFrame(list(per_m.values())).sort_values("m")
    table["packed / by seed"] = table["hours packed"] / table["hours by seed"]
    alone = table[table["m"].map(largest) == 1]  # every run alone under both groupings
    grid = packing["grid_hours"]
    text = (f"{packing['study']} ({packing['scale']}), {packing['trials']} trials; "
            f"{packing['device_name']}, {packing['threads']} thread, load average "
            f"{packing['load_average_at_start']:.1f}; measured {packing['measured']}, "
            f"commit {packing['commit'][:10]}\n"
            f"whole grid: {grid['by seed']:.1f} h by seed, {grid['packed']:.1f} h packed "
            f"(packed / by seed = {packing['packed_over_by_seed']:.2f})")
    if not alone.empty:
        ratio = alone["packed / by seed"]
        text += (f"; where both groupings train every run alone (m >= {alone['m'].min()}), "
                 f"the ratio ranges {ratio.min():.2f}-{ratio.max():.2f} (the noise)")
    return table, text


_NOT_CAPTURED = ("Not measured yet: no GPU was available to this project when the captured "
                 "step was written. benchmarks/small_batch_cuda.py, run on one, writes "
                 "benchmarks/results/small_batch_cuda.json, which this cell then shows.")


def captured_step(record: dict | None) -> tuple[str, pd.DataFrame | None,
                                                 pd.DataFrame | None, str | None]:
    """Today's engine against the captured step on CUDA, from ``small_batch_cuda.json``
    (book: "The sweep engine", "A step that never waits for the host").

    Returns a line saying where and when it was measured; the engines' rates per m; the
    full-scale studies' trials and hours under the new engine; and a line with their total.
    Without a record (``None``): a line saying so, and ``None`` for the rest."""
    if record is None:
        return _NOT_CAPTURED, None, None, None
    header = (f"{record['device_name']}, torch {record['torch']}, {record['measured']}, "
              f"commit {record['commit'][:10]}; step mode {record['new_step_mode']}")
    studies = pd.DataFrame(record["studies"])[["study", "trials", "hours"]]
    total = (f"The full protocol under the new engine: {studies['hours'].sum():,.0f} "
             "GPU-hours")
    return header, pd.DataFrame(record["engines"]), studies, total
