"""Budget against batch size (book: "Budget against batch size", in preparation): how many SGD
steps and training examples each m needs to reach a target accuracy, McCandlish et al.'s
steps-examples trade-off fitted to them, and the two-batch-size estimate of the gradient
noise scale.

Steps to a target are read off the per-epoch test accuracy of stored runs, so they are
known only to the epoch: a run reaches the target at the end of the first epoch whose
accuracy is at or above it, and its count is that epoch's steps (an upper bound on the true
crossing, by at most one epoch's steps). The schedule is tied to each run's length, so a
run's learning rate at a given step depends on how long the run was set to be.

McCandlish et al. (2018), "An empirical model of large-batch training": with S the steps and
E = m S the examples to a target,

    (S / S_min - 1) (E / E_min - 1) = 1,

equivalently S(m) = S_min + E_min / m, so S is linear in 1/m; the critical batch size is
B_crit = E_min / S_min. The simple noise scale B_simple = tr(Sigma) / |G|^2 is estimated
from the squared norms of mean gradients at two batch sizes (their appendix A), which needs
no per-example gradients and so works with batch norm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["steps_to_target", "best_steps_to_target", "TradeoffFit", "fit_tradeoff",
           "two_batch_noise_scale"]


def steps_to_target(epochs: pd.DataFrame, target: float, *, metric: str = "test_accuracy"
                    ) -> pd.DataFrame:
    """Per trial (``config_hash``): the SGD steps and training examples at the end of the
    first epoch whose ``metric`` reaches ``target``; NaN for a trial that never does (a
    diverged trial included).

    Args:
        epochs: :func:`smallbatch.store.epochs_frame` rows (config_hash, batch_size,
            base_lr, seed, epoch, examples_seen, the metric).
        target: the accuracy to reach.

    Returns:
        one row per trial: config_hash, batch_size, base_lr, seed, epoch (None if never),
        steps, examples.
    """
    rows = []
    for key, trial in epochs.sort_values("epoch").groupby("config_hash", sort=False):
        first = trial.iloc[0]
        reached = trial[trial[metric] >= target]
        m = int(first["batch_size"])
        if reached.empty:
            epoch, examples = None, math.nan
        else:
            hit = reached.iloc[0]
            epoch, examples = int(hit["epoch"]), float(hit["examples_seen"])
        rows.append({"config_hash": key, "batch_size": m, "base_lr": first["base_lr"],
                     "seed": first["seed"], "epoch": epoch, "examples": examples,
                     "steps": examples / m})
    return pd.DataFrame(rows, columns=["config_hash", "batch_size", "base_lr", "seed",
                                       "epoch", "steps", "examples"])


def best_steps_to_target(per_trial: pd.DataFrame) -> pd.DataFrame:
    """Per m: the eta_tilde whose median steps over seeds is fewest (a seed that never
    reached the target counts as infinitely many), with that cell's median, lowest and
    highest steps and examples over seeds, and how many seeds reached the target. An m where
    no cell's median is finite is left out."""
    table = per_trial.assign(steps=per_trial["steps"].fillna(math.inf))
    cells = table.groupby(["batch_size", "base_lr"]).agg(
        median_steps=("steps", "median"), low_steps=("steps", "min"),
        high_steps=("steps", "max"), seeds=("seed", "nunique"),
        reached=("steps", lambda s: int(np.isfinite(s).sum()))).reset_index()
    cells = cells[np.isfinite(cells["median_steps"])]
    best = cells.sort_values(["batch_size", "median_steps", "base_lr"]).groupby(
        "batch_size").head(1).set_index("batch_size")
    for what in ("median", "low", "high"):
        best[f"{what}_examples"] = best[f"{what}_steps"] * best.index
    return best


@dataclass(frozen=True)
class TradeoffFit:
    """McCandlish's trade-off fitted to steps S(m): S = s_min + e_min / m."""

    s_min: float   # S_min: steps with an infinite batch
    e_min: float   # E_min: examples with a batch of one
    b_crit: float  # E_min / S_min
    low: float     # bootstrap interval of b_crit (NaN without resamples)
    high: float

    def steps(self, batch_size) -> np.ndarray:
        return self.s_min + self.e_min / np.asarray(batch_size, dtype=float)


def _least_squares(batch_sizes: np.ndarray, steps: np.ndarray) -> tuple[float, float]:
    # S = s_min + e_min * (1/m), fitted on relative errors (each S weighted by 1/S), since
    # steps span orders of magnitude across m
    design = np.stack([np.ones_like(batch_sizes), 1.0 / batch_sizes], axis=1) / steps[:, None]
    (s_min, e_min), *_ = np.linalg.lstsq(design, np.ones_like(steps), rcond=None)
    return float(s_min), float(e_min)


def fit_tradeoff(batch_sizes, steps, *, samples=None, confidence: float = 0.95,
                 resamples: int = 2000, seed: int = 0) -> TradeoffFit:
    """Fit S(m) = S_min + E_min / m to steps-to-target ``steps`` at ``batch_sizes``.

    ``samples``: optional, for each m, the steps of every seed; the interval on B_crit then
    comes from resampling one seed per m (``resamples`` times, percentile interval at
    ``confidence``). Raises ValueError with fewer than two batch sizes or a fit whose S_min
    or E_min is not positive (the data do not follow the trade-off).
    """
    m = np.asarray(batch_sizes, dtype=float)
    s = np.asarray(steps, dtype=float)
    if len(m) < 2 or len(set(m.tolist())) < 2:
        raise ValueError("the trade-off needs steps at two or more batch sizes")
    s_min, e_min = _least_squares(m, s)
    if not (s_min > 0 and e_min > 0):
        raise ValueError(f"the fit gives S_min = {s_min:.3g}, E_min = {e_min:.3g}: the steps "
                         "do not follow S = S_min + E_min / m")
    low = high = math.nan
    if samples is not None:
        rng = np.random.default_rng(seed)
        draws = []
        pools = [np.asarray(pool, dtype=float) for pool in samples]
        for _ in range(resamples):
            pick = np.array([pool[rng.integers(len(pool))] for pool in pools])
            a, b = _least_squares(m, pick)
            if a > 0 and b > 0:
                draws.append(b / a)
        if draws:
            tail = (1 - confidence) / 2
            low, high = (float(q) for q in np.quantile(draws, [tail, 1 - tail]))
    return TradeoffFit(s_min=s_min, e_min=e_min, b_crit=e_min / s_min, low=low, high=high)


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
