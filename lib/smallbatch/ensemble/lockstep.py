"""The lock-step ensemble: K copies of one model trained by one batched SGD step, grouped
(:mod:`~smallbatch.ensemble.grouped`) or vmapped (book: "Lock-step ensembles")."""

from __future__ import annotations

import copy
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import ImageData
from ..train import ConfigError
from .grouped import UnsupportedModelError, group_model

__all__ = ["LockstepEnsemble"]


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


def _build_ensemble(models: list[nn.Module], method: str,
                    channels_last: bool) -> LockstepEnsemble:
    """The ensemble of ``models`` (one per member) by ``method``: "grouped", "vmap" or "auto"
    (grouped where :func:`~smallbatch.ensemble.grouped.group_model` knows the model, else
    vmap)."""
    if method == "auto":
        # Grouped was faster than vmap at every point measured on 2 CPU cores (ResNet-8,
        # m = 2..128, K = 8 and 16, 1 or 2 threads): vmap reached 0.67-0.82 of its speed.
        # vmap only where the grouped conversion does not know the model.
        try:
            return LockstepEnsemble(models, method="grouped", channels_last=channels_last)
        except UnsupportedModelError:
            method = "vmap"
    return LockstepEnsemble(models, method=method, channels_last=channels_last)
