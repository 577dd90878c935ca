"""The data sets, one row each (:data:`REGISTRY`), and the one entry point, :func:`load_data`.

A row holds everything known about a data set without reading its files: its display
label, its number of classes, its training-set size, whether it lives on disk, and the
reader that turns its files into arrays (ImageNet alone is streamed instead). The
name-keyed views (:data:`DATASETS`, :data:`DATASET_LABELS`, :data:`NUM_CLASSES`) are read
off the rows.
"""

from __future__ import annotations

import operator
import os
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch

from . import readers
from .core import DataError, ImageData, _tensor_data
from .imagenet import _load_imagenet


@dataclass(frozen=True)
class DataSet:
    """What is known about a data set before any file is read."""

    name: str                    # the key: TrainConfig.data, --data
    label: str                   # shown in figures and tables
    num_classes: int
    train_size: int | None       # training examples; None: only its files tell (ImageNet)
    on_disk: bool                # False: generated here (the synthetic sets)
    read: Callable[[Path, bool], dict] | None  # (data root, download) -> arrays; None: streamed
    test_size: int | None = None  # test examples; None: only its files tell (ImageNet)


# The JPEG re-encoding of CIFAR-10 loses detail (quality 75, 4:2:0 chroma), so its label
# keeps its results from ever passing for original CIFAR-10 ones.
REGISTRY: Mapping[str, DataSet] = types.MappingProxyType({row.name: row for row in (
    DataSet("fashion-mnist", "Fashion-MNIST", 10, readers._FASHION_MNIST_COUNTS["train"], True,
            readers._load_fashion_mnist, readers._FASHION_MNIST_COUNTS["test"]),
    DataSet("cifar10", "CIFAR-10", 10, 50_000, True,
            lambda root, download: readers._load_cifar("cifar10", root, download), 10_000),
    DataSet("cifar100", "CIFAR-100", 100, 50_000, True,
            lambda root, download: readers._load_cifar("cifar100", root, download), 10_000),
    DataSet("cifar10-jpeg", "CIFAR-10 (JPEG q75)", 10, 50_000, True,
            readers._load_cifar10_jpeg, 10_000),
    DataSet("synthetic", "Synthetic (smoke tests only)", readers._SYNTHETIC_NUM_CLASSES,
            readers._SYNTHETIC_COUNTS["train"], False,
            lambda root, download: readers._synthetic_arrays("synthetic"),
            readers._SYNTHETIC_COUNTS["test"]),
    DataSet("synthetic-rgb", "Synthetic RGB (smoke tests only)", readers._SYNTHETIC_NUM_CLASSES,
            readers._SYNTHETIC_COUNTS["train"], False,
            lambda root, download: readers._synthetic_arrays("synthetic-rgb"),
            readers._SYNTHETIC_COUNTS["test"]),
    DataSet("imagenet", "ImageNet", 1000, None, True, None),
)})

DATASETS: tuple[str, ...] = tuple(REGISTRY)
DATASET_LABELS: Mapping[str, str] = types.MappingProxyType(
    {name: row.label for name, row in REGISTRY.items()})
NUM_CLASSES: Mapping[str, int] = types.MappingProxyType(
    {name: row.num_classes for name, row in REGISTRY.items()})


def _row(name: str) -> DataSet:
    if name not in REGISTRY:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    return REGISTRY[name]


def train_size(name: str, train_subset: int | None = None) -> int | None:
    """Training examples a run on ``name`` would see, without loading the data.

    ``train_subset`` when given, else the data set's size; None for a data set whose size
    only its files tell (ImageNet folders). Lets a sweep reject a batch size larger than
    the training set before anything trains.
    """
    row = _row(name)
    if train_subset is not None:
        return int(train_subset)
    return row.train_size


def num_test(name: str, test_subset: int | None = None) -> int | None:
    """Test examples a run on ``name`` is scored on, without loading the data (as
    :func:`train_size` for training): ``test_subset`` when given, else the data set's test
    split; None where only its files tell (ImageNet). It sets the binomial error of one
    accuracy (``analysis.noise_margin``)."""
    row = _row(name)
    if test_subset is not None:
        return int(test_subset)
    return row.test_size


def load_data(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    subset_seed: int = 0,
    validation_subset: int | None = None,
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
        validation_subset: size of a stratified validation set drawn from the test images
            outside ``test_subset`` (None: no validation set; needs ``test_subset``).
        download: let torchvision fetch fashion-mnist / cifar10 / cifar100 if missing.
        device: where tensors (or streamed batches) live.
        image_size: ImageNet crop size only.
        num_workers: ImageNet DataLoader workers only.

    Returns:
        A :class:`TensorImageData`, or a :class:`StreamedImageData` for imagenet.

    Raises:
        DataError: unknown name, missing or corrupt data, or invalid subset sizes.
    """
    row = _row(name)
    if readers.data_switched_off() and row.on_disk:
        raise DataError(
            f"{name}: no data set is loaded here: {readers.NO_DATA_ENV}=1 switches off every data "
            "location (the data root, $SMALLBATCH_DATA and the system paths). The book "
            "build sets it: the published book reads stored results only, so whatever "
            "loaded data here must read a stored record instead (or build the book with "
            f"--compute-missing). Unset {readers.NO_DATA_ENV} to load data sets.")
    subsets = {}
    for argument, value in (("train_subset", train_subset), ("test_subset", test_subset),
                            ("validation_subset", validation_subset)):
        try:
            subsets[argument] = None if value is None else operator.index(value)
        except TypeError:
            subsets[argument] = 0
        if isinstance(value, bool) or (subsets[argument] is not None and subsets[argument] < 1):
            raise DataError(f"{argument} must be a positive integer or None, got {value!r}")
    train_subset, test_subset = subsets["train_subset"], subsets["test_subset"]
    data_root = readers.default_data_root(root)
    if row.read is None and validation_subset is not None:
        raise DataError(f"{name}: streamed data sets have no validation split yet; leave "
                        "validation_subset unset")
    if row.read is None:  # streamed
        return _load_imagenet(
            data_root, label=row.label, download=download, device=device, image_size=image_size, num_workers=num_workers,
            train_subset=train_subset, test_subset=test_subset, subset_seed=subset_seed,
        )
    arrays = row.read(data_root, download)
    return _tensor_data(
        name, label=row.label, **arrays, device=device,
        train_subset=train_subset, test_subset=test_subset, subset_seed=subset_seed,
        validation_subset=subsets["validation_subset"],
    )
