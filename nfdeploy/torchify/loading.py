"""Read a vendor ONNX file safely and turn it into a parity-checked :class:`VendorModule`."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from nfdeploy.errors import NfdeployError
from nfdeploy.torchify import parity
from nfdeploy.torchify.convert import build_plan
from nfdeploy.torchify.graph import first_line
from nfdeploy.torchify.module import VendorModule


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (streamed)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise NfdeployError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for sub in attr.graphs:
                yield from _graph_tensors(sub)


def _model_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors


def check_external_data(model: onnx.ModelProto, folder: Path) -> list[Path]:
    """The external data files ``model`` reads; refuses any outside ``folder`` or missing."""
    base = folder.resolve()
    files: list[Path] = []
    for tensor in _model_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        if not location:
            raise NfdeployError(f"tensor '{tensor.name}' uses external data without a location.")
        if Path(location).is_absolute() or Path(location).drive:
            raise NfdeployError(
                f"tensor '{tensor.name}' points to external data at an absolute path "
                f"('{location}'); refusing. Keep external data files next to the model."
            )
        target = (base / location).resolve()
        if target != base and base not in target.parents:
            raise NfdeployError(
                f"tensor '{tensor.name}' points to external data outside the model's folder "
                f"('{location}'); refusing. Keep external data files next to the model."
            )
        if not target.is_file():
            raise NfdeployError(
                f"tensor '{tensor.name}' needs external data file '{location}', which is missing "
                f"from {base}."
            )
        files.append(target)
    return files


def read_onnx(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load an ONNX model with its external data, refusing data outside its folder."""
    p = Path(path)
    if not p.exists():
        raise NfdeployError(f"vendor model not found: {p}")
    if not p.is_file():
        raise NfdeployError(f"vendor model path is not a file: {p}")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise NfdeployError(
            f"{p} is not an ONNX model (protobuf parse failed: {first_line(exc)})."
        ) from exc
    except OSError as exc:
        raise NfdeployError(f"cannot read {p}: {exc.strerror or exc}") from exc
    if model.ir_version <= 0 or not len(model.graph.node) or not len(model.graph.output):
        raise NfdeployError(f"{p} is not an ONNX model (no IR version, nodes or outputs).")
    if check_external_data(model, p.parent):
        try:
            external_data_helper.load_external_data_for_model(model, str(p.parent))
        except Exception as exc:
            raise NfdeployError(f"cannot read the external data of {p}: {first_line(exc)}") from exc
    return model


def load_vendor(
    path: str | os.PathLike[str],
    *,
    check_parity: bool = True,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    seed: int = 0,
    qdq_atol: float | None = None,
    parity_input_shape: Sequence[int] | None = None,
) -> VendorModule:
    """Convert the ONNX classifier at ``path`` into a frozen :class:`VendorModule` on the CPU.

    With ``check_parity`` the module is compared with onnxruntime (CPUExecutionProvider) on
    seeded random inputs; a mismatch raises :class:`NfdeployError` with the max abs diff.
    The report lands in ``module.parity``. QDQ (int8) models are compared with an
    unoptimized session (QDQ nodes run literally) within ``qdq_atol`` (default: 2% of the
    reference logits' range, at least ``atol``); the gap to onnxruntime's fused integer
    kernels is recorded, not enforced; see :func:`nfdeploy.torchify.parity.check_parity`.
    ``parity_input_shape`` gives a concrete input shape when the model has symbolic
    dimensions other than the batch.
    """
    p = Path(path)
    model = read_onnx(p)
    module = VendorModule(build_plan(model, source=str(p)))
    module.source_path = p
    module.sha256 = file_sha256(p)
    del model
    if check_parity:
        module.parity = parity.check_parity(
            module,
            p,
            atol=atol,
            rtol=rtol,
            seed=seed,
            qdq_atol=qdq_atol,
            input_shape=parity_input_shape,
        )
    return module
