"""How much a verdict owes to the seeds it was read from (book: the experiments chapters'
claims tables, columns "held out" and "same verdict in resamples").

Each m's best eta_tilde is the maximum over about ten noisy cells, and the in-sample tables
score it on the same runs that chose it: a winner's curse that the noise margin does not
cover. Two checks, both from the stored records alone:

- **Held-out selection** (:func:`held_out_best`): leave one seed out, choose the best
  eta_tilde on the median of the other seeds, and score the choice on the seed left out;
  each seed is left out once. The verdict's rule is then read on those held-out scores.
- **A bootstrap over seeds** (:func:`assess`): every cell's runs are resampled with
  replacement (a cell with one seed cannot vary), the rule is read again on each resample,
  and the share of resamples that give the in-sample verdict is reported.

One leak is known and stated in the chapters: outside the headline study the extra seeds
were placed at seed 0's best and its neighbours, so the fold that leaves seed 0 out chooses
among the eta_tilde that seed 0 picked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .cells import (best_per_batch, cell_columns, cell_summary, curves_from_epochs, ghost_table,
                    good_range, with_bn_batch)
from .claims import (Verdict, verdict_curves_small_ahead, verdict_equal_steps,
                     verdict_range_shrinks, verdict_warmup)

__all__ = ["RESAMPLES", "held_out_best", "bests", "resample_seeds", "Assessed", "assess",
           "assess_together", "held_out_overview", "Make", "on_bests", "range_reader", "warmup_reader", "equal_steps_reader",
           "curves_reader"]


RESAMPLES = 100  # bootstrap resamples behind each verdict's "same verdict" share (its
# standard error is at most 5 points)


def held_out_best(frame: pd.DataFrame, by=("batch_size",)) -> pd.DataFrame:
    """Per ``by`` group (m, or m and ``bn_batch``, i.e. m_BN): the best eta_tilde chosen on
    some seeds and scored on another, in :func:`~smallbatch.analysis.best_per_batch`'s
    columns, so that every verdict rule reads it as it reads the in-sample bests.

    For each seed s of the group: the eta_tilde with the highest median score over the
    group's other seeds (ties: the smaller), scored by seed s's run there if s has one.
    ``median``, ``low``, ``high``: the median, minimum and maximum of those held-out scores;
    ``seeds``: how many seeds were scored (a group with one seed has none, and keeps its
    in-sample best with ``seeds`` 0, so that a verdict resting on it cannot decide);
    ``diverged``: held-out runs that diverged; ``log2_base_lr``: the eta_tilde chosen most
    often (ties: the smaller); ``in_sample``: the group's in-sample best median; ``chosen``:
    each fold as "seed: log2 eta_tilde".
    """
    by = list(by)
    if "bn_batch" in by and "bn_batch" not in frame:
        frame = with_bn_batch(frame)
    repeats = frame.duplicated(by + ["log2_base_lr", "seed"])
    if repeats.any():
        row = frame[repeats].iloc[0]
        raise ValueError(
            "held_out_best needs one run per (" + ", ".join(by) + ", eta_tilde, seed); "
            f"found repeats, e.g. {dict(row[by + ['log2_base_lr', 'seed']])}: split the runs "
            "along the axis that differs first (analysis.variants)")
    rows = []
    for key, group in frame.groupby(by, sort=True):
        cells = group.groupby("log2_base_lr")["score"].median()
        top = cells.max()
        in_sample = int(cells[cells == top].index.min())
        scores, chosen, diverged = [], [], 0
        for seed in sorted(group["seed"].unique()):
            rest = group[group["seed"] != seed]
            if rest.empty:
                continue
            medians = rest.groupby("log2_base_lr")["score"].median()
            pick = int(medians[medians == medians.max()].index.min())
            held = group[(group["seed"] == seed) & (group["log2_base_lr"] == pick)]
            if held.empty:
                continue
            scores.append(float(held["score"].iloc[0]))
            chosen.append((int(seed), pick))
            diverged += int((held["status"] == "diverged").iloc[0])
        keys = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        if scores:
            picks = pd.Series([p for _, p in chosen])
            counts = picks.value_counts()
            common = int(counts[counts == counts.max()].index.min())
            rows.append({**keys, "log2_base_lr": common, "median": float(np.median(scores)),
                         "low": min(scores), "high": max(scores), "seeds": len(scores),
                         "diverged": diverged, "in_sample": float(top),
                         "chosen": ", ".join(f"{s}: {p}" for s, p in chosen)})
        else:
            rows.append({**keys, "log2_base_lr": in_sample, "median": float(top),
                         "low": float(top), "high": float(top), "seeds": 0, "diverged": 0,
                         "in_sample": float(top), "chosen": ""})
    columns = by + ["log2_base_lr", "median", "low", "high", "seeds", "diverged",
                    "in_sample", "chosen"]
    return pd.DataFrame(rows, columns=columns).set_index(by)


def bests(frame: pd.DataFrame, held_out: bool = False, by=("batch_size",)) -> pd.DataFrame:
    """Each ``by`` group's best: in-sample (:func:`best_per_batch` of the cells over seeds,
    or :func:`ghost_table` for ``by=("batch_size", "bn_batch")``) or held out
    (:func:`held_out_best`)."""
    by = tuple(by)
    if by not in (("batch_size",), ("batch_size", "bn_batch")):
        raise ValueError(f"by must be ('batch_size',) or ('batch_size', 'bn_batch'), got {by}")
    if held_out:
        return held_out_best(frame, by)
    return best_per_batch(_cells(frame)) if len(by) == 1 else ghost_table(frame)


_MEMO: dict[int, tuple[pd.DataFrame, pd.DataFrame]] = {}


def _cells(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`cell_summary` of ``frame``, computed once for the few frames last asked about
    (several verdicts read the same frame, and the same resample of it)."""
    hit = _MEMO.get(id(frame))
    if hit is not None and hit[0] is frame:
        return hit[1]
    return _remember(frame, cell_summary(frame))


_POINT = ("batch_size", "log2_base_lr")  # cell_summary's cells


def _remember(frame: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    if len(_MEMO) >= 8:
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[id(frame)] = (frame, summary)  # the frame is kept, so its id is not reused
    return summary


def held_out_overview(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Each set of runs' bests (by label) chosen in-sample and held out, as one row per set
    and one column per m: each cell "in-sample median -> held-out median (difference; held-out
    seeds)", or the in-sample median alone where no seed could be held out (one seed)."""
    rows = {}
    for label, frame in frames.items():
        if frame.empty:
            continue
        inside = best_per_batch(_cells(frame))
        held = held_out_best(frame)
        row = {}
        for m in inside.index:
            top = float(inside.loc[m, "median"])
            if m not in held.index or held.loc[m, "seeds"] == 0:
                row[int(m)] = f"{top:.4f} (one seed: nothing held out)"
                continue
            out = float(held.loc[m, "median"])
            row[int(m)] = (f"{top:.4f} → {out:.4f} ({out - top:+.4f}; "
                           f"{int(held.loc[m, 'seeds'])} seeds)")
        rows[label] = row
    overview = pd.DataFrame.from_dict(rows, orient="index")
    if overview.empty:
        return overview
    overview = overview[sorted(overview.columns)].fillna("")
    overview.columns.name, overview.index.name = "m", "runs"
    return overview


class _RunPlan:
    """Where a frame's runs are, by cell, for drawing many resamples of one frame quickly.

    A run is one ``config_hash`` (one row of a trials frame; every epoch row of a per-epoch
    frame); without that column, one row. A cell is :func:`cell_columns` of the frame."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        runs = (frame["config_hash"].to_numpy() if "config_hash" in frame
                else np.arange(len(frame)))
        codes = pd.factorize(runs)[0]
        self.rows = [np.flatnonzero(codes == k) for k in range(codes.max() + 1)] \
            if len(frame) else []
        first = np.array([rows[0] for rows in self.rows], dtype=int)
        heads = frame.iloc[first] if len(first) else frame
        cells = heads.groupby(cell_columns(heads), dropna=False, sort=False).indices \
            if len(heads) else {}
        self.cells = [np.asarray(positions) for positions in cells.values()]
        # A trials frame (one row a run) whose cells are its (m, eta_tilde) points: each
        # redraw's cell_summary is computed here from the scores, without pandas' groupby
        # (the bootstrap reads it hundreds of times); _cells finds it in _MEMO.
        self.keys = None
        if (len(heads) == len(frame) and {"score", "status"} <= set(frame)
                and len(self.cells) == len(frame.groupby(list(_POINT)).size())):
            self.keys = np.array([[heads.iloc[c[0]][k] for k in _POINT] for c in self.cells],
                                 dtype=np.int64)
            self.order = np.lexsort(self.keys.T[::-1])
            self.score = heads["score"].to_numpy(dtype=np.float64)
            self.diverged = (heads["status"] == "diverged").to_numpy().astype(np.int64)

    def draw(self, rng: np.random.Generator) -> pd.DataFrame:
        if not self.cells:
            return self.frame
        rows, seeds, drawn = [], [], []
        for runs in self.cells:
            picked = runs[rng.integers(0, len(runs), len(runs))]
            drawn.append(picked)
            for seed, run in enumerate(picked):
                rows.append(self.rows[run])
                seeds.append(np.full(len(self.rows[run]), seed))
        out = self.frame.iloc[np.concatenate(rows)].copy()
        out["seed"] = np.concatenate(seeds)
        out = out.reset_index(drop=True)
        if self.keys is not None:
            _remember(out, self._summary(drawn))
        return out

    def _summary(self, drawn: list[np.ndarray]) -> pd.DataFrame:
        """:func:`cell_summary` of the redraw whose cells hold the runs ``drawn``."""
        stats = np.empty((len(drawn), 6))
        for k, picked in enumerate(drawn):
            scores = self.score[picked]
            stats[k] = (len(picked), self.diverged[picked].sum(), np.median(scores),
                        scores.min(), scores.max(),
                        scores.std(ddof=1) if len(scores) > 1 else np.nan)
        keys, stats = self.keys[self.order], stats[self.order]
        return pd.DataFrame({
            "batch_size": keys[:, 0], "log2_base_lr": keys[:, 1],
            "seeds": stats[:, 0].astype(np.int64), "diverged": stats[:, 1].astype(np.int64),
            "median": stats[:, 2], "low": stats[:, 3], "high": stats[:, 4],
            "std": stats[:, 5]})


def resample_seeds(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One bootstrap resample of a trials frame (or of a per-epoch frame, whose rows a run's
    ``config_hash`` ties together): within every cell (:func:`cell_columns`) its runs are
    drawn with replacement, as many as it has, and renumbered as seeds 0, 1, ... so that a
    cell keeps its count of seeds. A cell with one run stays as it is."""
    return _RunPlan(frame).draw(rng)


@dataclass(frozen=True)
class Assessed:
    """A verdict with its two checks (:func:`assess`)."""

    where: str                # which runs
    verdict: Verdict          # in-sample: each best chosen and scored on the same runs
    held_out: Verdict | None  # the rule read on held-out bests; None where it reads none
    same: float | None        # share of bootstrap resamples giving ``verdict.verdict``
    resamples: int


def assess(where: str, make: Callable[[Mapping[str, pd.DataFrame], bool], Verdict],
           frames: Mapping[str, pd.DataFrame], *, held_out: bool = True,
           resamples: int = RESAMPLES, seed: int = 0) -> Assessed:
    """A verdict, read in-sample, on held-out bests, and on ``resamples`` bootstrap
    resamples of the seeds (:func:`resample_seeds`, each frame on its own).

    ``make(frames, held_out)`` computes the verdict from trials frames (the same keys as
    ``frames``), choosing each best in-sample or held out (:func:`bests`); everything else
    it reads (margins, for one) it holds fixed. ``held_out=False`` for a rule that reads no
    best (the held-out column then says so). ``resamples=0`` skips the bootstrap.
    """
    return assess_together([(where, make, held_out)], frames, resamples=resamples,
                           seed=seed)[0]


def assess_together(items, frames: Mapping[str, pd.DataFrame], *,
                    resamples: int = RESAMPLES, seed: int = 0) -> list[Assessed]:
    """:func:`assess` for several verdicts read from the same ``frames``: ``items`` are
    (where, make, held_out) triples, and every verdict is read on the same resamples (one
    redraw and one cell table per resample serve them all)."""
    items = list(items)
    verdicts = [make(frames, False) for _, make, _ in items]
    outs = [make(frames, True) if held_out else None for _, make, held_out in items]
    hits = [0] * len(items)
    if resamples:
        rng = np.random.default_rng(seed)
        plans = {name: _RunPlan(frame) for name, frame in frames.items()}
        for _ in range(resamples):
            drawn = {name: plan.draw(rng) for name, plan in plans.items()}
            for k, (_, make, _) in enumerate(items):
                hits[k] += make(drawn, False).verdict == verdicts[k].verdict
    return [Assessed(where, verdict, out, hit / resamples if resamples else None, resamples)
            for (where, _, _), verdict, out, hit in zip(items, verdicts, outs, hits)]


# ---------------------------------------------------------------- the chapters' verdicts
# Each reader turns a claim's rule into make(frames, held_out) for :func:`assess`: the
# rule's bests are chosen from the trials frames in-sample or held out; the margin and the
# window edges it reads are the in-sample ones, held fixed.

Make = Callable[[Mapping[str, pd.DataFrame], bool], Verdict]


def on_bests(rule: Callable[..., Verdict], *args, by=("batch_size",), **kwargs) -> Make:
    """A rule whose leading arguments are bests, one per frame (in the order of ``frames``):
    ``rule(bests(frame_1), ..., *args, **kwargs)``. ``by=("batch_size", "bn_batch")`` for the
    ghost-BN rules, which read the best per (m, m_BN)."""
    def make(frames, held_out):
        return rule(*(bests(frame, held_out, by) for frame in frames.values()), *args, **kwargs)
    return make


def range_reader(margin: float, edges: pd.DataFrame | None) -> Make:
    """:func:`~smallbatch.analysis.verdict_range_shrinks` on one frame: the octaves within
    ``margin`` of each m's own best, over all cells (it chooses no single best, so
    :func:`assess` reads it with ``held_out=False``)."""
    def make(frames, held_out):
        (frame,) = frames.values()
        cells = _cells(frame)
        return verdict_range_shrinks(good_range(cells, margin, reference="own"), edges,
                                     best_per_batch(cells)["seeds"])
    return make


def warmup_reader(which: int, margin: float, edges_with: pd.DataFrame | None,
                  edges_without: pd.DataFrame | None, small_batches: int) -> Make:
    """One of :func:`~smallbatch.analysis.verdict_warmup`'s two verdicts (``which``: 0,
    helps; 1, does not close the gap) from frames ``{"with": ..., "without": ...}``; the
    small-batch bar is the best over m <= ``small_batches`` without warm-up."""
    def make(frames, held_out):
        best_with = bests(frames["with"], held_out)
        best_without = bests(frames["without"], held_out)
        small = best_without[best_without.index <= small_batches]
        if small.empty:
            raise ValueError(f"no run without warm-up at m <= {small_batches} to set the bar")
        top = small["median"].idxmax()
        return verdict_warmup(best_with, best_without, float(small.loc[top, "median"]),
                              margin, edges_with=edges_with, edges_without=edges_without,
                              small_seeds=int(small.loc[top, "seeds"]))[which]
    return make


def equal_steps_reader(reference: int, margin: float, edges: pd.DataFrame | None) -> Make:
    """:func:`~smallbatch.analysis.verdict_equal_steps` (its Verdict) on one frame."""
    def make(frames, held_out):
        (frame,) = frames.values()
        return verdict_equal_steps(bests(frame, held_out), reference, margin, edges)[0]
    return make


def curves_reader(log2_base_lr: int, margin: float, num_epochs: int,
                  chance: float = 0.1) -> Make:
    """:func:`~smallbatch.analysis.verdict_curves_small_ahead` at one eta_tilde, from a
    per-epoch frame (``store.epochs_frame``; its runs are what the bootstrap redraws). It
    chooses no best: read it with ``held_out=False``."""
    def make(frames, held_out):
        (epochs,) = frames.values()
        return verdict_curves_small_ahead(curves_from_epochs(epochs, log2_base_lr), margin,
                                          num_epochs, chance=chance)
    return make
