"""Weight-layer nodes -> SCALE-Sim topology rows (one per Conv/ConvTranspose/Gemm/MatMul).

Only numpy and onnx are used here (onnxruntime is imported lazily, and only when onnx shape
inference cannot tell the shape of a weight layer's input or output).

Every weight layer becomes one :class:`LayerShape`, the row SCALE-Sim's convolution topology
format takes (ifmap H/W, filter H/W, channels, number of filters, strides), for ONE image
(batch 1):

* ``Conv`` (1-D or 2-D; groups, strides, pads, dilations, ``auto_pad``): the output shape comes
  from onnx shape inference. SCALE-Sim has no padding and computes
  ``ofmap = ceil((ifmap - filter + stride) / stride)``, so the row's ifmap is the part of the
  padded input the kernel actually touches, ``(out - 1) * stride + k``: with it SCALE-Sim gets
  the true output size (the padded input itself gives 17 instead of 16 for a 3x3/2 conv on
  34 padded pixels). A dilated kernel is entered compact (k taps) over the same output grid:
  the weight-read count depends only on output pixels, taps and filters. A grouped conv is
  one row with ``channels = C / groups`` and ``num_filters = M``; its weight reads and MACs
  equal those of ``groups`` separate convolutions.
* ``ConvTranspose``: mapped to the equivalent direct convolution that an output-stationary
  array runs, a stride-1 convolution with the same k x k kernel over the zero-inserted,
  padded input; the row's ifmap is ``out + k - 1`` so that the ofmap is the true output.
  Each output pixel reads all ``k*k*C/groups`` weights, including the taps that meet
  inserted zeros (this is what SCALE-Sim and the paper count). ``macs`` is likewise the
  dense count of that convolution (``H_out * W_out * k*k * C/groups * M``, the paper's and
  thop's convention; about stride^2 times the products with non-zero inputs).
* ``Gemm`` / ``MatMul`` (and ``QLinearMatMul`` / ``MatMulInteger``) with one constant operand:
  SCALE-Sim's GEMM row (rows x K times K x N): ifmap ``rows x K``, filter ``1 x K``, 1 channel,
  ``N`` filters. ``rows`` is per image (a leading batch dimension is divided out).
* ``QLinearConv`` / ``ConvInteger`` are handled like ``Conv``.

A tensor is "constant" when it is an initializer, a ``Constant`` output, or the output of a
node whose inputs are all constant (``DequantizeLinear``, ``Transpose``, ``Cast`` ... of an
initializer, as in QDQ models). Layers inside control-flow subgraphs are not visited.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import onnx
from onnx import helper

from nfdeploy.energy.layer_shape import LayerShape, Shape
from nfdeploy.energy.shapes import constant_tensors, shape_table
from nfdeploy.errors import NfdeployError
from nfdeploy.onnx.weight_ops import WEIGHT_OPS

# op -> (activation input index, weight input index), from the one weight-op table
CONV_OPS = {
    op: (w.activation, w.weight)
    for op, w in WEIGHT_OPS.items()
    if w.kind == "conv" and op != "ConvTranspose"
}
MATMUL_OPS = {
    op: (w.activation, w.weight)
    for op, w in WEIGHT_OPS.items()
    if w.kind == "matmul" and op != "Gemm"
}


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _ints(value: Any, n: int, default: int) -> list[int]:
    if value is None:
        return [default] * n
    vals = [int(v) for v in value]
    if len(vals) != n:
        raise ValueError("attribute length does not match the spatial rank")
    return vals


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "NOTSET")


def _conv_out(
    in_sp: Sequence[int],
    k: Sequence[int],
    s: Sequence[int],
    d: Sequence[int],
    pads: Sequence[int],
    auto_pad: str,
) -> list[int]:
    n = len(in_sp)
    out = []
    for i in range(n):
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out.append(-(-in_sp[i] // s[i]))
        else:
            p = (pads[i] + pads[i + n]) if auto_pad == "NOTSET" else 0
            out.append((in_sp[i] + p - (d[i] * (k[i] - 1) + 1)) // s[i] + 1)
    return out


def _convT_out(
    in_sp: Sequence[int],
    k: Sequence[int],
    s: Sequence[int],
    d: Sequence[int],
    pads: Sequence[int],
    out_pad: Sequence[int],
    auto_pad: str,
) -> list[int]:
    n = len(in_sp)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return [in_sp[i] * s[i] for i in range(n)]
    return [
        s[i] * (in_sp[i] - 1) + out_pad[i] + (d[i] * (k[i] - 1) + 1) - pads[i] - pads[i + n]
        for i in range(n)
    ]


class EnergyGraph:
    def __init__(self, model: onnx.ModelProto, inputs: dict[str, Shape], label: str) -> None:
        self.model = model
        self.label = label
        self.inputs = inputs
        self.shapes = shape_table(model)
        self.const = constant_tensors(model)
        first = next(iter(inputs.values()))
        self.batch = first[0] if len(first) >= 2 else 1

    def shape(self, name: str) -> Shape | None:
        return self.shapes.get(name)

    def per_image_rows(self, rows: int) -> int:
        if self.batch > 1 and rows % self.batch == 0:
            return rows // self.batch
        return rows


def node_name(node: onnx.NodeProto, idx: int) -> str:
    return node.name or f"{node.op_type}_{idx}"


def needed_tensors(g: EnergyGraph) -> set[str]:
    need: set[str] = set()
    for node in g.model.graph.node:
        op = node.op_type
        if op in CONV_OPS or op == "ConvTranspose":
            xi, wi = CONV_OPS.get(op, (0, 1))
            if len(node.input) > wi and node.input[wi] in g.const:
                need.update(n for n in (node.input[xi], node.input[wi], node.output[0]) if n)
        elif op in MATMUL_OPS or op == "Gemm":
            ai, bi = MATMUL_OPS.get(op, (0, 1))
            if len(node.input) > bi and (node.input[ai] in g.const) != (node.input[bi] in g.const):
                need.update(n for n in (node.input[ai], node.input[bi], node.output[0]) if n)
    return need


def conv_row(g: EnergyGraph, node: onnx.NodeProto, name: str) -> LayerShape | None:
    op = node.op_type
    xi, wi = CONV_OPS.get(op, (0, 1))
    if len(node.input) <= wi or node.input[wi] not in g.const:
        return None  # weights computed at run time: not a stored-weight layer
    x = g.shape(node.input[xi])
    w = g.shape(node.input[wi])
    y = g.shape(node.output[0]) if node.output else None
    a = _attrs(node)
    if x is None or w is None:
        raise NfdeployError(
            f"{g.label}: cannot determine the input or weight shape of {op} '{name}' "
            "(give --input-shape, or export the model with static shapes)"
        )
    nsp = len(x) - 2
    if nsp not in (1, 2) or len(w) != nsp + 2:
        raise NfdeployError(
            f"{g.label}: {op} '{name}' has {nsp} spatial dimensions; only 1-D and 2-D "
            "convolutions can be mapped to a 2-D systolic array"
        )
    groups = int(a.get("group", 1))
    k = [int(v) for v in a.get("kernel_shape", w[2:])]
    try:
        s = _ints(a.get("strides"), nsp, 1)
        d = _ints(a.get("dilations"), nsp, 1)
        pads = _ints(a.get("pads"), 2 * nsp, 0)
        out_pad = _ints(a.get("output_padding"), nsp, 0)
    except ValueError:
        raise NfdeployError(f"{g.label}: {op} '{name}' has malformed attributes") from None
    auto_pad = _decode(a.get("auto_pad"))
    in_sp = list(x[2:])
    c_in = x[1]
    if op == "ConvTranspose":
        m_out = w[1] * groups
        if y is not None and len(y) == nsp + 2:
            out_sp = list(y[2:])
        elif "output_shape" in a:
            out_sp = [int(v) for v in a["output_shape"]][-nsp:]
        else:
            out_sp = _convT_out(in_sp, k, s, d, pads, out_pad, auto_pad)
        win = c_in // groups
        macs = math.prod(out_sp) * math.prod(k) * win * m_out  # dense (zero-stuffed) count
        params = math.prod(w)
        eff_k = k
        stride = [1] * nsp
        ifmap = [out_sp[i] + k[i] - 1 for i in range(nsp)]
        kind = "convT"
    else:
        m_out = w[0]
        win = w[1]
        if y is not None and len(y) == nsp + 2:
            out_sp = list(y[2:])
        else:
            out_sp = _conv_out(in_sp, k, s, d, pads, auto_pad)
        macs = math.prod(out_sp) * math.prod(k) * win * m_out
        params = math.prod(w)
        eff_k = k
        stride = s
        ifmap = [(out_sp[i] - 1) * s[i] + k[i] for i in range(nsp)]
        kind = "conv"
    if any(o <= 0 for o in out_sp):
        raise NfdeployError(f"{g.label}: {op} '{name}' has an empty output {tuple(out_sp)}")
    if nsp == 1:  # a 1-D conv is a 2-D conv with height 1
        ifmap, eff_k, stride = [1, *ifmap], [1, *eff_k], [1, *stride]
    return LayerShape(
        name=name,
        kind=kind,
        ifmap_h=ifmap[0],
        ifmap_w=ifmap[1],
        filter_h=eff_k[0],
        filter_w=eff_k[1],
        channels=win,
        num_filters=m_out,
        stride_h=stride[0],
        stride_w=stride[1],
        macs=int(macs),
        params=int(params),
        groups=groups,
        op=op,
    )


def gemm_row(g: EnergyGraph, node: onnx.NodeProto, name: str) -> LayerShape | None:
    op = node.op_type
    ai, bi = MATMUL_OPS.get(op, (0, 1))
    if len(node.input) <= bi:
        return None
    a_name, b_name = node.input[ai], node.input[bi]
    a_const, b_const = a_name in g.const, b_name in g.const
    if a_const == b_const:
        return None  # activation x activation, or a constant-folded product
    a = g.shape(a_name)
    b = g.shape(b_name)
    if a is None or b is None:
        raise NfdeployError(
            f"{g.label}: cannot determine the operand shapes of {op} '{name}' "
            "(give --input-shape, or export the model with static shapes)"
        )
    if op == "Gemm":
        attrs = _attrs(node)
        if len(a) != 2 or len(b) != 2:
            raise NfdeployError(f"{g.label}: Gemm '{name}' needs 2-D operands")
        m_rows, k_a = (a[1], a[0]) if attrs.get("transA", 0) else (a[0], a[1])
        k_b, n_cols = (b[1], b[0]) if attrs.get("transB", 0) else (b[0], b[1])
        if b_const:  # Y = A W: stream A's rows against W (K x N)
            rows, k, n = m_rows, k_a, n_cols
            rows = g.per_image_rows(rows)
        else:  # Y = W B: stream B's columns against W (M x K)
            rows, k, n = g.per_image_rows(n_cols), k_b, m_rows
        slices = 1
    else:
        if len(a) < 1 or len(b) < 1:
            return None
        a2 = a if len(a) >= 2 else (1, a[0])
        b2 = b if len(b) >= 2 else (b[0], 1)
        if b_const:  # (..., M, K) @ W(..., K, N)
            k, n = b2[-2], b2[-1]
            slices = math.prod(b2[:-2])
            rows = math.prod(a2[:-1]) // max(slices, 1)
            rows = g.per_image_rows(rows)
        else:  # W(..., M, K) @ (..., K, N): out^T = X^T W^T, rows = N of X
            k, n = a2[-1], a2[-2]
            slices = math.prod(a2[:-2])
            rows = math.prod(b2[:-2]) * b2[-1] // max(slices, 1)
            rows = g.per_image_rows(rows)
    rows = max(int(rows), 1)
    n_total = int(n) * int(slices)
    return LayerShape(
        name=name,
        kind="gemm",
        ifmap_h=rows,
        ifmap_w=int(k),
        filter_h=1,
        filter_w=int(k),
        channels=1,
        num_filters=n_total,
        stride_h=1,
        stride_w=1,
        macs=rows * int(k) * n_total,
        params=int(k) * n_total,
        groups=1,
        op=op,
    )
