"""Many SGD runs in lock-step: K models trained as one batched computation.

A learning-rate sweep at one batch size trains K models that differ only in their optimiser
settings. Trained one at a time at a small batch size, each step is dominated by ~3 ms of
per-step overhead; trained together, the K members share every kernel launch, so a step
costs about as much as one model at batch size K * m (book: "Lock-step ensembles";
shared/PERF_NOTES.md).

The contract: members agree on every :class:`~smallbatch.train.TrainConfig` field except the
optimiser fields (:data:`OPTIMISER_FIELDS`) and the seed (:data:`MEMBER_FIELDS`). Each member
starts from its own seed's initial weights and sees its own seed's batch sequence and
augmentation, drawn exactly as ``train()`` draws them; members that share a seed share both
(common random numbers across learning rates). Member k computes, in exact arithmetic, what
``train(configs[k])`` computes. Only plain SGD (momentum 0, the paper's optimiser) is
supported.

Two implementations of the batched model:

- "grouped": one module whose layers hold all K members side by side. A convolution becomes
  a grouped convolution (K groups), the stem a convolution with K times the output channels
  applied to the shared input (one seed) or a grouped one on the members' own inputs
  (several seeds; :class:`MemberStem`), batch norm a batch norm over K times the channels (per-channel
  statistics are per-member statistics, running statistics included), a linear layer a
  batched matmul. Supported: the CIFAR ResNets, the reduced AlexNet and ResNet-50.
- "vmap": ``torch.func.vmap`` of ``functional_call`` over the stacked parameters and buffers
  of K copies. Works for any model; 0.67-0.82 of grouped's speed on CPU (see
  :func:`train_ensemble` for when an ensemble pays at all).
"""

from __future__ import annotations

# The package along the implementation's parts: the grouped module (grouped.py), the
# ensemble (lockstep.py), the steppers that drive a step (steppers.py) and the trainer
# (trainer.py). The private names imported below are for the tests, the benchmarks and
# smallbatch.studies.run (the ensemble builder), which import them from here.
from .grouped import GroupedLinear, MemberStem, UnsupportedModelError, group_model
from .lockstep import LockstepEnsemble, _build_ensemble
from .steppers import _BatchSteps, _DeviceSteps, _make_stepper
from .trainer import (MEMBER_FIELDS, METHODS, OPTIMISER_FIELDS, STEP_MODES, check_compatible,
                      train_ensemble)

__all__ = [
    "OPTIMISER_FIELDS",
    "MEMBER_FIELDS",
    "METHODS",
    "STEP_MODES",
    "UnsupportedModelError",
    "check_compatible",
    "GroupedLinear",
    "MemberStem",
    "group_model",
    "LockstepEnsemble",
    "train_ensemble",
]
