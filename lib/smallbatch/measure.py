"""Measurements on real networks, stored like sweep trials (book: the theory chapters).

A measurement is a frozen dataclass config (what is measured, on which network, at which
checkpoint) and a ``compute`` function returning a dict of plain values. Its record,
``<results_dir>/<hash>.json``, holds the kind, the config, the values, the wall time and
the provenance (commit, torch, device); the hash is that of the kind and the config, so a
changed parameter never serves a stale record. :func:`measure_or_load` computes only what
is missing, which is how the theory notebooks rebuild from ``results/`` with no data set.

:class:`Checkpoint` names the weights a measurement starts from: a model at its
initialisation, or after a given number of epochs of plain SGD training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .train import TrainConfig

__all__ = ["Checkpoint", "MeasurementError", "measurement_hash", "measurement_path",
           "load_measurement", "measure_or_load", "model_at"]


class MeasurementError(ValueError):
    """A measurement that cannot be made or a record that cannot be read."""


@dataclass(frozen=True)
class Checkpoint:
    """The weights a measurement starts from.

    ``config`` names the network, the data and the seed; ``epochs = 0`` is its
    initialisation (He fan-in, from the seed), ``epochs = k`` the weights after training
    ``config.replace(num_epochs=k)`` with plain SGD (its learning rate and schedule).
    """

    config: TrainConfig
    epochs: int = 0

    def __post_init__(self):
        if self.epochs < 0:
            raise MeasurementError(f"checkpoint epochs must be >= 0, got {self.epochs}")

    @property
    def label(self) -> str:
        return "initialisation" if self.epochs == 0 else \
            f"after {self.epochs} epoch{'s' if self.epochs > 1 else ''}"

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "epochs": self.epochs}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Checkpoint":
        return cls(config=TrainConfig.from_dict(values["config"]), epochs=values["epochs"])


def _plain(config) -> dict[str, Any]:
    """A measurement config as JSON-ready values (nested checkpoints and tuples included)."""
    values = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, Checkpoint):
            value = value.to_dict()
        elif isinstance(value, tuple):
            value = list(value)
        values[field.name] = value
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
    ``$SMALLBATCH_STORED_ONLY=1`` raises ``results.NotStoredError``. Returns the record: kind, config_hash,
    config, values, wall_time, provenance.
    """
    from .results import require_compute, write_json_atomic
    from .train import provenance

    if results_dir is not None:
        record = load_measurement(results_dir, kind, config)
        if record is not None:
            return record
        require_compute(f"the measurement {kind} {measurement_hash(kind, config)}", results_dir)
    started = time.perf_counter()
    values, device = compute()
    record = {"kind": kind, "config_hash": measurement_hash(kind, config),
              "config": _plain(config), "values": values,
              "wall_time": time.perf_counter() - started, "provenance": provenance(device)}
    if results_dir is not None:
        write_json_atomic(record, measurement_path(results_dir, kind, config))
    return record


def model_at(checkpoint: Checkpoint, *, data=None, data_root=None, device="auto"):
    """The model at ``checkpoint`` (train mode, default memory layout) and its data.

    Returns ``(model, data, device, trained)`` where ``trained`` is the TrainResult of the
    training run (None at initialisation).

    Raises:
        MeasurementError: the training run to the checkpoint diverged or failed.
    """
    from .train import setup_run, train

    config = checkpoint.config
    if checkpoint.epochs == 0:
        device, data, model, _ = setup_run(config, data=data, data_root=data_root,
                                           device=device, channels_last=False)
        return model, data, device, None
    from .data import load_data
    from .train import resolve_device

    device = resolve_device(device)
    if data is None:
        data = load_data(config.data, root=data_root, train_subset=config.train_subset,
                         test_subset=config.test_subset, subset_seed=config.subset_seed,
                         device=device)
    result, model = train(config.replace(num_epochs=checkpoint.epochs), data=data,
                          device=device, progress=False, channels_last=False,
                          return_model=True)
    if result.status != "complete":
        raise MeasurementError(
            f"the run to the checkpoint ({config.model}, m={config.batch_size}, "
            f"eta_tilde={config.base_lr:g}, {checkpoint.epochs} epochs) {result.status}; "
            "choose a smaller base_lr for the checkpoint")
    model.train()
    return model, data, device, result
