"""Load and save ONNX files safely: external data stays inside the model folder, writes are atomic."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx
from onnx import external_data_helper

from nfdeploy.errors import NfdeployError


def _check_external_paths(model: onnx.ModelProto, base_dir: Path) -> None:
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
    _check_external_paths(model, path.parent)
    try:
        external_data_helper.load_external_data_for_model(model, str(path.parent))
    except OSError as exc:
        raise NfdeployError(f"{path}: cannot read its external data ({exc}).") from None
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
    """Write to a temp file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_model_atomic(model: onnx.ModelProto, path: str | os.PathLike[str]) -> Path:
    return write_bytes_atomic(path, model.SerializeToString())
