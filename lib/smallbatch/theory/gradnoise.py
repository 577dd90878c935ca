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
tables; bootstrap intervals resample the draws (and the per-example gradients). The rest of
the module returns what the chapter shows: its protocol, the ratio, slope and moment tables
and the two paragraphs that read them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..store import MeasurementError
from .checkpoints import (Checkpoint, log2_label, measure_with, model_at, protocol_table,
                          records_table)
from ..train import learning_rate

__all__ = ["KIND", "GradientNoiseConfig", "per_example_gradients", "summed_gradient",
           "full_gradient", "compute", "measure", "measure_checkpoints", "predicted_sq_deviation",
           "update_lr", "noise_frame", "fit_variance_slopes", "RULE_SLOPES", "deviation_ratios",
           "top_share", "protocol", "measurements_table", "ratio_table", "slope_table",
           "checkpoint_moments", "moments_table", "noise_scale_text", "derivation_text"]

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


def measure_checkpoints(settings, checkpoints, results_dir, **kwargs) -> list[dict]:
    """One record per checkpoint, stored or measured now (book: "The variance derivation,
    measured"): ``settings`` is ``presets.gradient_noise(scale)`` (its per_example,
    batch_sizes and draws); ``kwargs`` go to :func:`measure`."""
    return [measure(GradientNoiseConfig(checkpoint, settings.per_example, settings.batch_sizes,
                                        settings.draws), results_dir, **kwargs)
            for checkpoint in checkpoints]


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


def deviation_ratios(record: dict, batch_size: int) -> np.ndarray:
    """|S - m G|^2 of each batch of size m drawn in ``record``, divided by its prediction
    m tr(Sigma) (N - m)/(N - 1) with tr(Sigma) from the record's per-example gradients (book:
    "The variance derivation, measured", the live histogram). Their mean is 1 in theory."""
    values = record["values"]
    if str(batch_size) not in values["batch_sq_deviations"]:
        raise ValueError(f"no batches of m = {batch_size} in this record; it has m = "
                         f"{', '.join(values['batch_sq_deviations'])}")
    draws = np.asarray(values["batch_sq_deviations"][str(batch_size)])
    trace_sigma = float(np.mean(values["per_example_sq_deviations"]))
    return draws / predicted_sq_deviation(batch_size, trace_sigma, values["num_train"])


def top_share(sq_deviations, fraction: float = 0.01) -> float:
    """The share of sum_i |g_i - G|^2 (of tr Sigma) that the largest ``fraction`` of the
    examples carry (at least one example): 0.01 for equal examples, near 1 when a few
    dominate (book: "The variance derivation, measured")."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    deviations = np.sort(np.asarray(sq_deviations, dtype=np.float64))[::-1]
    return float(deviations[:max(1, int(fraction * len(deviations)))].sum() / deviations.sum())


def protocol(settings, checkpoints, results_dir) -> pd.DataFrame:
    """The chapter's protocol table (book: "The variance derivation, measured"), from
    ``presets.gradient_noise(scale)`` and the checkpoints."""
    return protocol_table(checkpoints, {
        "per-example gradients for tr(Sigma)": f"{settings.per_example:,}",
        "batch sizes m": ", ".join(map(str, settings.batch_sizes)),
        "batches drawn per m": settings.draws,
        "eta_tilde at m_ref (for the update scale)": f"{log2_label(settings.base_lr)} at "
                                                     f"m_ref = {settings.reference_batch_size}",
    }, results_dir, name="gradient-noise measurement")


def measurements_table(records: list[dict]):
    """The stored records, one row per checkpoint (styled; see ``records_table``)."""
    return records_table(records)


def _linear_inside(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The linear rule's rows, and whether each ratio's interval contains 1."""
    linear = frame[frame["rule"] == "linear"]
    return linear, (linear["ratio_low"] <= 1) & (linear["ratio_high"] >= 1)


def ratio_table(frame: pd.DataFrame):
    """Per checkpoint, the ratios measured / predicted of the linear rule: how many, how
    many have a 95% interval that contains 1, their median, lowest and highest (book: "The
    variance derivation, measured"; ``frame`` is :func:`noise_frame`'s). Styled."""
    linear, inside = _linear_inside(frame)
    per_checkpoint = linear.assign(inside=inside).groupby("checkpoint", sort=False).agg(
        ratios=("ratio", "size"), interval_contains_1=("inside", "sum"),
        median_ratio=("ratio", "median"), lowest=("ratio", "min"), highest=("ratio", "max"))
    return per_checkpoint.rename(columns={"interval_contains_1": "95% interval contains 1",
                                          "median_ratio": "median ratio"}).style.format(
        {"median ratio": "{:.3f}", "lowest": "{:.3f}", "highest": "{:.3f}"})


def slope_table(slopes: pd.DataFrame) -> pd.DataFrame:
    """The fitted slopes against the predicted ones, with the verdict "consistent" (the
    interval contains the prediction) or "inconsistent", per checkpoint and rule (book: "The
    variance derivation, measured"; ``slopes`` is :func:`fit_variance_slopes`'s)."""
    table = slopes.assign(
        measured=[f"{s:.3f} [{lo:.3f}, {hi:.3f}]" for s, lo, hi in
                  zip(slopes["slope"], slopes["slope_low"], slopes["slope_high"])],
        verdict=np.where(slopes["consistent"], "consistent", "inconsistent"))
    return table[["checkpoint", "rule", "predicted_slope", "measured", "verdict",
                  "batch_sizes", "draws"]].rename(columns={
        "predicted_slope": "predicted slope", "measured": "fitted slope [95% interval]",
        "batch_sizes": "m"}).set_index(["checkpoint", "rule"])


def checkpoint_moments(records: list[dict], slopes: pd.DataFrame,
                       fraction: float = 0.01) -> pd.DataFrame:
    """Per checkpoint (the index): the gradient moments of :func:`fit_variance_slopes`
    (training loss, tr(Sigma) and its standard error, |G|^2, B_simple), the test accuracy at
    the checkpoint (None at initialisation) and ``top_share``, the share of tr(Sigma) from
    the largest ``fraction`` of the examples (book: "The variance derivation, measured")."""
    by_label = {record["values"]["checkpoint"]: record for record in records}
    moments = slopes[slopes["rule"] == "linear"].set_index("checkpoint")
    missing = set(moments.index) - set(by_label)
    if missing:
        raise ValueError(f"no record for checkpoint(s) {sorted(missing)}")
    return moments.assign(
        test_accuracy=[by_label[c]["values"]["checkpoint_test_accuracy"] for c in moments.index],
        top_share=[top_share(by_label[c]["values"]["per_example_sq_deviations"], fraction)
                   for c in moments.index])


def moments_table(moments: pd.DataFrame):
    """:func:`checkpoint_moments` as the chapter shows it (styled)."""
    return (moments[["train_loss", "test_accuracy", "trace_sigma", "trace_sigma_se",
                     "top_share", "grad_norm_sq", "b_simple"]]
            .rename(columns={"train_loss": "training loss", "test_accuracy": "test accuracy",
                             "trace_sigma": "tr(Sigma)", "trace_sigma_se": "s.e. of tr(Sigma)",
                             "top_share": "share of tr(Sigma) from the top 1% of examples",
                             "grad_norm_sq": "|G|^2",
                             "b_simple": "B_simple = tr(Sigma)/|G|^2"})
            .style.format("{:.4g}", na_rep="(initial weights)"))


def noise_scale_text(moments: pd.DataFrame) -> str:
    """How tr(Sigma), |G|^2 and B_simple changed from the first checkpoint to the last, and
    what that means for large batches (book: "The variance derivation, measured")."""
    first, last = moments.iloc[0], moments.iloc[-1]
    return (
        f"From {moments.index[0]} to {moments.index[-1]}, tr(Σ) changed by a factor of "
        f"{last['trace_sigma'] / first['trace_sigma']:.3g} and |G|² by a factor of "
        f"{last['grad_norm_sq'] / first['grad_norm_sq']:.3g}, so the simple noise scale went "
        f"from {first['b_simple']:.3g} to {last['b_simple']:.3g} examples. "
        + ("Training made the gradient noisier relative to its mean: larger batches are worth "
           "more per step later in training than at the start."
           if last["b_simple"] > first["b_simple"] else
           "Training made the gradient less noisy relative to its mean."))


def derivation_text(frame: pd.DataFrame, slopes: pd.DataFrame) -> str:
    """What the stored measurement says about the derivation: how many slope fits agree with
    the prediction, and how many ratios measured / predicted have an interval that contains
    1 (and by how much the others miss it) (book: "The variance derivation, measured")."""
    linear, inside = _linear_inside(frame)
    misses = linear.loc[~inside]
    miss_by = np.maximum(misses["ratio_low"] - 1, 1 - misses["ratio_high"])
    return (
        "For the paper's argument this gives two things. First, the covariance of one update "
        "grows linearly with $m$ at fixed $\\tilde\\eta$, as the paper states, and the "
        "square-root rule holds it fixed: both are exact consequences of sampling. On this "
        "network the fitted slopes agree with the prediction "
        + (f"in all {len(slopes)} fits" if slopes["consistent"].all()
           else f"in {int(slopes['consistent'].sum())} of {len(slopes)} fits")
        + f" (every checkpoint and rule); {int(inside.sum())} of {len(inside)} "
        "ratios measured / predicted have a 95% interval that contains 1"
        + (f", and the other {len(misses)} miss it by at most {miss_by.max():.1%} (the "
           "ratios of one checkpoint share its estimate of tr Σ, so they are not independent; "
           "the slopes do not depend on it)" if len(misses) else "") + ".")
