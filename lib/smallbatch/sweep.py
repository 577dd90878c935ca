"""Studies: grids of runs, trained in lock-step ensembles, stored, resumed.

A study is a base :class:`~smallbatch.train.TrainConfig` and a grid: for each grid axis (a
TrainConfig field) a list of values; its trials are every combination. A study file is
YAML::

    name: lr-batch-fmnist-resnet8
    description: test accuracy against eta_tilde for each batch size
    base: {data: fashion-mnist, model: resnet8, num_epochs: 10}
    grid:
      batch_size: [2, 8, 32, 128]
      base_lr: {pow2: [-12, 0]}        # 2^-12, 2^-11, ..., 2^0 (or a list: [2^-8, 0.01])
      seed: [0, 1, 2]
    scales:                            # overrides per scale (smoke / scaled / full)
      smoke: {base: {data: synthetic, train_subset: 512, num_epochs: 1},
              grid: {batch_size: [8, 32], base_lr: [2^-8, 2^-6], seed: [0]}}

A grid may also be a list of blocks, each a product of its own axes; the study's trials are
the union (each trial once), e.g. a learning-rate window that moves with the batch size::

    grid:
      - {batch_size: [2, 4], base_lr: {pow2: [-12, -2]}, seed: [0, 1, 2]}
      - {batch_size: [512, 1024], base_lr: {pow2: [-16, -6]}, seed: [0, 1, 2]}

A scale's ``grid`` override that is a mapping updates the axes of every block; a list
replaces the blocks.

Named studies ship in ``smallbatch/studies/``; a path to a YAML file works too.

Running a study (:func:`run_study`) trains only the trials without a stored record: a
killed sweep loses no finished trial, and rerunning it creates no duplicate (records are
keyed by config hash and written atomically). Trials that differ only in optimiser
settings (the learning rate, its schedule and scaling, weight decay) and share everything
else (the seed included) train together as one lock-step ensemble on the same batch
sequence (:mod:`smallbatch.ensemble`). Ensembles run seed by seed (the whole grid with the
first seed, then the next), in-process, in local worker processes, or on a Dask cluster,
through one code path: a ``concurrent.futures``-style executor.
"""

from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import itertools
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .ensemble import OPTIMISER_FIELDS
from .presets import check_scale, study_dir
from .train import ConfigError, TrainConfig, TrainResult, config_hash, validate

__all__ = [
    "OPTIMISER_FIELDS",
    "EXECUTORS",
    "Study",
    "StudyError",
    "SweepReport",
    "study_names",
    "load_study",
    "ensemble_groups",
    "run_study",
    "dry_run",
    "calibrate_rates",
]


EXECUTORS = ("inline", "processes", "dask")

STUDIES_DIR = Path(__file__).resolve().parent / "studies"


class StudyError(ValueError):
    """A study that cannot run; raised before any training starts."""


def _parse_value(name: str, value: Any) -> Any:
    from .cli import parse_number

    if name in ("base_lr", "weight_decay", "warmup_fraction", "lr_decay", "momentum",
                "divergence_loss") and isinstance(value, str):
        return parse_number(value)
    if name == "lr_milestones":
        return tuple(value)
    return value


def _axis_values(name: str, values: Any) -> tuple:
    if isinstance(values, Mapping) and set(values) == {"pow2"}:
        low, high = values["pow2"]
        return tuple(2.0 ** exponent for exponent in range(int(low), int(high) + 1))
    if not isinstance(values, (list, tuple)):
        raise StudyError(f"grid axis {name!r} must be a list of values or {{pow2: [low, high]}}, "
                         f"got {values!r}")
    return tuple(_parse_value(name, value) for value in values)


@dataclass(frozen=True)
class Study:
    """A named grid of runs at one scale. ``trials()`` expands it."""

    name: str
    scale: str
    base: TrainConfig
    blocks: tuple[tuple[tuple[str, tuple], ...], ...]  # grids: ((field, values), ...) each
    description: str = ""

    @property
    def results_dir(self) -> Path:
        """<$SMALLBATCH_RESULTS or repo/results>/<name>/<scale>."""
        return study_dir(self.name, self.scale)

    def trials(self) -> list[TrainConfig]:
        """Every combination of each block's axes, blocks in order, each trial once."""
        trials: dict[TrainConfig, None] = {}
        for block in self.blocks:
            names = [name for name, _ in block]
            for combo in itertools.product(*(values for _, values in block)):
                trials.setdefault(self.base.replace(**dict(zip(names, combo))))
        return list(trials)

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any], scale: str, source: str = "") -> "Study":
        """Build from a parsed study file, applying the overrides of ``scale``."""
        check_scale(scale)
        where = f" in {source}" if source else ""
        unknown = set(spec) - {"name", "description", "base", "grid", "scales"}
        if unknown:
            raise StudyError(f"unknown study key(s) {sorted(unknown)}{where}; known: name, "
                             "description, base, grid, scales")
        if "name" not in spec:
            raise StudyError(f"a study needs a name{where}")
        base = dict(spec.get("base") or {})
        override = (spec.get("scales") or {}).get(scale) or {}
        base.update(override.get("base") or {})
        blocks = _grid_blocks(spec.get("grid"), where)
        if "grid" in override:
            changed = override["grid"]
            if isinstance(changed, Mapping):  # update every block's axes
                blocks = [{**block, **changed} for block in blocks]
            else:  # a list of blocks replaces the grid
                blocks = _grid_blocks(changed, where)
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        parsed = []
        for grid in blocks:
            for key in list(base) + list(grid):
                if key not in fields:
                    raise StudyError(f"unknown TrainConfig field {key!r}{where}; known fields: "
                                     f"{', '.join(sorted(fields))}")
            overlap = set(base) & set(grid)
            if overlap:
                raise StudyError(f"field(s) {sorted(overlap)} are both fixed in base and varied "
                                 f"in the grid{where}; keep each in one place")
            axes = tuple((name, _axis_values(name, values)) for name, values in grid.items())
            empty = [name for name, values in axes if not values]
            if not axes or empty:
                raise StudyError(f"empty grid{where}: " + (
                    f"axis {empty} has no values" if empty
                    else "give at least one axis, e.g. batch_size: [32]"))
            parsed.append(axes)
        try:
            base_config = TrainConfig(**{k: _parse_value(k, v) for k, v in base.items()})
        except TypeError as error:
            raise StudyError(f"bad base config{where}: {error}") from error
        return cls(name=str(spec["name"]), scale=scale, base=base_config, blocks=tuple(parsed),
                   description=str(spec.get("description", "")))


def _grid_blocks(grid: Any, where: str) -> list[dict]:
    """A study's grid as a list of blocks: a mapping is one block, a list several."""
    if grid is None or isinstance(grid, Mapping):
        return [dict(grid or {})]
    if isinstance(grid, (list, tuple)) and grid and all(isinstance(b, Mapping) for b in grid):
        return [dict(b) for b in grid]
    raise StudyError(f"grid{where} must be a mapping of axes or a non-empty list of such "
                     f"mappings, got {grid!r}")


def study_names() -> list[str]:
    """The named studies shipped with the package."""
    return sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))


def load_study(study: str | os.PathLike, scale: str = "scaled") -> Study:
    """A named study (``smallbatch/studies/<name>.yaml``) or a YAML file, at ``scale``."""
    import yaml

    path = Path(study)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = STUDIES_DIR / f"{study}.yaml"
    if not path.is_file():
        raise StudyError(f"unknown study {str(study)!r}: not a YAML file and not one of the "
                         f"named studies ({', '.join(study_names()) or 'none'})")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StudyError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(spec, Mapping):
        raise StudyError(f"{path}: a study file is a mapping with name, base and grid")
    return Study.from_mapping(spec, scale, source=str(path))


def _ensemble_key(config: TrainConfig) -> tuple:
    values = config.to_dict()
    return tuple((k, str(v)) for k, v in sorted(values.items()) if k not in OPTIMISER_FIELDS)


# Examples per step of a whole ensemble (K * m) beyond which it is split. Lock-step pays
# where per-step overhead dominates (small m); once K * m reaches ~256, oneDNN's grouped
# weight gradient runs ~2x slower than K separate convolutions, so an ensemble at m = 128
# was ~17% slower than sequential runs (benchmarks/). 64 keeps K * m in the range that pays.
MAX_STEP_EXAMPLES = 64


def ensemble_groups(configs: Sequence[TrainConfig], max_size: int = 16,
                    max_step_examples: int = MAX_STEP_EXAMPLES) -> list[list[TrainConfig]]:
    """Split trials into lock-step ensembles: same everything but the optimiser fields, at
    most ``max_size`` members and (for m > max_step_examples / max_size) at most
    ``max_step_examples // m`` members, never fewer than one. Order of first appearance."""
    if max_size < 1:
        raise StudyError(f"max ensemble size must be >= 1, got {max_size}")
    by_key: dict[tuple, list[TrainConfig]] = {}
    for config in configs:
        by_key.setdefault(_ensemble_key(config), []).append(config)
    groups = []
    for members in by_key.values():
        size = min(max_size, max(1, max_step_examples // members[0].batch_size))
        for start in range(0, len(members), size):
            groups.append(members[start:start + size])
    return groups


def seed_major(groups: list[list[TrainConfig]]) -> list[list[TrainConfig]]:
    """The order a sweep trains its ensembles in: seed by seed (stable otherwise), so that a
    sweep cut short has covered every point of the grid with its first seeds, rather than
    some batch sizes with all seeds and the others not at all. An ensemble has one seed."""
    return sorted(groups, key=lambda group: group[0].seed)


def validate_study(study: Study) -> list[TrainConfig]:
    """Expand and check every trial before anything trains; return the trials."""
    from .data import DataError, train_size

    trials = study.trials()
    problems = []
    for config in trials:
        try:
            validate(config, num_train=train_size(config.data, config.train_subset))
        except (ConfigError, DataError) as error:
            problems.append(f"m={config.batch_size}, eta_tilde={config.base_lr:g}: {error}")
    if problems:
        shown = "\n  ".join(sorted(set(problems))[:10])
        raise StudyError(f"study {study.name} ({study.scale}) has {len(problems)} invalid "
                         f"trial(s):\n  {shown}")
    hashes = [config_hash(c) for c in trials]
    if len(set(hashes)) != len(hashes):
        raise StudyError(f"study {study.name} lists the same trial more than once")
    return trials


def training_examples(config: TrainConfig) -> int | None:
    """Examples a run trains on (steps per epoch x m x epochs); None if the data set's size
    is known only from its files."""
    from .data import train_size

    size = train_size(config.data, config.train_subset)
    if size is None:
        return None
    return (size // config.batch_size) * config.batch_size * config.num_epochs


# ------------------------------------------------------------------------------ execution

_DATA_CACHE: dict[tuple, Any] = {}


def _data_for(config: TrainConfig, data_root, device):
    """One loaded data set per (data, subsets, device) per process, reused across groups."""
    from .data import load_data

    key = (config.data, config.train_subset, config.test_subset, config.subset_seed,
           str(data_root), str(device))
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()  # keep one data set in memory at a time
        _DATA_CACHE[key] = load_data(config.data, root=data_root,
                                     train_subset=config.train_subset,
                                     test_subset=config.test_subset,
                                     subset_seed=config.subset_seed, device=device)
    return _DATA_CACHE[key]


def train_group(config_dicts: list[dict], *, data_root=None, device: str = "auto",
                threads: int | None = None, method: str = "auto") -> list[dict]:
    """Train one lock-step ensemble; runs in whichever process the executor chose.

    Takes and returns plain dicts so any executor can ship it. An exception becomes a
    "failed" record for every member (with the traceback), never a lost sweep.
    """
    import torch

    from .ensemble import train_ensemble
    from .train import resolve_device

    if threads:
        torch.set_num_threads(threads)
    configs = [TrainConfig.from_dict(d) for d in config_dicts]
    try:
        resolved = resolve_device(device)
        data = _data_for(configs[0], data_root, resolved)
        results = train_ensemble(configs, data=data, device=resolved, progress=False,
                                 method=method)
    except Exception as error:  # recorded as "failed", retried by the next run
        message = f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=8)}"
        results = [TrainResult(config=c, status="failed", epochs=[], test_accuracy=None,
                               error=message) for c in configs]
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


def run_study(study: Study, *, results_dir: str | os.PathLike | None = None,
              executor: str = "inline", workers: int = 2, scheduler: str | None = None,
              data_root=None, device: str = "auto", max_ensemble: int = 16,
              max_step_examples: int = MAX_STEP_EXAMPLES, method: str = "auto",
              threads: int | None = None, progress: bool = True) -> SweepReport:
    """Train every trial of ``study`` that has no stored result, storing each as it ends.

    Args:
        results_dir: where the records go (default ``study.results_dir``).
        executor: "inline" (this process), "processes" (``workers`` local processes) or
            "dask" (a LocalCluster of ``workers`` processes, or ``scheduler``'s cluster).
        max_ensemble, max_step_examples: at most this many trials per lock-step ensemble,
            and at most max_step_examples // m of them (see :func:`ensemble_groups`).
        method: the ensemble implementation ("auto", "grouped", "vmap").
        threads: torch threads per task (default: the CPU count / workers for local
            processes; torch's default in-process; the workers' own on a Dask scheduler).

    A stored "complete" or "diverged" record counts as done; a "failed" one is retried.
    """
    from tqdm.auto import tqdm

    from .results import check_writable, load_records, remove_stale_temporaries, save_result

    started = time.perf_counter()
    trials = validate_study(study)
    directory = check_writable(results_dir or study.results_dir)
    remove_stale_temporaries(directory)
    stored = load_records(directory).results
    done = {h for h, r in stored.items() if r.status in ("complete", "diverged")}
    missing = [c for c in trials if config_hash(c) not in done]
    report = SweepReport(study.name, study.scale, directory, total=len(trials),
                         already_stored=len(trials) - len(missing))
    groups = seed_major(ensemble_groups(missing, max_ensemble, max_step_examples))

    def examples(config: TrainConfig) -> int:
        return training_examples(config) or 0

    bar = tqdm(total=sum(examples(c) for c in missing), unit="ex", unit_scale=True,
               disable=not progress, desc=f"{study.name}/{study.scale}", smoothing=0.1)
    bar.set_postfix_str(f"trials {report.already_stored}/{report.total}")
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
                    device=device, threads=handle.threads, method=method)
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

    from .results import load_records

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

    from .ensemble import LockstepEnsemble, UnsupportedModelError
    from .models import build_model
    from .train import prepare_device, resolve_device

    resolved = resolve_device(device)
    prepare_device(resolved)
    if input_shape is None or num_classes is None:
        trials = validate_study(study)
        data = _data_for(trials[0], data_root, resolved)
        input_shape, num_classes = data.input_shape, data.num_classes
    else:
        trials = study.trials()
    channels, height, width = input_shape
    channels_last = resolved.type == "cpu"
    rates = {}
    for group in ensemble_groups(trials, max_ensemble, max_step_examples):
        config, members = group[0], len(group)
        if config.batch_size in rates:
            continue
        torch.manual_seed(0)
        model = build_model(config.model, in_channels=channels,
                            num_classes=num_classes, input_size=height,
                            batch_norm=config.batch_norm,
                            bn_batch_size=config.bn_batch_size).to(resolved)
        try:
            ensemble = LockstepEnsemble(model, members, method="grouped",
                                        channels_last=channels_last)
        except UnsupportedModelError:
            ensemble = LockstepEnsemble(model, members, method="vmap",
                                        channels_last=channels_last)
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
