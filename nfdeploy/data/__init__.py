"""Data sets and preprocessing (numpy + pillow only: the device-side validate path uses it
without torch).

- ``Preprocess``: uint8 NHWC pixels -> float32 NCHW model input, and its valid range.
- ``Dataset`` / ``load_dataset``: image folders, CIFAR python batches, MNIST IDX, .npz,
  and the built-in ``synthetic`` set; decoded image folders are cached as .npz.
- ``iter_batches``: (float32 NCHW, int64 labels) batches.
"""

from nfdeploy.data.cache import CACHE_ENV, default_cache_dir
from nfdeploy.data.dataset import Dataset, iter_batches
from nfdeploy.data.imagefolder import CIFAR10_CLASSES
from nfdeploy.data.loader import FORMATS, detect_format, load_dataset
from nfdeploy.data.preprocess import PRESETS, Preprocess
from nfdeploy.data.synthetic import (
    SYNTHETIC_CLASSES,
    SYNTHETIC_DEFAULT_TRAIN,
    generate_synthetic,
    load_synthetic,
)

__all__ = [
    "CACHE_ENV",
    "CIFAR10_CLASSES",
    "FORMATS",
    "PRESETS",
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_DEFAULT_TRAIN",
    "Dataset",
    "Preprocess",
    "default_cache_dir",
    "detect_format",
    "generate_synthetic",
    "iter_batches",
    "load_dataset",
    "load_synthetic",
]
