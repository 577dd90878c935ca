"""What the chapter "Budget against batch size" shows (book: "Budget against batch size"),
section by section: one function per table, figure input or short text, each returning data
(a DataFrame, a styled table, a Markdown string) that the chapter displays. The functions
are grouped under comments that name the chapter's sections. The measures themselves are
:mod:`smallbatch.analysis.budget`'s; this module puts them together for the chapter's sets
of runs.

The sets of runs come from :func:`budget_runs`, the one place that takes each study from
its stored trials to per-epoch records, cells, noise margin and bests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import theory
from .budget import (TARGETS_BELOW_BEST, best_at_step_counts, critical_batch_text,
                     fit_at_best, fit_tradeoff, lr_saturation, targets_reached)
from .cells import (StudyData, best_per_batch, compared_runs, edges_reached, load_or_run,
                    study_label)
from .claims import (AGREES, CANNOT_DECIDE, CAVEATS, DISAGREES, EQUIVALENT, Verdict,
                     verdict_equal_steps, verdict_small_batches_best)
from .report import BATCH_LR_STUDIES, cost_summary, missing_note, verdict_table
from .runset import RunSet
from .selection import assess, equal_steps_reader

__all__ = ["EQUAL_STEPS_STUDY", "EQUAL_STEPS", "load_studies", "stored_notes", "BudgetRuns",
           "budget_runs", "steps_to_targets", "critical_batch_table", "epoch_grid_text",
           "fits_at_best", "fit_table", "fit_sentences", "lr_saturations", "saturation_table",
           "best_at_equal_steps", "cost_text", "equal_steps_series", "EqualStepsVerdict",
           "equal_steps_verdict", "noise_scale_table", "reproduction_text", "estimators_text",
           "noise_scale_notes", "nqm_yardstick", "yardstick_from_scaling",
           "noise_against_critical_text", "fixed_epoch_reading", "equal_steps_reading",
           "fit_and_gap_reading", "conclusion_text"]

EQUAL_STEPS_STUDY = "equal-steps"  # the study that gives every m the same SGD steps
EQUAL_STEPS = "every m given the same SGD steps"  # its runs' label in the chapter


# --------------------------------------------------- the sets of runs (the chapter's opening)

def load_studies(scale: str) -> tuple[dict[str, StudyData], StudyData]:
    """Chapter 20's studies by name (at smoke only the headline one, which trains in
    seconds: the code path is the same for every set of runs) and the equal-steps study,
    each by :func:`~smallbatch.analysis.load_or_run`."""
    names = BATCH_LR_STUDIES if scale != "smoke" else BATCH_LR_STUDIES[:1]
    return ({name: load_or_run(name, scale) for name in names},
            load_or_run(EQUAL_STEPS_STUDY, scale))


def stored_notes(studies: dict[str, StudyData], equal: StudyData) -> list[str]:
    """One Markdown line per study, the equal-steps one last: its name, its runs and what
    of it is stored (:func:`~smallbatch.analysis.missing_note`)."""
    return [f"**{name}** ({study_label(data.study)}): " + missing_note(data)
            for name, data in [*studies.items(), (EQUAL_STEPS_STUDY, equal)]]


@dataclass(frozen=True)
class BudgetRuns:
    """The chapter's sets of runs: chapter 20's, split by :func:`compared_runs`, then the
    equal-steps study's (label :data:`EQUAL_STEPS`); the per-set statistics hold only the
    sets with stored trials."""

    sides: dict[str, StudyData]        # label -> set of runs, in the chapter's order
    headline: str                      # the label of the headline study's runs
    epochs: dict[str, pd.DataFrame]    # label -> smallbatch.store.epochs_frame rows
    cells: dict[str, pd.DataFrame]     # label -> cell_summary
    margins: dict[str, float]          # label -> noise_margin (accuracy, a fraction)
    bests: dict[str, pd.DataFrame]     # label -> best_per_batch

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        return {label: side.frame for label, side in self.sides.items()}

    @property
    def notes(self) -> dict[str, str]:
        return {label: side.provenance_note() for label, side in self.sides.items()}

    def note(self, *labels: str) -> str:
        """The provenance notes of ``labels``, for one figure's caption."""
        return "; ".join(self.sides[label].provenance_note() for label in labels)


def budget_runs(studies: dict[str, StudyData], equal: StudyData, *,
                headline: str = BATCH_LR_STUDIES[0]) -> BudgetRuns:
    """Each set of runs with its per-epoch records, cells, noise margin and bests: the
    fixed-epoch studies ``studies`` (by name; ``headline`` names the headline one), each
    split by :func:`compared_runs`, then ``equal``, the equal-steps study (book: "Budget
    against batch size"). The statistics are each set's :class:`~smallbatch.analysis.RunSet`
    (the one pipeline every experiments chapter reads); a set with no stored trial gets
    none."""
    if headline not in studies:
        raise ValueError(f"the headline study {headline!r} is not among {list(studies)}")
    sides = {**compared_runs(studies.values()), EQUAL_STEPS: equal}
    sets = {label: RunSet.of(side, label) for label, side in sides.items()
            if not side.frame.empty}
    return BudgetRuns(sides, study_label(studies[headline].study),
                      {label: s.epochs for label, s in sets.items()},
                      {label: s.cells for label, s in sets.items()},
                      {label: s.margin for label, s in sets.items()},
                      {label: s.bests for label, s in sets.items()})


# ------------------------------------------------------- section: Steps and examples to a target

def steps_to_targets(runs: BudgetRuns) -> dict[str, dict[str, tuple]]:
    """Per set of runs (label), :func:`~smallbatch.analysis.budget.targets_reached`: target
    label -> (fastest cell per m, critical batch)."""
    return {label: targets_reached(runs.epochs[label], runs.cells[label])
            for label in runs.cells}


def critical_batch_table(reach: dict[str, dict[str, tuple]]) -> pd.DataFrame:
    """Per set of runs and target (columns: how far below the set's best, in points), the
    critical batch in words (:func:`~smallbatch.analysis.budget.critical_batch_text`).
    ``reach``: :func:`steps_to_targets`, whose targets follow ``TARGETS_BELOW_BEST``."""
    rows = {}
    for label, by_target in reach.items():
        for below, (_, critical) in zip(TARGETS_BELOW_BEST, by_target.values(), strict=True):
            rows.setdefault(label, {})[f"best − {100 * below:g} points"] = \
                critical_batch_text(critical)
    return pd.DataFrame(rows).T.rename_axis("runs: B_crit [95% interval], examples")


def epoch_grid_text(side: StudyData) -> str:
    """What the epoch grid and the schedule do to steps to a target, with the headline
    study's steps per epoch at its smallest and largest m (``side``: its runs)."""
    sizes = sorted(int(m) for m in side.frame["batch_size"].unique())
    per_epoch = {m: side.study.base.train_subset // m for m in sizes}
    granularity = (f"one epoch is {per_epoch[sizes[0]]:,} steps at m = {sizes[0]} and "
                   f"{per_epoch[sizes[-1]]:,} at m = {sizes[-1]}")
    return (
        "**What the epoch grid does to these numbers.** Steps are read at the ends of epochs, "
        "so each is an upper bound on the true crossing by up to one epoch: in the headline "
        f"study {granularity}. At small m the easy targets are reached within "
        "the first epochs, so examples to them hardly change with m, and the examples curve "
        "is flat there partly by construction: E_min is not resolved below one epoch. "
        "**What the schedule does.** The learning rate drops by 10 at 50% and 75% of "
        "each run, and a run's length is fixed in epochs, so at a given step a small-m run "
        "is still at its peak learning rate while a large-m run may be past its decays. The "
        "equal-steps study removes that difference: there every m's decays fall at the same "
        "steps.")


# ----------------------------------------------- section: Underfitting or a generalisation gap?

def fits_at_best(runs: BudgetRuns) -> dict[str, pd.DataFrame]:
    """:func:`~smallbatch.analysis.budget.fit_at_best` for the headline study and the
    equal-steps study, those with stored trials."""
    return {label: fit_at_best(runs.frames[label], runs.epochs[label], runs.bests[label])
            for label in (runs.headline, EQUAL_STEPS) if label in runs.bests}


def fit_table(fits: dict[str, pd.DataFrame]):
    """:func:`fits_at_best` as one styled table, indexed by set of runs and m."""
    return pd.concat(fits, names=["runs"]).style.format(
        {"train_loss": "{:.4f}", "train_accuracy": "{:.4f}", "test_accuracy": "{:.4f}",
         "gap": "{:+.4f}"})


def fit_sentences(fits: dict[str, pd.DataFrame]) -> str:
    """Per set of runs with two or more m: does its largest m underfit its smallest, and
    their gaps between training and test accuracy (paragraphs)."""
    sentences = []
    for label, table in fits.items():
        if len(table) < 2:
            continue
        small, large = table.index.min(), table.index.max()
        s, l = table.loc[small], table.loc[large]
        kind = ("underfits" if l["train_loss"] > s["train_loss"] else
                "fits the training set at least as well as")
        sentences.append(
            f"*{label}*: at m = {large} the best run {kind} m = {small}'s (training loss "
            f"{l['train_loss']:.4f} against {s['train_loss']:.4f}), and its gap between "
            f"training and test accuracy is {l['gap']:+.4f} against {s['gap']:+.4f}.")
    return "\n\n".join(sentences)


# ------------------------------------------------- section: Where the learning rate saturates

def lr_saturations(runs: BudgetRuns) -> dict[str, dict]:
    """Per set of runs, :func:`~smallbatch.analysis.budget.lr_saturation` at its margin."""
    return {label: lr_saturation(best, runs.margins[label])
            for label, best in runs.bests.items()}


def saturation_table(saturation: dict[str, dict], margins: dict[str, float]):
    """:func:`lr_saturations` as a styled table: per set of runs, each m's best log2 eta,
    where eta stops growing, where accuracy falls, and the noise margin."""
    return pd.DataFrame({label: {
        "best log2 η per m (m: value)": ", ".join(f"{m}: {int(v)}"
                                                  for m, v in found["table"]["log2_lr"].items()),
        "η stops growing from m =": found["saturates_at"] or "still growing",
        "accuracy falls from m =": found["falls_from"] or "does not fall",
        "noise margin": margins[label],
    } for label, found in saturation.items()}).T.rename_axis("runs").style.format(
        {"noise margin": "{:.4f}"})


# ---------------------------------------- section: Equal steps within the fixed-epoch runs

def best_at_equal_steps(runs: BudgetRuns, label: str) -> dict[int, pd.DataFrame]:
    """Equal steps within one set of fixed-epoch runs:
    :func:`~smallbatch.analysis.budget.best_at_step_counts`, a diverged trial scoring
    chance."""
    side = runs.sides[label]
    return best_at_step_counts(side.frame, runs.epochs[label], chance=1.0 / side.num_classes)


# ------------------------------------------------------- section: The equal-steps experiment

def cost_text(data: StudyData) -> str:
    """What the equal-steps study ``data`` cost (:func:`~smallbatch.analysis.cost_summary`):
    trials stored, examples, process-hours, and what the missing trials would take."""
    cost = cost_summary(data)
    smallest = int(data.frame["batch_size"].min()) if not data.frame.empty else "?"
    return (f"{cost['stored']} of {cost['trials']} trials stored, "
            f"{cost['examples'] / 1e6:.1f}M training examples in all; the stored trials took "
            f"{cost['process_hours']:.1f} process-hours of this project's 2-core machine "
            f"(the m = {smallest} runs among them were trained once, for the headline study)"
            + (f"; the missing ones would take about {cost['hours_to_go']:.1f} more."
               if cost["hours_to_go"] else "."))


def equal_steps_series(runs: BudgetRuns) -> dict[str, pd.DataFrame]:
    """The bests the equal-steps figure sets side by side: equal steps, then the headline
    study's equal epochs where stored."""
    series = {EQUAL_STEPS: runs.bests[EQUAL_STEPS]}
    if runs.headline in runs.bests:
        series["every m given the same epochs (headline study)"] = runs.bests[runs.headline]
    return series


@dataclass(frozen=True)
class EqualStepsVerdict:
    """The equal-steps claim's verdict and what the chapter shows of it."""

    verdict: Verdict
    per_m: dict          # m -> (d, outcome), from verdict_equal_steps
    reference: int       # the m whose best is the bar
    claims: pd.DataFrame  # verdict_table's claims table (in-sample, held out, resampled)
    rules: str           # its rules, Markdown
    caveat: str          # the caveat beside the verdict, Markdown


def equal_steps_verdict(runs: BudgetRuns, reference: int, edges: pd.DataFrame
                        ) -> EqualStepsVerdict:
    """The verdict on "given the same steps, large batches reach the small-batch best" for
    the equal-steps runs, in-sample, with bests held out and on seed resamples
    (:func:`~smallbatch.analysis.assess`); ``edges``: their window edges."""
    margin = runs.margins[EQUAL_STEPS]
    verdict, per_m = verdict_equal_steps(runs.bests[EQUAL_STEPS], reference, margin, edges)
    assessed = assess(EQUAL_STEPS, equal_steps_reader(reference, margin, edges),
                      {EQUAL_STEPS: runs.frames[EQUAL_STEPS]})
    claims, rules = verdict_table([assessed])
    return EqualStepsVerdict(verdict, per_m, reference, claims, rules,
                             f"**Caveat beside this verdict, whatever it is:** "
                             f"{CAVEATS[verdict.claim]}.")



# ------------------------------------- section: The noise scale against the observed critical batch

_NOISE_COLUMNS = {  # noise_scale_frame column -> its heading in the chapter's table
    "steps": "steps", "test_accuracy": "test accuracy",
    "b_simple": "B_simple (two-batch)", "b_simple_low": "low", "b_simple_high": "high",
    "b_simple_per_example": "B_simple (per-example)", "b_simple_per_example_low": "low ",
    "b_simple_per_example_high": "high ", "trace_sigma": "tr(Σ) (two-batch)",
    "grad_sq_norm": "|G|² (two-batch)", "grad_sq_norm_exact": "|G|² (exact)",
    "draws": "small draws", "big_draws": "big draws", "per_example": "per_example"}


def noise_scale_table(frame: pd.DataFrame):
    """The noise-scale measurements (``frame``:
    :func:`~smallbatch.theory.noisescale.noise_scale_frame`) as the chapter's styled table,
    one row per run and checkpoint."""
    return (frame.set_index(["batch_norm", "checkpoint"])[list(_NOISE_COLUMNS)]
            .rename(columns=_NOISE_COLUMNS).style.format("{:.4g}", na_rep="-"))


def reproduction_text(reproduced: pd.DataFrame) -> str | None:
    """How far each checkpoint's own run is from the stored trial it reproduces
    (``reproduced``: :func:`~smallbatch.theory.noisescale.reproduction_frame`); None if
    no checkpoint has a stored trial."""
    if not len(reproduced):
        return None
    return (
        "Each checkpoint is the stored trial's own configuration (data order, initial "
        "weights, schedule) trained to that epoch, but in one process of its own, where the "
        "stored trial was trained in a lock-step ensemble: a different order of floating-point "
        "operations, which early in training, at the peak learning rate, moves the test "
        "accuracy by points; the runs come back together after the decays. Its test accuracy "
        "there, less the stored trial's at the same epoch: " + "; ".join(
            f"{row.batch_norm}, {row.checkpoint}: {row.difference:+.4f}"
            for row in reproduced.itertuples()) + ".")


def estimators_text(frame: pd.DataFrame) -> str | None:
    """Where per-example gradients were measured (without batch norm): at how many
    checkpoints the two estimators' intervals overlap, and their ratios; None if nowhere."""
    checked = frame[frame["per_example"] > 0]
    if not len(checked):
        return None
    overlap = ((checked["b_simple_low"] <= checked["b_simple_per_example_high"])
               & (checked["b_simple_per_example_low"] <= checked["b_simple_high"]))
    return (f"Without batch norm the two estimators' 95% intervals overlap at "
            f"{int(overlap.sum())} of {len(checked)} checkpoints; the two-batch estimate over "
            "the per-example one: "
            + ", ".join(f"{r:.2f}" for r in checked["b_simple"] / checked["b_simple_per_example"])
            + ".")


def noise_scale_notes(frame: pd.DataFrame, reproduced: pd.DataFrame) -> list[str]:
    """The texts under the noise-scale table: :func:`reproduction_text`, then
    :func:`estimators_text`, those that apply."""
    return [text for text in (reproduction_text(reproduced), estimators_text(frame)) if text]


def yardstick_from_scaling(scaling: pd.DataFrame, curvatures: np.ndarray) -> pd.DataFrame:
    """The noisy quadratic model's ratio B_crit / B_simple per target: McCandlish's
    trade-off fitted to the tuned steps to the target (``scaling``:
    :func:`smallbatch.theory.nqm_scaling_table`), and the model's B_simple at the batch
    size nearest that B_crit (in log m) after its steps there. A target whose steps do not
    follow the trade-off (or reached at fewer than two m) has no row."""
    rows = []
    for target, part in scaling[scaling["rule"] == "tuned"].groupby("target"):
        part = part[np.isfinite(part["steps"].astype(float))]
        try:
            fit = fit_tradeoff(part["batch_size"], part["steps"].astype(float))
        except ValueError:
            continue
        nearest = part.iloc[(np.log(part["batch_size"]) - math.log(fit.b_crit)).abs().argmin()]
        moments = theory.nqm_second_moments(int(nearest["steps"]), float(nearest["batch_size"]),
                                            float(nearest["lr"]), curvatures)
        b_simple = theory.nqm_noise_scales(moments, curvatures)["B_simple"]
        rows.append({"target E[L]": target, "B_crit (fit)": fit.b_crit,
                     "B_simple at the target": b_simple,
                     "B_crit / B_simple": fit.b_crit / b_simple})
    return pd.DataFrame(rows, columns=["target E[L]", "B_crit (fit)", "B_simple at the target",
                                       "B_crit / B_simple"]).set_index("target E[L]")


def nqm_yardstick(settings) -> pd.DataFrame:
    """:func:`yardstick_from_scaling` on the noisy quadratic model of
    :func:`smallbatch.presets.nqm` ``settings`` (book: "The noisy quadratic model")."""
    curvatures = theory.nqm_curvatures(settings.dim)
    scaling = theory.nqm_scaling_table(settings.batch_sizes, settings.targets,
                                       settings.tuning_lrs, curvatures, settings.max_steps)
    return yardstick_from_scaling(scaling, curvatures)


def noise_against_critical_text(noise: pd.DataFrame, yardstick: pd.DataFrame,
                                equal_reach: dict, *, batch_size: int,
                                saturates_at: int | None) -> str:
    """B_simple measured along the run with batch norm, the critical batch it predicts with
    the noisy quadratic model's ratio, beside the critical batch observed in the equal-steps
    runs and where the headline study's best eta stops growing.

    Args:
        noise: :func:`~smallbatch.theory.noisescale.noise_scale_frame`.
        yardstick: :func:`nqm_yardstick`.
        equal_reach: the equal-steps runs' :func:`steps_to_targets` (empty if none).
        batch_size: m of the measured runs.
        saturates_at: the headline study's :func:`lr_saturations` ``saturates_at``.
    """
    ratios = yardstick["B_crit / B_simple"]
    ratio_low, ratio_high = (ratios.min(), ratios.max()) if len(ratios) else (math.nan, math.nan)
    fitted = {label: critical["fit"] for label, (_, critical) in equal_reach.items()
              if critical["status"] == "fit"}
    with_bn = noise[(noise["batch_norm"] != "none") & np.isfinite(noise["b_simple"])]
    lines = []
    if len(with_bn):
        lo, hi = with_bn["b_simple"].min(), with_bn["b_simple"].max()
        lines.append(f"Along m = {batch_size}'s run with batch norm, B_simple "
                     f"(two-batch) lies between {lo:.3g} and {hi:.3g} examples.")
        if math.isfinite(ratio_low):
            lines.append(f"With the noisy quadratic model's ratio B_crit / B_simple "
                         f"({ratio_low:.2g} to {ratio_high:.2g}), that predicts a critical "
                         f"batch between {lo * ratio_low:.3g} and {hi * ratio_high:.3g}.")
    if fitted:
        lines.append("The critical batch observed in the equal-steps runs: " + "; ".join(
            f"{label}: {fit.b_crit:.0f} [{fit.low:.0f}, {fit.high:.0f}]"
            for label, fit in fitted.items()) + ".")
        if saturates_at:
            lines.append(f"In the headline study the best step η stops growing from "
                         f"m = {saturates_at}.")
    return " ".join(lines) or ("No noise-scale measurement or critical batch to compare at "
                               "this scale.")


# ------------------------------------- section: What these runs say about the two positions

_MASTERS_READING = {
    AGREES: "Masters and Luschi's reading holds here",
    DISAGREES: "these runs contradict Masters and Luschi's reading",
    EQUIVALENT: "these runs find no small-batch advantage beyond the noise margin",
    CANNOT_DECIDE: "these runs cannot decide Masters and Luschi's claim"}


def fixed_epoch_reading(best: pd.DataFrame, margin: float, summary: pd.DataFrame,
                        base) -> str:
    """At a fixed epoch budget: chapter 20's verdict on small batches for the headline
    study (``best``: its :func:`best_per_batch`; ``summary``: its cells; ``base``: its base
    TrainConfig), its best m and how far behind the largest m, with its steps, is."""
    fixed = verdict_small_batches_best(best, margin, edges_reached(summary, margin))
    top_m, largest = int(best["median"].idxmax()), int(best.index.max())
    return (f"- **At a fixed epoch budget (the paper's protocol) "
            f"{_MASTERS_READING[fixed.verdict]}** (the claim \"{fixed.claim}\" "
            f"{fixed.verdict}, by chapter 20's rule): the headline study's best is at "
            f"m = {top_m} ({best.loc[top_m, 'median']:.4f}); m = {largest}, with "
            f"{base.train_subset // largest * base.num_epochs:,} steps, is "
            f"{best.loc[top_m, 'median'] - best.loc[largest, 'median']:.4f} behind it.")


def _batch_list(sizes: list[int]) -> str:
    return ", ".join(map(str, sizes))


def equal_steps_reading(verdict: Verdict, per_m: dict, reference: int) -> str:
    """Given the same steps: which m reach the reference's best, which stay behind and
    which are undecided (``per_m``: m -> (d, outcome), from verdict_equal_steps)."""
    outcome = {m: o for m, (_, o) in per_m.items()}
    reached = [m for m, o in outcome.items() if o in (AGREES, EQUIVALENT)]
    behind = [m for m, o in outcome.items() if o == DISAGREES]
    undecided = [m for m, o in outcome.items() if o == CANNOT_DECIDE]
    text = f"- **Given the same steps (verdict: {verdict.verdict}).** "
    if reached:
        text += (f"m = {_batch_list(reached)} reach{'es' if len(reached) == 1 else ''} "
                 f"m = {reference}'s best within the noise margin or better, as Shallue et al. "
                 "find, with the same steps but also more epochs: this study cannot tell "
                 "which of the two closed the fixed-epoch deficit. ")
    if behind:
        text += (f"m = {_batch_list(behind)} stay{'s' if len(behind) == 1 else ''} "
                 "more than the margin behind even with the same steps (and many more epochs): "
                 "the step budget does not explain that deficit; the batch size or the extra "
                 "epochs may. ")
    if undecided:
        text += (f"m = {_batch_list(undecided)}: undecided (see the verdict's "
                 "measurement: too few seeds stored, or a best at an end of its window). ")
    return text


def fit_and_gap_reading(table: pd.DataFrame, best: pd.DataFrame, margin: float) -> str:
    """With equal steps: does the largest m fit its training set as well as the smallest,
    their gaps, and whether what is left of its deficit is a gap or underfitting
    (``table``: :func:`fits_at_best`'s equal-steps table, two or more m; ``best``: the
    equal-steps bests; ``margin``: their noise margin)."""
    small, large = table.index.min(), table.index.max()
    deficit = best.loc[large, "median"] < best.loc[small, "median"] - margin
    better = table.loc[large, "train_loss"] <= table.loc[small, "train_loss"]
    text = (f"- **Fit and gap.** With equal steps the largest batch, m = {large}, fits its "
            f"training set {'at least as well as' if better else 'less well than'} m = {small} "
            f"(training loss {table.loc[large, 'train_loss']:.4f} against "
            f"{table.loc[small, 'train_loss']:.4f}), and its gap between training and test "
            f"accuracy is {table.loc[large, 'gap']:+.4f} against {table.loc[small, 'gap']:+.4f}")
    if deficit:
        return text + (": what is left of its deficit is " + (
            "a larger gap between training and test, not underfitting (its extra epochs "
            "may explain it as well as its batch size)." if better else "underfitting."))
    return text + f"; its best is not more than the margin below m = {small}'s."


def conclusion_text(runs: BudgetRuns, equal: EqualStepsVerdict | None,
                    fits: dict[str, pd.DataFrame]) -> str:
    """What these runs say about the two positions: :func:`fixed_epoch_reading` for the
    headline study, :func:`equal_steps_reading` for the equal-steps verdict (``equal``,
    None if nothing is stored) and :func:`fit_and_gap_reading` (``fits``:
    :func:`fits_at_best`), one bullet each where there is something to read."""
    parts = []
    if runs.headline in runs.bests:
        headline = runs.headline
        parts.append(fixed_epoch_reading(runs.bests[headline], runs.margins[headline],
                                         runs.cells[headline], runs.sides[headline].study.base))
    if equal is not None:
        parts.append(equal_steps_reading(equal.verdict, equal.per_m, equal.reference))
    if EQUAL_STEPS in fits and len(fits[EQUAL_STEPS]) > 1:
        parts.append(fit_and_gap_reading(fits[EQUAL_STEPS], runs.bests[EQUAL_STEPS],
                                         runs.margins[EQUAL_STEPS]))
    return "\n".join(parts) or "Nothing stored to conclude from at this scale."
