"""One set of runs and everything the experiments chapters read from it (book: "Batch size
against learning rate" and the chapters after it).

A set of runs is a study, or one side of a study split along an axis of its grid
(:func:`~smallbatch.analysis.variants`). :class:`RunSet` holds it with the pipeline every
chapter reads, each step computed once, when first asked for, by the functions that define
it (nothing here restates a rule):

    trials and records -> cells (cell_summary) -> noise margin (noise_margin, with the set's
    own test-set size) -> bests (best_per_batch), good ranges (good_range), edges
    (edges_reached) -> the held-out reading (selection.held_out_best)

and its label, provenance note and chance level (1 / the data set's classes). A curve is
one m (``by=CURVE``) or, in a ghost-batch-norm study, one (m, m_BN) (``by=GHOST_CURVE``).

Sets compared under one margin (a pair of studies in a verdict, or a study against the
runs it is compared with) are made with :func:`under_one_margin`: each keeps its own
margin as ``own_margin`` and is read with the largest of them as ``margin``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import pandas as pd

from ..data import num_test
from ..store import epochs_frame
from ..train import TrainConfig
from .cells import (StudyData, best_per_batch, cell_summary, compared_runs, curves_from_epochs,
                    edges_reached, ghost_cells, ghost_table, good_range, noise_margin,
                    study_label, subset)
from .selection import held_out_best

__all__ = ["CURVE", "GHOST_CURVE", "RunSet", "run_sets", "under_one_margin", "frames",
           "margins", "bn_pairs"]


CURVE = ("batch_size",)                  # one curve per m: the batch-size studies
GHOST_CURVE = ("batch_size", "bn_batch")  # one per (m, m_BN): ghost batch norm (ghost-bn)


# What a set computes that does not depend on the margin it is read with: a copy of the set
# under another margin keeps these (RunSet.with_margin).
_MARGIN_FREE = ("batch_sizes", "epochs", "cells", "own_margin", "bests", "held_out")


@dataclass(frozen=True, eq=False)
class RunSet:
    """One set of runs (a study, or one side of it) and what the chapters read from it.

    Build it with :meth:`of` (one set) or :func:`run_sets` (a chapter's sets). Every
    statistic is computed when first read and kept (the set is immutable).

    Attributes:
        label: how tables, legends and verdicts name the set.
        data: its trials and stored records (:class:`~smallbatch.analysis.StudyData`).
        by: the columns of one curve: :data:`CURVE` (m) or :data:`GHOST_CURVE` (m, m_BN).
        shared_margin: the margin the set is read with when it is compared with other sets
            under one margin (:func:`under_one_margin`); None: its own.
    """

    label: str
    data: StudyData
    by: tuple[str, ...] = CURVE
    shared_margin: float | None = None

    def __post_init__(self):
        if tuple(self.by) not in (CURVE, GHOST_CURVE):
            raise ValueError(f"by must be {CURVE} or {GHOST_CURVE}, got {self.by!r}")
        object.__setattr__(self, "by", tuple(self.by))

    @classmethod
    def of(cls, data: StudyData, label: str | None = None, *, by=CURVE) -> RunSet:
        """The set of runs of ``data``, labelled ``label`` (default: the study's label,
        :func:`~smallbatch.analysis.study_label`; one side of a study must be named)."""
        if label is None:
            if data.selection:
                raise ValueError(f"one side of study {data.study.name!r} "
                                 f"({data.selection}): give it a label (run_sets does)")
            label = study_label(data.study)
        return cls(label, data, tuple(by))

    # -------------------------------------------------------------- what the set holds
    @property
    def study(self):
        return self.data.study

    @property
    def base(self) -> TrainConfig:
        """The study's base config (data set, model, subsets, epochs)."""
        return self.data.study.base

    @property
    def frame(self) -> pd.DataFrame:
        """One row per stored trial (:func:`~smallbatch.analysis.study_data`'s frame)."""
        return self.data.frame

    @property
    def results(self) -> list:
        return self.data.results

    @property
    def trials(self) -> tuple[TrainConfig, ...]:
        """Every trial of the set's grid, stored or not (validated once, at load)."""
        return self.data.trials

    @property
    def stored(self) -> bool:
        """Whether any trial of the set is stored (nothing below means much without)."""
        return not self.data.frame.empty

    @property
    def note(self) -> str:
        """Provenance for a figure's small print: study, scale, trials stored, commits."""
        return self.data.provenance_note()

    @property
    def chance(self) -> float:
        """Chance accuracy, 1 / the data set's classes: what a diverged run scores."""
        return 1.0 / self.data.num_classes

    @property
    def test_size(self) -> int | None:
        """The test examples each accuracy is measured on: the study's test subset, else
        the data set's test split (None where only its files tell)."""
        return num_test(self.base.data, self.base.test_subset)

    @cached_property
    def batch_sizes(self) -> list[int]:
        """The batch sizes with stored runs, ascending."""
        return sorted(int(m) for m in self.frame["batch_size"].unique()) if self.stored else []

    @cached_property
    def epochs(self) -> pd.DataFrame:
        """One row per stored trial and epoch (``store.epochs_frame``)."""
        return epochs_frame(self.results)

    def curves(self, log2_base_lr) -> pd.DataFrame:
        """Per-epoch curves at one log2 eta_tilde (or one per m, a dict m -> log2
        eta_tilde), median over seeds (:func:`~smallbatch.analysis.curves_from_epochs`)."""
        return curves_from_epochs(self.epochs, log2_base_lr)

    # -------------------------------------------------------------- the pipeline
    @cached_property
    def cells(self) -> pd.DataFrame:
        """Statistics over seeds per (m, eta_tilde), or per (m, m_BN, eta_tilde)
        (:func:`~smallbatch.analysis.cell_summary`, :func:`~smallbatch.analysis.ghost_cells`)."""
        return cell_summary(self.frame) if self.by == CURVE else ghost_cells(self.frame)

    @cached_property
    def own_margin(self) -> float:
        """The set's own noise margin (:func:`~smallbatch.analysis.noise_margin`), with its
        test-set size for the binomial error where no cell has repeats."""
        return noise_margin(self.frame, test_size=self.test_size)

    @property
    def margin(self) -> float:
        """The margin the set is read with: its own, or the one it shares with the sets it
        is compared with (:func:`under_one_margin`)."""
        return self.own_margin if self.shared_margin is None else self.shared_margin

    @cached_property
    def bests(self) -> pd.DataFrame:
        """Each curve's best cell, chosen and scored on the same runs (in-sample):
        :func:`~smallbatch.analysis.best_per_batch`, or per (m, m_BN)
        :func:`~smallbatch.analysis.ghost_table`."""
        return best_per_batch(self.cells) if self.by == CURVE else ghost_table(self.frame)

    @cached_property
    def held_out(self) -> pd.DataFrame:
        """Each curve's best chosen on some seeds and scored on another
        (:func:`~smallbatch.analysis.held_out_best`)."""
        return held_out_best(self.frame, self.by)

    @cached_property
    def ranges(self) -> pd.DataFrame:
        """Per m: the eta_tilde within :attr:`margin` of that m's own best
        (:func:`~smallbatch.analysis.good_range`, ``reference="own"``)."""
        if self.by != CURVE:
            raise ValueError("good ranges are read per m; this set's curves are per "
                             f"{self.by}")
        return good_range(self.cells, self.margin, reference="own")

    @cached_property
    def edges(self) -> pd.DataFrame:
        """Whether each curve's window of eta_tilde shows both sides of its best, read with
        :attr:`margin` (:func:`~smallbatch.analysis.edges_reached`)."""
        return edges_reached(self.cells, self.margin, by=self.by)

    # -------------------------------------------------------------- other sets from this one
    def with_margin(self, margin: float) -> RunSet:
        """The same runs read with ``margin`` (ranges and edges follow it)."""
        out = dataclasses.replace(self, shared_margin=float(margin))
        # what is already computed and does not depend on the margin is kept
        out.__dict__.update({k: v for k, v in self.__dict__.items() if k in _MARGIN_FREE})
        return out

    def only(self, batch_sizes: Iterable[int]) -> RunSet:
        """The runs at ``batch_sizes`` only (e.g. the m another set tried), read with this
        set's margin (measured on all of its runs), under the same label."""
        sizes = {int(m) for m in batch_sizes}
        part = subset(self.data, lambda config: config.batch_size in sizes)
        return dataclasses.replace(self, data=part, shared_margin=self.margin)


def run_sets(studies: Iterable[StudyData]) -> dict[str, RunSet]:
    """A chapter's sets of runs with stored trials, by label, in order: every study whole or
    split along the axes its grid varies besides m, eta_tilde and the seed
    (:func:`~smallbatch.analysis.compared_runs`: ``cifar-augment`` gives two sets)."""
    return {label: RunSet.of(side, label) for label, side in compared_runs(studies).items()
            if not side.frame.empty}


def under_one_margin(*sets: RunSet) -> tuple[RunSet, ...]:
    """``sets`` read with one margin, the largest of their own (so that a difference between
    them is read against the noisier one): each keeps its own as ``own_margin``."""
    if not sets:
        raise ValueError("under_one_margin needs at least one set of runs")
    shared = max(s.own_margin for s in sets)
    return tuple(s.with_margin(shared) for s in sets)


def frames(sets: Iterable[RunSet]) -> dict[str, pd.DataFrame]:
    """Each set's trials frame by label (what the verdicts' readers and the seeds and
    held-out tables take)."""
    return {s.label: s.frame for s in sets}


def margins(sets: Iterable[RunSet]) -> dict[str, float]:
    """Each set's margin by label."""
    return {s.label: s.margin for s in sets}


_PAIRED_AWAY = ("batch_size", "base_lr", "seed", "batch_norm", "bn_batch_size")


def _fixed(s: RunSet) -> dict:
    """What a set's trials hold fixed besides what a curve varies and batch norm: each
    config field (but m, eta_tilde, the seed and batch norm) with its values."""
    return {f.name: frozenset(getattr(c, f.name) for c in s.trials)
            for f in dataclasses.fields(TrainConfig) if f.name not in _PAIRED_AWAY}


def bn_pairs(sets: Mapping[str, RunSet] | Iterable[RunSet]) -> list[tuple[RunSet, RunSet]]:
    """The (with batch norm, without) pairs among ``sets``: a set whose runs use batch norm
    beside a set without it whose runs are otherwise the same (data, model, subsets,
    epochs, augmentation, weight decay, schedule, ...), read from their trials. In the
    order of the sets with batch norm, each with every partner in order (book: "Without
    batch norm the advantage of small batches is larger")."""
    sets = list(sets.values()) if isinstance(sets, Mapping) else list(sets)

    def norm(s: RunSet) -> set:
        return {c.batch_norm for c in s.trials}

    without = [s for s in sets if norm(s) == {"none"}]
    return [(a, b) for a in sets if norm(a) and "none" not in norm(a)
            for b in without if _fixed(a) == _fixed(b)]
