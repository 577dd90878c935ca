"""The data behind the experiments chapters' figures, as tidy tables a reader can download:
one CSV of a study's trials (one row per trial of its grid) and one of its epochs (one row
per stored trial and epoch).

Everything here is read from the stored records through :func:`.cells.study_data` and
:mod:`smallbatch.store` (``trials_frame``, ``epochs_frame``, ``busy_time``), the same
path the figures take, so a table agrees with the book by construction: the headline
accuracy column is the trials frame's ``test_accuracy``, which the analysis turns into a
trial's ``score``.

- :func:`trials_table`, :func:`epochs_table`: the two tables of one study at one scale;
- :func:`write_tables`: both CSVs of each study that has stored trials (the book build
  writes them into the built HTML's ``data/`` folder);
- :func:`downloads_html`: the chapter pages' links to them;
- :func:`table_file_name`: the one place a table's file name is made.

The JSON records themselves, field by field, are described in ``results/README.md``.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from ..atomic import write_atomic
from ..presets import check_scale
from ..store import RecordError, epochs_frame, load_result, record_path, trials_frame
from ..studies import Study, load_study
from ..train import LATER_FIELDS, TrainConfig, config_hash
from .cells import StudyData, _extra_axes, study_data

__all__ = ["TABLE_KINDS", "MISSING", "table_file_name", "trials_table", "epochs_table",
           "write_tables", "downloads_html"]


TABLE_KINDS = ("trials", "epochs")

# The status of a grid trial with no readable record (the record statuses are
# smallbatch.train.STATUSES: "complete", "diverged", "failed").
MISSING = "missing"

_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))

# TrainConfig fields and result fields that are integers or None: nullable integers, so a
# CSV shows 4 and an empty cell, not 4.0 and NaN.
_NULLABLE_INTS = ("bn_batch_size", "train_subset", "test_subset", "diverged_epoch",
                  "diverged_step", "epochs_completed", "num_steps", "examples_seen",
                  "num_parameters", "provenance_threads", "provenance_ensemble_size")

# What a record's provenance holds (smallbatch.provenance.run_provenance, and the lock-step
# ensemble's additions), in the order of the table's columns; keys a record has beyond
# these follow them, sorted. cpu_id: CPU runs of newer code only.
_PROVENANCE = ("git_commit", "smallbatch_version", "torch_version", "python_version",
               "device", "device_name", "cpu_id", "threads", "hostname", "ensemble_size",
               "ensemble_method", "ensemble_examples_per_second")

# The trials table's columns after the config fields, in order (provenance and error last).
_RESULT_COLUMNS = ("log2_base_lr", "peak_lr", "status", "headline_test_accuracy",
                   "final_test_accuracy", "final_test_loss", "final_train_loss",
                   "final_train_accuracy", "epochs_completed", "diverged_epoch",
                   "diverged_step", "num_steps", "examples_seen", "num_parameters",
                   "data_label", "wall_time", "busy_time", "examples_per_second")

# The per-epoch metrics of a record (smallbatch.train.EpochMetrics), in the epochs table's
# order.
_EPOCH_METRICS = ("test_accuracy", "test_loss", "train_loss", "train_accuracy", "lr",
                  "examples_seen", "wall_time")

_SORT = ["batch_size", "base_lr", "seed", "config_hash"]


def _study(study: str | os.PathLike | Study, scale: str) -> Study:
    """The study at ``scale``: a name, a YAML file or a Study (whose scale must be
    ``scale``). Unknown scales and studies raise the package's own errors (ValueError,
    smallbatch.studies.StudyError)."""
    check_scale(scale)
    if isinstance(study, Study):
        if study.scale != scale:
            raise ValueError(f"study {study.name!r} is loaded at scale {study.scale!r}, "
                             f"not {scale!r}; load it at {scale!r} or pass its name")
        return study
    return load_study(study, scale)


def table_file_name(study: str | Study, scale: str, kind: str) -> str:
    """The file name of a study's table, e.g. ``"resnet-bn-scaled-trials.csv"``: the one
    name both :func:`write_tables` and the chapter pages' links (:func:`downloads_html`) use.

    Raises:
        ValueError: an unknown kind (not one of TABLE_KINDS) or scale, or a study name that
            cannot be a file name.
    """
    if kind not in TABLE_KINDS:
        raise ValueError(f"unknown table kind {kind!r}; choose one of: {', '.join(TABLE_KINDS)}")
    check_scale(scale)
    name = study.name if isinstance(study, Study) else str(study)
    if not name or name != Path(name).name or name.startswith("."):
        raise ValueError(f"study name {name!r} cannot name a file: give the study's name "
                         "(e.g. 'resnet-bn'), not a path")
    return f"{name}-{scale}-{kind}.csv"


def _failed_records(data: StudyData, results_dir) -> dict[str, object]:
    """The stored "failed" records of the grid trials that study_data leaves out (a sweep
    retries them; the book counts them as missing), by config hash."""
    stored = {r.config_hash for r in data.results}
    directory = results_dir or data.study.results_dir
    failed = {}
    for config in data.trials:
        if config_hash(config) in stored or not record_path(directory, config).exists():
            continue
        try:
            result = load_result(config, directory)
        except RecordError:  # unreadable: reported by load_records, counted as missing
            continue
        if result is not None and result.status == "failed":
            failed[result.config_hash] = result
    return failed


def _trials(data: StudyData, failed: dict) -> pd.DataFrame:
    """The trials table of loaded study data (see :func:`trials_table`)."""
    by_hash = {r.config_hash: r for r in [*data.results, *failed.values()]}
    stored = data.frame
    if failed:
        stored = pd.concat([stored, trials_frame(failed.values())], ignore_index=True)
    rows = {}
    for _, row in stored.iterrows():
        result = by_hash[row["config_hash"]]
        last = result.epochs[-1] if result.epochs else None
        values = row.to_dict()
        values.update(
            headline_test_accuracy=row["test_accuracy"],
            final_test_accuracy=last.test_accuracy if last else None,
            final_test_loss=last.test_loss if last else None,
            final_train_accuracy=last.train_accuracy if last else None,
            examples_seen=result.num_steps * result.config.batch_size,
            peak_lr=result.config.peak_lr)
        rows[row["config_hash"]] = values
    for config in data.trials:
        key = config_hash(config)
        if key not in rows:
            rows[key] = {"config_hash": key, **config.to_dict(), "status": MISSING,
                         "peak_lr": config.peak_lr}
    frame = pd.DataFrame(list(rows.values()))
    frame["lr_milestones"] = [json.dumps([float(f) for f in m]) for m in frame["lr_milestones"]]
    frame["log2_base_lr"] = [round(math.log2(v)) for v in frame["base_lr"]]
    extra = sorted(c[len("provenance_"):] for c in frame
                   if c.startswith("provenance_") and c[len("provenance_"):] not in _PROVENANCE)
    # a field added later (train.LATER_FIELDS) only where one of the study's trials sets it
    fields = [f for f in _CONFIG_FIELDS if f not in LATER_FIELDS or f in frame]
    columns = ["config_hash", *fields, *_RESULT_COLUMNS,
               *(f"provenance_{k}" for k in (*_PROVENANCE, *extra)), "error"]
    frame = frame.reindex(columns=columns)
    frame["data_label"] = frame["data_label"].replace("", None)  # a failed run's: none
    frame = frame.sort_values(_SORT, kind="stable", ignore_index=True)
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer-or-None columns as nullable integers; None-or-float columns as floats."""
    for column in _NULLABLE_INTS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    for column in ("divergence_loss", "headline_test_accuracy", "final_test_accuracy",
                   "final_test_loss", "final_train_loss", "final_train_accuracy",
                   "wall_time", "busy_time", "examples_per_second",
                   "provenance_ensemble_examples_per_second"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column]).astype(float)
    return frame


def _epochs(data: StudyData) -> pd.DataFrame:
    """The epochs table of loaded study data (see :func:`epochs_table`)."""
    axes = [a for a in _extra_axes(data.study) if a not in ("batch_size", "base_lr", "seed")]
    columns = ["config_hash", "batch_size", "base_lr", "log2_base_lr", "seed", *axes,
               "status", "epoch", "step", *_EPOCH_METRICS]
    frame = epochs_frame(data.results)
    if frame.empty:
        return _typed(pd.DataFrame(columns=columns))
    configs = {r.config_hash: r.config for r in data.results}
    for axis in axes:
        frame[axis] = [getattr(configs[h], axis) for h in frame["config_hash"]]
    frame["log2_base_lr"] = [round(math.log2(v)) for v in frame["base_lr"]]
    frame["step"] = frame["examples_seen"] // frame["batch_size"]
    frame = frame[columns].sort_values([*_SORT, "epoch"], kind="stable", ignore_index=True)
    return _typed(frame)


def trials_table(study: str | os.PathLike | Study, scale: str = "scaled", *,
                 results_dir=None) -> pd.DataFrame:
    """One row per trial of ``study``'s grid at ``scale``, stored or not, sorted by m,
    eta_tilde, seed and config hash.

    Columns, in order:

    - ``config_hash``: the record's file name (``results/<study>/<scale>/<hash>.json``);
    - every :class:`~smallbatch.train.TrainConfig` field, one column each, named as the
      field (``batch_size`` is m, ``base_lr`` is eta_tilde; ``lr_milestones`` as a JSON
      list, e.g. ``[0.5, 0.75]``; an unset optional field is empty);
    - ``log2_base_lr``: log2 eta_tilde rounded to an integer, as the figures' axes;
      ``peak_lr``: eta, the LR of one SGD step on the mean loss before schedule and
      warm-up (``TrainConfig.peak_lr``);
    - ``status``: the record's, "complete", "diverged" or "failed" (a run that raised; a
      sweep retries it and the book counts it as missing), or "missing" when the trial has
      no readable record;
    - ``headline_test_accuracy``: the paper's and the book's metric of a trial, the median
      test accuracy of its last 5 epochs (the record's ``test_accuracy``). The figures
      plot exactly this for a complete trial; a diverged trial has none (empty here) and
      the figures score it as chance, 1 / number of classes, which the status tells;
    - ``final_test_accuracy``, ``final_test_loss``, ``final_train_loss``,
      ``final_train_accuracy``: the last finished epoch's (of a diverged trial: the last
      epoch before it diverged; empty with none);
    - ``epochs_completed``, ``diverged_epoch``, ``diverged_step`` (1-based, where a
      diverged run stopped);
    - ``num_steps``: SGD steps taken; ``examples_seen``: training examples processed
      (``num_steps`` x m; a diverged run's include its last, unfinished epoch);
    - ``num_parameters``, ``data_label`` (the data set as the book names it);
    - cost: ``wall_time``, seconds of training and evaluation as the record gives it (a
      lock-step ensemble's members share its clock); ``busy_time``, the same with pauses
      left out (:func:`smallbatch.store.busy_time`); ``examples_per_second``, the record's
      rate (an ensemble's: all its members' examples);
    - provenance, ``provenance_<key>`` for each key of the record's provenance:
      ``git_commit``, ``smallbatch_version``, ``torch_version``, ``python_version``,
      ``device``, ``device_name``, ``cpu_id``, ``threads`` (torch threads), ``hostname``,
      ``ensemble_size``, ``ensemble_method``, ``ensemble_examples_per_second``, then any
      other key a record has, sorted. Records hold no date or time;
    - ``error``: a failed run's error.

    ``results_dir``: read the records there instead of the study's folder.

    Raises:
        smallbatch.studies.StudyError: an unknown study.
        ValueError: an unknown scale.
    """
    loaded = _study(study, scale)
    data = study_data(loaded, results_dir=results_dir)
    return _trials(data, _failed_records(data, results_dir))


def epochs_table(study: str | os.PathLike | Study, scale: str = "scaled", *,
                 results_dir=None) -> pd.DataFrame:
    """One row per stored trial of ``study``'s grid at ``scale`` and epoch it finished (a
    diverged trial: the epochs before it diverged), sorted by m, eta_tilde, seed, config
    hash and epoch.

    Columns: ``config_hash``; the grid fields that identify the trial, ``batch_size`` (m),
    ``base_lr`` (eta_tilde), ``log2_base_lr``, ``seed`` and each further field the study's
    grid varies (e.g. ``bn_batch_size`` for ghost-bn, ``augment`` for cifar-augment); the
    trial's ``status``; ``epoch`` (1-based); ``step``, SGD steps at the epoch's end; and
    every per-epoch metric of the record (:class:`~smallbatch.train.EpochMetrics`):

    - ``test_accuracy``, ``test_loss``: on the whole (subset) test set in eval mode after
      the epoch;
    - ``train_loss``, ``train_accuracy``: running means over the epoch's mini-batches as
      they were trained, in train mode (batch-norm statistics of each batch, augmented
      data where augmentation is on), not a pass over the training set at the epoch's end;
    - ``lr``: the learning rate of the epoch's last step (after schedule and warm-up);
    - ``examples_seen``: training examples processed by the epoch's end;
    - ``wall_time``: seconds from the start of training to the end of the epoch's
      evaluation (a lock-step ensemble's shared clock).

    Raises:
        smallbatch.studies.StudyError: an unknown study.
        ValueError: an unknown scale.
    """
    return _epochs(study_data(_study(study, scale), results_dir=results_dir))


def _with_stored(studies, scale: str) -> list[StudyData]:
    """Each study's data at ``scale`` where at least one trial is stored (a complete or
    diverged record, the trials the book shows), in order, each study once."""
    if isinstance(studies, (str, os.PathLike, Study)):
        studies = [studies]
    out, seen = [], set()
    for study in studies:
        data = study_data(_study(study, scale))
        if data.study.name in seen or data.total == data.missing:
            continue
        seen.add(data.study.name)
        out.append(data)
    return out


def write_tables(studies: Iterable[str | os.PathLike | Study], scale: str,
                 folder: str | os.PathLike) -> list[Path]:
    """Write the trials and epochs CSV (:func:`trials_table`, :func:`epochs_table`) of each
    study with at least one stored trial at ``scale`` into ``folder``, named by
    :func:`table_file_name`; studies with nothing stored are skipped. UTF-8, a header row,
    no index, floats at full precision (``pandas.read_csv`` reads back the exact values;
    read ``config_hash`` as text: ``dtype={"config_hash": str}``), written atomically.
    Returns the paths written, trials then epochs for each study in order."""
    folder = Path(folder)
    paths = []
    for data in _with_stored(studies, scale):
        failed = _failed_records(data, None)
        for kind, table in (("trials", _trials(data, failed)), ("epochs", _epochs(data))):
            path = folder / table_file_name(data.study, scale, kind)
            text = table.to_csv(index=False, lineterminator="\n")
            paths.append(write_atomic(path, lambda handle: handle.write(text)))
    return paths


def downloads_html(studies: Iterable[str | os.PathLike | Study], scale: str,
                   base: str = "../data/") -> str:
    """An HTML snippet for a chapter page: for each study with stored trials at ``scale``,
    its name, how many of its trials are stored, and links to its two tables
    (``{base}{table_file_name(...)}``, the files :func:`write_tables` writes). "" when no
    study has a stored trial (as at the smoke scale)."""
    items = []
    for data in _with_stored(studies, scale):
        name = data.study.name
        links = ", ".join(
            f'<a href="{html.escape(base + table_file_name(data.study, scale, kind))}" '
            f'download>{kind} (CSV)</a>' for kind in TABLE_KINDS)
        items.append(f"<li><code>{html.escape(name)}</code> ({data.total - data.missing} "
                     f"of {data.total} trials stored): {links}</li>")
    if not items:
        return ""
    return ('<div class="smallbatch-downloads">\n<p>The data behind these figures, as CSV '
            "tables: one row per trial of a study's grid (its settings, status, headline "
            "accuracy, cost and provenance), and one row per stored trial and epoch.</p>\n"
            "<ul>\n" + "\n".join(items) + "\n</ul>\n</div>\n")
