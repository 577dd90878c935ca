"""n small steps against one large step, measured on a real network (book: "n small steps
against one large step").

From the weights theta_k, with the same base learning rate eta_tilde and the same n m
examples, sum-form SGD (theta <- theta - eta_tilde sum_i grad L_i) can take

- path A: n steps of batch m; batch j uses its gradient at theta_{k+j};
- path B: one step of batch n m; every gradient is taken at theta_k.

With S_j(theta) the summed gradient of batch j, H_j the Hessian of batch j's summed loss at
theta_k and V_j = sum_{l<j} S_l(theta_k), a Taylor expansion of S_j(theta_{k+j}) around
theta_k, with theta_{k+j} - theta_k = -eta_tilde V_j + O(eta_tilde^2), gives

    theta_A - theta_B = eta_tilde^2 c_n + O(eta_tilde^3),   c_n = sum_{j<n} H_j V_j.

c_n does not depend on eta_tilde, and for nested batches (the first n of one sequence of
n_max batches) it is a running sum over j: :func:`second_order_terms` computes it once per
checkpoint and draw with n_max - 1 Hessian-vector products (double backward); path A is run
once per eta_tilde up to n_max steps and read off at every n of the grid. The losses are
the mean cross-entropy on a fixed evaluation set of training examples (disjoint from the
batches), predicted by the second-order Taylor expansion around theta_k with
d_B = -eta_tilde V_n and d_A = d_B + eta_tilde^2 c_n. Everything runs in float64, so the
small-eta_tilde end of the comparison is not rounding noise.

The derivation needs S_j to be differentiable along path A; a ReLU network is only
piecewise smooth, so path A also counts the ReLU inputs of each batch whose sign differs from
theta_k where the batch's gradient is taken: where none does, the expansion is exact to its
order.

:func:`measure` stores one record per checkpoint (kind "stale-gradients"); :func:`stale_frame`
turns records into a tidy table; :func:`fit_distance_slopes` fits the log-log slope of the distance
against eta_tilde (2 in theory), :func:`prediction_limits` finds where the second-order
prediction stops holding, :func:`n_exponents` how |c_n| grows with n and :func:`loss_gaps`
which path reaches the lower loss. The rest of the module returns what the chapter shows:
its protocol, its tables and the paragraphs that read them, and the comparison on one draw
of batches that its live controls redraw (:func:`paths_on_draw`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..store import MeasurementError
from .stalepaths import (CHUNK, FlatModel, SecondOrderTerms, StaleGradientConfig,
                         compare_paths, draw_indices, paths_on_draw, powers_of_two,
                         second_order_terms, small_steps)
from .checkpoints import (Checkpoint, log2_label, measure_with, model_at, protocol_table,
                          records_table)

__all__ = ["KIND", "StaleGradientConfig", "powers_of_two", "FlatModel", "SecondOrderTerms",
           "second_order_terms", "small_steps", "compare_paths", "paths_on_draw",
           "draw_indices", "compute", "measure", "measure_checkpoints", "stale_frame",
           "fit_distance_slopes", "prediction_limits", "loss_gaps", "n_exponents",
           "grid_runs", "protocol", "measurements_table", "slope_summary", "slope_table",
           "slope_text", "limits_table", "limits_text", "growth_table", "largest_n_gaps",
           "gap_table", "lower_in_every_draw", "regime_texts", "regimes_text", "early_late",
           "early_late_table", "early_late_text"]

KIND = "stale-gradients"
def compute(config: StaleGradientConfig, *, data=None, data_root=None, device="auto"):
    """Measure at the checkpoint; returns ``(values, device)`` for :func:`measure_or_load`."""
    model, data, device, trained = model_at(config.checkpoint, data=data, data_root=data_root,
                                            device=device)
    net = FlatModel(model)
    x, y = data.train_x, data.train_y
    eval_index, draws = draw_indices(len(y), config)
    eval_index = eval_index.to(x.device)
    rows = []
    for draw, index in enumerate(draws):
        batches = [(x[i], y[i]) for i in index.to(x.device)]
        rows += [{"draw": draw, **row} for row in
                 compare_paths(net, batches, x[eval_index], y[eval_index], config.base_lrs,
                               config.step_counts, config.loss_from)]
    values = {
        "checkpoint": config.checkpoint.label,
        "epochs": config.checkpoint.epochs,
        "num_train": len(y),
        "num_parameters": int(net.theta.numel()),
        "checkpoint_test_accuracy": trained.epochs[-1].test_accuracy if trained else None,
        "table": {key: [row[key] for row in rows] for key in rows[0]},
    }
    return values, device


def measure(config: StaleGradientConfig, results_dir, *, data=None, data_root=None,
            device="auto") -> dict:
    """The stored record of ``config`` in ``results_dir``, else measure and store it
    (``results_dir=None``: measure, store nothing)."""
    return measure_with(KIND, compute, config, results_dir, data=data, data_root=data_root,
                        device=device)


def measure_checkpoints(settings, checkpoints, results_dir, **kwargs) -> list[dict]:
    """One record per checkpoint, stored or measured now (book: "n small steps against one
    large step"): ``settings`` is ``presets.stale_gradients(scale)`` (the fields of
    :class:`StaleGradientConfig` less the checkpoint); ``kwargs`` go to :func:`measure`."""
    return [measure(StaleGradientConfig(checkpoint, **dataclasses.asdict(settings)),
                    results_dir, **kwargs)
            for checkpoint in checkpoints]


# ------------------------------------------------------------------------------ analysis

def stale_frame(records: Sequence[dict]) -> pd.DataFrame:
    """One row per checkpoint, draw, n and eta_tilde (tidy; missing values are NaN).

    Columns: checkpoint (label), epochs, batch_size, draw, n, base_lr, distance,
    predicted_distance, ratio (distance / predicted), update_norm, sign_changes,
    loss_at_checkpoint, loss_a, loss_b, predicted_loss_a, predicted_loss_b, gap
    (loss_a - loss_b), predicted_gap and loss_evaluated (eta_tilde >= the config's
    loss_from; elsewhere a missing loss is one that was not finite).
    """
    frames = []
    for record in records:
        values = record["values"]
        frame = pd.DataFrame(values["table"]).astype(
            {"distance": float, "sign_changes": float, "loss_a": float, "loss_b": float})
        frame.insert(0, "checkpoint", values["checkpoint"])
        frame.insert(1, "epochs", values["epochs"])
        frame.insert(2, "batch_size", record["config"]["batch_size"])
        frame["loss_evaluated"] = frame["base_lr"] >= record["config"]["loss_from"]
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame["ratio"] = frame["distance"] / frame["predicted_distance"]
    frame["gap"] = frame["loss_a"] - frame["loss_b"]
    frame["predicted_gap"] = frame["predicted_loss_a"] - frame["predicted_loss_b"]
    return frame


def fit_distance_slopes(frame: pd.DataFrame, points: int = 3) -> pd.DataFrame:
    """Per checkpoint and n > 1: the least-squares slope of log distance against
    log eta_tilde over the ``points`` smallest eta_tilde, fitted per draw; its mean and
    standard deviation over the draws (the prediction is 2), and the ratio
    measured / predicted distance at the smallest eta_tilde (median, min and max over draws).
    """
    rows = []
    part = frame[frame["n"] > 1]
    for (epochs, checkpoint, n), group in part.groupby(["epochs", "checkpoint", "n"]):
        smallest = sorted(group["base_lr"].unique())[:points]
        slopes = []
        for _, draw in group[group["base_lr"].isin(smallest)].groupby("draw"):
            slopes.append(np.polyfit(np.log(draw["base_lr"]), np.log(draw["distance"]), 1)[0])
        ratio = group[group["base_lr"] == smallest[0]]["ratio"]
        rows.append({
            "checkpoint": checkpoint, "epochs": epochs, "n": n,
            "slope": np.mean(slopes),
            "slope_sd": np.std(slopes, ddof=1) if len(slopes) > 1 else math.nan,
            "slope_min": np.min(slopes), "slope_max": np.max(slopes), "predicted_slope": 2.0,
            "fit_lrs": f"2^{math.log2(smallest[0]):g} to 2^{math.log2(smallest[-1]):g}",
            "ratio_at_smallest": ratio.median(), "ratio_min": ratio.min(),
            "ratio_max": ratio.max(), "draws": len(slopes)})
    return pd.DataFrame(rows)


def prediction_limits(frame: pd.DataFrame, tolerance: float = 0.1) -> pd.DataFrame:
    """Per checkpoint and n > 1: the smallest eta_tilde of the grid at which the
    second-order prediction is off by more than ``tolerance`` (relative, median over the
    draws; a path that left the floats counts as off), for the distance, the loss change
    of each path (L - L(theta_k)) and the gap L_A - L_B (on the eta_tilde whose losses
    were evaluated). NaN: within tolerance on the whole grid. Also first_sign_change: the
    smallest eta_tilde at which some ReLU input of the batches changes sign along path A
    in some draw (below it the loss is smooth along every path and the expansion exact).
    """
    loss_k = frame["loss_at_checkpoint"]
    errors = pd.DataFrame({
        "distance": (frame["ratio"] - 1).abs(),
        "loss_a": ((frame["predicted_loss_a"] - frame["loss_a"])
                   / (frame["loss_a"] - loss_k)).abs(),
        "loss_b": ((frame["predicted_loss_b"] - frame["loss_b"])
                   / (frame["loss_b"] - loss_k)).abs(),
        "gap": ((frame["predicted_gap"] - frame["gap"]) / frame["gap"]).abs(),
    }).fillna(np.inf)
    losses = ["loss_a", "loss_b", "gap"]
    errors.loc[~frame["loss_evaluated"], losses] = np.nan  # not measured: no verdict
    keys = frame[["epochs", "checkpoint", "n", "base_lr"]]
    median = pd.concat([keys, errors], axis=1).groupby(
        ["epochs", "checkpoint", "n", "base_lr"]).median().reset_index()
    changed = frame[frame["sign_changes"] > 0].groupby(["epochs", "checkpoint", "n"])["base_lr"]
    first_change = changed.min()
    rows = []
    for (epochs, checkpoint, n), group in median[median["n"] > 1].groupby(
            ["epochs", "checkpoint", "n"]):
        row = {"checkpoint": checkpoint, "epochs": epochs, "n": n}
        for column in errors.columns:
            off = group.loc[group[column] > tolerance, "base_lr"]
            row[column] = off.min() if len(off) else math.nan
        row["first_sign_change"] = first_change.get((epochs, checkpoint, n), math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def loss_gaps(frame: pd.DataFrame, diverged_above: float = 10 * math.log(10)
              ) -> pd.DataFrame:
    """Per checkpoint, n > 1 and eta_tilde with evaluated losses: which path reached the
    lower eval loss. Columns: gap and predicted_gap (L_A - L_B, median over the draws;
    negative: the n small steps are lower); a_lower and b_lower, the draws in which each
    path is strictly lower, and both_diverged, those in which both losses are above
    ``diverged_above`` or not finite (train.py's divergence threshold for 10 classes) and
    neither counts as lower; draws.
    """
    part = frame[frame["loss_evaluated"] & (frame["n"] > 1)].copy()
    loss_a = part["loss_a"].fillna(np.inf)
    loss_b = part["loss_b"].fillna(np.inf)
    part["both_diverged"] = (loss_a > diverged_above) & (loss_b > diverged_above)
    part["a_lower"] = (loss_a < loss_b) & ~part["both_diverged"]
    part["b_lower"] = (loss_b < loss_a) & ~part["both_diverged"]
    return (part.groupby(["epochs", "checkpoint", "n", "base_lr"])
            .agg(gap=("gap", "median"), predicted_gap=("predicted_gap", "median"),
                 a_lower=("a_lower", "sum"), b_lower=("b_lower", "sum"),
                 both_diverged=("both_diverged", "sum"), draws=("draw", "nunique"))
            .reset_index())


def n_exponents(frame: pd.DataFrame, base_lr: float) -> pd.DataFrame:
    """Per checkpoint: the exponent p of |c_n| ∝ n^p (least squares on log-log over the
    n > 1 of the grid, per draw; mean and standard deviation over the draws), the same for
    the measured distance at ``base_lr``, and the exponents of two reference shapes on the
    same n: |c_n| ∝ sum_{k<n} k = n(n-1)/2 when the batch gradients share one mean
    (V_j ~ j m G) and ∝ sqrt(sum_{k<n} k^2) when they are pure noise (V_j a random walk).
    """
    part = frame[frame["n"] > 1]
    steps = np.array(sorted(part["n"].unique()), dtype=np.float64)
    mean_shape = steps * (steps - 1) / 2
    noise_shape = np.sqrt((steps - 1) * steps * (2 * steps - 1) / 6)
    rows = []
    for (epochs, checkpoint), group in part.groupby(["epochs", "checkpoint"]):
        smallest = group[group["base_lr"] == group["base_lr"].min()]
        curvature = smallest.assign(c=smallest["predicted_distance"] / smallest["base_lr"] ** 2)
        chosen = group[group["base_lr"] == base_lr]
        fits = {}
        for name, table, column in (("c_norm", curvature, "c"), ("distance", chosen, "distance")):
            fits[name] = [np.polyfit(np.log(d["n"]), np.log(d[column]), 1)[0]
                          for _, d in table.groupby("draw") if d[column].notna().all()]
        spread = {name: np.std(values, ddof=1) if len(values) > 1 else math.nan
                  for name, values in fits.items()}
        rows.append({
            "checkpoint": checkpoint, "epochs": epochs,
            "c_exponent": np.mean(fits["c_norm"]), "c_exponent_sd": spread["c_norm"],
            "distance_exponent": np.mean(fits["distance"]) if fits["distance"] else math.nan,
            "distance_exponent_sd": spread["distance"],
            "mean_gradient_exponent": np.polyfit(np.log(steps), np.log(mean_shape), 1)[0],
            "noise_exponent": np.polyfit(np.log(steps), np.log(noise_shape), 1)[0],
            "base_lr": base_lr, "steps": f"{int(steps.min())} to {int(steps.max())}"})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ what the chapter shows

def grid_runs(grid: Sequence[float], chosen) -> str:
    """The ``chosen`` values of a power-of-two ``grid`` as its contiguous runs, in grid
    order: "2^-24 to 2^-16, 2^-4"; "none" when nothing is chosen."""
    runs, current = [], []
    for value in grid:
        if value in chosen:
            current.append(value)
        elif current:
            runs.append(current)
            current = []
    runs += [current] if current else []
    return ", ".join(log2_label(r[0]) if len(r) == 1 else
                     f"{log2_label(r[0])} to {log2_label(r[-1])}" for r in runs) or "none"


def protocol(settings, checkpoints, results_dir) -> pd.DataFrame:
    """The chapter's protocol table (book: "n small steps against one large step"), from
    ``presets.stale_gradients(scale)`` and the checkpoints."""
    return protocol_table(checkpoints, {
        "small batch m": settings.batch_size,
        "small steps n": f"1, 2, 4, ..., {settings.max_steps} (large batch n m up to "
                         f"{settings.max_steps * settings.batch_size})",
        "eta_tilde grid": f"{log2_label(min(settings.base_lrs))} to "
                          f"{log2_label(max(settings.base_lrs))}, {len(settings.base_lrs)} values",
        "losses evaluated from eta_tilde": log2_label(settings.loss_from),
        "eval set": f"{settings.eval_size} training examples in no batch",
        "draws (sequences of batches)": settings.draws,
    }, results_dir, name="stale-gradient measurement")


def measurements_table(records: Sequence[dict], frame: pd.DataFrame):
    """The stored records, one row per checkpoint, with the eval loss and the test accuracy
    at the checkpoint (styled; see ``records_table``; ``frame`` is :func:`stale_frame`'s)."""
    labels = [record["values"]["checkpoint"] for record in records]
    return records_table(records, {
        "eval loss at the checkpoint": [frame.loc[frame["checkpoint"] == label,
                                                  "loss_at_checkpoint"].iloc[0]
                                        for label in labels],
        "test accuracy": [record["values"]["checkpoint_test_accuracy"] for record in records],
    }, formats={"eval loss at the checkpoint": "{:.4f}", "test accuracy": "{:.3f}"},
        na_rep="(initial weights)")


def slope_summary(frame: pd.DataFrame, points: int = 3) -> pd.DataFrame:
    """:func:`fit_distance_slopes` indexed by checkpoint and n, with the most ReLU sign
    changes of any draw at the fitted eta_tilde ("sign changes at the fitted points")."""
    slopes = fit_distance_slopes(frame, points=points)
    fit_lrs = sorted(frame["base_lr"].unique())[:points]
    changes = (frame[frame["base_lr"].isin(fit_lrs)].groupby(["checkpoint", "n"])["sign_changes"]
               .max().rename("sign changes at the fitted points"))
    return slopes.set_index(["checkpoint", "n"]).join(changes)


def slope_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`slope_summary` as the chapter shows it: the fitted slope (mean ± sd [min,
    max] over the draws) against the prediction 2, and the ratio measured / predicted at
    the smallest eta_tilde (book: "n small steps against one large step")."""
    table = summary.assign(
        slope_text=[f"{s:.4f} ± {sd:.4f} [{lo:.4f}, {hi:.4f}]" for s, sd, lo, hi in
                    zip(summary["slope"], summary["slope_sd"], summary["slope_min"],
                        summary["slope_max"])],
        ratio_text=[f"{r:.6f} [{lo:.6f}, {hi:.6f}]" for r, lo, hi in
                    zip(summary["ratio_at_smallest"], summary["ratio_min"],
                        summary["ratio_max"])])
    return table.sort_values("epochs")[[
        "predicted_slope", "slope_text", "fit_lrs", "ratio_text",
        "sign changes at the fitted points", "draws"]].rename(columns={
            "predicted_slope": "predicted slope",
            "slope_text": "fitted slope: mean ± sd [min, max]",
            "fit_lrs": "fitted over eta_tilde",
            "ratio_text": "measured / predicted at the smallest eta_tilde [min, max]"})


def slope_text(summary: pd.DataFrame) -> str:
    """How far the fitted slopes and the ratios at the smallest eta_tilde are from their
    predictions, at worst (book: "n small steps against one large step")."""
    predicted = summary["predicted_slope"].unique()
    if len(predicted) != 1:
        raise ValueError(f"one predicted slope expected, got {list(predicted)}")
    worst_slope = (summary["slope"] - predicted[0]).abs().max()
    worst_ratio = (summary[["ratio_min", "ratio_max"]] - 1).abs().max().max()
    return (f"Over every checkpoint and $n$, the fitted slope is at most {worst_slope:.2g} "
            f"from {predicted[0]:g} and the ratio at the smallest $\\tilde\\eta$ at most "
            f"{worst_ratio:.2g} from 1 in any draw.")


_LIMIT_COLUMNS = {"distance": "distance", "loss_a": "loss change, path A",
                  "loss_b": "loss change, path B", "gap": "gap L_A - L_B",
                  "first_sign_change": "first ReLU sign change"}


def limits_table(limits: pd.DataFrame) -> pd.DataFrame:
    """:func:`prediction_limits` as the chapter shows it: each eta_tilde as a power of two,
    blank where the prediction held on the whole grid (book: "n small steps against one
    large step")."""
    shown = limits.sort_values(["epochs", "n"]).set_index(["checkpoint", "n"])[
        list(_LIMIT_COLUMNS)]
    return shown.apply(lambda column: column.map(
        lambda v: "" if np.isnan(v) else log2_label(v))).rename(columns=_LIMIT_COLUMNS)


def limits_text(limits: pd.DataFrame, tolerance: float) -> str:
    """Whether, on every checkpoint and n, the distance prediction held within
    ``tolerance`` (the one :func:`prediction_limits` used) at every eta_tilde below the first
    ReLU sign change (book: "n small steps against one large step")."""
    before = limits.dropna(subset=["first_sign_change"])
    held = bool((before["distance"].isna()
                 | (before["distance"] >= before["first_sign_change"])).all())
    return (f"On every checkpoint and $n$ the distance prediction held within {tolerance:.0%} "
            "at every $\\tilde\\eta$ below the first ReLU sign change: **"
            + ("yes" if held else "no") + "**.")


def growth_table(frame: pd.DataFrame, base_lr: float):
    """:func:`n_exponents` as the chapter shows it: the exponent of |c_n| against the two
    reference shapes, which one it is closer to, and the exponent of the distance measured
    at ``base_lr`` (book: "n small steps against one large step"). Styled."""
    growth = n_exponents(frame, base_lr=base_lr).sort_values("epochs")
    growth = growth.assign(
        c_text=[f"{e:.3f} ± {sd:.3f}" for e, sd in
                zip(growth["c_exponent"], growth["c_exponent_sd"])],
        d_text=[f"{e:.3f} ± {sd:.3f}" for e, sd in
                zip(growth["distance_exponent"], growth["distance_exponent_sd"])],
        closer=np.where((growth["c_exponent"] - growth["mean_gradient_exponent"]).abs()
                        < (growth["c_exponent"] - growth["noise_exponent"]).abs(),
                        "shared mean", "noise"))
    return growth.set_index("checkpoint")[[
        "steps", "c_text", "mean_gradient_exponent", "noise_exponent", "closer",
        "d_text"]].rename(columns={
            "steps": "n", "c_text": "exponent of |c_n|: mean ± sd",
            "mean_gradient_exponent": "reference: shared mean",
            "noise_exponent": "reference: noise", "closer": "|c_n| closer to",
            "d_text": f"exponent of the measured distance at eta_tilde = {log2_label(base_lr)}"}
        ).style.format(precision=3)


def largest_n_gaps(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`loss_gaps` at the largest n of the grid, by checkpoint (in training order)
    and eta_tilde."""
    gaps = loss_gaps(frame)
    return gaps[gaps["n"] == int(frame["n"].max())].sort_values(["epochs", "base_lr"])


def gap_table(at_max: pd.DataFrame):
    """:func:`largest_n_gaps` as the chapter shows it (styled): the median gap L_A - L_B,
    its prediction, and the draws in which each path was lower or both diverged (book:
    "n small steps against one large step")."""
    return at_max.assign(base_lr=at_max["base_lr"].map(log2_label)).set_index(
        ["checkpoint", "base_lr"])[
        ["gap", "predicted_gap", "a_lower", "b_lower", "both_diverged", "draws"]].rename(
        columns={"gap": "L_A - L_B (median)", "predicted_gap": "predicted", "a_lower": "A lower",
                 "b_lower": "B lower", "both_diverged": "both diverged"}).rename_axis(
        ["checkpoint", "eta_tilde"]).style.format(
        {"L_A - L_B (median)": "{:.3g}", "predicted": "{:.3g}"})


_OUTCOMES = ("b_lower", "a_lower", "both_diverged")


def lower_in_every_draw(at_max: pd.DataFrame) -> dict[str, dict[str, set]]:
    """Per checkpoint (in training order): the eta_tilde at which path B was lower in every
    draw ("b_lower"), path A ("a_lower"), and both diverged in every draw
    ("both_diverged"); ``at_max`` is :func:`largest_n_gaps`'s."""
    return {checkpoint: {column: set(part.loc[part[column] == part["draws"], "base_lr"])
                         for column in _OUTCOMES}
            for (_, checkpoint), part in at_max.groupby(["epochs", "checkpoint"])}


def regime_texts(at_max: pd.DataFrame) -> list[str]:
    """One sentence per checkpoint: where the one large step, the n small steps, or
    neither (both diverged) reached the lower loss in every draw, as runs of the
    eta_tilde grid (book: "n small steps against one large step")."""
    n_max = int(at_max["n"].max())
    texts = []
    for (_, checkpoint), part in at_max.groupby(["epochs", "checkpoint"]):
        grid = sorted(part["base_lr"])
        every = lower_in_every_draw(part)[checkpoint]
        texts.append(
            f"**{checkpoint}**, n = {n_max}: one large step lower in every draw at η̃ = "
            f"{grid_runs(grid, every['b_lower'])}; n small steps lower in every draw at "
            f"{grid_runs(grid, every['a_lower'])}; both diverged in every draw at "
            f"{grid_runs(grid, every['both_diverged'])}.")
    return texts


def regimes_text(at_max: pd.DataFrame) -> str:
    """Whether both regimes appear at every checkpoint, in order: the one large step lower
    in every draw at small eta_tilde, the n small steps at larger ones (book: "n small
    steps against one large step")."""
    ordered = all(
        every["b_lower"] and every["a_lower"] and max(every["b_lower"]) < min(every["a_lower"])
        for every in lower_in_every_draw(at_max).values())
    if ordered:
        return (
            "In this measurement, at every checkpoint and the largest $n$, the one large step "
            "reached the lower loss in every draw at a range of small $\\tilde\\eta$, and the "
            "$n$ small steps in every draw at larger $\\tilde\\eta$: both regimes appear, in "
            "that order. Staleness, then, is not a loss at every learning rate: what the small "
            "steps gain is the larger learning rates at which they still descend while the "
            "large step overshoots, which is the paper's result seen one step at a time (the "
            "range of good $\\tilde\\eta$ narrows as the batch grows).")
    return ("In this measurement the two regimes do not both appear, in that order, at every "
            "checkpoint; the summary under the loss table says where each path was lower in "
            "every draw.")


def early_late(frame: pd.DataFrame, base_lr: float) -> pd.DataFrame:
    """Per checkpoint (the index, in training order), at the largest n (medians over the
    draws): |V_n| and |c_n| from the smallest eta_tilde, their ratio "crossover" (the
    eta_tilde at which the second-order term would equal the first), and at ``base_lr``
    the distance relative to the step |θ_A - θ_B| / |θ_B - θ_k| ("relative"), the gap, the
    ReLU sign changes and the eval loss at the checkpoint (book: "n small steps against one
    large step")."""
    big = frame[frame["n"] == int(frame["n"].max())]
    if not (big["base_lr"] == base_lr).any():
        raise ValueError(f"eta_tilde = {base_lr:g} is not on the measured grid")
    smallest = big[big["base_lr"] == big["base_lr"].min()]
    scale_rows = smallest.assign(
        v=smallest["update_norm"] / smallest["base_lr"],
        c=smallest["predicted_distance"] / smallest["base_lr"] ** 2).groupby(
        ["epochs", "checkpoint"])[["v", "c"]].median()
    at_lr = big[big["base_lr"] == base_lr]
    at_lr = at_lr.assign(relative=at_lr["distance"] / at_lr["update_norm"]).groupby(
        ["epochs", "checkpoint"])[["relative", "gap", "sign_changes", "loss_at_checkpoint"]
                                  ].median()
    table = scale_rows.join(at_lr)
    table = table.assign(crossover=table["v"] / table["c"])
    return table.reset_index(level="epochs", drop=True)


def early_late_table(table: pd.DataFrame, base_lr: float):
    """:func:`early_late` as the chapter shows it (styled)."""
    at = log2_label(base_lr)
    return table[["loss_at_checkpoint", "v", "c", "crossover", "relative", "gap",
                  "sign_changes"]].rename(columns={
        "loss_at_checkpoint": "eval loss at the checkpoint", "v": "|V_n|", "c": "|c_n|",
        "crossover": "|V_n| / |c_n| (an eta_tilde)",
        "relative": f"|θ_A - θ_B| / |θ_B - θ_k| at {at}",
        "gap": f"L_A - L_B at {at}",
        "sign_changes": f"ReLU sign changes at {at}"}).style.format("{:.3g}")


def early_late_text(table: pd.DataFrame) -> str:
    """At which checkpoint staleness sets in at the smallest eta_tilde, and at which the
    two paths end furthest apart relative to the step; whether both are the start of
    training (book: "n small steps against one large step")."""
    soonest = table["crossover"].idxmin()
    largest = table["relative"].idxmax()
    return (
        f"Staleness sets in at the smallest $\\tilde\\eta$ at the checkpoint **{soonest}**, "
        f"and at the training learning rate the two paths end furthest apart, relative to the "
        f"step, at **{largest}**. "
        + ("Both point to the start of training, as the paper expects."
           if soonest == largest == table.index[0] else
           "The two measures do not both single out the start of training."))
