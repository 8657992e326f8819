"""``load_dataset``: one entry point for every data-set spec string."""

from __future__ import annotations

from pathlib import Path

from nfdeploy.data.cifar import is_cifar, load_cifar
from nfdeploy.data.dataset import Dataset
from nfdeploy.data.idx import is_idx, load_idx
from nfdeploy.data.imagefolder import is_imagefolder, load_imagefolder
from nfdeploy.data.npz import load_npz
from nfdeploy.data.synthetic import SYNTHETIC_DEFAULT_TRAIN, load_synthetic
from nfdeploy.errors import NfdeployError

__all__ = ["FORMATS", "detect_format", "load_dataset"]

FORMATS = ("imagefolder", "cifar", "idx", "npz", "synthetic")
_HELP = (
    "give an image folder (root/<class>/*.png, optionally under train/ and test/), a CIFAR "
    "python folder, an MNIST IDX folder, an .npz with x and y, or 'synthetic[:N]'"
)


def _parse_synthetic(rest: str, spec: str) -> tuple[int, int]:
    """'' | 'N' | 'N:SEED' -> (n_train, generator seed)."""
    if not rest:
        return SYNTHETIC_DEFAULT_TRAIN, 0
    parts = rest.split(":")
    try:
        if len(parts) > 2:
            raise ValueError
        n = int(parts[0].replace("_", "")) if parts[0] else SYNTHETIC_DEFAULT_TRAIN
        seed = int(parts[1]) if len(parts) == 2 else 0
    except ValueError:
        raise NfdeployError(
            f"data set '{spec}': expected synthetic, synthetic:N or synthetic:N:SEED with integers"
        ) from None
    if n < 1:
        raise NfdeployError(f"data set '{spec}': N must be >= 1")
    return n, seed


def detect_format(path: Path) -> str:
    """Which loader a path needs: 'npz', 'cifar', 'idx' or 'imagefolder'."""
    if not path.exists():
        raise NfdeployError(f"data set '{path}': no such file or folder; {_HELP}")
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return "npz"
        raise NfdeployError(f"data set '{path}': a file but not an .npz; {_HELP}")
    if is_cifar(path):
        return "cifar"
    if is_idx(path):
        return "idx"
    if is_imagefolder(path):
        return "imagefolder"
    raise NfdeployError(f"data set '{path}': unknown layout (no images found); {_HELP}")


def load_dataset(
    spec: str,
    *,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> Dataset:
    """Load a data set from a spec string; ``limit`` takes a seeded stratified subset.

    Specs: a path (format auto-detected), or ``imagefolder:``/``cifar:``/``idx:``/``npz:``
    followed by a path, or ``synthetic`` / ``synthetic:N`` / ``synthetic:N:SEED``.
    ``cache_dir`` holds decoded image folders (default ``$NFDEPLOY_CACHE/data`` or
    ``~/.cache/nfdeploy/data``).
    """
    if not isinstance(spec, (str, Path)) or not str(spec).strip():
        raise NfdeployError(f"empty data set spec; {_HELP}")
    if limit is not None and limit < 1:
        raise NfdeployError(f"limit must be >= 1, got {limit}")
    text = str(spec).strip()
    fmt: str | None = None
    head, sep, rest = text.partition(":")
    if head.lower() == "synthetic":  # built-in; write ./synthetic for a folder of that name
        n_train, gen_seed = _parse_synthetic(rest, text)
        ds = load_synthetic(split, n_train, gen_seed)
    else:
        if sep and head.lower() in FORMATS and len(head) > 1:
            fmt, text = head.lower(), rest
        path = Path(text).expanduser()
        if fmt is None:
            fmt = detect_format(path)
        elif not path.exists():
            raise NfdeployError(f"data set '{spec}': {path} does not exist; {_HELP}")
        if fmt == "imagefolder":
            ds = load_imagefolder(path, split=split, cache_dir=cache_dir, progress=progress)
        elif fmt == "cifar":
            ds = load_cifar(path, split=split)
        elif fmt == "idx":
            ds = load_idx(path, split=split)
        else:
            ds = load_npz(path, split=split)
    if len(ds) == 0:
        raise NfdeployError(f"data set '{spec}' ({split} split): it holds no images.")
    if limit is not None and limit < len(ds):
        ds = ds.subset(limit, seed=seed)
    return ds
