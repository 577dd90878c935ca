"""From a study's stored trials to cells (book: "Batch size against learning rate"): the
records as one tidy frame, the statistics of each (m, eta_tilde) cell over seeds, the noise
margin, each m's best and good range, and whether each window shows both sides of its best.

Conventions:

- A trial's headline is the paper's: the median test accuracy of its last 5 epochs.
- A diverged trial scores chance accuracy (1 / number of classes) in medians and bests: it
  was tried and failed; leaving it out would flatter the learning rate that diverged.
- A cell is one (m, eta_tilde) point; its value is the median over seeds, and its spread
  the minimum and maximum over seeds.
- The noise margin is max(1 percentage point, 2 x the pooled standard deviation over seeds
  of the cells within 5 points of their m's best, the points the verdicts compare):
  differences smaller than it are not read as differences. With one seed per cell it is 1
  percentage point plus twice the binomial standard error of the test set at the study's
  best accuracy.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..store import epochs_frame, load_records, trials_frame
from ..studies import Study, load_study, run_study, validate_study
from ..train import TrainConfig, config_hash

__all__ = ["StudyData", "study_data", "variants", "subset", "compared_runs", "load_or_run",
           "study_label", "cell_summary", "seed_spread", "noise_margin", "NEAR_BEST",
           "best_per_batch", "good_range", "cell_columns", "edges_reached", "edges_overview",
           "MARGIN_FLOOR", "short_windows", "fall_with_m", "seed_gaps", "seed_gap_grid", "best_first", "curve_columns",
           "spread_by_point", "count_curves",
           "curves_by_batch", "curves_from_epochs", "ghost_cells", "ghost_table",
           "with_bn_batch"]


MARGIN_FLOOR = 0.01  # one percentage point


# The seed spread behind the noise margin is pooled over the cells within this much of the
# best at their point of the grid (see seed_spread).
NEAR_BEST = 0.05


@dataclass
class StudyData:
    """A study's trials joined with its stored records.

    ``frame``: one row per stored trial of the study (``results.trials_frame`` columns plus
    ``log2_base_lr`` and ``score``); ``missing``: the trials with no record yet;
    ``commits``: the code commits that produced the records; ``problems``: unreadable records;
    ``trials``: the study's grid, expanded and validated once (every trial, stored or not),
    so that what reads the data later need not expand it again.
    """

    study: Study
    frame: pd.DataFrame
    total: int
    missing: int
    commits: tuple[str, ...]
    problems: list[str]
    num_classes: int
    trials: tuple[TrainConfig, ...]  # the grid's configs, validated (study_data)
    results: list = dataclasses.field(default_factory=list)  # the stored TrainResults
    selection: str = ""  # for one side of a study (see :func:`variants`), e.g. "augment = True"

    @property
    def complete(self) -> bool:
        return self.missing == 0

    def provenance_note(self) -> str:
        """One line for a figure caption: study, scale, trials and commits."""
        commits = ", ".join(c[:10] for c in self.commits) or "none"
        where = f", {self.selection}" if self.selection else ""
        return (f"study {self.study.name} ({self.study.scale}{where}): "
                f"{self.total - self.missing} of {self.total} trials stored; "
                f"code commit(s) {commits}")


def _commits(frame: pd.DataFrame) -> tuple[str, ...]:
    """The code commits that produced a frame's records, sorted."""
    if "provenance_git_commit" not in frame:
        return ()
    return tuple(sorted({str(c) for c in frame["provenance_git_commit"].dropna()}))


def study_data(study: str | Study, scale: str = "scaled", *, results_dir=None,
               num_classes: int | None = None) -> StudyData:
    """Load the records of ``study``'s trials (only those its grid names) at ``scale``.

    A diverged run scores chance, 1 / ``num_classes`` (default: the study's data set's
    classes, :data:`smallbatch.data.NUM_CLASSES`)."""
    from ..data import NUM_CLASSES

    if not isinstance(study, Study):
        study = load_study(study, scale)
    if num_classes is None:
        num_classes = NUM_CLASSES[study.base.data]
    trials = tuple(validate_study(study))
    wanted = {config_hash(c) for c in trials}
    records = load_records(results_dir or study.results_dir, warn=False)
    kept = [r for h, r in records.results.items() if h in wanted and r.status != "failed"]
    frame = trials_frame(kept)
    if not frame.empty:
        frame["log2_base_lr"] = np.log2(frame["base_lr"]).round().astype(int)
        chance = 1.0 / num_classes
        frame["score"] = frame["test_accuracy"].where(frame["status"] == "complete", chance)
    commits = _commits(frame)
    return StudyData(study, frame, total=len(trials), missing=len(trials) - len(kept),
                     commits=commits, problems=records.problems, num_classes=num_classes,
                     trials=trials, results=kept)


CELL_AXES = ("batch_size", "base_lr", "seed")  # what a chapter's curves are drawn over


def _axis_value_label(axis: str, value) -> str:
    if axis == "augment":
        return "augmented" if value else "no augmentation"
    return f"{axis} = {value}"


def _extra_axes(study: Study) -> list[str]:
    """The axes a study's grid varies besides m, eta_tilde and the seed (sorted)."""
    return sorted({name for block in study.blocks for name, _ in block} - set(CELL_AXES))


def variants(data: StudyData, axes=None) -> dict[str, StudyData]:
    """A study split along every axis its grid varies besides m, eta_tilde and the seed
    (or along ``axes``, some of them).

    Each side is compared on its own, like a study of its own: ``cifar-augment`` gives one
    set of runs with augmentation and one without. Keys are labels (:func:`study_label` plus
    the side); a study without such an axis is returned whole under its label.
    """
    axes = _extra_axes(data.study) if axes is None else list(axes)
    label = study_label(data.study)
    if not axes:
        return {label: data}

    def key(config: TrainConfig) -> tuple:
        return tuple(getattr(config, axis) for axis in axes)

    out = {}
    for value in sorted({key(c) for c in data.trials}):
        side = ", ".join(_axis_value_label(a, v) for a, v in zip(axes, value))
        out[f"{label}, {side}"] = subset(
            data, lambda config, value=value: key(config) == value,
            ", ".join(f"{a} = {v}" for a, v in zip(axes, value)))
    return out


def subset(data: StudyData, keep, selection: str | None = None) -> StudyData:
    """The part of ``data`` whose trials ``keep(config)`` accepts: its trials, records,
    frame rows (in their order), counts and commits. ``selection`` names the part in
    provenance notes (None: keep ``data``'s)."""
    trials = tuple(c for c in data.trials if keep(c))
    kept = [r for r in data.results if keep(r.config)]
    frame = data.frame
    if not frame.empty:
        hashes = {r.config_hash for r in kept}
        frame = frame[frame["config_hash"].isin(hashes).to_numpy()].reset_index(drop=True)
    return dataclasses.replace(
        data, frame=frame, total=len(trials), missing=len(trials) - len(kept),
        commits=_commits(frame), trials=trials, results=kept,
        selection=data.selection if selection is None else selection)


def compared_runs(studies) -> dict[str, StudyData]:
    """The sets of runs a chapter compares, each on its own: every study's :func:`variants`,
    in order, keyed by label. Two sets with one label would hide one another, so that is an
    error naming both studies."""
    out: dict[str, StudyData] = {}
    for data in studies:
        for label, side in variants(data).items():
            if label in out:
                raise ValueError(f"studies {out[label].study.name!r} and {data.study.name!r} "
                                 f"both give runs labelled {label!r}; give them different "
                                 "data, model or batch norm, or compare them in separate "
                                 "chapters")
            out[label] = side
    return out


def cell_summary(frame: pd.DataFrame, by=("batch_size", "log2_base_lr")) -> pd.DataFrame:
    """One row per cell (default: m and log2 eta_tilde): seeds, diverged seeds, the median,
    minimum, maximum and standard deviation of the score over seeds. A missing value in a
    ``by`` column (e.g. m_BN None, batch norm over the whole batch) is a cell of its own."""
    by = list(by)
    work = frame[list(dict.fromkeys(by + ["seed", "score"]))].assign(
        diverged=(frame["status"] == "diverged").astype(int))
    summary = work.groupby(by, dropna=False).agg(
        seeds=("seed", "nunique"), diverged=("diverged", "sum"), median=("score", "median"),
        low=("score", "min"), high=("score", "max"), std=("score", "std"))
    return summary.reset_index()


def _repeat_cells(frame: pd.DataFrame, near_best: float | None) -> tuple[pd.DataFrame, list]:
    """The cells with more than one completed seed (index: the cell columns; columns:
    count, var, median) that :func:`seed_spread` pools, and the columns of a point of the
    grid (a cell but eta_tilde)."""
    complete = frame[frame["status"] == "complete"]
    cell = cell_columns(complete)
    point = [name for name in cell if name != "base_lr"]
    if complete.empty:
        return pd.DataFrame(columns=["count", "var", "median"]), point
    groups = complete.groupby(cell, dropna=False)["score"]
    table = pd.DataFrame({"count": groups.count(), "var": groups.var(ddof=1),
                          "median": groups.median()})
    usable = table["count"] > 1
    if near_best is not None:
        best = table.groupby(level=point, dropna=False)["median"].transform("max")
        usable &= best - table["median"] <= near_best
    return table[usable], point


def _pooled(table: pd.DataFrame) -> float | None:
    dof = (table["count"] - 1).sum()
    if not dof:
        return None
    return math.sqrt(float(((table["count"] - 1) * table["var"]).sum()) / dof)


def seed_spread(frame: pd.DataFrame, near_best: float | None = NEAR_BEST) -> float | None:
    """The pooled standard deviation over seeds of the cells (configs that differ only in the
    seed) where more than one seed completed, or None if there is no such cell.

    ``near_best``: pool only the cells whose median is within this much of the best median
    at their point of the grid (the same config but eta_tilde), i.e. the points the
    verdicts compare; None pools every cell. Cells near the divergence edge scatter far
    more between seeds than the rest (7 points at the edge against about half a point near
    the best in resnet-bn), and would otherwise set the margin for every comparison.
    """
    table, _ = _repeat_cells(frame, near_best)
    return _pooled(table) if len(table) else None


def spread_by_point(frame: pd.DataFrame, near_best: float | None = NEAR_BEST) -> pd.DataFrame:
    """How much each point of the grid (m; in a ghost-BN study (m, m_BN)) contributes to
    :func:`seed_spread`: one row per point with repeats, its own pooled standard deviation
    (``spread``) and the study's pooled value without that point (``spread_without``),
    largest ``spread`` first. One point whose seeds scatter far more than the rest (e.g.
    batch norm over two examples) can set most of a noise margin; this shows which."""
    table, point = _repeat_cells(frame, near_best)
    flat = table.reset_index()
    rows = []
    for key, cells in flat.groupby(point, dropna=False):
        rest = flat.drop(index=cells.index)
        rows.append({**dict(zip(point, key)), "spread": _pooled(cells),
                     "spread_without": _pooled(rest)})
    varying = ["batch_size"] + [name for name in point
                                if name != "batch_size" and flat[name].nunique(dropna=False) > 1]
    out = pd.DataFrame(rows, columns=[*point, "spread", "spread_without"])
    out = out[[*varying, "spread", "spread_without"]]
    return out.sort_values("spread", ascending=False, kind="stable").reset_index(drop=True)


def cell_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of a trials frame that make a cell: every TrainConfig field but the seed.
    Runs that differ only in their seed are repeats of one cell (in a ghost-BN study, runs
    that differ in m_BN are different cells, not repeats)."""
    return [f.name for f in dataclasses.fields(TrainConfig)
            if f.name != "seed" and f.name in frame]


def noise_margin(frame: pd.DataFrame, test_size: int | None = None) -> float:
    """max(MARGIN_FLOOR, 2 x :func:`seed_spread`) of the cells within NEAR_BEST of their
    point's best; with no such cell of several seeds, of every cell with several seeds.

    With one seed per cell: MARGIN_FLOOR + 2 x the binomial standard error of an accuracy
    measured on ``test_size`` test examples, at the best accuracy of ``frame`` (the level
    the verdicts compare at; 90% if nothing completed), or just MARGIN_FLOOR if
    ``test_size`` is unknown."""
    for near_best in (NEAR_BEST, None):
        spread = seed_spread(frame, near_best)
        if spread is not None:
            return max(MARGIN_FLOOR, 2 * spread)
    if test_size:
        # (a frame with no stored trial has no score column)
        scores = frame.loc[frame["status"] == "complete", "score"] if len(frame) else None
        level = min(1.0, float(scores.max())) if scores is not None and len(scores) else 0.9
        return MARGIN_FLOOR + 2 * math.sqrt(level * (1 - level) / test_size)
    return MARGIN_FLOOR


def best_first(summary: pd.DataFrame, by=()) -> pd.DataFrame:
    """``summary``'s cells ordered best first within each ``by`` group (none: all of them):
    the highest median score first, ties the smaller eta_tilde. The one rule by which every
    best in the book is chosen."""
    by = list(by)
    return summary.sort_values([*by, "median", "log2_base_lr"],
                               ascending=[True] * len(by) + [False, True], kind="stable")


def best_per_batch(summary: pd.DataFrame, by: str = "batch_size") -> pd.DataFrame:
    """Per value of ``by``: the cell with the highest median score (ties: the smaller
    eta_tilde, :func:`best_first`), with its spread over seeds."""
    best = best_first(summary, [by]).groupby(by, sort=True, dropna=False).head(1).set_index(by)
    return best[["log2_base_lr", "median", "low", "high", "seeds", "diverged"]]


def good_range(summary: pd.DataFrame, margin: float, *, reference: str = "global"
               ) -> pd.DataFrame:
    """Per m: the eta_tilde (log2) whose median score is within ``margin`` of the best.

    ``reference="global"``: of the best over every m (the paper's "range of learning rates
    that reach the best results"); ``"own"``: of that m's own best (how flat its curve is).
    Columns: lowest, highest, octaves (count of grid points within margin), tried (grid
    points tried at that m).
    """
    if reference not in ("global", "own"):
        raise ValueError(f"reference must be 'global' or 'own', got {reference!r}")
    groups = summary.groupby("batch_size")
    bar = (summary["median"].max() if reference == "global"
           else groups["median"].transform("max")) - margin
    good = summary[summary["median"] >= bar].groupby("batch_size")["log2_base_lr"]
    low, high, count = good.min(), good.max(), good.count()
    rows = [{"batch_size": m, "lowest": low.get(m), "highest": high.get(m),
             "octaves": int(count.get(m, 0)), "tried": int(tried)}
            for m, tried in groups.size().items()]
    return pd.DataFrame(rows).set_index("batch_size")


def edges_reached(summary: pd.DataFrame, margin: float, by=("batch_size",)) -> pd.DataFrame:
    """Per m (or per ``by`` group, e.g. (m, m_BN)): whether the tried eta_tilde window shows
    both sides of that group's best.

    ``slow_side``: the smallest tried eta_tilde scores more than ``margin`` below the best;
    ``failing_side``: the largest tried eta_tilde does (or diverged in every seed); ``inside``:
    the best is not at either end of the window. Where a side is missing the window should
    be widened (``best`` at the window's end means the optimum itself may lie outside it).
    """
    by = list(by)
    rows = []
    for m, cells in summary.sort_values("log2_base_lr").groupby(by if len(by) > 1 else by[0]):
        top = cells["median"].max()
        first, last = cells.iloc[0], cells.iloc[-1]
        best = best_first(cells).iloc[0]
        key = dict(zip(by, m if len(by) > 1 else (m,)))
        rows.append({**key, "tried": f"2^{int(first['log2_base_lr'])} to "
                                     f"2^{int(last['log2_base_lr'])}",
                     "best": int(best["log2_base_lr"]),
                     "slow_side": bool(first["median"] < top - margin),
                     "failing_side": bool(last["median"] < top - margin
                                          or last["diverged"] == last["seeds"]),
                     "inside": first["log2_base_lr"] < best["log2_base_lr"]
                     < last["log2_base_lr"]})
    return pd.DataFrame(rows).set_index(by)


def short_windows(edges: pd.DataFrame) -> pd.DataFrame:
    """The rows of an :func:`edges_reached` table whose window misses a side (no slow side
    or no failing side) or has its best at an end."""
    return edges[~(edges["slow_side"] & edges["failing_side"] & edges["inside"])]


def _stored(frame: pd.DataFrame) -> pd.DataFrame:
    """The trials of ``frame`` that were tried (complete or diverged): failed runs left out."""
    return frame[frame["status"] != "failed"] if "status" in frame else frame


def curve_columns(frame: pd.DataFrame) -> list[str]:
    """The columns that name a curve (one config but eta_tilde and the seed) in ``frame``:
    m first, then every other cell column whose value varies between its trials."""
    varying = [name for name in cell_columns(frame)
               if name not in ("base_lr", "batch_size") and frame[name].nunique(dropna=False) > 1]
    return ["batch_size", *varying]


def count_curves(frame: pd.DataFrame) -> int:
    """How many curves (see :func:`curve_columns`) the tried trials of ``frame`` draw."""
    done = _stored(frame)
    return 0 if done.empty else done.groupby(curve_columns(done), dropna=False).ngroups


def seed_gaps(frame: pd.DataFrame, min_seeds: int = 3) -> pd.DataFrame:
    """The cells a curve's verdicts rest on that have fewer than ``min_seeds`` seeds: on every
    curve (:func:`curve_columns`), its best eta_tilde (chosen as :func:`best_per_batch`
    chooses) and the tried eta_tilde just below and just above it.

    One row per such cell: the curve's columns (m first), ``log2_base_lr``, ``role`` ("best",
    "below", "above") and ``seeds`` (distinct seeds stored, diverged ones included). Empty
    when every curve has its seeds. A best moves as seeds land, so the check is read again
    after each batch of extra seeds is stored."""
    done = _stored(frame)
    columns = ["log2_base_lr", "role", "seeds"]
    if done.empty:
        return pd.DataFrame(columns=["batch_size", *columns])
    curve = curve_columns(done)
    points = cell_summary(done, by=[*curve, "log2_base_lr"])
    rows = []
    for key, cells in points.groupby(curve, dropna=False, sort=True):
        cells = cells.sort_values("log2_base_lr").reset_index(drop=True)
        place = best_first(cells).index[0]
        for role, at in (("best", place), ("below", place - 1), ("above", place + 1)):
            if 0 <= at < len(cells) and cells.loc[at, "seeds"] < min_seeds:
                rows.append({**dict(zip(curve, key)),
                             "log2_base_lr": int(cells.loc[at, "log2_base_lr"]),
                             "role": role, "seeds": int(cells.loc[at, "seeds"])})
    return pd.DataFrame(rows, columns=[*curve, *columns])


def seed_gap_grid(gaps: pd.DataFrame, seeds=(0, 1, 2)) -> list[dict]:
    """Study grid blocks (the YAML ``grid`` entries) that fill :func:`seed_gaps`: one block
    per gap cell, with every seed of ``seeds`` (the sweep skips those already stored)."""
    blocks = []
    for _, row in gaps.iterrows():
        block = {name: [_plain(row[name])] for name in gaps.columns
                 if name not in ("log2_base_lr", "role", "seeds")}
        lr = int(row["log2_base_lr"])
        block["base_lr"] = {"pow2": [lr, lr]}
        block["seed"] = list(seeds)
        blocks.append(block)
    return blocks


def _plain(value):
    """A numpy scalar as the Python value a study YAML holds (a missing value, NaN in a
    frame, as None: e.g. bn_batch_size None, batch norm over the whole batch)."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def edges_overview(edges: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """:func:`edges_reached` tables of several sets of runs (by label) as one row per set and
    one column per m: each cell the best log2 eta_tilde, followed by what the window misses
    ("no slow side", "no failing side", "best at an end"), if anything."""
    def cell(row) -> str:
        missing = [what for what, ok in (("no slow side", row["slow_side"]),
                                         ("no failing side", row["failing_side"]),
                                         ("best at an end", row["inside"])) if not ok]
        return str(int(row["best"])) + (f" ({', '.join(missing)})" if missing else "")

    rows = {label: {m: cell(row) for m, row in table.iterrows()}
            for label, table in edges.items()}
    overview = pd.DataFrame.from_dict(rows, orient="index")
    overview = overview[sorted(overview.columns)].fillna("")
    overview.columns.name, overview.index.name = "m", "runs"
    return overview


def load_or_run(study_name: str, scale: str, *, data_root=None, progress: bool = False
                ) -> StudyData:
    """A chapter's study at ``scale``.

    At smoke the study's smoke grid is trained now, in this process, into a temporary folder
    (seconds on synthetic data; never stored): the chapter's code path runs end to end. At
    scaled and full only stored records are read; nothing trains (a published sweep takes
    hours: run ``smallbatch sweep <study> --scale <scale>``, see :func:`missing_note`).
    """
    import tempfile

    study = load_study(study_name, scale)
    if scale != "smoke":
        return study_data(study)
    folder = tempfile.mkdtemp(prefix=f"smallbatch-{study_name}-smoke-")
    run_study(study, results_dir=folder, executor="inline", data_root=data_root,
              progress=progress)
    return study_data(study, results_dir=folder)


def study_label(study: Study) -> str:
    """A short name for a study's runs: data, model, batch norm, augmentation."""
    from ..data import DATASET_LABELS

    base = study.base
    from ..models import BATCH_NORM_LABELS as norm
    parts = [DATASET_LABELS.get(base.data, base.data), base.model,
             norm.get(base.batch_norm, base.batch_norm)]
    axes = {name for block in study.blocks for name, _ in block}
    if "augment" not in axes:
        parts.append("augmented" if base.augment else "no augmentation")
    return ", ".join(parts)


def curves_by_batch(data: StudyData, log2_base_lr) -> pd.DataFrame:
    """Per-epoch curves for each batch size at one log2 eta_tilde (an int) or at each m's
    own (a dict m -> log2 eta_tilde), median over seeds. Columns: batch_size, log2_base_lr,
    epoch, steps (SGD steps so far), examples_seen, train_loss, test_accuracy, seeds (runs
    with that epoch; a diverged run ends early)."""
    return curves_from_epochs(epochs_frame(data.results), log2_base_lr)


def curves_from_epochs(epochs: pd.DataFrame, log2_base_lr) -> pd.DataFrame:
    """:func:`curves_by_batch` from a per-epoch frame (``store.epochs_frame``), so that a
    resample of its runs (:func:`~smallbatch.analysis.selection.resample_seeds`) can be read
    the same way."""
    columns = ["batch_size", "log2_base_lr", "epoch", "steps", "examples_seen", "train_loss",
               "test_accuracy", "seeds"]
    if epochs.empty:
        return pd.DataFrame(columns=columns)
    epochs = epochs.copy()
    epochs["log2_base_lr"] = np.log2(epochs["base_lr"]).round().astype(int)
    if isinstance(log2_base_lr, dict):
        keep = epochs["log2_base_lr"] == epochs["batch_size"].map(log2_base_lr)
    else:
        keep = epochs["log2_base_lr"] == log2_base_lr
    picked = epochs[keep].assign(steps=lambda d: d["examples_seen"] // d["batch_size"])
    curves = picked.groupby(["batch_size", "log2_base_lr", "epoch"]).agg(
        steps=("steps", "median"), examples_seen=("examples_seen", "median"),
        train_loss=("train_loss", "median"), test_accuracy=("test_accuracy", "median"),
        seeds=("seed", "nunique")).reset_index()
    return curves[columns]


def ghost_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`cell_summary` per (m, m_BN, eta_tilde); m_BN = None (ordinary batch norm)
    counts as m_BN = m (column ``bn_batch``)."""
    return cell_summary(with_bn_batch(frame), by=("batch_size", "bn_batch", "log2_base_lr"))


def with_bn_batch(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``bn_batch`` column: m_BN, where None (ordinary batch norm) is m."""
    return frame.assign(
        bn_batch=frame["bn_batch_size"].fillna(frame["batch_size"]).astype(int))


def ghost_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (m, m_BN): the best cell over eta_tilde (median over seeds), with its eta_tilde.
    m_BN = None (ordinary batch norm) counts as m_BN = m."""
    cells = ghost_cells(frame)
    ordered = best_first(cells, ["batch_size", "bn_batch"])
    return ordered.groupby(["batch_size", "bn_batch"]).head(1).set_index(
        ["batch_size", "bn_batch"])[["log2_base_lr", "median", "low", "high", "seeds",
                                      "diverged"]]


def fall_with_m(table: pd.DataFrame) -> tuple[float, pd.Series] | None:
    """From a :func:`ghost_table`: how far the best accuracy falls from the smallest m to the
    largest, with ordinary batch norm, and at each m_BN that every m tried (a Series indexed
    by m_BN). None with fewer than two m."""
    best = table["median"]
    sizes = sorted(best.index.get_level_values("batch_size").unique())
    if len(sizes) < 2:
        return None
    lo, hi = sizes[0], sizes[-1]
    common = sorted(set.intersection(*(set(best.loc[m].index) for m in sizes)))
    return (float(best[(lo, lo)] - best[(hi, hi)]),
            pd.Series({b: best[(lo, b)] - best[(hi, b)] for b in common}, dtype=float))
