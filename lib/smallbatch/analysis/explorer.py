"""The explorer's data (book: "Explore the stored runs"): every stored run of the published
studies, by set of runs and (m, eta_tilde) cell, compact enough to embed in a static page.

One set of runs is a study, split along the axes its grid varies besides m, eta_tilde, the
seed and what is fixed by m (equal-steps sets its epochs by m), so that (m, eta_tilde)
names one cell of it. A cell keeps, for each seed: its status, its headline score (the
median test accuracy of its last five epochs; chance for a diverged run), where it
diverged, and its per-epoch test accuracy and training loss; and, once per cell, the SGD
steps of one epoch. Each set also keeps each m's accuracy-against-eta_tilde curve (median
over seeds), its window and its best.

:func:`cell_text` says in one line what a cell is: the static page's script
(``book/_static/explorer.js``) writes the same line, and the browser check holds the two
against each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


from .cells import StudyData, _extra_axes, best_per_batch, cell_summary, variants

__all__ = ["explorer_sets", "explorer_data", "cell_text", "best_cell", "DIGITS"]


DIGITS = 4  # decimals kept of every accuracy and loss (a test set of 5,000 resolves 0.0002)


def _fixed_by_m(data: StudyData, axis: str) -> bool:
    """True if every m of the study's grid has one value of ``axis`` (equal-steps' epochs)."""
    values: dict[int, set] = {}
    for config in data.trials:
        values.setdefault(config.batch_size, set()).add(getattr(config, axis))
    return all(len(v) == 1 for v in values.values())


def explorer_sets(studies) -> dict[str, StudyData]:
    """The sets of runs the explorer offers, by label ("<study>: " and the
    :func:`~smallbatch.analysis.variants` label), in the order of ``studies``: each study
    split along the axes its grid varies besides m, eta_tilde, the seed and what m fixes,
    so that (m, eta_tilde, seed) names one run of a set."""
    out: dict[str, StudyData] = {}
    for data in studies:
        axes = [a for a in _extra_axes(data.study) if not _fixed_by_m(data, a)]
        for label, side in variants(data, axes).items():
            out[f"{data.study.name}: {label}"] = side
    return out


def _round(values, digits: int = DIGITS) -> list:
    return [None if v is None or not math.isfinite(v) else round(float(v), digits)
            for v in values]


def _key(m: int, log2_lr: int) -> str:
    return f"{int(m)}|{int(log2_lr)}"


def explorer_data(sets: Mapping[str, StudyData], digits: int = DIGITS, *,
                  mine: Mapping[str, list] | None = None) -> dict:
    """The explorer's JSON-ready data: ``{"sets": [...]}``, one entry per set of runs (see
    the module docstring for what each holds). Sets with no stored run are left out.

    ``mine``: a reader's own runs by set label (Jupyter only, :mod:`smallbatch.live`): they
    join their cells, each marked in the cell's ``mine`` list, and change neither the
    curves, the windows nor the bests, which are the published runs'."""
    out = []
    for label, data in sets.items():
        frame = data.frame
        if frame.empty:
            continue
        chance = 1.0 / data.num_classes
        cells: dict[str, dict] = {}
        published = sorted(data.results, key=lambda r: r.config.seed)
        reader = sorted((mine or {}).get(label, []), key=lambda r: r.config.seed)
        yours = {id(r) for r in reader}
        for result in published + reader:
            config = result.config
            key = _key(config.batch_size, round(math.log2(config.base_lr)))
            cell = cells.setdefault(key, {"seeds": [], "status": [], "score": [],
                                          "diverged": [], "acc": [], "loss": [],
                                          "steps": None})
            if id(result) in yours or "mine" in cell:
                cell.setdefault("mine", [False] * len(cell["seeds"])).append(
                    id(result) in yours)
            cell["seeds"].append(int(config.seed))
            cell["status"].append(result.status)
            cell["score"].append(round(float(result.test_accuracy), digits)
                                 if result.status == "complete" else chance)
            cell["diverged"].append(result.diverged_epoch)
            cell["acc"].append(_round([e.test_accuracy for e in result.epochs], digits))
            cell["loss"].append(_round([e.train_loss for e in result.epochs], digits))
            if cell["steps"] is None and result.epochs:
                first = result.epochs[0]
                cell["steps"] = int(first.examples_seen // config.batch_size)
        summary = cell_summary(frame)
        best = best_per_batch(summary)
        curves, windows = {}, {}
        for m, rows in summary.groupby("batch_size"):
            rows = rows.sort_values("log2_base_lr")
            curves[str(int(m))] = [[int(r.log2_base_lr), round(float(r.median), digits),
                                    int(r.seeds)] for r in rows.itertuples()]
            windows[str(int(m))] = [int(rows["log2_base_lr"].min()),
                                    int(rows["log2_base_lr"].max())]
        out.append({
            "label": label, "study": data.study.name, "note": data.provenance_note(),
            "chance": chance,
            "m": sorted(int(m) for m in summary["batch_size"].unique()),
            "lr": sorted(int(v) for v in summary["log2_base_lr"].unique()),
            "best": {str(int(m)): int(row.log2_base_lr) for m, row in best.iterrows()},
            "curve": curves, "window": windows, "cells": cells})
    return {"sets": out}


def cell_text(entry: dict, m: int, log2_lr: int) -> str:
    """One line on the cell (m, log2 eta_tilde) of one set of :func:`explorer_data`: its
    seeds, their median score and each seed's status, or why there is no run. The book's
    script writes the same line in the page."""
    head = f"m = {m}, η̃ = 2^{log2_lr}"
    cell = entry["cells"].get(_key(m, log2_lr))
    if cell is None:
        window = entry["window"].get(str(m))
        if window is None:
            return f"{head}: no run of this set at m = {m}"
        return (f"{head}: not trained (this set's window at m = {m} is "
                f"2^{window[0]} to 2^{window[1]})")
    scores = sorted(cell["score"])
    mid = len(scores) // 2
    median = scores[mid] if len(scores) % 2 else (scores[mid - 1] + scores[mid]) / 2
    runs = []
    mine = cell.get("mine", [False] * len(cell["seeds"]))
    for seed, status, score, diverged, yours in zip(cell["seeds"], cell["status"],
                                                    cell["score"], cell["diverged"], mine):
        runs.append((f"seed {seed} {score:.4f}" if status == "complete"
                     else f"seed {seed} diverged in epoch {diverged}")
                    + (" (yours)" if yours else ""))
    n = len(cell["seeds"])
    best = entry["best"].get(str(m))
    where = " (this m's best)" if best == log2_lr else ""
    count = f"{n} seed{'s' if n != 1 else ''}"
    if any(mine):
        count += f" ({n - sum(mine)} stored, {sum(mine)} yours)"
    return f"{head}{where}: median {median:.4f} over {count} ({'; '.join(runs)})"


def best_cell(entry: dict) -> tuple[int, int]:
    """The cell an explorer opens a set of :func:`explorer_data` at: the m whose best
    median is highest, at that m's best log2 eta_tilde."""
    def top(key: str) -> float:
        return max((p[1] for p in entry["curve"][key] if p[0] == entry["best"][key]),
                   default=0.0)
    m = max(entry["best"], key=top)
    return int(m), int(entry["best"][m])
