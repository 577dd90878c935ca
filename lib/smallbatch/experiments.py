"""From a study's stored trials to the experiments chapters' tables and verdicts.

Every number the experiments chapters print goes through here, computed from the records
in ``results/<study>/<scale>``: nothing is typed in by hand. The rules are stated in the
docstrings and printed by the book beside each verdict.

Conventions (book: "Batch size against learning rate"):

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

from .results import busy_time, load_records, trials_frame
from .sweep import Study, load_study, validate_study
from .train import TrainConfig, config_hash

__all__ = ["StudyData", "study_data", "variants", "compared_runs", "load_or_run", "missing_note",
           "study_label", "study_protocol", "process_hours", "cost_summary", "cell_summary",
           "seed_spread", "noise_margin", "NEAR_BEST", "best_per_batch", "good_range",
           "edges_reached", "edges_overview", "Verdict", "MARGIN_FLOOR", "PUBLISHED_STUDIES",
           "FULL_ONLY_STUDIES", "verdict_table",
           "SCALED_TARGET_CPU_HOURS", "verdict_small_batches_best", "verdict_range_shrinks",
           "verdict_bn_widens_gap", "curves_by_batch", "ghost_cells", "ghost_table",
           "verdict_small_bn_batch", "verdict_bn_batch_independent", "verdict_warmup", "CAVEATS",
           "discussion", "verdict_curves_small_ahead"]

MARGIN_FLOOR = 0.01  # one percentage point
# The seed spread behind the noise margin is pooled over the cells within this much of the
# best at their point of the grid (see seed_spread).
NEAR_BEST = 0.05

# The studies the experiments chapters publish at the scaled size (``make studies`` runs
# the same list).
PUBLISHED_STUDIES = ("resnet-bn", "resnet-nobn", "warmup", "ghost-bn", "alexnet-bn",
                     "alexnet-convbn", "alexnet-nobn", "cifar-augment")
# Studies with no scaled version (their data is not on this project's machines): the
# experiments chapters show them at the full scale only.
FULL_ONLY_STUDIES = ("cifar100", "imagenet")
# What the scaled studies were to cost in all, in CPU-hours of this project's 2-core machine.
SCALED_TARGET_CPU_HOURS = 6.0


@dataclass
class StudyData:
    """A study's trials joined with its stored records.

    ``frame``: one row per stored trial of the study (``results.trials_frame`` columns plus
    ``log2_base_lr`` and ``score``); ``missing``: the trials with no record yet;
    ``commits``: the code commits that produced the records; ``problems``: unreadable records.
    """

    study: Study
    frame: pd.DataFrame
    total: int
    missing: int
    commits: tuple[str, ...]
    problems: list[str]
    num_classes: int
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
    from .data import NUM_CLASSES

    if not isinstance(study, Study):
        study = load_study(study, scale)
    if num_classes is None:
        num_classes = NUM_CLASSES[study.base.data]
    trials = validate_study(study)
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
                     results=kept)


CELL_AXES = ("batch_size", "base_lr", "seed")  # what a chapter's curves are drawn over


def _axis_value_label(axis: str, value) -> str:
    if axis == "augment":
        return "augmented" if value else "no augmentation"
    return f"{axis} = {value}"


def _extra_axes(study: Study) -> list[str]:
    """The axes a study's grid varies besides m, eta_tilde and the seed (sorted)."""
    return sorted({name for block in study.blocks for name, _ in block} - set(CELL_AXES))


def variants(data: StudyData) -> dict[str, StudyData]:
    """A study split along every axis its grid varies besides m, eta_tilde and the seed.

    Each side is compared on its own, like a study of its own: ``cifar-augment`` gives one
    set of runs with augmentation and one without. Keys are labels (:func:`study_label` plus
    the side); a study without such an axis is returned whole under its label.
    """
    axes = _extra_axes(data.study)
    label = study_label(data.study)
    if not axes:
        return {label: data}

    def key(obj) -> tuple:
        return tuple(getattr(obj, axis) for axis in axes)

    trials = validate_study(data.study)
    out = {}
    for value in sorted({key(c) for c in trials}):
        wanted = [c for c in trials if key(c) == value]
        kept = [r for r in data.results if key(r.config) == value]
        frame = data.frame
        if not frame.empty:
            mask = np.ones(len(frame), dtype=bool)
            for axis, v in zip(axes, value):
                mask &= (frame[axis] == v).to_numpy()
            frame = frame[mask].reset_index(drop=True)
        side = ", ".join(_axis_value_label(a, v) for a, v in zip(axes, value))
        out[f"{label}, {side}"] = dataclasses.replace(
            data, frame=frame, total=len(wanted), missing=len(wanted) - len(kept),
            commits=_commits(frame), results=kept,
            selection=", ".join(f"{a} = {v}" for a, v in zip(axes, value)))
    return out


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
    minimum, maximum and standard deviation of the score over seeds."""
    by = list(by)
    grouped = frame.groupby(by)
    summary = grouped.agg(seeds=("seed", "nunique"),
                          diverged=("status", lambda s: int((s == "diverged").sum())),
                          median=("score", "median"), low=("score", "min"),
                          high=("score", "max"), std=("score", "std"))
    return summary.reset_index()


def seed_spread(frame: pd.DataFrame, near_best: float | None = NEAR_BEST) -> float | None:
    """The pooled standard deviation over seeds of the cells (configs that differ only in the
    seed) where more than one seed completed, or None if there is no such cell.

    ``near_best``: pool only the cells whose median is within this much of the best median
    at their point of the grid (the same config but eta_tilde), i.e. the points the
    verdicts compare; None pools every cell. Cells near the divergence edge scatter far
    more between seeds than the rest (7 points at the edge against about half a point near
    the best in resnet-bn), and would otherwise set the margin for every comparison.
    """
    complete = frame[frame["status"] == "complete"]
    # a cell is a config up to its seed: repeats of one cell differ only in the seed (in a
    # ghost-BN study, runs that differ in m_BN are different cells, not repeats)
    cell = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "seed"
            and f.name in complete]
    if complete.empty:
        return None
    groups = complete.groupby(cell, dropna=False)["score"]
    table = pd.DataFrame({"count": groups.count(), "var": groups.var(ddof=1),
                          "median": groups.median()})
    usable = table["count"] > 1
    if near_best is not None:
        point = [name for name in cell if name != "base_lr"]
        best = table.groupby(level=point, dropna=False)["median"].transform("max")
        usable &= best - table["median"] <= near_best
    table = table[usable]
    if table.empty:
        return None
    dof = (table["count"] - 1).sum()
    return math.sqrt(float(((table["count"] - 1) * table["var"]).sum()) / dof)


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
        scores = frame.loc[frame["status"] == "complete", "score"]
        level = min(1.0, float(scores.max())) if len(scores) else 0.9
        return MARGIN_FLOOR + 2 * math.sqrt(level * (1 - level) / test_size)
    return MARGIN_FLOOR


def best_per_batch(summary: pd.DataFrame, by: str = "batch_size") -> pd.DataFrame:
    """Per value of ``by``: the cell with the highest median score (ties: the smaller
    eta_tilde), with its spread over seeds."""
    ordered = summary.sort_values([by, "median", "log2_base_lr"], ascending=[True, False, True])
    best = ordered.groupby(by, sort=True).head(1).set_index(by)
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
    rows = []
    top = summary["median"].max()
    for m, cells in summary.groupby("batch_size"):
        bar = (top if reference == "global" else cells["median"].max()) - margin
        good = cells[cells["median"] >= bar]["log2_base_lr"]
        rows.append({"batch_size": m, "lowest": good.min() if len(good) else None,
                     "highest": good.max() if len(good) else None, "octaves": len(good),
                     "tried": len(cells)})
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
        best = cells.sort_values(["median", "log2_base_lr"], ascending=[False, True]).iloc[0]
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


# ------------------------------------------------------------------------------ loading

def load_or_run(study_name: str, scale: str, *, data_root=None, progress: bool = False
                ) -> StudyData:
    """A chapter's study at ``scale``.

    At smoke the study's smoke grid is trained now, in this process, into a temporary folder
    (seconds on synthetic data; never stored): the chapter's code path runs end to end. At
    scaled and full only stored records are read; nothing trains (a published sweep takes
    hours: run ``smallbatch sweep <study> --scale <scale>``, see :func:`missing_note`).
    """
    import tempfile

    from .sweep import run_study

    study = load_study(study_name, scale)
    if scale != "smoke":
        return study_data(study)
    folder = tempfile.mkdtemp(prefix=f"smallbatch-{study_name}-smoke-")
    run_study(study, results_dir=folder, executor="inline", data_root=data_root,
              progress=progress)
    return study_data(study, results_dir=folder)


def study_label(study: Study) -> str:
    """A short name for a study's runs: data, model, batch norm, augmentation."""
    from .data import DATASET_LABELS

    base = study.base
    norm = {"all": "batch norm", "none": "no batch norm", "conv": "BN on conv layers"}
    parts = [DATASET_LABELS.get(base.data, base.data), base.model,
             norm.get(base.batch_norm, base.batch_norm)]
    axes = {name for block in study.blocks for name, _ in block}
    if "augment" not in axes:
        parts.append("augmented" if base.augment else "no augmentation")
    return ", ".join(parts)


def _none_last(value) -> tuple:
    return (value is None, value if value is not None else 0)


def study_protocol(study: Study) -> pd.DataFrame:
    """One row per batch size m of the study: the eta_tilde tried (log2 range and count),
    seeds, trials, and the SGD steps and training examples of one run; with a column of
    the other values varied where the grid has more axes (e.g. augmentation on and off), and
    one of warm-up steps where the study's runs warm up."""
    from .sweep import training_examples
    from .train import warmup_steps

    axes = _extra_axes(study)
    rows = {}
    for config in validate_study(study):
        row = rows.setdefault(config.batch_size, {"lrs": set(), "seeds": set(), "trials": 0,
                                                  "examples": training_examples(config),
                                                  "warmup": set(),
                                                  "axes": {a: set() for a in axes}})
        if config.warmup:
            row["warmup"].add(config.warmup_fraction)
        for axis in axes:
            row["axes"][axis].add(getattr(config, axis))
        row["lrs"].add(round(math.log2(config.base_lr)))
        row["seeds"].add(config.seed)
        row["trials"] += 1
    warms_up = any(row["warmup"] for row in rows.values())
    table = []
    for m, row in sorted(rows.items()):
        low, high = min(row["lrs"]), max(row["lrs"])
        examples = row["examples"]
        steps = examples // m if examples else None
        line = {"batch size m": m, "log2 η̃ tried": f"{low} to {high}",
                "η̃ values": len(row["lrs"]), "seeds": len(row["seeds"]),
                "trials": row["trials"], "SGD steps per run": steps,
                "training examples per run": examples}
        if axes:  # the trials at one m are the product of these with eta_tilde and seeds
            line["also varied"] = "; ".join(
                f"{axis}: " + ", ".join(str(v) for v in sorted(values, key=_none_last))
                for axis, values in row["axes"].items())
        if warms_up:
            line["warm-up steps"] = ", ".join(
                str(warmup_steps(steps, f)) for f in sorted(row["warmup"])) \
                if steps and row["warmup"] else None
        table.append(line)
    return pd.DataFrame(table).set_index("batch size m")


def process_hours(frame: pd.DataFrame) -> float:
    """Worker-process hours behind the trials of ``frame``: each trial's busy time (its wall
    time with pauses left out, :func:`smallbatch.results.busy_time`) divided by the size of
    the lock-step ensemble it trained in (its members share one wall time)."""
    if frame.empty:
        return 0.0
    sizes = frame["provenance_ensemble_size"].fillna(1) if "provenance_ensemble_size" in frame \
        else 1
    return float((frame["busy_time"] / sizes).sum() / 3600)


def cost_summary(data: StudyData) -> dict:
    """What a study costs at its scale, from its definition and its stored trials.

    ``examples``: training examples of every trial run to the end (a diverged trial stops
    early, so this is an upper bound); ``process_hours``: measured, of the stored trials
    (:func:`process_hours`, pauses left out); ``examples_per_second``: the rate of one worker
    process over the stored trials that ran to the end (the same busy time);
    ``hours_to_go``: the missing trials' examples at that rate (an upper bound for the same
    reason; None when no rate is known yet).
    """
    from .sweep import training_examples

    trials = validate_study(data.study)
    stored = {config_hash(r.config) for r in data.results}
    examples = [training_examples(c) or 0 for c in trials]
    missing = sum(e for c, e in zip(trials, examples) if config_hash(c) not in stored)
    done_examples = done_seconds = 0.0
    for result in data.results:
        if result.status == "complete" and result.wall_time:
            done_examples += training_examples(result.config) or 0
            done_seconds += busy_time(result) / (result.provenance.get("ensemble_size") or 1)
    rate = done_examples / done_seconds if done_seconds else None
    return {"study": data.study.name, "trials": data.total,
            "stored": data.total - data.missing, "examples": sum(examples),
            "process_hours": process_hours(data.frame),
            "examples_per_second": rate,
            "hours_to_go": missing / rate / 3600 if rate else (0.0 if not missing else None)}


def missing_note(data: StudyData) -> str:
    """Markdown: what is stored, what is missing, and the command that fills it in."""
    if data.complete:
        return (f"All {data.total} trials of study `{data.study.name}` at the "
                f"{data.study.scale} scale are stored.")
    command = f"smallbatch sweep {data.study.name} --scale {data.study.scale}"
    stored = data.total - data.missing
    if stored == 0:
        return (f"**Not run:** none of the {data.total} trials of study `{data.study.name}` "
                f"({data.study.scale}) is stored, so nothing below shows it. To train them "
                f"(resumable): `{command}` (add `--dry-run --calibrate` to see the cost "
                "first).")
    return (f"**Incomplete:** {stored} of {data.total} trials of study `{data.study.name}` "
            f"({data.study.scale}) are stored; {data.missing} are missing. What follows uses "
            f"only the stored trials. To train the rest (resumable; stored trials are "
            f"skipped): `{command}` (add `--dry-run --calibrate` to see the cost first).")


# ------------------------------------------------------------------------------ verdicts

CLAIM_SMALL_BEST = "Best results at m = 2 ... 32"
CLAIM_RANGE_SHRINKS = "The range of η̃ that trains well shrinks as m grows"
CLAIM_BN_GAP = "Without batch norm the advantage of small batches is larger"
CLAIM_SMALL_BN_BATCH = "A small batch-norm batch is best (m_BN 4-8 on CIFAR-10)"
CLAIM_BN_BATCH_INDEPENDENT = "The best m_BN hardly depends on m"
CLAIM_WARMUP_HELPS = "Warm-up helps large batches"
CLAIM_WARMUP_GAP = "... but does not close the gap to small batches"
CLAIM_CURVES = ("At a fixed η̃, small batches are not behind per epoch (large batches use "
                "stale gradients; the paper's section 2 and Fig 4)")

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
}


def verdict_table(rows, runs: bool = True) -> tuple[pd.DataFrame, str]:
    """A chapter's claims table from (where, Verdict) pairs: one row per verdict (which runs,
    unless ``runs`` is False; the paper's claim; our measurement; the verdict), and the rules
    as markdown, each claim's rule stated once rather than in every row that uses it."""
    columns = ["runs", "paper's claim", "our measurement", "verdict"]
    table = pd.DataFrame([{"runs": where, **verdict.as_row()} for where, verdict in rows],
                         columns=columns + ["rule"])[columns if runs else columns[1:]]
    rules: dict[str, list[str]] = {}
    for _, verdict in rows:
        if verdict.rule not in rules.setdefault(verdict.claim, []):
            rules[verdict.claim].append(verdict.rule)
    text = "\n".join(f"- *{claim}*: " + "; or, where stated, ".join(texts) + "."
                     for claim, texts in rules.items())
    return table, ("**Rules** (margin: the noise margin named in each measurement):\n\n" + text
                   if rules else "")


def discussion(rows) -> str:
    """Markdown: which claims the stored runs confirm, contradict or leave open, and for
    each claim they do not confirm the differences from the paper's protocol that bear on
    it (``CAVEATS``). ``rows``: (where, Verdict) pairs, where naming the runs."""
    groups: dict[str, dict[str, list[str]]] = {"agrees": {}, "disagrees": {},
                                               "inconclusive": {}}
    for where, verdict in rows:
        groups[verdict.verdict].setdefault(verdict.claim, []).append(where)
    if not any(groups.values()):
        return "No verdicts yet: no study of this chapter has stored runs at this scale."
    heads = {"agrees": "These runs agree with the paper",
             "disagrees": "These runs disagree with the paper",
             "inconclusive": "These runs cannot decide (differences within the noise margin, "
                             "or too few points)"}
    parts = []
    for kind, claims in groups.items():
        if not claims:
            continue
        lines = []
        for claim, wheres in claims.items():
            line = f"- *{claim}*: {'; '.join(wheres)}."
            if kind != "agrees" and claim in CAVEATS:
                line += f" What may explain it: {CAVEATS[claim]}."
            lines.append(line)
        parts.append(f"**{heads[kind]}:**\n\n" + "\n".join(lines))
    return "\n\n".join(parts)


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


def curves_by_batch(data: StudyData, log2_base_lr) -> pd.DataFrame:
    """Per-epoch curves for each batch size at one log2 eta_tilde (an int) or at each m's
    own (a dict m -> log2 eta_tilde), median over seeds. Columns: batch_size, log2_base_lr,
    epoch, steps (SGD steps so far), examples_seen, train_loss, test_accuracy, seeds (runs
    with that epoch; a diverged run ends early)."""
    from .results import epochs_frame

    epochs = epochs_frame(data.results)
    columns = ["batch_size", "log2_base_lr", "epoch", "steps", "examples_seen", "train_loss",
               "test_accuracy", "seeds"]
    if epochs.empty:
        return pd.DataFrame(columns=columns)
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


# ------------------------------------------------------------------------------ ghost BN

SMALL_BN_BATCH = 16  # "small" m_BN: the paper's best was 4-8 on CIFAR, 16-64 on ImageNet


def ghost_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`cell_summary` per (m, m_BN, eta_tilde); m_BN = None (ordinary batch norm)
    counts as m_BN = m (column ``bn_batch``)."""
    frame = frame.assign(bn_batch=frame["bn_batch_size"].fillna(frame["batch_size"]).astype(int))
    return cell_summary(frame, by=("batch_size", "bn_batch", "log2_base_lr"))


def ghost_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (m, m_BN): the best cell over eta_tilde (median over seeds), with its eta_tilde.
    m_BN = None (ordinary batch norm) counts as m_BN = m."""
    cells = ghost_cells(frame)
    ordered = cells.sort_values(["batch_size", "bn_batch", "median", "log2_base_lr"],
                                ascending=[True, True, False, True])
    return ordered.groupby(["batch_size", "bn_batch"]).head(1).set_index(
        ["batch_size", "bn_batch"])[["log2_base_lr", "median", "low", "high", "seeds",
                                      "diverged"]]


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


# ------------------------------------------------------------------------------ warm-up

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
