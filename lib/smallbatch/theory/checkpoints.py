"""The weights a theory measurement starts from (book: the theory chapters).

:class:`Checkpoint` names them: a model at its initialisation, or after a given number of
epochs of plain SGD training, optionally part-way through a longer run (its schedule);
:func:`theory_checkpoints` lists those of the measured theory chapters at each scale;
:func:`model_at` rebuilds that model (it trains, so it lives
here and not in the record store). The measurements' records are kept by
:mod:`smallbatch.store` (``measure_or_load``); :func:`protocol_table` and
:func:`records_table` are the two tables every measured chapter opens with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..data import load_data
from ..presets import check_scale, repo_root
from ..store import MeasurementError, measure_or_load
from ..train import TrainConfig, lr_at_step, resolve_device, setup_run, train

__all__ = ["Checkpoint", "theory_checkpoints", "check_schedule", "model_at", "measure_with",
           "log2_label", "protocol_table", "records_table"]


@dataclass(frozen=True)
class Checkpoint:
    """The weights a measurement starts from.

    ``config`` names the network, the data and the seed; ``epochs = 0`` is its
    initialisation (He fan-in, from the seed), ``epochs = k`` the weights after training
    ``config.replace(num_epochs=k)`` with plain SGD (its learning rate and schedule).

    ``run_epochs = n`` (>= k) makes it the weights after k epochs *of an n-epoch run*: the
    step schedule (LR x lr_decay at the fractions ``config.lr_milestones`` of all n S steps,
    S steps per epoch) is that of the n-epoch run, so what is trained is k epochs with each
    milestone fraction f rescaled to f n / k and those >= 1 (decays after epoch k) dropped;
    a warm-up fraction is rescaled the same way. :func:`model_at` checks that the learning
    rate of every one of the k S steps equals the long run's. ``run_epochs = None``: the
    schedule is that of a k-epoch run (and the record, hash included, is as before the
    field existed).
    """

    config: TrainConfig
    epochs: int = 0
    run_epochs: int | None = None  # n: the run the checkpoint is part of; None = epochs

    def __post_init__(self):
        if self.epochs < 0:
            raise MeasurementError(f"checkpoint epochs must be >= 0, got {self.epochs}")
        if self.run_epochs is not None and self.run_epochs < self.epochs:
            raise MeasurementError(
                f"a checkpoint after {self.epochs} epochs cannot be part of a run of "
                f"run_epochs={self.run_epochs}; use run_epochs >= {self.epochs} (or None "
                "for a run that ends at the checkpoint)")

    @property
    def label(self) -> str:
        if self.epochs == 0:
            return "initialisation"
        if self.run_epochs is not None:
            return f"epoch {self.epochs} of {self.run_epochs}"
        return f"after {self.epochs} epoch{'s' if self.epochs > 1 else ''}"

    @property
    def trained_config(self) -> TrainConfig | None:
        """The run :func:`model_at` trains (None at initialisation): ``epochs`` epochs with
        the schedule of a run of ``run_epochs`` (milestone and warm-up fractions times
        run_epochs / epochs)."""
        if self.epochs == 0:
            return None
        config = self.config.replace(num_epochs=self.epochs)
        if self.run_epochs is None or self.run_epochs == self.epochs:
            return config
        stretch = self.run_epochs / self.epochs
        warmup_fraction = self.config.warmup_fraction * stretch
        if self.config.warmup and warmup_fraction >= 1:
            raise MeasurementError(
                f"the warm-up of a {self.run_epochs}-epoch run lasts past epoch "
                f"{self.epochs}; put the checkpoint after the warm-up")
        return config.replace(
            lr_milestones=tuple(f * stretch for f in self.config.lr_milestones
                                if f * stretch < 1),
            warmup_fraction=warmup_fraction if self.config.warmup else
            self.config.warmup_fraction)

    def to_dict(self) -> dict[str, Any]:
        values = {"config": self.config.to_dict(), "epochs": self.epochs}
        if self.run_epochs is not None:  # absent when None: older records keep their hash
            values["run_epochs"] = self.run_epochs
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Checkpoint":
        return cls(config=TrainConfig.from_dict(values["config"]), epochs=values["epochs"],
                   run_epochs=values.get("run_epochs"))


def theory_checkpoints(scale: str) -> tuple[Checkpoint, ...]:
    """The weights the measured theory chapters start from (book: "The variance derivation,
    measured" and "n small steps against one large step").

    ResNet-8 *without* batch norm: with BN an example's gradient depends on the rest of its
    batch, so per-example gradients and the derivations (which treat examples as
    independent) do not apply as written. Trained with plain SGD at m = 32 and
    eta_tilde = 2^-10 (eta = 1/32), constant learning rate, no weight decay.

    - smoke: synthetic data (512 training images), at initialisation and after 1 epoch.
    - scaled and full: Fashion-MNIST (all 60,000 training images), at initialisation and
      after 1 and 5 epochs.
    """
    base = TrainConfig(model="resnet8", batch_norm="none", batch_size=32, base_lr=2.0 ** -10,
                       lr_milestones=(), seed=0)
    if check_scale(scale) == "smoke":
        config = base.replace(data="synthetic", train_subset=512, test_subset=200)
        return tuple(Checkpoint(config, epochs) for epochs in (0, 1))
    config = base.replace(data="fashion-mnist")
    return tuple(Checkpoint(config, epochs) for epochs in (0, 1, 5))


def check_schedule(checkpoint: Checkpoint, steps_per_epoch: int) -> None:
    """Raise MeasurementError unless every step of ``checkpoint.trained_config`` has the
    learning rate of the same step of the ``run_epochs`` run (see :class:`Checkpoint`)."""
    if checkpoint.run_epochs is None or checkpoint.epochs == 0:
        return
    short, long = checkpoint.trained_config, checkpoint.config
    steps = steps_per_epoch * checkpoint.epochs

    def schedule(config, total):
        return [lr_at_step(step, total, config.peak_lr, milestones=config.lr_milestones,
                           decay=config.lr_decay, warmup=config.warmup,
                           warmup_fraction=config.warmup_fraction) for step in range(steps)]

    if schedule(short, steps) != schedule(long, steps_per_epoch * checkpoint.run_epochs):
        raise MeasurementError(
            f"the schedule of {checkpoint.epochs} epochs rescaled from a "
            f"{checkpoint.run_epochs}-epoch run (milestones {short.lr_milestones}) does not "
            f"put its decays on the long run's steps at {steps_per_epoch} steps per epoch "
            "(a rounding case); choose milestones that fall on whole steps")


def model_at(checkpoint: Checkpoint, *, data=None, data_root=None, device="auto"):
    """The model at ``checkpoint`` (train mode, default memory layout) and its data.

    Returns ``(model, data, device, trained)`` where ``trained`` is the TrainResult of the
    training run (None at initialisation).

    Raises:
        MeasurementError: the training run to the checkpoint diverged or failed.
    """
    config = checkpoint.config
    if checkpoint.epochs == 0:
        device, data, model, _ = setup_run(config, data=data, data_root=data_root,
                                           device=device, channels_last=False)
        return model, data, device, None
    device = resolve_device(device)
    if data is None:
        data = load_data(config.data, root=data_root, train_subset=config.train_subset,
                         test_subset=config.test_subset, subset_seed=config.subset_seed,
                         device=device)
    check_schedule(checkpoint, data.steps_per_epoch(config.batch_size))
    result, model = train(checkpoint.trained_config, data=data, device=device,
                          progress=False, channels_last=False, return_model=True)
    if result.status != "complete":
        raise MeasurementError(
            f"the run to the checkpoint ({config.model}, m={config.batch_size}, "
            f"eta_tilde={config.base_lr:g}, {checkpoint.label}) {result.status}; "
            "choose a smaller base_lr for the checkpoint")
    model.train()
    return model, data, device, result


def measure_with(kind: str, compute, config, results_dir, **kwargs) -> dict:
    """The stored record of (``kind``, ``config``) in ``results_dir``, else
    ``compute(config, **kwargs)`` measured now and stored (``results_dir=None``: measure,
    store nothing): what each theory measurement's ``measure`` does."""
    return measure_or_load(kind, config, lambda: compute(config, **kwargs), results_dir)


# ------------------------------------------------------------------ the chapters' tables

def log2_label(value: float) -> str:
    """A learning rate as a power of two, as the tables write it: 2^-10 (2^-9.5 between)."""
    if not value > 0:
        raise ValueError(f"a power of two is positive, got {value}")
    return f"2^{math.log2(value):g}"


def _schedule_text(config: TrainConfig) -> str:
    if not config.lr_milestones and not config.warmup:
        return "constant LR"
    parts = [f"LR x {config.lr_decay:g} at {', '.join(f'{f:.0%}' for f in config.lr_milestones)}"
             " of the steps"] if config.lr_milestones else []
    if config.warmup:
        parts.append(f"linear warm-up over {config.warmup_fraction:.0%} of the steps")
    return "; ".join(parts)


def protocol_table(checkpoints: Sequence[Checkpoint], measurement: Mapping[str, Any],
                   results_dir: Path | None, *, name: str) -> pd.DataFrame:
    """The protocol of a measurement at ``checkpoints`` as one column (book: the opening
    tables of "The variance derivation, measured" and "n small steps against one large
    step"): the network, the data, the checkpoints and the training that reaches them, then
    the rows of ``measurement`` (label -> value, in order), then where the records are
    stored (``results_dir`` None: the smoke scale, not stored).

    Raises:
        ValueError: no checkpoints, or checkpoints of different networks or data.
    """
    if not checkpoints:
        raise ValueError("a protocol needs at least one checkpoint")
    recipe = checkpoints[0].config
    if any(c.config != recipe for c in checkpoints):
        raise ValueError("the checkpoints of one measurement share one network, data and "
                         "recipe (they differ only in epochs)")
    rows = {
        "network": f"{recipe.model}, batch norm: {recipe.batch_norm}",
        "data": recipe.data + (f" ({recipe.train_subset:,} training images)"
                               if recipe.train_subset else " (all training images)"),
        "checkpoints": ", ".join(c.label for c in checkpoints),
        "training to the checkpoints": f"plain SGD, m = {recipe.batch_size}, eta_tilde = "
                                       f"{log2_label(recipe.base_lr)}, {_schedule_text(recipe)}",
        **measurement,
        "stored in": (str(Path(results_dir).relative_to(repo_root())) if results_dir
                      else "(smoke: not stored)"),
    }
    return pd.Series(rows, name=name).to_frame()


def records_table(records: Sequence[dict], columns: Mapping[str, Sequence] | None = None,
                  formats: Mapping[str, str] | None = None, na_rep: str | None = None):
    """The stored records of a measurement, one row per checkpoint: its record (config
    hash), the code commit and device it ran on and its minutes (book: the theory
    chapters, under their protocol tables).

    Args:
        records: measurement records (``values.checkpoint``, ``config_hash``,
            ``provenance``, ``wall_time``).
        columns: further columns after the checkpoint, name -> one value per record.
        formats: number formats of those columns ("{:.3f}"); minutes get "{:.1f}".
        na_rep: how a missing value of those columns reads.

    Returns:
        the table, styled (a pandas Styler; ``.data`` is the DataFrame).
    """
    columns = dict(columns or {})
    for name, values in columns.items():
        if len(values) != len(records):
            raise ValueError(f"column {name!r} has {len(values)} values for "
                             f"{len(records)} records")
    rows = [{"checkpoint": record["values"]["checkpoint"],
             **{name: values[k] for name, values in columns.items()},
             "record": record["config_hash"],
             "commit": (record["provenance"]["git_commit"] or "?")[:12],
             "device": record["provenance"]["device_name"],
             "minutes": record["wall_time"] / 60} for k, record in enumerate(records)]
    return pd.DataFrame(rows).set_index("checkpoint").style.format(
        {**(formats or {}), "minutes": "{:.1f}"}, na_rep=na_rep)
