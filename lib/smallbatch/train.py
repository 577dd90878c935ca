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
import math
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F

from .config import (DIVERGENCE_LOSS_PER_LN_CLASS, HEADLINE_EPOCHS, LATER_FIELDS,
                     LR_SCALING_RULES, STATUSES, WEIGHT_DECAY_SCALINGS, ConfigError,
                     EpochMetrics, EvalPoint, TrainConfig, TrainResult, config_hash,
                     divergence_threshold, eval_steps, has_diverged, headline_accuracy,
                     learning_rate, lr_at_step, run_result, warmup_steps)
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
