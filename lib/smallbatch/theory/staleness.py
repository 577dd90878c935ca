"""n small steps against one large step, measured on a real network (book: "n small steps
against one large step").

From the weights theta_k, with the same base learning rate eta_tilde and the same n m
examples, sum-form SGD (theta <- theta - eta_tilde sum_i grad L_i) can take

- path A: n steps of batch m; batch j uses its gradient at theta_{k+j};
- path B: one step of batch n m; every gradient is taken at theta_k.

With S_j(theta) the summed gradient of batch j, H_j the Hessian of batch j's summed loss at
theta_k and V_j = sum_{l<j} S_l(theta_k), a Taylor expansion of S_j(theta_{k+j}) around
theta_k, with theta_{k+j} - theta_k = -eta_tilde V_j + O(eta_tilde^2), gives

    theta_A - theta_B = eta_tilde^2 c_n + O(eta_tilde^3),   c_n = sum_{j<n} H_j V_j.

c_n does not depend on eta_tilde, and for nested batches (the first n of one sequence of
n_max batches) it is a running sum over j: :func:`second_order_terms` computes it once per
checkpoint and draw with n_max - 1 Hessian-vector products (double backward); path A is run
once per eta_tilde up to n_max steps and read off at every n of the grid. The losses are
the mean cross-entropy on a fixed evaluation set of training examples (disjoint from the
batches), predicted by the second-order Taylor expansion around theta_k with
d_B = -eta_tilde V_n and d_A = d_B + eta_tilde^2 c_n. Everything runs in float64, so the
small-eta_tilde end of the comparison is not rounding noise.

The derivation needs S_j to be differentiable along path A; a ReLU network is only
piecewise smooth, so path A also counts the ReLU inputs of each batch whose sign differs from
theta_k where the batch's gradient is taken: where none does, the expansion is exact to its
order.

:func:`measure` stores one record per checkpoint (kind "stale-gradients"); :func:`stale_frame`
turns records into a tidy table; :func:`fit_distance_slopes` fits the log-log slope of the distance
against eta_tilde (2 in theory), :func:`prediction_limits` finds where the second-order
prediction stops holding, :func:`n_exponents` how |c_n| grows with n and :func:`loss_gaps`
which path reaches the lower loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.overrides import TorchFunctionMode

from ..store import MeasurementError
from .checkpoints import Checkpoint, measure_with, model_at

__all__ = ["KIND", "StaleGradientConfig", "powers_of_two", "FlatModel", "SecondOrderTerms",
           "second_order_terms", "small_steps", "compare_paths", "draw_indices", "compute",
           "measure", "stale_frame", "fit_distance_slopes", "prediction_limits", "loss_gaps",
           "n_exponents"]

KIND = "stale-gradients"
CHUNK = 256  # examples per forward/backward pass (memory only; results do not depend on it)


def powers_of_two(low: int, high: int, step: int = 1) -> tuple[float, ...]:
    """2^low, 2^(low + step), ... up to 2^high."""
    return tuple(2.0 ** k for k in range(low, high + 1, step))


@dataclass(frozen=True)
class StaleGradientConfig:
    """One measurement of n small steps against one large step at ``checkpoint``."""

    checkpoint: Checkpoint
    batch_size: int = 8     # m: examples per small step of path A
    max_steps: int = 32     # n_max: the n grid is 1, 2, 4, ... up to n_max (and n_max)
    base_lrs: tuple[float, ...] = powers_of_two(-40, -4, 2)  # eta_tilde, per example
    loss_from: float = 2.0 ** -24  # smallest eta_tilde whose losses are evaluated: below,
                                   # L_A - L_B ~ eta_tilde^2 nears float64 resolution
    eval_size: int = 128    # training examples (in no batch) for the mean eval loss
    draws: int = 3          # independent sequences of n_max batches
    seed: int = 0           # which examples (independent of the model seed)

    def __post_init__(self):
        if self.batch_size < 1 or self.max_steps < 1 or self.eval_size < 1 or self.draws < 1:
            raise MeasurementError("batch_size, max_steps, eval_size and draws must be >= 1")
        if not self.base_lrs or min(self.base_lrs) <= 0:
            raise MeasurementError(f"base_lrs must be positive, got {self.base_lrs}")

    @property
    def step_counts(self) -> tuple[int, ...]:
        """The n grid: powers of two up to ``max_steps``, and ``max_steps``."""
        return tuple(sorted({2 ** k for k in range(int(math.log2(self.max_steps)) + 1)}
                            | {self.max_steps}))


class _ReluSigns(TorchFunctionMode):
    """Records, in call order, which inputs of every ReLU are > 0 (before an in-place ReLU
    overwrites them)."""

    def __init__(self):
        super().__init__()
        self.signs: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (F.relu, torch.relu, torch.relu_):
            self.signs.append((args[0] > 0).detach().reshape(-1))
        return func(*args, **(kwargs or {}))


class FlatModel:
    """A network as a function of one flat float64 parameter vector (torch.func's
    functional_call): summed losses, their gradients and Hessian-vector products.

    The model's own parameters are not changed; ``theta`` is their float64 copy. Models with
    batch norm are refused: there an example's loss depends on the rest of its batch, so
    one batch of n m and n batches of m are different losses, not two paths on one.
    """

    def __init__(self, model: torch.nn.Module):
        if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise MeasurementError("the derivation treats examples as independent; batch norm "
                                   "ties each example to its batch: use batch_norm='none'")
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.model = model
        self.names = [name for name, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.theta = torch.cat([p.detach().reshape(-1) for _, p in named]).double()

    def logits(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        params = {name: part.view(shape) for name, part, shape
                  in zip(self.names, theta.split(self.sizes), self.shapes)}
        return functional_call(self.model, params, (x.double(),))

    def _summed_loss(self, theta, x, y):
        return F.cross_entropy(self.logits(theta, x), y, reduction="sum")

    def gradient(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """sum_i grad L_i(theta) over the examples (x, y)."""
        total = torch.zeros_like(theta)
        for start in range(0, len(y), CHUNK):
            point = theta.detach().requires_grad_(True)
            loss = self._summed_loss(point, x[start:start + CHUNK], y[start:start + CHUNK])
            total += torch.autograd.grad(loss, point)[0]
        return total

    def gradient_and_signs(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`gradient` and the signs (> 0) of every ReLU input on the way, flattened:
        the linear piece of the network that the examples are on."""
        with _ReluSigns() as recorder:
            gradient = self.gradient(theta, x, y)
        return gradient, torch.cat(recorder.signs)

    def hvp(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
            vectors: torch.Tensor) -> torch.Tensor:
        """H v for each row v of ``vectors`` (K, P), H the Hessian of the summed loss of
        (x, y) at theta: double backward, one graph for all K directions."""
        vectors = vectors.reshape(-1, theta.numel())
        total = torch.zeros_like(vectors)
        for start in range(0, len(y), CHUNK):
            point = theta.detach().requires_grad_(True)
            loss = self._summed_loss(point, x[start:start + CHUNK], y[start:start + CHUNK])
            (gradient,) = torch.autograd.grad(loss, point, create_graph=True)
            total += torch.stack([torch.autograd.grad(gradient, point, v, retain_graph=True)[0]
                                  for v in vectors])
        return total

    @torch.no_grad()
    def mean_loss(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
        """(1/N) sum_i L_i(theta): mean cross-entropy over the examples (x, y)."""
        total = 0.0
        for start in range(0, len(y), CHUNK):
            total += self._summed_loss(theta, x[start:start + CHUNK],
                                       y[start:start + CHUNK]).item()
        return total / len(y)


@dataclass
class SecondOrderTerms:
    """The eta_tilde-independent terms of one sequence of batches at theta_k, as running
    sums indexed by n = 0 ... n_max (row n is the sum over j < n):

    - ``sums[n] = V_n = sum_{l<n} S_l(theta_k)``: path B is theta_k - eta_tilde V_n;
    - ``curvature[n] = c_n = sum_{j<n} H_j V_j``:
      theta_A - theta_B = eta_tilde^2 c_n + O(eta_tilde^3);
    - ``signs[j]``: the ReLU input signs of batch j at theta_k.
    """

    sums: torch.Tensor
    curvature: torch.Tensor
    signs: list[torch.Tensor]


def second_order_terms(net: FlatModel, theta: torch.Tensor, batches: Sequence
                       ) -> SecondOrderTerms:
    """V_n and c_n for nested batches: n_max gradients and n_max - 1 Hessian-vector
    products (H_0 V_0 = 0, as V_0 = 0)."""
    gradients, signs = zip(*(net.gradient_and_signs(theta, x, y) for x, y in batches))
    zero = torch.zeros_like(theta)[None]
    sums = torch.cat([zero, torch.cumsum(torch.stack(gradients), dim=0)])
    products = [zero[0]] + [net.hvp(theta, x, y, sums[j])[0]
                            for j, (x, y) in enumerate(batches) if j > 0]
    curvature = torch.cat([zero, torch.cumsum(torch.stack(products), dim=0)])
    return SecondOrderTerms(sums, curvature, list(signs))


def small_steps(net: FlatModel, theta: torch.Tensor, batches: Sequence, base_lr: float,
                terms: SecondOrderTerms | None = None
                ) -> Iterator[tuple[torch.Tensor, int]]:
    """Path A: after each sum-form step theta <- theta - eta_tilde S_j(theta) over
    ``batches`` [(x, y), ...] in order, yields theta_{k+j+1} - theta_k and, with ``terms``
    given, the number of ReLU inputs of batch j whose sign at theta_{k+j} differs from
    theta_k (else 0). With ``terms``, step 0 reuses S_0(theta_k) = V_1.
    """
    displacement = torch.zeros_like(theta)
    for j, (x, y) in enumerate(batches):
        changed = 0
        if j == 0 and terms is not None:
            gradient = terms.sums[1]
        elif terms is not None:
            gradient, signs = net.gradient_and_signs(theta + displacement, x, y)
            changed = int((signs != terms.signs[j]).sum())
        else:
            gradient = net.gradient(theta + displacement, x, y)
        displacement = displacement - base_lr * gradient
        yield displacement, changed


def compare_paths(net: FlatModel, batches: Sequence, eval_x: torch.Tensor,
                  eval_y: torch.Tensor, base_lrs: Sequence[float],
                  step_counts: Sequence[int], loss_from: float = 0.0) -> list[dict]:
    """Paths A and B from ``net.theta`` for every eta_tilde and every n in ``step_counts``
    (nested: the first n of ``batches``), measured and predicted to second order.

    Returns one dict per (n, eta_tilde): distance |theta_A - theta_B| and its prediction
    eta_tilde^2 |c_n|; update_norm |theta_B - theta_k| = eta_tilde |V_n|; sign_changes,
    the ReLU inputs of the batches whose sign where path A takes their gradient differs
    from theta_k (summed over the n batches); the mean eval loss at theta_k, theta_A and
    theta_B (for eta_tilde >= ``loss_from``) and the second-order Taylor predictions of the
    last two. Values are None where path A is no longer finite or a loss was not evaluated.
    """
    theta = net.theta
    step_counts = sorted(step_counts)
    batches = list(batches)[:step_counts[-1]]
    terms = second_order_terms(net, theta, batches)
    loss_k = net.mean_loss(theta, eval_x, eval_y)
    eval_gradient = net.gradient(theta, eval_x, eval_y) / len(eval_y)
    directions = [terms.sums[n] for n in step_counts] + [terms.curvature[n]
                                                          for n in step_counts if n > 1]
    products = iter(net.hvp(theta, eval_x, eval_y, torch.stack(directions)) / len(eval_y))
    eval_hv = {n: next(products) for n in step_counts}
    quadratic = {}  # n -> the coefficients of the loss predictions, d = -eta V + eta^2 c
    for n in step_counts:
        v, c = terms.sums[n], terms.curvature[n]
        hc = next(products) if n > 1 else torch.zeros_like(v)
        quadratic[n] = dict(gv=float(eval_gradient @ v), gc=float(eval_gradient @ c),
                            vhv=float(v @ eval_hv[n]), vhc=float(v @ hc), chc=float(c @ hc))

    rows = []
    for eta in base_lrs:
        reached = {}  # n -> (theta_A - theta_k, sign changes), while path A stays finite
        changes = 0
        for j, (displacement, changed) in enumerate(
                small_steps(net, theta, batches, eta, terms), start=1):
            if not torch.isfinite(displacement).all():
                break
            changes += changed
            if j in quadratic:
                reached[j] = displacement, changes
        with_losses = eta >= loss_from
        for n in step_counts:
            q, to_b = quadratic[n], -eta * terms.sums[n]
            to_a, changes = reached.get(n, (None, None))
            loss_b = net.mean_loss(theta + to_b, eval_x, eval_y) if with_losses else None
            loss_a = None
            if with_losses and to_a is not None:
                loss_a = loss_b if n == 1 else net.mean_loss(theta + to_a, eval_x, eval_y)
            change_b = -eta * q["gv"] + 0.5 * eta ** 2 * q["vhv"]
            change_a = (change_b + eta ** 2 * q["gc"] - eta ** 3 * q["vhc"]
                        + 0.5 * eta ** 4 * q["chc"])
            rows.append(dict(
                n=n, base_lr=eta,
                distance=None if to_a is None else float((to_a - to_b).norm()),
                predicted_distance=eta ** 2 * float(terms.curvature[n].norm()),
                update_norm=eta * float(terms.sums[n].norm()), sign_changes=changes,
                loss_at_checkpoint=loss_k, loss_a=_finite(loss_a), loss_b=_finite(loss_b),
                predicted_loss_a=loss_k + change_a, predicted_loss_b=loss_k + change_b))
    return rows


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def draw_indices(num_train: int, config: StaleGradientConfig
                 ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The evaluation set (``eval_size`` training examples) and, per draw, a
    (max_steps, batch_size) table of batch indices from the other training examples.

    One CPU generator seeded with ``config.seed``: the same examples at every checkpoint
    and on every device, and draw d does not depend on how many draws follow it.
    """
    needed = config.eval_size + config.max_steps * config.batch_size
    if needed > num_train:
        raise MeasurementError(f"eval_size + max_steps * batch_size = {needed} examples, but "
                               f"the data have {num_train} training examples")
    generator = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(num_train, generator=generator)
    eval_index, pool = order[:config.eval_size], order[config.eval_size:]
    used = config.max_steps * config.batch_size
    draws = [pool[torch.randperm(len(pool), generator=generator)[:used]]
             .view(config.max_steps, config.batch_size) for _ in range(config.draws)]
    return eval_index, draws


def compute(config: StaleGradientConfig, *, data=None, data_root=None, device="auto"):
    """Measure at the checkpoint; returns ``(values, device)`` for :func:`measure_or_load`."""
    model, data, device, trained = model_at(config.checkpoint, data=data, data_root=data_root,
                                            device=device)
    net = FlatModel(model)
    x, y = data.train_x, data.train_y
    eval_index, draws = draw_indices(len(y), config)
    eval_index = eval_index.to(x.device)
    rows = []
    for draw, index in enumerate(draws):
        batches = [(x[i], y[i]) for i in index.to(x.device)]
        rows += [{"draw": draw, **row} for row in
                 compare_paths(net, batches, x[eval_index], y[eval_index], config.base_lrs,
                               config.step_counts, config.loss_from)]
    values = {
        "checkpoint": config.checkpoint.label,
        "epochs": config.checkpoint.epochs,
        "num_train": len(y),
        "num_parameters": int(net.theta.numel()),
        "checkpoint_test_accuracy": trained.epochs[-1].test_accuracy if trained else None,
        "table": {key: [row[key] for row in rows] for key in rows[0]},
    }
    return values, device


def measure(config: StaleGradientConfig, results_dir, *, data=None, data_root=None,
            device="auto") -> dict:
    """The stored record of ``config`` in ``results_dir``, else measure and store it
    (``results_dir=None``: measure, store nothing)."""
    return measure_with(KIND, compute, config, results_dir, data=data, data_root=data_root,
                        device=device)


# ------------------------------------------------------------------------------ analysis

def stale_frame(records: Sequence[dict]) -> pd.DataFrame:
    """One row per checkpoint, draw, n and eta_tilde (tidy; missing values are NaN).

    Columns: checkpoint (label), epochs, batch_size, draw, n, base_lr, distance,
    predicted_distance, ratio (distance / predicted), update_norm, sign_changes,
    loss_at_checkpoint, loss_a, loss_b, predicted_loss_a, predicted_loss_b, gap
    (loss_a - loss_b), predicted_gap and loss_evaluated (eta_tilde >= the config's
    loss_from; elsewhere a missing loss is one that was not finite).
    """
    frames = []
    for record in records:
        values = record["values"]
        frame = pd.DataFrame(values["table"]).astype(
            {"distance": float, "sign_changes": float, "loss_a": float, "loss_b": float})
        frame.insert(0, "checkpoint", values["checkpoint"])
        frame.insert(1, "epochs", values["epochs"])
        frame.insert(2, "batch_size", record["config"]["batch_size"])
        frame["loss_evaluated"] = frame["base_lr"] >= record["config"]["loss_from"]
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame["ratio"] = frame["distance"] / frame["predicted_distance"]
    frame["gap"] = frame["loss_a"] - frame["loss_b"]
    frame["predicted_gap"] = frame["predicted_loss_a"] - frame["predicted_loss_b"]
    return frame


def fit_distance_slopes(frame: pd.DataFrame, points: int = 3) -> pd.DataFrame:
    """Per checkpoint and n > 1: the least-squares slope of log distance against
    log eta_tilde over the ``points`` smallest eta_tilde, fitted per draw; its mean and
    standard deviation over the draws (the prediction is 2), and the ratio
    measured / predicted distance at the smallest eta_tilde (median, min and max over draws).
    """
    rows = []
    part = frame[frame["n"] > 1]
    for (epochs, checkpoint, n), group in part.groupby(["epochs", "checkpoint", "n"]):
        smallest = sorted(group["base_lr"].unique())[:points]
        slopes = []
        for _, draw in group[group["base_lr"].isin(smallest)].groupby("draw"):
            slopes.append(np.polyfit(np.log(draw["base_lr"]), np.log(draw["distance"]), 1)[0])
        ratio = group[group["base_lr"] == smallest[0]]["ratio"]
        rows.append({
            "checkpoint": checkpoint, "epochs": epochs, "n": n,
            "slope": np.mean(slopes),
            "slope_sd": np.std(slopes, ddof=1) if len(slopes) > 1 else math.nan,
            "slope_min": np.min(slopes), "slope_max": np.max(slopes), "predicted_slope": 2.0,
            "fit_lrs": f"2^{math.log2(smallest[0]):g} to 2^{math.log2(smallest[-1]):g}",
            "ratio_at_smallest": ratio.median(), "ratio_min": ratio.min(),
            "ratio_max": ratio.max(), "draws": len(slopes)})
    return pd.DataFrame(rows)


def prediction_limits(frame: pd.DataFrame, tolerance: float = 0.1) -> pd.DataFrame:
    """Per checkpoint and n > 1: the smallest eta_tilde of the grid at which the
    second-order prediction is off by more than ``tolerance`` (relative, median over the
    draws; a path that left the floats counts as off), for the distance, the loss change
    of each path (L - L(theta_k)) and the gap L_A - L_B (on the eta_tilde whose losses
    were evaluated). NaN: within tolerance on the whole grid. Also first_sign_change: the
    smallest eta_tilde at which some ReLU input of the batches changes sign along path A
    in some draw (below it the loss is smooth along every path and the expansion exact).
    """
    loss_k = frame["loss_at_checkpoint"]
    errors = pd.DataFrame({
        "distance": (frame["ratio"] - 1).abs(),
        "loss_a": ((frame["predicted_loss_a"] - frame["loss_a"])
                   / (frame["loss_a"] - loss_k)).abs(),
        "loss_b": ((frame["predicted_loss_b"] - frame["loss_b"])
                   / (frame["loss_b"] - loss_k)).abs(),
        "gap": ((frame["predicted_gap"] - frame["gap"]) / frame["gap"]).abs(),
    }).fillna(np.inf)
    losses = ["loss_a", "loss_b", "gap"]
    errors.loc[~frame["loss_evaluated"], losses] = np.nan  # not measured: no verdict
    keys = frame[["epochs", "checkpoint", "n", "base_lr"]]
    median = pd.concat([keys, errors], axis=1).groupby(
        ["epochs", "checkpoint", "n", "base_lr"]).median().reset_index()
    changed = frame[frame["sign_changes"] > 0].groupby(["epochs", "checkpoint", "n"])["base_lr"]
    first_change = changed.min()
    rows = []
    for (epochs, checkpoint, n), group in median[median["n"] > 1].groupby(
            ["epochs", "checkpoint", "n"]):
        row = {"checkpoint": checkpoint, "epochs": epochs, "n": n}
        for column in errors.columns:
            off = group.loc[group[column] > tolerance, "base_lr"]
            row[column] = off.min() if len(off) else math.nan
        row["first_sign_change"] = first_change.get((epochs, checkpoint, n), math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def loss_gaps(frame: pd.DataFrame, diverged_above: float = 10 * math.log(10)
              ) -> pd.DataFrame:
    """Per checkpoint, n > 1 and eta_tilde with evaluated losses: which path reached the
    lower eval loss. Columns: gap and predicted_gap (L_A - L_B, median over the draws;
    negative: the n small steps are lower); a_lower and b_lower, the draws in which each
    path is strictly lower, and both_diverged, those in which both losses are above
    ``diverged_above`` or not finite (train.py's divergence threshold for 10 classes) and
    neither counts as lower; draws.
    """
    part = frame[frame["loss_evaluated"] & (frame["n"] > 1)].copy()
    loss_a = part["loss_a"].fillna(np.inf)
    loss_b = part["loss_b"].fillna(np.inf)
    part["both_diverged"] = (loss_a > diverged_above) & (loss_b > diverged_above)
    part["a_lower"] = (loss_a < loss_b) & ~part["both_diverged"]
    part["b_lower"] = (loss_b < loss_a) & ~part["both_diverged"]
    return (part.groupby(["epochs", "checkpoint", "n", "base_lr"])
            .agg(gap=("gap", "median"), predicted_gap=("predicted_gap", "median"),
                 a_lower=("a_lower", "sum"), b_lower=("b_lower", "sum"),
                 both_diverged=("both_diverged", "sum"), draws=("draw", "nunique"))
            .reset_index())


def n_exponents(frame: pd.DataFrame, base_lr: float) -> pd.DataFrame:
    """Per checkpoint: the exponent p of |c_n| ∝ n^p (least squares on log-log over the
    n > 1 of the grid, per draw; mean and standard deviation over the draws), the same for
    the measured distance at ``base_lr``, and the exponents of two reference shapes on the
    same n: |c_n| ∝ sum_{k<n} k = n(n-1)/2 when the batch gradients share one mean
    (V_j ~ j m G) and ∝ sqrt(sum_{k<n} k^2) when they are pure noise (V_j a random walk).
    """
    part = frame[frame["n"] > 1]
    steps = np.array(sorted(part["n"].unique()), dtype=np.float64)
    mean_shape = steps * (steps - 1) / 2
    noise_shape = np.sqrt((steps - 1) * steps * (2 * steps - 1) / 6)
    rows = []
    for (epochs, checkpoint), group in part.groupby(["epochs", "checkpoint"]):
        smallest = group[group["base_lr"] == group["base_lr"].min()]
        curvature = smallest.assign(c=smallest["predicted_distance"] / smallest["base_lr"] ** 2)
        chosen = group[group["base_lr"] == base_lr]
        fits = {}
        for name, table, column in (("c_norm", curvature, "c"), ("distance", chosen, "distance")):
            fits[name] = [np.polyfit(np.log(d["n"]), np.log(d[column]), 1)[0]
                          for _, d in table.groupby("draw") if d[column].notna().all()]
        spread = {name: np.std(values, ddof=1) if len(values) > 1 else math.nan
                  for name, values in fits.items()}
        rows.append({
            "checkpoint": checkpoint, "epochs": epochs,
            "c_exponent": np.mean(fits["c_norm"]), "c_exponent_sd": spread["c_norm"],
            "distance_exponent": np.mean(fits["distance"]) if fits["distance"] else math.nan,
            "distance_exponent_sd": spread["distance"],
            "mean_gradient_exponent": np.polyfit(np.log(steps), np.log(mean_shape), 1)[0],
            "noise_exponent": np.polyfit(np.log(steps), np.log(noise_shape), 1)[0],
            "base_lr": base_lr, "steps": f"{int(steps.min())} to {int(steps.max())}"})
    return pd.DataFrame(rows)
