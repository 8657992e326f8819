"""Tensor shapes of an ONNX graph for the energy model: onnx shape inference, with one
onnxruntime pass on zeros where inference cannot tell, and which tensors are constant."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper, shape_inference

from nfdeploy.errors import NfdeployError

Shape = tuple[int, ...]


# ----------------------------------------------------------------------------- shapes


def value_dims(vi: onnx.ValueInfoProto) -> list[int | str | None] | None:
    t = vi.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    out: list[int | str | None] = []
    for d in t.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def data_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {i.name for i in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def fix_input_shapes(
    model: onnx.ModelProto, input_shape: Sequence[int] | None, label: str
) -> dict[str, Shape]:
    """Give every data input a static shape (batch 1); returns name -> shape."""
    inputs = data_inputs(model)
    if not inputs:
        raise NfdeployError(f"{label}: the graph has no data input")
    fixed: dict[str, Shape] = {}
    for idx, vi in enumerate(inputs):
        dims = value_dims(vi)
        if idx == 0 and input_shape is not None:
            shape = tuple(int(d) for d in input_shape)
            if any(d <= 0 for d in shape):
                raise NfdeployError(f"input shape {shape}: every dimension must be positive")
            if dims is not None and len(dims) != len(shape):
                raise NfdeployError(
                    f"{label}: input '{vi.name}' has rank {len(dims)}, "
                    f"but the input shape {shape} has rank {len(shape)}"
                )
        else:
            if dims is None:
                raise NfdeployError(
                    f"{label}: input '{vi.name}' has no shape in the graph; give an input shape "
                    "(--input-shape 1x3x32x32)"
                )
            resolved = []
            for pos, d in enumerate(dims):
                if isinstance(d, int) and d > 0:
                    resolved.append(d)
                elif pos == 0:
                    resolved.append(1)  # dynamic batch -> one image
                else:
                    raise NfdeployError(
                        f"{label}: input '{vi.name}' has a dynamic dimension "
                        f"{d if d else '?'} at position {pos}; give a fixed input shape "
                        "(--input-shape 1x3x32x32)"
                    )
            shape = tuple(resolved)
        fixed[vi.name] = shape
        tt = vi.type.tensor_type
        tt.shape.Clear()
        for d in shape:
            tt.shape.dim.add().dim_value = d
    return fixed


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(
            model, check_type=False, strict_mode=False, data_prop=True
        )
    except Exception:
        try:
            return shape_inference.infer_shapes(model)
        except Exception:
            return model


def static_shape(dims: list[int | str | None] | None) -> Shape | None:
    if dims is None or not all(isinstance(d, int) and d > 0 for d in dims):
        # a zero-size dim or any unknown dim is "unknown" for our purposes
        return None
    return tuple(int(d) for d in dims)  # type: ignore[arg-type]


def shape_table(model: onnx.ModelProto) -> dict[str, Shape]:
    table: dict[str, Shape] = {}
    g = model.graph
    for vi in [*g.input, *g.value_info, *g.output]:
        s = static_shape(value_dims(vi))
        if s is not None:
            table[vi.name] = s
    for init in g.initializer:
        table[init.name] = tuple(int(d) for d in init.dims)
    for node in g.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    table[node.output[0]] = tuple(int(d) for d in attr.t.dims)
    return table


def shapes_via_onnxruntime(
    model: onnx.ModelProto, names: set[str], inputs: dict[str, Shape]
) -> dict[str, Shape]:
    """Run the model once on zeros to read the shapes shape inference could not give."""
    from nfdeploy.onnx.session import make_session  # onnxruntime only when needed

    m = copy.deepcopy(model)
    present = {o.name for o in m.graph.output}
    for name in sorted(names - present):
        m.graph.output.append(helper.make_empty_tensor_value_info(name))
    feeds: dict[str, np.ndarray] = {}
    for vi in data_inputs(m):
        elem = vi.type.tensor_type.elem_type or onnx.TensorProto.FLOAT
        try:
            dtype = helper.tensor_dtype_to_np_dtype(elem)
        except Exception:
            return {}
        feeds[vi.name] = np.zeros(inputs[vi.name], dtype=dtype)
    try:
        sess = make_session(m.SerializeToString(), threads=1, optimize=False)
        wanted = [o.name for o in sess.get_outputs() if o.name in names]
        values = sess.run(wanted, feeds)
    except Exception:
        return {}
    return {n: tuple(int(d) for d in np.shape(v)) for n, v in zip(wanted, values, strict=True)}


# ----------------------------------------------------------------------------- constants


_SOURCE_OPS = {"Constant", "ConstantOfShape"}


def constant_tensors(model: onnx.ModelProto) -> set[str]:
    g = model.graph
    const = {i.name for i in g.initializer}
    const.add("")  # an omitted optional input
    for node in g.node:
        sourced = node.op_type in _SOURCE_OPS or bool(node.input)
        if sourced and all(i in const for i in node.input):
            const.update(node.output)
    const.discard("")
    return const
