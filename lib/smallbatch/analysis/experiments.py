"""The experiments chapters' sections, one function each (book: "Batch size against learning
rate", "Batch norm's own batch", "Warm-up", "Training curves"): each returns what its
section shows (a table, a styled table or a short Markdown text), computed from
:class:`~smallbatch.analysis.RunSet` objects; the chapter displays it. The verdicts are read
by the rules of :mod:`.claims` through the readers of :mod:`.selection`; nothing here
restates a rule.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ..models import BATCH_NORM_LABELS
from ..studies import load_study
from .budget import weight_decay_shrink
from .cells import StudyData, edges_overview, fall_with_m, short_windows, study_label
from .claims import (AGREES, CANNOT_DECIDE, DISAGREES, EQUIVALENT, SMALL_BATCHES,
                     verdict_bn_batch_independent, verdict_bn_widens_gap,
                     verdict_small_batches_best, verdict_small_bn_batch, verdict_smallest_best)
from .report import (BATCH_LR_STUDIES, FULL_ONLY_STUDIES, missing_note, process_hours,
                     study_protocol)
from .runset import GHOST_CURVE, RunSet, bn_pairs, under_one_margin
from .selection import (Assessed, assess, assess_together, curves_reader, on_bests,
                        range_reader, warmup_reader)

__all__ = ["batch_lr_studies", "study_notes", "protocol_tables", "stored_trials",
           "window_edges", "margins_style", "lowest_training_loss", "lowest_loss_text",
           "batch_lr_verdicts", "verdict_counts", "resting_margins", "weight_decay_table",
           "fall_with_m_text", "ghost_edges_text", "ghost_verdicts", "warmup_sets",
           "warmup_side_by_side", "warmup_edges", "warmup_verdicts", "warmup_steps_text",
           "curves_at_best", "best_lr_table", "last_epoch_table", "curves_verdicts"]


# ------------------------------------------------------------ "Batch size against learning rate"

def batch_lr_studies(scale: str) -> list[str]:
    """The studies of "Batch size against learning rate" at ``scale``: the batch-size
    studies, and at the full scale also those with no scaled version (CIFAR-100, ImageNet),
    whose data is not on this project's machines."""
    return [*BATCH_LR_STUDIES, *(FULL_ONLY_STUDIES if scale == "full" else ())]


def study_notes(data: Mapping[str, StudyData]) -> list[str]:
    """One Markdown line per study (book: the chapter's opening): its name, its runs'
    label, and what is stored (:func:`~smallbatch.analysis.missing_note`)."""
    return [f"**{name}** ({study_label(study.study)}): " + missing_note(study)
            for name, study in data.items()]


def protocol_tables(data: Mapping[str, StudyData]) -> list[tuple[str, pd.DataFrame]]:
    """Per study (book: "The sizes of each study"): a Markdown heading (name, label,
    epochs) and its protocol table (:func:`~smallbatch.analysis.study_protocol`)."""
    return [(f"**{name}**: {study_label(study.study)}, {study.study.base.num_epochs} epochs",
             study_protocol(study.study)) for name, study in data.items()]


def stored_trials(data: Mapping[str, StudyData]):
    """One row per study (book: "The sizes of each study"): trials stored and in the study,
    the process-hours of the stored ones (:func:`~smallbatch.analysis.process_hours`) and
    the code commits behind them, as a styled table."""
    return pd.DataFrame([{
        "study": name, "trials stored": len(study.frame), "trials in the study": study.total,
        "process-hours of the stored trials": process_hours(study.frame),
        "code commit(s)": ", ".join(c[:10] for c in study.commits),
    } for name, study in data.items()]).set_index("study").style.format(
        {"process-hours of the stored trials": "{:.2f}"})


def window_edges(runs: Mapping[str, RunSet]) -> tuple[str, pd.DataFrame]:
    """Book: "Edges of each window". A sentence counting the windows that miss a side or
    have their best at an end (and naming them), and one row per set and one column per m
    (:func:`~smallbatch.analysis.edges_overview`), each set read with its own margin."""
    edges = {label: one.edges for label, one in runs.items()}
    short = [f"{label}: m = {m}" for label, table in edges.items()
             for m in short_windows(table).index]
    text = (f"{len(short)} of {sum(len(t) for t in edges.values())} windows miss a side or "
            "have their best at an end" + (": " + "; ".join(short) + "." if short else "."))
    return text, edges_overview(edges)


def margins_style(table: pd.DataFrame):
    """A :func:`~smallbatch.analysis.margins_overview` table as the chapter shows it
    (book: "Best accuracy and the range of good eta_tilde against m"): points to two
    decimals, "one seed" where a set has no repeats."""
    return table.rename_axis("runs (points)").style.format(
        {name: "{:.2f}" for name in table.columns
         if name not in ("most scattered point", "margin rests on it")},
        na_rep="one seed")


def lowest_training_loss(runs: Mapping[str, RunSet], model: str) -> pd.DataFrame:
    """Book: "Batch norm over two examples". Per m (rows) and per set of runs of ``model``
    (columns: (label, "lowest training loss"), (label, "best test accuracy")): the lowest
    training loss of the last epoch over the eta_tilde tried (complete runs), beside the
    best test accuracy. Empty when no set of ``model`` is stored."""
    fit = {}
    for label, one in runs.items():
        if one.base.model != model:
            continue
        done = one.frame[one.frame["status"] == "complete"]
        fit[(label, "lowest training loss")] = done.groupby("batch_size")["final_train_loss"].min()
        fit[(label, "best test accuracy")] = one.bests["median"]
    return pd.DataFrame(fit).rename_axis("m") if fit else pd.DataFrame()


def lowest_loss_text(fit: pd.DataFrame) -> str:
    """The sentence under :func:`lowest_training_loss`'s table: at the smallest m, each
    set's lowest training loss and best test accuracy (sets with both)."""
    smallest = int(fit.index.min())
    row = fit.loc[smallest]
    labels = list(dict.fromkeys(label for label, _ in fit.columns))
    return f"At m = {smallest}: " + "; ".join(
        f"{label}: lowest training loss {row[(label, 'lowest training loss')]:.3f}, "
        f"best test accuracy {row[(label, 'best test accuracy')]:.3f}"
        for label in labels if not row[[(label, "lowest training loss"),
                                        (label, "best test accuracy")]].isna().any()) + "."


def batch_lr_verdicts(runs: Mapping[str, RunSet]) -> list[Assessed]:
    """Book: "The paper's claims against these runs". Each set's three verdicts (small
    batches best, the smallest best, the range shrinks; with its own margin and edges), then
    one batch-norm verdict per pair of sets with and without batch norm (:func:`bn_pairs`),
    read under one margin (:func:`under_one_margin`); each read in-sample, held out and on
    seed resamples (:func:`~smallbatch.analysis.assess_together`)."""
    verdicts = []
    for label, one in runs.items():
        margin, edges = one.margin, one.edges
        verdicts += assess_together([
            (label, on_bests(verdict_small_batches_best, margin, edges), True),
            (label, on_bests(verdict_smallest_best, margin, edges), True),
            (label, range_reader(margin, edges), False)], {label: one.frame})
    for with_bn, without_bn in bn_pairs(runs):
        with_bn, without_bn = under_one_margin(with_bn, without_bn)
        where = (f"{with_bn.base.model}, {BATCH_NORM_LABELS[with_bn.base.batch_norm]} "
                 "against none")
        verdicts.append(assess(
            where, on_bests(verdict_bn_widens_gap, with_bn.margin),
            {with_bn.label: with_bn.frame, without_bn.label: without_bn.frame}))
    return verdicts


def verdict_counts(claims: pd.DataFrame, data: Mapping[str, StudyData]) -> str:
    """The sentence under the claims table: how many verdicts of each outcome, and whether
    they rest on incomplete studies (of ``data``, by name)."""
    if claims.empty:
        return "No verdicts: no study of this chapter has stored runs at this scale."
    counts = claims["verdict"].value_counts()
    incomplete = [name for name, study in data.items() if not study.complete]
    return (f"Verdicts: {counts.get(AGREES, 0)} agree, "
            f"{counts.get(DISAGREES, 0)} disagree, "
            f"{counts.get(EQUIVALENT, 0)} find no difference beyond the noise margin, "
            f"{counts.get(CANNOT_DECIDE, 0)} cannot decide."
            + (f" **These rest on incomplete studies ({', '.join(incomplete)}); they will "
               "change as the remaining trials are stored.**" if incomplete else ""))


def resting_margins(margins: pd.DataFrame, claims: pd.DataFrame) -> str | None:
    """A sentence naming the sets whose noise margin rests on one point of their grid
    (column "margin rests on it" of :func:`~smallbatch.analysis.margins_overview`) and what
    that does to their verdicts; None when there is none, or no verdict."""
    resting = [label for label in margins.index if margins.loc[label, "margin rests on it"]]
    if not resting or claims.empty:
        return None
    return (f"The noise margin of {', '.join(resting)} rests on one point of its grid (the "
            "margins table above names it): its \"equivalent within the noise margin\" "
            "verdicts are easier to reach, and its \"agrees\" and \"disagrees\" harder, than "
            "the other points' seeds alone would make them.")


def weight_decay_table(headline: RunSet):
    """Book: "What weight decay would have done". Per m, the set's best log2 eta_tilde, the
    SGD steps of one run, and the factor the full scale's weight decay alone would have
    multiplied the weights by over one run at that best
    (:func:`~smallbatch.analysis.budget.weight_decay_shrink`), as a styled table, with a
    sentence giving its range."""
    decay = load_study(headline.study.name, "full").base.weight_decay
    base = headline.base
    rows = []
    for m, row in headline.bests.iterrows():
        config = base.replace(batch_size=int(m), base_lr=2.0 ** row["log2_base_lr"])
        rows.append({"batch size m": int(m), "best log2 η̃": int(row["log2_base_lr"]),
                     "SGD steps": base.train_subset // int(m) * base.num_epochs,
                     "weights × (decay alone, one run)":
                         weight_decay_shrink(config, decay, base.train_subset)})
    shrink = pd.DataFrame(rows).set_index("batch size m")
    factors = shrink["weights × (decay alone, one run)"]
    text = (f"With λ = {decay:g} (the `full` scale's), the decay alone would have multiplied "
            f"the weights by {factors.min():.3f} (m = {int(factors.idxmin())}) to "
            f"{factors.max():.3f} (m = {int(factors.idxmax())}) over one scaled run, the "
            "strongest where the best η̃ is largest. Leaving it out changes those runs the "
            "most; how it would have moved their accuracy is not measured here.")
    return shrink.style.format({"weights × (decay alone, one run)": "{:.3f}"}), text


# ------------------------------------------------------------ "Batch norm's own batch"

def fall_with_m_text(runs: RunSet) -> str | None:
    """Book: "Batch norm's own batch", under its figure. How far the best accuracy falls from
    the smallest m to the largest with ordinary batch norm and at each fixed m_BN
    (:func:`~smallbatch.analysis.fall_with_m`), beside the set's margin; None with fewer
    than two m."""
    if runs.by != GHOST_CURVE:
        raise ValueError("the fall with m compares (m, m_BN) bests: build the set with "
                         "by=GHOST_CURVE")
    falls = fall_with_m(runs.bests)
    if falls is None:
        return None
    ordinary, at_fixed = falls
    sizes = runs.bests.index.get_level_values("batch_size")
    return (f"From $m = {sizes.min()}$ to $m = {sizes.max()}$ the best accuracy falls by "
            f"{ordinary:.4f} with ordinary batch norm, and at a fixed "
            f"$m_{{\\mathrm{{BN}}}}$ by "
            + ", ".join(f"{b}: {v:.4f}" for b, v in at_fixed.items())
            + f" (noise margin {runs.margin:.4f}). Where the fall at a "
            "fixed $m_{\\mathrm{BN}}$ is as large as with ordinary batch norm, the batch-size "
            "effect here is not a batch-norm-batch effect.")


def ghost_edges_text(edges: pd.DataFrame) -> str:
    """Book: "Batch norm's own batch", "Edges of each window". How many (m, m_BN) points have
    their best eta_tilde at an end of their window, and how many have a window that misses
    a side or a best at an end (:func:`~smallbatch.analysis.short_windows`), naming them."""
    at_end = edges[~edges["inside"]]
    short = short_windows(edges)
    return (f"{len(at_end)} of {len(edges)} stored $(m, m_{{\\mathrm{{BN}}}})$ points have "
            "their best $\\tilde\\eta$ at an end of their window"
            + (": " + ", ".join(f"({m}, {b})" for m, b in at_end.index) if len(at_end)
               else "")
            + f"; {len(short)} have a window that misses a side (no slow side or no "
            "failing side) or a best at an end"
            + (": " + ", ".join(f"({m}, {b})" for m, b in short.index) + "."
               if len(short) else "."))


def ghost_verdicts(runs: RunSet) -> list[Assessed]:
    """Book: "Batch norm's own batch", its claims: a small m_BN is best, and the best m_BN
    hardly depends on m, read per (m, m_BN) with the set's margin (and edges, for the
    first), in-sample, held out and on seed resamples. None without stored runs."""
    if not runs.stored:
        return []
    by = GHOST_CURVE
    return assess_together([
        (runs.label, on_bests(verdict_small_bn_batch, runs.margin, runs.edges, by=by), True),
        (runs.label, on_bests(verdict_bn_batch_independent, runs.margin, by=by), True)],
        {runs.label: runs.frame})


# ------------------------------------------------------------ "Warm-up"

def warmup_sets(warm: StudyData, plain: StudyData) -> tuple[RunSet, RunSet]:
    """Book: "Warm-up". The runs with warm-up and the headline runs without it, labelled
    "with warm-up" and "without", read under one margin (:func:`under_one_margin`)."""
    return under_one_margin(RunSet.of(warm, "with warm-up"), RunSet.of(plain, "without"))


def warmup_side_by_side(with_warmup: RunSet, without: RunSet):
    """Book: "Warm-up", "Best and range, side by side". Per set and m (the m with warm-up):
    the best eta_tilde and its accuracy, and the range within the margin of that curve's
    own best; as a styled table, with the sentence naming the margin."""
    side = {}
    for one in (with_warmup, without.only(with_warmup.batch_sizes)):
        best = one.bests[["log2_base_lr", "median"]]
        side[one.label] = best.rename(columns={"log2_base_lr": "best log2 η̃",
                                               "median": "best accuracy"}).join(
            one.ranges[["lowest", "highest", "octaves", "tried"]])
    table = pd.concat(side, names=["runs"]).rename_axis(["runs", "m"]).style.format(
        {"best accuracy": "{:.4f}"})
    return table, (f"Margin: {with_warmup.margin:.4f} (the larger of the two sets of runs' "
                   "noise margins).")


def warmup_edges(with_warmup: RunSet, without: RunSet) -> dict[str, pd.DataFrame]:
    """Book: "Warm-up", "Edges of each window": each set's edges at the m with warm-up, by
    label, read with the margin the sets share."""
    return {with_warmup.label: with_warmup.edges,
            without.label: without.only(with_warmup.batch_sizes).edges}


def warmup_verdicts(with_warmup: RunSet, without: RunSet) -> list[Assessed]:
    """Book: "Warm-up", its claims: warm-up helps large batches, and does not close the gap
    to the best small batch without it (m <= 32), read with the shared margin and each
    set's edges, in-sample, held out and on seed resamples. None unless both sets are
    stored and the runs without warm-up include a small batch."""
    if not (with_warmup.stored and without.stored
            and (without.frame["batch_size"] <= SMALL_BATCHES).any()):
        return []
    edges = warmup_edges(with_warmup, without)
    where = study_label(with_warmup.study)
    return assess_together([
        (where, warmup_reader(k, with_warmup.margin, edges[with_warmup.label],
                              edges[without.label], SMALL_BATCHES), True) for k in (0, 1)],
        {"with": with_warmup.frame, "without": without.frame})


def warmup_steps_text(study) -> str:
    """Book: "Warm-up", after its discussion. The warm-up steps of one run at each m, here
    and in the study's full protocol (where it has that m)."""
    full = study_protocol(load_study(study.name, "full"))
    scaled = study_protocol(study)
    return "Warm-up steps of one run: " + "; ".join(
        f"m = {m}: {scaled.loc[m, 'warm-up steps']} of {scaled.loc[m, 'SGD steps per run']:,} "
        f"here, {full.loc[m, 'warm-up steps']} of {full.loc[m, 'SGD steps per run']:,} in the "
        "full protocol" if m in full.index else f"m = {m}: {scaled.loc[m, 'warm-up steps']} here"
        for m in scaled.index) + "."


# ------------------------------------------------------------ "Training curves"

def curves_at_best(runs: RunSet) -> pd.DataFrame:
    """Book: "Training curves", the second figure: each m's curves at its own best
    eta_tilde (:attr:`RunSet.bests`), median over seeds."""
    return runs.curves(runs.bests["log2_base_lr"].astype(int).to_dict())


def best_lr_table(runs: RunSet):
    """Book: "Training curves": each m's best log2 eta_tilde, its median test accuracy and
    seeds, as a styled table."""
    return runs.bests[["log2_base_lr", "median", "seeds"]].rename(columns={
        "log2_base_lr": "best log2 η̃", "median": "test accuracy (median)"}).rename_axis(
        "batch size m").style.format({"test accuracy (median)": "{:.4f}"})


def last_epoch_table(curves: pd.DataFrame):
    """Book: "Training curves": the last epoch of each m's curve (``RunSet.curves``): its
    epoch, SGD steps, training loss, test accuracy and seeds, as a styled table."""
    last = (curves.sort_values("epoch").groupby("batch_size").tail(1)
            .set_index("batch_size").sort_index().rename_axis("batch size m"))
    return last[["epoch", "steps", "train_loss", "test_accuracy", "seeds"]].rename(columns={
        "steps": "SGD steps", "train_loss": "final training loss",
        "test_accuracy": "final test accuracy"}).style.format({
            "SGD steps": "{:,.0f}", "final training loss": "{:.3f}",
            "final test accuracy": "{:.4f}"})


def curves_verdicts(runs: RunSet, log2_base_lr: int) -> list[Assessed]:
    """Book: "Training curves", its claim: at a fixed eta_tilde small batches are ahead after
    the same epochs, read from the set's per-epoch records with its margin and chance, in
    sample and on seed resamples (it chooses no best: no held-out reading). None without
    curves at ``log2_base_lr``."""
    if runs.curves(log2_base_lr).empty:
        return []
    where = f"{study_label(runs.study)}, η̃ = 2^{log2_base_lr}"
    return [assess(where, curves_reader(log2_base_lr, runs.margin, runs.base.num_epochs,
                                        chance=runs.chance),
                   {where: runs.epochs}, held_out=False)]
