"""The results store: one JSON record per run, keyed by the hash of its config.

Layout: ``<results_dir>/<config_hash>.json``, each holding a :class:`~smallbatch.train.TrainResult`
as a dict (resolved config, per-epoch metrics, status, provenance). Records are written
atomically (temporary file + rename), so a crash never leaves half a record; a changed
parameter changes the hash, so a stale result is never served for a new config.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .train import TrainConfig, TrainResult, config_hash, train

__all__ = ["RecordError", "record_path", "save_result", "load_result", "train_or_load"]


class RecordError(ValueError):
    """A record that cannot be read as a result of the expected config."""


def record_path(results_dir: str | os.PathLike, config: TrainConfig) -> Path:
    return Path(results_dir) / f"{config_hash(config)}.json"


def save_result(result: TrainResult, results_dir: str | os.PathLike) -> Path:
    """Write ``result`` atomically to its record path and return that path."""
    directory = Path(results_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = record_path(directory, result.config)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(result.to_dict(), handle, indent=1, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_result(config: TrainConfig, results_dir: str | os.PathLike) -> TrainResult | None:
    """The stored result of ``config``, or None when there is none.

    Raises:
        RecordError: the record exists but is malformed or belongs to another config.
    """
    path = record_path(results_dir, config)
    if not path.exists():
        return None
    try:
        result = TrainResult.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as error:
        raise RecordError(f"{path}: not a readable smallbatch result ({error}); delete it "
                          "to recompute the run") from error
    if result.config != config:
        raise RecordError(f"{path}: holds a result for a different config; delete it to "
                          "recompute the run")
    return result


def train_or_load(config: TrainConfig, results_dir: str | os.PathLike | None, **train_kwargs
                  ) -> TrainResult:
    """The stored result of ``config`` if there is one, else train it and store it.

    With ``results_dir=None`` it always trains and stores nothing (smoke runs).
    """
    result = None if results_dir is None else load_result(config, results_dir)
    if result is None:
        result = train(config, **train_kwargs)
        if results_dir is not None:
            save_result(result, results_dir)
    return result
