"""Check the full-scale cost estimate against real training on this machine.

``full_cost.py`` estimates a study's wall time from lock-step SGD steps timed on random
inputs (``smallbatch.studies.calibrate_rates``). Real training also loads and augments the
data, draws batches and evaluates the test set after every epoch. This script trains one
epoch of the first lock-step ensemble of each chosen batch size of a study at the full
scale, on real data, and sets its wall-clock rate (training examples per second, the test
evaluation included) beside the calibrated rate of the same ensemble:
ratio = real / calibrated, so a ratio of 0.9 means the estimate is 10% optimistic.

    .venv/bin/python benchmarks/cost_check.py --device cuda
    .venv/bin/python benchmarks/cost_check.py --train-subset 8192   # a CPU: a subset

The data: the study's data set if this machine has it, else ``--data`` (default
cifar10-jpeg, the JPEG copy of CIFAR-10 in ../shared/data: same shapes and sizes as
CIFAR-10). The data set is loaded once before the clocks start, as a sweep's worker
loads it once for all its trials. Only eta_tilde <= ``--max-lr`` is trained, so no member diverges in the epoch.
Writes benchmarks/results/cost_check_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from smallbatch.data import load_data
from smallbatch.ensemble import train_ensemble
from smallbatch.provenance import measurement_header, write_measurement
from smallbatch.studies import Study, calibrate_rates, ensemble_groups, load_study
from smallbatch.train import prepare_device, resolve_device

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="resnet-bn")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 128, 1024])
    parser.add_argument("--data", default="cifar10-jpeg",
                        help="data set to train on (default cifar10-jpeg)")
    parser.add_argument("--train-subset", type=int, default=None,
                        help="train on this many images (default: all) and test on a fifth as "
                             "many (CIFAR-10's ratio)")
    parser.add_argument("--max-lr", type=float, default=2.0 ** -5,
                        help="train only eta_tilde <= this (default 2^-5)")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="timed seconds per calibrated rate")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    prepare_device(device)
    full = load_study(args.study, "full")
    subsets = {"data": args.data, "num_epochs": 1, "train_subset": args.train_subset,
               "test_subset": args.train_subset // 5 if args.train_subset else None}
    base = full.base.replace(**subsets)
    data = load_data(args.data, train_subset=subsets["train_subset"],
                     test_subset=subsets["test_subset"], subset_seed=base.subset_seed,
                     device=device)  # loaded once, as a sweep's worker does: not timed
    rows = []
    started = time.perf_counter()
    for m in args.batch_sizes:
        configs = [c.replace(**subsets) for c in full.trials() if c.batch_size == m and c.base_lr <= args.max_lr]
        if not configs:
            raise SystemExit(f"{args.study} has no full-scale trial at m = {m} with "
                             f"eta_tilde <= {args.max_lr:g}")
        group = ensemble_groups(configs)[0]
        block = (("batch_size", (m,)), ("base_lr", tuple(c.base_lr for c in group)),
                 ("seed", (group[0].seed,)))
        one = Study(name=f"{args.study}-check", scale="full", base=base, blocks=(block,))
        calibrated = calibrate_rates(one, device=str(device), seconds=args.seconds)[m]
        clock = time.perf_counter()
        results = train_ensemble(group, data=data, device=device, progress=False)
        wall = time.perf_counter() - clock
        examples = sum(r.num_steps * r.config.batch_size for r in results)
        real = examples / wall
        rows.append({"batch_size": m, "members": len(group), "examples": examples,
                     "wall_seconds": wall, "real_rate": real, "calibrated_rate": calibrated,
                     "ratio": real / calibrated,
                     "statuses": sorted({r.status for r in results})})
        print(f"m={m}: {len(group)} members, real {real:,.0f} ex/s, calibrated "
              f"{calibrated:,.0f} ex/s, ratio {real / calibrated:.2f}", flush=True)
    record = {**measurement_header(device), "study": args.study, "data": args.data,
              "train_subset": args.train_subset,
              "seconds": time.perf_counter() - started, "rows": rows}
    lines = [f"# Cost estimate against real training on {record['device_name']} "
             f"({record['device']}, {record['threads']} threads), torch {record['torch']}, "
             f"{record['measured']}", "",
             f"Commit {record['commit']}. Study {args.study} at the full scale, one epoch on "
             f"{args.data} (train subset {args.train_subset or 'all'}, test subset "
             f"{subsets['test_subset'] or 'all'}), the first lock-step "
             f"ensemble of each m with eta_tilde <= {args.max_lr:g}. Real = training examples "
             "/ wall time (data, augmentation and test evaluation included); calibrated = "
             "what full_cost.py divides by.", "",
             "| m | members | real examples/s | calibrated examples/s | real / calibrated |",
             "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['batch_size']} | {row['members']} | {row['real_rate']:,.0f} | "
                     f"{row['calibrated_rate']:,.0f} | {row['ratio']:.2f} |")
    write_measurement(args.out or RESULTS, f"cost_check_{device.type}", record, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
