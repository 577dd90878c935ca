"""ImageNet, streamed (book: "The full protocol"): it does not fit on the device, so it is
read from an ImageFolder by a DataLoader (:class:`StreamedImageData`) behind the same
:class:`~smallbatch.data.core.ImageData` interface as the tensor data sets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from .core import (IMAGENET_MEAN, IMAGENET_STD, DataError, ImageData, _check_generator,
                   _positive_batch_size, _train_batch_size, stratified_subset)


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
        label: str,
        image_size: int,
        device: str | torch.device,
        num_workers: int,
    ) -> None:
        from torchvision import transforms

        self.name = name
        self.label = label
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
    root: Path, *, label: str, download: bool, device: str | torch.device, image_size: int, num_workers: int,
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
        label=label, image_size=image_size, device=device, num_workers=num_workers,
    )


