"""CIFAR-10 / CIFAR-100 "python version" batch files.

CIFAR-10: ``data_batch_1..5``, ``test_batch``, ``batches.meta``.
CIFAR-100: ``train``, ``test``, ``meta`` (fine labels).

The files are pickles. They are read with an unpickler that only admits the few numpy
globals such a batch can hold, so a hostile file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from nfdeploy.data.dataset import Dataset
from nfdeploy.data.imagefolder import CIFAR10_CLASSES
from nfdeploy.errors import NfdeployError

__all__ = ["find_cifar_root", "is_cifar", "load_cifar"]

_SUBDIRS = ("cifar-10-batches-py", "cifar-100-python")
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR batch")


def _kind(path: Path) -> str | None:
    if (path / "batches.meta").is_file() or (path / "test_batch").is_file():
        return "cifar10"
    if (path / "meta").is_file() and ((path / "train").is_file() or (path / "test").is_file()):
        return "cifar100"
    return None


def find_cifar_root(path: Path) -> Path | None:
    """The folder holding the batches: ``path`` or its standard subfolder, or None."""
    if _kind(path):
        return path
    for sub in _SUBDIRS:
        if _kind(path / sub):
            return path / sub
    return None


def is_cifar(path: Path) -> bool:
    return path.is_dir() and find_cifar_root(path) is not None


def _unpickle(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise NfdeployError(f"{path}: missing CIFAR batch file; re-extract the CIFAR archive")
    try:
        with path.open("rb") as f:
            obj = _SafeUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise NfdeployError(
            f"{path}: not a readable CIFAR python batch ({exc}); re-extract the CIFAR archive"
        ) from None
    if not isinstance(obj, dict):
        raise NfdeployError(
            f"{path}: not a CIFAR batch (expected a dict, got {type(obj).__name__})"
        )
    # Python-2 pickles loaded with latin1 give str keys; Python-3 bytes keys are decoded.
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _names(meta: dict[str, Any], key: str, path: Path) -> list[str]:
    if key not in meta:
        raise NfdeployError(f"{path}: CIFAR meta file lacks '{key}'")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in meta[key]]


def _batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    if "data" not in d or label_key not in d:
        raise NfdeployError(
            f"{path}: CIFAR batch lacks 'data' or '{label_key}' (has: {', '.join(sorted(d))})"
        )
    data = np.asarray(d["data"])
    labels = np.asarray(d[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise NfdeployError(
            f"{path}: CIFAR 'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}"
        )
    if len(data) != len(labels):
        raise NfdeployError(f"{path}: {len(data)} images but {len(labels)} labels")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def load_cifar(path: Path, *, split: str = "test") -> Dataset:
    path = Path(path).expanduser()
    root = find_cifar_root(path) if path.is_dir() else None
    if root is None:
        raise NfdeployError(
            f"{path}: not a CIFAR python folder (needs data_batch_1..5/test_batch/batches.meta "
            "or train/test/meta)"
        )
    if split not in ("train", "test"):
        raise NfdeployError(f"CIFAR has splits 'train' and 'test', not '{split}'")
    if _kind(root) == "cifar10":
        meta_path = root / "batches.meta"
        names = (
            _names(_unpickle(meta_path), "label_names", meta_path)
            if meta_path.is_file()
            else list(CIFAR10_CLASSES)
        )
        if split == "test":
            batch_files = [root / "test_batch"]
        else:
            batch_files = sorted(root.glob("data_batch_*"), key=lambda p: p.name)
            if not batch_files:
                raise NfdeployError(f"{root}: no data_batch_* files for the train split")
        parts = [_batch(f, "labels") for f in batch_files]
        kind = "cifar10"
    else:
        meta_path = root / "meta"
        names = _names(_unpickle(meta_path), "fine_label_names", meta_path)
        parts = [_batch(root / split, "fine_labels")]
        kind = "cifar100"
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return Dataset(images, labels, names, f"{kind} {root.resolve()} ({split})")
