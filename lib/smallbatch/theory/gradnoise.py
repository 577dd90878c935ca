"""The variance derivation, measured on a real network (book: "The variance derivation,
measured").

For a batch B of m examples drawn without replacement from the N training examples, the
summed gradient S = sum_{i in B} g_i has mean m G and

    E |S - m G|^2 = m tr(Sigma) (N - m) / (N - 1),

where G = (1/N) sum_i g_i and tr(Sigma) = (1/N) sum_i |g_i - G|^2 over the training set (the
factor (N - m)/(N - 1) is the finite-population correction; it is 0.98 at m = 1024 and
N = 60,000). The sum-form update is -eta_tilde S, so the trace of its covariance is
eta_tilde^2 m tr(Sigma) (N - m)/(N - 1): linear in m at fixed eta_tilde (the linear rule),
constant in m when eta_tilde ~ 1/sqrt(m) (the square-root rule).

:func:`measure` estimates each side independently on a network at a checkpoint:

- tr(Sigma) from per-example gradients (``torch.func``: ``vmap(grad(...))``) of
  ``per_example`` training examples, centred on the exact full-data gradient G;
- V(m) = E |S - m G|^2 from ``draws`` independent batches of each size m, with S from one
  ordinary backward pass of the summed loss (no per-example gradients involved).

:func:`noise_frame` and :func:`fit_variance_slopes` turn the stored records into the chapter's
tables; bootstrap intervals resample the draws (and the per-example gradients).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..store import MeasurementError
from .checkpoints import Checkpoint, measure_with, model_at
from ..train import learning_rate

__all__ = ["KIND", "GradientNoiseConfig", "per_example_gradients", "summed_gradient",
           "full_gradient", "compute", "measure", "predicted_sq_deviation", "update_lr",
           "noise_frame", "fit_variance_slopes", "RULE_SLOPES"]

KIND = "gradient-noise"
CHUNK = 256  # examples per forward/backward pass (memory only; results do not depend on it)

# The log-log slope of tr Cov[update] against m that each rule predicts (from eta_tilde at a
# reference batch size): eta_tilde^2 m ~ m^1, m^0, m^-1.
RULE_SLOPES = {"linear": 1.0, "sqrt": 0.0, "none": -1.0}


@dataclass(frozen=True)
class GradientNoiseConfig:
    """One gradient-noise measurement: the network at ``checkpoint``, ``per_example``
    per-example gradients for tr(Sigma), ``draws`` batches at each of ``batch_sizes``."""

    checkpoint: Checkpoint
    per_example: int
    batch_sizes: tuple[int, ...]
    draws: int
    seed: int = 0  # which examples and batches are drawn (independent of the model seed)

    def __post_init__(self):
        if self.per_example < 2 or self.draws < 2:
            raise MeasurementError(f"per_example and draws must be >= 2 (got {self.per_example}"
                                   f" and {self.draws}): a variance needs two samples")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise MeasurementError(f"batch_sizes must be positive, got {self.batch_sizes}")


def _parameters(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def summed_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sum_i grad L_i over the examples (x, y), flattened, in float64; CHUNK at a time."""
    params = _parameters(model)
    total = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64, device=x.device)
    for start in range(0, len(y), CHUNK):
        loss = F.cross_entropy(model(x[start:start + CHUNK]), y[start:start + CHUNK],
                               reduction="sum")
        grads = torch.autograd.grad(loss, params)
        total += torch.cat([g.reshape(-1) for g in grads]).double()
    return total


def full_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
                  ) -> tuple[torch.Tensor, float]:
    """G = (1/N) sum_i grad L_i over all of (x, y) in float64, and the mean loss there."""
    params = _parameters(model)
    total = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64, device=x.device)
    loss_sum = 0.0
    for start in range(0, len(y), CHUNK):
        loss = F.cross_entropy(model(x[start:start + CHUNK]), y[start:start + CHUNK],
                               reduction="sum")
        grads = torch.autograd.grad(loss, params)
        total += torch.cat([g.reshape(-1) for g in grads]).double()
        loss_sum += loss.item()
    return total / len(y), loss_sum / len(y)


def per_example_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
                          ) -> torch.Tensor:
    """The gradient of each example's loss, (n, P), from ``torch.func.vmap(grad(...))``.

    Valid for models whose output for one example does not depend on the others (no batch
    norm in train mode); parameters in ``model.parameters()`` order, flattened.
    """
    from torch.func import functional_call, grad, vmap

    names = [name for name, p in model.named_parameters() if p.requires_grad]
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())

    def loss_one(p, xi, yi):
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    grads = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
    return torch.cat([grads[name].reshape(len(y), -1) for name in names], dim=1)


def compute(config: GradientNoiseConfig, *, data=None, data_root=None, device="auto"):
    """Measure at the checkpoint; returns ``(values, device)`` for :func:`measure_or_load`."""
    model, data, device, trained = model_at(config.checkpoint, data=data, data_root=data_root,
                                            device=device)
    if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise MeasurementError("per-example gradients are not defined with batch norm in "
                               "train mode (an example's gradient depends on its batch); use "
                               "a checkpoint with batch_norm='none'")
    x, y = data.train_x, data.train_y
    num_train = len(y)
    if max(config.batch_sizes) > num_train or config.per_example > num_train:
        raise MeasurementError(f"batch sizes up to {max(config.batch_sizes)} and "
                               f"{config.per_example} per-example gradients need at least "
                               f"that many training examples; the data have {num_train}")
    generator = torch.Generator().manual_seed(config.seed)
    gradient, loss = full_gradient(model, x, y)

    picked = torch.randperm(num_train, generator=generator)[:config.per_example].to(x.device)
    sq_deviations = []
    for start in range(0, len(picked), CHUNK):
        index = picked[start:start + CHUNK]
        g = per_example_gradients(model, x[index], y[index]).double()
        sq_deviations.extend(((g - gradient) ** 2).sum(dim=1).tolist())

    batch_sq_deviations = {}
    for m in config.batch_sizes:
        values = []
        for _ in range(config.draws):
            index = torch.randperm(num_train, generator=generator)[:m].to(x.device)
            summed = summed_gradient(model, x[index], y[index])
            values.append(float(((summed - m * gradient) ** 2).sum()))
        batch_sq_deviations[str(m)] = values

    values = {
        "checkpoint": config.checkpoint.label,
        "num_train": num_train,
        "num_parameters": int(gradient.numel()),
        "train_loss": loss,
        "grad_norm_sq": float((gradient ** 2).sum()),
        "per_example_sq_deviations": sq_deviations,
        "batch_sq_deviations": batch_sq_deviations,
        "checkpoint_test_accuracy": (trained.epochs[-1].test_accuracy if trained else None),
    }
    return values, device


def measure(config: GradientNoiseConfig, results_dir, *, data=None, data_root=None,
            device="auto") -> dict:
    """The stored record of ``config`` in ``results_dir``, else measure and store it
    (``results_dir=None``: measure, store nothing)."""
    return measure_with(KIND, compute, config, results_dir, data=data, data_root=data_root,
                        device=device)


# ------------------------------------------------------------------------------ analysis

def predicted_sq_deviation(batch_size, trace_sigma: float, num_train: int):
    """E |S - m G|^2 = m tr(Sigma) (N - m)/(N - 1) for m drawn without replacement."""
    m = np.asarray(batch_size, dtype=np.float64)
    return m * trace_sigma * (num_train - m) / (num_train - 1)


def update_lr(batch_size, rule: str, base_lr: float, reference_batch_size: int) -> float:
    """eta_tilde at batch size m under ``rule`` (eta = m * eta_tilde; see train.learning_rate)."""
    return learning_rate(base_lr, batch_size, rule, reference_batch_size) / batch_size


def _summary(record: dict) -> tuple[dict, dict]:
    values = record["values"]
    per_example = np.asarray(values["per_example_sq_deviations"])
    batches = {int(m): np.asarray(v) for m, v in values["batch_sq_deviations"].items()}
    return {"per_example": per_example, "num_train": values["num_train"]}, batches


def noise_frame(records: list[dict], *, base_lr: float, reference_batch_size: int,
                rules=tuple(RULE_SLOPES), confidence: float = 0.95, resamples: int = 2000,
                seed: int = 0) -> pd.DataFrame:
    """One row per checkpoint, batch size and rule: measured and predicted tr Cov[update].

    Columns: checkpoint, batch_size, rule, eta_tilde, measured (eta_tilde^2 mean V(m)),
    measured_low / measured_high (bootstrap interval over the draws), predicted
    (eta_tilde^2 m tr(Sigma) (N - m)/(N - 1), tr(Sigma) from the per-example gradients),
    ratio = measured / predicted with ratio_low / ratio_high (bootstrap over both the draws
    and the per-example gradients), trace_sigma, draws.
    """
    rng = np.random.default_rng(seed)
    tail = (1 - confidence) / 2
    rows = []
    for record in records:
        summary, batches = _summary(record)
        per_example, num_train = summary["per_example"], summary["num_train"]
        trace_sigma = per_example.mean()
        boot_trace = rng.choice(per_example, (resamples, len(per_example))).mean(axis=1)
        for m, draws in sorted(batches.items()):
            mean = draws.mean()
            boot_mean = rng.choice(draws, (resamples, len(draws))).mean(axis=1)
            predicted = predicted_sq_deviation(m, trace_sigma, num_train)
            boot_ratio = boot_mean / predicted_sq_deviation(m, boot_trace, num_train)
            for rule in rules:
                scale = update_lr(m, rule, base_lr, reference_batch_size) ** 2
                rows.append({
                    "checkpoint": record["values"]["checkpoint"], "batch_size": m,
                    "rule": rule, "eta_tilde": math.sqrt(scale),
                    "measured": scale * mean,
                    "measured_low": scale * np.quantile(boot_mean, tail),
                    "measured_high": scale * np.quantile(boot_mean, 1 - tail),
                    "predicted": scale * predicted,
                    "ratio": mean / predicted,
                    "ratio_low": np.quantile(boot_ratio, tail),
                    "ratio_high": np.quantile(boot_ratio, 1 - tail),
                    "trace_sigma": trace_sigma, "draws": len(draws)})
    return pd.DataFrame(rows)


def fit_variance_slopes(records: list[dict], *, rules=tuple(RULE_SLOPES), confidence: float = 0.95,
               resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per checkpoint and rule: the least-squares slope of log tr Cov[update] against
    log m, with a bootstrap interval (draws resampled within each m), and the predicted
    slope.

    The fit is to V(m) / ((N - m)/(N - 1)), i.e. with the known finite-population factor
    divided out, so the prediction is exactly 1 (linear), 0 (square root), -1 (none): a
    rule's eta_tilde^2 multiplies V(m) by a power of m and shifts the slope by a constant.
    Also: tr(Sigma) with its standard error, |G|^2, and B_simple = tr(Sigma) / |G|^2
    (McCandlish et al. 2018: the batch size at which an update's noise equals its signal).
    """
    rng = np.random.default_rng(seed)
    tail = (1 - confidence) / 2
    rows = []
    for record in records:
        summary, batches = _summary(record)
        per_example, num_train = summary["per_example"], summary["num_train"]
        sizes = np.array(sorted(batches), dtype=np.float64)
        correction = (num_train - sizes) / (num_train - 1)
        log_m = np.log(sizes)
        draws = [batches[int(m)] for m in sizes]
        means = np.array([d.mean() for d in draws]) / correction
        slope = np.polyfit(log_m, np.log(means), 1)[0]
        boot = np.array([np.mean(rng.choice(d, (resamples, len(d))), axis=1) for d in draws])
        boot_slopes = np.polyfit(log_m, np.log(boot / correction[:, None]), 1)[0]
        low, high = np.quantile(boot_slopes, [tail, 1 - tail])
        values = record["values"]
        trace_sigma = per_example.mean()
        for rule in rules:
            shift = RULE_SLOPES[rule] - 1.0
            rows.append({
                "checkpoint": values["checkpoint"], "rule": rule,
                "slope": slope + shift, "slope_low": low + shift, "slope_high": high + shift,
                "predicted_slope": RULE_SLOPES[rule],
                "consistent": bool(low + shift <= RULE_SLOPES[rule] <= high + shift),
                "trace_sigma": trace_sigma,
                "trace_sigma_se": per_example.std(ddof=1) / math.sqrt(len(per_example)),
                "grad_norm_sq": values["grad_norm_sq"],
                "b_simple": trace_sigma / values["grad_norm_sq"],
                "train_loss": values["train_loss"],
                "batch_sizes": f"{int(sizes.min())}-{int(sizes.max())}",
                "draws": len(draws[0])})
    return pd.DataFrame(rows)
