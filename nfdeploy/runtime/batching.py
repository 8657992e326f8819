"""Make a batch dimension fixed at 1 dynamic, proven by a parity run, so validation is not per-image."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from nfdeploy.onnx.session import make_session

PARITY_BATCH = 4


@dataclass(frozen=True)
class BatchInfo:
    model: onnx.ModelProto
    dynamic: bool
    note: str


def graph_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The first graph input that is not an initializer (older exports list weights as inputs)."""
    initializers = {init.name for init in model.graph.initializer}
    for value in model.graph.input:
        if value.name not in initializers:
            return value
    raise ValueError("the graph has no data input")


def input_dims(model: onnx.ModelProto) -> list[int | None]:
    dims = graph_input(model).type.tensor_type.shape.dim
    return [dim.dim_value if dim.HasField("dim_value") else None for dim in dims]


def _set_batch_param(value: onnx.ValueInfoProto) -> None:
    dims = value.type.tensor_type.shape.dim
    if dims:
        dims[0].Clear()
        dims[0].dim_param = "N"


def _unfix_reshapes(model: onnx.ModelProto) -> None:
    """Rewrite constant Reshape targets [1, ...] to [-1, ...] (the usual flatten after features)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in list(inferred.graph.value_info) + list(inferred.graph.input)
    }
    inits = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Reshape" or node.input[1] not in inits:
            continue
        target = numpy_helper.to_array(inits[node.input[1]]).astype(np.int64)
        if target.size < 2 or target[0] != 1:
            continue
        new = target.copy()
        if -1 in target[1:]:
            data_shape = shapes.get(node.input[0], [])
            known = [d for d in target[1:] if d != -1]
            if not data_shape or 0 in data_shape[1:] or any(d == 0 for d in known):
                continue
            rest = int(np.prod(data_shape[1:])) // max(int(np.prod(known)), 1)
            new[1:][target[1:] == -1] = rest
        new[0] = -1
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(new, node.input[1]))


def make_batch_dynamic(model: onnx.ModelProto, *, seed: int = 0) -> BatchInfo:
    """Return a model with a dynamic batch, or the original with a note saying why not."""
    dims = input_dims(model)
    if not dims or dims[0] is None:
        return BatchInfo(model, True, "batch dimension already dynamic")
    if dims[0] != 1:
        return BatchInfo(model, False, f"batch fixed at {dims[0]}; running batches of {dims[0]}")
    if any(d is None for d in dims[1:]):
        return BatchInfo(model, False, "batch fixed at 1 with other dynamic dims; left as is")
    candidate = copy.deepcopy(model)
    _set_batch_param(graph_input(candidate))
    for output in candidate.graph.output:
        _set_batch_param(output)
    del candidate.graph.value_info[:]
    try:
        _unfix_reshapes(candidate)
        ok = _parity(model, candidate, [int(d) for d in dims[1:] if d is not None], seed)
    except Exception as exc:  # any failure means: keep the original graph
        return BatchInfo(model, False, f"batch fixed at 1 (could not make it dynamic: {exc})")
    if not ok:
        return BatchInfo(model, False, "batch fixed at 1 (a dynamic batch changed the outputs)")
    return BatchInfo(candidate, True, "batch fixed at 1 in the file; made dynamic, parity checked")


def _parity(
    original: onnx.ModelProto, candidate: onnx.ModelProto, shape: list[int], seed: int
) -> bool:
    x = np.random.default_rng(seed).standard_normal((PARITY_BATCH, *shape)).astype(np.float32)
    ref_session = make_session(original.SerializeToString(), threads=1)
    new_session = make_session(candidate.SerializeToString(), threads=1)
    name = ref_session.get_inputs()[0].name
    reference = np.concatenate(
        [ref_session.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))]
    )
    batched = new_session.run(None, {name: x})[0]
    return batched.shape == reference.shape and bool(
        np.allclose(batched, reference, rtol=1e-4, atol=1e-5)
    )
