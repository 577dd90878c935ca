"""Data (book: "Protocol"): the data sets, their files, and their life on the device.

- :mod:`.registry`: one row per data set (label, classes, size, reader) and
  :func:`load_data`, the one entry point; it never falls back to another data set;
- :mod:`.core`: the on-device core: a data set as device tensors, seeded epoch batching,
  batched pad-crop-flip augmentation, stratified subsets;
- :mod:`.readers`: where data sets are looked for (the data root, ``$SMALLBATCH_DATA``,
  Debian's ``/usr/share/datasets``; ``$SMALLBATCH_NO_DATA=1`` switches all of them off) and
  the file formats (IDX, torchvision's CIFAR, the CIFAR-10 JPEG tarball), plus the
  synthetic sets;
- :mod:`.imagenet`: ImageNet, streamed from an ImageFolder behind the same interface.

Nothing here does I/O at import time.
"""

from .core import (AUGMENT_PAD, DataError, ImageData, TensorImageData, crop_with_offsets,
                   hflip_where, pad_crop_flip, stratified_subset)
from .imagenet import StreamedImageData
from .readers import (CIFAR10_CLASSES, CIFAR10_JPEG_TARBALL, FASHION_MNIST_CLASSES,
                      NO_DATA_ENV, data_switched_off, default_cache_dir, default_data_root)
from .registry import (DATASET_LABELS, DATASETS, NUM_CLASSES, REGISTRY, DataSet, load_data,
                       num_test, train_size)

__all__ = ["AUGMENT_PAD", "CIFAR10_CLASSES", "CIFAR10_JPEG_TARBALL", "DATASETS",
           "DATASET_LABELS", "DataError", "DataSet", "FASHION_MNIST_CLASSES", "ImageData",
           "NO_DATA_ENV", "NUM_CLASSES", "REGISTRY", "StreamedImageData", "TensorImageData",
           "crop_with_offsets", "data_switched_off", "default_cache_dir", "default_data_root",
           "hflip_where", "load_data", "pad_crop_flip", "stratified_subset", "num_test",
           "train_size"]
