"""ONNX graph -> list of weight layers as SCALE-Sim topology rows (rules: :mod:`.layer_rows`)."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

import onnx

from nfdeploy.energy.layer_rows import (
    CONV_OPS,
    MATMUL_OPS,
    EnergyGraph,
    conv_row,
    gemm_row,
    needed_tensors,
    node_name,
)
from nfdeploy.energy.layer_shape import LayerShape, Shape
from nfdeploy.energy.shapes import (
    data_inputs,
    fix_input_shapes,
    infer_shapes,
    shapes_via_onnxruntime,
    value_dims,
)
from nfdeploy.errors import NfdeployError
from nfdeploy.onnx.load import load_model_checked

__all__ = ["LayerShape", "input_is_static", "layers_from_onnx", "load_model"]


# ----------------------------------------------------------------------------- loading


def load_model(path_or_model: str | os.PathLike[str] | onnx.ModelProto) -> onnx.ModelProto:
    """Load an ONNX model safely (a copy when given a ModelProto); one-line NfdeployError."""
    if isinstance(path_or_model, onnx.ModelProto):
        return copy.deepcopy(path_or_model)
    return load_model_checked(path_or_model)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def model_label(path_or_model: str | os.PathLike[str] | onnx.ModelProto) -> str:
    if isinstance(path_or_model, onnx.ModelProto):
        return f"model '{path_or_model.graph.name or 'graph'}'"
    return os.fspath(path_or_model)


def layers_from_onnx(
    path_or_model: str | os.PathLike[str] | onnx.ModelProto,
    *,
    input_shape: tuple[int, ...] | None = None,
) -> list[LayerShape]:
    """Weight layers of an ONNX model, in graph order, as SCALE-Sim topology rows.

    ``input_shape`` fixes the first data input (e.g. ``(1, 3, 32, 32)``); without it the
    graph's own static shape is used, a dynamic batch taken as 1. Raises
    :class:`~nfdeploy.errors.NfdeployError` for a missing/invalid file, a dynamic spatial size
    with no ``input_shape``, or a graph with no Conv/ConvTranspose/Gemm/MatMul weight layer.
    """
    return extract_layers(path_or_model, input_shape)[0]


def input_is_static(path_or_model: str | os.PathLike[str] | onnx.ModelProto) -> bool:
    """True when every data input's non-batch dimensions are fixed in the graph."""
    model = load_model(path_or_model)
    for vi in data_inputs(model):
        dims = value_dims(vi)
        if dims is None or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
            return False
    return True


def extract_layers(
    path_or_model: str | os.PathLike[str] | onnx.ModelProto,
    input_shape: Sequence[int] | None,
) -> tuple[list[LayerShape], dict[str, Shape]]:
    """Layers plus the static input shapes that were used."""
    label = model_label(path_or_model)
    model = load_model(path_or_model)
    inputs = fix_input_shapes(model, input_shape, label)
    # Stale intermediate shapes (e.g. from a different input size) must not survive.
    del model.graph.value_info[:]
    if input_shape is not None:
        for out in model.graph.output:
            if out.type.HasField("tensor_type"):
                out.type.tensor_type.ClearField("shape")
    inferred = infer_shapes(model)
    g = EnergyGraph(inferred, inputs, label)
    missing = {n for n in needed_tensors(g) if g.shape(n) is None}
    if missing:
        g.shapes.update(shapes_via_onnxruntime(model, missing, inputs))
    layers: list[LayerShape] = []
    for idx, node in enumerate(g.model.graph.node):
        name = node_name(node, idx)
        if node.op_type in CONV_OPS or node.op_type == "ConvTranspose":
            layer = conv_row(g, node, name)
        elif node.op_type in MATMUL_OPS or node.op_type == "Gemm":
            layer = gemm_row(g, node, name)
        else:
            continue
        if layer is not None:
            layers.append(layer)
    if not layers:
        raise NfdeployError(
            f"{label}: no weight layers found (Conv, ConvTranspose, Gemm or MatMul with a "
            "constant weight); nothing to count"
        )
    return layers, inputs
