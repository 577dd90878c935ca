"""The paper's models: reduced AlexNet, CIFAR ResNet-(6n+2), ResNet-50, and ghost batch norm.

Every model adapts to 1x28x28 (Fashion-MNIST) and 3x32x32 (CIFAR) inputs; ResNet-50 is the
ImageNet model. Batch norm is chosen per model (``batch_norm``) and its statistics can be
taken over groups of ``bn_batch_size`` examples inside a batch: the paper's separate BN batch
m_BN (book: "Batch norm's own batch").

Initialisation is He et al. (2015): weights ~ N(0, 2 / fan_in), biases zero, BN scale 1 and
shift 0. The paper says "He initialisation"; the fan-in variant is the one derived in He et al.
for the forward pass.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F

__all__ = [
    "MODELS",
    "BATCH_NORM_CHOICES",
    "BATCH_NORM_LABELS",
    "GhostBatchNorm",
    "ReducedAlexNet",
    "CifarResNet",
    "build_model",
    "count_parameters",
]

# CIFAR ResNet depth 6n+2: n basic blocks in each of three stages (He et al. 2015, sec. 4.2).
_RESNET_DEPTHS = {"resnet8": 8, "resnet14": 14, "resnet20": 20, "resnet32": 32, "resnet56": 56}

MODELS: tuple[str, ...] = ("alexnet", *_RESNET_DEPTHS, "resnet50")

# "conv": BN after the convolutions only (the paper's AlexNet variant); "all": also after the
# hidden fully connected layers. The ResNets have no hidden fully connected layer.
# How each batch_norm setting is named in the book's tables and figures.
BATCH_NORM_LABELS: dict[str, str] = {"all": "batch norm", "none": "no batch norm",
                                     "conv": "BN on conv layers"}

BATCH_NORM_CHOICES: dict[str, tuple[str, ...]] = {
    "alexnet": ("none", "conv", "all"),
    **{name: ("none", "all") for name in _RESNET_DEPTHS},
    "resnet50": ("none", "all"),
}


class GhostBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics come from groups of ``bn_batch_size`` examples.

    A batch of m examples is split into m / bn_batch_size consecutive groups; each group is
    normalised with its own mean and (biased) variance, as if it were a separate batch. The
    running statistics are updated once per step with the mean over groups of the group means
    and of the unbiased group variances. With ``bn_batch_size=None`` or equal to the batch
    size it is exactly ``nn.BatchNorm1d/2d``. Evaluation uses the running statistics.

    Works for (N, C) and (N, C, H, W) inputs (book: "Batch norm's own batch").
    """

    def __init__(self, num_features: int, bn_batch_size: int | None = None, **kwargs):
        super().__init__(num_features, **kwargs)
        if bn_batch_size is not None and bn_batch_size < 1:
            raise ValueError(f"bn_batch_size must be >= 1 or None, got {bn_batch_size}")
        self.bn_batch_size = bn_batch_size

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 4):
            raise ValueError(f"GhostBatchNorm expects 2D or 4D input, got {input.dim()}D")

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bn_batch_size={self.bn_batch_size}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        group = self.bn_batch_size
        batch = x.shape[0]
        if not self.training or group is None or group >= batch:
            return super().forward(x)
        if batch % group:
            raise ValueError(
                f"batch of {batch} examples does not split into ghost batches of "
                f"bn_batch_size={group}; use a batch size that is a multiple of it")
        num_groups = batch // group
        reduce_dims = [1] + list(range(3, x.dim() + 1))  # over the group and spatial dims
        xg = x.reshape(num_groups, group, *x.shape[1:])
        mean = xg.mean(dim=reduce_dims, keepdim=True)
        var = xg.var(dim=reduce_dims, unbiased=False, keepdim=True)
        out = (xg - mean) * torch.rsqrt(var + self.eps)
        out = out.reshape_as(x)
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                count = group * (x[0, 0].numel() if x.dim() == 4 else 1)
                unbiased = var * (count / max(count - 1, 1))
                self.num_batches_tracked.add_(1)
                momentum = self.momentum
                if momentum is None:  # cumulative moving average, as nn.BatchNorm
                    momentum = 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.mean(dim=0).flatten(), momentum)
                self.running_var.lerp_(unbiased.mean(dim=0).flatten(), momentum)
        return out


def _norm_factory(enabled: bool, bn_batch_size: int | None) -> Callable[[int], nn.Module]:
    if not enabled:
        return lambda channels: nn.Identity()
    return partial(GhostBatchNorm, bn_batch_size=bn_batch_size)


def he_init_(model: nn.Module) -> nn.Module:
    """He et al. (2015) initialisation: N(0, 2/fan_in) weights, zero biases, BN (1, 0)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


class ReducedAlexNet(nn.Module):
    """The paper's reduced AlexNet for 28x28 and 32x32 images.

    Five convolutions (kernels 5, 3, 3, 3, 3; channels 16, 48, 96, 64, 64; stride 1, "same"
    padding) with 3x3 max-pooling, stride 2, after the 1st, 2nd and 5th (AlexNet's layout),
    then fully connected hidden layers of ``fc_units`` (default two of 256: AlexNet has two
    hidden fully connected layers; the paper gives their width only) and the classifier.
    Batch norm: "none", "conv" (after each convolution) or "all" (also after the hidden fully
    connected layers), always before the ReLU.
    """

    conv_kernels = (5, 3, 3, 3, 3)
    conv_channels = (16, 48, 96, 64, 64)
    pool_after = (0, 1, 4)

    def __init__(self, in_channels: int = 3, num_classes: int = 10, input_size: int = 32,
                 batch_norm: str = "all", bn_batch_size: int | None = None,
                 fc_units: tuple[int, ...] = (256, 256)):
        super().__init__()
        conv_norm = _norm_factory(batch_norm in ("conv", "all"), bn_batch_size)
        fc_norm = _norm_factory(batch_norm == "all", bn_batch_size)
        layers: list[nn.Module] = []
        channels, size = in_channels, input_size
        for index, (kernel, out) in enumerate(zip(self.conv_kernels, self.conv_channels)):
            layers += [nn.Conv2d(channels, out, kernel, padding=kernel // 2,
                                 bias=batch_norm == "none"),
                       conv_norm(out), nn.ReLU(inplace=True)]
            if index in self.pool_after:
                layers.append(nn.MaxPool2d(3, stride=2, padding=1))
                size = (size - 1) // 2 + 1
            channels = out
        self.features = nn.Sequential(*layers)
        hidden: list[nn.Module] = [nn.Flatten()]
        width = channels * size * size
        for units in fc_units:
            hidden += [nn.Linear(width, units, bias=batch_norm != "all"), fc_norm(units),
                       nn.ReLU(inplace=True)]
            width = units
        hidden.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*hidden)
        he_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (He et al. 2015 CIFAR, option A:
    a stride-2 block subsamples the shortcut and pads the new channels with zeros, so the
    shortcut has no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 norm: Callable[[int], nn.Module], bias: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=bias)
        self.bn1 = norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=bias)
        self.bn2 = norm(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.extra_channels:
            before = self.extra_channels // 2
            x = F.pad(x, (0, 0, 0, 0, before, self.extra_channels - before))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR-sized inputs (He et al. 2015, sec. 4.2).

    A 3x3 stem of 16 channels, three stages of n basic blocks with 16, 32 and 64 channels
    (stride 2 at the start of stages 2 and 3), global average pooling and a linear classifier.
    Without batch norm the convolutions get biases, so the network keeps a per-channel offset.
    ResNet-20 has 0.27M parameters.
    """

    def __init__(self, depth: int = 20, in_channels: int = 3, num_classes: int = 10,
                 batch_norm: str = "all", bn_batch_size: int | None = None):
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {depth}")
        blocks_per_stage = (depth - 2) // 6
        use_bn = batch_norm == "all"
        norm = _norm_factory(use_bn, bn_batch_size)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, 1, 1, bias=not use_bn),
                                  norm(16), nn.ReLU(inplace=True))
        stages: list[nn.Module] = []
        channels = 16
        for stage, width in enumerate((16, 32, 64)):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                stages.append(BasicBlock(channels, width, stride, norm, bias=not use_bn))
                channels = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(channels, num_classes))
        he_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def _resnet50(in_channels: int, num_classes: int, batch_norm: str,
              bn_batch_size: int | None) -> nn.Module:
    from torchvision.models import resnet50

    norm = _norm_factory(batch_norm == "all", bn_batch_size)
    model = resnet50(weights=None, num_classes=num_classes, norm_layer=norm)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return he_init_(model)


def build_model(name: str, *, in_channels: int, num_classes: int, input_size: int = 32,
                batch_norm: str = "all", bn_batch_size: int | None = None) -> nn.Module:
    """Build one of :data:`MODELS` for inputs of ``in_channels`` x ``input_size``^2.

    Args:
        name: "alexnet" (reduced AlexNet), "resnet8" ... "resnet56" (CIFAR ResNets) or
            "resnet50" (torchvision's ImageNet ResNet-50, no pretrained weights).
        batch_norm: one of :data:`BATCH_NORM_CHOICES` for that model.
        bn_batch_size: examples per ghost batch for the BN statistics (the paper's m_BN);
            None uses the whole batch.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    allowed = BATCH_NORM_CHOICES[name]
    if batch_norm not in allowed:
        raise ValueError(f"batch_norm={batch_norm!r} is not available for {name}; "
                         f"choose one of: {', '.join(allowed)}")
    if name == "alexnet":
        return ReducedAlexNet(in_channels, num_classes, input_size, batch_norm, bn_batch_size)
    if name == "resnet50":
        return _resnet50(in_channels, num_classes, batch_norm, bn_batch_size)
    return CifarResNet(_RESNET_DEPTHS[name], in_channels, num_classes, batch_norm, bn_batch_size)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

