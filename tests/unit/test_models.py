"""Models: parameter counts against independent formulas, shapes, BN variants, ghost BN."""

import math

import pytest
import torch
from torch import nn

from smallbatch.models import (BATCH_NORM_CHOICES, MODELS, GhostBatchNorm, build_model,
                               count_parameters)


def cifar_resnet_parameters(depth: int, in_channels: int, num_classes: int, bn: bool) -> int:
    """Count by hand: 3x3 convs, option-A shortcuts (no parameters), BN scale and shift,
    conv biases only without BN, a linear classifier."""
    n = (depth - 2) // 6

    def conv(cin, cout):
        return 9 * cin * cout + (0 if bn else cout)

    norm = (lambda c: 2 * c) if bn else (lambda c: 0)
    total = conv(in_channels, 16) + norm(16)
    channels = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += conv(channels, width) + norm(width) + conv(width, width) + norm(width)
            channels = width
    return total + 64 * num_classes + num_classes


@pytest.mark.parametrize("name,depth", [("resnet8", 8), ("resnet20", 20), ("resnet32", 32),
                                        ("resnet56", 56)])
@pytest.mark.parametrize("bn", [True, False])
def test_resnet_parameter_count_matches_formula(name, depth, bn):
    model = build_model(name, in_channels=3, num_classes=10, batch_norm="all" if bn else "none")
    assert count_parameters(model) == cifar_resnet_parameters(depth, 3, 10, bn)


def test_resnet20_has_about_027m_parameters():
    # He et al. (2015), Table 6: ResNet-20 has 0.27M parameters.
    count = count_parameters(build_model("resnet20", in_channels=3, num_classes=10))
    assert 0.265e6 < count < 0.275e6


@pytest.mark.parametrize("in_channels,size", [(1, 28), (3, 32)])
@pytest.mark.parametrize("batch_norm", ["none", "conv", "all"])
def test_alexnet_parameter_count_matches_formula(in_channels, size, batch_norm):
    model = build_model("alexnet", in_channels=in_channels, num_classes=10, input_size=size,
                        batch_norm=batch_norm)
    kernels, widths = (5, 3, 3, 3, 3), (16, 48, 96, 64, 64)
    total, channels = 0, in_channels
    for k, w in zip(kernels, widths):
        total += k * k * channels * w + (w if batch_norm == "none" else 2 * w)
        channels = w
    spatial = size
    for _ in range(3):  # three 3x3/2 pools with padding 1
        spatial = math.floor((spatial + 2 - 3) / 2) + 1
    width = 64 * spatial * spatial
    for units in (256, 256):
        total += width * units + (2 * units if batch_norm == "all" else units)
        width = units
    total += width * 10 + 10
    assert count_parameters(model) == total


@pytest.mark.parametrize("name", [m for m in MODELS if m != "resnet50"])
@pytest.mark.parametrize("in_channels,size", [(1, 28), (3, 32)])
def test_output_shape(name, in_channels, size):
    model = build_model(name, in_channels=in_channels, num_classes=7, input_size=size)
    assert model(torch.randn(4, in_channels, size, size)).shape == (4, 7)


def test_resnet50_builds_and_runs():
    model = build_model("resnet50", in_channels=3, num_classes=5)
    assert 23.4e6 < count_parameters(model) < 23.6e6  # torchvision's 25.6M minus the 1000-way head
    model.eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5)


@pytest.mark.parametrize("name,batch_norm,expected", [
    ("alexnet", "none", 0), ("alexnet", "conv", 5), ("alexnet", "all", 7),
    ("resnet8", "none", 0), ("resnet8", "all", 7), ("resnet20", "all", 19)])
def test_batch_norm_layers(name, batch_norm, expected):
    model = build_model(name, in_channels=3, num_classes=10, batch_norm=batch_norm)
    count = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert count == expected


def test_he_initialisation_scale():
    torch.manual_seed(0)
    model = build_model("resnet56", in_channels=3, num_classes=10)
    conv = model.stages[-1].conv2  # 64 -> 64, 3x3: fan_in 576
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.05)


def test_unknown_model_and_batch_norm_messages():
    with pytest.raises(ValueError, match="unknown model 'vgg'.*resnet20"):
        build_model("vgg", in_channels=3, num_classes=10)
    with pytest.raises(ValueError, match="batch_norm='conv' is not available for resnet8.*none, all"):
        build_model("resnet8", in_channels=3, num_classes=10, batch_norm="conv")


# ghost batch norm -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(12, 5, 4, 4), (12, 5)])
def test_ghost_bn_equals_separate_batch_norms_per_group(shape):
    torch.manual_seed(0)
    x = torch.randn(*shape) * 3 + 1
    ghost = GhostBatchNorm(5, bn_batch_size=4, momentum=0.1)
    nn.init.normal_(ghost.weight)
    nn.init.normal_(ghost.bias)
    reference_cls = nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d
    out = ghost(x)
    expected, means, variances = [], [], []
    for group in x.split(4):
        reference = reference_cls(5, momentum=1.0)  # running stats = this group's stats
        reference.load_state_dict({k: v for k, v in ghost.state_dict().items()
                                   if k in ("weight", "bias")}, strict=False)
        expected.append(reference(group))
        means.append(reference.running_mean)
        variances.append(reference.running_var)
    torch.testing.assert_close(out, torch.cat(expected), rtol=1e-5, atol=1e-5)
    # running statistics: momentum 0.1 towards the mean over groups (unbiased variances)
    torch.testing.assert_close(ghost.running_mean, 0.1 * torch.stack(means).mean(0))
    torch.testing.assert_close(ghost.running_var, 0.9 + 0.1 * torch.stack(variances).mean(0))


def test_ghost_bn_is_plain_bn_when_group_is_the_batch():
    torch.manual_seed(1)
    x = torch.randn(8, 3, 5, 5)
    for group in (None, 8, 16):
        ghost, plain = GhostBatchNorm(3, bn_batch_size=group), nn.BatchNorm2d(3)
        torch.testing.assert_close(ghost(x), plain(x))
        torch.testing.assert_close(ghost.running_var, plain.running_var)


def test_ghost_bn_gradients_match_per_group_reference():
    torch.manual_seed(2)
    x = torch.randn(8, 3, 4, 4, requires_grad=True)
    ghost = GhostBatchNorm(3, bn_batch_size=2)
    (ghost(x) ** 3).sum().backward()
    grad = x.grad.clone()
    x.grad = None
    plain = nn.BatchNorm2d(3)
    (torch.cat([plain(g) for g in x.split(2)]) ** 3).sum().backward()
    torch.testing.assert_close(grad, x.grad, rtol=1e-4, atol=1e-4)


def test_ghost_bn_eval_uses_running_statistics():
    bn = GhostBatchNorm(2, bn_batch_size=2)
    bn.running_mean.fill_(1.0)
    bn.running_var.fill_(4.0)
    bn.eval()
    x = torch.full((3, 2), 5.0)
    torch.testing.assert_close(bn(x), torch.full((3, 2), 2.0), rtol=1e-4, atol=1e-4)


def test_ghost_bn_rejects_batch_that_does_not_split():
    bn = GhostBatchNorm(2, bn_batch_size=4)
    with pytest.raises(ValueError, match="bn_batch_size=4"):
        bn(torch.randn(6, 2))


def test_models_use_ghost_bn_with_bn_batch_size():
    model = build_model("resnet8", in_channels=1, num_classes=10, bn_batch_size=4)
    norms = [m for m in model.modules() if isinstance(m, GhostBatchNorm)]
    assert norms and all(m.bn_batch_size == 4 for m in norms)
    assert set(BATCH_NORM_CHOICES) == set(MODELS)
