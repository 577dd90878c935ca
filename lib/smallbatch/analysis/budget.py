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
no per-example gradients and so works with batch norm: the estimator is theory's
(:func:`smallbatch.theory.noisescale.two_batch_noise_scale`, re-exported here); which run of
a study it measures is chosen here (:func:`recipe`, :func:`noise_scale_configs`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import presets
from ..store import MeasurementError, load_result
from ..studies import load_study, validate_study
from ..theory import noisescale
from ..theory.noisescale import two_batch_noise_scale  # theory's, re-exported here
from ..train import TrainConfig, lr_at_step
from .cells import best_first, best_per_batch, cell_summary, study_data

__all__ = ["TARGETS_BELOW_BEST", "budget_targets", "steps_to_target", "best_steps_to_target",
           "TradeoffFit", "fit_tradeoff", "critical_batch", "critical_batch_text",
           "two_batch_noise_scale", "recipe", "noise_scale_configs", "stored_trial",
           "targets_reached", "accuracy_at_steps", "best_at_steps", "best_at_step_counts",
           "step_counts", "fit_at_best", "NOISE_SCALE_RESULTS", "NoiseScaleMeasured",
           "measure_noise_scale",
           "lr_saturation", "weight_decay_shrink"]


# The targets steps and examples are counted to: a set of runs' best median accuracy less
# these amounts (accuracy as a fraction). From the easy (10 points below the best, reached
# early by almost every m) to the hard (1 point, reached by few).
TARGETS_BELOW_BEST = (0.10, 0.05, 0.03, 0.02, 0.01)


def budget_targets(summary: pd.DataFrame, below=TARGETS_BELOW_BEST) -> dict[str, float]:
    """Target accuracies for a set of runs: its best cell's median score (``summary``:
    :func:`~smallbatch.analysis.cell_summary`) less each of ``below``, keyed by a label."""
    top = float(summary["median"].max())
    return {f"best − {100 * b:g} points ({top - b:.3f})": top - b for b in below}


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


def critical_batch(per_trial: pd.DataFrame, *, confidence: float = 0.95, resamples: int = 2000,
                   seed: int = 0) -> dict:
    """McCandlish's trade-off fitted to one target's steps (``per_trial``:
    :func:`steps_to_target`), at each m's fastest cell (:func:`best_steps_to_target`).

    Returns a dict: ``batch_sizes`` (the m that reached the target), ``fit`` (a
    :class:`TradeoffFit`, with an interval from resampling the seeds of each m's fastest
    cell that reached it, NaN with one seed per m; None if there is no fit) and ``status``:

    - ``"fit"``: S_min and E_min are both positive;
    - ``"no diminishing returns"``: the fit's S_min is not positive, i.e. steps fall at
      least as fast as 1/m over every m that reached the target (perfect scaling: the
      critical batch is above the largest of them, which ``lower_bound`` gives);
    - ``"too few batch sizes"``: fewer than three m reached the target.
    """
    best = best_steps_to_target(per_trial)
    sizes = [int(m) for m in best.index]
    out = {"batch_sizes": sizes, "fit": None, "lower_bound": None}
    if len(sizes) < 3:
        return {**out, "status": "too few batch sizes"}
    samples = []
    for m, row in best.iterrows():
        cell = per_trial[(per_trial["batch_size"] == m) & (per_trial["base_lr"] == row["base_lr"])]
        samples.append(cell["steps"].dropna().to_numpy())
    if all(len(pool) <= 1 for pool in samples):  # one seed per m: nothing to resample
        samples = None
    try:
        fit = fit_tradeoff(sizes, best["median_steps"].to_numpy(), samples=samples,
                           confidence=confidence, resamples=resamples, seed=seed)
    except ValueError:
        return {**out, "status": "no diminishing returns", "lower_bound": max(sizes)}
    return {**out, "status": "fit", "fit": fit}


def critical_batch_text(critical: dict) -> str:
    """:func:`critical_batch`'s result in a few words: "B_crit [low, high]" (an upper end
    beyond a hundred times the largest m that reached the target is shown as unbounded: the
    data do not bound it), "> m (no diminishing returns)" (also when the fit's own B_crit
    is beyond a hundred times that m: steps then fall as 1/m to within the fit over every m
    that reached it, and the data do not locate the critical batch), or how few m reached
    it."""
    if critical["status"] == "fit":
        fit = critical["fit"]
        largest = max(critical["batch_sizes"])
        if fit.b_crit > 100 * largest:
            return f"> {largest} (no diminishing returns)"
        if math.isnan(fit.low):
            return f"{fit.b_crit:.0f} (one seed: no interval)"
        high = ("unbounded" if fit.high > 100 * largest
                else f"{fit.high:.0f}")
        return f"{fit.b_crit:.0f} [{fit.low:.0f}, {high}]"
    if critical["status"] == "no diminishing returns":
        return f"> {critical['lower_bound']} (no diminishing returns)"
    return f"only {len(critical['batch_sizes'])} m reached it: no fit"


def targets_reached(epochs: pd.DataFrame, summary: pd.DataFrame) -> dict[str, tuple]:
    """For one set of runs, each of its :func:`budget_targets` (label -> (fastest cell per
    m, :func:`critical_batch`)), what the figure of steps and examples to a target shows
    (book: "Budget against batch size", steps and examples to a target).

    Args:
        epochs: the set's :func:`smallbatch.store.epochs_frame` rows.
        summary: its :func:`~smallbatch.analysis.cell_summary`, which sets the targets.
    """
    out = {}
    for label, target in budget_targets(summary).items():
        per_trial = steps_to_target(epochs, target)
        out[label] = (best_steps_to_target(per_trial), critical_batch(per_trial))
    return out


def step_counts(trials: pd.DataFrame) -> pd.Series:
    """Per trial (``config_hash``): the SGD steps its run was set to take, num_epochs times
    the steps of one epoch (``trials``: a study's frame, with ``train_subset``)."""
    per_epoch = trials["train_subset"] // trials["batch_size"]
    return (trials["num_epochs"] * per_epoch).set_axis(trials["config_hash"])


def accuracy_at_steps(trials: pd.DataFrame, epochs: pd.DataFrame, steps: int, *,
                      chance: float, metric: str = "test_accuracy") -> pd.DataFrame:
    """Per trial: ``metric`` at the end of the epoch that ends exactly at ``steps`` SGD
    steps, for the trials whose run reaches that step at an epoch's end.

    A trial that diverged before ``steps`` scores ``chance`` (as in the study's score); a
    trial whose run is shorter than ``steps``, or whose epochs do not end there, is left
    out. Columns: config_hash, batch_size, base_lr, log2_base_lr, seed, score, and
    ``schedule_fraction``: how far through its own schedule the trial is at that step (the
    equal-steps confound: a larger m reaches a step count later in its schedule, after more
    of its learning-rate decay)."""
    total = step_counts(trials)
    per_epoch = trials["train_subset"] // trials["batch_size"]
    on_boundary = (steps % per_epoch == 0).to_numpy() & (total >= steps).to_numpy()
    wanted = trials[on_boundary]
    at = epochs.assign(steps=epochs["examples_seen"] / epochs["batch_size"])
    at = at[np.isclose(at["steps"], steps)].set_index("config_hash")[metric]
    rows = []
    for _, trial in wanted.iterrows():
        key = trial["config_hash"]
        if key in at.index:
            score = float(at.loc[key])
        elif trial["status"] == "diverged":
            score = chance
        else:  # stopped short without diverging (an error): not a result
            continue
        rows.append({"config_hash": key, "batch_size": int(trial["batch_size"]),
                     "base_lr": trial["base_lr"], "log2_base_lr": int(trial["log2_base_lr"]),
                     "seed": trial["seed"], "score": score,
                     "schedule_fraction": steps / total.loc[key]})
    return pd.DataFrame(rows, columns=["config_hash", "batch_size", "base_lr", "log2_base_lr",
                                       "seed", "score", "schedule_fraction"])


def best_at_steps(at_steps: pd.DataFrame) -> pd.DataFrame:
    """Per m: the best cell (:func:`~smallbatch.analysis.cells.best_first`: the highest
    median over seeds, ties the smaller eta_tilde) of :func:`accuracy_at_steps` rows,
    with its lowest and highest seed, its seeds and where in its schedule it is."""
    if at_steps.empty:
        return pd.DataFrame(columns=["log2_base_lr", "median", "low", "high", "seeds",
                                     "schedule_fraction"])
    cells = at_steps.groupby(["batch_size", "log2_base_lr"]).agg(
        median=("score", "median"), low=("score", "min"), high=("score", "max"),
        seeds=("seed", "nunique"), schedule_fraction=("schedule_fraction", "first"))
    cells = best_first(cells.reset_index(), ["batch_size"])
    return cells.groupby("batch_size").head(1).set_index("batch_size")


def best_at_step_counts(trials: pd.DataFrame, epochs: pd.DataFrame, *, chance: float
                        ) -> dict[int, pd.DataFrame]:
    """:func:`best_at_steps` at every power of two S up to the longest run's steps, for the
    S where at least two m have an epoch ending there (book: "Budget against batch size",
    equal steps within the fixed-epoch runs). ``chance``: a diverged trial's score."""
    counts = [2 ** k for k in range(int(math.log2(step_counts(trials).max())) + 1)]
    tables = {s: best_at_steps(accuracy_at_steps(trials, epochs, s, chance=chance))
              for s in counts}
    return {s: t for s, t in tables.items() if len(t) >= 2}


def fit_at_best(trials: pd.DataFrame, epochs: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """Underfitting or a generalisation gap, at each m's best cell (``best``:
    :func:`~smallbatch.analysis.best_per_batch`): the medians over its complete seeds of the
    last epoch's training loss and training accuracy (running means over that epoch, in
    train mode: the batch's own batch-norm statistics, the weights changing through the
    epoch), the last epoch's test accuracy, and the gap between them (training accuracy
    less test accuracy)."""
    last = epochs.sort_values("epoch").groupby("config_hash").tail(1).set_index("config_hash")
    rows = []
    for m, row in best.iterrows():
        cell = trials[(trials["batch_size"] == m) & (trials["log2_base_lr"] == row["log2_base_lr"])
                      & (trials["status"] == "complete")]
        ends = last.loc[last.index.intersection(cell["config_hash"])]
        if ends.empty:
            continue
        rows.append({"batch_size": int(m), "log2_base_lr": int(row["log2_base_lr"]),
                     "train_loss": float(ends["train_loss"].median()),
                     "train_accuracy": float(ends["train_accuracy"].median()),
                     "test_accuracy": float(ends["test_accuracy"].median()),
                     "gap": float((ends["train_accuracy"] - ends["test_accuracy"]).median()),
                     "seeds": len(ends)})
    return pd.DataFrame(rows).set_index("batch_size")


def lr_saturation(best: pd.DataFrame, margin: float) -> dict:
    """Where the learning rate stops growing with m, beside where accuracy starts to fall.

    ``best``: :func:`~smallbatch.analysis.best_per_batch`. The best step is
    eta = m * eta_tilde (log2 eta = log2 m + log2 eta_tilde, on the same octave grid).
    Returns ``table`` (per m: log2 eta_tilde and log2 eta of the best cell, its median),
    ``saturates_at``: the smallest m whose best log2 eta no larger m exceeds (None if the
    largest m's is still the largest: it grows to the end of the grid), and ``falls_from``:
    the smallest m from which every m's best is more than ``margin`` below the overall best
    (None if the largest m is within it)."""
    table = best[["log2_base_lr", "median"]].copy()
    table["log2_lr"] = table["log2_base_lr"] + np.log2(table.index.to_numpy()).round().astype(int)
    sizes = list(table.index)
    saturates = None
    for k, m in enumerate(sizes[:-1]):
        if table["log2_lr"].iloc[k + 1:].max() <= table["log2_lr"].iloc[k]:
            saturates = int(m)
            break
    top = float(table["median"].max())
    behind = table["median"] < top - margin
    falls = None
    for k, m in enumerate(sizes):
        if behind.iloc[k:].all():
            falls = int(m)
            break
    return {"table": table, "saturates_at": saturates, "falls_from": falls}


def weight_decay_shrink(config, weight_decay: float, train_examples: int) -> float:
    """What weight decay ``weight_decay`` (lambda) alone would do to the weights over one run
    of ``config`` (its m, eta_tilde, epochs, schedule and ``weight_decay_scaling``) on
    ``train_examples`` images: the product over its steps of (1 - eta_t * lambda_SGD), with
    eta_t the step's learning rate (:func:`smallbatch.train.lr_at_step`) and lambda_SGD the
    decay SGD is given (:attr:`TrainConfig.sgd_weight_decay`). With the per-example form the
    exponent is about lambda * eta_tilde * examples seen * the schedule's mean factor, so at
    a fixed epoch budget it follows each m's best eta_tilde, not m itself."""
    decayed = config.replace(weight_decay=weight_decay)
    total = (train_examples // config.batch_size) * config.num_epochs
    schedule = dict(milestones=config.lr_milestones, decay=config.lr_decay,
                    warmup=config.warmup, warmup_fraction=config.warmup_fraction)
    log_factor = sum(math.log1p(-lr_at_step(t, total, config.peak_lr, **schedule)
                                * decayed.sgd_weight_decay) for t in range(total))
    return math.exp(log_factor)


# ------------------------------------------------------- the runs the noise scale measures

def recipe(study: str, scale: str, *, batch_size: int, seed: int = 0,
           base_lr: float | None = None) -> TrainConfig:
    """The trial of ``study`` at ``scale`` with m = ``batch_size``, ``seed`` and eta_tilde
    = ``base_lr``; by default the best eta_tilde at that m in the study's stored records
    (:func:`~smallbatch.analysis.best_per_batch`: the highest median score over seeds). The
    config is the study's own trial, so it hashes to the stored record's name (book: "Budget
    against batch size", the noise scale against the observed critical batch).

    Raises:
        MeasurementError: no stored trials to choose from, or no such trial in the study.
    """
    spec = load_study(study, scale)
    if base_lr is None:
        data = study_data(spec, scale)
        if data.frame.empty or batch_size not in set(data.frame["batch_size"]):
            raise MeasurementError(
                f"no stored trials of {study} at scale {scale} with m = {batch_size} to take "
                f"the best eta_tilde from (in {spec.results_dir}); run the study, or pass "
                "base_lr")
        log2_lr = int(best_per_batch(cell_summary(data.frame)).loc[batch_size, "log2_base_lr"])
    else:
        log2_lr = round(math.log2(base_lr))
    trials = [c for c in validate_study(spec) if c.batch_size == batch_size
              and c.seed == seed and round(math.log2(c.base_lr)) == log2_lr]
    if len(trials) != 1:
        raise MeasurementError(f"study {study} ({scale}) has {len(trials)} trials with "
                               f"m = {batch_size}, seed {seed}, eta_tilde = 2^{log2_lr}; "
                               "choose a cell of its grid")
    return trials[0]


def noise_scale_configs(settings, scale: str) -> list[noisescale.NoiseScaleConfig]:
    """The measurements of :func:`smallbatch.presets.noise_scale` ``settings`` at ``scale``:
    for each of its studies, :func:`recipe`'s run (its ``base_lrs``, else the stored best at
    m), measured along it (:func:`~smallbatch.theory.noisescale.measurements_along`)."""
    base_lrs = settings.base_lrs or (None,) * len(settings.studies)
    return [config
            for study, base_lr in zip(settings.studies, base_lrs, strict=True)
            for config in noisescale.measurements_along(
                recipe(study, scale, batch_size=settings.batch_size, seed=settings.seed,
                       base_lr=base_lr), settings)]


def stored_trial(config: TrainConfig, study: str, scale: str):
    """The stored TrainResult of ``config`` in ``study``'s records at ``scale``, or None."""
    return load_result(config, load_study(study, scale).results_dir)


# The noise-scale measurements' folder: results/<this>/<scale>.
NOISE_SCALE_RESULTS = "noise-scale"


@dataclass(frozen=True)
class NoiseScaleMeasured:
    """The noise scale along each study's :func:`recipe` run at one scale."""

    settings: presets.NoiseScaleSettings
    frame: pd.DataFrame       # :func:`~smallbatch.theory.noisescale.noise_scale_frame`
    reproduced: pd.DataFrame  # :func:`~smallbatch.theory.noisescale.reproduction_frame`


def measure_noise_scale(scale: str) -> NoiseScaleMeasured:
    """The noise-scale measurements of :func:`smallbatch.presets.noise_scale` at ``scale``
    (stored ones read, the rest measured and stored; at smoke measured and never stored),
    with each checkpoint set against the stored trial it is part of (book: "Budget against
    batch size", the noise scale against the observed critical batch)."""
    settings = presets.noise_scale(scale)
    configs = noise_scale_configs(settings, scale)
    folder = presets.results_dir(NOISE_SCALE_RESULTS, scale)
    records = [noisescale.measure(config, folder) for config in configs]
    per_study = len(settings.epochs)  # noise_scale_configs: each study's checkpoints in turn
    trials = [stored_trial(c.checkpoint.config, settings.studies[k // per_study], scale)
              for k, c in enumerate(configs)]
    return NoiseScaleMeasured(settings, noisescale.noise_scale_frame(records),
                              noisescale.reproduction_frame(records, [t for t in trials if t]))
