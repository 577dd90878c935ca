"""The gradient noise scale along a training run, with and without batch norm (book: "The
noise scale along a run").

McCandlish et al. (2018) call B_simple = tr(Sigma) / |G|^2 the simple noise scale: the batch
size at which the noise of a mean gradient, tr(Sigma) / B, equals its signal |G|^2 (Sigma:
the per-example gradient covariance, G the full-data gradient). It needs no per-example
gradients: with |G_B|^2 the squared norm of the mean gradient of B examples drawn *with
replacement* (so the B gradients are independent),

    E |G_B|^2 = |G|^2 + tr(Sigma) / B,

and averages over many batches at two sizes B_small < B_big give unbiased estimates

    |G|^2     = (B_big mean|G_Bbig|^2 - B_small mean|G_Bsmall|^2) / (B_big - B_small),
    tr(Sigma) = (mean|G_Bsmall|^2 - mean|G_Bbig|^2) / (1/B_small - 1/B_big)

(:func:`two_batch_noise_scale`); B_simple is their ratio, a ratio of averages.

Why two batch sizes: with batch norm in train mode an example's gradient depends on the
rest of its batch, so per-example gradients are undefined. The gradient SGD uses is that
of a batch of m examples normalised by their own statistics (m: the checkpoint's BN group,
``bn_batch_size`` or its batch size). So with batch norm each mean gradient here is the mean
over groups of that many examples, each group one forward pass with its own batch
statistics, as in training (and as McCandlish et al. average the gradients of their
data-parallel devices). The "example" of the formulas is then a group: G_Bbig is exactly
the mean of B_big / m independent group gradients, the identity above holds exactly, and the
estimate is the noise scale of the batch gradient SGD actually uses, in examples. Without
batch norm the grouping is only memory (the gradients do not depend on it), and
``per_example > 0`` adds the direct estimate from per-example gradients (``torch.func``),
centred on the exact full-data gradient, as a check of the two-batch one.

Running statistics: gradients in train mode use batch statistics only, so the running
means and variances do not enter (a test checks this); the forward passes update them, so
the module's buffers are saved and restored around the measurement.

:func:`noise_scale_frame` turns the stored records into the chapter's table, with bootstrap
intervals (the small and big draws resampled independently; the per-example deviations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..store import MeasurementError
from ..train import TrainConfig
from .checkpoints import Checkpoint, measure_with, model_at
from .gradnoise import CHUNK, full_gradient, per_example_gradients

__all__ = ["KIND", "two_batch_noise_scale", "NoiseScaleConfig", "bn_group", "has_batch_norm",
           "mean_gradient", "batch_sq_norms", "compute", "measure", "measurements_along",
           "noise_scale_frame", "reproduction_frame"]

KIND = "noise-scale"


def two_batch_noise_scale(small_batch: int, small_sq_norm: float, big_batch: int,
                          big_sq_norm: float) -> dict[str, float]:
    """McCandlish et al.'s unbiased estimates from |G_B|^2, the squared norm of a mean
    gradient over B examples, measured at two batch sizes B_small < B_big:

        |G|^2     = (B_big |G_Bbig|^2 - B_small |G_Bsmall|^2) / (B_big - B_small)
        tr(Sigma) = (|G_Bsmall|^2 - |G_Bbig|^2) / (1 / B_small - 1 / B_big)

    since E|G_B|^2 = |G|^2 + tr(Sigma) / B for B examples drawn with replacement. Returns
    grad_sq_norm, trace_sigma and B_simple = trace_sigma / grad_sq_norm (each an average
    over many measurements in practice: the ratio of averages, not the average of ratios)."""
    if not 0 < small_batch < big_batch:
        raise ValueError(f"need 0 < small_batch < big_batch, got {small_batch}, {big_batch}")
    grad_sq = (big_batch * big_sq_norm - small_batch * small_sq_norm) / (big_batch - small_batch)
    trace = (small_sq_norm - big_sq_norm) / (1 / small_batch - 1 / big_batch)
    return {"grad_sq_norm": grad_sq, "trace_sigma": trace,
            "b_simple": trace / grad_sq if grad_sq > 0 else math.inf}


def bn_group(config: TrainConfig) -> int | None:
    """Examples per batch-norm statistics group in training (``bn_batch_size``, else the
    batch size m); None without batch norm."""
    if config.batch_norm == "none":
        return None
    return config.bn_batch_size or config.batch_size


@dataclass(frozen=True)
class NoiseScaleConfig:
    """One noise-scale measurement: the network at ``checkpoint``, ``draws`` batches of
    ``small_batch`` and ``big_draws`` of ``big_batch`` examples, drawn with replacement, and
    optionally ``per_example`` per-example gradients (without batch norm only).

    Separate counts because a big batch costs B_big / B_small small ones while the small
    draws carry most of the estimate's variance (|G_Bsmall|^2 is mostly noise, tr(Sigma) /
    B_small; see the presets for the measured numbers)."""

    checkpoint: Checkpoint
    small_batch: int  # B_small, examples (with batch norm: a multiple of the BN group)
    big_batch: int    # B_big > B_small, examples (likewise)
    draws: int        # batches drawn at B_small
    big_draws: int | None = None  # batches drawn at B_big; None = draws
    per_example: int = 0  # per-example gradients for the direct estimate; 0 = none
    seed: int = 0     # which batches and examples are drawn (independent of the model seed)

    def __post_init__(self):
        if not 0 < self.small_batch < self.big_batch:
            raise MeasurementError(
                f"need 0 < small_batch < big_batch, got {self.small_batch} and "
                f"{self.big_batch}; the noise scale comes from the difference between them")
        if self.draws < 2 or self.num_big_draws < 2:
            raise MeasurementError(f"draws and big_draws must be >= 2 (got {self.draws} and "
                                   f"{self.big_draws}): the intervals resample the draws")
        if self.per_example < 0 or self.per_example == 1:
            raise MeasurementError(f"per_example must be 0 (none) or >= 2, got "
                                   f"{self.per_example}: a variance needs two samples")
        group = bn_group(self.checkpoint.config)
        if group is not None and self.per_example:
            raise MeasurementError(
                "per-example gradients are not defined with batch norm in train mode (an "
                "example's gradient depends on its batch); use per_example=0 for a "
                "checkpoint with batch norm, or one with batch_norm='none'")
        if group is not None and (self.small_batch % group or self.big_batch % group):
            raise MeasurementError(
                f"with batch norm every mean gradient is over groups of {group} examples "
                f"(the checkpoint's BN group); use small_batch and big_batch that are "
                f"multiples of {group}, got {self.small_batch} and {self.big_batch}")


    @property
    def num_big_draws(self) -> int:
        return self.draws if self.big_draws is None else self.big_draws


def has_batch_norm(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def mean_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, group: int
                  ) -> torch.Tensor:
    """(1/B) sum over consecutive groups of ``group`` examples of the gradient of the
    group's summed loss, one forward pass per group, flattened, float64. Without batch norm
    it is the batch's mean gradient for any ``group``; with it, each group is normalised by
    its own statistics."""
    params = [p for p in model.parameters() if p.requires_grad]
    total = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64, device=x.device)
    for start in range(0, len(y), group):
        loss = F.cross_entropy(model(x[start:start + group]), y[start:start + group],
                               reduction="sum")
        grads = torch.autograd.grad(loss, params)
        total += torch.cat([g.reshape(-1) for g in grads]).double()
    return total / len(y)


def batch_sq_norms(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                   draws: int, generator: torch.Generator, group: int) -> list[float]:
    """|G_B|^2 for ``draws`` batches of ``batch_size`` examples drawn with replacement from
    (x, y), each mean gradient by :func:`mean_gradient` over groups of ``group``. The model's
    buffers (batch-norm running statistics) are restored afterwards."""
    saved = {name: b.clone() for name, b in model.named_buffers()}
    try:
        values = []
        for _ in range(draws):
            index = torch.randint(len(y), (batch_size,), generator=generator).to(x.device)
            values.append(float((mean_gradient(model, x[index], y[index], group) ** 2).sum()))
        return values
    finally:
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(saved[name])


def compute(config: NoiseScaleConfig, *, data=None, data_root=None, device="auto"):
    """Measure at the checkpoint; returns ``(values, device)`` for :func:`measure_or_load`.

    Raises:
        MeasurementError: per-example gradients asked for with batch norm, or batches larger
            than the training set.
    """
    checkpoint = config.checkpoint
    model, data, device, trained = model_at(checkpoint, data=data, data_root=data_root,
                                            device=device)
    batch_norm = has_batch_norm(model)
    if batch_norm and config.per_example:
        raise MeasurementError("per-example gradients are not defined with batch norm in "
                               "train mode; use per_example=0")
    x, y = data.train_x, data.train_y
    num_train = len(y)
    if config.big_batch > num_train or config.per_example > num_train:
        raise MeasurementError(f"big_batch={config.big_batch} and per_example="
                               f"{config.per_example} need at least that many training "
                               f"examples; the data have {num_train}")
    group = bn_group(checkpoint.config) if batch_norm else CHUNK
    generator = torch.Generator().manual_seed(config.seed)
    small = batch_sq_norms(model, x, y, config.small_batch, config.draws, generator, group)
    big = batch_sq_norms(model, x, y, config.big_batch, config.num_big_draws, generator,
                         group)
    values = {
        "checkpoint": checkpoint.label,
        "epochs": checkpoint.epochs,
        "run_epochs": checkpoint.run_epochs,
        "steps": checkpoint.epochs * data.steps_per_epoch(checkpoint.config.batch_size),
        "num_train": num_train,
        "num_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "batch_norm": checkpoint.config.batch_norm,
        "bn_group": group if batch_norm else None,
        "small_sq_norms": small,
        "big_sq_norms": big,
        "checkpoint_test_accuracy": trained.epochs[-1].test_accuracy if trained else None,
        "checkpoint_test_accuracies": ([e.test_accuracy for e in trained.epochs]
                                       if trained else []),
    }
    if config.per_example:
        gradient, loss = full_gradient(model, x, y)
        picked = torch.randperm(num_train, generator=generator)[:config.per_example]
        picked = picked.to(x.device)
        deviations = []
        for start in range(0, len(picked), CHUNK):
            index = picked[start:start + CHUNK]
            g = per_example_gradients(model, x[index], y[index]).double()
            deviations.extend(((g - gradient) ** 2).sum(dim=1).tolist())
        values.update(grad_sq_norm=float((gradient ** 2).sum()), train_loss=loss,
                      per_example_sq_deviations=deviations)
    return values, device


def measure(config: NoiseScaleConfig, results_dir, *, data=None, data_root=None,
            device="auto") -> dict:
    """The stored record of ``config`` in ``results_dir``, else measure and store it
    (``results_dir=None``: measure, store nothing)."""
    return measure_with(KIND, compute, config, results_dir, data=data, data_root=data_root,
                        device=device)


# ---------------------------------------------------------------- the measurements of a run

def measurements_along(run: TrainConfig, settings) -> list[NoiseScaleConfig]:
    """The measurements of :func:`smallbatch.presets.noise_scale` ``settings`` along one run:
    its checkpoints at ``settings.epochs`` epochs of its own ``num_epochs``-epoch run, with
    per-example gradients for a network without batch norm only. Which run to measure (a
    study's best at m) is the analysis's choice:
    :func:`smallbatch.analysis.budget.noise_scale_configs`."""
    per_example = settings.per_example if run.batch_norm == "none" else 0
    return [NoiseScaleConfig(Checkpoint(run, epochs, run_epochs=run.num_epochs),
                             small_batch=settings.small_batch, big_batch=settings.big_batch,
                             draws=settings.draws, big_draws=settings.big_draws,
                             per_example=per_example)
            for epochs in settings.epochs]


# ------------------------------------------------------------------------------ analysis

def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of bootstrap samples, without interpolation, so
    that a resample whose |G|^2 estimate is <= 0 (B_simple = inf) makes the upper end inf:
    unbounded, rather than NaN."""
    tail = (1 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


def noise_scale_frame(records: list[dict], *, confidence: float = 0.95, resamples: int = 2000,
                      seed: int = 0) -> pd.DataFrame:
    """One row per record: B_simple by the two-batch estimator and, where measured, by
    per-example gradients.

    Columns: batch_norm, checkpoint (label), epochs, steps; small_batch, big_batch, draws
    and big_draws (batches at each);
    the two-batch estimate b_simple = trace_sigma / grad_sq_norm (from the averages of the
    draws) with b_simple_low / b_simple_high (bootstrap: the small and the big draws
    resampled independently; b_simple_high is inf where more than the upper tail of the
    resamples estimate |G|^2 <= 0); b_simple_per_example = mean |g_i - G|^2 / |G|^2 with G the
    exact full-data gradient (trace_sigma_per_example, grad_sq_norm_exact) and its interval
    b_simple_per_example_low / _high (the deviations resampled), NaN where not measured;
    per_example (the count); test_accuracy at the checkpoint.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for record in records:
        config, values = record["config"], record["values"]
        small_b, big_b = config["small_batch"], config["big_batch"]
        small, big = np.asarray(values["small_sq_norms"]), np.asarray(values["big_sq_norms"])
        estimate = two_batch_noise_scale(small_b, small.mean(), big_b, big.mean())
        small_means = rng.choice(small, (resamples, len(small))).mean(axis=1)
        big_means = rng.choice(big, (resamples, len(big))).mean(axis=1)
        boot = [two_batch_noise_scale(small_b, s, big_b, b)["b_simple"]
                for s, b in zip(small_means, big_means)]
        low, high = _interval(np.asarray(boot), confidence)
        row = {"batch_norm": values["batch_norm"], "checkpoint": values["checkpoint"],
               "epochs": values["epochs"], "steps": values["steps"],
               "small_batch": small_b, "big_batch": big_b, "draws": len(small),
               "big_draws": len(big),
               "b_simple": estimate["b_simple"], "b_simple_low": low, "b_simple_high": high,
               "trace_sigma": estimate["trace_sigma"],
               "grad_sq_norm": estimate["grad_sq_norm"],
               "b_simple_per_example": math.nan, "b_simple_per_example_low": math.nan,
               "b_simple_per_example_high": math.nan, "trace_sigma_per_example": math.nan,
               "grad_sq_norm_exact": math.nan, "per_example": 0,
               "test_accuracy": values["checkpoint_test_accuracy"]}
        if values.get("per_example_sq_deviations"):
            deviations = np.asarray(values["per_example_sq_deviations"])
            exact = values["grad_sq_norm"]
            boot_pe = rng.choice(deviations, (resamples, len(deviations))).mean(axis=1) / exact
            low_pe, high_pe = _interval(boot_pe, confidence)
            row.update(b_simple_per_example=deviations.mean() / exact,
                       b_simple_per_example_low=low_pe, b_simple_per_example_high=high_pe,
                       trace_sigma_per_example=deviations.mean(), grad_sq_norm_exact=exact,
                       per_example=len(deviations))
        rows.append(row)
    return pd.DataFrame(rows)


def reproduction_frame(records: list[dict], trials: list) -> pd.DataFrame:
    """Does each checkpoint's run reproduce the stored trial it is part of? One row per
    record: batch_norm, checkpoint, epochs, the checkpoint run's test accuracy at its last
    epoch k, the stored trial's at epoch k, and their difference (``trials``: the stored
    TrainResults, matched by config; records without one are left out)."""
    by_config = {t.config: t for t in trials}
    rows = []
    for record in records:
        checkpoint = Checkpoint.from_dict(record["config"]["checkpoint"])
        trial = by_config.get(checkpoint.config)
        if trial is None or checkpoint.epochs == 0:
            continue
        values = record["values"]
        stored = trial.epochs[checkpoint.epochs - 1].test_accuracy
        rows.append({"batch_norm": values["batch_norm"], "checkpoint": values["checkpoint"],
                     "epochs": checkpoint.epochs,
                     "checkpoint_test_accuracy": values["checkpoint_test_accuracy"],
                     "trial_test_accuracy": stored,
                     "difference": values["checkpoint_test_accuracy"] - stored})
    return pd.DataFrame(rows)
