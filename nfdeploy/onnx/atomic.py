"""Atomic writes: a temp file in the same folder, then a rename over the target."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx

from nfdeploy.errors import NfdeployError


def write_bytes_atomic(
    path: str | os.PathLike[str], data: bytes, *, mode: int | None = None
) -> Path:
    """Write to a temp file in the same folder, then rename over ``path`` (with ``mode``, or
    mkstemp's 0600).

    Any OS error (no permission, full disk, a parent that is a file) becomes an
    :class:`NfdeployError` naming ``path``, never the hidden temp file.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        if mode is not None:
            os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise NfdeployError(f"{path}: cannot write it ({_why_unwritable(path, exc)}).") from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _why_unwritable(path: Path, exc: OSError) -> str:
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    return exc.strerror or str(exc)


def save_model_atomic(model: onnx.ModelProto, path: str | os.PathLike[str]) -> Path:
    return write_bytes_atomic(path, model.SerializeToString())
