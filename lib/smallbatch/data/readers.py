"""The file readers: where data sets are looked for, and how each file format is read into
arrays (Fashion-MNIST's gzip IDX files, torchvision's CIFAR folders, the CIFAR-10 JPEG
tarball with its decoded cache) plus the synthetic sets for smoke runs. Each reader returns
the arrays :func:`smallbatch.data.core._tensor_data` turns into device tensors. Nothing here
does I/O at import time.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import struct
import tarfile
import warnings
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from ..atomic import write_atomic
from .core import DataError

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

_DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# The one switch that takes every data set on disk away: with $SMALLBATCH_NO_DATA=1,
# load_data finds no data set anywhere (not the data root, not $SMALLBATCH_DATA, not the
# system paths such as /usr/share/datasets) and raises DataError before looking. Only the
# synthetic data sets load. The book build sets it in its kernels (smallbatch_book.build): the
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
    tarball can never be served stale arrays. Written atomically
    (:func:`smallbatch.atomic.write_atomic`: temp file + os.replace). An unwritable cache
    dir only costs a warning and a re-decode next time.

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
        write_atomic(cache_path, lambda handle: np.savez(handle, **arrays), binary=True)
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


