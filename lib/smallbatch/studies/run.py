"""Running a study: its trials grouped into lock-step ensembles, trained by an executor
(in-process, local worker processes or a Dask cluster, through one code path), each
finished run stored at once; plus the dry run and the rate calibration that size a study
before it trains (book: "The sweep engine").

Running a study (:func:`run_study`) trains only the trials without a stored record: a
killed sweep loses no finished trial, and rerunning it creates no duplicate (records are
keyed by config hash and written atomically). Trials that differ only in optimiser
settings (the learning rate, its schedule and scaling, weight decay) and share everything
else (the seed included) train together as one lock-step ensemble on the same batch
sequence (:mod:`smallbatch.ensemble`); with ``pack_seeds`` a column's seeds join them,
each member with its own seed's weights and batches. Ensembles run seed by seed (the
whole grid with the first seed, then the next).
"""

from __future__ import annotations

import concurrent.futures as futures
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..ensemble import MEMBER_FIELDS, OPTIMISER_FIELDS, _build_ensemble, train_ensemble
from ..train import TrainConfig, TrainResult, config_hash, resolve_device, setup_run, train
from .spec import Study, StudyError, training_examples, validate_study

__all__ = ["EXECUTORS", "MAX_STEP_EXAMPLES", "ENSEMBLE_LIMITS", "ensemble_limits", "SweepReport", "ensemble_groups", "seed_major",
           "train_group", "train_or_load", "run_study", "dry_run", "calibrate_rates"]

EXECUTORS = ("inline", "processes", "dask")


def _ensemble_key(config: TrainConfig, fields: Sequence[str] = OPTIMISER_FIELDS) -> tuple:
    """What members of one ensemble share: every field but ``fields``."""
    values = config.to_dict()
    return tuple((k, str(v)) for k, v in sorted(values.items()) if k not in fields)


# Examples per step of a whole ensemble (K * m) beyond which it is split. Lock-step pays
# where per-step overhead dominates (small m); once K * m reaches ~256, oneDNN's grouped
# weight gradient runs ~2x slower than K separate convolutions, so an ensemble at m = 128
# was ~17% slower than sequential runs (benchmarks/). 64 keeps K * m in the range that pays.
MAX_STEP_EXAMPLES = 64

# The ensemble caps a sweep uses by device type when none are given: (members, examples
# per ensemble step). CPU: measured on this project's 2-core machine (above). CUDA: on an
# H100 a step at m <= 128 is launch-bound, and a cap of 1,024 examples per step was the
# best or within a few percent of it at every m <= 128 of the studies measured
# (benchmarks/results/ensemble_cap_cuda.md); members up to 512, so that with packed seeds a
# small m fills the GPU with as many runs as the grid has.
ENSEMBLE_LIMITS: dict[str, tuple[int, int]] = {"cpu": (16, MAX_STEP_EXAMPLES),
                                               "cuda": (512, 1024)}


def ensemble_limits(device) -> tuple[int, int]:
    """(max members, max examples per step) of an ensemble on ``device`` (a device or its
    name; "auto" resolves as training does). Unknown device types get the CPU's."""
    kind = resolve_device(device).type if isinstance(device, str) else device.type
    return ENSEMBLE_LIMITS.get(kind, ENSEMBLE_LIMITS["cpu"])


def ensemble_groups(configs: Sequence[TrainConfig], max_size: int = 16,
                    max_step_examples: int = MAX_STEP_EXAMPLES, *,
                    pack_seeds: bool = False) -> list[list[TrainConfig]]:
    """Split trials into lock-step ensembles: same everything but the optimiser fields (and
    with ``pack_seeds`` the seed), at most ``max_size`` members and (for m >
    max_step_examples / max_size) at most ``max_step_examples // m`` members, never fewer
    than one. Order of first appearance; with ``pack_seeds`` a key's trials are ordered
    learning-rate column by column (the optimiser settings' first appearance), each
    column's seeds together, so a split ensemble keeps a column's seeds in one piece."""
    if max_size < 1:
        raise StudyError(f"max ensemble size must be >= 1, got {max_size}")
    by_key: dict[tuple, list[TrainConfig]] = {}
    for config in configs:
        key = _ensemble_key(config, MEMBER_FIELDS if pack_seeds else OPTIMISER_FIELDS)
        by_key.setdefault(key, []).append(config)
    if pack_seeds:
        for key, members in by_key.items():
            column: dict[tuple, int] = {}
            for config in members:
                column.setdefault(_optimiser_key(config), len(column))
            members.sort(key=lambda c: (column[_optimiser_key(c)], c.seed))
    groups = []
    for members in by_key.values():
        size = min(max_size, max(1, max_step_examples // members[0].batch_size))
        for start in range(0, len(members), size):
            groups.append(members[start:start + size])
    return groups


def _optimiser_key(config: TrainConfig) -> tuple:
    values = config.to_dict()
    return tuple((k, str(values[k])) for k in OPTIMISER_FIELDS)


def seed_major(groups: list[list[TrainConfig]]) -> list[list[TrainConfig]]:
    """The order a sweep trains its ensembles in: seed by seed (stable otherwise), so that a
    sweep cut short has covered every point of the grid with its first seeds, rather than
    some batch sizes with all seeds and the others not at all. An ensemble of packed seeds
    (``ensemble_groups(pack_seeds=True)``) goes with its smallest seed."""
    return sorted(groups, key=lambda group: min(c.seed for c in group))


# ------------------------------------------------------------------------------ execution

_DATA_CACHE: dict[tuple, Any] = {}


def _data_for(config: TrainConfig, data_root, device):
    """One loaded data set per (data, subsets, device) per process, reused across groups."""
    from ..data import load_data

    key = (config.data, config.train_subset, config.test_subset, config.subset_seed,
           config.validation_subset, str(data_root), str(device))
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()  # keep one data set in memory at a time
        _DATA_CACHE[key] = load_data(config.data, root=data_root,
                                     train_subset=config.train_subset,
                                     test_subset=config.test_subset,
                                     subset_seed=config.subset_seed,
                                     validation_subset=config.validation_subset,
                                     device=device)
    return _DATA_CACHE[key]


def train_group(config_dicts: list[dict], *, data_root=None, device: str = "auto",
                threads: int | None = None, method: str = "auto",
                commit: str | None = None, step_mode: str = "auto") -> list[dict]:
    """Train one lock-step ensemble; runs in whichever process the executor chose.

    Takes and returns plain dicts so any executor can ship it. An exception becomes a
    "failed" record for every member (with the traceback), never a lost sweep. ``commit``:
    the sweep's commit, taken when it started; a worker records it for every run it trains
    (it imported its code then, whatever the checkout's HEAD is by the time a run ends).
    """
    import torch

    from ..provenance import COMMIT_ENV

    if threads:
        torch.set_num_threads(threads)
    configs = [TrainConfig.from_dict(d) for d in config_dicts]
    before = os.environ.get(COMMIT_ENV)
    if commit and not before:  # for this group's provenance only (inline: the caller's env)
        os.environ[COMMIT_ENV] = commit
    try:
        resolved = resolve_device(device)
        data = _data_for(configs[0], data_root, resolved)
        results = train_ensemble(configs, data=data, device=resolved, progress=False,
                                 method=method, step_mode=step_mode)
    except Exception as error:  # recorded as "failed", retried by the next run
        message = f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=8)}"
        results = [TrainResult(config=c, status="failed", epochs=[], test_accuracy=None,
                               error=message) for c in configs]
    finally:
        if commit and not before:
            os.environ.pop(COMMIT_ENV, None)
    return [r.to_dict() for r in results]


class _InlineExecutor(futures.Executor):
    """Runs each task when it is submitted: the in-process executor."""

    def submit(self, fn, /, *args, **kwargs):
        future: futures.Future = futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # pragma: no cover - train_group catches its own
            future.set_exception(error)
        return future


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


@dataclass
class _ExecutorHandle:
    executor: futures.Executor
    slots: int           # tasks kept in flight
    threads: int | None  # torch threads per task
    close: Callable[[], None]
    description: str


def _make_executor(kind: str, workers: int, scheduler: str | None,
                   threads: int | None = None) -> _ExecutorHandle:
    if kind not in EXECUTORS:
        raise StudyError(f"unknown executor {kind!r}; choose one of: {', '.join(EXECUTORS)}")
    if threads is not None and threads < 1:
        raise StudyError(f"threads must be >= 1, got {threads}")
    if kind == "inline":
        executor = _InlineExecutor()
        return _ExecutorHandle(executor, 1, threads, lambda: executor.shutdown(),
                               "in-process" + (f", {threads} thread(s)" if threads else ""))
    if workers < 1:
        raise StudyError(f"workers must be >= 1, got {workers}")
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    if kind == "processes":
        import multiprocessing

        executor = futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(threads,))
        return _ExecutorHandle(executor, workers, threads,
                               lambda: executor.shutdown(cancel_futures=True),
                               f"{workers} local worker process(es), {threads} thread(s) each")
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler)
        slots = max(1, sum(w.get("nthreads", 1) for w in
                           client.scheduler_info()["workers"].values()))
        threads = None  # the cluster's workers decide

        def close():
            client.close()

        description = f"Dask scheduler {scheduler} ({slots} worker thread(s))"
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
        slots = workers

        def close():
            client.close()
            cluster.close()

        description = f"Dask LocalCluster, {workers} worker process(es)"
    return _ExecutorHandle(client.get_executor(pure=False), slots, threads, close,
                           description)


@dataclass
class SweepReport:
    """What a run of a study did."""

    study: str
    scale: str
    results_dir: Path
    total: int                      # trials in the study
    already_stored: int             # complete or diverged before this run
    trained: int = 0                # trials trained by this run
    failed: int = 0                 # of those, how many failed
    status_counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # distinct errors of failed trials
    wall_time: float = 0.0
    executor: str = ""


def train_or_load(config: TrainConfig, results_dir: str | os.PathLike | None, **train_kwargs
                  ) -> TrainResult:
    """One run (book: "Quickstart"): the stored result of ``config`` if there is one, else
    train it and store it.

    With ``results_dir=None`` it always trains and stores nothing (smoke runs). A missing
    record with ``$SMALLBATCH_STORED_ONLY=1`` raises :class:`NotStoredError`.
    """
    from ..store import load_result, require_compute, save_result

    result = None if results_dir is None else load_result(config, results_dir)
    if result is None:
        if results_dir is not None:
            require_compute(f"the run {config_hash(config)} ({config.model} on {config.data}, "
                            f"m = {config.batch_size}, base lr {config.base_lr:g})",
                            results_dir)
        result = train(config, **train_kwargs)
        if results_dir is not None:
            save_result(result, results_dir)
    return result


def run_study(study: Study, *, results_dir: str | os.PathLike | None = None,
              executor: str = "inline", workers: int = 2, scheduler: str | None = None,
              data_root=None, device: str = "auto", max_ensemble: int | None = None,
              max_step_examples: int | None = None, method: str = "auto",
              threads: int | None = None, progress: bool = True,
              pack_seeds: bool = False, step_mode: str = "auto") -> SweepReport:
    """Train every trial of ``study`` that has no stored result, storing each as it ends.

    Args:
        results_dir: where the records go (default ``study.results_dir``).
        executor: "inline" (this process), "processes" (``workers`` local processes) or
            "dask" (a LocalCluster of ``workers`` processes, or ``scheduler``'s cluster).
        max_ensemble, max_step_examples: at most this many trials per lock-step ensemble,
            and at most max_step_examples // m of them (see :func:`ensemble_groups`);
            None: the device's (:func:`ensemble_limits`).
        method: the ensemble implementation ("auto", "grouped", "vmap").
        threads: torch threads per task (default: the CPU count / workers for local
            processes; torch's default in-process; the workers' own on a Dask scheduler).
        pack_seeds: put a learning-rate column's seeds into one ensemble (each member with
            its own seed's weights and batches): more members per ensemble where the
            grid's columns are short (see :func:`ensemble_groups`).
        step_mode: how each ensemble's step is driven (``train_ensemble``'s step_mode;
            "graph": captured as a CUDA graph).

    A stored "complete" or "diverged" record counts as done; a "failed" one is retried.
    """
    from tqdm.auto import tqdm

    from ..provenance import code_commit
    from ..store import check_writable, load_records, remove_stale_temporaries, save_result

    started = time.perf_counter()
    trials = validate_study(study)
    directory = check_writable(results_dir or study.results_dir)
    remove_stale_temporaries(directory)
    stored = load_records(directory).results
    done = {h for h, r in stored.items() if r.status in ("complete", "diverged")}
    missing = [c for c in trials if config_hash(c) not in done]
    report = SweepReport(study.name, study.scale, directory, total=len(trials),
                         already_stored=len(trials) - len(missing))
    default_members, default_examples = ensemble_limits("cpu" if scheduler else device)
    groups = seed_major(ensemble_groups(
        missing, default_members if max_ensemble is None else max_ensemble,
        default_examples if max_step_examples is None else max_step_examples,
        pack_seeds=pack_seeds))

    def examples(config: TrainConfig) -> int:
        return training_examples(config) or 0

    bar = tqdm(total=sum(examples(c) for c in missing), unit="ex", unit_scale=True,
               disable=not progress, desc=f"{study.name}/{study.scale}", smoothing=0.1)
    bar.set_postfix_str(f"trials {report.already_stored}/{report.total}")
    commit = code_commit()  # the code this sweep runs, before any checkout can move on
    handle = _make_executor(executor, workers, scheduler, threads)
    report.executor = handle.description
    pending: dict[futures.Future, list[TrainConfig]] = {}
    queue = list(groups)
    try:
        while queue or pending:
            while queue and len(pending) < handle.slots:
                group = queue.pop(0)
                future = handle.executor.submit(
                    train_group, [c.to_dict() for c in group], data_root=data_root,
                    device=device, threads=handle.threads, method=method, commit=commit,
                    step_mode=step_mode)
                pending[future] = group
            finished, _ = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
            for future in finished:
                group = pending.pop(future)
                for values in future.result():
                    result = TrainResult.from_dict(values)
                    save_result(result, directory)
                    report.trained += 1
                    if result.status == "failed":
                        report.failed += 1
                        summary = result.error.splitlines()[0] if result.error else "unknown"
                        if summary not in report.errors:
                            report.errors.append(summary)
                bar.update(sum(examples(c) for c in group))
                bar.set_postfix_str(f"trials {report.already_stored + report.trained}"
                                    f"/{report.total}")
    finally:
        bar.close()
        handle.close()
    final = load_records(directory, warn=False).results
    for config in trials:
        status = final[config_hash(config)].status if config_hash(config) in final else "missing"
        report.status_counts[status] = report.status_counts.get(status, 0) + 1
    report.wall_time = time.perf_counter() - started
    return report


# ------------------------------------------------------------------------------ dry run

def dry_run(study: Study, *, results_dir: str | os.PathLike | None = None,
            max_ensemble: int = 16, max_step_examples: int = MAX_STEP_EXAMPLES,
            rates: Mapping[int, float] | None = None):
    """The trials of ``study`` with their status and estimated cost, as a DataFrame.

    Cost in training examples (steps x m x epochs) and, when ``rates`` (examples/s of a
    whole ensemble, by batch size) are given, in seconds on this machine. Nothing trains.
    """
    import pandas as pd

    from ..store import load_records

    trials = validate_study(study)
    directory = Path(results_dir or study.results_dir)
    stored = load_records(directory, warn=False).results
    rows = []
    groups = ensemble_groups(trials, max_ensemble, max_step_examples)
    group_of = {config_hash(c): i for i, g in enumerate(groups) for c in g}
    for config in trials:
        digest = config_hash(config)
        record = stored.get(digest)
        count = training_examples(config)
        rate = (rates or {}).get(config.batch_size)
        rows.append({
            "config_hash": digest, "batch_size": config.batch_size,
            "log2_base_lr": math.log2(config.base_lr), "seed": config.seed,
            "ensemble": group_of[digest],
            "status": record.status if record else "missing",
            "examples": count,
            "estimated_seconds": (count / rate if rate and count is not None else None),
        })
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class _DataShape:
    """What :func:`~smallbatch.train.setup_run` reads of a data set to build a model, for a
    calibration without the data: the image shape and the classes; no training set size
    (``num_train`` None skips the check of the batch size against it)."""

    input_shape: tuple[int, int, int]  # (channels, height, width)
    num_classes: int
    num_train: int | None = None


def calibrate_rates(study: Study, *, max_ensemble: int = 16,
                    max_step_examples: int = MAX_STEP_EXAMPLES, device: str = "auto",
                    data_root=None, seconds: float = 1.0,
                    input_shape: tuple[int, int, int] | None = None,
                    num_classes: int | None = None) -> dict[int, float]:
    """Measure, on this machine, examples/s of each batch size's lock-step ensemble.

    For every batch size in the study: the ensemble size a sweep would use, a few SGD steps
    of the study's model on random inputs of the data's shape, timed after two warm-up
    steps. Used by ``smallbatch sweep --dry-run --calibrate`` to estimate wall time.
    With ``input_shape`` and ``num_classes`` given no data set is loaded (to cost a study
    whose data this machine does not have).
    """
    import torch

    resolved = resolve_device(device)
    if input_shape is None or num_classes is None:
        trials = validate_study(study)
        data = _data_for(trials[0], data_root, resolved)
    else:
        trials = study.trials()
        data = _DataShape(tuple(input_shape), num_classes)
    channels, height, width = data.input_shape
    num_classes = data.num_classes
    rates = {}
    for group in ensemble_groups(trials, max_ensemble, max_step_examples):
        config, members = group[0], len(group)
        if config.batch_size in rates:
            continue
        # The model and the ensemble as a sweep builds them (train_ensemble): setup_run's
        # device settings, initial model and memory format, the builder's grouped-or-vmap.
        _, _, model, channels_last = setup_run(config, data=data, device=resolved)
        ensemble = _build_ensemble([model] * members, "auto", channels_last)
        x = torch.randn(config.batch_size, channels, height, width, device=resolved)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, num_classes, (config.batch_size,), device=resolved)
        lrs = torch.full((members,), 1e-6, device=resolved)
        for _ in range(2):
            ensemble.sgd_step(x, y, lrs)
        if resolved.type == "cuda":
            torch.cuda.synchronize()  # the warm-up steps finish before the clock starts
        steps, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds or steps < 2:
            ensemble.sgd_step(x, y, lrs)
            steps += 1
        if resolved.type == "cuda":
            torch.cuda.synchronize()
        rates[config.batch_size] = steps * members * config.batch_size / (
            time.perf_counter() - started)
    return rates
