"""The committed results come from the committed code: re-train a few stored trials of the
published studies and compare with what is stored.

Which trials: among the stored trials of every published study at the scaled size, the
cheapest (fewest examples actually trained, counting a per-step overhead of 32 examples),
one complete and one diverged trial picked at random from the 8 cheapest of each kind. The
seed is $SMALLBATCH_CHECK_SEED if set (to repeat a failure), else random; the chosen
trials are printed (``pytest -rA`` shows them).

Trials at the edge of stability are not candidates: a complete trial qualifies only if the
same m and seed one octave higher in eta_tilde also completed, a diverged trial only if one
octave lower also diverged. At the edge, whether a run diverges depends on float32
rounding (a trial that diverged late in its lock-step ensemble completed when re-trained
alone), so there a flip is expected, not a sign of changed code.

Tolerance: the stored trials were trained in lock-step ensembles, possibly with another
thread count; the re-run uses the single-run trainer. Those differ by float32 rounding
(about 1e-4 relative per step, see the lock-step chapter), which a short run barely
amplifies. A complete trial must reproduce its status, its step count, its median test
accuracy to within 0.01 (50 of 5,000 test images) and each epoch's training loss to within
2% relative; a diverged trial must diverge again in the same epoch.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import pytest

from smallbatch import presets
from smallbatch.data import DataError
from smallbatch.results import load_records
from smallbatch.sweep import load_study, study_names
from smallbatch.train import config_hash, train

ACCURACY_TOLERANCE = 0.01
LOSS_RELATIVE_TOLERANCE = 0.02
CANDIDATES = 8


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
    """The trials whose neighbour one octave towards the other status has their status."""
    status = {(s, r.config.replace(base_lr=1.0)): {} for s, r in trials}
    for s, r in trials:
        status[(s, r.config.replace(base_lr=1.0))][round(math.log2(r.config.base_lr))] = r.status
    kept = []
    for s, r in trials:
        octave = round(math.log2(r.config.base_lr))
        neighbour = octave + 1 if r.status == "complete" else octave - 1
        if status[(s, r.config.replace(base_lr=1.0))].get(neighbour) == r.status:
            kept.append((s, r))
    return kept


def choose(seed: int):
    rng = random.Random(seed)
    trials = away_from_the_edge(stored_trials())
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
    try:
        again = train(stored.config, progress=False)
    except DataError as error:
        pytest.fail(f"the data set of a published study is missing: {error}")
    assert again.status == stored.status
    assert again.num_steps == stored.num_steps
    if stored.status == "diverged":
        assert again.diverged_epoch == stored.diverged_epoch
        return
    print(f"test accuracy: stored {stored.test_accuracy:.4f}, again {again.test_accuracy:.4f}; "
          f"last training loss: stored {stored.epochs[-1].train_loss:.5f}, "
          f"again {again.epochs[-1].train_loss:.5f}")
    assert again.test_accuracy == pytest.approx(stored.test_accuracy, abs=ACCURACY_TOLERANCE)
    for now, then in zip(again.epochs, stored.epochs):
        assert now.train_loss == pytest.approx(then.train_loss, rel=LOSS_RELATIVE_TOLERANCE), \
            f"epoch {now.epoch}"
