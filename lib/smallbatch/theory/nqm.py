"""Closed forms: the noisy quadratic model (book: "The noisy quadratic model").

The model of Zhang et al. 2019 (arXiv 1907.04164): the loss L(x) = 1/2 x^T H x with a
diagonal H (curvatures h_i, by default h_i = 1/i), and per-example gradient noise with
covariance H, so a mini-batch of B examples adds noise of variance h_i / B to coordinate i.
Plain SGD with step size a then moves each coordinate independently,

    x_i <- x_i - a (h_i x_i + noise_i),

and the second moments s_i = E[x_i^2] follow the linear recursion

    s_i <- (1 - a h_i)^2 s_i + a^2 h_i / B,        E[L] = 1/2 sum_i h_i s_i,

which has the closed form s_i(t) = c_i + (s_i(0) - c_i) r_i^t with r_i = (1 - a h_i)^2 and
the stationary value c_i = a / (B (2 - a h_i)). Everything here is exact arithmetic on
that closed form: no sampling. SGD is stable (s_i bounded) only when a h_i < 2 for all i.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..train import learning_rate


__all__ = [
    "UnstableLearningRate", "nqm_curvatures", "nqm_is_stable", "nqm_second_moments",
    "nqm_expected_loss", "nqm_steps_to_target", "nqm_best_steps_to_target",
    "nqm_loss_table", "nqm_scaling_table", "critical_batch_size", "nqm_noise_scales",
    "nqm_protocol", "nqm_critical_batch_sizes", "nqm_summary_table", "nqm_noise_scale_table",
]

RULES = ("tuned", "linear", "sqrt")


class UnstableLearningRate(RuntimeWarning):
    """a * max(h) >= 2: the expected loss of SGD on the noisy quadratic model grows."""


def nqm_curvatures(dim: int) -> np.ndarray:
    """The curvatures h_i = 1/i, i = 1..dim, of Zhang et al. 2019 (there dim = 10^4)."""
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    return 1.0 / np.arange(1, dim + 1, dtype=np.float64)


def nqm_is_stable(lr: float, curvatures: np.ndarray) -> bool:
    """True when plain SGD with step ``lr`` has bounded second moments: lr * max(h) < 2."""
    return bool(lr * float(np.max(curvatures)) < 2.0)


def _coefficients(batch_size: float, lr: float, curvatures: np.ndarray, initial):
    """r_i, c_i and s_i(0) (as arrays) of s_i(t) = c_i + (s_i(0) - c_i) r_i^t (r_i != 1)."""
    h = np.asarray(curvatures, dtype=np.float64)
    s0 = np.broadcast_to(np.asarray(initial, dtype=np.float64), h.shape)
    r = (1.0 - lr * h) ** 2
    q = lr * lr * h / batch_size  # noise injected per step
    one_minus_r = lr * h * (2.0 - lr * h)  # 1 - r without cancellation
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(one_minus_r != 0.0, q / one_minus_r, np.inf)
    return h, s0, r, q, c


def nqm_second_moments(step: int, batch_size: float, lr: float, curvatures: np.ndarray,
                       initial: float | np.ndarray = 1.0) -> np.ndarray:
    """s_i = E[x_i^2] after ``step`` SGD steps (book: "The noisy quadratic model").

    Args:
        step: number of SGD steps taken (>= 0).
        batch_size: B; the gradient noise variance of coordinate i is h_i / B.
        lr: the step size a on the mean loss.
        curvatures: the diagonal of H.
        initial: s_i(0), a scalar or one value per coordinate (the book uses 1).
    """
    h, s0, r, q, c = _coefficients(batch_size, lr, curvatures, initial)
    with np.errstate(over="ignore", invalid="ignore"):
        rt = r ** step
        s = np.where(r == 1.0, s0 + q * step, c + (s0 - c) * rt)
    return s


def nqm_expected_loss(steps: int, batch_size: float, lr: float, curvatures: np.ndarray,
                      initial: float | np.ndarray = 1.0) -> np.ndarray:
    """E[L] after 0, 1, ..., ``steps`` SGD steps, from the closed form (book: "The noisy
    quadratic model").

    Vectorised over coordinates (memory ~ 8 * (steps + 1) * len(curvatures) bytes at most;
    the steps are processed in chunks). When lr * max(h) >= 2 the recursion is unstable: an
    ``UnstableLearningRate`` warning is issued and the exact (growing) values are returned,
    ``inf`` where they overflow float64.

    Args:
        steps: the last step; the result has steps + 1 entries.
        batch_size: B.
        lr: the step size a.
        curvatures: the diagonal of H.
        initial: s_i(0) = E[x_i(0)^2] (scalar or per coordinate).

    Returns:
        float64 array of length steps + 1.
    """
    if not nqm_is_stable(lr, curvatures):
        warnings.warn(f"lr * max(h) = {lr * float(np.max(curvatures)):g} >= 2: SGD on the "
                      "noisy quadratic model is unstable and its expected loss grows",
                      UnstableLearningRate, stacklevel=2)
    h, s0, r, q, c = _coefficients(batch_size, lr, curvatures, initial)
    out = np.empty(steps + 1)
    chunk = max(1, 2_000_000 // max(1, h.size))
    for start in range(0, steps + 1, chunk):
        t = np.arange(start, min(steps + 1, start + chunk), dtype=np.float64)[:, None]
        with np.errstate(over="ignore", invalid="ignore"):
            s = np.where(r == 1.0, s0 + q * t, c + (s0 - c) * r ** t)
            out[start:start + len(t)] = 0.5 * (s @ h)
    return np.where(np.isnan(out), np.inf, out)


class _Decomposition:
    """E[L](t) = floor + P(t) + N(t) for a stable lr: P = sum of the decreasing terms
    w_i r_i^t (w_i > 0), N = sum of the increasing ones (w_i < 0)."""

    def __init__(self, batch_size, lr, curvatures, initial):
        h, s0, r, q, c = _coefficients(batch_size, lr, curvatures, initial)
        w = 0.5 * h * (s0 - c)
        self.floor = float(0.5 * np.sum(h * c))
        positive = w > 0
        self.log_r = np.log(np.maximum(r, np.finfo(float).tiny))
        self.w = w
        self.positive = positive

    def parts(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        terms = self.w * np.exp(np.multiply.outer(t, self.log_r))  # (len(t), d)
        p = np.where(self.positive, terms, 0.0).sum(-1)
        return p, terms.sum(-1) - p

    def loss(self, t: np.ndarray) -> np.ndarray:
        p, n = self.parts(np.asarray(t, dtype=np.float64))
        return self.floor + p + n


def nqm_steps_to_target(batch_size: float, lr: float, target: float, curvatures: np.ndarray,
                        max_steps: int, initial: float | np.ndarray = 1.0) -> int | None:
    """The first step t <= max_steps with E[L](t) <= target, or None (book: "The noisy
    quadratic model", steps to a target).

    Exact: when every term of E[L](t) = floor + sum_i w_i r_i^t decreases (all w_i >= 0,
    the usual case) E[L] is monotone and a bisection finds the step; otherwise a
    branch-and-bound search over step intervals, using the bound
    E[L](t) >= floor + P(t1) + N(t0) on [t0, t1], skips intervals that cannot reach the
    target and scans the rest. None for an unstable lr (lr * max(h) >= 2).
    """
    if not nqm_is_stable(lr, curvatures):
        return None
    model = _Decomposition(batch_size, lr, curvatures, initial)
    if model.loss(np.array([0.0]))[0] <= target:
        return 0
    if np.all(model.positive | (model.w == 0)):  # monotone non-increasing
        if model.loss(np.array([float(max_steps)]))[0] > target:
            return None
        lo, hi = 0, max_steps  # E(lo) > target >= E(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if model.loss(np.array([float(mid)]))[0] <= target:
                hi = mid
            else:
                lo = mid
        return hi
    stack = [(1, max_steps)]
    while stack:
        lo, hi = stack.pop()
        if hi - lo < 256:
            t = np.arange(lo, hi + 1, dtype=np.float64)
            hits = np.nonzero(model.loss(t) <= target)[0]
            if hits.size:
                return int(lo + hits[0])
            continue
        p_hi, _ = model.parts(np.array([float(hi)]))
        _, n_lo = model.parts(np.array([float(lo)]))
        if model.floor + p_hi[0] + n_lo[0] > target * (1 + 1e-12):
            continue
        mid = (lo + hi) // 2
        stack.append((mid + 1, hi))
        stack.append((lo, mid))  # popped first: the earliest crossing is found first
    return None


def nqm_best_steps_to_target(batch_size: float, target: float, lrs: Sequence[float],
                             curvatures: np.ndarray, max_steps: int,
                             initial: float | np.ndarray = 1.0) -> tuple[int | None, float | None]:
    """The fewest steps to reach ``target`` over a grid of learning rates, and the lr that
    achieves it (ties: the smallest lr): the LR tuned per batch size, as Shallue et al. 2019
    and Zhang et al. 2019 do. (None, None) when no lr in the grid reaches the target.
    """
    best_steps, best_lr = None, None
    for lr in sorted(lrs):
        cap = max_steps if best_steps is None else best_steps - 1  # only an improvement counts
        if cap < 0:
            break
        steps = nqm_steps_to_target(batch_size, lr, target, curvatures, cap, initial)
        if steps is not None:
            best_steps, best_lr = steps, lr
    return best_steps, best_lr


def nqm_loss_table(batch_sizes: Sequence[int], lrs: Sequence[float], steps: Sequence[int],
                   curvatures: np.ndarray, initial: float | np.ndarray = 1.0) -> pd.DataFrame:
    """E[L] at the given steps for every (batch size, lr): one row per (B, lr, step), with
    columns batch_size, lr, step, expected_loss (book: "The noisy quadratic model"). Only
    the listed steps are evaluated, so a log-spaced set up to 10^6 steps is cheap. Unstable
    lrs are an error (leave them out of the grid)."""
    steps = np.asarray(sorted(set(int(s) for s in steps)), dtype=np.float64)
    rows = []
    for lr in lrs:
        if not nqm_is_stable(lr, curvatures):
            raise ValueError(f"lr = {lr:g} is unstable (lr * max(h) >= 2); leave it out")
        for batch_size in batch_sizes:
            loss = _Decomposition(batch_size, lr, curvatures, initial).loss(steps)
            rows.append(pd.DataFrame({"batch_size": batch_size, "lr": lr,
                                      "step": steps.astype(np.int64), "expected_loss": loss}))
    return pd.concat(rows, ignore_index=True)


def nqm_scaling_table(batch_sizes: Sequence[int], targets: Sequence[float],
                      lrs: Sequence[float], curvatures: np.ndarray, max_steps: int,
                      reference_batch_size: int | None = None,
                      initial: float | np.ndarray = 1.0) -> pd.DataFrame:
    """Steps to each target loss against batch size, for three ways of choosing the LR
    (book: "The noisy quadratic model", learning-rate scaling):

    - tuned: the best lr of the grid at every B;
    - linear: a = B * eta_tilde, with eta_tilde = a_ref / B_ref from the lr tuned at the
      reference batch size (``learning_rate(..., "linear")``);
    - sqrt: a = a_ref * sqrt(B / B_ref) (``learning_rate(..., "sqrt", B_ref)``).

    Args:
        batch_sizes: the batch sizes B.
        targets: the target values of E[L].
        lrs: the learning-rate grid for tuning.
        curvatures: the diagonal of H.
        max_steps: give up after this many steps (steps is then NaN).
        reference_batch_size: B_ref for the scaling rules; None: the smallest B.

    Returns:
        one row per (target, rule, batch_size): columns target, rule, batch_size, lr, steps
        (float; NaN when the target is not reached within max_steps or the lr is unstable).
    """
    batch_sizes = sorted(batch_sizes)
    b_ref = batch_sizes[0] if reference_batch_size is None else reference_batch_size
    rows = []
    for target in targets:
        tuned = {b: nqm_best_steps_to_target(b, target, lrs, curvatures, max_steps, initial)
                 for b in sorted(set(batch_sizes) | {b_ref})}
        lr_ref = tuned[b_ref][1]
        for b in batch_sizes:
            steps, lr = tuned[b]
            rows.append(dict(target=target, rule="tuned", batch_size=b, lr=lr, steps=steps))
            for rule in ("linear", "sqrt"):
                if lr_ref is None:
                    rows.append(dict(target=target, rule=rule, batch_size=b, lr=None, steps=None))
                    continue
                lr_rule = learning_rate(lr_ref / b_ref, b, rule, reference_batch_size=b_ref)
                steps = nqm_steps_to_target(b, lr_rule, target, curvatures, max_steps, initial)
                rows.append(dict(target=target, rule=rule, batch_size=b, lr=lr_rule,
                                 steps=steps))
    table = pd.DataFrame(rows)
    table["steps"] = table["steps"].astype(float)
    table["lr"] = table["lr"].astype(float)
    return table


def critical_batch_size(batch_sizes: Sequence[int], steps: Sequence[float],
                        ratio: float = 1.5) -> int | None:
    """The smallest B of a power-of-two grid at which doubling B no longer divides the
    steps by at least ``ratio``: steps(B) / steps(2B) < ratio (perfect scaling gives 2, no
    gain 1). None when every doubling on the grid still gains that much (book: "The noisy
    quadratic model")."""
    by_b = dict(zip((int(b) for b in batch_sizes), steps))
    for b in sorted(by_b):
        if 2 * b in by_b:
            a, c = by_b[b], by_b[2 * b]
            if a is None or c is None or not (math.isfinite(a) and math.isfinite(c)):
                continue
            if a / c < ratio:
                return b
    return None


def nqm_noise_scales(second_moments: np.ndarray, curvatures: np.ndarray) -> dict[str, float]:
    """McCandlish et al. 2018's noise scales for this model at a point x, with x_i^2 taken
    as ``second_moments`` (e.g. E[x_i^2] from ``nqm_second_moments``).

    Per-example gradient covariance Sigma = H and gradient G = H x give
    B_simple = tr(Sigma) / |G|^2 = sum h_i / sum h_i^2 x_i^2 and
    B_noise = tr(H Sigma) / (G^T H G) = sum h_i^2 / sum h_i^3 x_i^2.
    """
    h = np.asarray(curvatures, dtype=np.float64)
    x2 = np.asarray(second_moments, dtype=np.float64)
    return {"B_simple": float(h.sum() / np.sum(h ** 2 * x2)),
            "B_noise": float(np.sum(h ** 2) / np.sum(h ** 3 * x2))}


# ------------------------------------------------------------------ what the chapter shows

def nqm_protocol(settings, curvatures: np.ndarray) -> pd.DataFrame:
    """The chapter's settings as one column (book: "The noisy quadratic model"):
    ``settings`` is ``presets.nqm(scale)``; E[L(x_0)] = 1/2 sum h_i (s_i(0) = 1)."""
    lrs = settings.tuning_lrs
    return pd.Series({
        "dimension d": f"{settings.dim:,}",
        "initial expected loss E[L(x_0)]": f"{0.5 * np.sum(curvatures):.3f}",
        "step sizes a tried per batch size": f"{len(lrs)}, 2^{math.log2(min(lrs)):g} to "
                                             f"2^{math.log2(max(lrs)):g}",
        "batch sizes B": f"{min(settings.batch_sizes)} to {max(settings.batch_sizes):,} "
                         "(powers of 2)",
        "target losses": ", ".join(f"{t:g}" for t in settings.targets),
        "step budget": f"{settings.max_steps:,}",
    }, name="noisy quadratic model").to_frame()


def _tuned(scaling: pd.DataFrame) -> pd.DataFrame:
    tuned = scaling[scaling["rule"] == "tuned"]
    if tuned.empty:
        raise ValueError("the table has no 'tuned' rows; pass nqm_scaling_table(...)")
    return tuned


def nqm_critical_batch_sizes(scaling: pd.DataFrame, ratio: float = 1.5
                             ) -> dict[float, int | None]:
    """The critical batch size (:func:`critical_batch_size`) of the tuned learning rate, per
    target loss (ascending), from :func:`nqm_scaling_table` (book: "The noisy quadratic
    model")."""
    return {target: critical_batch_size(part["batch_size"], part["steps"], ratio)
            for target, part in _tuned(scaling).groupby("target")}


def nqm_summary_table(scaling: pd.DataFrame, critical: dict):
    """Per target loss (in the table's order): the critical B, and the steps, the tuned step
    size and the examples (steps x B) at the smallest and the largest B, and whether a
    larger B never needs fewer examples (book: "The noisy quadratic model"). Styled."""
    rows = []
    for target, part in _tuned(scaling).groupby("target", sort=False):
        part = part.set_index("batch_size")
        examples = part["steps"] * part.index
        small, large = part.index.min(), part.index.max()
        rows.append({
            "target E[L]": target,
            "critical B": critical[target],
            f"steps at B={small}": part.loc[small, "steps"],
            f"steps at B={large:,}": part.loc[large, "steps"],
            f"tuned a at B={small}": part.loc[small, "lr"],
            f"tuned a at B={large:,}": part.loc[large, "lr"],
            f"examples at B={small}": examples.loc[small],
            f"examples at B={large:,}": examples.loc[large],
            "examples never fewer at a larger B": bool(np.all(np.diff(examples.to_numpy()) >= 0)),
        })
    summary = pd.DataFrame(rows).set_index("target E[L]")
    counts = [c for c in summary.columns if c.startswith(("steps", "examples at"))]
    rates = [c for c in summary.columns if c.startswith("tuned a")]
    return (summary.style.format("{:,.0f}", subset=counts).format("{:.3g}", subset=rates)
            .format_index("{:g}"))


def nqm_noise_scale_table(scaling: pd.DataFrame, critical: dict, curvatures: np.ndarray):
    """Per target loss with a critical batch size (in the table's order): B_simple and
    B_noise (:func:`nqm_noise_scales`) at x_0 and where SGD at the critical B with its tuned
    step size reaches the target, whether the critical B lies between the two B_simple, and
    B_noise at the target over the critical B (book: "The noisy quadratic model"). Styled."""
    tuned = _tuned(scaling)
    start = nqm_noise_scales(np.ones_like(curvatures), curvatures)
    rows = []
    for target in tuned["target"].unique():
        b_crit = critical.get(target)
        if b_crit is None:
            continue
        row = tuned[(tuned["target"] == target) & (tuned["batch_size"] == b_crit)].iloc[0]
        end = nqm_noise_scales(
            nqm_second_moments(int(row["steps"]), b_crit, row["lr"], curvatures), curvatures)
        rows.append([target, b_crit, start["B_simple"], end["B_simple"], start["B_noise"],
                     end["B_noise"], start["B_simple"] <= b_crit <= end["B_simple"],
                     end["B_noise"] / b_crit])
    return (pd.DataFrame(rows, columns=_NOISE_SCALE_COLUMNS).set_index("target E[L]")
            .style.format(precision=2).format_index("{:g}"))


_NOISE_SCALE_COLUMNS = ["target E[L]", "critical B (from the curves)", "B_simple at x_0",
                        "B_simple at the target", "B_noise at x_0", "B_noise at the target",
                        "critical B between the two B_simple",
                        "B_noise at the target / critical B"]
