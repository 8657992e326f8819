"""Safe loading: one read per file gives the parsed model and its SHA-256; external data
must lie inside the model's folder."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import external_data_helper

from nfdeploy.errors import NfdeployError


@dataclass(frozen=True)
class ModelFile:
    """An ONNX file read once: where it is, what it holds, and the hash of its bytes."""

    path: Path
    proto: onnx.ModelProto
    sha256: str


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (streamed)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise NfdeployError(f"{path}: cannot read it ({exc.strerror or exc}).") from None
    return digest.hexdigest()


def open_model(path: str | os.PathLike[str]) -> ModelFile:
    """Read, hash and parse an ONNX file, with its external data checked and loaded."""
    path = Path(path)
    data = _read(path)
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # onnx raises DecodeError and others for garbage
        raise NfdeployError(f"{path}: not a readable ONNX model ({_first_line(exc)}).") from None
    if not model.graph.node or not model.graph.output:
        raise NfdeployError(f"{path}: the ONNX graph has no nodes or outputs; is it a model file?")
    if check_external_data(model, path.parent):
        try:
            external_data_helper.load_external_data_for_model(model, str(path.parent))
        except Exception as exc:  # OSError, or onnx's ValidationError for a bad location
            raise NfdeployError(
                f"{path}: cannot read its external data ({_first_line(exc)})."
            ) from None
    return ModelFile(path, model, hashlib.sha256(data).hexdigest())


def load_model_checked(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """:func:`open_model` when only the model is needed."""
    return open_model(path).proto


def _read(path: Path) -> bytes:
    if not path.exists():
        raise NfdeployError(f"{path}: no such ONNX file. Check the path.")
    if not path.is_file():
        raise NfdeployError(f"{path}: not a file; give the .onnx file itself.")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise NfdeployError(f"{path}: cannot read it ({exc.strerror or exc}).") from None


def check_external_data(model: onnx.ModelProto, folder: Path) -> list[Path]:
    """The external data files ``model`` reads; refuses any outside ``folder`` or missing."""
    base = folder.resolve()
    files: list[Path] = []
    for tensor in model_tensors(model):
        if external_data_helper.uses_external_data(tensor):
            files.append(_external_file(tensor, base))
    return files


def _external_file(tensor: onnx.TensorProto, base: Path) -> Path:
    location = {entry.key: entry.value for entry in tensor.external_data}.get("location", "")
    if not location:
        raise NfdeployError(f"tensor '{tensor.name}' uses external data without a location.")
    if Path(location).is_absolute() or Path(location).drive:
        raise NfdeployError(
            f"tensor '{tensor.name}': its external data is at an absolute path ('{location}'), "
            f"which leaves the model folder {base}; refusing. Keep the data beside the model."
        )
    target = (base / location).resolve()
    if base not in target.parents:
        raise NfdeployError(
            f"tensor '{tensor.name}': external data path '{location}' leaves the model folder "
            f"{base}; refusing to read it. Re-save the model with its data beside it."
        )
    if not target.is_file():
        raise NfdeployError(
            f"tensor '{tensor.name}' needs the external data file '{location}', which is "
            f"missing from {base}; copy it beside the model."
        )
    return target


def model_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a model holds: initializers, sparse ones, attributes, subgraphs, functions."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _attribute_tensors(node)


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _attribute_tensors(node)


def _attribute_tensors(node: onnx.NodeProto) -> Iterator[onnx.TensorProto]:
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("g"):
            yield from _graph_tensors(attr.g)
        for sub in attr.graphs:
            yield from _graph_tensors(sub)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
