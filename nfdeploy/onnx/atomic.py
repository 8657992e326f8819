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
    the mode a plain ``open`` would give: 0666 less the umask, not mkstemp's 0600).

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
        os.chmod(tmp, _default_mode() if mode is None else mode)
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


def _default_mode() -> int:
    """0666 less the process umask, read without changing it where /proc allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _why_unwritable(path: Path, exc: OSError) -> str:
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    return exc.strerror or str(exc)


def save_model_atomic(model: onnx.ModelProto, path: str | os.PathLike[str]) -> Path:
    return write_bytes_atomic(path, model.SerializeToString())
