"""The record store: one JSON record per run or measurement, keyed by the hash of its config.
It reads and writes records; it trains and measures nothing itself.

Layout: ``<results_dir>/<config_hash>.json``, each holding a :class:`~smallbatch.train.TrainResult`
as a dict (resolved config, per-epoch metrics, status, provenance). Records are written
atomically (temporary file + rename), so a crash never leaves half a record; a changed
parameter changes the hash, so a stale result is never served for a new config.

:func:`load_records` reads a whole study folder; :func:`trials_frame` and
:func:`epochs_frame` turn it into tidy DataFrames (one row per trial, one row per trial and
epoch), the interface to figures. A record that cannot be read, or whose content does not
hash to its file name, is reported by name and skipped, never merged.
"""

from __future__ import annotations

import dataclasses
import json
import hashlib
import os
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .atomic import TEMPORARY_PREFIX, TEMPORARY_SUFFIX, write_atomic
from .config import TrainConfig, TrainResult, config_hash

__all__ = ["RecordError", "StudyRecords", "record_path", "save_result", "load_result",
           "load_records", "busy_time", "trials_frame", "epochs_frame",
           "remove_stale_temporaries", "check_writable", "write_json_atomic",
           "STORED_ONLY_ENV", "NotStoredError", "require_compute", "MeasurementError",
           "measurement_hash", "measurement_path", "load_measurement", "measure_or_load"]

class RecordError(ValueError):
    """A record that cannot be read as a result of the expected config."""


# Set to "1" (the book build does, at every scale but smoke) and whatever would be computed
# because its record is missing raises NotStoredError instead: the published book is built
# from stored results only, never from a run made during the build.
STORED_ONLY_ENV = "SMALLBATCH_STORED_ONLY"


class NotStoredError(RuntimeError):
    """A result is missing and this process may only read stored results."""


def require_compute(what: str, results_dir: str | os.PathLike) -> None:
    """Raise NotStoredError if ``what`` (missing from ``results_dir``) may not be computed
    here (``$SMALLBATCH_STORED_ONLY=1``); return otherwise."""
    if os.environ.get(STORED_ONLY_ENV, "") == "1":
        raise NotStoredError(
            f"{what} is not stored in {results_dir}, and this process reads stored results "
            f"only ({STORED_ONLY_ENV}=1, which the book build sets at every scale but smoke). "
            "To compute and store it: `python -m smallbatch_book --scale <scale> "
            "--compute-missing`, or run the notebook in Jupyter.")


def record_path(results_dir: str | os.PathLike, config: TrainConfig) -> Path:
    return Path(results_dir) / f"{config_hash(config)}.json"


def write_json_atomic(payload, path: str | os.PathLike) -> Path:
    """Write ``payload`` as JSON to ``path`` via a temporary file and a rename, so a crash
    never leaves half a record (:func:`smallbatch.atomic.write_atomic`). Creates the folder."""

    def dump(handle) -> None:
        json.dump(payload, handle, indent=1, sort_keys=True)
        handle.write("\n")

    return write_atomic(path, dump)


def save_result(result: TrainResult, results_dir: str | os.PathLike) -> Path:
    """Write ``result`` atomically to its record path and return that path."""
    return write_json_atomic(result.to_dict(), record_path(results_dir, result.config))


def load_result(config: TrainConfig, results_dir: str | os.PathLike) -> TrainResult | None:
    """The stored result of ``config``, or None when there is none.

    Raises:
        RecordError: the record exists but is malformed or belongs to another config.
    """
    path = record_path(results_dir, config)
    if not path.exists():
        return None
    result = _read_record(path)
    if result.config != config:
        raise RecordError(f"{path}: holds a result for a different config; delete it to "
                          "recompute the run")
    return result


def _read_record(path: Path) -> TrainResult:
    try:
        result = TrainResult.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise RecordError(f"{path}: not a readable smallbatch result ({error}); delete it "
                          "to recompute the run") from error
    if path.stem != result.config_hash:
        raise RecordError(f"{path}: its config hashes to {result.config_hash}, not to its file "
                          "name (a renamed or foreign record)")
    return result


@dataclass
class StudyRecords:
    """The readable records of a study folder, by config hash, and what was skipped."""

    directory: Path
    results: dict[str, TrainResult] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def load_records(results_dir: str | os.PathLike, *, warn: bool = True) -> StudyRecords:
    """Read every ``*.json`` record in ``results_dir`` (missing folder: no records).

    Unreadable or foreign records are listed in ``problems`` (and warned about), not loaded.
    """
    directory = Path(results_dir)
    records = StudyRecords(directory)
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            result = _read_record(path)
        except RecordError as error:
            records.problems.append(str(error))
            continue
        records.results[result.config_hash] = result
    if warn:
        for problem in records.problems:
            warnings.warn(f"skipped {problem}", stacklevel=2)
    return records


def busy_time(result) -> float:
    """A run's wall time with pauses left out, in seconds.

    A worker that was stopped or starved for part of a run (another job on the machine, a
    suspended sweep) adds that time to its wall time; one slow epoch does not change the
    median epoch. So: the median duration of the run's epochs times the epochs it trained
    (its steps over the steps of one epoch), never more than its wall time. A run with no
    finished epoch (diverged in its first) keeps its wall time. Members of a lock-step
    ensemble share it, as they share the wall time.
    """
    epochs = result.epochs
    if not epochs or not epochs[0].examples_seen:
        return float(result.wall_time)
    times = [0.0] + [e.wall_time for e in epochs]
    median = statistics.median(b - a for a, b in zip(times, times[1:]))
    per_epoch = epochs[0].examples_seen / epochs[0].epoch
    trained = result.num_steps * result.config.batch_size / per_epoch
    return float(min(result.wall_time, median * trained))


def trials_frame(results):
    """One row per trial: the config fields, status, headline metric and provenance.

    Args:
        results: an iterable of TrainResult, or a StudyRecords.
    """
    import pandas as pd

    if isinstance(results, StudyRecords):
        results = results.results.values()
    rows = []
    for result in results:
        row = {"config_hash": result.config_hash, **result.config.to_dict()}
        row["lr_milestones"] = tuple(row["lr_milestones"])
        row.update(status=result.status, test_accuracy=result.test_accuracy,
                   final_train_loss=result.epochs[-1].train_loss if result.epochs else None,
                   epochs_completed=len(result.epochs), diverged_epoch=result.diverged_epoch,
                   diverged_step=result.diverged_step, num_steps=result.num_steps,
                   num_parameters=result.num_parameters, data_label=result.data_label,
                   wall_time=result.wall_time, busy_time=busy_time(result),
                   examples_per_second=result.examples_per_second,
                   error=result.error)
        row.update({f"provenance_{k}": v for k, v in result.provenance.items()})
        rows.append(row)
    columns = ["config_hash", *[f.name for f in dataclasses.fields(TrainConfig)], "status",
               "test_accuracy"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    return frame.sort_values(["batch_size", "base_lr", "seed"], kind="stable",
                             ignore_index=True)


def epochs_frame(results):
    """One row per trial and epoch (tidy): config_hash, batch_size, base_lr, seed, epoch,
    the per-epoch metrics and the trial's status."""
    import pandas as pd

    if isinstance(results, StudyRecords):
        results = results.results.values()
    frames = []
    for result in results:
        history = result.history()
        history.insert(1, "batch_size", result.config.batch_size)
        history.insert(2, "base_lr", result.config.base_lr)
        history.insert(3, "seed", result.config.seed)
        history["status"] = result.status
        frames.append(history)
    if not frames:
        return pd.DataFrame(columns=["config_hash", "batch_size", "base_lr", "seed", "epoch"])
    return pd.concat(frames, ignore_index=True)


def remove_stale_temporaries(results_dir: str | os.PathLike) -> list[Path]:
    """Delete temporary files left by a writer that was killed mid-write; return them."""
    directory = Path(results_dir)
    stale = sorted(directory.glob(f"{TEMPORARY_PREFIX}*{TEMPORARY_SUFFIX}")) \
        if directory.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def check_writable(results_dir: str | os.PathLike) -> Path:
    """Create ``results_dir`` if needed and prove it is writable, before any training.

    Raises:
        RecordError: naming the folder and what to do.
    """
    directory = Path(results_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(dir=directory, prefix=TEMPORARY_PREFIX,
                                             suffix=TEMPORARY_SUFFIX)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise RecordError(f"results folder {directory} is not writable ({error.strerror}); "
                          "choose another with --results DIR or fix its permissions") from error
    return directory


# ---------------------------------------------------------------- measurement records
# A measurement (book: the theory chapters) is a frozen dataclass config (what is measured,
# on which network, at which checkpoint) and a ``compute`` function returning a dict of
# plain values. Its record, ``<results_dir>/<hash>.json``, holds the kind, the config, the
# values, the wall time and the provenance; the hash is that of the kind and the config, so
# a changed parameter never serves a stale record. :func:`measure_or_load` computes only
# what is missing, which is how the theory notebooks rebuild from ``results/`` with no data.


class MeasurementError(ValueError):
    """A measurement that cannot be made or a record that cannot be read."""


def _plain(config) -> dict[str, Any]:
    """A measurement config as JSON-ready values (nested checkpoints and tuples included)."""
    values = {}
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if dataclasses.is_dataclass(value) and hasattr(value, "to_dict"):
            value = value.to_dict()  # a nested config, e.g. a theory Checkpoint
        elif isinstance(value, tuple):
            value = list(value)
        values[item.name] = value
    return values


def measurement_hash(kind: str, config) -> str:
    """16 hex digits of the SHA-256 of the kind and the config's values."""
    text = json.dumps({"kind": kind, "config": _plain(config)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def measurement_path(results_dir: str | os.PathLike, kind: str, config) -> Path:
    return Path(results_dir) / f"{measurement_hash(kind, config)}.json"


def load_measurement(results_dir: str | os.PathLike, kind: str, config) -> dict | None:
    """The stored record of (kind, config), or None when there is none.

    Raises:
        MeasurementError: a record at that path that is unreadable or of another config.
    """
    path = measurement_path(results_dir, kind, config)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        same = record["kind"] == kind and record["config"] == _plain(config)
    except (ValueError, KeyError, TypeError) as error:
        raise MeasurementError(f"{path}: not a readable measurement record ({error}); delete "
                               "it to measure again") from error
    if not same:
        raise MeasurementError(f"{path}: holds a measurement of another config; delete it to "
                               "measure again")
    return record


def measure_or_load(kind: str, config, compute: Callable[[], tuple[dict, Any]],
                    results_dir: str | os.PathLike | None) -> dict:
    """The stored record of (kind, config), else ``compute()`` it and store it.

    ``compute`` returns ``(values, device)``: a dict of JSON-ready values and the
    torch.device it ran on (for the provenance). With ``results_dir=None`` (the smoke
    scale) it always computes and stores nothing; a missing record with
    ``$SMALLBATCH_STORED_ONLY=1`` raises ``store.NotStoredError``. Returns the record: kind, config_hash,
    config, values, wall_time, provenance.
    """
    from .provenance import run_provenance

    if results_dir is not None:
        record = load_measurement(results_dir, kind, config)
        if record is not None:
            return record
        require_compute(f"the measurement {kind} {measurement_hash(kind, config)}", results_dir)
    started = time.perf_counter()
    values, device = compute()
    record = {"kind": kind, "config_hash": measurement_hash(kind, config),
              "config": _plain(config), "values": values,
              "wall_time": time.perf_counter() - started, "provenance": run_provenance(device)}
    if results_dir is not None:
        write_json_atomic(record, measurement_path(results_dir, kind, config))
    return record


