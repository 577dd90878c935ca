"""The weights a theory measurement starts from (book: the theory chapters).

:class:`Checkpoint` names them: a model at its initialisation, or after a given number of
epochs of plain SGD training, optionally part-way through a longer run (its schedule);
:func:`model_at` rebuilds that model (it trains, so it lives
here and not in the record store). The measurements' records are kept by
:mod:`smallbatch.store` (``measure_or_load``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..store import MeasurementError, measure_or_load
from ..train import TrainConfig, lr_at_step

__all__ = ["Checkpoint", "check_schedule", "model_at", "measure_with"]


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
    from ..train import setup_run, train

    config = checkpoint.config
    if checkpoint.epochs == 0:
        device, data, model, _ = setup_run(config, data=data, data_root=data_root,
                                           device=device, channels_last=False)
        return model, data, device, None
    from ..data import load_data
    from ..train import resolve_device

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
