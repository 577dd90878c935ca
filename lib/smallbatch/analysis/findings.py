"""The book's answer in a few computed findings (book: the front page, "What the runs
say"). Each function here reads bests, verdicts or study specs and returns numbers and a
sentence; nothing is typed that the records can compute.
"""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["deficit_removed", "deficit_sentence", "scale_gap", "scale_gap_sentence"]


def deficit_removed(fixed: pd.DataFrame, equal: pd.DataFrame, reference: int,
                    margin: float) -> pd.DataFrame:
    """How much of the large-batch deficit at a fixed epoch budget equal SGD steps remove
    (book: "Budget against batch size").

    ``fixed`` and ``equal``: :func:`~smallbatch.analysis.best_per_batch` of the fixed-epoch
    study and of the equal-steps study (in which every m gets the steps of ``reference``'s
    run); ``reference`` is in both. Per larger m in both: the deficit of its best against
    the reference's best at a fixed epoch budget and at equal steps (accuracy, positive =
    behind), and the share removed, 1 - equal / fixed. The share is NaN where the
    fixed-epoch deficit is within ``margin`` (no deficit to remove beyond the noise)."""
    if reference not in fixed.index or reference not in equal.index:
        raise ValueError(f"m = {reference} must be in both studies' bests")
    rows = []
    for m in sorted(set(fixed.index) & set(equal.index)):
        if m <= reference:
            continue
        before = float(fixed.loc[reference, "median"] - fixed.loc[m, "median"])
        after = float(equal.loc[reference, "median"] - equal.loc[m, "median"])
        share = 1 - after / before if before > margin else math.nan
        rows.append({"batch_size": int(m), "fixed_epoch_deficit": before,
                     "equal_steps_deficit": after, "share_removed": share})
    return pd.DataFrame(rows, columns=["batch_size", "fixed_epoch_deficit",
                                       "equal_steps_deficit", "share_removed"]
                        ).set_index("batch_size")


def deficit_sentence(table: pd.DataFrame, reference: int) -> str:
    """:func:`deficit_removed` in one sentence."""
    shown = table.dropna(subset=["share_removed"])
    if shown.empty:
        return (f"No batch size above m = {reference} trails it by more than the noise "
                "margin at a fixed epoch budget, so there is no deficit for equal steps to "
                "remove.")
    parts = [f"{row.share_removed:.0%} at m = {m} ({100 * row.fixed_epoch_deficit:.1f} → "
             f"{100 * row.equal_steps_deficit:.1f} points)" for m, row in shown.iterrows()]
    return (f"Given the SGD steps of m = {reference}, larger batches recover "
            + ", ".join(parts) + f" of their deficit against m = {reference} at a fixed "
            "epoch budget.")


def scale_gap(pairs: dict[str, tuple]) -> pd.DataFrame:
    """How far the scaled studies are from the paper's protocol (book: "The full
    protocol"): per study name, from its (scaled, full) :class:`~smallbatch.studies.Study`
    pair, the data set, training images, epochs, network and training examples per run
    at each scale, and their ratio."""
    from ..data import train_size

    rows = []
    for name, (scaled, full) in pairs.items():
        row = {"study": name}
        for label, study in (("scaled", scaled), ("full", full)):
            base = study.base
            images = train_size(base.data, base.train_subset)
            row[f"{label} data"] = base.data
            row[f"{label} training images"] = images
            row[f"{label} epochs"] = base.num_epochs
            row[f"{label} network"] = base.model
            row[f"{label} examples per run"] = (None if images is None
                                                else images * base.num_epochs)
        scaled_examples, full_examples = row["scaled examples per run"], row[
            "full examples per run"]
        row["full / scaled examples"] = (full_examples / scaled_examples
                                         if scaled_examples and full_examples else None)
        rows.append(row)
    return pd.DataFrame(rows).set_index("study")


def scale_gap_sentence(table: pd.DataFrame, study: str) -> str:
    """One study's row of :func:`scale_gap` in one sentence."""
    row = table.loc[study]
    return (f"These runs train {row['scaled network']} on {row['scaled training images']:,} "
            f"{row['scaled data']} images for {row['scaled epochs']} epochs; the paper's "
            f"protocol trains {row['full network']} on {row['full training images']:,} "
            f"{row['full data']} images for {row['full epochs']} epochs, "
            f"{row['full / scaled examples']:.0f} times the training examples per run.")
