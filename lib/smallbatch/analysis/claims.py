"""The paper's claims and the rules that give each a verdict from stored cells (book: the
experiments chapters' claims tables). Each rule is stated in its docstring and printed by
the book beside the verdict; the caveats say how the scaled protocol differs from the
paper's in ways that bear on a claim, whatever its verdict.

Every verdict is one of four outcomes (``OUTCOMES``): the runs agree with the claim, they
disagree, they find no difference larger than the noise margin (which counts against a
claimed advantage or effect), or they cannot decide: too few seeds behind a best that the
outcome rests on (``MIN_SEEDS``), a best at an end of its eta_tilde window where a better
value beyond it could change the outcome (or, for the range of eta_tilde, a window that
misses a side), too few points, or a premise of the claim not met (warm-up's gap is read
only where warm-up helps). A claim that an effect
exists, or that something does not depend on it, never agrees on records in which the
effect is absent: each rule has a test that feeds it such records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["CLAIM_SMALL_BEST", "CLAIM_SMALLEST_BEST", "CLAIM_RANGE_SHRINKS", "CLAIM_BN_GAP",
           "CLAIM_SMALL_BN_BATCH", "CLAIM_BN_BATCH_INDEPENDENT", "CLAIM_WARMUP_HELPS",
           "CLAIM_WARMUP_GAP", "CLAIM_CURVES", "SMALL_BATCHES", "LARGE_BATCHES",
           "SMALLEST_BATCHES", "SMALL_BN_BATCH", "Verdict", "AGREES", "DISAGREES",
           "EQUIVALENT", "CANNOT_DECIDE", "OUTCOMES", "MIN_SEEDS",
           "verdict_small_batches_best", "verdict_smallest_best", "verdict_range_shrinks",
           "verdict_bn_widens_gap", "verdict_small_bn_batch", "verdict_bn_batch_independent",
           "verdict_warmup", "CAVEATS", "verdict_curves_small_ahead", "CLAIM_EQUAL_STEPS",
           "EQUAL_STEPS_SEEDS", "verdict_equal_steps"]


AGREES, DISAGREES = "agrees", "disagrees"
EQUIVALENT = "equivalent within the noise margin"
CANNOT_DECIDE = "cannot decide"
OUTCOMES = (AGREES, DISAGREES, EQUIVALENT, CANNOT_DECIDE)


MIN_SEEDS = 3  # seeds a best needs before a verdict that rests on it is read


def _at_window_end(edges: pd.DataFrame | None, keys) -> list:
    """The ``keys`` (m, or (m, m_BN)) whose best sits at an end of its eta_tilde window in
    ``edges`` (:func:`edges_reached`); none without edges."""
    if edges is None:
        return []
    return [key for key in keys if key in edges.index and not edges.loc[key, "inside"]]


def _compare(d: float, margin: float) -> str:
    """Agrees if d > margin, disagrees if d < -margin, else equivalent within the margin."""
    return AGREES if d > margin else DISAGREES if d < -margin else EQUIVALENT


def _key_text(key) -> str:
    return f"({', '.join(str(int(k)) for k in key)})" if isinstance(key, tuple) else str(int(key))


def _unsure(best: pd.DataFrame, keys, edges: pd.DataFrame | None, min_seeds: int) -> str | None:
    """Why a verdict resting on the bests ``keys`` of ``best`` cannot be read, or None: one of
    them has fewer than ``min_seeds`` seeds, or (with ``edges``) sits at an end of its
    eta_tilde window, where it may be higher beyond it."""
    keys = list(dict.fromkeys(keys))
    few = [k for k in keys if k in best.index and best.loc[k, "seeds"] < min_seeds]
    if few:
        return ("fewer than {} seeds at the best of {}".format(
            min_seeds, ", ".join(f"{_key_text(k)} ({int(best.loc[k, 'seeds'])})" for k in few)))
    ends = _at_window_end(edges, keys)
    if ends:
        return ("the best of " + ", ".join(_key_text(k) for k in ends)
                + " is at an end of its η̃ window, so it may be higher beyond it")
    return None


def _combine(outcomes) -> str:
    """One verdict for a claim made at every m from its outcome at each: disagrees if any m
    disagrees; else cannot decide if any m cannot; else agrees if every m agrees; else
    equivalent within the margin (the claimed effect is not there at every m)."""
    kinds = set(outcomes)
    if not kinds:
        return CANNOT_DECIDE
    return (DISAGREES if DISAGREES in kinds else CANNOT_DECIDE if CANNOT_DECIDE in kinds
            else AGREES if kinds == {AGREES} else EQUIVALENT)


_UNSURE_RULE = (f"cannot decide if a best the outcome rests on has fewer than {MIN_SEEDS} "
                "seeds or sits at an end of its η̃ window")


@dataclass(frozen=True)
class Verdict:
    """One row of a chapter's claims table."""

    claim: str        # the paper's claim, in its words where possible
    measurement: str  # what our stored results show, with numbers
    rule: str         # how the verdict follows from the measurement
    verdict: str      # one of OUTCOMES

    def __post_init__(self):
        if self.verdict not in OUTCOMES:
            raise ValueError(f"verdict {self.verdict!r} is not one of {OUTCOMES}")

    def as_row(self) -> dict[str, str]:
        return {"paper's claim": self.claim, "our measurement": self.measurement,
                "rule": self.rule, "verdict": self.verdict}


CLAIM_SMALL_BEST = "Best results at m = 2 ... 32"


CLAIM_SMALLEST_BEST = "... often at m = 2 or 4"


CLAIM_RANGE_SHRINKS = "The range of η̃ that trains well shrinks as m grows"


CLAIM_BN_GAP = "Without batch norm the advantage of small batches is larger"


CLAIM_SMALL_BN_BATCH = "A small batch-norm batch is best (m_BN 4-8 on CIFAR-10)"


CLAIM_BN_BATCH_INDEPENDENT = "The best m_BN hardly depends on m"


CLAIM_WARMUP_HELPS = "Warm-up helps large batches"


CLAIM_WARMUP_GAP = "... but does not close the gap to small batches"


CLAIM_CURVES = ("At a fixed η̃, small batches are ahead after the same number of epochs "
                "(large batches use stale gradients; the paper's section 2 and Fig 4)")


CLAIM_EQUAL_STEPS = ("Given the same number of SGD steps, large batches reach the small-batch "
                     "best (Shallue et al. 2019; against the paper's reading)")


_STEP_BUDGET = (
    "every m trains the same epochs, so a larger m takes fewer SGD steps (the protocol table "
    "gives them): a large-batch deficit here can be too few updates rather than the batch "
    "size as such, and the equal-steps study of the budget chapter tests exactly that")

_SELECTION = (
    "each m's best η̃ is chosen on the test set it is scored on, which inflates every best a "
    "little (a winner's curse over the η̃ tried that the margin does not cover); the held-out "
    "reading chooses on other seeds than it scores, but every seed is scored on the same "
    "test images, so a choice fitted to those images is not held out")


# For each claim: how the scaled protocol differs from the paper's in ways that bear on it,
# whatever the verdict. The book prints each beside every verdict of its claim, agreeing
# ones first (see report.discussion()).
CAVEATS = {
    CLAIM_SMALL_BEST: (
        f"{_STEP_BUDGET}. The scaled runs are short runs on a subset of an easier data set "
        "than CIFAR-10 (see the protocol table): where every m comes close to the same "
        f"ceiling, differences the paper saw can fall below the noise margin. And {_SELECTION}"),
    CLAIM_SMALLEST_BEST: (
        f"{_STEP_BUDGET}; m = 2 and 4 take the most steps of all. Neighbouring m are often "
        f"within the margin of each other. And {_SELECTION}"),
    CLAIM_RANGE_SHRINKS: (
        "the count moves in whole octaves and each m's window holds only the points its grid "
        "tried: a curve that is flat across its whole window counts every point as good, "
        "however it falls off beyond (see the window-edges table). On an easy task a margin "
        "of a point or more counts many octaves as good at every m; and at a fixed epoch "
        "budget a large m has few steps in which a poor η̃ can still recover"),
    CLAIM_BN_GAP: (
        f"the gap is read from the best m to the largest m; {_STEP_BUDGET}, with or without "
        "batch norm. ResNet-8 and the reduced AlexNet are shallower than the paper's "
        "ResNet-32, and batch norm matters more the deeper the network"),
    CLAIM_SMALL_BN_BATCH: (
        "the best of a few η̃ per (m, m_BN) leaves many differences within the margin (and a "
        "best at the end of its window is only a lower bound: see the edges table). The "
        "noise a small m_BN adds is a regulariser whose worth depends on how much the "
        "network overfits: less over 10 epochs of Fashion-MNIST than over 82 of CIFAR-10. "
        "Very small m_BN also makes the test-time running statistics noisier"),
    CLAIM_BN_BATCH_INDEPENDENT: (
        "a coarse grid of m_BN and a margin of a point or more: where the curves are flat "
        "over most m_BN, many m_BN are within the margin at every m, and the claim is then "
        "a statement about the few m_BN that are not (the measurement names the worst at "
        "each m)"),
    CLAIM_WARMUP_HELPS: (
        "at this size a 5% warm-up is only a handful of steps, where the paper's lasted "
        "hundreds (the chapter computes both from the study's scaled and full protocols); "
        "and the η̃ windows were placed without warm-up (the edges table shows whether "
        "warm-up's best stays inside them)"),
    CLAIM_WARMUP_GAP: (
        "the gap is read against the best small-batch run without warm-up, and only at the m "
        "where warm-up helped (elsewhere there is no narrowing to test). Where the deficit "
        "of a large batch is mostly its short step budget, warm-up, which changes only the "
        "first steps, cannot close it"),
    CLAIM_CURVES: (
        "at one fixed η̃ the comparison mixes the batch size with how far that η̃ is from each "
        "m's own best (the second figure draws each m at its best); and the per-epoch "
        "accuracy of one run is noisier than the median of five epochs the margin is "
        "measured on"),
    CLAIM_EQUAL_STEPS: (
        "equal steps are not equal everything: a larger m sees more epochs of the same "
        "training images (the protocol table gives them), so it can overfit where m = 32 "
        "cannot, and its score, the median of its last five epochs, spans fewer final steps; "
        f"{_SELECTION}; and one network and data set at one step budget say nothing about "
        "where the critical batch lies for CIFAR-10 or ImageNet"),
}


SMALL_BATCHES = 32   # the paper's "small": m <= 32


LARGE_BATCHES = 128  # and "large": m >= 128


SMALLEST_BATCHES = 4  # "often m = 2 or 4"


RANGE_MIN_BATCHES = 4  # batch sizes the range-shrinks verdict needs


_SMALL_RULE = (f"S: the best over m <= {SMALL_BATCHES}, L: over m >= {LARGE_BATCHES}, O: over "
               f"every m > {SMALL_BATCHES}. Disagrees if O beats S by more than the margin; "
               "else agrees if S beats L by more than the margin; else equivalent within the "
               "margin; " + _UNSURE_RULE)


def verdict_small_batches_best(best: pd.DataFrame, margin: float,
                               edges: pd.DataFrame | None = None,
                               min_seeds: int = MIN_SEEDS) -> Verdict:
    """Claim: the best test accuracy comes from small batches (m = 2 ... 32).

    ``best``: :func:`best_per_batch`. Rule: with S the best over m <= 32, L the best over
    m >= 128 and O the best over every m > 32: disagrees if O beats S by more than the
    margin; else agrees if S beats L by more than the margin; else equivalent within the
    margin. Cannot decide without both an m <= 32 and an m >= 128, or if a best the outcome
    rests on has fewer than ``min_seeds`` seeds or (with ``edges``, :func:`edges_reached`)
    sits at an end of its eta_tilde window: for "agrees" every m >= 128, for "disagrees"
    the best m <= 32, for "equivalent" both.
    """
    small = best[best.index <= SMALL_BATCHES]["median"]
    large = best[best.index >= LARGE_BATCHES]["median"]
    other = best[best.index > SMALL_BATCHES]["median"]
    if small.empty or large.empty:
        return Verdict(CLAIM_SMALL_BEST,
                       f"needs both m <= {SMALL_BATCHES} and m >= {LARGE_BATCHES}",
                       _SMALL_RULE, CANNOT_DECIDE)
    m_s, m_l, m_o = int(small.idxmax()), int(large.idxmax()), int(other.idxmax())
    top_m = int(best["median"].idxmax())
    measurement = (f"best m = {top_m} ({best['median'].max():.4f}); best m <= {SMALL_BATCHES}: "
                   f"m = {m_s} ({small.max():.4f}); best m >= {LARGE_BATCHES}: m = {m_l} "
                   f"({large.max():.4f}); margin {margin:.4f}")
    large_ms = [int(m) for m in large.index]
    if other.max() - small.max() > margin:
        verdict, compared, losing = DISAGREES, [m_s, m_o], [m_s]
    else:
        verdict = AGREES if small.max() - large.max() > margin else EQUIVALENT
        compared = [m_s, m_l]
        losing = large_ms if verdict == AGREES else [m_s] + large_ms
    why = _unsure(best, compared, None, min_seeds) or _unsure(best, losing, edges, 0)
    if why:
        measurement += f"; but {why}"
        verdict = CANNOT_DECIDE
    return Verdict(CLAIM_SMALL_BEST, measurement, _SMALL_RULE, verdict)


def verdict_smallest_best(best: pd.DataFrame, margin: float,
                          edges: pd.DataFrame | None = None,
                          min_seeds: int = MIN_SEEDS) -> Verdict:
    """Claim: the best is often at m = 2 or 4 (read per set of runs: is it here?).

    Rule: with T the best over m <= 4 and R the best over every m > 4: agrees if T beats R
    by more than the margin; disagrees if R beats T by more than the margin; else
    equivalent within the margin. Cannot decide without both sides, or if one of the two
    bests has fewer than ``min_seeds`` seeds, or (with ``edges``) the losing best sits at
    an end of its window (both, for "equivalent").
    """
    rule = (f"T: the best over m <= {SMALLEST_BATCHES}, R: over every larger m. Agrees if T "
            "beats R by more than the margin, disagrees if R beats T by more than the "
            "margin, else equivalent within the margin; " + _UNSURE_RULE)
    low = best[best.index <= SMALLEST_BATCHES]["median"]
    rest = best[best.index > SMALLEST_BATCHES]["median"]
    if low.empty or rest.empty:
        return Verdict(CLAIM_SMALLEST_BEST, f"needs m <= {SMALLEST_BATCHES} and a larger m",
                       rule, CANNOT_DECIDE)
    m_t, m_r = int(low.idxmax()), int(rest.idxmax())
    d = float(low.max() - rest.max())
    verdict = _compare(d, margin)
    measurement = (f"best m <= {SMALLEST_BATCHES}: m = {m_t} ({low.max():.4f}); best larger m: "
                   f"m = {m_r} ({rest.max():.4f}); difference {d:+.4f}; margin {margin:.4f}")
    losing = {AGREES: [m_r], DISAGREES: [m_t], EQUIVALENT: [m_t, m_r]}[verdict]
    why = _unsure(best, [m_t, m_r], None, min_seeds) or _unsure(best, losing, edges, 0)
    if why:
        measurement += f"; but {why}"
        verdict = CANNOT_DECIDE
    return Verdict(CLAIM_SMALLEST_BEST, measurement, rule, verdict)


def verdict_range_shrinks(ranges: pd.DataFrame, edges: pd.DataFrame | None = None,
                          seeds: pd.Series | None = None,
                          min_seeds: int = MIN_SEEDS) -> Verdict:
    """Claim: the range of eta_tilde that trains well shrinks as m grows.

    Measurement: for each m, the number of grid points (octaves) whose median is within the
    margin of that m's own best (``good_range(..., reference="own")``). Rule: Spearman rank
    correlation rho between m and that count; agrees if rho <= -0.5 and the count at the
    largest m is below the count at the smallest; disagrees if rho >= 0.5 and the count at
    the largest m is above; else equivalent within the margin (no trend, including counts
    that are all equal). Cannot decide with fewer than RANGE_MIN_BATCHES batch sizes,
    without both an m <= 32 and an m >= 128 (a trend over a few neighbouring m is not the
    claim), if (``seeds``: seeds at each m's best) a best has fewer than ``min_seeds``, or
    if (with ``edges``) a window the outcome reads as narrow misses a side (its count is
    then a lower bound): for "agrees" the m >= 128, for "disagrees" the m <= 32, for
    "equivalent" every m.
    """
    counts = ranges["octaves"].astype(float)
    sizes = ranges.index.to_numpy(dtype=float)
    rho = _spearman(np.log2(sizes), counts.to_numpy())
    listing = ", ".join(f"{int(m)}: {int(c)}" for m, c in counts.items())
    measurement = (f"octaves within the margin of each m's best (m: count): {listing}; "
                   f"rho = {rho:.2f}")
    rule = ("Spearman rho between m and the count: agrees if rho <= -0.5 and the largest m "
            "has fewer than the smallest; disagrees if rho >= 0.5 and it has more; else "
            f"equivalent within the margin (no trend); cannot decide with fewer than "
            f"{RANGE_MIN_BATCHES} m, without both an m <= {SMALL_BATCHES} and an "
            f"m >= {LARGE_BATCHES}, with fewer than {MIN_SEEDS} seeds at a best, or when a "
            "window read as narrow misses a side")
    if (len(sizes) < RANGE_MIN_BATCHES or not (sizes <= SMALL_BATCHES).any()
            or not (sizes >= LARGE_BATCHES).any()):
        return Verdict(CLAIM_RANGE_SHRINKS, measurement, rule, CANNOT_DECIDE)
    if rho <= -0.5 and counts.iloc[-1] < counts.iloc[0]:
        verdict, narrow = AGREES, [int(m) for m in sizes if m >= LARGE_BATCHES]
    elif rho >= 0.5 and counts.iloc[-1] > counts.iloc[0]:
        verdict, narrow = DISAGREES, [int(m) for m in sizes if m <= SMALL_BATCHES]
    else:
        verdict, narrow = EQUIVALENT, [int(m) for m in sizes]
    few = [] if seeds is None else [int(m) for m, n in seeds.items() if n < min_seeds]
    cut = [] if edges is None else [m for m in narrow if m in edges.index and not (
        edges.loc[m, "slow_side"] and edges.loc[m, "failing_side"])]
    if few:
        measurement += (f"; but fewer than {min_seeds} seeds at the best of m = "
                        + ", ".join(map(str, few)))
        verdict = CANNOT_DECIDE
    elif cut:
        measurement += ("; but the window of m = " + ", ".join(map(str, cut))
                        + " misses a side, so its count is a lower bound")
        verdict = CANNOT_DECIDE
    return Verdict(CLAIM_RANGE_SHRINKS, measurement, rule, verdict)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); nan if either is constant."""
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if np.std(rx) == 0 or np.std(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def verdict_bn_widens_gap(with_bn: pd.DataFrame, without_bn: pd.DataFrame,
                          margin: float, min_seeds: int = MIN_SEEDS) -> Verdict:
    """Claim: without batch norm the advantage of small batches is larger.

    Measurement: for each study the drop from its best accuracy (over all m) to the best at
    its largest m. Rule: agrees if the drop without BN exceeds the drop with BN by more than
    the margin; disagrees if the drop with BN exceeds it by more than the margin; else
    equivalent within the margin. Cannot decide if one of the four bests (each study's best
    and its best at the largest m) has fewer than ``min_seeds`` seeds.
    """
    def drop(best: pd.DataFrame) -> tuple[float, int]:
        largest = int(best.index.max())
        return float(best["median"].max() - best.loc[largest, "median"]), largest

    (drop_bn, m_bn), (drop_none, m_none) = drop(with_bn), drop(without_bn)
    measurement = (f"drop from the best to the best at m = {m_bn}: {drop_bn:.4f} with BN; "
                   f"to m = {m_none} without BN: {drop_none:.4f}; margin {margin:.4f}")
    rule = ("agrees if the drop without BN exceeds the drop with BN by more than the margin; "
            "disagrees if the reverse; else equivalent within the margin; cannot decide with "
            f"fewer than {MIN_SEEDS} seeds at one of the four bests")
    verdict = _compare(drop_none - drop_bn, margin)
    why = [f"{name} {w}" for name, best, m in (("with BN:", with_bn, m_bn),
                                               ("without BN:", without_bn, m_none))
           if (w := _unsure(best, [int(best["median"].idxmax()), m], None, min_seeds))]
    if why:
        measurement += "; but " + "; ".join(why)
        verdict = CANNOT_DECIDE
    return Verdict(CLAIM_BN_GAP, measurement, rule, verdict)


def verdict_curves_small_ahead(curves: pd.DataFrame, margin: float, num_epochs: int,
                               chance: float = 0.1, min_seeds: int = MIN_SEEDS) -> Verdict:
    """Claim: at a fixed eta_tilde small batches are ahead after the same number of
    epochs.

    ``curves``: :func:`curves_by_batch` at one eta_tilde. Measurement: the test accuracy after
    the last epoch (``num_epochs``) of the best m <= 32 and of the best m >= 128 (median over
    seeds; a curve that ends early diverged and counts as chance), and the number of epochs
    in which the best small m is ahead by more than the margin. Rule: agrees if the best
    small m is ahead at the last epoch by more than the margin; disagrees if the best large
    m is; else equivalent within the margin. Cannot decide without curves at both an
    m <= 32 and an m >= 128, or if either compared curve has fewer than ``min_seeds``
    seeds at its first epoch.
    """
    rule = (f"agrees if the best m <= {SMALL_BATCHES} is ahead of the best m >= "
            f"{LARGE_BATCHES} after the last epoch by more than the margin; disagrees if the "
            f"reverse; else equivalent within the margin; cannot decide with fewer than "
            f"{MIN_SEEDS} seeds on either curve")
    table = curves.pivot_table(index="epoch", columns="batch_size", values="test_accuracy")
    table = table.reindex(range(1, num_epochs + 1))
    # a curve that stops before the last epoch diverged there: chance from then on
    table = table.apply(lambda col: col.where(col.index <= col.last_valid_index(), chance)
                        if col.last_valid_index() is not None else col)
    small = table[[m for m in table.columns if m <= SMALL_BATCHES]]
    large = table[[m for m in table.columns if m >= LARGE_BATCHES]]
    if small.empty or large.empty or table.empty:
        return Verdict(CLAIM_CURVES,
                       f"needs curves at both m <= {SMALL_BATCHES} and m >= {LARGE_BATCHES}",
                       rule, CANNOT_DECIDE)
    best_small, best_large = small.max(axis=1), large.max(axis=1)
    lead = best_small - best_large
    final = lead.iloc[-1]
    ahead = int((lead > margin).sum())
    m_s, m_l = int(small.iloc[-1].idxmax()), int(large.iloc[-1].idxmax())
    measurement = (f"after epoch {num_epochs}: best m <= {SMALL_BATCHES} "
                   f"(m = {m_s}) {best_small.iloc[-1]:.4f}, best "
                   f"m >= {LARGE_BATCHES} (m = {m_l}) "
                   f"{best_large.iloc[-1]:.4f}; small ahead by more than the margin in "
                   f"{ahead} of {len(lead)} epochs; margin {margin:.4f}")
    verdict = _compare(final, margin)
    if "seeds" in curves:
        first = curves[curves["epoch"] == curves["epoch"].min()].set_index("batch_size")["seeds"]
        few = [m for m in (m_s, m_l) if m in first.index and first.loc[m] < min_seeds]
        if few:
            measurement += (f"; but fewer than {min_seeds} seeds on the curve of m = "
                            + ", ".join(map(str, few)))
            verdict = CANNOT_DECIDE
    return Verdict(CLAIM_CURVES, measurement, rule, verdict)


SMALL_BN_BATCH = 16  # "small" m_BN: the paper's best was 4-8 on CIFAR, 16-64 on ImageNet


def verdict_small_bn_batch(table: pd.DataFrame, margin: float,
                           edges: pd.DataFrame | None = None,
                           min_seeds: int = MIN_SEEDS) -> Verdict:
    """Claim: a small batch-norm batch is best (m_BN about 4-8 on CIFAR-10).

    ``table``: best per (m, m_BN) (:func:`ghost_table`). At each m, g = the best m_BN <= 16
    less ordinary batch norm (m_BN = m): agrees there if g > margin, disagrees if
    g < -margin, else equivalent within the margin; cannot decide there if either of the
    two has fewer than ``min_seeds`` seeds, or (with ``edges``, :func:`edges_reached` by
    (m, m_BN)) the losing one sits at an end of its eta_tilde window (both, for
    "equivalent"). Overall (:func:`_combine`): disagrees if any m disagrees; else cannot
    decide if any m cannot; else agrees if every m agrees; else equivalent.
    """
    outcomes, parts = [], []
    for m, rows in table.groupby(level="batch_size"):
        rows = rows.droplevel("batch_size")
        small = rows[rows.index <= SMALL_BN_BATCH]["median"]
        if small.empty or m not in rows.index:
            continue
        b = int(small.idxmax())
        gain = float(small.max() - rows.loc[m, "median"])
        outcome = _compare(gain, margin)
        losing = {AGREES: [(m, m)], DISAGREES: [(m, b)], EQUIVALENT: [(m, b), (m, m)]}[outcome]
        why = _unsure(table, [(m, b), (m, m)], None, min_seeds) or _unsure(table, losing,
                                                                          edges, 0)
        outcome = CANNOT_DECIDE if why else outcome
        outcomes.append(outcome)
        parts.append(f"m = {m}: best m_BN = {int(rows['median'].idxmax())}, gain of the best "
                     f"m_BN <= {SMALL_BN_BATCH} (m_BN = {b}) over m_BN = m: {gain:+.4f} "
                     f"({outcome}" + (f": {why}" if why else "") + ")")
    rule = (f"at each m, g = the best m_BN <= {SMALL_BN_BATCH} less m_BN = m: agrees if "
            "g > margin, disagrees if g < -margin, else equivalent; " + _UNSURE_RULE
            + ". Overall: disagrees if any m disagrees, else cannot decide if any m cannot, "
            "else agrees if every m agrees, else equivalent")
    if not outcomes:
        return Verdict(CLAIM_SMALL_BN_BATCH,
                       "no m with both small m_BN and m_BN = m stored", rule, CANNOT_DECIDE)
    measurement = "; ".join(parts) + f"; margin {margin:.4f}"
    return Verdict(CLAIM_SMALL_BN_BATCH, measurement, rule, _combine(outcomes))


def verdict_bn_batch_independent(table: pd.DataFrame, margin: float,
                                 min_seeds: int = MIN_SEEDS) -> Verdict:
    """Claim: the best m_BN hardly depends on the overall batch size m.

    At each m, the m_BN within the margin of that m's best ("near") and those more than the
    margin below it. Rule: cannot decide with fewer than two m, if some m's best has fewer
    than ``min_seeds`` seeds, or if at some m every m_BN is within the margin (there m_BN
    makes no difference, so where its best lies is not measured: records without an m_BN
    effect never agree); else agrees if one m_BN is near at every m (listed), disagrees if
    none is.
    """
    near, far, few, worst = {}, {}, [], {}
    for m, rows in table.groupby(level="batch_size"):
        rows = rows.droplevel("batch_size")
        top = rows["median"].max()
        near[m] = set(rows[rows["median"] >= top - margin].index)
        far[m] = set(rows.index) - near[m]
        worst[m] = int(rows["median"].idxmin())
        if rows.loc[rows["median"].idxmax(), "seeds"] < min_seeds:
            few.append(m)
    rule = ("cannot decide with fewer than two m, with fewer than "
            f"{MIN_SEEDS} seeds at an m's best, or if at some m every m_BN is within the "
            "margin of the best (m_BN makes no difference there); else agrees if one m_BN is "
            "within the margin of the best at every m, disagrees if none is")
    listing = "; ".join(f"m = {m}: {sorted(int(b) for b in s)}" for m, s in near.items())
    if len(near) < 2:
        return Verdict(CLAIM_BN_BATCH_INDEPENDENT, listing or "no data", rule, CANNOT_DECIDE)
    common = set.intersection(*near.values())
    measurement = (f"m_BN within the margin ({margin:.4f}) of each m's best: {listing}; "
                   f"common to all: {sorted(int(b) for b in common) or 'none'}; the worst "
                   "m_BN: " + ", ".join(f"m = {m}: {b}" for m, b in worst.items()))
    flat = [m for m, s in far.items() if not s]
    if few:
        measurement += (f"; but fewer than {min_seeds} seeds at the best of m = "
                        + ", ".join(map(str, few)))
        verdict = CANNOT_DECIDE
    elif flat:
        measurement += ("; but at m = " + ", ".join(map(str, flat)) + " every m_BN is within "
                        "the margin, so m_BN makes no measured difference there")
        verdict = CANNOT_DECIDE
    else:
        verdict = AGREES if common else DISAGREES
    return Verdict(CLAIM_BN_BATCH_INDEPENDENT, measurement, rule, verdict)


def verdict_warmup(with_warmup: pd.DataFrame, without: pd.DataFrame, small_best: float,
                   margin: float, edges_with: pd.DataFrame | None = None,
                   edges_without: pd.DataFrame | None = None, small_seeds: int | None = None,
                   min_seeds: int = MIN_SEEDS) -> list[Verdict]:
    """Claims: warm-up helps large batches, but does not close the gap to small batches.

    ``with_warmup`` / ``without``: ``best_per_batch`` tables at the same large m;
    ``small_best``: the best median accuracy over m <= 32 without warm-up (``small_seeds``:
    its seeds, when known).

    "Helps", at each m, g = warm-up's best less the best without: agrees there if
    g > margin, disagrees if g < -margin, else equivalent within the margin; cannot decide
    there if either best has fewer than ``min_seeds`` seeds or (with ``edges_with`` /
    ``edges_without``, :func:`edges_reached`) the losing one sits at an end of its
    eta_tilde window (both, for "equivalent"). Overall as :func:`_combine`.

    "Does not close the gap" is read only at the m where warm-up helped (elsewhere there is
    no narrowing to test, and records in which warm-up does nothing must not agree): there,
    gap = small_best less warm-up's best: agrees if gap > margin, disagrees if
    gap < -margin (warm-up's large batch ahead), equivalent within the margin if closed to
    within it; cannot decide there if warm-up's best sits at an end of its window, or
    small_best has fewer than ``min_seeds`` seeds. Cannot decide overall where warm-up
    helped at no m; else as :func:`_combine` over those m.
    """
    sizes = sorted(set(with_warmup.index) & set(without.index))
    helps_rule = ("at each m, g = warm-up's best less the best without: agrees if g > margin, "
                  "disagrees if g < -margin, else equivalent; " + _UNSURE_RULE + ". Overall: "
                  "disagrees if any m disagrees, else cannot decide if any m cannot, else "
                  "agrees if every m agrees, else equivalent")
    gap_rule = ("read only at the m where warm-up helps (cannot decide if it helps at none): "
                f"gap = the best at m <= {SMALL_BATCHES} without warm-up less warm-up's "
                "best; agrees if gap > margin, disagrees if gap < -margin, equivalent "
                "(closed within the margin) otherwise; " + _UNSURE_RULE + "; overall as for helps")
    if not sizes:
        return [Verdict(CLAIM_WARMUP_HELPS, "no common m stored", helps_rule, CANNOT_DECIDE),
                Verdict(CLAIM_WARMUP_GAP, "no common m stored", gap_rule, CANNOT_DECIDE)]
    helps, helps_parts = {}, []
    for m in sizes:
        g = float(with_warmup.loc[m, "median"] - without.loc[m, "median"])
        outcome = _compare(g, margin)
        why = (_unsure(with_warmup, [m], None, min_seeds) or _unsure(without, [m], None, min_seeds)
               or (_unsure(without, [m], edges_without, 0) if outcome != DISAGREES else None)
               or (_unsure(with_warmup, [m], edges_with, 0) if outcome != AGREES else None))
        helps[m] = CANNOT_DECIDE if why else outcome
        helps_parts.append(f"m = {m}: {with_warmup.loc[m, 'median']:.4f} with, "
                           f"{without.loc[m, 'median']:.4f} without ({g:+.4f}; {helps[m]}"
                           + (f": {why}" if why else "") + ")")
    helps_measurement = "; ".join(helps_parts) + f"; margin {margin:.4f}"
    helped = [m for m in sizes if helps[m] == AGREES]
    gap_parts, gaps = [f"best at m <= {SMALL_BATCHES} without warm-up {small_best:.4f}"], []
    for m in helped:
        gap = float(small_best - with_warmup.loc[m, "median"])
        outcome = _compare(gap, margin)
        why = (f"fewer than {min_seeds} seeds at the small-batch best"
               if small_seeds is not None and small_seeds < min_seeds else
               _unsure(with_warmup, [m], edges_with, 0))
        gaps.append(CANNOT_DECIDE if why else outcome)
        gap_parts.append(f"m = {m} with warm-up: gap {gap:+.4f} ({gaps[-1]}"
                         + (f": {why}" if why else "") + ")")
    if not helped:
        gap_parts.append("warm-up helped at no m, so there is no narrowing to test")
    gap_measurement = "; ".join(gap_parts) + f"; margin {margin:.4f}"
    return [Verdict(CLAIM_WARMUP_HELPS, helps_measurement, helps_rule,
                    _combine(helps.values())),
            Verdict(CLAIM_WARMUP_GAP, gap_measurement, gap_rule,
                    _combine(gaps) if helped else CANNOT_DECIDE)]


EQUAL_STEPS_SEEDS = MIN_SEEDS  # seeds a best cell needs before the equal-steps verdict reads it


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
                        CANNOT_DECIDE), {})
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
        outcome = CANNOT_DECIDE if why else _compare(d, margin)
        outcomes[m] = (d, outcome)
        parts.append(f"m = {m}: {best.loc[m, 'median']:.4f} ({d:+.4f}; {outcome}"
                     + (f": {why}" if why else "") + ")")
    overall = _combine(outcome for _, outcome in outcomes.values())
    measurement = (f"best of m = {reference}: {bar:.4f}; " + "; ".join(parts)
                   + f"; margin {margin:.4f}")
    return Verdict(CLAIM_EQUAL_STEPS, measurement, rule, overall), outcomes
