"""Learning-rate scaling, in closed form (book: "Learning-rate scaling"): the first moments of
one SGD update under each scaling rule of ``smallbatch.train.learning_rate``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from ..train import LR_SCALING_RULES as SCALING_RULES, learning_rate
from .checkpoints import log2_label

__all__ = ["SCALING_RULES", "scaling_table", "scaling_at", "scaling_protocol", "scaling_rows"]


def scaling_table(batch_sizes: Sequence[int], base_lr: float, reference_batch_size: int,
                  rules: Sequence[str] = SCALING_RULES, grad_mean_sq: float = 1.0,
                  grad_var: float = 1.0, dataset_size: int = 50_000) -> pd.DataFrame:
    """First moments of one SGD update, per update, per example and per epoch, for each
    learning-rate scaling rule (book: "Learning-rate scaling").

    Per-example gradients g_i are i.i.d. with mean G and covariance Sigma (m much smaller
    than the data set, so sampling with or without replacement is the same). One update
    -eta (1/m) sum_i g_i = -eta_tilde sum_i g_i has mean -eta G and covariance
    eta^2 Sigma / m = eta_tilde^2 m Sigma. To first order (gradients taken at one point,
    curvature ignored) an epoch of N / m updates moves N eta_tilde |G| in expectation and
    accumulates noise of total variance N eta_tilde^2 tr(Sigma).

    Args:
        batch_sizes: the batch sizes m.
        base_lr: eta_tilde at the reference batch size (per example; eta = m * eta_tilde).
        reference_batch_size: m_ref, where all rules give eta = m_ref * base_lr.
        rules: names accepted by ``smallbatch.train.learning_rate``.
        grad_mean_sq: |G|^2, the squared norm of the mean per-example gradient.
        grad_var: tr(Sigma), the total variance of one per-example gradient.
        dataset_size: N, examples per epoch (default 50,000: CIFAR-10's training set).

    Returns:
        one row per (rule, batch_size) with columns rule, batch_size, eta, eta_tilde,
        mean_update (|E update| = eta |G|), mean_update_per_example (eta_tilde |G|),
        update_variance (tr Cov = eta^2 tr(Sigma) / m), update_variance_per_example
        (update_variance / m = eta_tilde^2 tr(Sigma)), updates_per_epoch (N / m),
        epoch_movement (N eta_tilde |G|) and epoch_variance (N eta_tilde^2 tr(Sigma)).
    """
    if grad_mean_sq < 0 or grad_var < 0:
        raise ValueError("grad_mean_sq and grad_var are squared norms: they must be >= 0")
    grad_norm = math.sqrt(grad_mean_sq)
    rows = []
    for rule in rules:
        for m in batch_sizes:
            eta = learning_rate(base_lr, m, rule, reference_batch_size=reference_batch_size)
            eta_tilde = eta / m
            update_variance = eta * eta * grad_var / m
            updates = dataset_size / m
            rows.append(dict(
                rule=rule, batch_size=m, eta=eta, eta_tilde=eta_tilde,
                mean_update=eta * grad_norm, mean_update_per_example=eta_tilde * grad_norm,
                update_variance=update_variance,
                update_variance_per_example=update_variance / m,
                updates_per_epoch=updates, epoch_movement=updates * eta * grad_norm,
                epoch_variance=updates * update_variance))
    return pd.DataFrame(rows)


def scaling_at(batch_size: int, rule: str, base_lr: float, reference_batch_size: int,
               dataset_size: int) -> pd.DataFrame:
    """:func:`scaling_table`'s row for one batch size and rule, as a column named
    "<rule>, m = <m>" (book: "Learning-rate scaling", the live controls)."""
    row = scaling_table([batch_size], base_lr, reference_batch_size, rules=[rule],
                        dataset_size=dataset_size).iloc[0]
    return row.drop("rule").rename(f"{rule}, m = {batch_size}").to_frame()


def scaling_protocol(settings) -> pd.DataFrame:
    """The chapter's settings as one column (book: "Learning-rate scaling"): ``settings`` is
    ``presets.lr_scaling(scale)``; the per-example moments are :func:`scaling_table`'s
    defaults (|G|^2 = tr(Sigma) = 1: the rules' values are in those units)."""
    sizes = settings.batch_sizes
    return pd.Series({
        "reference batch size m_ref": settings.reference_batch_size,
        "base learning rate at m_ref (eta_tilde)": f"{log2_label(settings.base_lr)} = "
                                                   f"{settings.base_lr:.6g}",
        "learning rate at m_ref (eta)": settings.reference_batch_size * settings.base_lr,
        "batch sizes m": f"{min(sizes)} to {max(sizes):,} (powers of 2)",
        "per-example gradient moments": "|G|^2 = 1, tr(Sigma) = 1",
    }, name="learning-rate scaling").to_frame()


_ROW_COLUMNS = {"eta": "η", "eta_tilde": "η̃",
                "mean_update_per_example": "mean update per example",
                "update_variance": "variance of one update",
                "epoch_movement": "movement per epoch",
                "epoch_variance": "noise variance per epoch"}


def scaling_rows(table: pd.DataFrame, batch_sizes):
    """The rows of :func:`scaling_table` at ``batch_sizes``, per rule, with the per-update
    and per-epoch quantities the chapter compares (book: "Learning-rate scaling"). Styled.

    Raises:
        ValueError: a batch size that is not in the table.
    """
    picked = sorted(set(batch_sizes))
    missing = set(picked) - set(table["batch_size"])
    if missing:
        raise ValueError(f"batch size(s) {sorted(missing)} are not in the table")
    small = table[table["batch_size"].isin(picked)].set_index(["rule", "batch_size"])[
        list(_ROW_COLUMNS)]
    return small.rename(columns=_ROW_COLUMNS).style.format("{:.3g}")
