"""What packing seeds into one lock-step ensemble changes for a published study's grid.

A sweep groups a study's trials into lock-step ensembles (``smallbatch.studies.
ensemble_groups``). Seed by seed, an ensemble at small m holds one learning-rate column of
one seed; with ``pack_seeds`` it holds a column's seeds too (each member with its own
seed's initial weights, batch order and augmentation, the batch gathered per member:
``ImageData.member_batches``). This script times, in one run and interleaved, one SGD
step of every ensemble size each grouping uses at every m of the study (the study's own
data set, model and settings, on this machine), and sums per-step time x steps over the
groups: the grid's training wall time under each grouping, one worker process. Evaluation
on the test set is left out (the same for both groupings).

    SMALLBATCH_DATA=... .venv/bin/python benchmarks/seed_ensembles.py --study resnet-bn

Writes benchmarks/results/seed_ensembles_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from smallbatch.data import load_data
from smallbatch.ensemble import LockstepEnsemble
from smallbatch.models import build_model
from smallbatch.provenance import measurement_header, write_measurement
from smallbatch.studies import MAX_STEP_EXAMPLES, ensemble_groups, load_study
from smallbatch.train import prepare_device, resolve_device

RESULTS = Path(__file__).resolve().parent / "results"


def step_seconds(configs, data, device, seconds: float) -> float:
    """Seconds per lock-step SGD step of the ensemble of ``configs`` (their seeds' own
    models and batches when they differ), after warm-up steps."""
    base = configs[0]
    channels, height, _ = data.input_shape
    models = []
    for config in configs:
        torch.manual_seed(config.seed)
        model = build_model(base.model, in_channels=channels, num_classes=data.num_classes,
                            input_size=height, batch_norm=base.batch_norm,
                            bn_batch_size=base.bn_batch_size).to(device)
        if device.type == "cpu":
            model = model.to(memory_format=torch.channels_last)
        models.append(model)
    ensemble = LockstepEnsemble(models, method="grouped", channels_last=device.type == "cpu")
    lrs = torch.full((len(configs),), 1e-3, device=device)
    generators = [torch.Generator().manual_seed(c.seed) for c in configs]

    def batches():
        while True:
            if len({c.seed for c in configs}) == 1:
                yield from data.train_batches(base.batch_size, generator=generators[0],
                                              augment=base.augment)
            else:
                yield from data.member_batches(base.batch_size, generators=generators,
                                               augment=base.augment)

    stream = batches()
    for _ in range(3):
        ensemble.sgd_step(*next(stream), lrs)
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or steps < 5:
        losses, _ = ensemble.sgd_step(*next(stream), lrs)
        steps += 1
    losses.sum().item()  # one sync at the end (CUDA)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="resnet-bn")
    parser.add_argument("--scale", default="scaled")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (a sweep's worker on this 2-core machine: 1)")
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per ensemble")
    parser.add_argument("--max-ensemble", type=int, default=16)
    parser.add_argument("--max-step-examples", type=int, default=MAX_STEP_EXAMPLES)
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    prepare_device(device)
    torch.set_num_threads(args.threads)
    study = load_study(args.study, args.scale)
    trials = study.trials()
    base = trials[0]
    data = load_data(base.data, train_subset=base.train_subset, test_subset=base.test_subset,
                     subset_seed=base.subset_seed, device=device)
    started = time.perf_counter()
    load = os.getloadavg()[0]
    groupings = {name: ensemble_groups(trials, args.max_ensemble, args.max_step_examples,
                                       pack_seeds=name == "packed")
                 for name in ("by seed", "packed")}
    # one timing per (m, ensemble size, grouping): groups of one size cost the same per step
    timings: dict[tuple, float] = {}
    for m in sorted({c.batch_size for c in trials}):
        for name, groups in groupings.items():
            for group in groups:
                key = (m, len(group), name)
                if group[0].batch_size == m and key not in timings:
                    timings[key] = step_seconds(group, data, device, args.seconds)
                    print(f"m={m:5d} K={len(group):3d} {name:8s} "
                          f"{timings[key] * 1e3:8.2f} ms/step", flush=True)
    rows = []
    totals = {}
    for name, groups in groupings.items():
        total = 0.0
        for group in groups:
            config = group[0]
            steps = data.steps_per_epoch(config.batch_size) * config.num_epochs
            seconds = timings[(config.batch_size, len(group), name)] * steps
            total += seconds
            rows.append({"grouping": name, "batch_size": config.batch_size,
                         "members": len(group), "seeds": sorted({c.seed for c in group}),
                         "steps": steps, "step_ms": timings[(config.batch_size, len(group),
                                                             name)] * 1e3,
                         "hours": seconds / 3600})
        totals[name] = total
    by_m = {}
    for row in rows:
        entry = by_m.setdefault(row["batch_size"], {"by seed": 0.0, "packed": 0.0,
                                                    "groups by seed": 0, "groups packed": 0})
        entry[row["grouping"]] += row["hours"]
        entry["groups " + row["grouping"]] += 1
    header = measurement_header(device)
    elapsed = time.perf_counter() - started
    result = {**header, "study": study.name, "scale": study.scale, "threads": args.threads,
              "max_ensemble": args.max_ensemble, "max_step_examples": args.max_step_examples,
              "trials": len(trials), "rows": rows, "load_average_at_start": load,
              "grid_hours": {k: v / 3600 for k, v in totals.items()},
              "packed_over_by_seed": totals["packed"] / totals["by seed"]}
    lines = [
        f"# Seeds packed into lock-step ensembles: {study.name} ({study.scale})",
        "",
        f"{header['device_name']} ({header['device']}); {args.threads} torch thread(s), one "
        f"process; torch {header['torch']}; measured {header['measured']} in "
        f"{elapsed:.0f} s by `benchmarks/seed_ensembles.py`, load average {load:.1f} at the "
        "start. Training steps only (the test "
        "evaluations are the same under both groupings). Per-step times of every ensemble "
        "size, interleaved by m in one run; the grid's time is their sum over its groups "
        "times each trial's steps.",
        "",
        f"The grid: {len(trials)} trials. Caps: {args.max_ensemble} members, "
        f"{args.max_step_examples} examples per ensemble step.",
        "",
        "| m | ensembles by seed | hours by seed | ensembles packed | hours packed | packed / by seed |",
        "|---|---|---|---|---|---|",
    ]
    for m, entry in sorted(by_m.items()):
        lines.append(f"| {m} | {entry['groups by seed']} | {entry['by seed']:.2f} | "
                     f"{entry['groups packed']} | {entry['packed']:.2f} | "
                     f"{entry['packed'] / entry['by seed']:.2f} |")
    lines += ["", f"Whole grid: {totals['by seed'] / 3600:.1f} h by seed, "
                  f"{totals['packed'] / 3600:.1f} h packed: packed takes "
                  f"{totals['packed'] / totals['by seed']:.2f} of the time.", ""]
    out = Path(args.out) if args.out else RESULTS
    write_measurement(out, f"seed_ensembles_{device.type}", result, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
