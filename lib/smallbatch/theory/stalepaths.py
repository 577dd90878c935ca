"""The two paths of "n small steps against one large step" on a real network, and the
second-order terms that predict how far apart they end (book: "n small steps against one
large step"; the derivation is in :mod:`smallbatch.theory.staleness`, which measures them,
reads the records and re-exports every name here).
"""

from __future__ import annotations

import dataclasses
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
from .checkpoints import Checkpoint

__all__ = ["CHUNK", "powers_of_two", "StaleGradientConfig", "FlatModel", "SecondOrderTerms",
           "second_order_terms", "small_steps", "compare_paths", "paths_on_draw",
           "draw_indices"]

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


def paths_on_draw(net: FlatModel, data, batch_size: int, steps: int, draw: int,
                  base_lrs: Sequence[float] = powers_of_two(-36, -4, 4)) -> pd.DataFrame:
    """:func:`compare_paths` at n = ``steps`` on one draw of batches (book: "n small steps
    against one large step", the live controls): the n m training examples are the first of
    a permutation seeded by ``draw``, path A's batches their consecutive blocks of m, and the
    losses are evaluated on the first training example only for eta_tilde >= 1 (that is,
    not at all on the default grid: the live figure draws distances)."""
    needed = steps * batch_size
    if batch_size < 1 or steps < 1 or needed > data.num_train:
        raise MeasurementError(f"{steps} steps of m = {batch_size} need {needed} training "
                               f"examples (and both >= 1); the data have {data.num_train}")
    order = np.random.default_rng(draw).permutation(data.num_train)[:needed]
    batches = [(data.train_x[order[j * batch_size:(j + 1) * batch_size]],
                data.train_y[order[j * batch_size:(j + 1) * batch_size]]) for j in range(steps)]
    return pd.DataFrame(compare_paths(net, batches, data.train_x[:1], data.train_y[:1],
                                      base_lrs, [steps], loss_from=1.0))


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
