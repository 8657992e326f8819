"""Load and save ONNX files safely: external data stays inside the model folder, writes are atomic."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx
from onnx import external_data_helper

from nfdeploy.errors import NfdeployError


def _check_external_paths(model: onnx.ModelProto, base_dir: Path, name: str = "") -> None:
    base = base_dir.resolve()
    for tensor in external_data_helper._get_all_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        target = (base / location).resolve()
        if Path(location).is_absolute() or base not in target.parents:
            raise NfdeployError(
                f"{tensor.name}: external data path {location!r} leaves the model folder {base}; "
                "refusing to read it. Re-save the model with its data beside it."
            )
        if not target.is_file():
            raise NfdeployError(
                f"{name or base}: tensor {tensor.name} needs the external data file "
                f"{location!r}, which is missing from {base}; copy it beside the model."
            )


def load_model_checked(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load an ONNX model, refusing external-data paths outside its folder."""
    path = Path(path)
    if not path.is_file():
        raise NfdeployError(f"{path}: no such ONNX file. Check the path.")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for garbage
        raise NfdeployError(f"{path}: not a readable ONNX model ({type(exc).__name__}).") from None
    if not model.graph.node:
        raise NfdeployError(f"{path}: the ONNX graph has no nodes; is this a model file?")
    _check_external_paths(model, path.parent, str(path))
    try:
        external_data_helper.load_external_data_for_model(model, str(path.parent))
    except Exception as exc:  # OSError, or onnx's ValidationError for a bad location
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NfdeployError(f"{path}: cannot read its external data ({reason}).") from None
    return model


def metadata_dict(model: onnx.ModelProto) -> dict[str, str]:
    return {prop.key: prop.value for prop in model.metadata_props}


def merge_metadata(model: onnx.ModelProto, props: dict[str, str]) -> None:
    """Merge provenance into ``metadata_props`` (existing keys are updated, others kept)."""
    merged = metadata_dict(model)
    merged.update({key: str(value) for key, value in props.items()})
    del model.metadata_props[:]
    for key in sorted(merged):
        model.metadata_props.add(key=key, value=merged[key])


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write to a temp file in the same folder, then rename over ``path``.

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
