"""How large a lock-step ensemble should be on this machine: training rate against the cap
on examples per ensemble step.

A sweep trains the trials of one m together as a lock-step ensemble of at most
``max_ensemble`` members and at most ``max_step_examples // m`` of them
(``smallbatch.studies.ensemble_groups``). The cap of 64 examples per step was measured on a
2-core CPU, where larger ensembles ran slower than separate runs (``throughput.py``). This
script times each m of a study at the full scale under several caps
(``smallbatch.studies.calibrate_rates``, random inputs of CIFAR's shape) and writes the rates
and each cap's estimated wall time for the study:

    .venv/bin/python benchmarks/ensemble_cap.py --device cuda --caps 64 256 1024 4096

Writes benchmarks/results/ensemble_cap_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from smallbatch.provenance import measurement_header, write_measurement
from smallbatch.studies import MAX_STEP_EXAMPLES, calibrate_rates, dry_run, load_study
from smallbatch.train import resolve_device

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--studies", nargs="+", default=["resnet-bn", "cifar-augment"])
    parser.add_argument("--caps", type=int, nargs="+", default=[MAX_STEP_EXAMPLES, 1024])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    started = time.perf_counter()
    rows = []
    for name in args.studies:
        study = load_study(name, "full")
        for cap in args.caps:
            rates = calibrate_rates(study, device=str(device), seconds=args.seconds,
                                    max_step_examples=cap, input_shape=(3, 32, 32),
                                    num_classes=100 if study.base.data == "cifar100" else 10)
            hours = float(dry_run(study, rates=rates)["estimated_seconds"].sum() / 3600)
            rows.append({"study": name, "cap": cap, "hours": hours,
                         "rates": {str(m): r for m, r in sorted(rates.items())}})
            print(f"{name}, cap {cap}: {hours:,.0f} h", flush=True)
    record = {**measurement_header(device), "seconds": time.perf_counter() - started,
              "default_cap": MAX_STEP_EXAMPLES, "rows": rows}
    sizes = sorted({int(m) for row in rows for m in row["rates"]})
    lines = [f"# Lock-step ensemble cap on {record['device_name']} ({record['device']}), "
             f"torch {record['torch']}, {record['measured']}", "",
             f"Commit {record['commit']}. Training examples/s of each m's ensemble at the full "
             "scale under each cap on examples per ensemble step, and the study's estimated "
             f"wall time. The sweep's default cap is {MAX_STEP_EXAMPLES}.", "",
             "| study | cap | " + " | ".join(f"m={m}" for m in sizes) + " | hours |",
             "|---|---|" + "---|" * len(sizes) + "---|"]
    for row in rows:
        cells = [f"{row['rates'][str(m)]:,.0f}" if str(m) in row["rates"] else ""
                 for m in sizes]
        lines.append(f"| {row['study']} | {row['cap']} | " + " | ".join(cells)
                     + f" | {row['hours']:,.0f} |")
    write_measurement(args.out or RESULTS, f"ensemble_cap_{device.type}", record, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
