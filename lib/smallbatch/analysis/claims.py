"""The paper's claims and the rules that give each a verdict from stored cells (book: the
experiments chapters' claims tables). Each rule is stated in its docstring and printed by
the book beside the verdict; the caveats say how the scaled protocol differs from the
paper's in ways that bear on a claim.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["CLAIM_SMALL_BEST", "CLAIM_RANGE_SHRINKS", "CLAIM_BN_GAP", "CLAIM_SMALL_BN_BATCH",
           "CLAIM_BN_BATCH_INDEPENDENT", "CLAIM_WARMUP_HELPS", "CLAIM_WARMUP_GAP",
           "CLAIM_CURVES", "SMALL_BATCHES", "LARGE_BATCHES", "SMALL_BN_BATCH", "Verdict",
           "verdict_small_batches_best", "verdict_range_shrinks", "verdict_bn_widens_gap",
           "verdict_small_bn_batch", "verdict_bn_batch_independent", "verdict_warmup",
           "CAVEATS", "verdict_curves_small_ahead", "CLAIM_EQUAL_STEPS", "EQUAL_STEPS_SEEDS",
           "verdict_equal_steps"]


def _at_window_end(edges: pd.DataFrame | None, keys) -> list:
    """The ``keys`` (m, or (m, m_BN)) whose best sits at an end of its eta_tilde window in
    ``edges`` (:func:`edges_reached`); none without edges."""
    if edges is None:
        return []
    return [key for key in keys if key in edges.index and not edges.loc[key, "inside"]]


@dataclass(frozen=True)
class Verdict:
    """One row of a chapter's claims table."""

    claim: str        # the paper's claim, in its words where possible
    measurement: str  # what our stored results show, with numbers
    rule: str         # how the verdict follows from the measurement
    verdict: str      # "agrees", "disagrees" or "inconclusive"

    def as_row(self) -> dict[str, str]:
        return {"paper's claim": self.claim, "our measurement": self.measurement,
                "rule": self.rule, "verdict": self.verdict}


CLAIM_SMALL_BEST = "Best results at m = 2 ... 32"


CLAIM_RANGE_SHRINKS = "The range of η̃ that trains well shrinks as m grows"


CLAIM_BN_GAP = "Without batch norm the advantage of small batches is larger"


CLAIM_SMALL_BN_BATCH = "A small batch-norm batch is best (m_BN 4-8 on CIFAR-10)"


CLAIM_BN_BATCH_INDEPENDENT = "The best m_BN hardly depends on m"


CLAIM_WARMUP_HELPS = "Warm-up helps large batches"


CLAIM_WARMUP_GAP = "... but does not close the gap to small batches"


CLAIM_CURVES = ("At a fixed η̃, small batches are not behind per epoch (large batches use "
                "stale gradients; the paper's section 2 and Fig 4)")


CLAIM_EQUAL_STEPS = ("Given the same number of SGD steps, large batches reach the small-batch "
                     "best (Shallue et al. 2019; against the paper's reading)")


# For each claim: how the scaled protocol differs from the paper's in ways that bear on it.
# The book prints these beside every claim the stored runs do not confirm (see discussion()).
CAVEATS = {
    CLAIM_SMALL_BEST: (
        "the scaled runs are short runs on a subset of an easier data set than CIFAR-10 (see "
        "the protocol table): where every m comes close to the same ceiling, differences the "
        "paper saw can fall below the noise margin. The fixed epoch budget works the other "
        "way: large batches take few steps, which widens their deficit, so a large-batch best "
        "here would not be a step-budget artefact"),
    CLAIM_RANGE_SHRINKS: (
        "the count moves in whole octaves and each m's window holds only the points its grid "
        "tried: a curve that is flat across its whole window counts every point as good, "
        "however it falls off beyond (see the window-edges table). On an easy task a margin "
        "of a point or more counts many octaves as good at every m"),
    CLAIM_BN_GAP: (
        "the gap is read from the best m to the largest m, where runs at this size have few "
        "steps with or without batch norm; ResNet-8 and the reduced AlexNet are shallower "
        "than the paper's ResNet-32, and batch norm matters more the deeper the network"),
    CLAIM_SMALL_BN_BATCH: (
        "one seed and the best of a few η̃ per (m, m_BN) leave many differences within the "
        "margin (and a best at the end of its window is only a lower bound: see the edges "
        "table). The noise a small m_BN adds is a regulariser whose worth depends on how "
        "much the network overfits: less over 10 epochs of Fashion-MNIST than over 82 of "
        "CIFAR-10. Very small m_BN also makes the test-time running statistics noisier"),
    CLAIM_BN_BATCH_INDEPENDENT: (
        "one seed per point and a coarse grid of m_BN: the rule needs one m_BN within the "
        "margin of the best at every m, and a best that moves by one octave with noise "
        "can break or make that"),
    CLAIM_WARMUP_HELPS: (
        "at this size a 5% warm-up is only a handful of steps (see the protocol above), "
        "where the paper's lasted hundreds (at m = 256 to 2048, about 800 to 100 steps); "
        "and the η̃ windows were placed without warm-up (the edges table shows whether "
        "warm-up's best stays inside them)"),
    CLAIM_WARMUP_GAP: (
        "the gap is read against the best small-batch run without warm-up. How large a gap "
        "there is to close depends on the scale: on an easy data set the large batches may "
        "end within a few points of the small ones, where a short warm-up can close it; "
        "where their deficit is mostly their short step budget, warm-up, which changes only "
        "the first steps, cannot"),
    CLAIM_CURVES: (
        "at one fixed η̃ the comparison mixes the batch size with how far that η̃ is from each "
        "m's own best (the second figure draws each m at its best); and the per-epoch "
        "accuracy of one run is noisier than the median of five epochs the margin is "
        "measured on"),
    CLAIM_EQUAL_STEPS: (
        "equal steps are not equal everything: a larger m sees more epochs of the same "
        "training images (the protocol table gives them), so it can overfit where m = 32 "
        "cannot, and its score, the median of its last five epochs, spans fewer final steps; "
        "the best η̃ of every m is chosen on the test set it is scored on, which favours no "
        "m but inflates every best a little; and one network and data set at one step "
        "budget say nothing about where the critical batch lies for CIFAR-10 or ImageNet"),
}


SMALL_BATCHES = 32   # the paper's "small": m <= 32


LARGE_BATCHES = 128  # and "large": m >= 128


RANGE_MIN_BATCHES = 4  # batch sizes the range-shrinks verdict needs


def verdict_small_batches_best(best: pd.DataFrame, margin: float,
                               edges: pd.DataFrame | None = None) -> Verdict:
    """Claim: the best test accuracy comes from small batches (m = 2 ... 32).

    Rule: agrees if the overall best cell is at m <= 32 and every m >= 128 is more than the
    margin below it; disagrees if the best is at m >= 128 and every m <= 32 is more than the
    margin below; otherwise inconclusive. With ``edges`` (:func:`edges_reached`), a side
    whose bests are read as too low must have them inside their windows (at a window's end
    the optimum may lie beyond it): else the verdict is inconclusive and says which m.
    """
    top_m = int(best["median"].idxmax())
    top = float(best["median"].max())
    small = best[best.index <= SMALL_BATCHES]["median"]
    large = best[best.index >= LARGE_BATCHES]["median"]
    if small.empty or large.empty:
        return Verdict(CLAIM_SMALL_BEST, "needs both m <= 32 and m >= 128",
                       _SMALL_RULE, "inconclusive")
    large_top_m = int(large.idxmax())
    measurement = (f"best m = {top_m} ({top:.4f}); best m >= {LARGE_BATCHES}: "
                   f"m = {large_top_m} ({large.max():.4f}); margin {margin:.4f}")

    verdict = "inconclusive"
    if top_m <= SMALL_BATCHES and (top - large.max()) > margin:
        verdict, unsure = "agrees", _at_window_end(edges, [int(m) for m in large.index])
    elif top_m >= LARGE_BATCHES and (top - small.max()) > margin:
        verdict, unsure = "disagrees", _at_window_end(edges, [int(m) for m in small.index])
    if verdict != "inconclusive" and unsure:
        measurement += (f"; but the best of m = {', '.join(map(str, unsure))} is at an end of "
                        "its η̃ window, so it may be higher beyond it")
        verdict = "inconclusive"
    return Verdict(CLAIM_SMALL_BEST, measurement, _SMALL_RULE, verdict)


_SMALL_RULE = ("agrees if the best m is <= 32 and every m >= 128 is more than the margin "
               "below it; disagrees if the best m is >= 128 and every m <= 32 is more than "
               "the margin below it; else inconclusive (also when a best read as lower sits "
               "at an end of its η̃ window)")


def verdict_range_shrinks(ranges: pd.DataFrame) -> Verdict:
    """Claim: the range of eta_tilde that trains well shrinks as m grows.

    Measurement: for each m, the number of grid points (octaves) whose median is within the
    margin of that m's own best (``good_range(..., reference="own")``). Rule: Spearman rank
    correlation rho between m and that count; agrees if rho <= -0.5 and the count at the
    largest m is below the count at the smallest; disagrees if rho >= 0.5; else
    inconclusive. Inconclusive too with fewer than RANGE_MIN_BATCHES batch sizes, or without
    both an m <= 32 and an m >= 128 (a trend over a few neighbouring m is not the claim).
    """
    counts = ranges["octaves"].astype(float)
    sizes = ranges.index.to_numpy(dtype=float)
    rho = _spearman(np.log2(sizes), counts.to_numpy())
    listing = ", ".join(f"{int(m)}: {int(c)}" for m, c in counts.items())
    measurement = (f"octaves within the margin of each m's best (m: count): {listing}; "
                   f"rho = {rho:.2f}")
    rule = ("Spearman rho between m and the count: agrees if rho <= -0.5 and the largest m "
            "has fewer than the smallest; disagrees if rho >= 0.5; else inconclusive (also "
            f"with fewer than {RANGE_MIN_BATCHES} m, or without both an m <= 32 and an "
            "m >= 128)")
    if (len(sizes) < RANGE_MIN_BATCHES or not (sizes <= SMALL_BATCHES).any()
            or not (sizes >= LARGE_BATCHES).any()):
        verdict = "inconclusive"
    elif rho <= -0.5 and counts.iloc[-1] < counts.iloc[0]:
        verdict = "agrees"
    elif rho >= 0.5:
        verdict = "disagrees"
    else:
        verdict = "inconclusive"
    return Verdict(CLAIM_RANGE_SHRINKS, measurement, rule,
                   verdict)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); nan if either is constant."""
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if np.std(rx) == 0 or np.std(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def verdict_bn_widens_gap(with_bn: pd.DataFrame, without_bn: pd.DataFrame,
                          margin: float) -> Verdict:
    """Claim: without batch norm the advantage of small batches is larger.

    Measurement: for each study the drop from its best accuracy (over all m) to the best at
    its largest m. Rule: agrees if the drop without BN exceeds the drop with BN by more than
    the margin; disagrees if the drop with BN exceeds it by more than the margin; else
    inconclusive.
    """
    def drop(best: pd.DataFrame) -> tuple[float, int]:
        largest = int(best.index.max())
        return float(best["median"].max() - best.loc[largest, "median"]), largest

    (drop_bn, m_bn), (drop_none, m_none) = drop(with_bn), drop(without_bn)
    measurement = (f"drop from the best to the best at m = {m_bn}: {drop_bn:.4f} with BN; "
                   f"to m = {m_none} without BN: {drop_none:.4f}; margin {margin:.4f}")
    rule = ("agrees if the drop without BN exceeds the drop with BN by more than the margin; "
            "disagrees if the reverse; else inconclusive")
    if drop_none - drop_bn > margin:
        verdict = "agrees"
    elif drop_bn - drop_none > margin:
        verdict = "disagrees"
    else:
        verdict = "inconclusive"
    return Verdict(CLAIM_BN_GAP, measurement,
                   rule, verdict)


def verdict_curves_small_ahead(curves: pd.DataFrame, margin: float, num_epochs: int,
                               chance: float = 0.1) -> Verdict:
    """Claim: at a fixed eta_tilde small batches are not behind per epoch.

    ``curves``: :func:`curves_by_batch` at one eta_tilde. Measurement: the test accuracy after
    the last epoch (``num_epochs``) of the best m <= 32 and of the best m >= 128 (median over
    seeds; a curve that ends early diverged and counts as chance), and the number of epochs
    in which the best small m is ahead by more than the margin. Rule: agrees if the best
    small m is ahead at the last epoch by more than the margin; disagrees if the best large
    m is; else inconclusive.
    """
    rule = ("agrees if the best m <= 32 is ahead of the best m >= 128 after the last epoch by "
            "more than the margin; disagrees if the reverse; else inconclusive")
    table = curves.pivot_table(index="epoch", columns="batch_size", values="test_accuracy")
    table = table.reindex(range(1, num_epochs + 1))
    # a curve that stops before the last epoch diverged there: chance from then on
    table = table.apply(lambda col: col.where(col.index <= col.last_valid_index(), chance)
                        if col.last_valid_index() is not None else col)
    small = table[[m for m in table.columns if m <= SMALL_BATCHES]]
    large = table[[m for m in table.columns if m >= LARGE_BATCHES]]
    if small.empty or large.empty or table.empty:
        return Verdict(CLAIM_CURVES, "needs curves at both m <= 32 and m >= 128", rule,
                       "inconclusive")
    best_small, best_large = small.max(axis=1), large.max(axis=1)
    lead = best_small - best_large
    final = lead.iloc[-1]
    ahead = int((lead > margin).sum())
    measurement = (f"after epoch {num_epochs}: best m <= {SMALL_BATCHES} "
                   f"(m = {int(small.iloc[-1].idxmax())}) {best_small.iloc[-1]:.4f}, best "
                   f"m >= {LARGE_BATCHES} (m = {int(large.iloc[-1].idxmax())}) "
                   f"{best_large.iloc[-1]:.4f}; small ahead by more than the margin in "
                   f"{ahead} of {len(lead)} epochs; margin {margin:.4f}")
    verdict = ("agrees" if final > margin else "disagrees" if final < -margin
               else "inconclusive")
    return Verdict(CLAIM_CURVES, measurement, rule, verdict)


SMALL_BN_BATCH = 16  # "small" m_BN: the paper's best was 4-8 on CIFAR, 16-64 on ImageNet


def verdict_small_bn_batch(table: pd.DataFrame, margin: float,
                           edges: pd.DataFrame | None = None) -> Verdict:
    """Claim: a small batch-norm batch is best (m_BN about 4-8 on CIFAR-10).

    Measurement: at each m, the best m_BN and the gain of the best m_BN <= 16 over ordinary
    batch norm (m_BN = m). Rule: agrees if that gain exceeds the margin at every m;
    disagrees if ordinary batch norm beats every m_BN <= 16 by more than the margin at
    every m; else inconclusive. With ``edges`` (:func:`edges_reached` by (m, m_BN)), the
    losing side's points must have their best inside their eta_tilde windows, else the
    verdict is inconclusive and names them.
    """
    gains, parts, losers = [], [], {"agrees": [], "disagrees": []}
    for m, rows in table.groupby(level="batch_size"):
        rows = rows.droplevel("batch_size")
        small = rows[rows.index <= SMALL_BN_BATCH]["median"]
        if small.empty or m not in rows.index:
            continue
        gain = float(small.max() - rows.loc[m, "median"])
        gains.append(gain)
        losers["agrees"].append((m, m))  # ordinary batch norm loses if the claim holds
        losers["disagrees"] += [(m, int(b)) for b in small.index]
        parts.append(f"m = {m}: best m_BN = {int(rows['median'].idxmax())}, gain of the best "
                     f"m_BN <= {SMALL_BN_BATCH} over m_BN = m: {gain:+.4f}")
    rule = (f"agrees if the best m_BN <= {SMALL_BN_BATCH} beats m_BN = m by more than the "
            "margin at every m; disagrees if m_BN = m beats them all by more than the margin "
            "at every m; else inconclusive (also when a losing point's best sits at an end "
            "of its η̃ window)")
    if not gains:
        return Verdict(CLAIM_SMALL_BN_BATCH,
                       "no m with both small m_BN and m_BN = m stored", rule, "inconclusive")
    measurement = "; ".join(parts) + f"; margin {margin:.4f}"
    verdict = ("agrees" if all(g > margin for g in gains) else
               "disagrees" if all(g < -margin for g in gains) else "inconclusive")
    if verdict != "inconclusive":
        unsure = _at_window_end(edges, losers[verdict])
        if unsure:
            measurement += ("; but the best η̃ of (m, m_BN) = "
                            + ", ".join(f"({m}, {b})" for m, b in unsure)
                            + " is at an end of its window, so it may be higher beyond it")
            verdict = "inconclusive"
    return Verdict(CLAIM_SMALL_BN_BATCH, measurement, rule, verdict)


def verdict_bn_batch_independent(table: pd.DataFrame, margin: float) -> Verdict:
    """Claim: the best m_BN hardly depends on the overall batch size m.

    Rule: agrees if some m_BN is within the margin of the best at every m (that m_BN is
    listed); disagrees if none is; inconclusive with fewer than two m.
    """
    near = {}
    for m, rows in table.groupby(level="batch_size"):
        rows = rows.droplevel("batch_size")
        near[m] = set(rows[rows["median"] >= rows["median"].max() - margin].index)
    rule = ("agrees if one m_BN is within the margin of the best at every m; disagrees if "
            "none is; inconclusive with fewer than two m")
    listing = "; ".join(f"m = {m}: {sorted(int(b) for b in s)}" for m, s in near.items())
    if len(near) < 2:
        return Verdict(CLAIM_BN_BATCH_INDEPENDENT, listing or "no data", rule,
                       "inconclusive")
    common = set.intersection(*near.values())
    measurement = (f"m_BN within the margin ({margin:.4f}) of each m's best: {listing}; "
                   f"common to all: {sorted(int(b) for b in common) or 'none'}")
    return Verdict(CLAIM_BN_BATCH_INDEPENDENT, measurement, rule,
                   "agrees" if common else "disagrees")


def verdict_warmup(with_warmup: pd.DataFrame, without: pd.DataFrame, small_best: float,
                   margin: float, edges_with: pd.DataFrame | None = None,
                   edges_without: pd.DataFrame | None = None) -> list[Verdict]:
    """Claims: warm-up helps large batches, but does not close the gap to small batches.

    ``with_warmup`` / ``without``: ``best_per_batch`` tables at the same large m;
    ``small_best``: the best median accuracy over m <= 32 without warm-up.

    Rules: "helps" agrees if warm-up's best beats the best without by more than the margin
    at every m, disagrees if it is worse by more than the margin at some m, else
    inconclusive. "does not close the gap" agrees if small_best exceeds warm-up's best by
    more than the margin at every m, disagrees if it does not at any m, else inconclusive.
    With ``edges_with`` / ``edges_without`` (:func:`edges_reached` of each set of runs), an
    "agrees" or "disagrees" that rests on a losing best at an end of its eta_tilde window
    (where it may be higher beyond the window) becomes inconclusive and names it.
    """
    sizes = sorted(set(with_warmup.index) & set(without.index))
    gains = {m: float(with_warmup.loc[m, "median"] - without.loc[m, "median"]) for m in sizes}
    gaps = {m: float(small_best - with_warmup.loc[m, "median"]) for m in sizes}
    end_note = " (also when a losing best sits at an end of its η̃ window)"
    helps_rule = ("agrees if warm-up's best beats the best without by more than the margin "
                  "at every m; disagrees if it is worse by more than the margin at some m; "
                  "else inconclusive" + end_note)
    gap_rule = ("agrees if the best at m <= 32 (no warm-up) beats warm-up's best by more than "
                "the margin at every m; disagrees if at no m; else inconclusive" + end_note)
    if not sizes:
        return [Verdict(CLAIM_WARMUP_HELPS, "no common m stored", helps_rule,
                        "inconclusive"),
                Verdict(CLAIM_WARMUP_GAP, "no common m stored", gap_rule,
                        "inconclusive")]

    helps = ("agrees" if all(g > margin for g in gains.values()) else
             "disagrees" if any(g < -margin for g in gains.values()) else "inconclusive")
    helps_measurement = ("; ".join(f"m = {m}: {with_warmup.loc[m, 'median']:.4f} with, "
                                   f"{without.loc[m, 'median']:.4f} without ({gains[m]:+.4f})"
                                   for m in sizes) + f"; margin {margin:.4f}")
    unsure = (_at_window_end(edges_without, sizes) if helps == "agrees" else
              _at_window_end(edges_with, [m for m in sizes if gains[m] < -margin])
              if helps == "disagrees" else [])
    if unsure:
        side = "without" if helps == "agrees" else "with"
        helps_measurement += (f"; but the best η̃ {side} warm-up at m = "
                              + ", ".join(map(str, unsure))
                              + " is at an end of its window, so it may be higher beyond it")
        helps = "inconclusive"
    closed = ("agrees" if all(g > margin for g in gaps.values()) else
              "disagrees" if all(g <= margin for g in gaps.values()) else "inconclusive")
    gap_measurement = (f"best at m <= 32 without warm-up {small_best:.4f}; "
                       + "; ".join(f"m = {m} with warm-up: gap {gaps[m]:+.4f}" for m in sizes))
    unsure = _at_window_end(edges_with, sizes) if closed == "agrees" else []
    if unsure:
        gap_measurement += ("; but the best η̃ with warm-up at m = " + ", ".join(map(str, unsure))
                            + " is at an end of its window, so it may be higher beyond it")
        closed = "inconclusive"
    return [Verdict(CLAIM_WARMUP_HELPS, helps_measurement, helps_rule, helps),
            Verdict(CLAIM_WARMUP_GAP, gap_measurement, gap_rule, closed)]


EQUAL_STEPS_SEEDS = 3  # seeds a best cell needs before the equal-steps verdict reads it


def verdict_equal_steps(best: pd.DataFrame, reference: int, margin: float,
                        edges: pd.DataFrame | None = None,
                        min_seeds: int = EQUAL_STEPS_SEEDS) -> tuple[Verdict, dict]:
    """Claim: given the same number of SGD steps, large batches reach the small-batch best.

    ``best``: :func:`best_per_batch` of a study in which every m trains the same number of
    steps; ``reference``: the small batch size whose best is the bar (m = 32: the run
    whose steps every m was given). For every larger m, d = its best median less the
    reference's best median. Per m:

    - "cannot decide" if that m or the reference has fewer than ``min_seeds`` seeds at its
      best cell, or (with ``edges``) its best, or the reference's, sits at an end of its
      eta_tilde window (the optimum may lie beyond);
    - "agrees" if d > margin (the large batch passes the small-batch best);
    - "disagrees" if d < -margin (a large-batch deficit remains at equal steps);
    - "equivalent within the noise margin" if |d| <= margin.

    Overall: "disagrees" if any m disagrees (a deficit that survives equal steps refutes
    the claim for that m); else "cannot decide" if any m cannot; else "agrees" if every m
    agrees; else "equivalent within the noise margin". Returns the Verdict and the per-m
    outcomes ({m: (d, outcome)}).
    """
    rule = (f"for each m above {reference}: d = its best less the best of m = {reference}; "
            f"cannot decide if either best has fewer than {min_seeds} seeds or sits at an end "
            "of its η̃ window; else agrees if d > margin, disagrees if d < -margin, "
            "equivalent within the noise margin if |d| <= margin. Overall: disagrees if any "
            "m disagrees, else cannot decide if any m cannot, else agrees if all agree, else "
            "equivalent")
    larger = [int(m) for m in best.index if m > reference]
    if reference not in best.index or not larger:
        return (Verdict(CLAIM_EQUAL_STEPS, f"needs m = {reference} and a larger m", rule,
                        "cannot decide"), {})
    bar = float(best.loc[reference, "median"])

    def unsure(m) -> str | None:
        if best.loc[m, "seeds"] < min_seeds:
            return f"{int(best.loc[m, 'seeds'])} of {min_seeds} seeds"
        if _at_window_end(edges, [m]):
            return "best at an end of its η̃ window"
        return None

    outcomes, parts = {}, []
    reference_unsure = unsure(reference)
    for m in larger:
        d = float(best.loc[m, "median"]) - bar
        why = unsure(m) or (f"m = {reference}: {reference_unsure}" if reference_unsure
                            else None)
        outcome = ("cannot decide" if why else "agrees" if d > margin else
                   "disagrees" if d < -margin else "equivalent within the noise margin")
        outcomes[m] = (d, outcome)
        parts.append(f"m = {m}: {best.loc[m, 'median']:.4f} ({d:+.4f}; {outcome}"
                     + (f": {why}" if why else "") + ")")
    kinds = {outcome for _, outcome in outcomes.values()}
    overall = ("disagrees" if "disagrees" in kinds else
               "cannot decide" if "cannot decide" in kinds else
               "agrees" if kinds == {"agrees"} else "equivalent within the noise margin")
    measurement = (f"best of m = {reference}: {bar:.4f}; " + "; ".join(parts)
                   + f"; margin {margin:.4f}")
    return Verdict(CLAIM_EQUAL_STEPS, measurement, rule, overall), outcomes
