"""MNIST / Fashion-MNIST IDX files (raw or ``.gz``).

A folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``; ``.``
instead of the second ``-`` is accepted too), directly or under ``raw/``.
"""

from __future__ import annotations

import gzip
import math
import re
from pathlib import Path

import numpy as np

from nfdeploy.data.dataset import Dataset
from nfdeploy.errors import NfdeployError

__all__ = ["FASHION_MNIST_CLASSES", "find_idx_files", "is_idx", "load_idx", "read_idx"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_PREFIXES = {"train": ("train",), "test": ("t10k", "test")}
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _find(folder: Path, split: str, kind: str, ndim: int) -> Path | None:
    pattern = re.compile(
        rf"^({'|'.join(_PREFIXES[split])})-{kind}[-.]idx{ndim}-ubyte(\.gz)?$", re.IGNORECASE
    )
    matches = sorted(p for p in folder.iterdir() if p.is_file() and pattern.match(p.name))
    # Prefer the uncompressed file when both exist.
    matches.sort(key=lambda p: p.suffix == ".gz")
    return matches[0] if matches else None


def find_idx_files(path: Path, split: str) -> tuple[Path, Path] | None:
    """(images, labels) IDX files for ``split`` under ``path`` or ``path/raw``, or None."""
    for folder in (path, path / "raw"):
        if not folder.is_dir():
            continue
        images = _find(folder, split, "images", 3)
        labels = _find(folder, split, "labels", 1)
        if images and labels:
            return images, labels
    return None


def is_idx(path: Path) -> bool:
    return path.is_dir() and any(find_idx_files(path, s) for s in _PREFIXES)


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (raw or gzip) into an array of its stored dtype and shape."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as exc:
        raise NfdeployError(f"{path}: cannot read IDX file ({exc}); re-download it") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise NfdeployError(f"{path}: not an IDX file (bad magic number); re-download it")
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise NfdeployError(f"{path}: truncated IDX header; re-download it")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    count = math.prod(shape)  # Python ints: np.prod would wrap around in int64
    if len(raw) < header + count * dtype.itemsize:
        raise NfdeployError(
            f"{path}: truncated IDX data (shape {shape} needs "
            f"{header + count * dtype.itemsize} bytes, file has {len(raw)}); re-download it"
        )
    return np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)


def load_idx(path: Path, *, split: str = "test") -> Dataset:
    path = Path(path).expanduser()
    if split not in _PREFIXES:
        raise NfdeployError(f"IDX data sets have splits 'train' and 'test', not '{split}'")
    found = find_idx_files(path, split) if path.is_dir() else None
    if found is None:
        raise NfdeployError(
            f"{path}: no {split} IDX files ({_PREFIXES[split][0]}-images-idx3-ubyte[.gz] and "
            f"{_PREFIXES[split][0]}-labels-idx1-ubyte[.gz])"
        )
    img_path, lbl_path = found
    images = read_idx(img_path)
    labels = read_idx(lbl_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise NfdeployError(
            f"{img_path}: expected uint8 images (N,H,W), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1:
        raise NfdeployError(f"{lbl_path}: expected labels (N,), got shape {labels.shape}")
    if len(images) != len(labels):
        raise NfdeployError(
            f"{img_path}: {len(images)} images but {lbl_path.name} has {len(labels)} labels; "
            "the two files belong to different data sets"
        )
    labels = labels.astype(np.int64)
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    fashion = "fashion" in str(path.resolve()).lower()
    if fashion and n_classes <= len(FASHION_MNIST_CLASSES):
        names = list(FASHION_MNIST_CLASSES)
        kind = "fashion-mnist"
    else:
        names = [str(i) for i in range(max(n_classes, 10))]
        kind = "mnist"
    return Dataset(
        np.array(images[..., None]), labels, names, f"{kind} idx {img_path.resolve()} ({split})"
    )
