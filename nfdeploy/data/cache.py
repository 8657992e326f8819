"""On-disk cache of decoded image folders: one uncompressed ``.npz`` (uint8) per folder+split.

The key is the absolute folder path, the split, and a fingerprint of every image file's
relative path, size and mtime, so editing, adding or removing an image invalidates it.
Files are written to a temporary name and moved into place (``write_bytes_atomic``), so a
crashed or concurrent writer never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from nfdeploy.errors import NfdeployError
from nfdeploy.onnx.atomic import write_bytes_atomic

__all__ = ["CACHE_ENV", "default_cache_dir", "fingerprint", "read_cache", "write_cache"]

CACHE_ENV = "NFDEPLOY_CACHE"
_FORMAT_VERSION = 1


def default_cache_dir() -> Path | None:
    """``$NFDEPLOY_CACHE/data`` if set (``off``/``0``/``none`` disables), else
    ``~/.cache/nfdeploy/data``."""
    env = os.environ.get(CACHE_ENV)
    if env is not None and env.strip():
        if env.strip().lower() in ("off", "0", "none", "false", "no"):
            return None
        return Path(env).expanduser() / "data"
    return Path.home() / ".cache" / "nfdeploy" / "data"


def fingerprint(entries: list[tuple[str, int, int]], root: Path) -> str:
    """Hash of (path relative to ``root``, size, mtime_ns) for each entry, in order."""
    h = hashlib.sha256()
    base = os.path.join(os.fspath(root), "")
    for path, size, mtime_ns in entries:
        rel = path[len(base) :] if path.startswith(base) else os.path.relpath(path, base)
        rel = rel.replace(os.sep, "/")
        h.update(f"{rel}\0{size}\0{mtime_ns}\n".encode())
    return h.hexdigest()


def cache_path(cache_dir: Path, root: Path, split: str, fp: str) -> Path:
    key = hashlib.sha256(
        f"v{_FORMAT_VERSION}\0{root.resolve()}\0{split}\0{fp}".encode()
    ).hexdigest()[:24]
    resolved = root.resolve()
    name = resolved.name if resolved.name != split else resolved.parent.name
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "root"
    return cache_dir / f"imagefolder-{name}-{split}-{key}.npz"


def read_cache(path: Path) -> tuple[np.ndarray, np.ndarray, list[str], str] | None:
    """(images, labels, class_names, note) from a cache entry, or None if absent/unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            images = z["images"]
            labels = z["labels"]
            names = [str(s) for s in z["class_names"]]
            note = str(z["note"]) if "note" in z.files else ""
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return None  # corrupt or foreign file: decode again and overwrite
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels):
        return None
    return images, labels.astype(np.int64, copy=False), names, note


def write_cache(
    path: Path, images: np.ndarray, labels: np.ndarray, class_names: list[str], note: str = ""
) -> bool:
    """Atomically write a cache entry; returns False (and leaves nothing) if it can't."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        images=images,
        labels=labels.astype(np.int64),
        class_names=np.array(class_names, dtype=np.str_),
        note=np.array(note, dtype=np.str_),
    )
    try:  # 0644: a shared cache folder needs readable files
        write_bytes_atomic(path, buffer.getvalue(), mode=0o644)
    except NfdeployError:
        return False
    return True
