"""Small batches on a GPU: today's engine against seeds packed in one captured step.

Today's engine (the sweep's CPU defaults): ensembles of one seed, at most 16 members and
64 examples per step, fed batch by batch from the host loop. The new one: a learning-rate
column's seeds packed into one ensemble (each member with its own seed's weights, batches
and augmentation), the device's caps (``smallbatch.studies.ENSEMBLE_LIMITS``), and the whole
step (per-member gather, forward, backward, SGD update, running sums) captured once as a
CUDA graph and replayed (``train_ensemble(step_mode="graph")``; "device", the same step
uncaptured, where there is no CUDA). Both train ResNet-20 with batch norm on random
in-memory data of CIFAR-10's shape at m = 2, 8, 32, 128 and 2048, with the ensembles the
full-scale resnet-bn study's grid gives each engine; then the new engine's rate at every
m of every full-scale study, and each study's estimated hours (training examples / rate,
as ``full_cost.py`` computes them; ghost-BN runs costed at the plain-BN rate).

    SMALLBATCH_COMMIT=<commit> .venv/bin/python benchmarks/small_batch_cuda.py --device cuda

About 10 minutes on an H100 (``--seconds`` per timing; ``--studies`` to cost fewer).
Writes benchmarks/results/small_batch_<device>.json and .md; the sweep-engine chapter
shows them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from smallbatch.data.core import TensorImageData
from smallbatch.ensemble import LockstepEnsemble, _make_stepper
from smallbatch.models import build_model
from smallbatch.provenance import measurement_header, write_measurement
from smallbatch.studies import (ENSEMBLE_LIMITS, MAX_STEP_EXAMPLES, dry_run, ensemble_groups,
                                load_study, study_names)
from smallbatch.train import prepare_device, resolve_device

from full_cost import SHAPES, costed_as_plain_bn  # benchmarks/ (this script's folder)

RESULTS = Path(__file__).resolve().parent / "results"
TODAY = {"max_size": 16, "max_step_examples": MAX_STEP_EXAMPLES, "pack_seeds": False}


def random_data(shape, classes: int, size: int, device) -> TensorImageData:
    generator = torch.Generator().manual_seed(0)
    channels = shape[0]
    return TensorImageData(
        name="random", label="random", num_classes=classes,
        class_names=tuple(str(c) for c in range(classes)),
        train_x=torch.randn((size, *shape), generator=generator).to(device),
        train_y=torch.randint(0, classes, (size,), generator=generator).to(device),
        test_x=torch.randn((64, *shape), generator=generator).to(device),
        test_y=torch.randint(0, classes, (64,), generator=generator).to(device),
        mean=torch.zeros(channels), std=torch.ones(channels))


def rate(group, data, device, mode: str, seconds: float) -> float:
    """Training examples per second of the ensemble of ``group`` driven by ``mode``."""
    base = group[0]
    models = []
    for config in group:
        torch.manual_seed(config.seed)
        models.append(build_model(base.model, in_channels=data.input_shape[0],
                                  num_classes=data.num_classes,
                                  input_size=data.input_shape[1], batch_norm=base.batch_norm,
                                  bn_batch_size=None).to(device))
    ensemble = LockstepEnsemble(models, method="grouped", channels_last=device.type == "cpu")
    shared = len({c.seed for c in group}) == 1
    generators = [torch.Generator().manual_seed(c.seed) for c in group]
    steps = data.steps_per_epoch(base.batch_size)
    stepper = _make_stepper(mode, ensemble, data, base, generators, shared_input=shared,
                            steps=steps, dtype=torch.float32, any_decay=False)
    lr = torch.full((steps, len(group)), 1e-3, device=device)
    done = 0

    def run(count: int) -> None:
        nonlocal done
        for _ in range(count):
            if done % steps == 0:
                stepper.start_epoch(lr, None)
            stepper.step()
            done += 1

    run(5)  # warm-up (and the capture)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or count < 5:
        run(5)
        count += 5
        sync()
    return len(group) * base.batch_size * count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[2, 8, 32, 128, 2048])
    parser.add_argument("--studies", nargs="*", default=None,
                        help="full-scale studies to cost with the new engine (default: all)")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per rate")
    parser.add_argument("--train-size", type=int, default=50_000,
                        help="random training images (CIFAR-10 has 50,000)")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    prepare_device(device)
    new_mode = "graph" if device.type == "cuda" else "device"
    limits = ENSEMBLE_LIMITS.get(device.type, ENSEMBLE_LIMITS["cpu"])
    new = {"max_size": limits[0], "max_step_examples": limits[1], "pack_seeds": True}
    started = time.perf_counter()

    # 1. ResNet-20 with BN: today's engine against the new one
    headline = load_study("resnet-bn", "full")
    shape, classes = SHAPES[headline.base.data]
    data = random_data(shape, classes, args.train_size, device)
    engines = []
    for m in args.batch_sizes:
        trials = [c for c in headline.trials() if c.batch_size == m]
        if not trials:
            trials = [headline.trials()[0].replace(batch_size=m)]
        row = {"batch_size": m}
        for name, caps, mode in (("today", TODAY, "batches"), ("new", new, new_mode)):
            group = ensemble_groups(trials, **caps)[0]
            row[f"{name}_members"] = len(group)
            row[f"{name}_rate"] = rate(group, data, device, mode, args.seconds)
        row["speedup"] = row["new_rate"] / row["today_rate"]
        engines.append(row)
        print(f"m={m}: today {row['today_rate']:,.0f} ex/s (K={row['today_members']}), "
              f"new {row['new_rate']:,.0f} ex/s (K={row['new_members']}): "
              f"{row['speedup']:.1f}x", flush=True)
    del data

    # 2. the full protocol under the new engine
    studies, cache = [], {}
    for name in args.studies if args.studies is not None else study_names():
        study = load_study(name, "full")
        if study.base.data not in SHAPES:
            continue
        shape, classes = SHAPES[study.base.data]
        costed = costed_as_plain_bn(study)
        key = (study.base.model, study.base.batch_norm, shape, classes)
        trials = costed.trials()
        rates = cache.setdefault(key, {})
        data = None
        for m in sorted({c.batch_size for c in trials}):
            if m in rates:
                continue
            data = data or random_data(shape, classes, args.train_size, device)
            group = ensemble_groups([c for c in trials if c.batch_size == m], **new)[0]
            rates[m] = rate(group, data, device, new_mode, args.seconds)
        table = dry_run(study, rates=rates)
        studies.append({"study": name, "trials": len(table),
                         "examples": int(table["examples"].sum()),
                         "hours": float(table["estimated_seconds"].sum() / 3600),
                         "rates": {str(m): r for m, r in sorted(rates.items())}})
        print(f"{name}: {studies[-1]['hours']:.1f} h", flush=True)

    record = {**measurement_header(device), "seconds": time.perf_counter() - started,
              "new_step_mode": new_mode, "new_limits": list(limits), "engines": engines,
              "studies": studies}
    lines = [f"# Small batches on {record['device_name']} ({record['device']}), torch "
             f"{record['torch']}, {record['measured']}", "",
             f"Commit {record['commit']}; `benchmarks/small_batch_cuda.py`, "
             f"{record['seconds']:.0f} s. ResNet-20 with batch norm, random data of "
             "CIFAR-10's shape, training examples per second. Today: one seed per ensemble, "
             f"at most {TODAY['max_size']} members and {TODAY['max_step_examples']} examples "
             "per step, batch by batch. New: a learning-rate column's seeds packed, at most "
             f"{limits[0]} members and {limits[1]} examples per step, step mode "
             f"`{new_mode}`.", "",
             "| m | today: members | today: examples/s | new: members | new: examples/s | speed-up |",
             "|---|---|---|---|---|---|"]
    for row in engines:
        lines.append(f"| {row['batch_size']} | {row['today_members']} | "
                     f"{row['today_rate']:,.0f} | {row['new_members']} | "
                     f"{row['new_rate']:,.0f} | {row['speedup']:.1f}x |")
    lines += ["", "The full protocol under the new engine (training examples / measured rate, "
              "summed over each study's trials):", "", "| study | trials | hours |",
              "|---|---|---|"]
    lines += [f"| {s['study']} | {s['trials']} | {s['hours']:,.1f} |" for s in studies]
    lines += ["", f"Total: {sum(s['hours'] for s in studies):,.0f} hours."]
    write_measurement(args.out or RESULTS, f"small_batch_{device.type}", record, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
