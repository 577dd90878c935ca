"""The named scales, in one place: smoke, scaled and full.

- ``smoke``: seconds per notebook on the synthetic data set; CI runs every notebook at it.
  Never shown as a result.
- ``scaled``: what the published book shows; real data, sized for a 2-core CPU.
- ``full``: the paper's protocol; for a GPU and the original data sets.

Every size a notebook uses derives from its ``scale`` parameter through a function here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import TrainConfig

__all__ = ["SCALES", "check_scale", "repo_root", "study_dir", "results_dir", "quickstart", "NQMSettings",
           "nqm", "LRScalingSettings", "lr_scaling", "GradientNoiseSettings",
           "gradient_noise", "StaleGradientSettings", "stale_gradients", "NoiseScaleSettings",
           "noise_scale"]

SCALES: tuple[str, ...] = ("smoke", "scaled", "full")


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")
    return scale


def repo_root() -> Path:
    """The checkout this package runs from (the package is installed editable from lib/)."""
    return Path(__file__).resolve().parents[2]


def study_dir(study: str, scale: str) -> Path:
    """Where a study's records live at ``scale``: $SMALLBATCH_RESULTS/<study>/<scale>, else
    <repo>/results/<study>/<scale>."""
    base = os.environ.get("SMALLBATCH_RESULTS")
    return (Path(base) if base else repo_root() / "results") / study / check_scale(scale)


def results_dir(study: str, scale: str) -> Path | None:
    """:func:`study_dir` for a notebook's own runs; None at the smoke scale: smoke runs are
    checks, not results, and are never stored."""
    return None if check_scale(scale) == "smoke" else study_dir(study, scale)


def quickstart(scale: str) -> TrainConfig:
    """The quickstart chapter's single run (book: "Quickstart").

    ResNet-8 with batch norm, plain SGD at m = 32 and eta_tilde = 2^-8 (eta = 0.125; the
    paper's training curves use eta_tilde = 2^-8), LR / 10 at 50% and 75% of the steps.

    - smoke: synthetic data, 1,024 training and 500 test images, 2 epochs (a few seconds).
    - scaled: Fashion-MNIST, all 60,000 training and 10,000 test images, 10 epochs.
    - full: CIFAR-10 (original, torchvision), ResNet-20 with batch norm and augmentation,
      weight decay 1e-4, 82 epochs: the paper's CIFAR-10 protocol at one (m, eta_tilde).
    """
    check_scale(scale)
    base = TrainConfig(model="resnet8", batch_norm="all", batch_size=32, base_lr=2.0**-8)
    if scale == "smoke":
        return base.replace(data="synthetic", train_subset=1024, test_subset=500, num_epochs=2)
    if scale == "scaled":
        return base.replace(data="fashion-mnist", num_epochs=10)
    return base.replace(data="cifar10", model="resnet20", augment=True, weight_decay=1e-4,
                        num_epochs=82)


# The theory chapters (closed form; nothing trains) ------------------------------------------

@dataclass(frozen=True)
class NQMSettings:
    """Grids for the noisy-quadratic-model chapter (all closed form: seconds on a CPU)."""

    dim: int  # d, the number of coordinates (curvatures h_i = 1/i)
    tuning_lrs: tuple[float, ...]  # step sizes a tried per batch size (a < 2 = 2 / max h)
    batch_sizes: tuple[int, ...]  # B on a power-of-two grid
    targets: tuple[float, ...]  # target values of E[L]
    max_steps: int  # give up beyond this many SGD steps
    curve_batch_sizes: tuple[int, ...]  # one loss curve per B in the loss-curve figure
    curve_lrs: tuple[float, ...]  # the loss-curve figure's slider over a
    curve_steps: tuple[int, ...]  # steps at which the loss curves are evaluated
    critical_ratio: float = 1.5  # B_crit: smallest B with steps(B) / steps(2B) < this


def _log2_grid(low: float, high: float, per_octave: int) -> tuple[float, ...]:
    return tuple(2.0 ** (k / per_octave) for k in range(round(low * per_octave),
                                                          round(high * per_octave) + 1))


def _log_steps(last: int, count: int) -> tuple[int, ...]:
    return tuple(sorted({int(round(v)) for v in np.geomspace(1, last, count)}))


def nqm(scale: str) -> NQMSettings:
    """The chapter's grids at each scale (book: "The noisy quadratic model").

    - smoke: d = 1,000, half-octave LR grid, B = 1 ... 1024, three targets (< 1 s).
    - scaled and full: d = 10^4 as in Zhang et al. 2019, quarter-octave LR grid from 2^-12
      to 2^0.75 (the largest grid point below the stability limit a = 2), B = 1 ... 16384,
      four targets. Closed form, so the paper's size costs only seconds; full = scaled.
    """
    if check_scale(scale) == "smoke":
        return NQMSettings(dim=1_000, tuning_lrs=_log2_grid(-10, 0.5, 2),
                           batch_sizes=tuple(2 ** k for k in range(11)),
                           targets=(1.0, 0.3, 0.1), max_steps=10 ** 6,
                           curve_batch_sizes=(1, 8, 64, 512), curve_lrs=_log2_grid(-6, 0.5, 2),
                           curve_steps=_log_steps(10 ** 4, 60))
    return NQMSettings(dim=10_000, tuning_lrs=_log2_grid(-12, 0.75, 4),
                       batch_sizes=tuple(2 ** k for k in range(15)),
                       targets=(1.0, 0.3, 0.1, 0.03), max_steps=10 ** 7,
                       curve_batch_sizes=(1, 4, 16, 64, 256, 1024, 4096),
                       curve_lrs=_log2_grid(-8, 0.75, 4), curve_steps=_log_steps(10 ** 6, 100))


@dataclass(frozen=True)
class LRScalingSettings:
    """Grids for the learning-rate scaling chapter (closed form: milliseconds)."""

    batch_sizes: tuple[int, ...]  # m, powers of two (the figure's slider)
    reference_batch_size: int  # m_ref: all rules agree here
    base_lr: float  # eta_tilde at m_ref, per example (eta = m_ref * base_lr there)
    dataset_size: int  # N, examples per epoch (CIFAR-10: 50,000)


def lr_scaling(scale: str) -> LRScalingSettings:
    """The chapter's grid at each scale (book: "Learning-rate scaling"): m = 1 ... 1024
    at smoke, 1 ... 8192 at scaled and full (nothing is trained; full = scaled).
    m_ref = 32 and eta_tilde = 2^-8 (eta = 0.125 at m_ref) are illustrative values."""
    top = 10 if check_scale(scale) == "smoke" else 13
    return LRScalingSettings(batch_sizes=tuple(2 ** k for k in range(top + 1)),
                             reference_batch_size=32, base_lr=2.0 ** -8, dataset_size=50_000)


# The theory chapters measured on a real network (their checkpoints: smallbatch.theory.
# checkpoints.theory_checkpoints) ----------------------------------------------------------

@dataclass(frozen=True)
class GradientNoiseSettings:
    """Sizes for measuring the gradient noise of a real network (chapter 2)."""

    per_example: int  # examples whose per-example gradients estimate tr(Sigma)
    batch_sizes: tuple[int, ...]  # m at which the update covariance is measured
    draws: int  # independent batches drawn per m
    reference_batch_size: int = 32  # m_ref: eta_tilde = base_lr there under every rule
    base_lr: float = 2.0 ** -10  # eta_tilde at m_ref (the checkpoints' training value)


def gradient_noise(scale: str) -> GradientNoiseSettings:
    """Chapter 2's sizes: at smoke 64 per-example gradients, m = 1 ... 64, 16 draws per m
    (seconds); at scaled and full 4,096 per-example gradients, m = 1 ... 1024 and 64 draws
    per m (about a minute per checkpoint on 2 CPU cores)."""
    if check_scale(scale) == "smoke":
        return GradientNoiseSettings(per_example=64, batch_sizes=tuple(2 ** k for k in range(7)),
                                     draws=16)
    return GradientNoiseSettings(per_example=4096, batch_sizes=tuple(2 ** k for k in range(11)),
                                 draws=64)


@dataclass(frozen=True)
class StaleGradientSettings:
    """Sizes for n small steps against one large step (chapter 3); the fields are those of
    ``smallbatch.theory.staleness.StaleGradientConfig`` less the checkpoint."""

    batch_size: int  # m: examples per small step
    max_steps: int  # n_max: n = 1, 2, 4, ..., n_max small steps against one of n m examples
    base_lrs: tuple[float, ...]  # eta_tilde grid, per example (the checkpoints trained at 2^-10)
    loss_from: float  # smallest eta_tilde whose losses are evaluated (float64 resolution)
    eval_size: int  # training examples in no batch, for the mean eval loss
    draws: int  # independent sequences of n_max batches


def stale_gradients(scale: str) -> StaleGradientSettings:
    """Chapter 3's sizes. Float64 on a CPU core costs about 0.75 ms per example forward,
    2 ms per gradient and 8 ms per Hessian-vector product for ResNet-8, so:

    - smoke: m = 4, n = 1, 2, 4, eta_tilde = 2^-34 ... 2^-2 every 4 octaves (2^-10, the
      checkpoints' training value, included), 32 eval examples, 2 draws (about 5 s per
      checkpoint);
    - scaled: m = 8, n = 1 ... 32 (up to 256 examples in the large step), eta_tilde =
      2^-40 ... 2^-4 every 2 octaves (the small end is where no ReLU input changes sign,
      see the chapter), losses from 2^-24, 128 eval examples, 3 draws (about 35 s per
      checkpoint and draw on one core, plus 6 epochs of training for the checkpoints);
    - full: m = 16, n = 1 ... 64, 1,024 eval examples, 8 draws (for a GPU).
    """
    if check_scale(scale) == "smoke":
        return StaleGradientSettings(batch_size=4, max_steps=4,
                                     base_lrs=tuple(2.0 ** k for k in range(-34, -1, 4)),
                                     loss_from=2.0 ** -24, eval_size=32, draws=2)
    grid = tuple(2.0 ** k for k in range(-40, -3, 2))
    if scale == "scaled":
        return StaleGradientSettings(batch_size=8, max_steps=32, base_lrs=grid,
                                     loss_from=2.0 ** -24, eval_size=128, draws=3)
    return StaleGradientSettings(batch_size=16, max_steps=64, base_lrs=grid,
                                 loss_from=2.0 ** -24, eval_size=1024, draws=8)


@dataclass(frozen=True)
class NoiseScaleSettings:
    """Sizes for the noise scale along a run (``smallbatch.theory.noisescale``): the recipe
    is each study's trial at m = ``batch_size`` and ``seed`` with the best eta_tilde at that
    m in its stored records (``analysis.budget.recipe``), measured at ``epochs`` epochs of its
    own ``num_epochs``-epoch run."""

    studies: tuple[str, ...]  # the studies whose recipe is measured (with and without BN)
    batch_size: int  # m of the recipe
    epochs: tuple[int, ...]  # k: the checkpoints, after k epochs of the recipe's run
    small_batch: int  # B_small, examples per small batch (drawn with replacement)
    big_batch: int  # B_big, examples per big batch
    draws: int  # batches drawn at B_small (with replacement)
    big_draws: int  # batches drawn at B_big
    per_example: int  # per-example gradients for the direct estimate (network without BN)
    seed: int = 0  # the recipe trial's seed
    base_lrs: tuple[float, ...] | None = None  # eta_tilde of each study's recipe; None = the
                                               # best at m in its stored records


def noise_scale(scale: str) -> NoiseScaleSettings:
    """The noise-scale chapter's sizes (book: "The noise scale along a run").

    - smoke: the studies' smoke trials (synthetic data, 256 images, 2 epochs) at m = 4 and
      the middle of each smoke grid, eta_tilde = 2^-7 with BN and 2^-9 without (smoke runs
      are never stored, so there are no records to pick the best from); checkpoint at
      epoch 1 of 2, B = 4 and 64, 4 draws of each, 32 per-example gradients (a few seconds).
    - scaled: resnet-bn and resnet-nobn (ResNet-8 on 8,192 Fashion-MNIST images, 10
      epochs) at m = 32, checkpoints at epochs 1, 5 and 8 of 10; B_small = 32 with 256
      draws, B_big = 4096 with 24 draws, 2,048 per-example gradients without BN. Late in
      the run B_simple (~5,000 at epoch 8) exceeds 1,024, so |G|^2 is a small part of
      |G_Bbig|^2 and the big draws set the error: in a pilot at B_big = 1024 (epoch 8, no
      BN) one draw's |G_1024|^2 had a standard deviation of 0.034, twice |G|^2 = 0.017, and
      32 draws left B_simple's interval unbounded above; at 4096 it is 0.012, half the
      variance per example drawn. The small draws (standard deviation 0.36-0.69 of their
      mean) set the error of tr(Sigma). Measured on one thread of this machine's CPU (AMD
      EPYC, while a 2-worker sweep shared its 2 cores), training to the checkpoint
      included: 327, 362 and 592 s at epochs 1, 5 and 8 with BN, 245, 316 and 386 s
      without (37 min in all).
    - full: the studies' full protocol (ResNet-20 on CIFAR-10, 82 epochs) at m = 32, at the
      same points of its run: epoch 1, 41 (50%, the first decay) and 66 (after the
      second, at 75%); 1,024 and 96 draws and 8,192 per-example gradients (for a GPU).
    """
    studies = ("resnet-bn", "resnet-nobn")
    if check_scale(scale) == "smoke":
        return NoiseScaleSettings(studies=studies, batch_size=4, epochs=(1,), small_batch=4,
                                  big_batch=64, draws=4, big_draws=4, per_example=32,
                                  base_lrs=(2.0 ** -7, 2.0 ** -9))
    if scale == "scaled":
        return NoiseScaleSettings(studies=studies, batch_size=32, epochs=(1, 5, 8),
                                  small_batch=32, big_batch=4096, draws=256, big_draws=24,
                                  per_example=2048)
    return NoiseScaleSettings(studies=studies, batch_size=32, epochs=(1, 41, 66),
                              small_batch=32, big_batch=4096, draws=1024, big_draws=96,
                              per_example=8192)
