"""What the steps-to-target study needs from a run (book: "Steps to a target"): a validation
split disjoint from the test set, evaluation at chosen steps rather than at epoch ends only,
and a run that stops once validation accuracy reaches its target; the lock-step ensemble
computing exactly what train() computes, stop included (float64, as test_ensemble.py)."""

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from smallbatch.data import DataError, load_data
from smallbatch.data.core import validation_indices
from smallbatch.ensemble import train_ensemble
from smallbatch.train import (LATER_FIELDS, ConfigError, TrainConfig, TrainResult, config_hash,
                              eval_steps, train, validate)

RESULTS = Path(__file__).resolve().parents[2] / "results"

BASE = TrainConfig(data="synthetic", batch_size=8, num_epochs=3, train_subset=128,
                   test_subset=100, validation_subset=100, lr_milestones=(),
                   eval_growth=1.2, eval_from_examples=24)


@pytest.fixture(scope="module")
def data32():
    return load_data("synthetic", train_subset=128, test_subset=100, validation_subset=100)


@pytest.fixture(scope="module")
def data64(data32):
    return dataclasses.replace(data32, train_x=data32.train_x.double(),
                               test_x=data32.test_x.double(),
                               validation_x=data32.validation_x.double())


# the validation split ---------------------------------------------------------------------

def test_validation_is_the_other_stratified_half_of_the_test_images():
    """Synthetic's 2,000 test images, 200 per class: a 1,000-image test subset leaves 100 per
    class, and a 1,000-image validation set is exactly those: disjoint, stratified, and
    together with the test subset the whole test set (Fashion-MNIST's 5,000 + 5,000)."""
    from smallbatch.data import readers
    from smallbatch.data.core import stratified_subset

    labels = torch.as_tensor(readers._synthetic_arrays("synthetic")["test_labels"])
    test = stratified_subset(labels, 1000, 10, 0)
    validation = validation_indices(labels, test, 1000, 10, 0)
    assert set(test.tolist()).isdisjoint(validation.tolist())
    assert sorted(test.tolist() + validation.tolist()) == list(range(labels.numel()))
    assert torch.bincount(labels[validation], minlength=10).tolist() == [100] * 10
    smaller = validation_indices(labels, test, 500, 10, 0)
    assert set(smaller.tolist()) <= set(validation.tolist())
    assert torch.bincount(labels[smaller], minlength=10).tolist() == [50] * 10
    with pytest.raises(DataError, match="more images than the 1000 test images outside"):
        validation_indices(labels, test, 1001, 10, 0)


def test_loaded_validation_images_are_not_test_images(data32):
    assert data32.num_validation == 100 and data32.num_test == 100
    test_rows = {tuple(x.flatten().tolist()) for x in data32.test_x}
    assert not any(tuple(x.flatten().tolist()) in test_rows for x in data32.validation_x)
    batches = list(data32.eval_batches("validation", 30))
    assert [len(y) for _, y in batches] == [30, 30, 30, 10]
    plain = load_data("synthetic", train_subset=128, test_subset=100)
    assert torch.equal(plain.test_x, data32.test_x)  # the test set is the one it was
    with pytest.raises(DataError, match="without a validation split"):
        next(plain.eval_batches("validation", 10))
    with pytest.raises(DataError, match="unknown evaluation split 'train'"):
        plain.eval_batches("train", 10)
    with pytest.raises(DataError, match="needs a test subset"):
        load_data("synthetic", train_subset=128, validation_subset=100)


# configs: new fields keep old hashes -------------------------------------------------------

def test_stored_records_keep_their_hashes():
    """The new fields are left out of to_dict() at their defaults: every stored record of
    the published studies still hashes to its file name, and its config dict has none of
    them."""
    paths = sorted(RESULTS.glob("*/scaled/*.json"))[:200]
    assert paths
    for path in paths:
        values = json.loads(path.read_text())
        if "config" not in values or "batch_size" not in values["config"]:
            continue
        result = TrainResult.from_dict(values)
        assert result.config_hash == path.stem
        assert not set(LATER_FIELDS) & set(result.config.to_dict())
        assert "evaluations" not in result.to_dict()


def test_new_fields_change_the_hash_and_round_trip():
    plain = BASE.replace(validation_subset=None, eval_growth=None, eval_from_examples=0)
    assert config_hash(BASE) != config_hash(plain)
    assert TrainConfig.from_dict(BASE.to_dict()) == BASE
    assert {"validation_subset", "eval_growth", "eval_from_examples"} <= set(BASE.to_dict())


@pytest.mark.parametrize("changes, message", [
    (dict(validation_subset=None), "eval_growth reads the validation set"),
    (dict(test_subset=None), "validation_subset needs a test_subset"),
    (dict(eval_growth=1.0), "eval_growth must be a number > 1"),
    (dict(eval_from_examples=-1), "eval_from_examples must be an integer >= 0"),
    (dict(stop_accuracy=1.5), r"stop_accuracy is a validation accuracy in \(0, 1\]"),
    (dict(validation_subset=None, eval_growth=None, stop_accuracy=0.5),
     "stop_accuracy reads the validation set"),
])
def test_bad_evaluation_settings_are_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        validate(BASE.replace(**changes))


# the evaluation steps ----------------------------------------------------------------------

@pytest.mark.parametrize("growth, start, batch_size", [(1.05, 0, 2), (1.05, 8192, 32),
                                                        (1.2, 24, 8), (1.5, 100, 1024)])
def test_evaluation_steps_resolve_every_step_to_the_stated_share(growth, start, batch_size):
    config = BASE.replace(eval_growth=growth, eval_from_examples=start, batch_size=batch_size)
    steps = eval_steps(config, 100_000)
    assert steps[0] == max(1, math.ceil(start / batch_size))
    assert steps == sorted(set(steps)) and steps[-1] == 100_000   # and where the run ends
    for before, after in zip(steps, steps[1:]):
        unobserved = after - before - 1
        assert unobserved < (growth - 1) * after          # the resolution the study states
        if after <= 1 / (growth - 1):
            assert unobserved == 0                        # every step, where steps are few
    assert eval_steps(BASE.replace(eval_growth=None), 1000) == []


def test_the_five_percent_grid_is_not_dense_where_steps_are_many():
    """The evaluations grow with the log of the steps: every step up to 20, then about
    ln(S / 20) / ln(1.05) (rounding down each step adds under 10% here), not S of them."""
    steps = eval_steps(BASE.replace(eval_growth=1.05, eval_from_examples=0, batch_size=2),
                       40_960)
    assert steps[:20] == list(range(1, 21))
    assert len(steps) < 20 + 1.1 * math.log(40_960 / 20) / math.log(1.05)


# runs -------------------------------------------------------------------------------------

def test_a_step_resolved_run_evaluates_validation_at_its_steps_and_tests_at_its_end(data32):
    result = train(BASE, data=data32, progress=False)
    steps = [p.step for p in result.evaluations]
    assert steps == eval_steps(BASE, 48) and steps[-1] == 48
    for point in result.evaluations:
        assert 0 <= point.validation_accuracy <= 1
        assert (point.test_accuracy is not None) == (point.step == 48)
    assert [e.test_accuracy for e in result.epochs] == [None] * 3   # by steps, not epochs
    assert result.test_accuracy == result.evaluations[-1].test_accuracy is not None
    assert result.stopped_step is None and result.num_steps == 48
    assert 0 < result.eval_time < result.wall_time
    assert TrainResult.from_dict(result.to_dict()).to_dict() == result.to_dict()


def test_a_run_with_validation_only_evaluates_both_sets_at_epoch_ends(data32):
    config = BASE.replace(eval_growth=None, eval_from_examples=0)
    result = train(config, data=data32, progress=False)
    assert [p.step for p in result.evaluations] == [16, 32, 48]
    assert [p.test_accuracy for p in result.evaluations] == \
        [e.test_accuracy for e in result.epochs]
    assert None not in [p.test_accuracy for p in result.evaluations]
    ensemble = train_ensemble([config, config.replace(base_lr=2.0**-6)], data=data32,
                              progress=False)[0]
    assert [p.step for p in ensemble.evaluations] == [16, 32, 48]
    assert [p.test_accuracy for p in ensemble.evaluations] == \
        [e.test_accuracy for e in ensemble.epochs]


def test_a_run_stops_where_validation_first_reaches_its_target(data64, float64):
    free = train(BASE, data=data64, progress=False)
    accuracies = [p.validation_accuracy for p in free.evaluations]
    target = sorted(set(accuracies))[-2]        # reached, but not at the first evaluation
    first = next(i for i, a in enumerate(accuracies) if a >= target)
    stopped = train(BASE.replace(stop_accuracy=target), data=data64, progress=False)
    assert stopped.status == "complete"
    assert stopped.stopped_step == stopped.num_steps == free.evaluations[first].step
    assert [p.validation_accuracy for p in stopped.evaluations] == \
        pytest.approx(accuracies[:first + 1], abs=1e-12)
    last = stopped.evaluations[-1]
    assert last.test_accuracy is not None and stopped.test_accuracy == last.test_accuracy
    assert all(p.test_accuracy is None for p in stopped.evaluations[:-1])
    assert len(stopped.epochs) == (stopped.num_steps - 1) // 16   # whole epochs before it


def test_ensemble_members_evaluate_and_stop_as_train_does(data64, float64):
    """Four members (two seeds, four step sizes) with a target some reach at different
    steps and one never does: every member's evaluations, stop, headline and epochs are
    train()'s, in float64."""
    configs = [BASE.replace(base_lr=2.0 ** e, seed=s, stop_accuracy=0.17)
               for e, s in ((-9, 0), (-6, 1), (-4, 0), (-3, 2))]
    results = train_ensemble(configs, data=data64, progress=False)
    wanted = [train(c, data=data64, progress=False) for c in configs]
    assert {w.stopped_step is None for w in wanted} == {True, False}   # the case is real
    assert len({w.stopped_step for w in wanted}) >= 3
    for got, want in zip(results, wanted):
        assert (got.status, got.stopped_step, got.num_steps) == \
            (want.status, want.stopped_step, want.num_steps)
        assert [p.step for p in got.evaluations] == [p.step for p in want.evaluations]
        for a, b in zip(got.evaluations, want.evaluations):
            assert a.validation_loss == pytest.approx(b.validation_loss, rel=1e-9)
            assert a.validation_accuracy == b.validation_accuracy
            assert (a.test_accuracy is None) == (b.test_accuracy is None)
            assert a.test_accuracy == b.test_accuracy
        assert got.test_accuracy == want.test_accuracy
        assert [e.test_accuracy for e in got.epochs] == [e.test_accuracy for e in want.epochs]
        assert 0 < got.eval_time
