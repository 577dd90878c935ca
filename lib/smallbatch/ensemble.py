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

import copy
import dataclasses
import time
import warnings
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import ImageData
from .models import BasicBlock as CifarBasicBlock
from .models import CifarResNet, GhostBatchNorm, ReducedAlexNet, count_parameters
from .provenance import run_provenance
from .train import (ConfigError, EpochMetrics, EvalPoint, TrainConfig, TrainResult,
                    divergence_threshold, eval_steps, has_diverged, lr_at_step, run_result,
                    setup_run, validate)

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


class UnsupportedModelError(ConfigError):
    """A model that the grouped implementation cannot batch (use method="vmap")."""


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


# ---------------------------------------------------------------------- the grouped module


class GroupedLinear(nn.Module):
    """K independent linear layers on (m, K * in_features) inputs -> (m, K * out_features).

    ``weight`` is (K * out_features, in_features): member k's weight is rows
    k*out .. (k+1)*out, so every parameter of a grouped module is the K members' tensors
    concatenated along dimension 0.
    """

    def __init__(self, in_features: int, out_features: int, members: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.members = in_features, out_features, members
        self.weight = nn.Parameter(torch.empty(members * out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(members * out_features)) if bias else None

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"members={self.members}, bias={self.bias is not None}")

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[0]
        k, n_in, n_out = self.members, self.in_features, self.out_features
        xs = x.reshape(batch, k, n_in).transpose(0, 1)            # (K, m, in)
        weight = self.weight.view(k, n_out, n_in).transpose(1, 2)  # (K, in, out)
        if self.bias is None:
            out = torch.bmm(xs, weight)
        else:
            out = torch.baddbmm(self.bias.view(k, 1, n_out), xs, weight)
        return out.transpose(0, 1).reshape(batch, k * n_out)


class MemberStem(nn.Conv2d):
    """The first convolution of K members side by side, on a shared or a per-member input.

    Its weight is (K * out, C, kh, kw), member k's filters in rows k*out .. (k+1)*out. On
    the shared (m, C, H, W) batch (one seed) it is one convolution with K times the output
    channels; on the members' own batches, (m, K * C, H, W) with member k's image in
    channels k*C .. (k+1)*C (several seeds), the same weight is a grouped convolution with
    K groups. Either way member k's output channels see only its own input.
    """

    def __init__(self, conv: nn.Conv2d, members: int):
        super().__init__(conv.in_channels, conv.out_channels * members, conv.kernel_size,
                         stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                         bias=conv.bias is not None)
        self.members = members

    def forward(self, x: Tensor) -> Tensor:
        groups = 1
        if self.members > 1 and x.shape[1] == self.members * self.in_channels:
            groups = self.members
        elif x.shape[1] != self.in_channels:
            raise ValueError(f"the ensemble's stem takes {self.in_channels} channels (a shared "
                             f"batch) or {self.members * self.in_channels} (one batch per "
                             f"member), got {x.shape[1]}")
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        groups)


class _GroupedBasicBlock(nn.Module):
    """The CIFAR ResNet basic block (models.BasicBlock) for K members side by side.

    Identical forward; only the option-A shortcut changes: its zero channels are padded per
    member, on a (m, K, C, H, W) view, not once around all K * C channels.
    """

    def __init__(self, block: nn.Module, members: int, convert: Callable[[nn.Module], nn.Module]):
        super().__init__()
        self.conv1 = convert(block.conv1)
        self.bn1 = convert(block.bn1)
        self.conv2 = convert(block.conv2)
        self.bn2 = convert(block.bn2)
        self.stride = block.stride
        self.extra_channels = block.extra_channels
        self.members = members

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride != 1 else x
        if not self.extra_channels:
            return F.relu(out + shortcut)
        # out + zero-padded shortcut == out with the shortcut added into the middle channels
        # of each member (adding zeros is exact). Adding in place on (m, K, C, H, W) views
        # keeps the memory format: a padded copy came out NCHW and made every later
        # channels_last gradient op take a slow mixed-layout path (2-3x slower at K*m=256).
        batch, channels, height, width = shortcut.shape
        per_member = channels // self.members
        before = self.extra_channels // 2
        out.view(batch, self.members, -1, height, width)[:, :, before:before + per_member] += \
            shortcut.view(batch, self.members, per_member, height, width)
        return F.relu(out)


def _torchvision_blocks() -> tuple[type, ...]:
    try:
        from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return ()
    return (ResNet, BasicBlock, Bottleneck)


# Modules that act on each channel (or leave the channel axis alone) and so need no change
# for K members side by side: (m, K*C, H, W) in, (m, K*C', H', W') out.
_CHANNELWISE = (nn.ReLU, nn.Identity, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)


def group_model(model: nn.Module, members: int) -> nn.Module:
    """A module computing ``members`` copies of ``model`` side by side (same architecture).

    It takes the shared (m, C, H, W) input, or the members' own inputs as (m, K * C, H, W)
    (:class:`MemberStem`), and returns (m, K * num_classes) logits, member k in columns
    k*classes .. (k+1)*classes. Its state dict has the same keys as the model's;
    each parameter and buffer is the K members' tensors concatenated along dimension 0
    (``num_batches_tracked`` is one shared counter). Parameters are left uninitialised:
    :class:`LockstepEnsemble` copies them in.

    Raises:
        UnsupportedModelError: for a module the conversion does not know.
    """
    if members < 1:
        raise ValueError(f"members must be >= 1, got {members}")
    containers = (nn.Sequential, CifarResNet, ReducedAlexNet, *_torchvision_blocks())
    first_conv = [True]  # the first convolution reads the shared, un-replicated input

    def convert(module: nn.Module) -> nn.Module:
        if isinstance(module, nn.Conv2d):
            if module.padding_mode != "zeros" or module.groups != 1:
                raise UnsupportedModelError(f"grouped ensemble: unsupported {module}")
            if first_conv[0]:  # the stem: a shared input, or one per member
                first_conv[0] = False
                return MemberStem(module, members)
            return nn.Conv2d(module.in_channels * members,
                             module.out_channels * members, module.kernel_size,
                             stride=module.stride, padding=module.padding,
                             dilation=module.dilation, groups=members,
                             bias=module.bias is not None)
        if isinstance(module, GhostBatchNorm):
            return GhostBatchNorm(module.num_features * members, module.bn_batch_size,
                                  eps=module.eps, momentum=module.momentum,
                                  affine=module.affine,
                                  track_running_stats=module.track_running_stats)
        if isinstance(module, nn.Linear):
            if first_conv[0]:
                raise UnsupportedModelError("grouped ensemble: a model must start with a "
                                            "convolution")
            return GroupedLinear(module.in_features, module.out_features, members,
                                 bias=module.bias is not None)
        if isinstance(module, nn.Flatten):
            # Flattening (m, K*C, H, W) from dim 1 keeps each member's C*H*W values together.
            if module.start_dim != 1 or module.end_dim != -1:
                raise UnsupportedModelError(f"grouped ensemble: unsupported {module}")
            return copy.deepcopy(module)
        if isinstance(module, _CHANNELWISE):
            return copy.deepcopy(module)
        if isinstance(module, CifarBasicBlock):
            return _GroupedBasicBlock(module, members, convert)
        if type(module) in containers:
            # Forward passes that only chain the modules above (and add residuals) work
            # unchanged on K members side by side: convert the children in place.
            if module._parameters or module._buffers:
                raise UnsupportedModelError(f"grouped ensemble: {type(module).__name__} "
                                            "holds its own parameters")
            grouped = copy.copy(module)  # the same forward; children replaced below
            grouped._modules = {name: convert(child) for name, child in module.named_children()}
            grouped._parameters, grouped._buffers = {}, {}
            return grouped
        raise UnsupportedModelError(
            f"grouped ensemble: no grouped form of {type(module).__name__}; "
            "use method='vmap'")

    return convert(model)


# ------------------------------------------------------------------------ the ensemble


class LockstepEnsemble:
    """K copies of one model, trained by one batched SGD step (book: "Lock-step ensembles").

    All members start from ``model``'s weights, or member k from ``model[k]``'s when a
    sequence of K models (same architecture; e.g. one per seed) is given. ``method`` is
    "grouped" (see :func:`group_model`) or "vmap" (``torch.func`` over stacked parameters
    and buffers). Called on a shared (m, C, H, W) batch or on the members' own batches,
    (m, K, C, H, W).

    Attributes:
        members: K.
        method: "grouped" or "vmap".
        parameters: the tensors that SGD updates; each holds all K members: member k is
            ``p.unflatten(0, (K, -1))[k]`` (grouped) or ``p[k]`` (vmap). Use
            :meth:`member_state_dict` to get one member as a single model's state.
    """

    def __init__(self, model: nn.Module | Sequence[nn.Module], members: int | None = None, *,
                 method: str = "grouped", channels_last: bool = False):
        if method not in ("grouped", "vmap"):
            raise ConfigError(f"unknown ensemble method {method!r}; choose grouped or vmap")
        models = [model] * (members or 0) if isinstance(model, nn.Module) else list(model)
        if members is not None and len(models) != members:
            raise ConfigError(f"{len(models)} models given for an ensemble of {members}")
        members = len(models)
        if members < 1:
            raise ConfigError(f"an ensemble needs at least one member, got {members}")
        model = models[0]
        self.members = members
        self.method = method
        self.channels_last = channels_last
        self.training = True
        single = model.state_dict()
        states = [single] + [m.state_dict() for m in models[1:]]
        for k, state in enumerate(states[1:], 1):
            if {n: t.shape for n, t in state.items()} != {n: t.shape for n, t in single.items()}:
                raise ConfigError(f"model {k} of the ensemble differs in architecture from "
                                  "model 0")
        self._template = {name: tensor.shape for name, tensor in single.items()}
        if method == "grouped":
            grouped = group_model(model, members)
            first = next(model.parameters())
            grouped = grouped.to(device=first.device, dtype=first.dtype)
            if channels_last:
                grouped = grouped.to(memory_format=torch.channels_last)
            self._module = grouped
            self.parameters = list(grouped.parameters())
            named = dict(grouped.named_parameters())
            named.update(dict(grouped.named_buffers()))
            if set(named) != set(single):
                raise UnsupportedModelError(  # pragma: no cover - a conversion bug
                    "grouped ensemble: the grouped module's state does not match the model's")
            # Member views: dimension 0 split into (K, -1) (a view in any memory format).
            self._views = {name: (t.detach() if t.dim() == 0 else
                                  t.detach().unflatten(0, (members, -1)))
                           for name, t in named.items()}
            self._shared = {name for name, t in named.items() if t.dim() == 0}
            with torch.no_grad():
                for name, view in self._views.items():
                    if name in self._shared:
                        view.copy_(single[name])
                    else:
                        for k, state in enumerate(states):
                            view[k].copy_(state[name].reshape(view[k].shape))
        else:
            from torch.func import functional_call, stack_module_state, vmap

            params, buffers = stack_module_state(models)
            self._params, self._buffers = params, buffers
            self.parameters = list(params.values())
            self._views = {**{n: p.detach() for n, p in params.items()},
                           **{n: b for n, b in buffers.items()}}
            self._shared = set()
            skeleton = copy.deepcopy(model).to("meta")
            self._skeleton = skeleton

            def call(p: dict, b: dict, x: Tensor) -> Tensor:
                return functional_call(skeleton, (p, b), (x,))

            self._vmapped = vmap(call, in_dims=(0, 0, None))
            self._vmapped_members = vmap(call, in_dims=(0, 0, 1))  # x: (m, K, C, H, W)
        self._param_views = [self._member_view_of(p) for p in self.parameters]
        self._detached = [p.detach() for p in self.parameters]  # same storage, no autograd

    def _member_view_of(self, tensor: Tensor) -> Tensor:
        if self.method == "grouped":
            return tensor.detach().unflatten(0, (self.members, -1))
        return tensor.detach()

    # the model ----------------------------------------------------------------------------

    def train(self, mode: bool = True) -> "LockstepEnsemble":
        self.training = mode
        (self._module if self.method == "grouped" else self._skeleton).train(mode)
        return self

    def eval(self) -> "LockstepEnsemble":
        return self.train(False)

    def __call__(self, x: Tensor) -> Tensor:
        """Logits of every member, (m, K, num_classes): on the shared batch x (m, C, H, W),
        or member k on its own batch x[:, k] when x is (m, K, C, H, W)."""
        per_member = x.dim() == 5
        if per_member and x.shape[1] != self.members:
            raise ValueError(f"a batch per member needs x of shape (m, {self.members}, C, H, "
                             f"W), got {tuple(x.shape)}")
        if self.method == "grouped":
            if per_member:  # member k's image in channels k*C .. (k+1)*C
                x = x.reshape(x.shape[0], -1, *x.shape[3:])
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            out = self._module(x)
            return out.view(x.shape[0], self.members, -1)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        call = self._vmapped_members if per_member else self._vmapped
        with warnings.catch_warnings():
            # functorch warns that adaptive_avg_pool2d and GhostBatchNorm's lerp_ have no
            # batching rule yet (a per-member loop inside); the result is still exact.
            warnings.filterwarnings("ignore", message="There is a performance drop")
            return call(self._params, self._buffers, x).transpose(0, 1)

    def member_state_dict(self, k: int) -> dict[str, Tensor]:
        """Member k's parameters and buffers as a state dict of the single model (copies)."""
        if not 0 <= k < self.members:
            raise IndexError(f"member {k} of an ensemble of {self.members}")
        return {name: (self._views[name] if name in self._shared else self._views[name][k])
                .clone().reshape(shape)
                for name, shape in self._template.items()}

    @torch.no_grad()
    def zero_member_(self, k: int) -> None:
        """Zero member k's parameters and reset its BN running statistics (mean 0, var 1).

        A diverged member's weights may hold inf or NaN; zeros keep its part of every later
        step finite. The other members are untouched: no kernel mixes members (tested with
        NaN weights in one member).
        """
        for name, view in self._views.items():
            if name in self._shared:
                continue
            if name.endswith("running_var"):
                view[k].fill_(1.0)
            elif view.is_floating_point():
                view[k].zero_()

    # SGD ------------------------------------------------------------------------------------

    def _targets(self, y: Tensor) -> Tensor:
        """Labels as (m, K): the shared batch's y (m,) for every member, or y (m, K) as is."""
        return y[:, None].expand(-1, self.members) if y.dim() == 1 else y

    def sgd_step(self, x: Tensor, y: Tensor, lrs: Tensor,
                 decay_factors: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One lock-step SGD step; returns per-member mean losses (K,) and logits (m, K, C).

        x, y: the shared batch, (m, C, H, W) and (m,), or one per member, (m, K, C, H, W)
        and (m, K).

        Member k takes theta_k <- theta_k * decay_factors[k] - lrs[k] * grad CE_k(theta_k):
        with decay_factors[k] = 1 - lr_k * wd_k this is torch.optim.SGD(lr=lr_k,
        weight_decay=wd_k, momentum=0) on the mean cross-entropy. The learning rates go into
        the loss (sum_k lr_k * CE_k) so that the gradient is already the update; a member
        with lr 0 is untouched (masked).
        """
        logits = self(x)
        losses = F.cross_entropy(logits.permute(0, 2, 1), self._targets(y),
                                 reduction="none").mean(dim=0)
        loss = (losses * lrs).sum()
        grads = torch.autograd.grad(loss, self.parameters)
        with torch.no_grad():
            if decay_factors is not None:
                factors = [decay_factors.view(-1, *[1] * (v.dim() - 1))
                           for v in self._param_views]
                torch._foreach_mul_(self._param_views, factors)
            torch._foreach_sub_(self._detached, grads)
        return losses.detach(), logits.detach()

    @torch.no_grad()
    def evaluate(self, data: ImageData, batch_size: int,
                 split: str = "test") -> tuple[list[float], list[float]]:
        """Per-member mean cross-entropy and accuracy on the whole test (or "validation")
        set, in eval mode.

        Every forward pass runs all K members on ``max(1, batch_size // K)`` test examples,
        so that memory stays that of one model on ``batch_size`` examples.
        """
        was_training = self.training
        self.eval()
        device = self.parameters[0].device
        loss_sum = torch.zeros(self.members, dtype=torch.float64, device=device)
        correct = torch.zeros(self.members, dtype=torch.long, device=device)
        count = 0
        for x, y in data.eval_batches(split, max(1, batch_size // self.members)):
            logits = self(x)
            losses = F.cross_entropy(logits.permute(0, 2, 1),
                                     y[:, None].expand(-1, self.members), reduction="none")
            loss_sum += losses.sum(dim=0)
            correct += (logits.argmax(dim=2) == y[:, None]).sum(dim=0)
            count += y.numel()
        self.train(was_training)
        return (loss_sum / count).tolist(), (correct.double() / count).tolist()


# ----------------------------------------------------------------------- the trainer


class _BatchSteps:
    """Steps fed by the data set's batch iterators (any :class:`ImageData`)."""

    def __init__(self, ensemble: LockstepEnsemble, data: ImageData, config: TrainConfig,
                 generators: list[torch.Generator], shared_input: bool, dtype):
        self.ensemble, self.data, self.config = ensemble, data, config
        self.generators, self.shared_input = generators, shared_input
        device, members = ensemble.parameters[0].device, ensemble.members
        self.epoch_loss = torch.zeros(members, device=device, dtype=dtype)
        self.window_loss = torch.zeros(members, device=device, dtype=dtype)
        self.epoch_correct = torch.zeros(members, device=device, dtype=torch.long)

    def start_epoch(self, lr_table: Tensor, decay_table: Tensor | None) -> None:
        self.lr, self.decay, self.position = lr_table, decay_table, 0
        for total in (self.epoch_loss, self.window_loss, self.epoch_correct):
            total.zero_()
        config = self.config
        if self.shared_input:
            self.batches = self.data.train_batches(
                config.batch_size, generator=self.generators[0], augment=config.augment)
        else:
            self.batches = self.data.member_batches(
                config.batch_size, generators=self.generators, augment=config.augment)

    def step(self) -> None:
        x, y = next(self.batches)
        i = self.position
        losses, logits = self.ensemble.sgd_step(
            x, y, self.lr[i], None if self.decay is None else self.decay[i])
        self.epoch_loss += losses
        self.window_loss += losses
        self.epoch_correct += (logits.argmax(dim=2) == self.ensemble._targets(y)).sum(dim=0)
        self.position += 1

    def mask(self, from_step: int, members: list[int]) -> None:
        self.lr[from_step:, members] = 0.0
        if self.decay is not None:
            self.decay[from_step:, members] = 1.0


class _DeviceSteps:
    """Steps that never wait for the host: everything a step reads is on the device.

    Per epoch, one copy each puts the members' example indices and augmentation draws
    (:meth:`TensorImageData.epoch_draws`), learning rates and decay factors into
    fixed buffers. A step reads its row through a device counter (``index_select``),
    gathers the batch from the on-device training tensor, takes the SGD step, adds to the
    running sums and advances the counter: the same tensors every step, so on CUDA the
    whole step can be captured once as a graph (``graph=True``) and replayed.
    """

    WARMUP = 3  # eager steps before the capture (cuDNN and the allocator settle)

    def __init__(self, ensemble: LockstepEnsemble, data, config: TrainConfig,
                 generators: list[torch.Generator], shared_input: bool, dtype, steps: int,
                 any_decay: bool, graph: bool):
        self.ensemble, self.data, self.config = ensemble, data, config
        self.generators, self.shared_input = generators, shared_input
        device, members = ensemble.parameters[0].device, ensemble.members
        draws = 1 if shared_input else members
        width = draws * config.batch_size
        self.index = torch.zeros((steps, width), dtype=torch.long, device=device)
        self.augmentation = None
        if config.augment:
            self.augmentation = (torch.zeros_like(self.index), torch.zeros_like(self.index),
                                 torch.zeros((steps, width), dtype=torch.bool, device=device))
        self.fill = data.pad_fill if config.augment else None
        self.lr = torch.zeros((steps, members), dtype=dtype, device=device)
        self.decay = torch.ones_like(self.lr) if any_decay else None
        self.counter = torch.zeros(1, dtype=torch.long, device=device)
        self.epoch_loss = torch.zeros(members, device=device, dtype=dtype)
        self.window_loss = torch.zeros(members, device=device, dtype=dtype)
        self.epoch_correct = torch.zeros(members, device=device, dtype=torch.long)
        self.graph = graph
        self._captured = None
        self._eager_steps = 0

    def start_epoch(self, lr_table: Tensor, decay_table: Tensor | None) -> None:
        generators = self.generators[:1] if self.shared_input else self.generators
        index, augmentation = self.data.epoch_draws(self.config.batch_size, generators,
                                                    self.config.augment)
        self.index.copy_(index)
        if augmentation is not None:
            for buffer, values in zip(self.augmentation, augmentation):
                buffer.copy_(values)
        self.lr.copy_(lr_table)
        if self.decay is not None:
            self.decay.copy_(decay_table)
        for total in (self.counter, self.epoch_loss, self.window_loss, self.epoch_correct):
            total.zero_()

    def _body(self) -> None:
        i = self.counter
        rows = None
        if self.augmentation is not None:
            rows = tuple(a.index_select(0, i).view(-1) for a in self.augmentation)
        x, y = self.data.gather(self.index.index_select(0, i).view(-1), rows, self.fill)
        if not self.shared_input:  # member after member -> (B, K, ...)
            members = self.ensemble.members
            x = x.view(members, -1, *x.shape[1:]).transpose(0, 1)
            y = y.view(members, -1).transpose(0, 1)
        decay = None if self.decay is None else self.decay.index_select(0, i).view(-1)
        losses, logits = self.ensemble.sgd_step(x, y, self.lr.index_select(0, i).view(-1),
                                                decay)
        self.epoch_loss += losses
        self.window_loss += losses
        self.epoch_correct += (logits.argmax(dim=2) == self.ensemble._targets(y)).sum(dim=0)
        self.counter += 1

    def step(self) -> None:
        if not self.graph:
            self._body()
            return
        if self._captured is not None:
            self._captured.replay()
            return
        if self._eager_steps < self.WARMUP:  # real steps, on a side stream
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                self._body()
            torch.cuda.current_stream().wait_stream(stream)
            self._eager_steps += 1
            return
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # recorded, not run: the replay below runs it
            self._body()
        self._captured = graph
        graph.replay()

    def mask(self, from_step: int, members: list[int]) -> None:
        self.lr[from_step:, members] = 0.0
        if self.decay is not None:
            self.decay[from_step:, members] = 1.0


def _make_stepper(mode: str, ensemble: LockstepEnsemble, data: ImageData, config: TrainConfig,
                  generators: list[torch.Generator], *, shared_input: bool, steps: int,
                  dtype, any_decay: bool):
    """The stepper for ``mode`` (see :func:`train_ensemble`'s ``step_mode``)."""
    device = ensemble.parameters[0].device
    in_memory = hasattr(data, "epoch_draws")
    if mode == "auto":
        # The captured step is tested for equality and for syncs on CUDA where a GPU is
        # present, but its speed has not been measured yet (benchmarks/small_batch_cuda.py
        # does): until it is, "auto" keeps the batch iterators everywhere.
        mode = "batches"
    if mode == "batches":
        return _BatchSteps(ensemble, data, config, generators, shared_input, dtype)
    if not in_memory:
        raise ConfigError(f"step mode {mode!r} needs a data set held in memory on the "
                          f"device ({type(data).__name__} streams from disk); use "
                          "step_mode='batches'")
    if mode == "graph" and device.type != "cuda":
        raise ConfigError(f"step mode 'graph' captures the step as a CUDA graph; the device "
                          f"is {device}. Use 'device' (the same step, not captured) or "
                          "'batches'")
    return _DeviceSteps(ensemble, data, config, generators, shared_input, dtype, steps,
                        any_decay, graph=mode == "graph")


def _build_ensemble(models: list[nn.Module], method: str,
                    channels_last: bool) -> LockstepEnsemble:
    if method == "auto":
        # Grouped was faster than vmap at every point measured on 2 CPU cores (ResNet-8,
        # m = 2..128, K = 8 and 16, 1 or 2 threads): vmap reached 0.67-0.82 of its speed.
        # vmap only where the grouped conversion does not know the model.
        try:
            return LockstepEnsemble(models, method="grouped", channels_last=channels_last)
        except UnsupportedModelError:
            method = "vmap"
    return LockstepEnsemble(models, method=method, channels_last=channels_last)


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
        ending = set(reached) if step < total_steps or not step_resolved else set(
            k for k in range(members) if active[k])
        if test is None and ending:
            test = timed_evaluate("test")
        else:
            ending = set(range(members)) if test is not None else ending
        now = time.perf_counter() - start
        for k in range(members):
            if not active[k]:
                continue
            with_test = test is not None and k in ending
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
