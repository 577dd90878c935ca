"""The on-device core (book: "Protocol"): data sets as device tensors, epoch batching and
batched augmentation.

The design follows airbench: a small data set lives on the device as one tensor,
normalised once with the per-channel mean and standard deviation of the *full* training
set, shuffled each epoch by a seeded CPU ``torch.Generator`` and cut into batches by
slicing. Augmentation (the paper's pad 4 + random crop + random horizontal flip) runs
batched on the device with tensor ops. All randomness is drawn on the CPU from the
caller's generator and then moved to the device, so a run draws the same batches on every
device. Nothing here reads files.
"""

from __future__ import annotations

import abc
import operator
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor


# Standard ImageNet channel statistics (RGB, pixel values in [0, 1]).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

AUGMENT_PAD = 4  # pixels of padding before the random crop (paper: pad 4)


class DataError(RuntimeError):
    """A data set is missing or corrupt, or a data argument is invalid.

    The message says what was looked for, where, and how to fix it.
    """


# --------------------------------------------------------------------- augmentation


def crop_with_offsets(
    x: Tensor, dy: Tensor, dx: Tensor, pad: int = AUGMENT_PAD, fill: Tensor | None = None
) -> Tensor:
    """Pad a batch by ``pad`` pixels and crop each example back to its own window.

    Example ``i`` of the result is ``padded[i, :, dy[i]:dy[i]+H, dx[i]:dx[i]+W]``, where
    ``padded`` is ``x`` surrounded by ``pad`` pixels of ``fill``. Pure tensor ops: no
    Python loop over examples.

    Args:
        x: (B, C, H, W) images.
        dy, dx: (B,) integer offsets in ``0 .. 2*pad`` (on any device).
        pad: padding in pixels.
        fill: (C,) padding value per channel; None pads with zeros. For normalised data
            pass ``-mean/std`` so the padding is black in raw pixel space.

    Returns:
        (B, C, H, W) crops, same dtype and device as ``x``.
    """
    if x.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    batch_size, channels, height, width = x.shape
    padded = x.new_zeros((batch_size, channels, height + 2 * pad, width + 2 * pad))
    if fill is not None:
        padded.copy_(fill.to(device=x.device, dtype=x.dtype).view(1, channels, 1, 1).expand_as(padded))
    padded[:, :, pad : pad + height, pad : pad + width] = x
    dy = dy.to(device=x.device, dtype=torch.long)
    dx = dx.to(device=x.device, dtype=torch.long)
    # A strided view of every (2*pad+1)^2 window, indexed per example: one gather of
    # B*C*H*W values (10x faster on CPU than indexing rows and columns separately).
    windows = padded.unfold(2, height, 1).unfold(3, width, 1)  # (B, C, 2p+1, 2p+1, H, W)
    return windows[torch.arange(batch_size, device=x.device), :, dy, dx]


def hflip_where(x: Tensor, mask: Tensor) -> Tensor:
    """Flip left-right the examples of a (B, C, H, W) batch where ``mask`` (B,) is true."""
    mask = mask.to(device=x.device, dtype=torch.bool).view(-1, 1, 1, 1)
    return torch.where(mask, x.flip(-1), x)


def _draw_crop_flip(
    count: int, generator: torch.Generator, pad: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw ``count`` crop offsets and flips on the CPU: dy, dx uniform in 0..2*pad, p(flip)=1/2."""
    offsets = torch.randint(0, 2 * pad + 1, (2, count), generator=generator, device="cpu")
    flips = torch.randint(0, 2, (count,), generator=generator, device="cpu").bool()
    return offsets[0], offsets[1], flips


def pad_crop_flip(
    x: Tensor, generator: torch.Generator, pad: int = AUGMENT_PAD, fill: Tensor | None = None
) -> Tensor:
    """The paper's augmentation on a batch: pad, random crop, random horizontal flip.

    Book section "Protocol": pad 4 + random 32x32 (28x28) crop + random flip. Per
    example a crop offset (dy, dx) uniform in ``{0..2*pad}`` and a flip with probability
    1/2 are drawn from ``generator`` (on the CPU, then moved to ``x``'s device, so the
    result does not depend on the device).

    Args:
        x: (B, C, H, W) images.
        generator: a CPU ``torch.Generator``.
        pad: padding in pixels.
        fill: (C,) padding value per channel (None: zeros).

    Returns:
        The augmented (B, C, H, W) batch.
    """
    dy, dx, flips = _draw_crop_flip(x.shape[0], generator, pad)
    return hflip_where(crop_with_offsets(x, dy, dx, pad, fill), flips)


# ----------------------------------------------------------------------- subsets


def stratified_subset(
    labels: Tensor | np.ndarray | Sequence[int], size: int, num_classes: int, seed: int
) -> Tensor:
    """Indices of a class-balanced subset.

    Each class gets ``size // num_classes`` examples; the remainder goes one each to the
    first classes of a seeded class order. Examples within a class are chosen at random.
    The choice depends only on ``seed`` (independent of any run seed).

    Args:
        labels: (N,) integer labels in ``0..num_classes-1``.
        size: number of examples wanted.
        num_classes: number of classes.
        seed: seed of the choice.

    Returns:
        Sorted (size,) int64 indices into ``labels``.

    Raises:
        DataError: ``size`` exceeds N, is below ``num_classes``, or a class is too small.
    """
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).cpu()
    total = labels.numel()
    if size > total:
        raise DataError(f"subset of {size} examples requested but the set has only {total}")
    if size < num_classes:
        raise DataError(
            f"subset of {size} examples is smaller than the number of classes ({num_classes}); "
            "a stratified subset needs at least one example per class"
        )
    generator = torch.Generator().manual_seed(seed)
    class_order = torch.randperm(num_classes, generator=generator)
    per_class, remainder = divmod(size, num_classes)
    chosen: list[Tensor] = []
    for rank, cls in enumerate(class_order.tolist()):
        want = per_class + (1 if rank < remainder else 0)
        members = torch.nonzero(labels == cls).flatten()
        if members.numel() < want:
            raise DataError(
                f"subset of {size} examples needs {want} of class {cls}, "
                f"but the set has only {members.numel()}"
            )
        chosen.append(members[torch.randperm(members.numel(), generator=generator)[:want]])
    return torch.sort(torch.cat(chosen)).values


# -------------------------------------------------------------------- data classes


class ImageData(abc.ABC):
    """An image classification data set: the interface train.py uses.

    Attributes:
        name: the data set key (one of DATASETS).
        label: display label for figures, e.g. "CIFAR-10 (JPEG q75)".
        num_classes: number of classes.
        input_shape: (C, H, W) of one example as the model sees it.
        num_train: training examples (after any subset).
        num_test: test examples (after any subset).
        class_names: one name per class, in label order.
        device: where batches are delivered.
    """

    name: str
    label: str
    num_classes: int
    input_shape: tuple[int, int, int]
    num_train: int
    num_test: int
    class_names: tuple[str, ...]
    device: torch.device

    def steps_per_epoch(self, batch_size: int) -> int:
        """Optimiser steps in one epoch: the last partial batch is dropped."""
        batch_size = _train_batch_size(batch_size, self.num_train)
        return self.num_train // batch_size

    @abc.abstractmethod
    def train_batches(
        self, batch_size: int, *, generator: torch.Generator, augment: bool
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of training batches in a fresh order drawn from ``generator``.

        Every batch holds exactly ``batch_size`` examples (the last partial batch is
        dropped). x is float32 normalised (B, C, H, W) on the data device; y is int64.
        """

    def member_batches(
        self, batch_size: int, *, generators: Sequence[torch.Generator], augment: bool
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of K members' training batches, member k's drawn from ``generators[k]``
        exactly as :meth:`train_batches` draws them: x is (B, K, C, H, W) and y (B, K), and
        ``x[:, k], y[:, k]`` is member k's batch (a lock-step ensemble of several seeds).

        This default zips K calls of :meth:`train_batches`; :class:`TensorImageData`
        gathers all K members' examples from its on-device tensors in one indexing step.
        """
        iterators = [self.train_batches(batch_size, generator=g, augment=augment)
                     for g in generators]
        for batches in zip(*iterators):
            yield (torch.stack([x for x, _ in batches], dim=1),
                   torch.stack([y for _, y in batches], dim=1))

    @abc.abstractmethod
    def test_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """All test examples in a fixed order, unaugmented; the last batch may be partial."""

    num_validation: int = 0  # validation examples (0: the data set has no validation split)

    def validation_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """All validation examples in a fixed order, as :meth:`test_batches`."""
        raise DataError(f"{self.name}: this data set was loaded without a validation split; "
                        "load it with validation_subset=N (TrainConfig.validation_subset)")

    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of ``split``: "test" or "validation"."""
        if split == "test":
            return self.test_batches(batch_size)
        if split == "validation":
            return self.validation_batches(batch_size)
        raise DataError(f"unknown evaluation split {split!r}; choose test or validation")


def _positive_batch_size(batch_size: int) -> int:
    """``batch_size`` as a Python int (numpy integers from a sweep grid welcome)."""
    try:
        value = operator.index(batch_size)
    except TypeError:
        value = 0
    if isinstance(batch_size, bool) or value < 1:
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    return value


def _train_batch_size(batch_size: int, num_train: int) -> int:
    value = _positive_batch_size(batch_size)
    if value > num_train:
        raise DataError(
            f"batch_size {value} exceeds the {num_train} training examples: an epoch would have no step"
        )
    return value


def _check_generator(generator: torch.Generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise DataError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    # A CPU generator makes the draws, hence the run, identical on every device.
    if generator.device.type != "cpu":
        raise DataError(
            f"generator must be a CPU torch.Generator (got one on {generator.device}); "
            "randomness is drawn on the CPU so that runs agree across devices"
        )


@dataclass(frozen=True, eq=False)
class TensorImageData(ImageData):
    """A data set held in memory as normalised float32 tensors on one device.

    Attributes:
        train_x, test_x: (N, C, H, W) float32, normalised with the full training set's
            per-channel statistics.
        train_y, test_y: (N,) int64 labels.
        mean, std: (C,) float32 per-channel statistics of the raw pixels scaled to [0, 1],
            over the full training set (before any subset).
    """

    name: str
    label: str
    num_classes: int
    class_names: tuple[str, ...]
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    mean: Tensor
    std: Tensor
    validation_x: Tensor | None = None  # a stratified subset of the test images outside the
    validation_y: Tensor | None = None  # test subset: disjoint from test_x by construction

    @property
    def input_shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def num_train(self) -> int:  # type: ignore[override]
        return int(self.train_x.shape[0])

    @property
    def num_test(self) -> int:  # type: ignore[override]
        return int(self.test_x.shape[0])

    @property
    def num_validation(self) -> int:  # type: ignore[override]
        return 0 if self.validation_x is None else int(self.validation_x.shape[0])

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return self.train_x.device

    @property
    def pad_fill(self) -> Tensor:
        """(C,) normalised value of a black pixel: the padding of the random crop."""
        return (-self.mean / self.std).to(self.device)

    def train_batches(
        self, batch_size: int, *, generator: torch.Generator, augment: bool
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of training batches; see :meth:`ImageData.train_batches`.

        Draw order from ``generator`` (part of the reproducibility contract): the
        permutation, then, when augmenting, all crop offsets (dy then dx) and all flips
        of the epoch at once. Drawing the epoch's augmentation up front costs one host to
        device copy per epoch instead of one per step, which matters at batch size 2.
        """
        batch_size = _train_batch_size(batch_size, self.num_train)
        _check_generator(generator)
        num_steps = self.num_train // batch_size
        used = num_steps * batch_size
        permutation = torch.randperm(self.num_train, generator=generator)[:used]
        permutation = permutation.to(self.device)
        augmentation = None
        if augment:
            dy, dx, flips = _draw_crop_flip(used, generator, AUGMENT_PAD)
            augmentation = (dy.to(self.device), dx.to(self.device), flips.to(self.device), self.pad_fill)
        return self._iterate_train(batch_size, num_steps, permutation, augmentation)

    def epoch_draws(
        self, batch_size: int, generators: Sequence[torch.Generator], augment: bool
    ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor] | None]:
        """One epoch's random draws of K members, on the device, laid out by step.

        Member k's epoch is drawn from ``generators[k]`` exactly as :meth:`train_batches`
        draws it (the permutation, then the crop offsets dy and dx and the flips). Returns
        ``index`` (steps, K * B), row s holding step s's example indices member after
        member, and, when augmenting, (dy, dx, flips) in the same layout; one host to
        device copy each, per epoch.
        """
        batch_size = _train_batch_size(batch_size, self.num_train)
        if not generators:
            raise DataError("one generator per member is needed, got none")
        for generator in generators:
            _check_generator(generator)
        num_steps = self.num_train // batch_size
        used = num_steps * batch_size
        members = len(generators)
        permutations, offsets = [], []
        for generator in generators:
            permutations.append(torch.randperm(self.num_train, generator=generator)[:used])
            if augment:
                offsets.append(_draw_crop_flip(used, generator, AUGMENT_PAD))

        def by_step(draws: list[Tensor]) -> Tensor:
            return (torch.stack(draws).view(members, num_steps, batch_size)
                    .transpose(0, 1).reshape(num_steps, members * batch_size).to(self.device))

        index = by_step(permutations)
        augmentation = None
        if augment:
            augmentation = tuple(by_step([o[i] for o in offsets]) for i in range(3))
        return index, augmentation

    def gather(self, index: Tensor, augmentation: tuple[Tensor, Tensor, Tensor] | None = None,
               fill: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The training examples ``index`` (n,), cropped and flipped per example by
        ``augmentation`` (dy, dx, flips, each (n,)) when given: (x (n, C, H, W), y (n,)).
        Device operations only: nothing waits for the host (``fill``: the padding value,
        default :attr:`pad_fill`; pass it to avoid recomputing it)."""
        x = self.train_x.index_select(0, index)
        if augmentation is not None:
            dy, dx, flips = augmentation
            fill = self.pad_fill if fill is None else fill
            x = hflip_where(crop_with_offsets(x, dy, dx, AUGMENT_PAD, fill), flips)
        return x, self.train_y.index_select(0, index)

    def member_batches(
        self, batch_size: int, *, generators: Sequence[torch.Generator], augment: bool
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """K members' batches; see :meth:`ImageData.member_batches`.

        The epoch is drawn once (:meth:`epoch_draws`); every step then gathers all K * B
        examples from ``train_x`` in one indexing operation (:meth:`gather`) and views
        them as (B, K, C, H, W): no host work and no host-device copy per step.
        """
        index, augmentation = self.epoch_draws(batch_size, generators, augment)
        members, fill = len(generators), self.pad_fill
        for step in range(index.shape[0]):
            rows = None if augmentation is None else tuple(a[step] for a in augmentation)
            x, y = self.gather(index[step], rows, fill)
            yield (x.view(members, -1, *x.shape[1:]).transpose(0, 1),
                   y.view(members, -1).transpose(0, 1))

    def _iterate_train(
        self,
        batch_size: int,
        num_steps: int,
        permutation: Tensor,
        augmentation: tuple[Tensor, Tensor, Tensor, Tensor] | None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        for step in range(num_steps):
            window = slice(step * batch_size, (step + 1) * batch_size)
            index = permutation[window]
            x = self.train_x[index]
            if augmentation is not None:
                dy, dx, flips, fill = augmentation
                x = hflip_where(crop_with_offsets(x, dy[window], dx[window], AUGMENT_PAD, fill), flips[window])
            yield x, self.train_y[index]

    def test_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """All test examples in order; see :meth:`ImageData.test_batches`."""
        return _in_order(self.test_x, self.test_y, batch_size)

    def validation_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """All validation examples in order; see :meth:`ImageData.validation_batches`."""
        if self.validation_x is None:
            return super().validation_batches(batch_size)
        return _in_order(self.validation_x, self.validation_y, batch_size)

    def __repr__(self) -> str:
        return (
            f"TensorImageData(name={self.name!r}, num_train={self.num_train}, "
            f"num_test={self.num_test}, input_shape={self.input_shape}, device={self.device})"
        )


def _in_order(x: Tensor, y: Tensor, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    batch_size = _positive_batch_size(batch_size)
    return ((x[start : start + batch_size], y[start : start + batch_size])
            for start in range(0, x.shape[0], batch_size))


def validation_indices(labels: Tensor, test_keep: Tensor, size: int, num_classes: int,
                       seed: int) -> Tensor:
    """Indices of a stratified validation set of ``size`` examples among the test examples
    that ``test_keep`` (the test subset) leaves out: never one of the test subset's.
    Fashion-MNIST's 10,000 test images with a 5,000-image test subset leave 500 per class,
    so a 5,000-image validation set is exactly the other stratified half."""
    outside = torch.ones(labels.numel(), dtype=torch.bool)
    outside[test_keep] = False
    rest = torch.nonzero(outside).flatten()
    if size > rest.numel():
        raise DataError(f"validation_subset={size} asks for more images than the "
                        f"{rest.numel()} test images outside the test subset; use at most "
                        f"{rest.numel()} or a smaller test_subset")
    return rest[stratified_subset(labels[rest], size, num_classes, seed)]


def _channel_statistics(images: Tensor) -> tuple[Tensor, Tensor]:
    """Exact per-channel mean and std of (N, C, H, W) uint8 images scaled to [0, 1].

    Uses a 256-bin histogram per channel in float64: exact, and no float copy of the
    whole set (a float64 CIFAR-10 copy would be 1.2 GB).
    """
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for channel in range(images.shape[1]):
        # bincount takes the uint8 values directly: no int64 copy of the set.
        counts = torch.bincount(images[:, channel].reshape(-1).cpu(), minlength=256).double()
        total = counts.sum()
        mean = (counts * levels).sum() / total
        variance = (counts * (levels - mean) ** 2).sum() / total
        means.append(mean)
        stds.append(variance.sqrt())
    return torch.stack(means).float(), torch.stack(stds).float()


def _tensor_data(
    name: str,
    *,
    label: str,
    train_images: np.ndarray | Tensor,
    train_labels: np.ndarray | Tensor,
    test_images: np.ndarray | Tensor,
    test_labels: np.ndarray | Tensor,
    num_classes: int,
    class_names: Sequence[str],
    device: str | torch.device,
    train_subset: int | None,
    test_subset: int | None,
    subset_seed: int,
    validation_subset: int | None = None,
) -> TensorImageData:
    """Normalise uint8 (N, C, H, W) images with full-train statistics, subset, move to device."""
    train_images = torch.as_tensor(np.ascontiguousarray(train_images))
    test_images = torch.as_tensor(np.ascontiguousarray(test_images))
    train_labels = torch.as_tensor(np.asarray(train_labels, dtype=np.int64))
    test_labels = torch.as_tensor(np.asarray(test_labels, dtype=np.int64))
    if train_images.dtype != torch.uint8 or test_images.dtype != torch.uint8:
        raise DataError(f"{name}: images must be uint8")
    # Statistics over the FULL training set, so a subset is normalised like the whole.
    mean, std = _channel_statistics(train_images)
    if train_subset is not None:
        keep = stratified_subset(train_labels, train_subset, num_classes, subset_seed)
        train_images, train_labels = train_images[keep], train_labels[keep]
    validation = None
    if validation_subset is not None and test_subset is None:
        raise DataError("a validation split needs a test subset (the validation images are "
                        "the test images outside it); give test_subset as well")
    if test_subset is not None:
        keep = stratified_subset(test_labels, test_subset, num_classes, subset_seed)
        if validation_subset is not None:
            chosen = validation_indices(test_labels, keep, validation_subset, num_classes,
                                        subset_seed)
            validation = (test_images[chosen], test_labels[chosen])
        test_images, test_labels = test_images[keep], test_labels[keep]
    device = torch.device(device)

    def normalise(images: Tensor) -> Tensor:
        # Move as uint8 (4x less to copy), then convert on the device.
        images = images.to(device)
        scale = (1.0 / 255.0) / std.to(device).view(1, -1, 1, 1)
        shift = (mean / std).to(device).view(1, -1, 1, 1)
        return images.float().mul_(scale).sub_(shift)

    return TensorImageData(
        name=name,
        label=label,
        num_classes=num_classes,
        class_names=tuple(class_names),
        train_x=normalise(train_images),
        train_y=train_labels.to(device),
        test_x=normalise(test_images),
        test_y=test_labels.to(device),
        mean=mean,
        std=std,
        validation_x=None if validation is None else normalise(validation[0]),
        validation_y=None if validation is None else validation[1].to(device),
    )


