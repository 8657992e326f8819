"""``.npz`` data sets: ``x`` (N,H,W[,C]) uint8, or float in [0,1], and integer ``y``.

Also accepted: split keys ``x_train``/``y_train``/``x_test``/``y_test`` (Keras style),
channels-first ``x`` (N,C,H,W) when unambiguous, one-hot ``y`` (N,K), and an optional
``class_names`` array.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from nfdeploy.data.dataset import Dataset
from nfdeploy.errors import NfdeployError

__all__ = ["load_npz"]


def _to_uint8(x: np.ndarray, path: Path) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        if x.size and not np.isfinite(x).all():
            raise NfdeployError(f"{path}: 'x' holds NaN or infinite values")
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 1.0)
        if lo < 0.0 or hi > 1.0:
            raise NfdeployError(
                f"{path}: float 'x' must be in [0, 1] (found {lo:g}..{hi:g}); "
                "store uint8 0..255 pixels or floats scaled to [0, 1]"
            )
        return np.rint(x * 255.0).astype(np.uint8)
    if np.issubdtype(x.dtype, np.integer):
        lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
        if lo < 0 or hi > 255:
            raise NfdeployError(f"{path}: integer 'x' must be in 0..255 (found {lo}..{hi})")
        return x.astype(np.uint8)
    raise NfdeployError(f"{path}: 'x' has unsupported dtype {x.dtype}; use uint8 or float")


def _to_nhwc(x: np.ndarray, path: Path) -> np.ndarray:
    if x.ndim == 3:
        return x[..., None]
    if x.ndim == 4:
        if x.shape[-1] in (1, 3):
            return x
        if x.shape[1] in (1, 3):
            return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    raise NfdeployError(
        f"{path}: 'x' must be (N,H,W) or (N,H,W,C) with C in {{1,3}}, got shape {x.shape}"
    )


def load_npz(path: Path, *, split: str = "test") -> Dataset:
    path = Path(path).expanduser()
    if not path.is_file():
        raise NfdeployError(f"{path}: no such .npz file")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if f"x_{split}" in keys and f"y_{split}" in keys:
                xk, yk = f"x_{split}", f"y_{split}"
            elif "x" in keys and "y" in keys:
                if split not in ("train", "test"):
                    raise NfdeployError(
                        f"{path}: no split '{split}' (no 'x_{split}'/'y_{split}'); this file has "
                        "one set 'x'/'y', used for --split train or test"
                    )
                xk, yk = "x", "y"
            else:
                raise NfdeployError(
                    f"{path}: needs arrays 'x' and 'y' (or 'x_{split}'/'y_{split}'); "
                    f"found: {', '.join(sorted(keys)) or 'none'}"
                )
            x, y = z[xk], z[yk]
            names_arr = z["class_names"] if "class_names" in keys else None
    except NfdeployError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise NfdeployError(f"{path}: not a readable .npz ({exc})") from None
    images = _to_nhwc(_to_uint8(x, path), path)
    if y.ndim == 2 and y.shape[0] == len(images) and y.shape[1] > 1:
        y = y.argmax(axis=1)  # one-hot
    y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
    if y.ndim != 1:
        raise NfdeployError(f"{path}: '{yk}' must be (N,) labels, got shape {y.shape}")
    if len(y) != len(images):
        raise NfdeployError(
            f"{path}: '{xk}' has {len(images)} images but '{yk}' has {len(y)} labels"
        )
    if np.issubdtype(y.dtype, np.floating):
        if not np.array_equal(y, np.round(y)):
            raise NfdeployError(f"{path}: '{yk}' must hold integer class indices")
    elif not np.issubdtype(y.dtype, np.integer):
        raise NfdeployError(f"{path}: '{yk}' has unsupported dtype {y.dtype}")
    labels = y.astype(np.int64)
    if len(labels) and labels.min() < 0:
        raise NfdeployError(f"{path}: '{yk}' holds negative labels")
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    if names_arr is not None:
        names = [str(s) for s in np.asarray(names_arr).reshape(-1)]
        if len(names) < n_classes:
            raise NfdeployError(
                f"{path}: 'class_names' has {len(names)} names but labels go up to {n_classes - 1}"
            )
    else:
        names = [str(i) for i in range(n_classes)]
    return Dataset(images, labels, names, f"npz {path.resolve()} ({xk})")
