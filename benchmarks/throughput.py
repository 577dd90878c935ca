"""Training throughput: the naive loop, the single-run trainer and lock-step ensembles.

ResNet-8 with and without batch norm on Fashion-MNIST (1x28x28; synthetic data of the same
shape if Fashion-MNIST is absent: the rate does not depend on pixel values), plain SGD, at
m = 2, 8, 32, 128, 512, 1024. Every measurement runs in a fresh subprocess (clean peak
memory, its own thread count); "2 procs" runs two single-threaded processes at once over
the same wall-clock window and adds their rates. Ratios are taken against the best
large-batch (m >= 512) single-model rate measured in the same run, so they compare like
with like on one machine at one moment (noise between runs here is 10-30%).

    .venv/bin/python benchmarks/throughput.py            # ~12 minutes on 2 cores
    .venv/bin/python benchmarks/throughput.py --quick    # a subset, ~2 minutes

Writes benchmarks/results/throughput.json (every row, the machine, the summary) and
benchmarks/results/throughput.md (the tables). The book's "Sweep engine" chapter plots them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BATCH_SIZES = (2, 8, 32, 128, 512, 1024)
ENSEMBLE_SIZES = (4, 8, 16, 32)
MAX_STEP_EXAMPLES = 4096  # K * m above this is not measured (memory)


# --------------------------------------------------------------------- one measurement

def _load(device):
    from smallbatch.data import DataError, load_data

    try:
        return load_data("fashion-mnist", device=device)
    except DataError:
        return load_data("synthetic", device=device)


def measure(spec: dict) -> dict:
    """Run one measurement in this process and return its row."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(spec["threads"])
    from smallbatch.ensemble import LockstepEnsemble
    from smallbatch.models import build_model
    from smallbatch.train import resolve_device, sgd_step, tune_malloc

    device = resolve_device("auto")
    data = _load(device)
    m, members, mode = spec["m"], spec["members"], spec["mode"]
    batch_norm = "all" if spec["bn"] else "none"
    torch.manual_seed(0)
    model = build_model("resnet8", in_channels=1, num_classes=10, batch_norm=batch_norm)
    model = model.to(device)
    lr = m * 2.0**-10  # small enough that no configuration diverges during the timing
    generator = torch.Generator().manual_seed(0)

    if mode == "naive":
        # The textbook loop: a per-sample DataLoader over the data set, nn.Module, optim.SGD.
        dataset = torch.utils.data.TensorDataset(data.train_x.cpu(), data.train_y.cpu())
        loader = torch.utils.data.DataLoader(dataset, batch_size=m, shuffle=True,
                                             drop_last=True, generator=generator)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)

        def batches():
            while True:
                for x, y in loader:
                    yield x.to(device), y.to(device)

        def step(x, y):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    else:
        if device.type == "cpu":
            tune_malloc()
        channels_last = device.type == "cpu"

        def batches():
            while True:
                for x, y in data.train_batches(m, generator=generator, augment=False):
                    yield (x.contiguous(memory_format=torch.channels_last)
                           if channels_last else x), y

        if mode == "single":
            model = model.to(memory_format=torch.channels_last) if channels_last else model
            optimizer = torch.optim.SGD(model.parameters(), lr=lr)

            def step(x, y):
                sgd_step(model, optimizer, x, y, lr)
        else:
            ensemble = LockstepEnsemble(model, members, method=mode,
                                        channels_last=channels_last)
            lrs = torch.full((members,), lr, device=device)

            def step(x, y):
                ensemble.sgd_step(x, y, lrs)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    stream = batches()
    for _ in range(spec["warmup_steps"]):
        step(*next(stream))
    sync()
    start_at = spec.get("start_at")
    if start_at:  # two processes: measure over the same wall-clock window
        time.sleep(max(0.0, start_at - time.time()))
    steps = 0
    started = time.perf_counter()
    while True:
        step(*next(stream))
        steps += 1
        if steps % 4 == 0 or m * members >= 256:
            sync()
            if time.perf_counter() - started >= spec["seconds"]:
                break
    sync()
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    return {**spec, "steps": steps, "seconds": elapsed,
            "examples_per_second": steps * m * members / elapsed,
            "peak_memory_mb": peak_mb, "device": str(device), "data": data.label}


# ------------------------------------------------------------------------ the driver

def _run(spec: dict, processes: int) -> dict:
    """Run ``spec`` in ``processes`` fresh subprocesses at once; add up their rates."""
    if processes > 1:
        spec = {**spec, "start_at": time.time() + 8.0 + 2.0 * processes}
    command = [sys.executable, __file__, "--one", json.dumps(spec)]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
                for _ in range(processes)]
    rows = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode:
            return {**spec, "processes": processes, "error": f"exit {child.returncode}"}
        rows.append(json.loads(out.strip().splitlines()[-1]))
    row = dict(rows[0])
    row.pop("start_at", None)
    row["processes"] = processes
    row["examples_per_second"] = sum(r["examples_per_second"] for r in rows)
    row["peak_memory_mb"] = max(r["peak_memory_mb"] for r in rows)
    row["peak_memory_mb_total"] = sum(r["peak_memory_mb"] for r in rows)
    return row


def plan(quick: bool) -> list[tuple[dict, int]]:
    cores = os.cpu_count() or 1
    batch_sizes = (2, 32, 512) if quick else BATCH_SIZES
    ensemble_sizes = (8,) if quick else ENSEMBLE_SIZES
    seconds = 1.5 if quick else 2.5
    runs = []
    for bn in (True, False):
        for m in batch_sizes:
            base = dict(m=m, bn=bn, seconds=seconds, warmup_steps=3)
            runs.append((dict(base, mode="naive", members=1, threads=cores), 1))
            runs.append((dict(base, mode="single", members=1, threads=cores), 1))
            if cores >= 2:
                runs.append((dict(base, mode="single", members=1, threads=1), 2))
            for members in ensemble_sizes:
                if members * m > MAX_STEP_EXAMPLES:
                    continue
                runs.append((dict(base, mode="grouped", members=members, threads=1), 2))
            if 8 * m <= MAX_STEP_EXAMPLES:
                runs.append((dict(base, mode="grouped", members=8, threads=cores), 1))
                runs.append((dict(base, mode="vmap", members=8, threads=1), 2))
    return runs


def label(row: dict) -> str:
    name = {"naive": "naive loop", "single": "single-run trainer",
            "grouped": f"grouped ensemble K={row['members']}",
            "vmap": f"vmap ensemble K={row['members']}"}[row["mode"]]
    where = (f"{row['processes']} procs x {row['threads']} thread" if row["processes"] > 1
             else f"1 proc x {row['threads']} threads")
    return f"{name} ({where})"


def summarise(rows: list[dict]) -> dict:
    """Ratios to the best large-batch single-model rate; the paper-size grid estimate."""
    summary = {}
    for bn in (True, False):
        mine = [r for r in rows if r["bn"] == bn and "error" not in r]
        reference = max((r["examples_per_second"] for r in mine
                         if r["mode"] == "single" and r["m"] >= 512), default=float("nan"))
        per_m = {}
        for m in sorted({r["m"] for r in mine}):
            at_m = [r for r in mine if r["m"] == m]
            best = max(at_m, key=lambda r: r["examples_per_second"])
            naive = next(r for r in at_m if r["mode"] == "naive")
            per_m[m] = {"best": label(best), "best_rate": best["examples_per_second"],
                        "ratio": best["examples_per_second"] / reference,
                        "naive_rate": naive["examples_per_second"],
                        "naive_ratio": naive["examples_per_second"] / reference}
        # The paper's grid: m = 2 ... 2048 x eta_tilde = 2^-12 ... 2^0 (13 values), 82 epochs,
        # here on 60,000 training images. m = 2048 is taken at the m = 1024 rate.
        epochs, train_size, learning_rates = 82, 60_000, 13
        grid_m = [2 ** k for k in range(1, 12)]

        def rate(m, key):
            nearest = min(per_m, key=lambda known: abs(math.log2(known) - math.log2(m)))
            return per_m[nearest][key]

        def hours(key):
            return sum(learning_rates * epochs * (train_size // m) * m / rate(m, key)
                       for m in grid_m) / 3600

        summary["bn" if bn else "no_bn"] = {
            "reference_large_batch_rate": reference,
            "per_batch_size": per_m,
            "min_ratio": min(v["ratio"] for v in per_m.values()),
            "paper_grid": {"trials": learning_rates * len(grid_m), "epochs": epochs,
                           "train_size": train_size,
                           "hours_engine": hours("best_rate"),
                           "hours_naive": hours("naive_rate")},
        }
        grid = summary["bn" if bn else "no_bn"]["paper_grid"]
        grid["speedup"] = grid["hours_naive"] / grid["hours_engine"]
    return summary


def machine() -> dict:
    import torch

    from smallbatch.provenance import cpu_name, git_commit

    return {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.cuda.is_available(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "git_commit": git_commit(), "hostname": platform.node(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def write_markdown(result: dict, path: Path) -> None:
    lines = [f"# Throughput on {result['machine']['cpu']} ({result['machine']['cores']} cores), "
             f"torch {result['machine']['torch']}, {result['machine']['date']}", "",
             f"Commit {result['machine']['git_commit']}. ResNet-8, {result['rows'][0]['data']}, "
             "training examples per second; ratio = rate / best large-batch (m >= 512) "
             "single-model rate of the same run.", ""]
    for key, title in (("bn", "with batch norm"), ("no_bn", "without batch norm")):
        s = result["summary"][key]
        lines += [f"## ResNet-8 {title}", "",
                  f"Reference (best single model, m >= 512): "
                  f"{s['reference_large_batch_rate']:,.0f} examples/s.", "",
                  "| m | naive loop | ratio | best engine configuration | examples/s | ratio |",
                  "|---|---|---|---|---|---|"]
        for m, v in s["per_batch_size"].items():
            lines.append(f"| {m} | {v['naive_rate']:,.0f} | {v['naive_ratio']:.2f} | "
                         f"{v['best']} | {v['best_rate']:,.0f} | {v['ratio']:.2f} |")
        g = s["paper_grid"]
        lines += ["", f"Paper-size grid ({g['trials']} trials, {g['epochs']} epochs of "
                  f"{g['train_size']:,} images): {g['hours_engine']:,.0f} h with the engine, "
                  f"{g['hours_naive']:,.0f} h with the naive loop ({g['speedup']:.1f}x).", ""]
    lines += ["## Every measurement", "",
              "| BN | m | configuration | examples/s | peak memory per process (MB) |",
              "|---|---|---|---|---|"]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['bn']} | {r['m']} | {r['mode']} K={r['members']} | "
                         f"{r['error']} | |")
            continue
        lines.append(f"| {'on' if r['bn'] else 'off'} | {r['m']} | {label(r)} | "
                     f"{r['examples_per_second']:,.0f} | {r['peak_memory_mb']:,.0f} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a subset (about 2 minutes)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(json.loads(args.one))))
        return 0
    runs = plan(args.quick)
    rows = []
    started = time.time()
    for index, (spec, processes) in enumerate(runs, 1):
        row = _run(spec, processes)
        rows.append(row)
        rate = row.get("examples_per_second")
        print(f"[{index}/{len(runs)}] bn={spec['bn']} m={spec['m']:>4} {label(row):<48} "
              f"{rate:>9,.0f} ex/s" if rate else f"[{index}/{len(runs)}] {row}", flush=True)
    result = {"machine": machine(), "quick": args.quick, "rows": rows,
              "summary": summarise(rows), "wall_time": time.time() - started}
    args.out.mkdir(parents=True, exist_ok=True)
    name = "throughput-quick" if args.quick else "throughput"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    write_markdown(result, args.out / f"{name}.md")
    for key in ("bn", "no_bn"):
        s = result["summary"][key]
        print(f"{key}: min ratio {s['min_ratio']:.2f}; paper grid speed-up "
              f"{s['paper_grid']['speedup']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
