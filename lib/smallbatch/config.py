"""One run's configuration and record, without torch (book: "Quickstart"; results/README.md):
TrainConfig and its hash, the paper's rules that need no tensor (the learning-rate scaling
rules, the step schedule and warm-up, the evaluation steps, the divergence threshold, the
headline metric), and the records a run leaves: EpochMetrics, EvalPoint, TrainResult.

Reading stored records needs only this module; :mod:`smallbatch.train`, which trains, re-
exports every name here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LR_SCALING_RULES", "WEIGHT_DECAY_SCALINGS", "STATUSES", "HEADLINE_EPOCHS",
    "DIVERGENCE_LOSS_PER_LN_CLASS", "ConfigError", "TrainConfig", "LATER_FIELDS",
    "EpochMetrics", "EvalPoint", "TrainResult", "headline_accuracy", "divergence_threshold",
    "has_diverged", "run_result", "config_hash", "learning_rate", "warmup_steps",
    "eval_steps", "lr_at_step",
]

LR_SCALING_RULES = ("linear", "sqrt", "none")
WEIGHT_DECAY_SCALINGS = ("per_example", "per_step")
STATUSES = ("complete", "diverged", "failed")  # TrainResult.status

# The paper's rules for one run, used by train() and by the lock-step ensemble alike
# (smallbatch.ensemble), so that the two loops cannot drift apart:
HEADLINE_EPOCHS = 5  # the headline metric: the median test accuracy of the last 5 epochs
DIVERGENCE_LOSS_PER_LN_CLASS = 10  # default divergence threshold: 10 * ln(num_classes)


class ConfigError(ValueError):
    """A training configuration that cannot run; the message says what is allowed."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines one run's result. Its hash identifies the run.

    Where to find the data, the device and the progress bar are arguments of :func:`train`,
    not part of the config: they do not change what is computed (beyond float rounding
    between devices, which the provenance records).

    Weight decay (``weight_decay_scaling``): "per_example" puts lambda/2 |theta|^2 into every
    example's loss, so in sum form the update is eta_tilde * sum_i (g_i + lambda theta): in
    PyTorch, SGD(weight_decay=lambda) with lr = eta. Decay per epoch is then the same for every
    m. "per_step" adds lambda/2 |theta|^2 once per step to the summed loss (weight_decay =
    lambda / m): decay per epoch falls as 1/m.
    """

    data: str = "fashion-mnist"        # one of smallbatch.data.DATASETS
    model: str = "resnet8"             # one of smallbatch.models.MODELS
    batch_norm: str = "all"            # "none" | "all" (| "conv" for alexnet)
    bn_batch_size: int | None = None   # m_BN: examples per BN statistics group; None = m
    augment: bool = False              # pad 4 + random crop + random horizontal flip
    batch_size: int = 32               # m: examples per SGD step
    base_lr: float = 2.0**-8           # eta_tilde: per-example LR at reference_batch_size
    lr_scaling: str = "linear"         # eta from eta_tilde: linear (eta = m * eta_tilde),
                                       # sqrt, none; see learning_rate()
    reference_batch_size: int = 1      # m_ref where every scaling rule gives m_ref * eta_tilde
    momentum: float = 0.0              # the paper uses plain SGD
    weight_decay: float = 0.0          # L2 coefficient lambda (paper: 5e-4 AlexNet, 1e-4 ResNet)
    weight_decay_scaling: str = "per_example"  # how decay scales with m: see above
    num_epochs: int = 10               # fixed budget, the same for every (m, eta_tilde)
    lr_milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of all iterations where
    lr_decay: float = 0.1                           # the LR is multiplied by lr_decay
    warmup: bool = False               # linear warm-up from eta / 32 ...
    warmup_fraction: float = 0.05      # ... over this fraction of all iterations
    seed: int = 0                      # weight init, shuffling and augmentation
    train_subset: int | None = None    # stratified training subset size; None = all
    test_subset: int | None = None     # stratified test subset size; None = all
    subset_seed: int = 0               # which subset (independent of seed)
    divergence_loss: float | None = None  # mean batch loss above which the run counts as
                                          # diverged; None = 10 * ln(num_classes)
    eval_batch_size: int = 1000        # examples per forward pass when evaluating
    # Fields added after the first studies were stored. Each is left out of to_dict() (and
    # so of the config hash) while it has its default, so every earlier record keeps its
    # hash and its meaning (LATER_FIELDS).
    validation_subset: int | None = None  # a stratified validation set of this many images,
                                          # drawn from the test images outside test_subset
                                          # (disjoint from the test set); None = none
    eval_growth: float | None = None   # step-resolved evaluation: validation accuracy also
                                       # after steps s_0, s_1, ... with s_{k+1} =
                                       # max(s_k + 1, floor(eval_growth * s_k)); None = at
                                       # epoch ends only (see eval_steps())
    eval_from_examples: int = 0        # s_0 = ceil(eval_from_examples / m) (at least step 1)
    stop_accuracy: float | None = None # stop once validation accuracy >= this at an
                                       # evaluation (steps to a target); None = never

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values; a field of LATER_FIELDS only where it is not at its
        default (so configs from before it existed keep their hash)."""
        values = dataclasses.asdict(self)
        values["lr_milestones"] = list(self.lr_milestones)
        for name, default in LATER_FIELDS.items():
            if values[name] == default:
                del values[name]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig field(s): {', '.join(unknown)}; "
                              f"known fields: {', '.join(sorted(known))}")
        values = dict(values)
        if "lr_milestones" in values:
            values["lr_milestones"] = tuple(values["lr_milestones"])
        return cls(**values)

    @property
    def sgd_weight_decay(self) -> float:
        """The weight_decay to give SGD with lr = eta: lambda ("per_example") or lambda / m
        ("per_step")."""
        if self.weight_decay_scaling == "per_step":
            return self.weight_decay / self.batch_size
        return self.weight_decay

    @property
    def peak_lr(self) -> float:
        """eta: the LR of one SGD step on the mean loss, before schedule and warm-up."""
        return learning_rate(self.base_lr, self.batch_size, self.lr_scaling,
                             self.reference_batch_size)


# The TrainConfig fields added after records were first stored, with their defaults:
# to_dict() leaves them out at these values, so old config hashes stay valid.
LATER_FIELDS: dict[str, Any] = {"validation_subset": None, "eval_growth": None,
                                "eval_from_examples": 0, "stop_accuracy": None}


def headline_accuracy(epochs: list[EpochMetrics]) -> float:
    """The paper's headline metric of a complete run: the median test accuracy of its last
    HEADLINE_EPOCHS epochs (of all its epochs, when it has fewer)."""
    return statistics.median(e.test_accuracy for e in epochs[-HEADLINE_EPOCHS:])


def divergence_threshold(config: "TrainConfig", num_classes: int) -> float:
    """The mean training loss of a check window above which a run counts as diverged:
    ``config.divergence_loss``, else DIVERGENCE_LOSS_PER_LN_CLASS * ln(num_classes) (ten times
    the loss of a uniform guess)."""
    return config.divergence_loss or DIVERGENCE_LOSS_PER_LN_CLASS * math.log(num_classes)


def has_diverged(window_mean: float, threshold: float) -> bool:
    """The divergence check of one window: its mean loss is non-finite or above threshold."""
    return not math.isfinite(window_mean) or window_mean > threshold


def run_result(config: "TrainConfig", epochs: list[EpochMetrics],
               diverged_at: tuple[int, int] | None, **measured: Any) -> "TrainResult":
    """A finished run's result: "complete" with the headline metric, or, where
    ``diverged_at`` gives its (epoch, step), "diverged" with no headline. ``measured``: the
    remaining TrainResult fields (num_steps, wall_time, provenance, evaluations ...).

    The headline of a run that stopped at ``stop_accuracy`` (``stopped_step`` in
    ``measured``) or evaluated by steps (``eval_growth``) is the test accuracy where it
    ended: its last evaluation."""
    if diverged_at is None:
        if measured.get("stopped_step") is not None or config.eval_growth is not None:
            headline = measured["evaluations"][-1].test_accuracy
        else:
            headline = headline_accuracy(epochs)
        return TrainResult(config=config, status="complete", epochs=epochs,
                           test_accuracy=headline, **measured)
    epoch, step = diverged_at
    return TrainResult(config=config, status="diverged", epochs=epochs, test_accuracy=None,
                       diverged_epoch=epoch, diverged_step=step, **measured)


def config_hash(config: TrainConfig) -> str:
    """A short stable identity for a config: sha256 of its sorted JSON, 16 hex digits."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def learning_rate(base_lr: float, batch_size: int, rule: str = "linear",
                  reference_batch_size: int = 1) -> float:
    """eta for batch size m from the base LR eta_tilde (book: "Learning-rate scaling").

    With m_ref the reference batch size:

    - linear: eta = m * eta_tilde (constant mean update per gradient computation);
    - sqrt:   eta = m_ref * eta_tilde * sqrt(m / m_ref) (constant update covariance);
    - none:   eta = m_ref * eta_tilde (the LR of a mean loss held fixed, as TensorFlow
      Playground does).

    All three agree at m = m_ref; ``base_lr`` is always the per-example LR there.
    """
    if rule == "linear":
        return batch_size * base_lr
    if rule == "sqrt":
        return reference_batch_size * base_lr * math.sqrt(batch_size / reference_batch_size)
    if rule == "none":
        return reference_batch_size * base_lr
    raise ConfigError(f"unknown lr_scaling {rule!r}; choose one of: {', '.join(LR_SCALING_RULES)}")


def warmup_steps(total_steps: int, warmup_fraction: float = 0.05) -> int:
    """Steps of the linear warm-up: ceil(warmup_fraction * total_steps)."""
    return math.ceil(warmup_fraction * total_steps)


def eval_steps(config: TrainConfig, total_steps: int) -> list[int]:
    """The steps after which a run with ``eval_growth`` evaluates on validation, in place of
    epoch ends (book: "Steps to a target").

    s_0 = max(1, ceil(eval_from_examples / m)), s_{k+1} = max(s_k + 1, floor(eval_growth *
    s_k)), below ``total_steps``, and then ``total_steps`` itself (where a run that did not
    stop ends, and its test set reports). A target first seen at s_k was reached after
    s_{k-1}: the steps not observed before it, s_k - s_{k-1} - 1, are under
    (eval_growth - 1) * s_k, and none while s_k <= 1 / (eval_growth - 1) (every step is
    evaluated there). Empty without ``eval_growth``. The same list for train() and the
    lock-step ensemble.
    """
    if config.eval_growth is None:
        return []
    steps, step = [], max(1, math.ceil(config.eval_from_examples / config.batch_size))
    while step < total_steps:
        steps.append(step)
        step = max(step + 1, math.floor(config.eval_growth * step))
    return steps + [total_steps]


def lr_at_step(step: int, total_steps: int, peak_lr: float, *,
               milestones: tuple[float, ...] = (0.5, 0.75), decay: float = 0.1,
               warmup: bool = False, warmup_fraction: float = 0.05) -> float:
    """The LR used for step ``step`` (0-based) of ``total_steps``.

    Step decay: multiplied by ``decay`` once for every milestone fraction f with
    step >= round(f * total_steps) (the paper: /10 at 50% and 75% of the iterations).
    Warm-up: over the first ceil(warmup_fraction * total_steps) steps the LR rises linearly
    from peak_lr / 32 at step 0 towards peak_lr, which it reaches at the end of warm-up.
    """
    lr = peak_lr
    for fraction in milestones:
        if step >= round(fraction * total_steps):
            lr *= decay
    if warmup:
        rising = warmup_steps(total_steps, warmup_fraction)
        if step < rising:
            start = peak_lr / 32
            lr = start + (peak_lr - start) * step / rising
    return lr


@dataclass(frozen=True)
class EpochMetrics:
    """Metrics after one epoch. Training metrics are means over the epoch's mini-batches
    (train mode, augmented data); test metrics use the whole test set in eval mode (None in
    a step-resolved run, ``eval_growth``, which evaluates by steps, not epochs)."""

    epoch: int                 # 1-based
    train_loss: float
    train_accuracy: float
    test_loss: float | None
    test_accuracy: float | None
    lr: float                  # LR of the epoch's last step
    examples_seen: int         # training examples processed so far
    wall_time: float           # seconds since the start of training


@dataclass(frozen=True)
class EvalPoint:
    """One evaluation of a run with a validation set (``validation_subset``): after
    ``step`` SGD steps, at a step of :func:`eval_steps` (a step-resolved run, which also
    evaluates its last step) or else at an epoch end. The validation metrics are always
    there; the test metrics only where the run ends (at ``stop_accuracy`` or its last step)
    and, without ``eval_growth``, at epoch ends: settings and targets are read on
    validation, and the test set reports. Book: "Steps to a target"."""

    step: int                  # SGD steps taken
    examples_seen: int         # step * m
    validation_loss: float
    validation_accuracy: float
    test_loss: float | None
    test_accuracy: float | None
    wall_time: float           # seconds since the start of training


@dataclass
class TrainResult:
    """The outcome of one run.

    ``status`` is "complete", "diverged" or "failed". A failed run raised an error (kept in
    ``error``; a sweep stores it and retries the run next time). A diverged run stopped when the mean training
    loss of a check window became non-finite or exceeded the divergence threshold; its
    ``epochs`` hold the epochs finished before that, ``diverged_epoch`` (1-based) and
    ``diverged_step`` say where it happened, and ``test_accuracy`` is None.

    ``test_accuracy`` is the paper's headline metric: the median test accuracy of the last
    five epochs (of all epochs, when there are fewer than five).
    """

    config: TrainConfig
    status: str
    epochs: list[EpochMetrics]
    test_accuracy: float | None
    diverged_epoch: int | None = None
    diverged_step: int | None = None
    num_steps: int = 0
    num_parameters: int = 0
    data_label: str = ""
    wall_time: float = 0.0             # seconds, training and evaluation
    examples_per_second: float = 0.0   # training examples / wall_time
    provenance: dict[str, Any] = field(default_factory=dict)
    error: str | None = None           # the error of a failed run
    # Runs with a validation set (left out of to_dict() while empty, as in older records):
    evaluations: list[EvalPoint] = field(default_factory=list)  # in step order
    stopped_step: int | None = None    # the step where validation reached stop_accuracy
    eval_time: float = 0.0             # seconds of wall_time spent evaluating (all sets)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["config"] = self.config.to_dict()
        values["config_hash"] = self.config_hash
        for name, empty in (("evaluations", []), ("stopped_step", None), ("eval_time", 0.0)):
            if values[name] == empty:
                del values[name]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainResult":
        values = dict(values)
        values.pop("config_hash", None)
        values["config"] = TrainConfig.from_dict(values["config"])
        values["epochs"] = [EpochMetrics(**epoch) for epoch in values["epochs"]]
        values["evaluations"] = [EvalPoint(**point) for point in values.get("evaluations", [])]
        return cls(**values)

    def history(self):
        """Per-epoch metrics as a pandas DataFrame, one row per epoch."""
        import pandas as pd

        frame = pd.DataFrame([dataclasses.asdict(e) for e in self.epochs],
                             columns=[f.name for f in dataclasses.fields(EpochMetrics)])
        frame.insert(0, "config_hash", self.config_hash)
        return frame
