"""Image-folder data sets: ``root/<class>/*.png|jpg|...`` or ``root/{train,test}/<class>/...``.

Class order is the sorted folder names, except that the exact CIFAR-10 class set keeps the
canonical CIFAR-10 label order (which sorted order happens to equal). Decoded folders are
cached as ``.npz`` (see ``nfdeploy.data.cache``), so the second load does not decode.
"""

from __future__ import annotations

import os
import stat
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from nfdeploy.data.cache import cache_path, default_cache_dir, fingerprint, read_cache, write_cache
from nfdeploy.data.dataset import Dataset
from nfdeploy.errors import NfdeployError

__all__ = [
    "CIFAR10_CLASSES",
    "IMAGE_EXTENSIONS",
    "find_imagefolder_root",
    "is_imagefolder",
    "load_imagefolder",
]

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".gif", ".tif", ".tiff", ".webp"}
)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
SPLIT_DIRS = ("train", "test", "val")
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "La"})


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan_images(class_dir: Path) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every image under ``class_dir`` (recursive, hidden entries
    skipped), sorted by path. os.scandir: one stat per file, no pathlib overhead."""
    found: list[tuple[str, int, int]] = []
    stack = [os.fspath(class_dir)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    stack.append(entry.path)
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                    try:
                        st = entry.stat()
                    except OSError:
                        continue  # vanished or a broken link
                    if stat.S_ISREG(st.st_mode):
                        found.append((entry.path, st.st_size, st.st_mtime_ns))
    found.sort()
    return found


def _any_image(class_dir: Path) -> bool:
    stack = [os.fspath(class_dir)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    stack.append(entry.path)
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                    return True
    return False


def _has_class_dirs(path: Path) -> bool:
    """True if some subfolder holds image files."""
    if not path.is_dir():
        return False
    return any(_any_image(d) for d in _subdirs(path))


def is_imagefolder(path: Path) -> bool:
    """Whether ``path`` looks like an image-folder tree (flat or with split folders)."""
    if not path.is_dir():
        return False
    if any(_has_class_dirs(path / s) for s in SPLIT_DIRS):
        return True
    return _has_class_dirs(path)


def find_imagefolder_root(path: Path, split: str) -> tuple[Path, list[str]]:
    """(folder holding the class folders for ``split``, class names in label order)."""
    split_dirs = [path / s for s in SPLIT_DIRS if _has_class_dirs(path / s)]
    if split_dirs:
        chosen = path / split
        if chosen not in split_dirs:
            found = ", ".join(d.name for d in split_dirs)
            raise NfdeployError(
                f"{path}: no '{split}' split folder with class subfolders (found: {found}); "
                f"pick one of those splits"
            )
        # Union over sibling splits so a class missing from one split keeps its label.
        names = sorted({d.name for s in split_dirs for d in _subdirs(s)})
        return chosen, canonical_class_order(names)
    if _has_class_dirs(path):
        return path, canonical_class_order([d.name for d in _subdirs(path)])
    raise NfdeployError(
        f"{path}: no images found; an image folder needs root/<class>/*.png|jpg|jpeg|bmp "
        "(optionally under train/ and test/)"
    )


def canonical_class_order(names: list[str]) -> list[str]:
    if set(names) == set(CIFAR10_CLASSES) and len(names) == len(CIFAR10_CLASSES):
        return list(CIFAR10_CLASSES)
    return sorted(names)


def _decode_image(path: str | Path) -> np.ndarray:
    """One image file -> uint8 (H,W) gray or (H,W,3) RGB. Raises NfdeployError if corrupt."""
    try:
        with Image.open(path) as img:
            img.load()
            mode = "L" if img.mode in _GRAY_MODES else "RGB"
            arr = np.asarray(img if img.mode == mode else img.convert(mode))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise NfdeployError(
            f"{path}: cannot decode image ({exc.__class__.__name__}: {exc}); "
            "remove or replace the file"
        ) from None
    return arr


def _stack(arrays: list[np.ndarray]) -> tuple[np.ndarray, str]:
    """Stack decoded images into (N,H,W,C); mixed gray/RGB -> RGB, mixed sizes -> the most
    common size (PIL bilinear). Returns the array and a note for the source string."""
    channels = 3 if any(a.ndim == 3 for a in arrays) else 1
    sizes = Counter(a.shape[:2] for a in arrays)
    (h, w), _ = sizes.most_common(1)[0]
    out = np.empty((len(arrays), h, w, channels), dtype=np.uint8)
    resized = 0
    for i, a in enumerate(arrays):
        if a.shape[:2] != (h, w):
            a = np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BILINEAR))
            resized += 1
        if a.ndim == 2:
            a = a[:, :, None]
        out[i] = a if a.shape[-1] == channels else np.repeat(a, channels, axis=-1)
    note = f", {resized} resized to {h}x{w}" if resized else ""
    return out, note


def load_imagefolder(
    path: Path,
    *,
    split: str = "test",
    cache_dir: Path | None = None,
    progress: bool = True,
) -> Dataset:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise NfdeployError(f"{path}: not a directory; give a folder of class subfolders")
    folder, class_names = find_imagefolder_root(path, split)
    index = {name: i for i, name in enumerate(class_names)}
    entries: list[tuple[str, int, int]] = []
    labels_list: list[int] = []
    for d in _subdirs(folder):
        found = _scan_images(d)
        entries.extend(found)
        labels_list.extend([index[d.name]] * len(found))
    if not entries:
        raise NfdeployError(f"{folder}: the class folders hold no images (.png/.jpg/.jpeg/.bmp)")
    labels = np.asarray(labels_list, dtype=np.int64)
    split_name = folder.name if folder != path else "all"
    source = f"imagefolder {folder.resolve()}"

    cdir = cache_dir if cache_dir is not None else default_cache_dir()
    entry = None
    if cdir is not None:
        fp = fingerprint(entries, folder) + "|" + "/".join(class_names)
        entry = cache_path(Path(cdir).expanduser(), folder, split_name, fp)
        cached = read_cache(entry)
        if cached is not None and np.array_equal(cached[1], labels):
            images, _, _, note = cached
            return Dataset(images, labels, class_names, source + note)

    from tqdm import tqdm

    show = progress and sys.stderr.isatty()
    arrays = [
        _decode_image(f)
        for f in tqdm(
            [e[0] for e in entries],
            desc=f"decoding {folder.name}",
            unit="img",
            file=sys.stderr,
            disable=not show,
            leave=False,
        )
    ]
    images, note = _stack(arrays)
    if entry is not None:
        write_cache(entry, images, labels, class_names, note)
    return Dataset(images, labels, class_names, source + note)
