"""Data sets as device tensors, epoch batching and batched augmentation.

The design follows airbench: a small data set lives on the device as one tensor,
normalised once with the per-channel mean and standard deviation of the *full* training
set, shuffled each epoch by a seeded CPU ``torch.Generator`` and cut into batches by
slicing. Augmentation (the paper's pad 4 + random crop + random horizontal flip, book
section "Protocol") runs batched on the device with tensor ops. All randomness is drawn
on the CPU from the caller's generator and then moved to the device, so a run draws the
same batches on every device.

ImageNet does not fit that mould; it is streamed from an ImageFolder with a DataLoader
(:class:`StreamedImageData`) behind the same :class:`ImageData` interface.

Nothing here does I/O at import time.
"""

from __future__ import annotations

import abc
import gzip
import hashlib
import io
import operator
import os
import re
import struct
import tarfile
import tempfile
import types
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DATASETS",
    "DATASET_LABELS",
    "DataError",
    "NO_DATA_ENV",
    "data_switched_off",
    "ImageData",
    "NUM_CLASSES",
    "StreamedImageData",
    "TensorImageData",
    "crop_with_offsets",
    "default_cache_dir",
    "default_data_root",
    "hflip_where",
    "load_data",
    "pad_crop_flip",
    "stratified_subset",
    "train_size",
]

DATASETS: tuple[str, ...] = (
    "fashion-mnist",
    "cifar10",
    "cifar100",
    "cifar10-jpeg",
    "synthetic",
    "synthetic-rgb",
    "imagenet",
)

# Display labels for figures and tables. The JPEG re-encoding of CIFAR-10 loses detail
# (quality 75, 4:2:0 chroma), so its results must never pass for original CIFAR-10 ones.
DATASET_LABELS: Mapping[str, str] = types.MappingProxyType(
    {
        "fashion-mnist": "Fashion-MNIST",
        "cifar10": "CIFAR-10",
        "cifar100": "CIFAR-100",
        "cifar10-jpeg": "CIFAR-10 (JPEG q75)",
        "synthetic": "Synthetic (smoke tests only)",
        "synthetic-rgb": "Synthetic RGB (smoke tests only)",
        "imagenet": "ImageNet",
    }
)

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

# Standard ImageNet channel statistics (RGB, pixel values in [0, 1]).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

AUGMENT_PAD = 4  # pixels of padding before the random crop (paper: pad 4)

_DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# The one switch that takes every data set on disk away: with $SMALLBATCH_NO_DATA=1,
# load_data finds no data set anywhere (not the data root, not $SMALLBATCH_DATA, not the
# system paths such as /usr/share/datasets) and raises DataError before looking. Only the
# synthetic data sets load. The book build sets it in its kernels (smallbatch.book): the
# published book is built from results/ alone, so any notebook that reaches the loader
# fails the build, on every machine, whatever data sets it has installed.
NO_DATA_ENV = "SMALLBATCH_NO_DATA"
_FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_FASHION_MNIST_COUNTS = {"train": 60_000, "test": 10_000}

CIFAR10_JPEG_TARBALL = "cifar10-jpeg.tar.gz"
# Expected (train, test) counts of the CIFAR-10 JPEG tarball; None skips the count check
# (tests set it to None to load a tiny fixture tarball through the public path).
_CIFAR10_JPEG_COUNTS: dict[str, int] | None = {"train": 50_000, "test": 10_000}
_CIFAR10_JPEG_CACHE_VERSION = 1  # bump when the cache layout changes
_CIFAR10_JPEG_MEMBER = re.compile(
    r"^(?:\./)?cifar10-jpeg/(train|test)/([^/]+)/([^/]+\.jpe?g)$", re.IGNORECASE
)

_SYNTHETIC_SHAPES = {"synthetic": (1, 28, 28), "synthetic-rgb": (3, 32, 32)}
_SYNTHETIC_COUNTS = {"train": 10_000, "test": 2_000}
_SYNTHETIC_NUM_CLASSES = 10


class DataError(RuntimeError):
    """A data set is missing or corrupt, or a data argument is invalid.

    The message says what was looked for, where, and how to fix it.
    """


# --------------------------------------------------------------------------- paths


def data_switched_off() -> bool:
    """True when ``$SMALLBATCH_NO_DATA=1``: no data set on disk is looked for or loaded."""
    return os.environ.get(NO_DATA_ENV, "") == "1"


def default_data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Where data sets are looked for.

    Args:
        root: an explicit folder; wins over everything else.

    Returns:
        ``root`` if given, else ``$SMALLBATCH_DATA``, else ``~/.cache/smallbatch/data``.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("SMALLBATCH_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "smallbatch" / "data"


def default_cache_dir() -> Path:
    """Where decoded data (the CIFAR-10 JPEG arrays) is cached.

    Separate from the data root because data roots may be read-only.

    Returns:
        ``$SMALLBATCH_CACHE`` if set, else ``~/.cache/smallbatch/cache``.
    """
    env = os.environ.get("SMALLBATCH_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "smallbatch" / "cache"


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

    @abc.abstractmethod
    def test_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """All test examples in a fixed order, unaugmented; the last batch may be partial."""


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
        batch_size = _positive_batch_size(batch_size)
        return (
            (self.test_x[start : start + batch_size], self.test_y[start : start + batch_size])
            for start in range(0, self.num_test, batch_size)
        )

    def __repr__(self) -> str:
        return (
            f"TensorImageData(name={self.name!r}, num_train={self.num_train}, "
            f"num_test={self.num_test}, input_shape={self.input_shape}, device={self.device})"
        )


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
    if test_subset is not None:
        keep = stratified_subset(test_labels, test_subset, num_classes, subset_seed)
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
        label=DATASET_LABELS[name],
        num_classes=num_classes,
        class_names=tuple(class_names),
        train_x=normalise(train_images),
        train_y=train_labels.to(device),
        test_x=normalise(test_images),
        test_y=test_labels.to(device),
        mean=mean,
        std=std,
    )


# ------------------------------------------------------------------ Fashion-MNIST


_IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}  # unsigned byte, 1 or 3 dimensions


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse a gzip IDX file (unsigned bytes, ``ndim`` dimensions), checking its header.

    Raises:
        DataError: naming ``path`` when it is not gzip, has the wrong magic number, or its
            payload size does not match its header.
    """
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"corrupt gzip IDX file {path}: {error}") from error
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"corrupt IDX file {path}: {len(raw)} bytes, shorter than its header")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != _IDX_MAGIC[ndim]:
        raise DataError(
            f"corrupt IDX file {path}: magic number {magic:#010x}, expected {_IDX_MAGIC[ndim]:#010x}"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected = int(np.prod(shape))
    if len(raw) - header_size != expected:
        raise DataError(
            f"corrupt IDX file {path}: header says {shape} = {expected} bytes of data, "
            f"file holds {len(raw) - header_size}"
        )
    # bytearray: a writable buffer, so torch can share it without a read-only warning.
    return np.frombuffer(bytearray(raw), dtype=np.uint8, offset=header_size).reshape(shape)


def _fashion_mnist_candidates(root: Path) -> list[Path]:
    return [root / "fashion-mnist", root / "FashionMNIST" / "raw", root, _DEBIAN_FASHION_MNIST]


def _find_fashion_mnist(root: Path) -> Path | None:
    for folder in _fashion_mnist_candidates(root):
        if all((folder / file_name).is_file() for file_name in _FASHION_MNIST_FILES.values()):
            return folder
    return None


def _load_fashion_mnist(root: Path, download: bool) -> dict[str, Any]:
    folder = _find_fashion_mnist(root)
    if folder is None and download:
        try:
            import torchvision

            torchvision.datasets.FashionMNIST(str(root), train=True, download=True)
            torchvision.datasets.FashionMNIST(str(root), train=False, download=True)
        except Exception as error:  # network, disk: all end as one actionable message
            raise DataError(f"fashion-mnist: torchvision download into {root} failed: {error}") from error
        folder = _find_fashion_mnist(root)
    if folder is None:
        tried = "\n".join(f"  {path}" for path in _fashion_mnist_candidates(root))
        files = ", ".join(_FASHION_MNIST_FILES.values())
        raise DataError(
            f"fashion-mnist not found: no folder holds all four IDX files ({files}). Tried:\n{tried}\n"
            "To get it: apt-get install -y dataset-fashion-mnist (Debian), or set SMALLBATCH_DATA / "
            "--data-root to a folder holding the IDX files, or pass download=True (--download) "
            "to fetch it with torchvision."
        )
    arrays = {}
    for key, file_name in _FASHION_MNIST_FILES.items():
        arrays[key] = _read_idx(folder / file_name, ndim=3 if key.endswith("images") else 1)
    for split, count in _FASHION_MNIST_COUNTS.items():
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        image_file = folder / _FASHION_MNIST_FILES[f"{split}_images"]
        label_file = folder / _FASHION_MNIST_FILES[f"{split}_labels"]
        if images.shape != (count, 28, 28):
            raise DataError(
                f"corrupt Fashion-MNIST file {image_file}: shape {images.shape}, expected {(count, 28, 28)}"
            )
        if labels.shape != (count,) or labels.max() > 9:
            raise DataError(
                f"corrupt Fashion-MNIST file {label_file}: {labels.shape[0]} labels, max {labels.max()}; "
                f"expected {count} labels in 0..9"
            )
    return dict(
        train_images=arrays["train_images"][:, None],
        train_labels=arrays["train_labels"],
        test_images=arrays["test_images"][:, None],
        test_labels=arrays["test_labels"],
        num_classes=10,
        class_names=FASHION_MNIST_CLASSES,
    )


# ------------------------------------------------------------------------ CIFAR


def _load_cifar(name: str, root: Path, download: bool) -> dict[str, Any]:
    import torchvision

    dataset_class, folder, num_classes = {
        "cifar10": (torchvision.datasets.CIFAR10, "cifar-10-batches-py", 10),
        "cifar100": (torchvision.datasets.CIFAR100, "cifar-100-python", 100),
    }[name]
    splits = {}
    for split, train in (("train", True), ("test", False)):
        try:
            splits[split] = dataset_class(str(root), train=train, download=download)
        except RuntimeError as error:
            hint = (
                "" if download else
                f" To get it: pass download=True (--download) to fetch it with torchvision, or set "
                f"SMALLBATCH_DATA / --data-root to the folder that holds {folder}/."
            )
            if name == "cifar10":
                hint += (" Offline, the JPEG re-encoding 'cifar10-jpeg' is a separate data set "
                         "(labelled 'CIFAR-10 (JPEG q75)'); it is never substituted automatically.")
            raise DataError(f"{name} not found or corrupted at {root / folder} ({error}).{hint}") from error
        except Exception as error:  # download failures (no network, disk full)
            raise DataError(f"{name}: torchvision could not download into {root}: {error}") from error
    return dict(
        train_images=splits["train"].data.transpose(0, 3, 1, 2),
        train_labels=splits["train"].targets,
        test_images=splits["test"].data.transpose(0, 3, 1, 2),
        test_labels=splits["test"].targets,
        num_classes=num_classes,
        class_names=tuple(splits["train"].classes),
    )


# ------------------------------------------------------------------ CIFAR-10 JPEG


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _decode_jpeg_members(tar_path: Path) -> dict[str, np.ndarray]:
    """Stream the tarball and decode every JPEG into uint8 (N, 3, 32, 32) arrays.

    Members are sorted by (split, class, file name) so the order is deterministic
    whatever order the archive stores them in. Labels are the index of the class folder
    in CIFAR10_CLASSES (alphabetical = the standard CIFAR-10 label order).

    Raises:
        DataError: naming the tarball (and member) when it cannot be read, holds an
            unknown class, or a JPEG does not decode to 32x32 RGB.
    """
    # PIL rather than torchvision.io, whose decoders are deprecated since torchvision 0.29.
    from PIL import Image

    members: list[tuple[str, int, str, bytes]] = []
    try:
        with tarfile.open(tar_path, "r|gz") as archive:
            for member in archive:
                match = _CIFAR10_JPEG_MEMBER.match(member.name) if member.isfile() else None
                if match is None:
                    continue  # folders, stray READMEs
                split, class_name, file_name = match.groups()
                if class_name not in CIFAR10_CLASSES:
                    raise DataError(f"{tar_path}: member {member.name} is in unknown class {class_name!r}; "
                                    f"expected one of {', '.join(CIFAR10_CLASSES)}")
                data = archive.extractfile(member).read()  # type: ignore[union-attr]
                members.append((split, CIFAR10_CLASSES.index(class_name), file_name, data))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DataError(f"corrupt tarball {tar_path}: {error}") from error
    members.sort(key=lambda item: item[:3])
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        chosen = [item for item in members if item[0] == split]
        images = np.empty((len(chosen), 3, 32, 32), dtype=np.uint8)
        for position, (_, label, file_name, data) in enumerate(chosen):
            member_name = f"cifar10-jpeg/{split}/{CIFAR10_CLASSES[label]}/{file_name}"
            try:
                with Image.open(io.BytesIO(data)) as image:
                    pixels = np.asarray(image.convert("RGB"))
            except (OSError, ValueError, SyntaxError) as error:
                raise DataError(f"{tar_path}: cannot decode JPEG {member_name}: {error}") from error
            if pixels.shape != (32, 32, 3):
                raise DataError(
                    f"{tar_path}: {member_name} decodes to (H, W, C) = {pixels.shape}, expected (32, 32, 3)"
                )
            images[position] = pixels.transpose(2, 0, 1)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = np.array([item[1] for item in chosen], dtype=np.int64)
    return arrays


def _check_cifar10_jpeg(arrays: Mapping[str, np.ndarray], source: Path) -> None:
    counts = _CIFAR10_JPEG_COUNTS
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 4 or images.shape[1:] != (3, 32, 32) or images.shape[0] != labels.shape[0]:
            raise DataError(f"{source}: {split} images have shape {images.shape} for {labels.shape[0]} labels")
        if images.shape[0] == 0:
            raise DataError(f"{source}: no {split} JPEGs under cifar10-jpeg/{split}/<class>/")
        present = np.unique(labels)
        if present.size != 10:
            raise DataError(f"{source}: {split} split has {present.size} classes, expected 10")
        if counts is not None and images.shape[0] != counts[split]:
            raise DataError(f"{source}: {images.shape[0]} {split} images, expected {counts[split]}")


def _load_cifar10_jpeg_arrays(tar_path: Path, cache_dir: Path) -> dict[str, np.ndarray]:
    """The decoded CIFAR-10 JPEG arrays, from the cache or by decoding the tarball once.

    The cache file is ``<cache_dir>/cifar10-jpeg-v<version>-<sha256 of tarball>.npz``:
    keyed by the tarball's content (hashing 19 MB takes about 0.05 s), so a changed
    tarball can never be served stale arrays. Written atomically (temp file +
    os.replace). An unwritable cache dir only costs a warning and a re-decode next time.

    Measured on 2 CPU cores (shared with another job): the first decode of the real
    60,000-image tarball takes about 5 s (about 2 s to stream and gunzip, 3 s to decode
    with PIL), and the first ``load_data`` call about 6.5 s in all (hash, decode, write
    the 185 MB cache, normalise); a cached ``load_data`` about 1 s.
    """
    digest = _file_sha256(tar_path)
    cache_path = cache_dir / f"cifar10-jpeg-v{_CIFAR10_JPEG_CACHE_VERSION}-{digest}.npz"
    if cache_path.is_file():
        try:
            with np.load(cache_path) as cached:
                arrays = {key: cached[key] for key in cached.files}
            _check_cifar10_jpeg(arrays, cache_path)
            return arrays
        except (OSError, ValueError, KeyError, zlib.error, DataError) as error:
            warnings.warn(f"ignoring unreadable cache {cache_path} ({error}); decoding {tar_path} again")
    arrays = _decode_jpeg_members(tar_path)
    _check_cifar10_jpeg(arrays, tar_path)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=".cifar10-jpeg-", suffix=".npz.tmp", dir=cache_dir)
        try:
            with os.fdopen(handle, "wb") as temp_file:
                np.savez(temp_file, **arrays)
            os.chmod(temp_name, 0o644)  # mkstemp makes it owner-only; the cache may be shared
            os.replace(temp_name, cache_path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
    except OSError as error:
        warnings.warn(f"could not cache decoded CIFAR-10 JPEG arrays in {cache_dir} ({error}); "
                      "set SMALLBATCH_CACHE to a writable folder to avoid decoding again")
    return arrays


def _load_cifar10_jpeg(root: Path, download: bool) -> dict[str, Any]:
    tar_path = root / CIFAR10_JPEG_TARBALL
    if not tar_path.is_file():
        hint = " It cannot be downloaded (download=True does not apply)." if download else ""
        raise DataError(
            f"cifar10-jpeg not found: expected the tarball at {tar_path}.{hint} "
            f"Set SMALLBATCH_DATA / --data-root to the folder holding {CIFAR10_JPEG_TARBALL} "
            "(in this project's workspace: shared/data, whose README.md describes the file and its "
            "provenance). For the original pixels use 'cifar10' with download=True instead."
        )
    arrays = _load_cifar10_jpeg_arrays(tar_path, default_cache_dir())
    return dict(**arrays, num_classes=10, class_names=CIFAR10_CLASSES)


# ---------------------------------------------------------------------- synthetic


def _synthetic_arrays(name: str) -> dict[str, Any]:
    """A small generated task for smoke runs and tests only; never for published figures.

    10 classes. Each class prototype is a shared smooth pattern (std 50 grey levels) plus
    a class-specific one (std 15 for 1x28x28; 8 for 3x32x32, which has 3x the pixels to
    average over); the patterns are 7x7 Gaussian fields upsampled bicubically, drawn
    from a torch.Generator seeded 0. An example is its prototype shifted by up to 4
    pixels each way plus Gaussian noise (std 50), around grey 128, quantised to uint8.
    10,000 train and 2,000 test examples, identical on every call, generated in about
    0.1 s (0.3 s for RGB). A small CNN (two 3x3 conv layers, SGD, batch 32, lr 0.05)
    reaches 82% (1x28x28) and 88% (3x32x32) test accuracy after one epoch and 95-96%
    after two; a nearest-class-mean classifier only about 30-35%: learnable in a
    smoke run, with headroom for batch size and learning rate to matter.
    """
    channels, height, width = _SYNTHETIC_SHAPES[name]
    num_classes = _SYNTHETIC_NUM_CLASSES
    class_amplitude = {"synthetic": 15.0, "synthetic-rgb": 8.0}[name]
    shared_amplitude, noise_std, max_shift = 50.0, 50.0, 4
    generator = torch.Generator().manual_seed(0)

    def smooth_fields(count: int) -> Tensor:
        coarse = torch.randn(count, channels, 7, 7, generator=generator)
        fields = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
        return fields / fields.std(dim=(1, 2, 3), keepdim=True)

    prototypes = shared_amplitude * smooth_fields(1) + class_amplitude * smooth_fields(num_classes)
    # Edge-replicated so that a shift never exposes an artificial border.
    padded = torch.nn.functional.pad(prototypes, (max_shift,) * 4, mode="replicate")
    windows = padded.unfold(2, height, 1).unfold(3, width, 1)  # (10, C, 9, 9, H, W) view
    arrays: dict[str, Any] = {}
    for split_seed, split in enumerate(("train", "test"), start=1):
        count = _SYNTHETIC_COUNTS[split]
        split_generator = torch.Generator().manual_seed(split_seed)
        labels = (torch.arange(count) % num_classes)[torch.randperm(count, generator=split_generator)]
        shifts = torch.randint(0, 2 * max_shift + 1, (2, count), generator=split_generator)
        pixels = windows[labels, :, shifts[0], shifts[1]]  # one gather, no per-example copy
        pixels.add_(torch.randn(pixels.shape, generator=split_generator), alpha=noise_std).add_(128.0)
        arrays[f"{split}_images"] = pixels.round_().clamp_(0, 255).to(torch.uint8).numpy()
        arrays[f"{split}_labels"] = labels.numpy()
    return dict(**arrays, num_classes=num_classes,
                class_names=tuple(f"pattern {index}" for index in range(num_classes)))


# ----------------------------------------------------------------------- ImageNet


class _SeededTransformDataset(torch.utils.data.Dataset):
    """ImageFolder samples indexed by (index, seed): the transform runs under that seed.

    torchvision's transforms draw from the global torch RNG; seeding it per sample (inside
    fork_rng, so the caller's global RNG is untouched) makes the crops and flips depend
    only on the caller's generator, whatever the number of workers.
    """

    def __init__(self, samples: Sequence[tuple[str, int]], loader: Any, transform: Any) -> None:
        self.samples = list(samples)
        self.loader = loader
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, int]:
        index, seed = key
        path, target = self.samples[index]
        try:
            image = self.loader(path)
        except (OSError, ValueError) as error:
            raise DataError(f"cannot decode image {path}: {error}") from error
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only: torch.manual_seed would also reseed (and, outside
            # fork_rng's reach, perturb) the CUDA generators of the training process.
            torch.default_generator.manual_seed(seed)
            return self.transform(image), target


class StreamedImageData(ImageData):
    """An ImageFolder data set (ImageNet) streamed from disk by a DataLoader.

    Train: RandomResizedCrop(image_size) + RandomHorizontalFlip when ``augment``, else
    Resize(image_size * 256 / 224) + CenterCrop(image_size). Test: Resize + CenterCrop.
    Both normalised with the standard ImageNet mean and std. The sample order and each
    sample's transform seed are drawn from the caller's generator, so an epoch depends
    only on it (not on num_workers).
    """

    def __init__(
        self,
        name: str,
        train_samples: Sequence[tuple[str, int]],
        test_samples: Sequence[tuple[str, int]],
        class_names: Sequence[str],
        loader: Any,
        *,
        image_size: int,
        device: str | torch.device,
        num_workers: int,
    ) -> None:
        from torchvision import transforms

        self.name = name
        self.label = DATASET_LABELS[name]
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.input_shape = (3, image_size, image_size)
        self.device = torch.device(device)
        self.num_workers = num_workers
        self.image_size = image_size
        self.mean = torch.tensor(IMAGENET_MEAN)
        self.std = torch.tensor(IMAGENET_STD)
        normalise = [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        resize_size = int(image_size * 256 / 224)  # the usual 256 -> 224 centre-crop ratio
        self._augment_transform = transforms.Compose(
            [transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip(), *normalise]
        )
        self._plain_transform = transforms.Compose(
            [transforms.Resize(resize_size), transforms.CenterCrop(image_size), *normalise]
        )
        self._train_samples = list(train_samples)
        self._test_samples = list(test_samples)
        self._loader = loader
        self.num_train = len(self._train_samples)
        self.num_test = len(self._test_samples)

    def _data_loader(self, dataset: torch.utils.data.Dataset, keys: list[tuple[int, int]],
                     batch_size: int, drop_last: bool) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=keys,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            # A private generator: otherwise the DataLoader draws its worker base seed from
            # the global RNG, perturbing the model's randomness. Transforms are seeded per sample.
            generator=torch.Generator().manual_seed(0),
        )

    def _to_device(self, batches: Any) -> Iterator[tuple[Tensor, Tensor]]:
        non_blocking = self.device.type == "cuda"
        for x, y in batches:
            yield (
                x.to(self.device, non_blocking=non_blocking),
                y.to(self.device, dtype=torch.long, non_blocking=non_blocking),
            )

    def train_batches(
        self, batch_size: int, *, generator: torch.Generator, augment: bool
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch; draws from ``generator`` the permutation, then one seed per sample."""
        batch_size = _train_batch_size(batch_size, self.num_train)
        _check_generator(generator)
        permutation = torch.randperm(self.num_train, generator=generator)
        seeds = torch.randint(0, 2**62, (self.num_train,), generator=generator)
        keys = list(zip(permutation.tolist(), seeds.tolist()))
        transform = self._augment_transform if augment else self._plain_transform
        dataset = _SeededTransformDataset(self._train_samples, self._loader, transform)
        return self._to_device(self._data_loader(dataset, keys, batch_size, drop_last=True))

    def test_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """All validation images in folder order, resized and centre-cropped."""
        batch_size = _positive_batch_size(batch_size)
        dataset = _SeededTransformDataset(self._test_samples, self._loader, self._plain_transform)
        keys = [(index, 0) for index in range(self.num_test)]
        return self._to_device(self._data_loader(dataset, keys, batch_size, drop_last=False))

    def __repr__(self) -> str:
        return (
            f"StreamedImageData(name={self.name!r}, num_train={self.num_train}, "
            f"num_test={self.num_test}, input_shape={self.input_shape}, device={self.device})"
        )


def _imagenet_candidates(root: Path) -> list[Path]:
    """Search order: ``<root>/imagenet`` then ``<root>`` itself, each needing train/ and val/."""
    return [root / "imagenet", root]


def _load_imagenet(
    root: Path, *, download: bool, device: str | torch.device, image_size: int, num_workers: int,
    train_subset: int | None, test_subset: int | None, subset_seed: int,
) -> StreamedImageData:
    from torchvision.datasets import ImageFolder

    candidates = _imagenet_candidates(root)
    folder = next((path for path in candidates if (path / "train").is_dir() and (path / "val").is_dir()), None)
    if folder is None:
        tried = "\n".join(f"  {path / 'train'} and {path / 'val'}" for path in _imagenet_candidates(root))
        hint = " ImageNet cannot be downloaded automatically (download=True does not apply)." if download else ""
        raise DataError(
            f"imagenet not found. Tried:\n{tried}\n{hint}To get it: download ILSVRC2012 from "
            "https://image-net.org (registration needed), arrange train/ and val/ as ImageFolder "
            "class folders (one folder per class; val/ needs the usual valprep reorganisation), "
            "and set SMALLBATCH_DATA / --data-root to their parent."
        )
    splits = {}
    for split in ("train", "val"):
        try:
            splits[split] = ImageFolder(str(folder / split))
        except (FileNotFoundError, OSError) as error:
            raise DataError(f"imagenet: cannot read {folder / split}: {error}") from error
    if splits["train"].classes != splits["val"].classes:
        raise DataError(
            f"imagenet: {folder / 'train'} and {folder / 'val'} hold different class folders "
            f"({len(splits['train'].classes)} vs {len(splits['val'].classes)})"
        )
    class_names = splits["train"].classes
    train_samples, test_samples = splits["train"].samples, splits["val"].samples
    if train_subset is not None:
        keep = stratified_subset([t for _, t in train_samples], train_subset, len(class_names), subset_seed)
        train_samples = [train_samples[i] for i in keep.tolist()]
    if test_subset is not None:
        keep = stratified_subset([t for _, t in test_samples], test_subset, len(class_names), subset_seed)
        test_samples = [test_samples[i] for i in keep.tolist()]
    return StreamedImageData(
        "imagenet", train_samples, test_samples, class_names, splits["train"].loader,
        image_size=image_size, device=device, num_workers=num_workers,
    )


# ------------------------------------------------------------------------- entry


# Training-set sizes known without reading the files (None: only the data can tell).
_TRAIN_SIZES: Mapping[str, int] = types.MappingProxyType({
    "fashion-mnist": _FASHION_MNIST_COUNTS["train"],
    "cifar10": 50_000,
    "cifar100": 50_000,
    "cifar10-jpeg": 50_000,
    "synthetic": _SYNTHETIC_COUNTS["train"],
    "synthetic-rgb": _SYNTHETIC_COUNTS["train"],
})


# Classes of each data set, known without reading the files.
NUM_CLASSES: Mapping[str, int] = types.MappingProxyType({
    "fashion-mnist": 10, "cifar10": 10, "cifar100": 100, "cifar10-jpeg": 10,
    "synthetic": _SYNTHETIC_NUM_CLASSES, "synthetic-rgb": _SYNTHETIC_NUM_CLASSES,
    "imagenet": 1000,
})


def train_size(name: str, train_subset: int | None = None) -> int | None:
    """Training examples a run on ``name`` would see, without loading the data.

    ``train_subset`` when given, else the data set's size; None for a data set whose size
    only its files tell (ImageNet folders). Lets a sweep reject a batch size larger than
    the training set before anything trains.
    """
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    if train_subset is not None:
        return int(train_subset)
    return _TRAIN_SIZES.get(name)


def load_data(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    subset_seed: int = 0,
    download: bool = False,
    device: str | torch.device = "cpu",
    image_size: int = 224,
    num_workers: int = 0,
) -> ImageData:
    """Load a data set by key; never falls back to another data set.

    Args:
        name: one of DATASETS.
        root: data root (default: :func:`default_data_root`).
        train_subset: size of a stratified training subset (None: all).
        test_subset: size of a stratified test subset (None: all; for smoke runs).
        subset_seed: seed of the subset choice, independent of the run seed.
        download: let torchvision fetch fashion-mnist / cifar10 / cifar100 if missing.
        device: where tensors (or streamed batches) live.
        image_size: ImageNet crop size only.
        num_workers: ImageNet DataLoader workers only.

    Returns:
        A :class:`TensorImageData`, or a :class:`StreamedImageData` for imagenet.

    Raises:
        DataError: unknown name, missing or corrupt data, or invalid subset sizes.
    """
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    if data_switched_off() and name not in _SYNTHETIC_SHAPES:
        raise DataError(
            f"{name}: no data set is loaded here: {NO_DATA_ENV}=1 switches off every data "
            "location (the data root, $SMALLBATCH_DATA and the system paths). The book "
            "build sets it: the published book reads stored results only, so whatever "
            "loaded data here must read a stored record instead (or build the book with "
            f"--compute-missing). Unset {NO_DATA_ENV} to load data sets.")
    subsets = {}
    for argument, value in (("train_subset", train_subset), ("test_subset", test_subset)):
        try:
            subsets[argument] = None if value is None else operator.index(value)
        except TypeError:
            subsets[argument] = 0
        if isinstance(value, bool) or (subsets[argument] is not None and subsets[argument] < 1):
            raise DataError(f"{argument} must be a positive integer or None, got {value!r}")
    train_subset, test_subset = subsets["train_subset"], subsets["test_subset"]
    data_root = default_data_root(root)
    if name == "imagenet":
        return _load_imagenet(
            data_root, download=download, device=device, image_size=image_size, num_workers=num_workers,
            train_subset=train_subset, test_subset=test_subset, subset_seed=subset_seed,
        )
    if name == "fashion-mnist":
        arrays = _load_fashion_mnist(data_root, download)
    elif name in ("cifar10", "cifar100"):
        arrays = _load_cifar(name, data_root, download)
    elif name == "cifar10-jpeg":
        arrays = _load_cifar10_jpeg(data_root, download)
    else:
        arrays = _synthetic_arrays(name)
    return _tensor_data(
        name, **arrays, device=device,
        train_subset=train_subset, test_subset=test_subset, subset_seed=subset_seed,
    )
