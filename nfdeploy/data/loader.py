"""``load_dataset``: one entry point for every data-set spec string."""

from __future__ import annotations

from pathlib import Path

from nfdeploy.data.dataset import Dataset
from nfdeploy.data.readers import BY_NAME, READERS, DataReader, LoadRequest
from nfdeploy.data.synthetic import SYNTHETIC_DEFAULT_TRAIN, load_synthetic
from nfdeploy.errors import NfdeployError

__all__ = ["FORMATS", "detect_format", "load_dataset"]

FORMATS = (*BY_NAME, "synthetic")
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
    """Which reader a path needs: the name of the first in :data:`READERS` that accepts it."""
    return _detect(path).name


def _detect(path: Path) -> DataReader:
    if not path.exists():
        raise NfdeployError(f"data set '{path}': no such file or folder; {_HELP}")
    reader = next((r for r in READERS if r.detect(path)), None)
    if reader is not None:
        return reader
    if path.is_file():
        raise NfdeployError(f"data set '{path}': a file but not an .npz; {_HELP}")
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
    head, _, rest = text.partition(":")
    if head.lower() == "synthetic":  # built-in; write ./synthetic for a folder of that name
        n_train, gen_seed = _parse_synthetic(rest, text)
        ds = load_synthetic(split, n_train, gen_seed)
    else:
        reader, path = _reader_for(text)
        ds = reader.load(path, LoadRequest(split=split, cache_dir=cache_dir, progress=progress))
    if len(ds) == 0:
        raise NfdeployError(f"data set '{spec}' ({split} split): it holds no images.")
    if limit is not None and limit < len(ds):
        ds = ds.subset(limit, seed=seed)
    return ds


def _reader_for(text: str) -> tuple[DataReader, Path]:
    """'npz:x.npz' names its reader; a plain path is detected."""
    head, sep, rest = text.partition(":")
    named = BY_NAME.get(head.lower()) if sep and len(head) > 1 else None
    path = Path(rest if named else text).expanduser()
    if named is None:
        return _detect(path), path
    if not path.exists():
        raise NfdeployError(f"data set '{text}': {path} does not exist; {_HELP}")
    return named, path
