"""The grouped module: K copies of one network as one module whose layers hold all K members
side by side (book: "Lock-step ensembles"; the "grouped" implementation of
:class:`~smallbatch.ensemble.LockstepEnsemble`).

A convolution becomes a grouped convolution (K groups), the stem a :class:`MemberStem`,
batch norm a batch norm over K times the channels, a linear layer a :class:`GroupedLinear`.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import BasicBlock as CifarBasicBlock
from ..models import CifarResNet, GhostBatchNorm, ReducedAlexNet
from ..train import ConfigError

__all__ = ["UnsupportedModelError", "GroupedLinear", "MemberStem", "group_model"]


class UnsupportedModelError(ConfigError):
    """A model that the grouped implementation cannot batch (use method="vmap")."""


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
