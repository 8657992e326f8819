"""Find fault targets in an ONNX graph and write faulty weights back into it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from nfdeploy.errors import NfdeployError
from nfdeploy.faults.spec import Storage
from nfdeploy.faults.storage import StoredWeight
from nfdeploy.onnx.graph import GraphIndex
from nfdeploy.onnx.weight_ops import FAULTABLE_OPS

QUANT_TYPES = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT32)


@dataclass(frozen=True)
class TensorSelection:
    include_bias: bool = False
    pattern: str | None = None  # regular expression searched in initializer names

    def __post_init__(self) -> None:
        if self.pattern is None:
            return
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise NfdeployError(
                f"--tensors {self.pattern!r}: not a valid regular expression ({exc})."
            ) from None

    def matches(self, name: str) -> bool:
        return self.pattern is None or re.search(self.pattern, name) is not None


@dataclass(frozen=True)
class FaultTarget:
    name: str  # the initializer that holds the stored codes
    op_type: str
    node: str
    role: str  # "weight" or "bias"
    shape: tuple[int, ...]
    dtype: str
    axis: int  # output-channel axis, for per-channel storage
    qdq: bool  # int8 codes feeding DequantizeLinear

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "op": self.op_type,
            "node": self.node,
            "role": self.role,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "qdq": self.qdq,
        }


def constants_to_initializers(model: onnx.ModelProto) -> None:
    """Turn ``Constant`` nodes holding tensors into initializers (same names, same semantics)."""
    keep = []
    for node in model.graph.node:
        tensor_attr = [
            a for a in node.attribute if a.name == "value" and a.type == onnx.AttributeProto.TENSOR
        ]
        if node.op_type == "Constant" and tensor_attr:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(tensor_attr[0].t)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)


def _output_axis(node: onnx.NodeProto, role: str) -> int:
    if role == "bias":
        return 0
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return 1 if node.op_type == "MatMul" else 0


def resolve_weight(graph: GraphIndex, name: str) -> tuple[str, bool, onnx.NodeProto | None] | None:
    """Follow Identity and DequantizeLinear back to an initializer: (name, is_qdq, dql node)."""
    inits = graph.initializers
    for _ in range(8):
        if name in inits:
            return name, False, None
        node = graph.producer.get(name)
        if node is None:
            return None
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            quant = inits[node.input[0]]
            return (node.input[0], True, node) if quant.data_type in QUANT_TYPES else None
        if node.op_type != "Identity":
            return None
        name = node.input[0]
    return (name, False, None) if name in inits else None


def find_fault_targets(
    model: onnx.ModelProto, selection: TensorSelection | None = None
) -> list[FaultTarget]:
    """Weight (and optionally bias) initializers of Conv, ConvTranspose, Gemm and MatMul, in graph order."""
    selection = selection or TensorSelection()
    graph = GraphIndex(model)
    targets: dict[str, FaultTarget] = {}
    for node in model.graph.node:
        if node.op_type not in FAULTABLE_OPS:
            continue
        roles = [(1, "weight")] + (
            [(2, "bias")] if selection.include_bias and node.op_type != "MatMul" else []
        )
        if node.op_type == "MatMul" and node.input[1] not in graph.initializers:
            roles = [(0, "weight")]
        for index, role in roles:
            if index >= len(node.input) or not node.input[index]:
                continue
            resolved = resolve_weight(graph, node.input[index])
            if resolved is None or resolved[0] in targets or not selection.matches(resolved[0]):
                continue
            name, is_qdq, dql = resolved
            init = graph.initializers[name]
            axis = _dql_axis(dql, init) if dql is not None else _output_axis(node, role)
            targets[name] = FaultTarget(
                name=name,
                op_type=node.op_type,
                node=node.name,
                role=role,
                shape=tuple(init.dims),
                dtype=str(onnx.helper.tensor_dtype_to_np_dtype(init.data_type)),
                axis=axis,
                qdq=is_qdq,
            )
    return list(targets.values())


def _dql_axis(node: onnx.NodeProto, init: onnx.TensorProto) -> int:
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    return axis % max(len(init.dims), 1)


def stored_weights(
    model: onnx.ModelProto, targets: Sequence[FaultTarget], storage: Storage
) -> list[StoredWeight]:
    """The stored representation of every target under ``storage``."""
    inits = {init.name: init for init in model.graph.initializer}
    dql_inputs = {
        node.input[0]: node for node in model.graph.node if node.op_type == "DequantizeLinear"
    }
    result = []
    for target in targets:
        array = numpy_helper.to_array(inits[target.name])
        if target.qdq:
            if storage is not Storage.QDQ:
                raise NfdeployError(
                    f"{target.name} is already int8 (QDQ model); use --storage qdq (or auto)."
                )
            dql = dql_inputs[target.name]
            scale = numpy_helper.to_array(inits[dql.input[1]])
            zp = (
                numpy_helper.to_array(inits[dql.input[2]])
                if len(dql.input) > 2 and dql.input[2]
                else np.zeros(1)
            )
            result.append(StoredWeight.from_qdq(target.name, array, scale, zp, axis=target.axis))
        else:
            emulated = Storage.INT8_TENSOR if storage is Storage.QDQ else storage
            result.append(StoredWeight.from_float(target.name, array, emulated, axis=target.axis))
    return result


def resolve_storage(
    targets: Sequence[FaultTarget], requested: str, *, name: str = "the model"
) -> Storage:
    """'auto' means qdq for a quantized model, int8-tensor (the paper's default) otherwise."""
    if requested != "auto":
        try:
            storage = Storage(requested)
        except ValueError:
            choices = ", ".join(["auto", *(s.value for s in Storage)])
            raise NfdeployError(f"--storage {requested}: use one of {choices}.") from None
        if storage is Storage.QDQ and targets and not any(t.qdq for t in targets):
            raise NfdeployError(
                f"--storage qdq: {name} has no int8 QDQ weights (it stores float weights); "
                "use --storage int8-tensor to emulate int8 storage, or auto."
            )
        return storage
    return Storage.QDQ if any(t.qdq for t in targets) else Storage.INT8_TENSOR


def write_weights(
    model: onnx.ModelProto,
    targets: Sequence[FaultTarget],
    stored: Sequence[StoredWeight],
    codes: Sequence[np.ndarray],
) -> None:
    """Overwrite target initializers in ``model`` (in place) with the given codes, checked."""
    inits = {init.name: init for init in model.graph.initializer}
    for target, weight, faulty in zip(targets, stored, codes, strict=True):
        init = inits.get(target.name)
        if init is None:
            raise NfdeployError(f"{target.name}: no such initializer in the model; cannot inject.")
        dtype = onnx.helper.tensor_dtype_to_np_dtype(init.data_type)
        values = faulty if target.qdq else weight.dequantize(faulty)
        if tuple(values.shape) != tuple(init.dims) or (target.qdq and values.dtype != dtype):
            raise NfdeployError(
                f"{target.name}: faulty tensor {values.dtype}{list(values.shape)} does not match "
                f"the initializer {dtype}{list(init.dims)}."
            )
        init.CopyFrom(numpy_helper.from_array(values.astype(dtype, copy=False), target.name))
