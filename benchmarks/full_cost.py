"""What the published studies cost at the full scale (the paper's protocol), measured here.

For every named study at ``--scale full``: its trials and training examples (the dry run),
and the training rate of its lock-step ensembles at each batch size, timed on random inputs
of the data's shape (``smallbatch.studies.calibrate_rates``: no data set needed); the
estimated wall time is examples / rate, summed over the trials. Runs with a different
batch-norm batch (ghost BN) are costed at the ordinary-BN rate of the same m.

    .venv/bin/python benchmarks/full_cost.py                 # this machine's CPU
    .venv/bin/python benchmarks/full_cost.py --device cuda   # a GPU, where there is one

Writes benchmarks/results/full_cost_<device>.json and .md (the book's full-protocol chapter
reads them). Measure on an otherwise idle machine. On a copy of the checkout whose git
history is not its own (a GPU machine sent the working tree), set SMALLBATCH_COMMIT to the
commit the copy holds; it is recorded instead of git's answer.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from smallbatch.provenance import measurement_header, write_measurement
from smallbatch.studies import calibrate_rates, dry_run, load_study, study_names
from smallbatch.train import resolve_device

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = {"cifar10": ((3, 32, 32), 10), "cifar10-jpeg": ((3, 32, 32), 10),
          "cifar100": ((3, 32, 32), 100), "fashion-mnist": ((1, 28, 28), 10)}


def costed_as_plain_bn(study):
    """``study`` with ghost BN taken out: its runs are costed at the plain-BN rate of their m."""
    return dataclasses.replace(
        study, base=study.base.replace(bn_batch_size=None),
        blocks=tuple(tuple(axis for axis in block if axis[0] != "bn_batch_size")
                     for block in study.blocks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--studies", nargs="*", default=None,
                        help="named studies to cost (default: all)")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="timed seconds per batch size (after two warm-up steps)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    rates_cache: dict[tuple, dict[int, float]] = {}
    studies = []
    started = time.perf_counter()
    for name in args.studies or study_names():
        study = load_study(name, "full")
        if study.base.data not in SHAPES:
            print(f"{name}: skipped (data {study.base.data} has no known shape here)")
            continue
        shape, classes = SHAPES[study.base.data]
        key = (study.base.model, study.base.batch_norm, shape, classes,
               tuple(sorted({c.batch_size for c in study.trials()})))
        if key not in rates_cache:
            costed = costed_as_plain_bn(study)
            print(f"{name}: timing {study.base.model} (BN {study.base.batch_norm}) ...",
                  flush=True)
            rates_cache[key] = calibrate_rates(costed, device=str(device),
                                               seconds=args.seconds, input_shape=shape,
                                               num_classes=classes)
        rates = rates_cache[key]
        table = dry_run(study, rates=rates)
        studies.append({
            "study": name, "data": study.base.data, "model": study.base.model,
            "batch_norm": study.base.batch_norm, "epochs": study.base.num_epochs,
            "trials": len(table), "examples": int(table["examples"].sum()),
            "hours": float(table["estimated_seconds"].sum() / 3600),
            "rates": {str(m): r for m, r in sorted(rates.items())}})
        print(f"{name}: {studies[-1]['trials']} trials, {studies[-1]['hours']:.0f} h", flush=True)
    record = {**measurement_header(device),
              "seconds": time.perf_counter() - started, "studies": studies}
    lines = [f"# Full-scale cost on {record['device_name']} ({record['device']}, "
             f"{record['threads']} threads), torch {record['torch']}, {record['measured']}",
             "", f"Commit {record['commit']}. Estimated wall time = training examples / "
             "measured lock-step training rate, summed over each study's trials.", "",
             "| study | data | model | BN | epochs | trials | training examples | hours |",
             "|---|---|---|---|---|---|---|---|"]
    for row in studies:
        lines.append(f"| {row['study']} | {row['data']} | {row['model']} | {row['batch_norm']} "
                     f"| {row['epochs']} | {row['trials']} | {row['examples']:,} | "
                     f"{row['hours']:,.0f} |")
    write_measurement(args.out or RESULTS, f"full_cost_{device.type}", record, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
