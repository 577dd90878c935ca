"""One SGD training run: the paper's protocol for a single (m, eta_tilde) point.

The paper writes SGD in sum form with a base learning rate eta_tilde (book: "Learning-rate
scaling")::

    theta <- theta - eta_tilde * sum_{i=1..m} grad L_i(theta)

With a mean-reduced loss that is ``torch.optim.SGD`` with ``lr = eta = m * eta_tilde``.
:func:`learning_rate` turns ``base_lr`` into eta for the linear, square-root and no-scaling
rules; :func:`lr_at_step` applies the step schedule (LR / 10 at 50% and 75% of the
iterations) and the optional linear warm-up from eta/32 over the first 5% of iterations.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from .data import DATASETS, ImageData, load_data
from .models import BATCH_NORM_CHOICES, MODELS, build_model, count_parameters
from .provenance import run_provenance

__all__ = [
    "LR_SCALING_RULES",
    "WEIGHT_DECAY_SCALINGS",
    "TrainConfig",
    "EpochMetrics",
    "EvalPoint",
    "TrainResult",
    "LATER_FIELDS",
    "eval_steps",
    "ConfigError",
    "learning_rate",
    "warmup_steps",
    "lr_at_step",
    "config_hash",
    "validate",
    "train",
    "setup_run",
    "make_optimizer",
    "sgd_step",
    "evaluate",
    "resolve_device",
    "prepare_device",
    "HEADLINE_EPOCHS",
    "headline_accuracy",
    "divergence_threshold",
    "has_diverged",
    "run_result",
    "tune_malloc",
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


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" is CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ConfigError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available here; "
                          "use --device cpu or auto")
    return resolved


def _positive_int(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1{' or None' if optional else ''}, "
                          f"got {value!r}")


def validate(config: TrainConfig, num_train: int | None = None) -> None:
    """Reject configs that cannot run, with a message that says what is allowed.

    ``num_train`` (the training set size after subsetting) enables the batch-size check.
    """
    if config.data not in DATASETS:
        raise ConfigError(f"unknown data set {config.data!r}; choose one of: "
                          f"{', '.join(DATASETS)}")
    if config.model not in MODELS:
        raise ConfigError(f"unknown model {config.model!r}; choose one of: {', '.join(MODELS)}")
    allowed = BATCH_NORM_CHOICES[config.model]
    if config.batch_norm not in allowed:
        raise ConfigError(f"batch_norm={config.batch_norm!r} is not available for "
                          f"{config.model}; choose one of: {', '.join(allowed)}")
    _positive_int("batch_size", config.batch_size)
    _positive_int("num_epochs", config.num_epochs)
    _positive_int("reference_batch_size", config.reference_batch_size)
    _positive_int("eval_batch_size", config.eval_batch_size)
    _positive_int("bn_batch_size", config.bn_batch_size, optional=True)
    _positive_int("train_subset", config.train_subset, optional=True)
    _positive_int("test_subset", config.test_subset, optional=True)
    if config.bn_batch_size is not None:
        if config.batch_norm == "none":
            raise ConfigError("bn_batch_size is set but batch_norm is 'none'; "
                              "leave bn_batch_size unset or turn batch norm on")
        if config.batch_size % config.bn_batch_size:
            raise ConfigError(f"bn_batch_size={config.bn_batch_size} does not divide "
                              f"batch_size={config.batch_size}; use a divisor of the batch "
                              "size (the batch is split into equal ghost batches)")
    if not (isinstance(config.base_lr, (int, float)) and math.isfinite(config.base_lr)
            and config.base_lr > 0):
        raise ConfigError(f"base_lr must be a finite number > 0, got {config.base_lr!r}")
    if config.lr_scaling not in LR_SCALING_RULES:
        raise ConfigError(f"unknown lr_scaling {config.lr_scaling!r}; choose one of: "
                          f"{', '.join(LR_SCALING_RULES)}")
    if config.weight_decay_scaling not in WEIGHT_DECAY_SCALINGS:
        raise ConfigError(f"unknown weight_decay_scaling {config.weight_decay_scaling!r}; "
                          f"choose one of: {', '.join(WEIGHT_DECAY_SCALINGS)}")
    if config.weight_decay < 0:
        raise ConfigError(f"weight_decay must be >= 0, got {config.weight_decay}")
    if not 0 <= config.momentum < 1:
        raise ConfigError(f"momentum must be in [0, 1), got {config.momentum}")
    if any(not 0 < f < 1 for f in config.lr_milestones):
        raise ConfigError(f"lr_milestones are fractions of all iterations, each in (0, 1); "
                          f"got {config.lr_milestones}")
    if not 0 < config.lr_decay <= 1:
        raise ConfigError(f"lr_decay must be in (0, 1], got {config.lr_decay}")
    if not 0 < config.warmup_fraction < 1:
        raise ConfigError(f"warmup_fraction must be in (0, 1), got {config.warmup_fraction}")
    if config.divergence_loss is not None and not config.divergence_loss > 0:
        raise ConfigError(f"divergence_loss must be > 0 or None, got {config.divergence_loss}")
    _positive_int("validation_subset", config.validation_subset, optional=True)
    if config.validation_subset is not None and config.test_subset is None:
        raise ConfigError("validation_subset needs a test_subset: the validation images are "
                          "drawn from the test images outside the test subset, so that the "
                          "two never overlap; set test_subset (e.g. 5000 of Fashion-MNIST's "
                          "10,000) or leave validation_subset unset")
    if config.eval_growth is not None:
        if not (isinstance(config.eval_growth, (int, float)) and config.eval_growth > 1):
            raise ConfigError(f"eval_growth must be a number > 1 (1.05: an evaluation every 5% "
                              f"of the steps), got {config.eval_growth!r}")
    if (isinstance(config.eval_from_examples, bool) or not isinstance(config.eval_from_examples, int)
            or config.eval_from_examples < 0):
        raise ConfigError(f"eval_from_examples must be an integer >= 0, got "
                          f"{config.eval_from_examples!r}")
    if config.stop_accuracy is not None and not 0 < config.stop_accuracy <= 1:
        raise ConfigError(f"stop_accuracy is a validation accuracy in (0, 1], got "
                          f"{config.stop_accuracy!r}")
    for name in ("eval_growth", "stop_accuracy"):
        if getattr(config, name) is not None and config.validation_subset is None:
            raise ConfigError(f"{name} reads the validation set, but validation_subset is "
                              "unset; set validation_subset (e.g. 5000) or leave "
                              f"{name} unset")
    if num_train is not None and config.batch_size > num_train:
        raise ConfigError(f"batch_size={config.batch_size} is larger than the training set "
                          f"({num_train} examples); use at most {num_train} or a larger "
                          "train_subset")


_malloc_tuned = False


def tune_malloc() -> None:
    """Stop glibc from mmap'ing and unmapping every step's activations.

    By default each large activation buffer is mmap'd and returned to the OS after the step:
    ~15k page faults per step at m=128. Keeping freed memory in the heap doubled CPU
    throughput here (shared/PERF_NOTES.md; benchmarks/). Linux/glibc only; a no-op elsewhere.
    """
    global _malloc_tuned
    if _malloc_tuned or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        libc.mallopt(M_MMAP_MAX, 0)
        libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    except (OSError, AttributeError):
        pass
    _malloc_tuned = True


def prepare_device(device: torch.device) -> None:
    """Process settings for training on ``device``: malloc tuning on CPU; on CUDA, fp32 as
    in the paper (no TF32 matmuls) and deterministic convolutions."""
    if device.type == "cpu":
        tune_malloc()
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD on the mean loss with lr = eta (set per step by :func:`sgd_step`).

    Weight decay follows ``config.weight_decay_scaling`` (see :class:`TrainResult`):
    "per_example" passes lambda to SGD; "per_step" passes lambda / m.
    """
    return torch.optim.SGD(model.parameters(), lr=config.peak_lr, momentum=config.momentum,
                           weight_decay=config.sgd_weight_decay)


def sgd_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
             y: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on the mean cross-entropy of the batch at learning rate ``lr``.

    With lr = m * eta_tilde this is the paper's sum-form update
    theta <- theta - eta_tilde * sum_i grad L_i(theta). Returns the loss and the logits.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, logits


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: ImageData, batch_size: int,
             channels_last: bool = False, split: str = "test") -> tuple[float, float]:
    """Mean cross-entropy and accuracy on the test (or "validation") set, in eval mode."""
    model.eval()
    loss_sum = 0.0
    correct = 0
    count = 0
    for x, y in data.eval_batches(split, batch_size):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(dim=1) == y).sum().item()
        count += y.numel()
    model.train()
    return loss_sum / count, correct / count


def setup_run(config: TrainConfig, *, data: ImageData | None = None, data_root=None,
              download: bool = False, device: str | torch.device = "auto",
              channels_last: bool | None = None, configs: list[TrainConfig] | None = None):
    """What every run does before its first step: resolve the device, load the data, check
    the batch size against it, set the process up, and build the initial model from the
    seed. Shared by :func:`train` and the lock-step ensembles (whose ``configs`` all share
    these fields), so both start from the same weights by construction.

    Returns:
        (device, data, model, channels_last)
    """
    device = resolve_device(device)
    if data is None:
        data = load_data(config.data, root=data_root, train_subset=config.train_subset,
                         test_subset=config.test_subset, subset_seed=config.subset_seed,
                         validation_subset=config.validation_subset,
                         download=download, device=device)
    for each in configs or [config]:
        validate(each, num_train=data.num_train)
    prepare_device(device)
    if channels_last is None:
        channels_last = device.type == "cpu"
    torch.manual_seed(config.seed)
    channels, height, _ = data.input_shape
    model = build_model(config.model, in_channels=channels, num_classes=data.num_classes,
                        input_size=height, batch_norm=config.batch_norm,
                        bn_batch_size=config.bn_batch_size).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return device, data, model, channels_last


def train(config: TrainConfig, *, data: ImageData | None = None, data_root=None,
          download: bool = False, device: str | torch.device = "auto",
          progress: bool = True, check_every: int = 20,
          channels_last: bool | None = None, return_model: bool = False):
    """Train one model with plain SGD and return its per-epoch metrics.

    Args:
        config: the run; see :class:`TrainConfig`.
        data: an already loaded data set (to share one across runs); otherwise it is loaded
            from ``data_root`` (argument, $SMALLBATCH_DATA, or the default root).
        download: let torchvision download a missing data set.
        device: "auto" (CUDA when present, else CPU), "cpu", "cuda", ...
        progress: show a tqdm progress bar.
        check_every: steps per divergence check (one host sync each).
        channels_last: NHWC memory layout (faster with oneDNN on CPU); None = on for CPU.
        return_model: also return the trained model: ``(result, model)``.

    A run whose loss becomes non-finite or exceeds the divergence threshold is stopped and
    returned with status "diverged": a result, not an exception. Same config, same seed,
    same machine: identical metrics.
    """
    validate(config)
    device, data, model, channels_last = setup_run(
        config, data=data, data_root=data_root, download=download, device=device,
        channels_last=channels_last)
    peak_lr = config.peak_lr
    optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(config.seed)

    steps_per_epoch = data.steps_per_epoch(config.batch_size)
    total_steps = steps_per_epoch * config.num_epochs
    threshold = divergence_threshold(config, data.num_classes)
    schedule = dict(milestones=config.lr_milestones, decay=config.lr_decay,
                    warmup=config.warmup, warmup_fraction=config.warmup_fraction)
    validating = config.validation_subset is not None
    step_resolved = config.eval_growth is not None
    points = set(eval_steps(config, total_steps))
    evaluations: list[EvalPoint] = []
    eval_time = 0.0

    def timed_evaluate(split: str) -> tuple[float, float]:
        nonlocal eval_time
        started = time.perf_counter()
        measured = evaluate(model, data, config.eval_batch_size, channels_last, split=split)
        eval_time += time.perf_counter() - started
        return measured

    def evaluation(step: int, test: tuple[float, float] | None = None) -> EvalPoint:
        val_loss, val_accuracy = timed_evaluate("validation")
        return EvalPoint(step=step, examples_seen=step * config.batch_size,
                         validation_loss=val_loss, validation_accuracy=val_accuracy,
                         test_loss=test[0] if test else None,
                         test_accuracy=test[1] if test else None,
                         wall_time=time.perf_counter() - start)

    def reached(point: EvalPoint) -> bool:
        return (config.stop_accuracy is not None
                and point.validation_accuracy >= config.stop_accuracy)

    from tqdm.auto import tqdm

    bar = tqdm(total=total_steps, disable=not progress, unit="step", leave=False,
               desc=f"{config.model} m={config.batch_size} eta~={config.base_lr:g}")
    epochs: list[EpochMetrics] = []
    status, diverged_epoch, diverged_step = "complete", None, None
    stopped_step = None
    step = 0
    start = time.perf_counter()
    model.train()
    for epoch in range(1, config.num_epochs + 1):
        epoch_loss = torch.zeros((), device=device)
        epoch_correct = torch.zeros((), device=device, dtype=torch.long)
        window_loss = torch.zeros((), device=device)
        window_steps = 0
        epoch_steps = 0
        lr = peak_lr
        for x, y in data.train_batches(config.batch_size, generator=generator,
                                       augment=config.augment):
            lr = lr_at_step(step, total_steps, peak_lr, **schedule)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss, logits = sgd_step(model, optimizer, x, y, lr)
            step += 1
            epoch_steps += 1
            detached = loss.detach()
            epoch_loss += detached
            window_loss += detached
            epoch_correct += (logits.detach().argmax(dim=1) == y).sum()
            window_steps += 1
            if window_steps == check_every or epoch_steps == steps_per_epoch:
                window_mean = window_loss.item() / window_steps
                bar.update(window_steps)
                bar.set_postfix(loss=f"{window_mean:.3f}", refresh=False)
                window_loss.zero_()
                window_steps = 0
                if has_diverged(window_mean, threshold):
                    status, diverged_epoch, diverged_step = "diverged", epoch, step
                    break
            if step in points:
                point = evaluation(step)
                if reached(point) or step == total_steps:  # the run ends: the test set reports
                    test_loss, test_accuracy = timed_evaluate("test")
                    point = dataclasses.replace(point, test_loss=test_loss,
                                                test_accuracy=test_accuracy)
                    if reached(point):
                        stopped_step = step
                evaluations.append(point)
                if stopped_step is not None:
                    break
        if status == "diverged" or stopped_step is not None:
            break
        test_loss = test_accuracy = None  # a step-resolved run tests only where it ends
        if not step_resolved:
            test_loss, test_accuracy = timed_evaluate("test")
        epochs.append(EpochMetrics(
            epoch=epoch,
            train_loss=epoch_loss.item() / epoch_steps,
            train_accuracy=epoch_correct.item() / (epoch_steps * config.batch_size),
            test_loss=test_loss,
            test_accuracy=test_accuracy,
            lr=lr,
            examples_seen=step * config.batch_size,
            wall_time=time.perf_counter() - start,
        ))
        if validating and not step_resolved:
            point = evaluation(step, (test_loss, test_accuracy))
            evaluations.append(point)
            if reached(point):
                stopped_step = step
                break
    bar.close()
    wall_time = time.perf_counter() - start

    result = run_result(
        config, epochs, None if status == "complete" else (diverged_epoch, diverged_step),
        num_steps=step, num_parameters=count_parameters(model), data_label=data.label,
        wall_time=wall_time,
        examples_per_second=step * config.batch_size / wall_time if wall_time > 0 else 0.0,
        provenance=run_provenance(device), evaluations=evaluations,
        stopped_step=stopped_step, eval_time=eval_time if validating else 0.0)
    return (result, model) if return_model else result
