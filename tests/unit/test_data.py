"""Tests of smallbatch.data: loaders, batching, augmentation, subsets, errors.

Fast and offline: nothing is downloaded. Fashion-MNIST tests use the Debian package
(/usr/share/datasets/fashion-mnist) and the real CIFAR-10 JPEG tarball test uses
../shared/data beside the checkout (or $SMALLBATCH_DATA); both skip with a reason
when absent. Everything else runs on generated data.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smallbatch import data
from smallbatch.data import core, readers
from smallbatch.data import (
    DATASETS,
    DataError,
    TensorImageData,
    crop_with_offsets,
    hflip_where,
    load_data,
    pad_crop_flip,
    stratified_subset,
)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
needs_fashion_mnist = pytest.mark.skipif(
    not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST not installed: apt-get install -y dataset-fashion-mnist",
)


def _real_cifar10_jpeg_root() -> Path | None:
    candidates = [Path(__file__).resolve().parents[2].parent / "shared" / "data"]
    if os.environ.get("SMALLBATCH_DATA"):
        candidates.insert(0, Path(os.environ["SMALLBATCH_DATA"]))
    return next((path for path in candidates if (path / data.CIFAR10_JPEG_TARBALL).is_file()), None)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path):
    """No test reads the user's data root or writes the user's cache."""
    monkeypatch.delenv("SMALLBATCH_DATA", raising=False)
    monkeypatch.delenv(data.NO_DATA_ENV, raising=False)
    monkeypatch.setenv("SMALLBATCH_CACHE", str(tmp_path / "cache"))


def _indexed_data(num_train: int, num_test: int = 7, size: int = 12, num_classes: int = 3) -> TensorImageData:
    """Every pixel of example i holds the value i, so batches reveal their indices."""
    train_x = torch.arange(num_train, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, size, size).contiguous()
    test_x = torch.arange(num_test, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, size, size).contiguous()
    return TensorImageData(
        name="synthetic", label="test", num_classes=num_classes,
        class_names=tuple(str(c) for c in range(num_classes)),
        train_x=train_x, train_y=torch.arange(num_train) % num_classes,
        test_x=test_x, test_y=torch.arange(num_test) % num_classes,
        mean=torch.tensor([0.5]), std=torch.tensor([0.25]),
    )


def _batch_indices(batch_x: torch.Tensor) -> torch.Tensor:
    # The centre pixel survives any crop with pad 4 on a 12x12 image (it comes from
    # rows/cols 2..10 of the original), flipped or not.
    return batch_x[:, 0, 6, 6].long()


# ------------------------------------------------------------------ names, paths


def test_unknown_name_lists_every_dataset():
    with pytest.raises(DataError) as caught:
        load_data("cifar11")
    message = str(caught.value)
    assert "cifar11" in message
    for name in DATASETS:
        assert name in message


def test_data_root_and_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("SMALLBATCH_DATA", str(tmp_path / "env"))
    assert data.default_data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data.default_data_root() == tmp_path / "env"
    monkeypatch.delenv("SMALLBATCH_DATA")
    assert data.default_data_root() == Path.home() / ".cache" / "smallbatch" / "data"
    assert data.default_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("SMALLBATCH_CACHE")
    assert data.default_cache_dir() == Path.home() / ".cache" / "smallbatch" / "cache"


def test_labels_mark_jpeg_and_synthetic_results():
    assert data.DATASET_LABELS["cifar10-jpeg"] == "CIFAR-10 (JPEG q75)"
    assert data.DATASET_LABELS["synthetic"] == "Synthetic (smoke tests only)"
    assert data.DATASET_LABELS["synthetic-rgb"] == "Synthetic RGB (smoke tests only)"
    assert len(set(data.DATASET_LABELS.values())) == len(data.DATASET_LABELS)  # one each
    assert set(data.DATASET_LABELS) == set(DATASETS)


# ---------------------------------------------------------------------- synthetic


@pytest.mark.parametrize("name, shape", [("synthetic", (1, 28, 28)), ("synthetic-rgb", (3, 32, 32))])
def test_synthetic_shapes_labels_normalisation_and_determinism(name, shape):
    first = load_data(name)
    second = load_data(name)
    assert first.name == name and first.label == data.DATASET_LABELS[name]
    assert first.input_shape == shape and first.num_classes == 10
    assert (first.num_train, first.num_test) == (10_000, 2_000)
    assert first.train_x.shape == (10_000, *shape) and first.train_x.dtype == torch.float32
    assert first.train_y.dtype == torch.int64 and first.test_y.dtype == torch.int64
    assert torch.equal(torch.bincount(first.train_y, minlength=10), torch.full((10,), 1_000))
    assert torch.equal(torch.bincount(first.test_y, minlength=10), torch.full((10,), 200))
    # Normalised with its own training statistics: mean 0, std 1 per channel.
    channel_mean = first.train_x.mean(dim=(0, 2, 3))
    channel_std = first.train_x.std(dim=(0, 2, 3))
    assert torch.allclose(channel_mean, torch.zeros(shape[0]), atol=1e-4)
    assert torch.allclose(channel_std, torch.ones(shape[0]), atol=1e-3)
    assert torch.equal(first.train_x, second.train_x) and torch.equal(first.test_y, second.test_y)
    # Examples of a class differ (shift + noise), and the two splits differ.
    same_class = first.train_x[first.train_y == 0]
    assert not torch.equal(same_class[0], same_class[1])
    assert not torch.equal(first.train_x[:2_000], first.test_x)


# ---------------------------------------------------------------- batching, shuffle


def test_train_batches_same_seed_same_batches_and_different_seed_differs():
    dataset = load_data("synthetic-rgb", train_subset=500, test_subset=50)
    run_a = list(dataset.train_batches(32, generator=torch.Generator().manual_seed(7), augment=True))
    run_b = list(dataset.train_batches(32, generator=torch.Generator().manual_seed(7), augment=True))
    run_c = list(dataset.train_batches(32, generator=torch.Generator().manual_seed(8), augment=True))
    assert len(run_a) == dataset.steps_per_epoch(32) == 500 // 32
    for (xa, ya), (xb, yb) in zip(run_a, run_b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not all(torch.equal(ya, yc) for (_, ya), (_, yc) in zip(run_a, run_c))
    x, y = run_a[0]
    assert x.shape == (32, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_epoch_has_no_duplicates_drops_last_partial_batch_and_reshuffles():
    dataset = _indexed_data(num_train=103)
    generator = torch.Generator().manual_seed(0)
    assert dataset.steps_per_epoch(10) == 10
    epochs = []
    for augment in (False, True):
        batches = list(dataset.train_batches(10, generator=generator, augment=augment))
        assert len(batches) == 10 and all(x.shape[0] == 10 and y.shape[0] == 10 for x, y in batches)
        indices = torch.cat([_batch_indices(x) for x, _ in batches])
        labels = torch.cat([y for _, y in batches])
        assert indices.unique().numel() == 100  # 100 distinct of 103: 3 dropped, none twice
        assert torch.equal(labels, indices % 3)  # labels travel with their images
        epochs.append(indices)
    assert not torch.equal(epochs[0], epochs[1])  # the generator moved on: a new order


def test_test_batches_cover_all_examples_in_order_with_partial_last_batch():
    dataset = _indexed_data(num_train=20, num_test=7)
    batches = list(dataset.test_batches(3))
    assert [x.shape[0] for x, _ in batches] == [3, 3, 1]
    assert torch.equal(torch.cat([_batch_indices(x) for x, _ in batches]), torch.arange(7))


def test_bad_batch_size_and_generator_are_data_errors():
    dataset = _indexed_data(num_train=20)
    with pytest.raises(DataError, match="exceeds"):
        next(iter(dataset.train_batches(21, generator=torch.Generator(), augment=False)))
    with pytest.raises(DataError, match="positive"):
        dataset.steps_per_epoch(0)
    with pytest.raises(DataError, match="Generator"):
        dataset.train_batches(4, generator=0, augment=False)
    with pytest.raises(DataError, match="positive"):
        dataset.test_batches(2.5)
    # Integers from a numpy sweep grid are fine.
    assert dataset.steps_per_epoch(np.int64(6)) == 3
    assert len(list(dataset.train_batches(np.int64(6), generator=torch.Generator(), augment=False))) == 3


def test_augmented_batches_pad_with_black():
    dataset = load_data("synthetic", train_subset=200)
    black = (0.0 - dataset.mean) / dataset.std
    assert torch.allclose(dataset.pad_fill, black)
    x, _ = next(iter(dataset.train_batches(200, generator=torch.Generator().manual_seed(1), augment=True)))
    # With offsets 0..8 about 4/9 of crops start inside the top padding: row 0 all black.
    top_row_black = (x[:, 0, 0, :] == black[0]).all(dim=1)
    assert 0.25 < top_row_black.float().mean() < 0.65
    # An unaugmented synthetic image is never a black row (grey 128 +- noise).
    plain, _ = next(iter(dataset.train_batches(200, generator=torch.Generator().manual_seed(1), augment=False)))
    assert not (plain[:, 0, 0, :] == black[0]).all(dim=1).any()


# ------------------------------------------------------------------ augmentation


def _reference_augment(image, dy, dx, flip, pad, fill):
    crop = _reference_crop(image[None], [dy], [dx], pad, fill)[0]
    return crop.flip(-1) if flip else crop


def _reference_crop(x, dy, dx, pad, fill):
    """Per-example slicing: the obvious implementation the batched one must match."""
    out = []
    for i in range(x.shape[0]):
        channels, height, width = x[i].shape
        padded = fill.view(-1, 1, 1).expand(channels, height + 2 * pad, width + 2 * pad).clone()
        padded[:, pad : pad + height, pad : pad + width] = x[i]
        out.append(padded[:, int(dy[i]) : int(dy[i]) + height, int(dx[i]) : int(dx[i]) + width])
    return torch.stack(out)


@pytest.mark.parametrize("pad", [1, 2, 4])
def test_crop_with_offsets_matches_per_example_slicing(pad):
    generator = torch.Generator().manual_seed(pad)
    x = torch.randn(24, 3, 9, 7, generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (24,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (24,), generator=generator)
    fill = torch.tensor([-1.5, 0.25, 3.0])
    assert torch.equal(crop_with_offsets(x, dy, dx, pad, fill), _reference_crop(x, dy, dx, pad, fill))
    assert torch.equal(crop_with_offsets(x, dy, dx, pad), _reference_crop(x, dy, dx, pad, torch.zeros(3)))
    centred = torch.full((24,), pad)
    assert torch.equal(crop_with_offsets(x, centred, centred, pad, fill), x)


def test_hflip_where_matches_per_example_flip():
    x = torch.randn(10, 2, 5, 6)
    mask = torch.tensor([True, False] * 5)
    expected = torch.stack([x[i].flip(-1) if mask[i] else x[i] for i in range(10)])
    assert torch.equal(hflip_where(x, mask), expected)


def test_pad_crop_flip_outputs_are_valid_crops_covering_all_offsets_and_flips():
    pad = 2
    x = torch.arange(200 * 6 * 6, dtype=torch.float32).view(200, 1, 6, 6)  # every pixel unique
    fill = torch.tensor([-1.0])
    out = pad_crop_flip(x, torch.Generator().manual_seed(3), pad=pad, fill=fill)
    found = set()
    for i in range(x.shape[0]):
        matches = [
            (dy, dx, flip)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            for flip in (False, True)
            if torch.equal(out[i], _reference_augment(x[i], dy, dx, flip, pad, fill))
        ]
        assert len(matches) == 1, f"example {i} is not exactly one crop of its padded image"
        found.add(matches[0])
    assert {dy for dy, _, _ in found} == set(range(2 * pad + 1))
    assert {dx for _, dx, _ in found} == set(range(2 * pad + 1))
    assert {flip for _, _, flip in found} == {False, True}
    # Same generator seed, same augmentation.
    assert torch.equal(out, pad_crop_flip(x, torch.Generator().manual_seed(3), pad=pad, fill=fill))


def test_crop_offsets_uniform_and_flips_half():
    dy, dx, flips = core._draw_crop_flip(18_000, torch.Generator().manual_seed(0), pad=4)
    for offsets in (dy, dx):
        counts = torch.bincount(offsets, minlength=9)
        assert counts.numel() == 9 and offsets.min() == 0 and offsets.max() == 8
        assert (counts - 2_000).abs().max() < 200  # ~4.5 binomial standard deviations
    assert abs(flips.float().mean().item() - 0.5) < 0.02


# ----------------------------------------------------------------------- subsets


def test_stratified_subset_balance_remainder_and_seed():
    labels = torch.arange(1_000) % 10
    keep = stratified_subset(labels, 25, 10, seed=0)
    counts = torch.bincount(labels[keep], minlength=10)
    assert keep.numel() == keep.unique().numel() == 25
    assert sorted(counts.tolist()) == [2] * 5 + [3] * 5
    assert torch.equal(keep, stratified_subset(labels, 25, 10, seed=0))
    assert not torch.equal(keep, stratified_subset(labels, 25, 10, seed=1))
    with pytest.raises(DataError, match="only 1000"):
        stratified_subset(labels, 1_001, 10, seed=0)
    with pytest.raises(DataError, match="number of classes"):
        stratified_subset(labels, 9, 10, seed=0)


def test_load_data_subsets_keep_full_training_statistics():
    full = load_data("synthetic")
    subset = load_data("synthetic", train_subset=1_000, test_subset=100, subset_seed=3)
    assert (subset.num_train, subset.num_test) == (1_000, 100)
    assert torch.equal(torch.bincount(subset.train_y, minlength=10), torch.full((10,), 100))
    assert torch.equal(torch.bincount(subset.test_y, minlength=10), torch.full((10,), 10))
    assert torch.equal(subset.mean, full.mean) and torch.equal(subset.std, full.std)
    # Subset examples are rows of the full set, normalised identically.
    assert torch.equal(subset.train_x[0], full.train_x[stratified_subset(full.train_y, 1_000, 10, 3)[0]])
    with pytest.raises(DataError, match="train_subset"):
        load_data("synthetic", train_subset=0)


# ------------------------------------------------------------------ Fashion-MNIST


@pytest.fixture(scope="module")
def fashion_mnist(tmp_path_factory):
    # A root without Fashion-MNIST: the loader must fall back to the Debian package.
    return load_data("fashion-mnist", root=tmp_path_factory.mktemp("empty-root"))


@needs_fashion_mnist
def test_fashion_mnist_from_debian_package(fashion_mnist):
    dataset = fashion_mnist
    assert dataset.label == "Fashion-MNIST" and dataset.input_shape == (1, 28, 28)
    assert dataset.train_x.shape == (60_000, 1, 28, 28) and dataset.test_x.shape == (10_000, 1, 28, 28)
    assert dataset.train_x.dtype == torch.float32 and dataset.train_y.dtype == torch.int64
    assert torch.equal(torch.bincount(dataset.train_y), torch.full((10,), 6_000))
    assert torch.equal(torch.bincount(dataset.test_y), torch.full((10,), 1_000))
    assert abs(dataset.train_x.mean().item()) < 1e-4 and abs(dataset.train_x.std().item() - 1) < 1e-3
    # The published statistics of Fashion-MNIST (pixels / 255): mean 0.2860, std 0.3530.
    assert abs(dataset.mean.item() - 0.2860) < 1e-3 and abs(dataset.std.item() - 0.3530) < 1e-3


def _fashion_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for file_name in readers._FASHION_MNIST_FILES.values():
        (folder / file_name).symlink_to(DEBIAN_FASHION_MNIST / file_name)


@needs_fashion_mnist
def test_fashion_mnist_torchvision_layout_without_debian_fallback(monkeypatch, tmp_path, fashion_mnist):
    monkeypatch.setattr(readers, "_DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    _fashion_files(tmp_path / "FashionMNIST" / "raw")
    dataset = load_data("fashion-mnist", root=tmp_path, train_subset=100, test_subset=20)
    assert (dataset.num_train, dataset.num_test) == (100, 20)
    assert torch.equal(dataset.mean, fashion_mnist.mean)


def _write_gzip(path: Path, payload: bytes) -> None:
    with gzip.open(path, "wb") as handle:
        handle.write(payload)


@needs_fashion_mnist
def test_smallbatch_data_env_is_searched_before_debian(monkeypatch, tmp_path):
    env_root = tmp_path / "env-root"
    _fashion_files(env_root / "fashion-mnist")
    broken = env_root / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    broken.unlink()
    broken.write_bytes(b"this is not gzip")
    monkeypatch.setenv("SMALLBATCH_DATA", str(env_root))
    with pytest.raises(DataError) as caught:
        load_data("fashion-mnist")
    assert str(broken) in str(caught.value) and "gzip" in str(caught.value)


def test_the_no_data_switch_finds_no_data_set_anywhere(monkeypatch, tmp_path):
    """$SMALLBATCH_NO_DATA=1: every data set on disk is refused before any path is looked
    at: a data root and $SMALLBATCH_DATA that hold it, and the system path (Debian's, here
    made to hold it too); the synthetic data sets still load."""
    root = tmp_path / "root"
    (root / "fashion-mnist").mkdir(parents=True)
    debian = tmp_path / "debian"
    debian.mkdir()
    for folder in (root / "fashion-mnist", debian):
        for file_name in readers._FASHION_MNIST_FILES.values():
            _write_gzip(folder / file_name, b"never read")
    (root / data.CIFAR10_JPEG_TARBALL).write_bytes(b"never read")
    monkeypatch.setattr(readers, "_DEBIAN_FASHION_MNIST", debian)
    monkeypatch.setenv("SMALLBATCH_DATA", str(root))
    with pytest.raises(DataError, match="gzip|IDX|corrupt"):  # without the switch: read
        load_data("fashion-mnist")
    monkeypatch.setenv(data.NO_DATA_ENV, "1")
    on_disk = [name for name in DATASETS if not name.startswith("synthetic")]
    assert {"fashion-mnist", "cifar10-jpeg", "imagenet"} <= set(on_disk)
    for name in on_disk:
        for where in ({}, {"root": root}):
            with pytest.raises(DataError, match=f"{data.NO_DATA_ENV}=1") as caught:
                load_data(name, download=True, **where)
            assert name in str(caught.value) and "--compute-missing" in str(caught.value)
    assert load_data("synthetic", train_subset=20, test_subset=10).num_train == 20
    assert load_data("synthetic-rgb", train_subset=20, test_subset=10).num_test == 10
    monkeypatch.setenv(data.NO_DATA_ENV, "0")
    with pytest.raises(DataError, match="gzip|IDX|corrupt"):
        load_data("fashion-mnist")


def test_missing_fashion_mnist_lists_paths_tried_and_fixes(monkeypatch, tmp_path):
    monkeypatch.setattr(readers, "_DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    with pytest.raises(DataError) as caught:
        load_data("fashion-mnist", root=tmp_path / "root")
    message = str(caught.value)
    for folder in (tmp_path / "root" / "fashion-mnist", tmp_path / "root" / "FashionMNIST" / "raw",
                   tmp_path / "root", tmp_path / "no-debian"):
        assert str(folder) in message
    for fix in ("apt-get install -y dataset-fashion-mnist", "SMALLBATCH_DATA", "--data-root", "download=True"):
        assert fix in message


def test_corrupt_idx_files_name_the_file(tmp_path):
    not_gzip = tmp_path / "not-gzip.gz"
    not_gzip.write_bytes(b"\x00\x01garbage")
    wrong_magic = tmp_path / "wrong-magic.gz"
    _write_gzip(wrong_magic, struct.pack(">IIII", 0x00000801, 1, 2, 2) + bytes(4))  # a label file's magic
    truncated = tmp_path / "truncated.gz"
    _write_gzip(truncated, struct.pack(">IIII", 0x00000803, 2, 2, 2) + bytes(5))
    cut_stream = tmp_path / "cut-stream.gz"
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as handle:
        handle.write(struct.pack(">II", 0x00000801, 1000) + bytes(1000))
    cut_stream.write_bytes(buffer.getvalue()[:-12])
    for path, ndim, reason in ((not_gzip, 3, "gzip"), (wrong_magic, 3, "magic"), (truncated, 3, "header says"),
                               (cut_stream, 1, "gzip")):
        with pytest.raises(DataError) as caught:
            readers._read_idx(path, ndim)
        assert str(path) in str(caught.value) and reason in str(caught.value)
    good = tmp_path / "good.gz"
    _write_gzip(good, struct.pack(">IIII", 0x00000803, 2, 2, 3) + bytes(range(12)))
    assert np.array_equal(readers._read_idx(good, 3), np.arange(12, dtype=np.uint8).reshape(2, 2, 3))


# ------------------------------------------------------------------------ CIFAR


@pytest.mark.parametrize("name, folder", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_missing_cifar_names_folder_and_download(tmp_path, name, folder):
    with pytest.raises(DataError) as caught:
        load_data(name, root=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / folder) in message and "download=True" in message and "--download" in message


def test_missing_cifar10_jpeg_says_where_and_how(tmp_path):
    with pytest.raises(DataError) as caught:
        load_data("cifar10-jpeg", root=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "cifar10-jpeg.tar.gz") in message
    assert "shared/data" in message and "README" in message


# ------------------------------------------------------------------ CIFAR-10 JPEG


def _jpeg_bytes(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _write_tarball(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))


def _tiny_cifar10_jpeg_members(per_class_train: int = 2, seed: int = 0) -> dict[str, bytes]:
    members = {}
    # Reverse order in the archive: the loader must sort, not trust archive order.
    for class_index, class_name in reversed(list(enumerate(data.CIFAR10_CLASSES))):
        for image_index in reversed(range(per_class_train)):
            name = f"cifar10-jpeg/train/{class_name}/{image_index:04d}.jpg"
            members[name] = _jpeg_bytes(seed + 100 * class_index + image_index)
        members[f"cifar10-jpeg/test/{class_name}/0000.jpg"] = _jpeg_bytes(seed + 100 * class_index + 50)
    members["cifar10-jpeg/README.txt"] = b"a stray file the loader ignores"
    return members


def test_cifar10_jpeg_tiny_tarball_loads_in_order_and_reuses_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(readers, "_CIFAR10_JPEG_COUNTS", None)
    members = _tiny_cifar10_jpeg_members()
    _write_tarball(tmp_path / "cifar10-jpeg.tar.gz", members)
    dataset = load_data("cifar10-jpeg", root=tmp_path)
    assert dataset.label == "CIFAR-10 (JPEG q75)"
    assert (dataset.num_train, dataset.num_test, dataset.num_classes) == (20, 10, 10)
    assert dataset.class_names == data.CIFAR10_CLASSES
    assert torch.equal(dataset.train_y, torch.arange(10).repeat_interleave(2))
    # Undo the normalisation and compare with PIL's decoding of the same JPEG bytes.
    raw = (dataset.train_x * dataset.std.view(1, 3, 1, 1) + dataset.mean.view(1, 3, 1, 1)) * 255
    expected = np.asarray(Image.open(io.BytesIO(members["cifar10-jpeg/train/bird/0001.jpg"])).convert("RGB"))
    assert np.array_equal(raw[2 * 2 + 1].round().to(torch.uint8).permute(1, 2, 0).numpy(), expected)
    cache_files = list((tmp_path / "cache").glob("cifar10-jpeg-*.npz"))
    assert len(cache_files) == 1 and readers._file_sha256(tmp_path / "cifar10-jpeg.tar.gz") in cache_files[0].name

    def no_decoding(tar_path):
        raise AssertionError("decoded again although the cache holds this tarball")

    monkeypatch.setattr(readers, "_decode_jpeg_members", no_decoding)
    cached = load_data("cifar10-jpeg", root=tmp_path)
    assert torch.equal(cached.train_x, dataset.train_x) and torch.equal(cached.test_y, dataset.test_y)
    # A different tarball is a different cache key: it must be decoded.
    _write_tarball(tmp_path / "cifar10-jpeg.tar.gz", _tiny_cifar10_jpeg_members(seed=7))
    with pytest.raises(AssertionError, match="decoded again"):
        load_data("cifar10-jpeg", root=tmp_path)


def test_cifar10_jpeg_verifies_counts_and_names_bad_members(monkeypatch, tmp_path):
    tarball = tmp_path / "cifar10-jpeg.tar.gz"
    _write_tarball(tarball, _tiny_cifar10_jpeg_members())
    with pytest.raises(DataError, match="20 train images, expected 50000"):
        load_data("cifar10-jpeg", root=tmp_path)
    monkeypatch.setattr(readers, "_CIFAR10_JPEG_COUNTS", None)
    members = _tiny_cifar10_jpeg_members()
    members["cifar10-jpeg/train/cat/0001.jpg"] = b"\xff\xd8 not really a jpeg"
    _write_tarball(tarball, members)
    with pytest.raises(DataError) as caught:
        load_data("cifar10-jpeg", root=tmp_path)
    assert "cifar10-jpeg/train/cat/0001.jpg" in str(caught.value) and str(tarball) in str(caught.value)
    members = _tiny_cifar10_jpeg_members()
    members["cifar10-jpeg/train/unicorn/0000.jpg"] = _jpeg_bytes(1)
    _write_tarball(tarball, members)
    with pytest.raises(DataError, match="unknown class 'unicorn'"):
        load_data("cifar10-jpeg", root=tmp_path)
    tarball.write_bytes(b"not a tarball at all")
    with pytest.raises(DataError, match="corrupt tarball"):
        load_data("cifar10-jpeg", root=tmp_path)


@pytest.mark.skipif(_real_cifar10_jpeg_root() is None,
                    reason="cifar10-jpeg.tar.gz not found in ../shared/data or $SMALLBATCH_DATA")
def test_real_cifar10_jpeg_tarball():
    dataset = load_data("cifar10-jpeg", root=_real_cifar10_jpeg_root())
    assert dataset.label == "CIFAR-10 (JPEG q75)"
    assert dataset.train_x.shape == (50_000, 3, 32, 32) and dataset.test_x.shape == (10_000, 3, 32, 32)
    assert torch.equal(torch.bincount(dataset.train_y), torch.full((10,), 5_000))
    assert torch.equal(torch.bincount(dataset.test_y), torch.full((10,), 1_000))
    # Near the original CIFAR-10 channel means (0.4914, 0.4822, 0.4465); JPEG shifts them slightly.
    assert torch.allclose(dataset.mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=0.005)
    assert torch.allclose(dataset.train_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)


# ----------------------------------------------------------------------- ImageNet


def _image_folder(root: Path, classes=("n01", "n02"), per_split=(("train", 4), ("val", 2))) -> None:
    rng = np.random.default_rng(0)
    for split, count in per_split:
        for class_name in classes:
            folder = root / split / class_name
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
                suffix = ".png" if index % 2 else ".jpg"
                Image.fromarray(pixels).save(folder / f"{index}{suffix}")


def test_imagenet_tiny_folder_shapes_steps_and_determinism(tmp_path):
    _image_folder(tmp_path / "imagenet")
    dataset = load_data("imagenet", root=tmp_path, image_size=32)
    assert isinstance(dataset, data.StreamedImageData) and dataset.label == "ImageNet"
    assert (dataset.num_classes, dataset.num_train, dataset.num_test) == (2, 8, 4)
    assert dataset.input_shape == (3, 32, 32) and dataset.steps_per_epoch(3) == 2
    rng_state = torch.get_rng_state()
    batches = list(dataset.train_batches(3, generator=torch.Generator().manual_seed(5), augment=True))
    assert torch.equal(torch.get_rng_state(), rng_state)  # the global RNG is left alone
    assert len(batches) == 2 and all(x.shape == (3, 3, 32, 32) and x.dtype == torch.float32 for x, _ in batches)
    assert all(y.dtype == torch.int64 and set(y.tolist()) <= {0, 1} for _, y in batches)
    again = list(dataset.train_batches(3, generator=torch.Generator().manual_seed(5), augment=True))
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(batches, again))
    other = list(dataset.train_batches(3, generator=torch.Generator().manual_seed(6), augment=True))
    assert not all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(batches, other))
    test = list(dataset.test_batches(3))
    assert [x.shape[0] for x, _ in test] == [3, 1]
    assert torch.cat([y for _, y in test]).tolist() == [0, 0, 1, 1]
    # Unaugmented and test batches are deterministic centre crops.
    plain_a = list(dataset.train_batches(8, generator=torch.Generator().manual_seed(1), augment=False))
    plain_b = list(dataset.train_batches(8, generator=torch.Generator().manual_seed(2), augment=False))
    order_a, order_b = plain_a[0][0].flatten(1).sum(1).sort().values, plain_b[0][0].flatten(1).sum(1).sort().values
    assert torch.allclose(order_a, order_b)  # same images, different order


def test_imagenet_root_itself_subset_and_workers_agree(tmp_path):
    _image_folder(tmp_path)
    dataset = load_data("imagenet", root=tmp_path, image_size=32, train_subset=4, test_subset=2)
    assert (dataset.num_train, dataset.num_test) == (4, 2)
    single = list(dataset.train_batches(2, generator=torch.Generator().manual_seed(0), augment=True))
    workers = load_data("imagenet", root=tmp_path, image_size=32, train_subset=4, test_subset=2, num_workers=2)
    parallel = list(workers.train_batches(2, generator=torch.Generator().manual_seed(0), augment=True))
    assert sorted(torch.cat([y for _, y in single]).tolist()) == [0, 0, 1, 1]
    assert all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(single, parallel))


def test_missing_imagenet_lists_paths(tmp_path):
    with pytest.raises(DataError) as caught:
        load_data("imagenet", root=tmp_path)
    message = str(caught.value)
    for folder in (tmp_path / "imagenet" / "train", tmp_path / "imagenet" / "val",
                   tmp_path / "train", tmp_path / "val"):
        assert str(folder) in message
    assert "image-net.org" in message
