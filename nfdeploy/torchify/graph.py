"""Reading an ONNX graph: attributes, constants, node order, and numpy <-> torch copies."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from nfdeploy.errors import NfdeployError
from nfdeploy.onnx.graph import opset_version

FLOAT_KINDS = "f"
DOMAINS = ("", "ai.onnx")


def first_line(exc: BaseException) -> str:
    """``exc``'s message on one line (error messages here are single-line by contract)."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def to_torch(array: np.ndarray) -> torch.Tensor:
    """A writable, contiguous torch copy of ``array`` (bfloat16 arrays go through float32)."""
    arr = np.asarray(array)
    if arr.dtype.kind == "V" or arr.dtype.name == "bfloat16":
        return torch.from_numpy(arr.astype(np.float32)).to(torch.bfloat16)
    if arr.dtype == np.uint16:
        return torch.from_numpy(arr.astype(np.int32))
    if arr.dtype == np.uint32:
        return torch.from_numpy(arr.astype(np.int64))
    return torch.from_numpy(np.array(arr, copy=True, order="C"))


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy().copy()


def is_float(array: np.ndarray) -> bool:
    return np.asarray(array).dtype.kind == FLOAT_KINDS or np.asarray(array).dtype.name == "bfloat16"


def default_opset(model: onnx.ModelProto) -> int:
    version = opset_version(model)
    if version:
        return version
    if model.ir_version and model.ir_version < 3:
        return 1
    raise NfdeployError("the model declares no opset for the default ONNX domain; re-export it.")


def node_attrs(node: onnx.NodeProto, label: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in node.attribute:
        if attr.ref_attr_name:
            raise NfdeployError(
                f"{node.op_type} node '{label}': attribute references are not supported."
            )
        if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            raise NfdeployError(
                f"{node.op_type} node '{label}': control flow (subgraphs) is not supported; "
                "export the classifier without data-dependent branches."
            )
        value = onnx.helper.get_attribute_value(attr)
        if attr.type == onnx.AttributeProto.STRING:
            value = value.decode("utf-8")
        elif attr.type == onnx.AttributeProto.TENSOR:
            value = numpy_helper.to_array(value)
        elif attr.type == onnx.AttributeProto.STRINGS:
            value = [v.decode("utf-8") for v in value]
        elif attr.type in (onnx.AttributeProto.INTS, onnx.AttributeProto.FLOATS):
            value = list(value)
        out[attr.name] = value
    return out


def constant_value(node: onnx.NodeProto, attrs: dict[str, Any], label: str) -> np.ndarray:
    if "value" in attrs:
        return np.asarray(attrs["value"])
    if "value_float" in attrs:
        return np.asarray(attrs["value_float"], dtype=np.float32)
    if "value_floats" in attrs:
        return np.asarray(attrs["value_floats"], dtype=np.float32)
    if "value_int" in attrs:
        return np.asarray(attrs["value_int"], dtype=np.int64)
    if "value_ints" in attrs:
        return np.asarray(attrs["value_ints"], dtype=np.int64)
    raise NfdeployError(f"Constant node '{label}': only tensor/float/int values are supported.")


def topological(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    """``nodes`` in an order where every input is produced first (ONNX order when valid)."""
    known = set(available)
    ok = True
    for node in nodes:
        if any(i and i not in known for i in node.input):
            ok = False
            break
        known.update(o for o in node.output if o)
    if ok:
        return nodes
    known = set(available)
    pending = list(nodes)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [n for n in pending if all(not i or i in known for i in n.input)]
        if not ready:
            missing = sorted({i for n in pending for i in n.input if i and i not in known})
            raise NfdeployError(
                f"the graph is not a DAG or uses undefined values ({', '.join(missing[:5])}); "
                "check the export."
            )
        for node in ready:
            ordered.append(node)
            known.update(o for o in node.output if o)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    return ordered


def prune(nodes: list[onnx.NodeProto], output: str) -> list[onnx.NodeProto]:
    needed = {output}
    keep: list[onnx.NodeProto] = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    return keep


def inline_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its model-local functions inlined (exporters write some layers so)."""
    if not len(model.functions):
        return model
    try:
        from onnx import inliner

        return inliner.inline_local_functions(model)
    except Exception as exc:  # pragma: no cover - depends on onnx version
        raise NfdeployError(
            f"could not inline the model's local functions: {first_line(exc)}"
        ) from exc


def read_initializers(graph: onnx.GraphProto) -> tuple[dict[str, np.ndarray], set[str], set[str]]:
    """(every initializer's value, the floating ones' names, the others' names)."""
    if len(graph.sparse_initializer):
        raise NfdeployError("sparse initializers are not supported; densify the model first.")
    known: dict[str, np.ndarray] = {}
    source_float: set[str] = set()
    source_int: set[str] = set()
    for init in graph.initializer:
        try:
            arr = numpy_helper.to_array(init)
        except Exception as exc:
            raise NfdeployError(
                f"initializer '{init.name}' cannot be read: {first_line(exc)}"
            ) from exc
        known[init.name] = arr
        (source_float if is_float(arr) else source_int).add(init.name)
    return known, source_float, source_int


def graph_input(
    graph: onnx.GraphProto, known: dict[str, np.ndarray]
) -> tuple[str, tuple[int | None, ...], np.dtype]:
    """(name, shape with ``None`` for symbolic dims, element type) of the one image input."""
    inputs = [vi for vi in graph.input if vi.name not in known]
    if len(inputs) != 1:
        names = ", ".join(vi.name for vi in inputs) or "none"
        raise NfdeployError(
            f"expected a classifier with exactly one input tensor, found {len(inputs)} ({names})."
        )
    if not graph.output:
        raise NfdeployError("the model declares no graph output.")
    tensor_type = inputs[0].type.tensor_type
    shape = tuple(
        int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in tensor_type.shape.dim
    )
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
    except (KeyError, ValueError, TypeError):  # undeclared or exotic element type
        dtype = np.dtype(np.float32)
    return inputs[0].name, shape, dtype
