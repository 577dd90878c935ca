"""The trainer: which runs may train together (:func:`check_compatible`) and the training
loop that drives them in lock-step, :func:`train_ensemble` (book: "Lock-step ensembles")."""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import torch

from ..data import ImageData
from ..models import count_parameters
from ..provenance import run_provenance
from ..train import (ConfigError, EpochMetrics, EvalPoint, TrainConfig, TrainResult,
                     divergence_threshold, eval_steps, has_diverged, lr_at_step, run_result,
                     setup_run, validate)
from .lockstep import _build_ensemble
from .steppers import _make_stepper

__all__ = ["OPTIMISER_FIELDS", "MEMBER_FIELDS", "METHODS", "STEP_MODES", "check_compatible",
           "train_ensemble"]

# The TrainConfig fields in which the members of one ensemble may differ: they change only
# the SGD update, never the model, the data or the batch sequence.
OPTIMISER_FIELDS: tuple[str, ...] = (
    "base_lr", "lr_scaling", "reference_batch_size", "weight_decay", "weight_decay_scaling",
    "warmup", "warmup_fraction", "lr_milestones", "lr_decay",
)
# The fields in which members may differ: the optimiser's, and the seed (each member then
# has its own initial weights, batch order and augmentation).
MEMBER_FIELDS: tuple[str, ...] = OPTIMISER_FIELDS + ("seed",)
METHODS: tuple[str, ...] = ("auto", "grouped", "vmap")
# How train_ensemble drives a step (see there).
STEP_MODES: tuple[str, ...] = ("auto", "batches", "device", "graph")


def check_compatible(configs: Sequence[TrainConfig]) -> None:
    """Raise :class:`ConfigError` unless ``configs`` can train as one lock-step ensemble.

    They must agree on every field outside :data:`MEMBER_FIELDS` (the optimiser fields and
    the seed), and use plain SGD (momentum 0). The message names the fields that differ.
    """
    configs = list(configs)
    if not configs:
        raise ConfigError("a lock-step ensemble needs at least one config")
    for index, config in enumerate(configs):
        if not isinstance(config, TrainConfig):
            raise ConfigError(f"configs[{index}] is a {type(config).__name__}, "
                              "not a TrainConfig")
    shared = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in MEMBER_FIELDS]
    first = configs[0]
    differing = sorted({name for config in configs[1:] for name in shared
                        if getattr(config, name) != getattr(first, name)})
    if differing:
        details = "; ".join(
            f"{name}: {sorted({repr(getattr(c, name)) for c in configs})}" for name in differing)
        raise ConfigError(
            f"configs of a lock-step ensemble may differ only in the optimiser fields and the "
            f"seed ({', '.join(MEMBER_FIELDS)}); these fields differ: {', '.join(differing)} "
            f"({details}). Train them in separate ensembles.")
    if first.momentum != 0:
        raise ConfigError(
            f"a lock-step ensemble trains plain SGD (the paper's optimiser): momentum must be "
            f"0, got momentum={first.momentum}; use smallbatch.train.train for momentum runs")


def train_ensemble(configs: Sequence[TrainConfig], *, data: ImageData | None = None,
                   data_root=None, download: bool = False,
                   device: str | torch.device = "auto", progress: bool = True,
                   check_every: int = 20, method: str = "auto",
                   channels_last: bool | None = None,
                   step_mode: str = "auto") -> list[TrainResult]:
    """Train K runs in lock-step as one batched computation; one TrainResult per config.

    Member k's result equals ``train(configs[k])`` up to float rounding (same fields;
    the provenance adds "ensemble_size", "ensemble_method" and
    "ensemble_examples_per_second"). Book: "Lock-step ensembles".

    Args:
        configs: the runs; they may differ only in :data:`MEMBER_FIELDS` (the optimiser
            fields and the seed) and must use momentum 0 (see :func:`check_compatible`).
            Members with one seed share their initial weights and batches; with several
            seeds each member has its seed's, and the batch is gathered per member
            (:meth:`ImageData.member_batches`).
        data, data_root, download, device, progress, check_every, channels_last: as
            :func:`smallbatch.train.train`.
        method: "grouped", "vmap" or "auto" (grouped where the model supports it, else
            vmap, which ran at 0.67-0.82 of grouped's speed on 2 CPU cores).
        step_mode: how a step is driven (:data:`STEP_MODES`). "batches": the data set's
            batch iterators (any data set). "device": the epoch's draws, learning rates
            and running sums held on the device and a step that reads its position from a
            device counter: nothing in it waits for the host (an in-memory data set).
            "graph": that step captured once in a CUDA graph and replayed (CUDA only).
            "auto": "batches" (until the captured step's speed is measured on a GPU).
            Every mode computes the same run; the host syncs once per check window.

    When it pays (ResNet-8, 2 CPU cores, 2 threads, training images/s against K
    sequential train() runs): 3.1-3.5x at m=2, 1.3x at m=8, 1.1x at m=32, but 0.83x at
    m=128 (K=8 or 16), where one model is compute-bound already and K*m images of
    activations no longer fit in cache. With one thread per process: 1.9x, 1.15-1.2x,
    0.9x, 0.83x. So ensemble small batch sizes only.

    A member whose check-window mean loss is non-finite or above the divergence threshold
    is recorded as diverged, exactly as train() would record it, then masked: it leaves
    the loss and its parameters are zeroed, so it cannot disturb the others. Training stops
    when every member has diverged.
    """
    configs = list(configs)
    check_compatible(configs)
    for config in configs:
        validate(config)
    if method not in METHODS:
        raise ConfigError(f"unknown ensemble method {method!r}; choose one of: "
                          f"{', '.join(METHODS)}")
    if step_mode not in STEP_MODES:
        raise ConfigError(f"unknown step mode {step_mode!r}; choose one of: "
                          f"{', '.join(STEP_MODES)}")
    shared = configs[0]
    members = len(configs)
    # Exactly train()'s set-up: member k starts from the weights train(configs[k]) starts
    # from (one model per seed, each built as train() builds it).
    device, data, model, channels_last = setup_run(
        shared, data=data, data_root=data_root, download=download, device=device,
        channels_last=channels_last, configs=list(configs))
    seeds = sorted({config.seed for config in configs})
    by_seed = {shared.seed: model}
    for seed in seeds:
        if seed not in by_seed:
            by_seed[seed] = setup_run(shared.replace(seed=seed), data=data, device=device,
                                      channels_last=channels_last)[2]
    ensemble = _build_ensemble([by_seed[config.seed] for config in configs], method,
                               channels_last)
    num_parameters = count_parameters(model)
    dtype = ensemble.parameters[0].dtype  # float32 normally; float64 when the tests ask
    del model, by_seed
    # One seed: one batch sequence for all (the shared input). Several: each member draws
    # its own, from a generator seeded as train()'s is.
    generators = [torch.Generator().manual_seed(config.seed) for config in configs]

    batch_size = shared.batch_size
    steps_per_epoch = data.steps_per_epoch(batch_size)
    total_steps = steps_per_epoch * shared.num_epochs
    threshold = divergence_threshold(shared, data.num_classes)
    peak_lrs = [config.peak_lr for config in configs]
    schedules = [dict(milestones=c.lr_milestones, decay=c.lr_decay, warmup=c.warmup,
                      warmup_fraction=c.warmup_fraction) for c in configs]
    decay_rates = [config.sgd_weight_decay for config in configs]
    any_decay = any(rate > 0 for rate in decay_rates)

    validating = shared.validation_subset is not None
    step_resolved = shared.eval_growth is not None
    points = set(eval_steps(shared, total_steps))
    evaluations: list[list[EvalPoint]] = [[] for _ in configs]
    stopped: list[int | None] = [None] * members  # the step where a member reached its target
    stopped_time: list[float] = [0.0] * members
    eval_time = 0.0  # seconds the ensemble spent evaluating (all members at once) ...
    eval_time_of: list[float | None] = [None] * members  # ... when each member ended early

    def timed_evaluate(split: str) -> tuple[list[float], list[float]]:
        nonlocal eval_time
        started = time.perf_counter()
        measured = ensemble.evaluate(data, shared.eval_batch_size, split)
        eval_time += time.perf_counter() - started
        return measured

    def record_evaluation(test=None) -> list[int]:
        """Validation of every running member after ``step`` steps (with ``test``: the
        epoch end's test metrics); returns the members that reached stop_accuracy. Where a
        member ends (its stop, or the last step of a step-resolved run) its test metrics
        are measured too, as train() measures them."""
        val_losses, val_accuracies = timed_evaluate("validation")
        reached = [k for k in range(members) if active[k]
                   and shared.stop_accuracy is not None
                   and val_accuracies[k] >= shared.stop_accuracy]
        last = step_resolved and step == total_steps  # every running member ends here
        ending = {k for k in range(members) if active[k] and (last or k in reached)}
        at_epoch_end = test is not None  # the epoch end's test metrics, for every member
        if not at_epoch_end and ending:
            test = timed_evaluate("test")
        now = time.perf_counter() - start
        for k in range(members):
            if not active[k]:
                continue
            with_test = at_epoch_end or k in ending
            evaluations[k].append(EvalPoint(
                step=step, examples_seen=step * batch_size,
                validation_loss=val_losses[k], validation_accuracy=val_accuracies[k],
                test_loss=test[0][k] if with_test else None,
                test_accuracy=test[1][k] if with_test else None, wall_time=now))
        for k in reached:
            active[k] = False
            stopped[k], stopped_time[k] = step, now
            eval_time_of[k] = eval_time
        return reached

    from tqdm.auto import tqdm

    bar = tqdm(total=total_steps, disable=not progress, unit="step", leave=False,
               desc=f"{shared.model} m={batch_size} x{members} ({ensemble.method})")
    epochs: list[list[EpochMetrics]] = [[] for _ in configs]
    active = [True] * members  # neither diverged nor stopped at its target
    diverged: list[tuple[int, int, float] | None] = [None] * members  # epoch, step, time
    step = 0
    start = time.perf_counter()
    ensemble.train()
    stepper = _make_stepper(step_mode, ensemble, data, shared, generators,
                            shared_input=len(seeds) == 1, steps=steps_per_epoch,
                            dtype=dtype, any_decay=any_decay)
    for epoch in range(1, shared.num_epochs + 1):
        # This epoch's per-member LR and decay factor of every step, computed once on the
        # host in float64 (as train() does per step) and moved to the device in one copy.
        lr_rows = [[lr_at_step(s, total_steps, peak, **schedule) if alive else 0.0
                    for peak, schedule, alive in zip(peak_lrs, schedules, active)]
                   for s in range(step, step + steps_per_epoch)]
        lr_table = torch.tensor(lr_rows, dtype=torch.float64)
        decay_table = None
        if any_decay:
            decay_table = (1 - lr_table * torch.tensor(decay_rates, dtype=torch.float64))
            decay_table = decay_table.to(device=device, dtype=dtype)
        lr_table = lr_table.to(device=device, dtype=dtype)
        stepper.start_epoch(lr_table, decay_table)
        window_steps = 0
        epoch_steps = 0
        for _ in range(steps_per_epoch):
            stepper.step()
            step += 1
            epoch_steps += 1
            window_steps += 1
            if window_steps == check_every or epoch_steps == steps_per_epoch:
                # the one host sync of a check window
                window_means = [value / window_steps for value in stepper.window_loss.tolist()]
                bar.update(window_steps)
                live = [mean for mean, alive in zip(window_means, active) if alive]
                if live:
                    bar.set_postfix(loss=f"{min(live):.3f}", live=len(live), refresh=False)
                stepper.window_loss.zero_()
                window_steps = 0
                newly = [k for k in range(members)
                         if active[k] and has_diverged(window_means[k], threshold)]
                if newly:
                    now = time.perf_counter() - start
                    for k in newly:
                        active[k] = False
                        diverged[k] = (epoch, step, now)
                        eval_time_of[k] = eval_time
                        ensemble.zero_member_(k)
                    stepper.mask(epoch_steps, newly)  # out of the loss from now on
                    if not any(active):
                        break
            if step in points:
                reached = record_evaluation()
                if reached:
                    stepper.mask(epoch_steps, reached)  # its weights stay as they stopped
                    if not any(active):
                        break
        if not any(active):
            break
        running = list(active)  # the members that finish this epoch
        test_losses = test_accuracies = [None] * members  # step-resolved: tested at the end
        if not step_resolved:
            test_losses, test_accuracies = timed_evaluate("test")
        train_losses = stepper.epoch_loss.tolist()
        train_correct = stepper.epoch_correct.tolist()
        wall_time = time.perf_counter() - start
        for k in range(members):
            if not running[k]:
                continue
            epochs[k].append(EpochMetrics(
                epoch=epoch,
                train_loss=train_losses[k] / epoch_steps,
                train_accuracy=train_correct[k] / (epoch_steps * batch_size),
                test_loss=test_losses[k],
                test_accuracy=test_accuracies[k],
                lr=lr_rows[epoch_steps - 1][k],
                examples_seen=step * batch_size,
                wall_time=wall_time,
            ))
        if validating and not step_resolved:
            record_evaluation((test_losses, test_accuracies))
            if not any(active):
                break
    bar.close()
    wall_time = time.perf_counter() - start

    record = run_provenance(device)
    # The ensemble's throughput: all K members' training examples per second.
    ensemble_rate = members * step * batch_size / wall_time if wall_time > 0 else 0.0
    record.update(ensemble_size=members, ensemble_method=ensemble.method,
                      ensemble_examples_per_second=ensemble_rate)
    results = []
    for k, config in enumerate(configs):
        if diverged[k] is not None:
            diverged_epoch, num_steps, member_time = diverged[k]
            diverged_at = (diverged_epoch, num_steps)
        elif stopped[k] is not None:
            diverged_at, num_steps, member_time = None, stopped[k], stopped_time[k]
        else:
            diverged_at, num_steps, member_time = None, step, wall_time
        results.append(run_result(
            config, epochs[k], diverged_at,
            num_steps=num_steps,
            num_parameters=num_parameters,
            data_label=data.label,
            wall_time=member_time,
            # The hardware's rate while this member trained: K * steps * m / wall time, all
            # members' examples (comparable with train()'s rate for one model).
            examples_per_second=(members * num_steps * batch_size / member_time
                                 if member_time > 0 else 0.0),
            provenance=dict(record),
            evaluations=evaluations[k],
            stopped_step=stopped[k],
            # the ensemble's evaluation time (all members at once) while this member ran
            eval_time=((eval_time if eval_time_of[k] is None else eval_time_of[k])
                       if validating else 0.0),
        ))
    return results
