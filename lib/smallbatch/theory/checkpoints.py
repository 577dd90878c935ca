"""The weights a theory measurement starts from (book: the theory chapters).

:class:`Checkpoint` names them: a model at its initialisation, or after a given number of
epochs of plain SGD training; :func:`model_at` rebuilds that model (it trains, so it lives
here and not in the record store). The measurements' records are kept by
:mod:`smallbatch.store` (``measure_or_load``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..store import MeasurementError
from ..train import TrainConfig

__all__ = ["Checkpoint", "model_at"]


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
