"""Tiny ONNX models built with onnx.helper (no torch), in the shapes real exporters produce."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IN_CHANNELS, MID, CLASSES, SIZE = 3, 4, 3, 6


def conv_bn_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "conv.weight": rng.normal(0, 0.5, (MID, IN_CHANNELS, 3, 3)).astype(np.float32),
        "conv.bias": rng.normal(0, 0.1, MID).astype(np.float32),
        "bn.scale": rng.uniform(0.5, 1.5, MID).astype(np.float32),
        "bn.bias": rng.normal(0, 0.1, MID).astype(np.float32),
        "bn.mean": rng.normal(0, 0.1, MID).astype(np.float32),
        "bn.var": rng.uniform(0.5, 1.5, MID).astype(np.float32),
        "fc.weight": rng.normal(0, 2.0, (CLASSES, MID)).astype(np.float32),
        "fc.bias": rng.normal(0, 0.01, CLASSES).astype(np.float32),
    }


def _flatten_nodes(kind: str, opset: int) -> tuple[list[onnx.NodeProto], list[TensorProto]]:
    if kind == "flatten":
        return [helper.make_node("Flatten", ["pooled"], ["flat"], axis=1)], []
    if kind == "reshape_const":  # legacy exports with a fixed batch: Reshape to [1, K]
        shape = numpy_helper.from_array(np.array([1, MID], dtype=np.int64), "flat_shape")
        return [helper.make_node("Reshape", ["pooled", "flat_shape"], ["flat"])], [shape]
    # x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat -> Reshape
    inits = [
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus_one"),
    ]
    unsqueeze = (
        helper.make_node("Unsqueeze", ["batch"], ["batch1"], axes=[0])
        if opset < 13
        else helper.make_node("Unsqueeze", ["batch", "axes0"], ["batch1"])
    )
    if opset >= 13:
        inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "axes0"))
    nodes = [
        helper.make_node("Shape", ["pooled"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        unsqueeze,
        helper.make_node("Concat", ["batch1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["pooled", "target"], ["flat"]),
    ]
    return nodes, inits


def conv_bn_model(
    *,
    opset: int = 13,
    ir: int = 7,
    batch: int | None = None,
    flatten: str = "flatten",
    inits_as_inputs: bool = False,
    relu: bool = True,
    seed: int = 0,
) -> onnx.ModelProto:
    """x -> Conv -> BatchNormalization -> Relu -> GlobalAveragePool -> flatten -> Gemm (logits)."""
    weights = conv_bn_weights(seed)
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    act = "bn_out"
    nodes = [
        helper.make_node(
            "Conv", ["x", "conv.weight", "conv.bias"], ["conv_out"], pads=[1, 1, 1, 1], name="conv"
        ),
        helper.make_node(
            "BatchNormalization",
            ["conv_out", "bn.scale", "bn.bias", "bn.mean", "bn.var"],
            ["bn_out"],
            name="bn",
        ),
    ]
    if relu:
        nodes.append(helper.make_node("Relu", ["bn_out"], ["relu_out"]))
        act = "relu_out"
    nodes.append(helper.make_node("GlobalAveragePool", [act], ["pooled"]))
    flat_nodes, flat_inits = _flatten_nodes(flatten, opset)
    nodes += flat_nodes
    nodes.append(
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], transB=1, name="fc")
    )
    dim0: int | str = batch if batch is not None else "N"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [dim0, IN_CHANNELS, SIZE, SIZE])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [dim0, CLASSES])
    graph_inputs = [x]
    if inits_as_inputs:
        graph_inputs += [
            helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in inits
        ]
    graph = helper.make_graph(nodes, "conv_bn", graph_inputs, [y], inits + flat_inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir
    onnx.checker.check_model(model)
    return model


def numpy_forward(
    weights: dict[str, np.ndarray], x: np.ndarray, *, relu: bool = True
) -> np.ndarray:
    """Reference forward pass of :func:`conv_bn_model` in float64 numpy."""
    w = weights["conv.weight"].astype(np.float64)
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    n, _, h, wd = x.shape
    out = np.zeros((n, w.shape[0], h, wd))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,oc->nohw", padded[:, :, i : i + h, j : j + wd], w[:, :, i, j])
    out += weights["conv.bias"][None, :, None, None]
    scale = weights["bn.scale"] / np.sqrt(weights["bn.var"] + 1e-5)
    out = (out - weights["bn.mean"][None, :, None, None]) * scale[None, :, None, None]
    out += weights["bn.bias"][None, :, None, None]
    if relu:
        out = np.maximum(out, 0)
    pooled = out.mean(axis=(2, 3))
    return pooled @ weights["fc.weight"].T.astype(np.float64) + weights["fc.bias"]


def colour_patches_npz(path: Path, count: int) -> Path:
    """``count`` noisy flat-colour SIZE x SIZE images with random labels, as an .npz (seed 0)."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (count, 1, 1, IN_CHANNELS))
    images = np.clip(colours + rng.integers(-20, 21, (count, SIZE, SIZE, IN_CHANNELS)), 0, 255)
    np.savez(path, x=images.astype(np.uint8), y=rng.integers(0, CLASSES, count))
    return path
