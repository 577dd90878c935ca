"""The committed results come from the committed code: re-train a few stored trials of the
published studies and compare with what is stored.

Which trials: among the stored trials of every published study at the scaled size, the
cheapest (fewest examples actually trained, counting a per-step overhead of 32 examples),
one complete and one diverged trial picked at random from the 8 cheapest of each kind. The
seed is $SMALLBATCH_CHECK_SEED if set (to repeat a failure), else random; the chosen
trials are printed (``pytest -rA`` shows them).

Only short runs are candidates (at most MAX_STEPS SGD steps, i.e. m >= 128 in the published
studies): the stored trials were trained in lock-step ensembles and the re-run uses the
single-run trainer, which differ by float32 rounding, and over tens of thousands of steps
that difference grows like a change of seed (re-trained alone, a stored m = 2,
eta_tilde = 2^0 trial ended 1.9 points lower). And trials at the edge of stability are not
candidates: a complete trial qualifies only if the nearest stored eta_tilde above it (same
study, m and seed) also completed, a diverged trial only if the nearest below also
diverged; at the edge, whether a run diverges depends on rounding (a trial that diverged
late in its ensemble completed when re-trained alone).

How: a stored trial that trained alone (ensemble size 1, every m >= 64 in the published
studies) is re-trained through the same lock-step code path with the thread count it
recorded. On the same kind of CPU that is bit-for-bit: the check is exact (test accuracy
equal, each epoch's training loss to 1e-6 relative). "The same kind" is the record's
``cpu_id`` (vendor, family, model, stepping and torch's instruction set), not its model
name: these virtual machines all report "AMD EPYC", and on two such hosts a stored
alexnet-bn trial re-trained at the same commit came out 0.8042 (this host, equal to the
record) and 0.8068 (CI's). On another kind of CPU, or for a record from before ``cpu_id``
was kept, the float32 rounding of the kernels may differ, so the check is statistical:
status and step count equal, median test accuracy within 0.02 and the last epoch's training
loss within 5%. A diverged trial must diverge again in the same epoch either way.
"""

from __future__ import annotations

import os
import random

import pytest
import torch

from smallbatch import presets
from smallbatch.data import DataError
from smallbatch.ensemble import train_ensemble
from smallbatch.provenance import cpu_id
from smallbatch.store import load_records
from smallbatch.studies import load_study, study_names
from smallbatch.train import config_hash, train

CANDIDATES = 8
MIN_ACCURACY = 0.5  # complete trials reproduced: well above chance (see candidate)
MAX_STEPS = 640


def stored_trials():
    """(study, TrainResult) for every stored trial of a named study at the scaled size."""
    found = []
    for name in study_names():
        study = load_study(name, "scaled")
        wanted = {config_hash(c) for c in study.trials()}
        records = load_records(presets.study_dir(name, "scaled"), warn=False).results
        found += [(name, r) for h, r in records.items()
                  if h in wanted and r.status in ("complete", "diverged")]
    return found


def cost(result) -> int:
    return result.num_steps * (result.config.batch_size + 32)


def away_from_the_edge(trials):
    """The trials whose nearest stored neighbour in eta_tilde towards the other status (above
    a complete trial, below a diverged one; same study and config otherwise) shares their
    status."""
    lines: dict[tuple, dict[float, str]] = {}
    for s, r in trials:
        lines.setdefault((s, r.config.replace(base_lr=1.0)), {})[r.config.base_lr] = r.status
    kept = []
    for s, r in trials:
        line = lines[(s, r.config.replace(base_lr=1.0))]
        lr = r.config.base_lr
        side = [v for v in line if (v > lr if r.status == "complete" else v < lr)]
        if side:
            nearest = min(side) if r.status == "complete" else max(side)
            if line[nearest] == r.status:
                kept.append((s, r))
    return kept


def candidate(trial) -> bool:
    result = trial[1]
    if result.num_steps > MAX_STEPS:
        return False
    if result.status == "complete":
        # a run that ends near chance (10 classes) is chaotic: on another CPU the rounding
        # alone moved one alexnet-bn trial from 0.19 to 0.22 (CI on an Intel host, 2026-12-06)
        return (result.provenance.get("ensemble_size", 1) == 1
                and result.test_accuracy >= MIN_ACCURACY)
    return result.diverged_epoch == 1


def choose(seed: int):
    rng = random.Random(seed)
    trials = [t for t in away_from_the_edge(stored_trials()) if candidate(t)]
    chosen = []
    for status in ("complete", "diverged"):
        kind = sorted((t for t in trials if t[1].status == status), key=lambda t: cost(t[1]))
        if kind:
            chosen.append(rng.choice(kind[:CANDIDATES]))
    return chosen


SEED = int(os.environ.get("SMALLBATCH_CHECK_SEED") or random.SystemRandom().randrange(10**6))
CHOSEN = choose(SEED)


def test_some_published_trials_are_stored():
    assert CHOSEN, ("no stored trial of a published study at the scaled size: "
                    "results/<study>/scaled is empty")


@pytest.mark.parametrize("study,stored", CHOSEN,
                         ids=[f"{s}-{r.config_hash}-seed{SEED}" for s, r in CHOSEN])
def test_stored_trial_is_reproduced(study, stored):
    print(f"SMALLBATCH_CHECK_SEED={SEED}: re-training {study} trial {stored.config_hash} "
          f"(m={stored.config.batch_size}, eta_tilde={stored.config.base_lr:g}, "
          f"{stored.status}, commit {stored.provenance.get('git_commit')})")
    threads = stored.provenance.get("threads")
    trained_on = stored.provenance.get("cpu_id")
    exact = (trained_on == cpu_id() and threads is not None
             and stored.provenance.get("ensemble_size", 1) == 1)
    print(f"trained on {trained_on or 'a CPU it did not record'}; this is {cpu_id()}")
    previous = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        if stored.provenance.get("ensemble_size", 1) == 1:
            again = train_ensemble([stored.config], progress=False)[0]
        else:
            again = train(stored.config, progress=False)
    except DataError as error:
        pytest.fail(f"the data set of a published study is missing: {error}")
    finally:
        torch.set_num_threads(previous)
    assert again.status == stored.status
    assert again.num_steps == stored.num_steps
    if stored.status == "diverged":
        assert again.diverged_epoch == stored.diverged_epoch
        return
    print(f"{'exact' if exact else 'statistical'} check; test accuracy: stored "
          f"{stored.test_accuracy:.4f}, again {again.test_accuracy:.4f}; last training loss: "
          f"stored {stored.epochs[-1].train_loss:.6f}, again {again.epochs[-1].train_loss:.6f}")
    if exact:
        assert again.test_accuracy == stored.test_accuracy
        for now, then in zip(again.epochs, stored.epochs):
            assert now.train_loss == pytest.approx(then.train_loss, rel=1e-6), f"epoch {now.epoch}"
    else:
        assert again.test_accuracy == pytest.approx(stored.test_accuracy, abs=0.02)
        assert again.epochs[-1].train_loss == pytest.approx(stored.epochs[-1].train_loss,
                                                            rel=0.05)
