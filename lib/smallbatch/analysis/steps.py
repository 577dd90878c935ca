"""Steps to a target as Shallue et al. (2019) measure them (book: "Budget against batch
size", the steps-to-target study): constant-rate runs evaluated on a validation split at
steps that grow by 5% (``TrainConfig.eval_growth``), each stopped once it reaches the
hardest target; for each batch size m and target, the fastest eta_tilde gives the steps
and examples to it; McCandlish et al.'s S = S_min + E_min / m fitted across m gives the
critical batch B_crit = E_min / S_min, reported only where it can be trusted.

Every reading is on validation accuracy; the test split only reports (the accuracy where
a run ended). The rules here are stated once and can fail:

- a target's fastest cell is "inside" only if the eta_tilde tried on each side of it is
  slower or never reaches the target (:func:`fastest_cells`);
- B_crit is reported only when it lies inside the measured m range and every
  leave-one-m-out refit stays within LEAVE_ONE_OUT_FACTOR of it (:func:`critical_batch`);
  otherwise the outcome is "cannot decide", with the reason;
- the noise scale B_simple "agrees" with B_crit within AGREEMENT_FACTOR either way
  (:func:`compare_noise_scale`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .budget import fit_tradeoff
from .claims import AGREES, CANNOT_DECIDE, DISAGREES

__all__ = ["TARGETS", "MOST_BATCH_SIZES", "LEAVE_ONE_OUT_FACTOR", "AGREEMENT_FACTOR",
           "MAX_RESOLUTION", "first_reach", "reach_table", "cell_steps", "fastest_cells",
           "hardest_target", "CriticalBatch", "critical_batch", "compare_noise_scale",
           "evaluation_cost"]

# Validation-accuracy targets, from easy to hard (the study stops each run at the last).
TARGETS = (0.80, 0.82, 0.84, 0.85, 0.86, 0.87)
# A target is "reached at most batch sizes" when the fastest cell of at least this share of
# the batch sizes reaches it (:func:`hardest_target`).
MOST_BATCH_SIZES = 0.8
# B_crit is reported only if every leave-one-m-out refit is within this factor of it.
LEAVE_ONE_OUT_FACTOR = 2.0
# B_simple and B_crit "agree" within this factor either way (McCandlish et al.'s Table 1
# has B_simple / B_crit of about 2 to 8 for image tasks: B_simple is expected above).
AGREEMENT_FACTOR = 3.0
# The step-resolved evaluation's promise: the unobserved steps before a first reach are
# at most this share of its step count.
MAX_RESOLUTION = 0.05


def first_reach(evaluations, target: float) -> tuple[int | None, int]:
    """The first evaluation whose validation accuracy reaches ``target``: (its step, the
    step of the evaluation before it, 0 if none). (None, last step) if none reaches it.

    ``evaluations``: a run's :class:`~smallbatch.train.EvalPoint` list, in step order."""
    previous = 0
    for point in evaluations:
        if point.validation_accuracy >= target:
            return point.step, previous
        previous = point.step
    return None, previous


def reach_table(results, targets=TARGETS) -> pd.DataFrame:
    """One row per run and target: batch_size, base_lr, log2_base_lr, seed, target, step
    (NaN: never reached, diverged runs included), examples (step x m), unobserved (the
    steps between the evaluation before and the first reach, as a share of the step: the
    measurement's resolution), stopped_step, final test accuracy and status.

    ``results``: TrainResults of a step-resolved study (``eval_growth`` set)."""
    rows = []
    for result in results:
        config = result.config
        if config.eval_growth is None:
            raise ValueError(f"run {result.config_hash} is not step-resolved (eval_growth "
                             "unset): its steps to a target are known only to the epoch")
        for target in targets:
            step, before = first_reach(result.evaluations, target)
            reached = step is not None and result.status == "complete"
            rows.append({
                "config_hash": result.config_hash, "batch_size": config.batch_size,
                "base_lr": config.base_lr, "log2_base_lr": round(math.log2(config.base_lr)),
                "seed": config.seed, "target": target,
                "step": float(step) if reached else math.nan,
                "examples": float(step * config.batch_size) if reached else math.nan,
                "unobserved": (step - before - 1) / step if reached else math.nan,
                "stopped_step": result.stopped_step, "status": result.status,
                "test_accuracy": result.test_accuracy,
            })
    return pd.DataFrame(rows)


def cell_steps(reach: pd.DataFrame) -> pd.DataFrame:
    """Per (batch_size, log2_base_lr, target): the median steps over seeds, a seed that
    never reached the target counting as infinitely slow (so the median is infinite when
    half or more never did); seeds; how many reached it."""
    frame = reach.assign(step=reach["step"].fillna(math.inf))
    grouped = frame.groupby(["batch_size", "log2_base_lr", "target"])
    return pd.DataFrame({
        "median_steps": grouped["step"].median(),
        "seeds": grouped["step"].size(),
        "reached": grouped["step"].apply(lambda s: int(np.isfinite(s).sum())),
    }).reset_index()


def fastest_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """Per (target, batch_size): the eta_tilde with the fewest median steps (ties: the
    larger eta_tilde, the cheaper run), its steps and examples, and whether the values tried
    on each side of it are slower or never reach the target (``inside``: both). A batch
    size whose every cell never reaches the target has no row."""
    rows = []
    for (target, m), group in cells.groupby(["target", "batch_size"]):
        group = group.sort_values("log2_base_lr")
        finite = group[np.isfinite(group["median_steps"])]
        if finite.empty:
            continue
        best = finite.sort_values(["median_steps", "log2_base_lr"],
                                  ascending=[True, False]).iloc[0]
        below = group[group["log2_base_lr"] < best["log2_base_lr"]]
        above = group[group["log2_base_lr"] > best["log2_base_lr"]]
        slower_below = not below.empty and below.iloc[-1]["median_steps"] > best["median_steps"]
        slower_above = not above.empty and above.iloc[0]["median_steps"] > best["median_steps"]
        rows.append({"target": target, "batch_size": int(m),
                     "log2_base_lr": int(best["log2_base_lr"]),
                     "steps": float(best["median_steps"]),
                     "examples": float(best["median_steps"]) * int(m),
                     "seeds": int(best["seeds"]), "slower_below": bool(slower_below),
                     "slower_above": bool(slower_above),
                     "inside": bool(slower_below and slower_above)})
    columns = ["target", "batch_size", "log2_base_lr", "steps", "examples", "seeds",
               "slower_below", "slower_above", "inside"]
    return pd.DataFrame(rows, columns=columns)


def hardest_target(fastest: pd.DataFrame, batch_sizes, share: float = MOST_BATCH_SIZES
                   ) -> float | None:
    """The hardest target whose fastest cell is reached at ``share`` or more of
    ``batch_sizes`` (the m the study tried); None if no target is."""
    sizes = set(int(m) for m in batch_sizes)
    reached = [t for t, group in fastest.groupby("target")
               if len(set(group["batch_size"]) & sizes) >= share * len(sizes)]
    return max(reached) if reached else None


@dataclass(frozen=True)
class CriticalBatch:
    """The outcome of :func:`critical_batch` for one target."""

    outcome: str                  # AGREES ("measured") or CANNOT_DECIDE
    b_crit: float | None          # E_min / S_min of the fit over every m, when it has one
    s_min: float | None
    e_min: float | None
    leave_one_out: dict[int, float]  # m left out -> B_crit of the refit (NaN: no fit)
    batch_sizes: tuple[int, ...]
    reason: str                   # why it cannot decide, or what the measurement rests on

    @property
    def measured(self) -> bool:
        return self.outcome != CANNOT_DECIDE


def critical_batch(fastest: pd.DataFrame, target: float,
                   factor: float = LEAVE_ONE_OUT_FACTOR) -> CriticalBatch:
    """B_crit for one target from each m's fastest steps (:func:`fastest_cells`): the fit
    S = S_min + E_min / m over every m that reached it, reported only when

    - at least four m reached the target (so that each leave-one-out refit has three);
    - the fit has S_min > 0 and E_min > 0;
    - B_crit lies inside the measured range of m;
    - every leave-one-m-out refit gives a B_crit within ``factor`` of it.

    Otherwise the outcome is CANNOT_DECIDE and ``reason`` says which condition failed."""
    rows = fastest[fastest["target"] == target].sort_values("batch_size")
    sizes = tuple(int(m) for m in rows["batch_size"])
    steps = rows["steps"].to_numpy(dtype=float)
    empty = dict(b_crit=None, s_min=None, e_min=None, leave_one_out={}, batch_sizes=sizes)
    if len(sizes) < 4:
        return CriticalBatch(CANNOT_DECIDE, reason=f"only {len(sizes)} batch size(s) reached "
                             "the target; the fit and its leave-one-out check need 4", **empty)
    try:
        fit = fit_tradeoff(sizes, steps)
    except ValueError as error:
        return CriticalBatch(CANNOT_DECIDE, reason=str(error), **empty)
    loo = {}
    for index, m in enumerate(sizes):
        keep = [i for i in range(len(sizes)) if i != index]
        try:
            refit = fit_tradeoff([sizes[i] for i in keep], steps[keep])
            loo[m] = refit.b_crit
        except ValueError:
            loo[m] = math.nan
    found = dict(b_crit=fit.b_crit, s_min=fit.s_min, e_min=fit.e_min, leave_one_out=loo,
                 batch_sizes=sizes)
    if not min(sizes) <= fit.b_crit <= max(sizes):
        return CriticalBatch(CANNOT_DECIDE, reason=(
            f"the fit's B_crit = {fit.b_crit:.3g} lies outside the measured m = "
            f"{min(sizes)} to {max(sizes)}"), **found)
    bad = {m: b for m, b in loo.items()
           if not (math.isfinite(b) and fit.b_crit / factor <= b <= fit.b_crit * factor)}
    if bad:
        shown = ", ".join(f"without m = {m}: {b:.3g}" for m, b in bad.items())
        return CriticalBatch(CANNOT_DECIDE, reason=(
            f"leaving one m out moves B_crit = {fit.b_crit:.3g} by more than a factor of "
            f"{factor:g} ({shown})"), **found)
    spread = [b for b in loo.values()]
    return CriticalBatch(AGREES, reason=(
        f"fit over m = {min(sizes)} to {max(sizes)} ({len(sizes)} batch sizes); leaving "
        f"one out gives {min(spread):.3g} to {max(spread):.3g}"), **found)


def compare_noise_scale(critical: CriticalBatch, b_simple: float | None,
                        factor: float = AGREEMENT_FACTOR) -> tuple[str, str]:
    """McCandlish et al.'s prediction against the measurement, for one target: (outcome,
    reason). AGREES when B_simple (measured where the target is reached) is within
    ``factor`` of B_crit either way, DISAGREES when it is not, CANNOT_DECIDE when B_crit
    was not measured (:func:`critical_batch`) or B_simple is missing."""
    if not critical.measured:
        return CANNOT_DECIDE, f"no B_crit to compare with: {critical.reason}"
    if b_simple is None or not math.isfinite(b_simple) or b_simple <= 0:
        return CANNOT_DECIDE, "B_simple was not measured at this target"
    ratio = b_simple / critical.b_crit
    within = 1 / factor <= ratio <= factor
    return (AGREES if within else DISAGREES,
            f"B_simple = {b_simple:.3g} is {ratio:.2g} times B_crit = {critical.b_crit:.3g}"
            f" ({'within' if within else 'beyond'} a factor of {factor:g})")


def evaluation_cost(results) -> pd.DataFrame:
    """Per batch size: the seconds spent evaluating against the seconds spent training
    (wall time less evaluation), summed over its runs, and their ratio; and the largest
    unobserved share before a first reach is in :func:`reach_table`."""
    rows = [{"batch_size": r.config.batch_size, "evaluation_s": r.eval_time,
             "training_s": r.wall_time - r.eval_time} for r in results]
    frame = pd.DataFrame(rows, columns=["batch_size", "evaluation_s", "training_s"])
    table = frame.groupby("batch_size").sum()
    table["evaluation / training"] = table["evaluation_s"] / table["training_s"]
    return table
