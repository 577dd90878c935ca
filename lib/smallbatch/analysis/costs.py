"""What the full protocol costs, from the committed benchmark records (book: "The full
protocol"): the estimated hours of every study on each measured machine, the GPU against
the CPU, real training against the calibrated rate, and the ensemble-size cap on a GPU.

The records are the JSON files ``benchmarks/full_cost.py``, ``benchmarks/cost_check.py``
and ``benchmarks/ensemble_cap.py`` write into ``benchmarks/results/``; each function here
returns tables and numbers, and the chapter words them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = ["BenchmarkRecords", "load_benchmarks", "machine", "machine_lines", "hours_by_study",
           "gpu_against_cpu", "cost_check_table", "ensemble_cap_summary"]

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
