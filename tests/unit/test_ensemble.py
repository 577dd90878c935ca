"""The lock-step ensemble trainer: every member reproduces train() for its own config.

Exactness is tested in float64, where the ensemble and train() agree to ~1e-13 (the
ensemble's grouped convolutions and batched matmuls sum in another order than one model's
kernels; in float64 that rounding stays far below any real discrepancy, which would show
at 1e-3 or more). In float32, the production dtype, the same reorderings are amplified by
training (measured: ~1e-5 .. 2e-4 relative in the losses after 32 steps at eta ~ 0.03,
also between train() with and without channels_last), so the float32 test is looser.
"""

import dataclasses
import math

import pytest
import torch

from smallbatch.data import load_data
from smallbatch.ensemble import (OPTIMISER_FIELDS, LockstepEnsemble, check_compatible,
                                 group_model, train_ensemble)
from smallbatch.models import build_model
from smallbatch.train import (ConfigError, TrainConfig, lr_at_step, make_optimizer, sgd_step,
                              train)

METHODS = ["grouped", "vmap"]
BASE = TrainConfig(data="synthetic", model="resnet8", batch_size=8, base_lr=2.0**-9,
                   num_epochs=2, train_subset=128, test_subset=100)


def members(base: TrainConfig) -> list[TrainConfig]:
    """Four members that differ in every kind of optimiser field."""
    return [
        base,
        base.replace(base_lr=2.0**-8, weight_decay=1e-2),                       # per example
        base.replace(base_lr=2.0**-10, weight_decay=5e-2, weight_decay_scaling="per_step",
                     warmup=True, warmup_fraction=0.2),
        base.replace(lr_scaling="sqrt", reference_batch_size=4, lr_milestones=(0.25,),
                     lr_decay=0.5),
    ]


CASES = {
    "resnet8-bn": BASE,
    "resnet8-no-bn": BASE.replace(batch_norm="none"),
    "resnet8-ghost-bn": BASE.replace(bn_batch_size=4),
    "alexnet-bn-all": BASE.replace(model="alexnet", batch_norm="all"),
}


@pytest.fixture(scope="module")
def data32():
    return load_data("synthetic", train_subset=128, test_subset=100)


@pytest.fixture(scope="module")
def data64(data32):
    return dataclasses.replace(data32, train_x=data32.train_x.double(),
                               test_x=data32.test_x.double())


_references: dict[TrainConfig, object] = {}


def reference(config, data):
    """train(config) in float64, computed once per test session."""
    if config not in _references:
        _references[config] = train(config, data=data, progress=False)
    return _references[config]


def assert_same_run(got, want, *, rtol, accuracy_slack=0.0):
    assert got.config == want.config
    assert (got.status, got.num_steps, got.diverged_epoch, got.diverged_step) == \
        (want.status, want.num_steps, want.diverged_epoch, want.diverged_step)
    assert (got.num_parameters, got.data_label) == (want.num_parameters, want.data_label)
    assert len(got.epochs) == len(want.epochs)
    for a, b in zip(got.epochs, want.epochs):
        assert (a.epoch, a.examples_seen) == (b.epoch, b.examples_seen)
        assert a.lr == pytest.approx(b.lr, rel=1e-12)
        assert a.train_loss == pytest.approx(b.train_loss, rel=rtol)
        assert a.test_loss == pytest.approx(b.test_loss, rel=rtol)
        assert abs(a.train_accuracy - b.train_accuracy) <= accuracy_slack
        assert abs(a.test_accuracy - b.test_accuracy) <= accuracy_slack
    if want.test_accuracy is None:
        assert got.test_accuracy is None
    else:
        assert abs(got.test_accuracy - want.test_accuracy) <= accuracy_slack
    assert set(want.provenance) <= set(got.provenance)


# every member reproduces train() ------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES)
def test_members_reproduce_train_in_float64(case, method, data64, float64):
    configs = members(CASES[case])
    results = train_ensemble(configs, data=data64, progress=False, method=method)
    assert len(results) == len(configs)
    for result, config in zip(results, configs):
        want = reference(config, data64)
        assert want.status == "complete"
        assert_same_run(result, want, rtol=1e-9)
        assert result.provenance["ensemble_size"] == 4
        assert result.provenance["ensemble_method"] == method
        # the schedules really differ: warm-up, sqrt scaling, milestones crossed in epoch 2
    assert len({tuple(e.lr for e in r.epochs) for r in results}) == 4


def seeded_members(base: TrainConfig) -> list[TrainConfig]:
    """Five members over three seeds, two of them sharing seed 1, with augmentation: each
    has its own initial weights, batch order, crops and flips (those of seed 1 shared)."""
    base = base.replace(augment=True)
    return [base.replace(seed=1), base.replace(seed=2, base_lr=2.0**-8),
            base.replace(seed=0, weight_decay=1e-2), base.replace(seed=1, base_lr=2.0**-10),
            base.replace(seed=7, lr_milestones=(0.25,), lr_decay=0.5)]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", ["resnet8-bn", "alexnet-bn-all"])
def test_members_with_their_own_seeds_reproduce_train_in_float64(case, method, data64,
                                                                  float64):
    """Seeds in one ensemble: member k still equals train(configs[k]), with its own
    initial weights, its own batch order and its own augmentation."""
    configs = seeded_members(CASES[case])
    results = train_ensemble(configs, data=data64, progress=False, method=method)
    for result, config in zip(results, configs):
        want = reference(config, data64)
        assert want.status == "complete"
        assert_same_run(result, want, rtol=1e-9)
    # the members really differ: seeds 1, 2, 0 and 7 give four different first epochs
    assert len({r.epochs[0].train_loss for r in results}) == len(configs)


@pytest.mark.parametrize("seeded", [False, True], ids=["one seed", "four seeds"])
def test_the_device_resident_step_computes_the_same_runs_in_float64(seeded, data64, float64):
    """step_mode="device" (the step CUDA captures as a graph, here run uncaptured): the
    epoch's draws, learning rates and sums on the device, the position read from a device
    counter. Member k still equals train(configs[k])."""
    configs = seeded_members(BASE) if seeded else members(BASE)[:3]
    results = train_ensemble(configs, data=data64, progress=False, method="grouped",
                             step_mode="device")
    for result, config in zip(results, configs):
        assert_same_run(result, reference(config, data64), rtol=1e-9)


def test_step_modes_are_checked(data32):
    with pytest.raises(ConfigError, match="captures the step as a CUDA graph; the device is cpu"):
        train_ensemble([BASE], data=data32, progress=False, step_mode="graph", device="cpu")
    with pytest.raises(ConfigError, match="unknown step mode 'fast'"):
        train_ensemble([BASE], data=data32, progress=False, step_mode="fast")


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("seeded", [False, True], ids=["one seed", "four seeds"])
def test_the_captured_step_trains_what_the_uncaptured_one_does_on_cuda(seeded):
    """On CUDA, step_mode="graph" replays one captured step (gather, forward, backward,
    SGD update, sums) and computes what the batch-by-batch loop computes (float32: the
    same kernels, so equal up to cuDNN's own run-to-run rounding)."""
    data = load_data("synthetic", train_subset=128, test_subset=100, device="cuda")
    configs = (seeded_members if seeded else members)(BASE)
    graph = train_ensemble(configs, data=data, device="cuda", progress=False,
                           step_mode="graph")
    loop = train_ensemble(configs, data=data, device="cuda", progress=False,
                          step_mode="batches")
    for a, b in zip(graph, loop):
        assert_same_run(a, b, rtol=1e-4, accuracy_slack=0.02)


@cuda
def test_the_captured_step_never_waits_for_the_host():
    """Between two check windows nothing syncs: the replayed step, run under CUDA's sync
    debug mode set to raise, raises nothing."""
    from smallbatch.ensemble import _make_stepper

    data = load_data("synthetic", train_subset=128, test_subset=100, device="cuda")
    configs = seeded_members(BASE)
    models = []
    for config in configs:
        torch.manual_seed(config.seed)
        models.append(build_model("resnet8", in_channels=1, num_classes=10).cuda())
    ensemble = LockstepEnsemble(models)
    gens = [torch.Generator().manual_seed(c.seed) for c in configs]
    steps = data.steps_per_epoch(BASE.batch_size)
    stepper = _make_stepper("graph", ensemble, data, configs[0].replace(augment=True), gens,
                            shared_input=False, steps=steps, dtype=torch.float32,
                            any_decay=False)
    stepper.start_epoch(torch.full((steps, len(configs)), 1e-3, device="cuda"), None)
    for _ in range(5):  # warm-up and capture
        stepper.step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):
            stepper.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert int(stepper.counter) == 10


def test_member_batches_are_each_members_train_batches(data32):
    """Per-member batches, gathered at once on the device, are exactly the batches each
    member's generator gives train_batches; so are those of the default (zipped) form."""
    from smallbatch.data.core import ImageData

    seeds = [3, 0, 3, 11]
    for augment in (False, True):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        got = list(data32.member_batches(8, generators=gens, augment=augment))
        zipped = list(ImageData.member_batches(
            data32, 8, generators=[torch.Generator().manual_seed(s) for s in seeds],
            augment=augment))
        each = [list(data32.train_batches(8, generator=torch.Generator().manual_seed(s),
                                          augment=augment)) for s in seeds]
        assert len(got) == len(zipped) == len(each[0]) == data32.steps_per_epoch(8)
        for step, ((x, y), (zx, zy)) in enumerate(zip(got, zipped)):
            assert x.shape == (8, len(seeds), *data32.input_shape) and y.shape == (8, len(seeds))
            assert torch.equal(x, zx) and torch.equal(y, zy)
            for k in range(len(seeds)):
                assert torch.equal(x[:, k], each[k][step][0])
                assert torch.equal(y[:, k], each[k][step][1])
        assert torch.equal(got[0][0][:, 0], got[0][0][:, 2])  # a shared seed: shared batch
        assert not torch.equal(got[0][0][:, 0], got[0][0][:, 1])


def test_the_stem_takes_a_shared_batch_or_one_per_member():
    model = build_model("resnet8", in_channels=1, num_classes=10)
    ensemble = LockstepEnsemble([model, build_model("resnet8", in_channels=1, num_classes=10)])
    x = torch.randn(4, 1, 28, 28)
    shared = ensemble(x)
    assert torch.allclose(ensemble(torch.stack([x, x], dim=1)), shared, atol=1e-5)
    with pytest.raises(ValueError, match=r"x of shape \(m, 2, C, H, W\)"):
        ensemble(torch.randn(4, 3, 1, 28, 28))
    with pytest.raises(ValueError, match="takes 1 channels .* or 2"):
        ensemble._module(torch.randn(4, 3, 28, 28))
    with pytest.raises(ConfigError, match="3 models given for an ensemble of 2"):
        LockstepEnsemble([model] * 3, 2)


@pytest.mark.parametrize("method", METHODS + ["auto"])
def test_single_member_ensemble_is_train(method, data64, float64):
    config = members(BASE)[2]
    (result,) = train_ensemble([config], data=data64, progress=False, method=method)
    assert_same_run(result, reference(config, data64), rtol=1e-9)
    assert result.provenance["ensemble_method"] == ("grouped" if method == "auto" else method)
    rate = result.num_steps * config.batch_size / result.wall_time
    assert result.examples_per_second == pytest.approx(rate)


@pytest.mark.parametrize("method", METHODS)
def test_float32_channels_last_matches_train(method, data32):
    """The production path: float32, channels_last. Rounding differs, so looser."""
    configs = [BASE.replace(base_lr=2.0**-8), BASE.replace(base_lr=2.0**-7, weight_decay=1e-2)]
    results = train_ensemble(configs, data=data32, progress=False, method=method)
    for result, config in zip(results, configs):
        want = train(config, data=data32, progress=False)
        assert_same_run(result, want, rtol=2e-3, accuracy_slack=2 / 100)  # 2 test examples
        k = len(configs)
        assert result.examples_per_second == pytest.approx(
            k * result.num_steps * config.batch_size / result.wall_time)
        assert result.provenance["ensemble_examples_per_second"] == pytest.approx(
            result.examples_per_second, rel=0.05)


# the update itself, parameter by parameter -----------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bn_batch_size", [None, 2])
def test_parameters_and_running_stats_match_torch_sgd(method, bn_batch_size, data64, float64):
    """Each member's weights and BN statistics after SGD steps with its own LR schedule and
    weight decay equal torch.optim.SGD's (train.make_optimizer + sgd_step) on one model."""
    base = BASE.replace(bn_batch_size=bn_batch_size, num_epochs=1)
    configs = members(base)
    torch.manual_seed(0)
    model = build_model("resnet8", in_channels=1, num_classes=10, bn_batch_size=bn_batch_size)
    singles = [build_model("resnet8", in_channels=1, num_classes=10,
                           bn_batch_size=bn_batch_size) for _ in configs]
    for single in singles:
        single.load_state_dict(model.state_dict())
    optimisers = [make_optimizer(single, c) for single, c in zip(singles, configs)]
    ensemble = LockstepEnsemble(model, len(configs), method=method)
    decay = [c.weight_decay / (c.batch_size if c.weight_decay_scaling == "per_step" else 1)
             for c in configs]
    total = 8
    generator = torch.Generator().manual_seed(0)
    for step, (x, y) in zip(range(total), data64.train_batches(8, generator=generator,
                                                               augment=True)):
        lrs = [lr_at_step(step, total, c.peak_lr, milestones=c.lr_milestones,
                          decay=c.lr_decay, warmup=c.warmup, warmup_fraction=c.warmup_fraction)
               for c in configs]
        losses, _ = ensemble.sgd_step(x, y, torch.tensor(lrs),
                                      1 - torch.tensor(lrs) * torch.tensor(decay))
        for k, (single, optimiser) in enumerate(zip(singles, optimisers)):
            loss, _ = sgd_step(single, optimiser, x, y, lrs[k])
            assert losses[k].item() == pytest.approx(loss.item(), rel=1e-12)
    for k, single in enumerate(singles):
        got, want = ensemble.member_state_dict(k), single.state_dict()
        assert got.keys() == want.keys()
        for name in want:
            torch.testing.assert_close(got[name], want[name], rtol=1e-10, atol=1e-12,
                                       msg=lambda m: f"member {k} {name}: {m}")
    # the members did move apart (different LRs and decay): the check has teeth
    first, second = ensemble.member_state_dict(0), ensemble.member_state_dict(1)
    assert not torch.allclose(first["head.2.weight"], second["head.2.weight"], rtol=1e-3)


@pytest.mark.parametrize("name,batch_norm,size", [("resnet8", "all", 28),
                                                   ("alexnet", "all", 28),
                                                   ("alexnet", "none", 28),
                                                   ("resnet50", "all", 32)])
@pytest.mark.parametrize("method", METHODS)
def test_distinct_members_compute_their_own_model(name, batch_norm, size, method, float64):
    """With different weights per member, member k's logits (train and eval mode) and BN
    running statistics are those of a single model holding member k's state: the layout
    never mixes members. (float64: ghost BN over 2 examples of a 1x1 feature map is too
    ill-conditioned to compare ResNet-50 in float32.)"""
    torch.manual_seed(1)
    model = build_model(name, in_channels=1, num_classes=10, input_size=size,
                        batch_norm=batch_norm, bn_batch_size=2 if batch_norm != "none" else None)
    ensemble = LockstepEnsemble(model, 3, method=method)
    with torch.no_grad():  # make the members differ, in every parameter
        for parameter in ensemble.parameters:
            parameter.mul_(1 + 0.2 * torch.randn_like(parameter))
    before = [ensemble.member_state_dict(k) for k in range(3)]
    x = torch.randn(4, 1, size, size)
    logits = ensemble(x)                        # train mode: updates running statistics
    assert logits.shape == (4, 3, 10)
    ensemble.eval()
    eval_logits = ensemble(x)
    single = build_model(name, in_channels=1, num_classes=10, input_size=size,
                         batch_norm=batch_norm, bn_batch_size=2 if batch_norm != "none" else None)
    for k in range(3):
        single.load_state_dict(before[k])
        single.train()
        torch.testing.assert_close(logits[:, k], single(x), rtol=1e-9, atol=1e-12)
        after = ensemble.member_state_dict(k)
        for key, value in single.state_dict().items():
            torch.testing.assert_close(after[key], value, rtol=1e-9, atol=1e-12)
        single.eval()
        torch.testing.assert_close(eval_logits[:, k], single(x), rtol=1e-9, atol=1e-12)
    assert not torch.allclose(logits[:, 0], logits[:, 1], rtol=1e-2)


@pytest.mark.parametrize("method", METHODS)
def test_zero_member_touches_only_that_member(method):
    torch.manual_seed(0)
    ensemble = LockstepEnsemble(build_model("resnet8", in_channels=1, num_classes=10), 3,
                                method=method)
    before = [ensemble.member_state_dict(k) for k in range(3)]
    ensemble.zero_member_(1)
    zeroed = ensemble.member_state_dict(1)
    for name, value in zeroed.items():
        if name.endswith("running_var"):
            assert torch.equal(value, torch.ones_like(value)), name
        elif value.is_floating_point():
            assert torch.equal(value, torch.zeros_like(value)), name
    for k in (0, 2):
        after = ensemble.member_state_dict(k)
        assert all(torch.equal(after[name], before[k][name]) for name in after)
    logits = ensemble(torch.randn(4, 1, 28, 28))
    assert torch.isfinite(logits).all() and torch.equal(logits[:, 1], torch.zeros(4, 10))


def test_group_model_keeps_the_state_dict_keys():
    model = build_model("resnet20", in_channels=3, num_classes=10)
    grouped = group_model(model, 5)
    assert grouped.state_dict().keys() == model.state_dict().keys()
    assert grouped.stem[0].weight.shape == (5 * 16, 3, 3, 3)          # shared input, no groups
    assert grouped.stages[1].conv1.groups == 5
    assert grouped.head[2].weight.shape == (5 * 10, 64)


# divergence --------------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_a_diverging_member_is_masked_and_disturbs_no_one(method, data32):
    """float32, the dtype where NaN and inf really appear. The sane members' metrics are
    bit-identical to those of an ensemble of the same size without the explosion, and the
    exploding member's record is train()'s."""
    sane = BASE.replace(batch_norm="none")
    exploding = sane.replace(base_lr=2.0**2)                     # eta = 32: explodes
    calm = sane.replace(base_lr=2.0**-9.5)
    run = dict(data=data32, progress=False, method=method, check_every=4)
    with_explosion = train_ensemble([sane, exploding, sane.replace(base_lr=2.0**-10)], **run)
    without = train_ensemble([sane, calm, sane.replace(base_lr=2.0**-10)], **run)
    alone = train(exploding, data=data32, progress=False, check_every=4)
    assert alone.status == "diverged"
    got = with_explosion[1]
    assert (got.status, got.diverged_epoch, got.diverged_step, got.epochs,
            got.test_accuracy) == ("diverged", alone.diverged_epoch, alone.diverged_step, [],
                                   None)
    assert got.num_steps == alone.num_steps
    for k in (0, 2):
        assert with_explosion[k].status == "complete"
        assert all(math.isfinite(e.train_loss) for e in with_explosion[k].epochs)
        strip = lambda r: [dataclasses.replace(e, wall_time=0.0) for e in r.epochs]  # noqa: E731
        assert strip(with_explosion[k]) == strip(without[k])


def test_all_members_diverged_stops_early(data32):
    configs = [BASE.replace(batch_norm="none", base_lr=2.0**2),
               BASE.replace(batch_norm="none", base_lr=2.0**3)]
    results = train_ensemble(configs, data=data32, progress=False, check_every=2)
    assert [r.status for r in results] == ["diverged", "diverged"]
    assert max(r.num_steps for r in results) < 128 // 8   # stopped inside the first epoch


# the steppers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["batches", "device"])
def test_both_steppers_keep_the_running_sums_and_mask_members(mode, data32):
    """Each stepper adds every step's per-member losses to the epoch and window sums and
    counts correct predictions; masking sets a member's later learning rates to 0 and decay
    factors to 1 and touches no other member or earlier step; a new epoch zeroes the sums."""
    from smallbatch.ensemble import _make_stepper

    torch.manual_seed(0)
    ensemble = LockstepEnsemble(build_model("resnet8", in_channels=1, num_classes=10), 3)
    steps = data32.steps_per_epoch(BASE.batch_size)
    stepper = _make_stepper(mode, ensemble, data32, BASE, [torch.Generator().manual_seed(0)],
                            shared_input=True, steps=steps, dtype=torch.float32,
                            any_decay=True)
    lr_table = torch.full((steps, 3), 1e-3)
    stepper.start_epoch(lr_table, torch.full((steps, 3), 0.5))
    for _ in range(2):
        stepper.step()
    assert torch.equal(stepper.epoch_loss, stepper.window_loss)
    assert bool((stepper.epoch_loss > 0).all())
    assert 0 <= int(stepper.epoch_correct.max()) <= 2 * BASE.batch_size
    stepper.window_loss.zero_()
    stepper.step()
    assert bool((stepper.window_loss < stepper.epoch_loss).all())  # a window of one step
    stepper.mask(3, [1])
    assert bool((stepper.lr[3:, 1] == 0).all()) and bool((stepper.decay[3:, 1] == 1).all())
    assert bool((stepper.lr[:3, 1] == 1e-3).all()) and bool((stepper.decay[:3, 1] == 0.5).all())
    assert bool((stepper.lr[:, [0, 2]] == 1e-3).all())
    assert bool((stepper.decay[:, [0, 2]] == 0.5).all())
    stepper.start_epoch(lr_table, torch.full((steps, 3), 0.5))
    for total in (stepper.epoch_loss, stepper.window_loss, stepper.epoch_correct):
        assert not bool(total.any())


def test_the_package_exports_the_names_its_users_import():
    """smallbatch.ensemble is a package (grouped, lockstep, steppers, trainer); its public
    names, and the private ones the tests, benchmarks and studies import, stay where they
    were."""
    import smallbatch.ensemble as ensemble

    assert ensemble.__all__ == [
        "OPTIMISER_FIELDS", "MEMBER_FIELDS", "METHODS", "STEP_MODES", "UnsupportedModelError",
        "check_compatible", "GroupedLinear", "MemberStem", "group_model", "LockstepEnsemble",
        "train_ensemble"]
    for name in ensemble.__all__ + ["_build_ensemble", "_make_stepper", "_BatchSteps",
                                    "_DeviceSteps"]:
        assert hasattr(ensemble, name), name


# bad input ------------------------------------------------------------------------------------

def test_incompatible_members_are_rejected_naming_the_fields(data32):
    configs = [BASE, BASE.replace(batch_size=16, seed=3), BASE.replace(base_lr=1e-3)]
    with pytest.raises(ConfigError, match=r"differ: batch_size \(batch_size"):
        train_ensemble(configs, data=data32, progress=False)
    with pytest.raises(ConfigError, match="momentum must be 0"):
        check_compatible([BASE.replace(momentum=0.9)] * 2)
    with pytest.raises(ConfigError, match="at least one config"):
        train_ensemble([], data=data32, progress=False)
    with pytest.raises(ConfigError, match="unknown ensemble method 'jit'"):
        train_ensemble([BASE], data=data32, progress=False, method="jit")
    with pytest.raises(ConfigError, match="batch_size=1024 is larger than the training set"):
        train_ensemble([BASE.replace(batch_size=1024)], data=data32, progress=False)
    check_compatible([BASE.replace(**{name: value}) for name, value in
                      zip(OPTIMISER_FIELDS, (1e-3, "sqrt", 4, 1e-4, "per_step", True, 0.1,
                                             (0.3,), 0.5))])
