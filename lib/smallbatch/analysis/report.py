"""The experiments chapters' report tables and text (book: the experiments chapters and "The
full protocol"): which studies are published, each study's protocol and cost, what is
missing and how to train it, and the claims table with its rules and discussion.
"""

from __future__ import annotations

import math

import pandas as pd

from ..store import busy_time
from ..studies import (Study, dry_run, load_study, study_names, training_examples,
                       validate_study)
from ..train import config_hash, warmup_steps
from .cells import (MARGIN_FLOOR, StudyData, _extra_axes, count_curves, seed_gaps,
                    seed_spread, spread_by_point)
from .claims import (AGREES, CANNOT_DECIDE, CAVEATS, DISAGREES, EQUIVALENT, MIN_SEEDS,
                     OUTCOMES)
from .selection import Assessed

__all__ = ["missing_note", "study_protocol", "process_hours", "cost_summary",
           "PUBLISHED_STUDIES", "FULL_ONLY_STUDIES", "SCALED_ONLY_STUDIES", "BATCH_LR_STUDIES",
           "verdict_table", "claims_style", "SCALED_TARGET_CPU_HOURS", "discussion",
           "full_protocol_table", "scaled_costs", "seeds_overview", "margins_overview",
           "ONE_POINT_SHARE", "TRAINING_STUDIES"]


# The studies the experiments chapters publish at the scaled size (``make studies`` runs
# the same list).
PUBLISHED_STUDIES = ("resnet-bn", "resnet-nobn", "warmup", "ghost-bn", "alexnet-bn",
                     "alexnet-convbn", "alexnet-nobn", "cifar-augment", "equal-steps")


# The studies whose grids cross batch size with learning rate, every m given the same
# epochs (book: "Batch size against learning rate", "Budget against batch size"), headline
# first.
BATCH_LR_STUDIES = ("resnet-bn", "resnet-nobn", "alexnet-bn", "alexnet-convbn", "alexnet-nobn",
                    "cifar-augment")


# Published studies with no full version (the full-protocol chapter leaves them out):
# equal-steps gives every m the steps of m = 32's scaled run, a design of this project's,
# not the paper's protocol.
SCALED_ONLY_STUDIES = ("equal-steps", "steps-to-target")


# Studies whose sweep is under way: no chapter reads them yet, and `make studies` does not
# run them (train one with `smallbatch sweep NAME --pack-seeds`). steps-to-target: the
# schedule-free steps-to-target study (book: "Budget against batch size").
TRAINING_STUDIES = ("steps-to-target",)


# Studies with no scaled version (their data is not on this project's machines): the
# experiments chapters show them at the full scale only.
FULL_ONLY_STUDIES = ("cifar100", "imagenet")


# What the scaled studies were to cost in all, in CPU-hours of this project's 2-core machine.
SCALED_TARGET_CPU_HOURS = 6.0


def _none_last(value) -> tuple:
    return (value is None, value if value is not None else 0)


def study_protocol(study: Study) -> pd.DataFrame:
    """One row per batch size m of the study: the eta_tilde tried (log2 range and count),
    seeds (per grid point: one number, or how many points have the most), trials, and the SGD steps and training examples of one run; with a column of
    the other values varied where the grid has more axes (e.g. augmentation on and off), and
    one of warm-up steps where the study's runs warm up."""
    axes = _extra_axes(study)
    rows = {}
    for config in validate_study(study):
        row = rows.setdefault(config.batch_size, {"lrs": set(), "seeds": {}, "trials": 0,
                                                  "examples": training_examples(config),
                                                  "warmup": set(),
                                                  "axes": {a: set() for a in axes}})
        if config.warmup:
            row["warmup"].add(config.warmup_fraction)
        for axis in axes:
            row["axes"][axis].add(getattr(config, axis))
        row["lrs"].add(round(math.log2(config.base_lr)))
        point = (round(math.log2(config.base_lr)),) + tuple(getattr(config, a) for a in axes)
        row["seeds"].setdefault(point, set()).add(config.seed)
        row["trials"] += 1
    warms_up = any(row["warmup"] for row in rows.values())
    table = []
    for m, row in sorted(rows.items()):
        low, high = min(row["lrs"]), max(row["lrs"])
        examples = row["examples"]
        steps = examples // m if examples else None
        line = {"batch size m": m, "log2 η̃ tried": f"{low} to {high}",
                "η̃ values": len(row["lrs"]), "seeds": _seed_counts(row["seeds"]),
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


def _seed_counts(points: dict) -> int | str:
    """The seeds per grid point at one m: a number where every point has the same, else
    e.g. "3 at 3 of 12 points, 1 elsewhere" (a point: an eta_tilde with the other axes)."""
    counts = sorted({len(seeds) for seeds in points.values()})
    if len(counts) == 1:
        return counts[0]
    most = sum(len(seeds) == counts[-1] for seeds in points.values())
    return (f"{counts[-1]} at {most} of {len(points)} points, "
            + " or ".join(map(str, counts[:-1])) + " elsewhere")


# A margin is said to rest on one point of the grid when leaving that point out would cut
# it to less than this share of itself.
ONE_POINT_SHARE = 2 / 3


def margins_overview(frames: dict[str, pd.DataFrame], margins: dict[str, float]
                     ) -> tuple[pd.DataFrame, str]:
    """Each set's noise margin and where it comes from, in percentage points: the pooled seed
    SD it uses (cells near their point's best, :func:`seed_spread`) and the one over every
    cell (not used); the point of the grid whose seeds scatter most (:func:`spread_by_point`),
    its SD, the margin the set would have without it, and whether the margin rests on it.

    Also returns a sentence naming the sets whose margin rests on that one point (without it
    the margin would be under :data:`ONE_POINT_SHARE` of itself): there a larger margin
    makes "equivalent within the noise margin" easier to reach, and "agrees" or "disagrees"
    harder, than the spread at the other points would."""
    rows, resting = [], []
    for label, frame in frames.items():
        margin = margins[label]
        by_point = spread_by_point(frame)
        row = {"runs": label, "noise margin": 100 * margin,
               "seed SD, cells near the best (used)": _points(seed_spread(frame)),
               "seed SD, every cell (not used)": _points(seed_spread(frame, near_best=None)),
               "most scattered point": "", "its seed SD": None, "margin without it": None,
               "margin rests on it": False}
        if len(by_point) > 1:
            top = by_point.iloc[0]
            where = ", ".join(f"{_CURVE_NAMES.get(c, c)} = {_shown(top[c])}"
                              for c in by_point.columns if c not in ("spread", "spread_without"))
            without = max(MARGIN_FLOOR, 2 * top["spread_without"])
            row.update({"most scattered point": where, "its seed SD": 100 * top["spread"],
                        "margin without it": 100 * without})
            row["margin rests on it"] = bool(without < ONE_POINT_SHARE * margin)
            if row["margin rests on it"]:
                resting.append(f"{label} ({where}: {100 * margin:.2f} points with it, "
                               f"{100 * without:.2f} without)")
        rows.append(row)
    table = pd.DataFrame(rows).set_index("runs") if rows else pd.DataFrame()
    if not resting:
        return table, ("No set's margin rests on one point of its grid: leaving out the most "
                       f"scattered point keeps every margin above {ONE_POINT_SHARE:.0%} of "
                       "itself.")
    return table, ("One point of the grid sets most of the margin of " + "; ".join(resting)
                   + ". The verdicts keep the pooled margin, as stated; for "
                   + ("that set" if len(resting) == 1 else "those sets")
                   + ", read \"equivalent within the noise margin\" with this in mind: a "
                   "difference between the narrower margin and the pooled one reads as "
                   "equivalent here, and would count as a difference if the other points' "
                   "seeds alone set the margin.")


def _points(value: float | None) -> float | None:
    return None if value is None else 100 * value


def seeds_overview(frames: dict[str, pd.DataFrame], min_seeds: int = MIN_SEEDS
                   ) -> tuple[pd.DataFrame, str]:
    """The seeds behind each curve's best, for several sets of runs (by label).

    Returns a table with one row per curve short of seeds: its best eta_tilde or the tried
    eta_tilde either side of it has fewer than ``min_seeds`` seeds (:func:`seed_gaps`).
    Indexed by set and curve ("m = 64, m_BN = 8"), it gives the best log2 eta_tilde
    and the short cells ("2^-6 best: 1, 2^-7: 2": log2 eta_tilde, seeds stored). It is empty
    when no curve is short. Also returns a sentence that totals the curves per set."""
    rows, counts = [], []
    for label, frame in frames.items():
        curves = count_curves(frame)
        if not curves:
            continue
        gaps = seed_gaps(frame, min_seeds)
        curve = [c for c in gaps.columns if c not in ("log2_base_lr", "role", "seeds")]
        short = list(gaps.groupby(curve, sort=True, dropna=False)) if len(gaps) else []
        for key, group in short:
            where = ", ".join(f"{_CURVE_NAMES.get(c, c)} = {_shown(v)}"
                              for c, v in zip(curve, key))
            best = group.loc[group["role"] == "best", "log2_base_lr"]
            rows.append({"runs": label, "curve": where,
                         "short cells (log2 η̃ : seeds stored)": ", ".join(
                             f"2^{int(g['log2_base_lr'])}{' best' if g['role'] == 'best' else ''}"
                             f": {int(g['seeds'])}" for _, g in group.iterrows()),
                         "best": "" if best.empty else f"2^{int(best.iloc[0])}"})
        counts.append((label, curves, len(short)))
    columns = ["runs", "curve", "best", "short cells (log2 η̃ : seeds stored)"]
    table = pd.DataFrame(rows, columns=columns).set_index(["runs", "curve"])
    if not counts:
        return table, "No runs are stored yet."
    total = sum(c for _, c, _ in counts)
    short = sum(s for _, _, s in counts)
    if not short:
        return table, (f"Every one of the {total} curves has at least {min_seeds} seeds at its "
                       "best η̃ and at the η̃ tried on either side of it.")
    per_set = "; ".join(f"{label}: {s} of {c}" for label, c, s in counts)
    per_set = f" ({per_set})" if len(counts) > 1 else ""
    return table, (f"{short} of {total} curves have fewer than {min_seeds} seeds at their best "
                   f"η̃ or at the η̃ tried on either side of it{per_set}. "
                   "The table names the cells; where it gives no best, the best has its seeds "
                   "and a neighbour is short. A best moves as seeds land; the study's grid "
                   "gains seeds at the cells named, and a verdict that rests on a best with too "
                   "few seeds reads \"cannot decide\".")


_CURVE_NAMES = {"batch_size": "m", "bn_batch_size": "m_BN"}  # as the chapters write them


def _shown(value) -> str:
    """A curve's setting as the chapters write it: a missing value (m_BN None) as "none"."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and math.isnan(value) or value is None:
        return "none"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def process_hours(frame: pd.DataFrame) -> float:
    """Worker-process hours behind the trials of ``frame``: each trial's busy time (its wall
    time with pauses left out, :func:`smallbatch.store.busy_time`) divided by the size of
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
    ``hours_to_go``: the missing trials' examples at that rate (None when no rate is known
    yet): an estimate, not a bound: a diverged trial stops early, and trials that share
    their cores with other work run slower than the stored ones did.
    """
    trials = data.trials  # validated once, when the study's records were read
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


def _assessed(row) -> Assessed:
    """A claims-table row as an :class:`Assessed`: one already, or a (where, Verdict) pair
    (no held-out reading, no resamples)."""
    if isinstance(row, Assessed):
        return row
    where, verdict = row
    return Assessed(where, verdict, None, None, 0)


HELD_OUT_NONE = "not read (the rule chooses no best)"


def verdict_table(rows, runs: bool = True) -> tuple[pd.DataFrame, str]:
    """A chapter's claims table from :class:`Assessed` verdicts (or (where, Verdict) pairs):
    one row per verdict (which runs, unless ``runs`` is False; the paper's claim; our
    measurement; the verdict; where any row was assessed, the verdict with held-out bests
    and the share of seed resamples that give the same verdict), and the rules as
    markdown, each claim's rule stated once rather than in every row that uses it."""
    rows = [_assessed(row) for row in rows]
    checked = any(a.resamples or a.held_out is not None for a in rows)
    columns = ["runs", "paper's claim", "our measurement", "verdict"]
    extra = ["held out", "same verdict in resamples"] if checked else []
    records = []
    for a in rows:
        record = {"runs": a.where, **a.verdict.as_row()}
        if checked:
            if a.held_out is None:
                record["held out"] = HELD_OUT_NONE
            elif a.held_out.measurement == a.verdict.measurement:
                # the measurement names only the bests the rule reads: others may differ
                record["held out"] = f"{a.held_out.verdict} (the same measurement)"
            else:
                record["held out"] = f"{a.held_out.verdict}: {a.held_out.measurement}"
            record["same verdict in resamples"] = (
                f"{a.same:.0%} of {a.resamples}" if a.resamples else "not resampled")
        records.append(record)
    table = pd.DataFrame(records, columns=columns + extra + ["rule"])
    table = table[(columns if runs else columns[1:]) + extra]
    rules: dict[str, list[str]] = {}
    for a in rows:
        if a.verdict.rule not in rules.setdefault(a.verdict.claim, []):
            rules[a.verdict.claim].append(a.verdict.rule)
    text = "\n".join(f"- *{claim}*: " + "; or, where stated, ".join(texts) + "."
                     for claim, texts in rules.items())
    if checked and rules:
        text += "\n\n" + SELECTION_RULES
    return table, ("**Rules** (margin: the noise margin named in each measurement):\n\n" + text
                   if rules else "")


FRAGILE = 0.8  # a verdict given in fewer resamples than this is called fragile


SELECTION_RULES = (
    "*Held out*: each m's best η̃ (or each (m, m_BN)'s) chosen on the median of the other "
    "seeds and scored on the seed left out, each seed left out once; the held-out score of "
    "a best is the median of those scores, and a best scored on fewer seeds than the rule "
    "asks for cannot decide. The margins and the window edges stay the in-sample ones. "
    f"*Same verdict in resamples*: the runs of every cell redrawn with replacement (as many "
    "as it has; a cell with one run cannot vary), the rule read again on each redraw, and "
    "the share of redraws that give the table's verdict. A verdict that changes when held "
    f"out, or that fewer than {FRAGILE:.0%} of the resamples give, is named in the reading "
    "below the table.")


def claims_style(table: pd.DataFrame):
    """How the chapters show a claims table (:func:`verdict_table`): its text left-aligned
    and HTML-escaped, without the index."""
    return table.style.format(escape="html").hide(axis="index").set_properties(
        **{"text-align": "left"})


def discussion(rows) -> str:
    """Markdown: which claims the stored runs confirm, contradict, find no difference for, or
    cannot decide, and beside every claim, whatever its verdict, the differences from the
    paper's protocol that bear on it (``CAVEATS``), agreeing verdicts first. ``rows``:
    (where, Verdict) pairs, where naming the runs."""
    rows = [_assessed(row) for row in rows]
    groups: dict[str, dict[str, list[str]]] = {kind: {} for kind in OUTCOMES}
    for a in rows:
        groups[a.verdict.verdict].setdefault(a.verdict.claim, []).append(
            a.where + _robustness(a))
    if not any(groups.values()):
        return "No verdicts yet: no study of this chapter has stored runs at this scale."
    heads = {AGREES: "These runs agree with the paper",
             DISAGREES: "These runs disagree with the paper",
             EQUIVALENT: "These runs find no difference larger than the noise margin "
                         "(which counts against the claimed effect)",
             CANNOT_DECIDE: "These runs cannot decide (too few seeds behind a best, a best "
                            "at an end of its window or a window that misses a side, too "
                            "few points, or a premise of the claim not met: each "
                            "measurement names which)"}
    parts = []
    for kind, claims in groups.items():
        if not claims:
            continue
        lines = []
        for claim, wheres in claims.items():
            line = f"- *{claim}*: {'; '.join(wheres)}."
            if claim in CAVEATS:
                line += f" *Caveat:* {CAVEATS[claim]}."
            lines.append(line)
        parts.append(f"**{heads[kind]}:**\n\n" + "\n".join(lines))
    return "\n\n".join(parts)


def _robustness(a: Assessed) -> str:
    """What the discussion says after a verdict's runs: where its held-out reading differs,
    and where the seed resamples give it less than FRAGILE of the time."""
    notes = []
    if a.held_out is not None and a.held_out.verdict != a.verdict.verdict:
        notes.append(f"held out: {a.held_out.verdict}")
    if a.resamples and a.same is not None and a.same < FRAGILE:
        notes.append(f"fragile: the same verdict in {a.same:.0%} of seed resamples")
    return f" ({'; '.join(notes)})" if notes else ""


def full_protocol_table() -> pd.DataFrame:
    """The full protocol, one row per study that has one (book: "The full protocol"): its
    data, model, batch norm, augmentation, weight decay, epochs, batch sizes, log2 eta_tilde
    range, trials, stored trials and training examples (None where only the data set's
    files tell its size), from each study's full-scale dry run."""
    rows = []
    for name in study_names():
        if name == "smoke" or name in SCALED_ONLY_STUDIES:  # no full version
            continue
        study = load_study(name, "full")
        base, table = study.base, dry_run(study)
        rows.append({
            "study": name, "data": base.data, "model": base.model,
            "batch norm": base.batch_norm,
            "augmentation": "grid" if "augment" in _extra_axes(study) else base.augment,
            "weight decay": base.weight_decay, "epochs": base.num_epochs,
            "batch sizes": f"{table['batch_size'].min()}-{table['batch_size'].max()}",
            "log2 η̃": f"{table['log2_base_lr'].min():.0f} to {table['log2_base_lr'].max():.0f}",
            "trials": len(table), "stored": int((table["status"] != "missing").sum()),
            "training examples": (int(table["examples"].sum())
                                  if table["examples"].notna().all() else None)})
    return pd.DataFrame(rows).set_index("study")


def scaled_costs(data: list[StudyData]) -> tuple[pd.DataFrame, str, str]:
    """The published studies' cost at the scaled size (book: "The full protocol").

    Returns one row per study (:func:`cost_summary`, with the chapter's column names); a
    sentence that totals them and sets them against :data:`SCALED_TARGET_CPU_HOURS` (the
    README quotes it); and what took them past that budget, or how to measure a study with
    no stored trial ("" when neither applies)."""
    table = pd.DataFrame([cost_summary(d) for d in data]).set_index("study")
    done, to_go = table["process_hours"].sum(), table["hours_to_go"]
    totals = (f"{table['trials'].sum():,} trials and "
              f"{table['examples'].sum() / 1e6:.1f}M training examples; the "
              f"{table['stored'].sum():,} stored took {done:.1f} process-hours")
    # a configuration that two studies share (equal-steps reuses the headline's m = 32 runs)
    # is one run, trained once: count its time once
    frames = [d.frame for d in data if not d.frame.empty]
    runs = pd.concat(frames) if frames else None
    if runs is not None and runs["config_hash"].duplicated().any():
        distinct = runs.drop_duplicates("config_hash")
        done = process_hours(distinct)
        totals += (f", counting {len(runs) - len(distinct)} runs twice that two studies "
                   f"share: {len(distinct):,} distinct runs took {done:.1f}")
    totals += "."
    why = ""
    if to_go.notna().all():
        total = done + to_go.sum()
        if table["stored"].sum() < table["trials"].sum():
            totals += (f" At the stored trials' rates the rest would take about "
                       f"{to_go.sum():.1f} more (a run that diverges stops early; one that "
                       f"shares its cores takes longer): about {total:.0f} process-hours in "
                       "all,")
        else:
            totals += " Every trial is stored: that is"
        totals += (f" {total / SCALED_TARGET_CPU_HOURS:.1f} times the "
                   f"{SCALED_TARGET_CPU_HOURS:.0f} CPU-hours this project set as the scaled "
                   "studies' budget.")
        if total > SCALED_TARGET_CPU_HOURS:
            why = ("What took them past it: three seeds per point for the headline "
                   "studies and at every best elsewhere, an η̃ window at every m wide enough "
                   "to show both the slow side and the failing side, the CIFAR-10 pair, and "
                   "the equal-steps study, whose largest batch trains hundreds of epochs. "
                   "Cutting any of these would cut what the chapters can say, so the studies "
                   "were kept at this size and their cost is stated here instead.")
    else:
        why = ("Some studies have no stored trial yet, so no rate: their cost is not "
               "estimated here (`smallbatch sweep <study> --dry-run --calibrate` measures it).")
    table = table.rename(columns={
        "examples": "training examples", "process_hours": "process-hours (stored)",
        "examples_per_second": "examples/s per process", "hours_to_go": "process-hours to go"})
    return table, totals, why
