"""The ``smallbatch`` command line.

    smallbatch train --data fashion-mnist --model resnet8 --batch-size 32 --base-lr 2^-8 --json
    smallbatch sweep smoke --scale smoke [--dry-run] [--executor processes --workers 2]
    smallbatch results smoke --scale smoke

Every TrainConfig field is an option of ``train`` (``--batch-size``, ``--base-lr`` ...);
learning rates may be written as powers of two (``2^-8`` or ``2**-8``). The book is built
by the toolchain outside this package: ``python -m smallbatch_book`` (``make book``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import typing

__all__ = ["main"]


def _number(text: str) -> float:
    """:func:`~smallbatch.studies.spec.parse_number` for argparse, its message kept."""
    from .studies.spec import parse_number  # imports torch: not at import of the CLI

    try:
        return parse_number(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _optional(parse):
    def convert(text: str):
        return None if text.lower() in ("none", "") else parse(text)
    return convert


def _boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (use true or false)")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    from .train import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        hint = hints[field.name]
        args = typing.get_args(hint)
        optional = type(None) in args
        base = next((a for a in args if a is not type(None)), hint) if args else hint
        flag = "--" + field.name.replace("_", "-")
        help_text = f"(default: {field.default})"
        if base is bool:
            parser.add_argument(flag, type=_boolean, default=field.default, metavar="BOOL",
                                help=help_text)
        elif typing.get_origin(base) is tuple or base is tuple:
            parser.add_argument(flag, type=_number, nargs="*", default=field.default,
                                help=help_text)
        else:
            parse = {int: int, float: _number, str: str}[base]
            parser.add_argument(flag, type=_optional(parse) if optional else parse,
                                default=field.default, help=help_text)


def _train(args: argparse.Namespace) -> int:
    from .data import DataError
    from .store import save_result
    from .train import ConfigError, TrainConfig, train

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    values["lr_milestones"] = tuple(values["lr_milestones"])
    try:
        config = TrainConfig(**values)
        result = train(config, data_root=args.data_root, download=args.download,
                       device=args.device, progress=not args.quiet and not args.json)
    except (ConfigError, DataError) as error:
        print(f"smallbatch train: error: {error}", file=sys.stderr)
        return 2
    if args.results:
        save_result(result, args.results)
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(f"{result.data_label}, {config.model}, m={config.batch_size}, "
              f"eta_tilde={config.base_lr:g} (eta={config.peak_lr:g}): {result.status}")
        print(result.history().drop(columns="config_hash").to_string(index=False))
        if result.test_accuracy is not None:
            print(f"median test accuracy of the last 5 epochs: {result.test_accuracy:.4f}")
        else:
            print(f"diverged in epoch {result.diverged_epoch} (step {result.diverged_step})")
        print(f"{result.examples_per_second:,.0f} examples/s on {result.provenance['device']}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .store import RecordError
    from .data import DataError
    from .studies import (StudyError, calibrate_rates, dry_run, ensemble_limits, load_study,
                          run_study)

    try:
        # the caps this device gets unless given (studies.ENSEMBLE_LIMITS)
        members, examples = ensemble_limits("cpu" if args.scheduler else args.device)
        if args.max_ensemble is None:
            args.max_ensemble = members
        if args.max_step_examples is None:
            args.max_step_examples = examples
        if args.max_step_examples < 1:
            raise StudyError(f"--max-step-examples must be at least 1, got "
                             f"{args.max_step_examples}")
        study = load_study(args.study, args.scale)
        if args.dry_run:
            if args.calibrate:
                rates, source = calibrate_rates(study, max_ensemble=args.max_ensemble,
                                                max_step_examples=args.max_step_examples,
                                                device=args.device,
                                                data_root=args.data_root), "calibrated now"
            else:
                rates, source = _stored_rates(study, args.results), "this study's stored runs"
            table = dry_run(study, results_dir=args.results, max_ensemble=args.max_ensemble,
                            max_step_examples=args.max_step_examples, rates=rates)
            _print_dry_run(study, table, source)
            return 0
        report = run_study(study, results_dir=args.results, executor=args.executor,
                           workers=args.workers, scheduler=args.scheduler,
                           data_root=args.data_root, device=args.device,
                           max_ensemble=args.max_ensemble,
                           max_step_examples=args.max_step_examples, method=args.method,
                           threads=args.threads, progress=not args.quiet,
                           pack_seeds=args.pack_seeds, step_mode=args.step_mode)
    except (StudyError, RecordError, DataError) as error:
        print(f"smallbatch sweep: error: {error}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report.status_counts.items()))
    print(f"{report.study} ({report.scale}): {report.total} trials: {counts}. "
          f"This run trained {report.trained} ({report.failed} failed) in "
          f"{report.wall_time:.0f} s on {report.executor}; {report.already_stored} were "
          f"already stored in {report.results_dir}")
    for error in report.errors:
        print(f"smallbatch sweep: failed trials: {error}", file=sys.stderr)
    return 1 if report.failed else 0


def _stored_rates(study, results_dir) -> dict[int, float]:
    """Examples/s of a whole ensemble by batch size, from this study's stored records."""
    from .store import load_records

    records = load_records(results_dir or study.results_dir, warn=False).results.values()
    rates: dict[int, list[float]] = {}
    for record in records:  # a member's examples_per_second is its whole ensemble's
        if record.status != "failed" and record.examples_per_second:
            rates.setdefault(record.config.batch_size, []).append(record.examples_per_second)
    return {m: sorted(v)[len(v) // 2] for m, v in rates.items()}


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _print_dry_run(study, table, source: str) -> None:
    missing = table[table.status.isin(["missing", "failed"])]
    print(f"{study.name} ({study.scale}): {len(table)} trials in "
          f"{table.ensemble.nunique()} lock-step ensembles; {len(missing)} missing")
    print(table.to_string(index=False))
    if missing.empty:
        print(f"nothing to train: all {len(table)} trials are stored")
        return
    examples = missing.examples.sum()
    print(f"to train: {examples:,.0f} training examples", end="")
    seconds = missing.estimated_seconds
    if seconds.notna().all():
        print(f", about {_duration(seconds.sum())} on this machine (rates: {source})")
    else:
        unknown = sorted(missing.loc[seconds.isna(), "batch_size"].unique())
        print(f"; time unknown: no stored run at m = {', '.join(map(str, unknown))} to take "
              "a rate from (add --calibrate)")


def _results(args: argparse.Namespace) -> int:
    from .store import load_records, trials_frame
    from .studies import StudyError, load_study

    try:
        study = load_study(args.study, args.scale)
    except StudyError as error:
        print(f"smallbatch results: error: {error}", file=sys.stderr)
        return 2
    directory = args.results or study.results_dir
    records = load_records(directory, warn=False)
    for problem in records.problems:
        print(f"skipped {problem}", file=sys.stderr)
    frame = trials_frame(records)
    if frame.empty:
        print(f"{study.name} ({study.scale}): no records in {directory}")
        return 0
    frame["log2_base_lr"] = frame.base_lr.map(lambda v: round(math.log2(v), 3))
    summary = frame.pivot_table(index="log2_base_lr", columns="batch_size",
                                values="test_accuracy", aggfunc="median")
    status = frame.groupby("status").size().to_dict()
    print(f"{study.name} ({study.scale}): {len(frame)} records in {directory}: {status}")
    print("median test accuracy over seeds (rows: log2 eta_tilde, columns: batch size m; "
          "blank: diverged or missing)")
    print(summary.to_string(float_format=lambda v: f"{v:.4f}", na_rep=""))
    return 0


def _add_study_options(parser: argparse.ArgumentParser) -> None:
    from .presets import SCALES

    parser.add_argument("--scale", default="scaled", choices=SCALES,
                        help="the study's size (default scaled)")
    parser.add_argument("--results", default=None, metavar="DIR",
                        help="records folder (default results/<study>/<scale>)")


def build_parser() -> argparse.ArgumentParser:
    from .ensemble import METHODS, STEP_MODES
    from .studies.run import EXECUTORS

    parser = argparse.ArgumentParser(
        prog="smallbatch",
        description="Batch size and learning rate in SGD (Masters and Luschi, 2018).")
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = commands.add_parser("train", help="train one model and print its metrics")
    _add_config_options(train_parser)
    train_parser.add_argument("--data-root", default=None,
                              help="data folder (default: $SMALLBATCH_DATA or "
                                   "~/.cache/smallbatch/data)")
    train_parser.add_argument("--download", action="store_true",
                              help="let torchvision download a missing data set")
    train_parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda")
    train_parser.add_argument("--results", default=None, metavar="DIR",
                              help="also store the result as DIR/<config hash>.json")
    train_parser.add_argument("--json", action="store_true", help="print the result as JSON")
    train_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    train_parser.set_defaults(handler=_train)

    sweep_parser = commands.add_parser("sweep", help="train a study's grid (resumable)")
    sweep_parser.add_argument("study", help="a named study or a study YAML file")
    _add_study_options(sweep_parser)
    sweep_parser.add_argument("--dry-run", action="store_true",
                              help="list the trials and their cost; train nothing")
    sweep_parser.add_argument("--calibrate", action="store_true",
                              help="with --dry-run: time a few steps of each batch size here "
                                   "to estimate the wall time")
    sweep_parser.add_argument("--executor", default="inline",
                              choices=EXECUTORS,
                              help="inline (default): this process; processes: local worker "
                                   "processes; dask: a Dask cluster")
    sweep_parser.add_argument("--workers", type=int, default=2,
                              help="worker processes for processes / a Dask LocalCluster")
    sweep_parser.add_argument("--threads", type=int, default=None,
                              help="torch threads per worker (default: CPUs / workers)")
    sweep_parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                              help="a running Dask scheduler, e.g. tcp://host:8786 "
                                   "(implies --executor dask)")
    sweep_parser.add_argument("--max-ensemble", type=int, default=None,
                              help="most trials per lock-step ensemble (default: the "
                                   "device's, smallbatch.studies.ENSEMBLE_LIMITS: 16 on CPU, "
                                   "512 on CUDA)")
    sweep_parser.add_argument("--max-step-examples", type=int, default=None, metavar="N",
                              help="most examples per step of a whole ensemble, K x m "
                                   "(default: the device's, smallbatch.studies.ENSEMBLE_LIMITS: "
                                   "64 on CPU, sized on a 2-core CPU; 1,024 on CUDA; "
                                   "benchmarks/ensemble_cap.py measures others)")
    sweep_parser.add_argument("--pack-seeds", action="store_true",
                              help="train a learning-rate column's seeds in one lock-step "
                                   "ensemble, each member with its own seed's weights and "
                                   "batches (benchmarks/seed_ensembles.py measures the gain)")
    sweep_parser.add_argument("--step-mode", default="auto", choices=STEP_MODES,
                              help="how a step is driven: graph = captured as a CUDA graph "
                                   "(default auto: batch iterators; see train_ensemble)")
    sweep_parser.add_argument("--method", default="auto", choices=METHODS,
                              help="lock-step implementation (default auto)")
    sweep_parser.add_argument("--data-root", default=None)
    sweep_parser.add_argument("--device", default="auto")
    sweep_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep_parser.set_defaults(handler=_sweep)

    results_parser = commands.add_parser("results", help="summarise a study's stored results")
    results_parser.add_argument("study", help="a named study or a study YAML file")
    _add_study_options(results_parser)
    results_parser.set_defaults(handler=_results)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "scheduler", None):
        args.executor = "dask"
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
