"""ONNX operator implementations on torch tensors.

Every operator has a *builder*: it receives a :class:`NodeCtx` (attributes already parsed,
the opset, and the plan-time value of every input that is a constant) and returns a
runtime function ``fn(*inputs) -> Tensor | tuple[Tensor, ...]``. Work that depends only on
attributes or constants (pads, axes, target shapes, ...) happens once in the builder, so the
runtime functions are plain torch calls. Shapes that depend on the runtime input (``Shape``
chains) are CPU int64 tensors, so reading them back never synchronises an accelerator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nfdeploy.errors import NfdeployError
from nfdeploy.torchify.quant import (
    NP_RANGES,
    QUANT_RANGES,
    TORCH_CODE_DTYPES,
    dequantize_tensor,
    fake_quantize_codes,
)

RunFn = Callable[..., Any]
Builder = Callable[["NodeCtx"], RunFn]

ONNX_TO_TORCH: dict[int, torch.dtype] = {
    1: torch.float32,
    2: torch.uint8,
    3: torch.int8,
    5: torch.int16,
    6: torch.int32,
    7: torch.int64,
    9: torch.bool,
    10: torch.float16,
    11: torch.float64,
    16: torch.bfloat16,
}


@dataclass
class RuntimeState:
    """Per-forward facts the operators may read (set by ``VendorModule.forward``).

    Operator closures hold this object, so copies of a module share it (``deepcopy`` returns
    the same instance); ``forward`` sets it before running any operator.
    """

    batch: int = 1

    def __deepcopy__(self, memo: dict[int, Any]) -> RuntimeState:
        return self


@dataclass
class NodeCtx:
    """What a builder knows about one node at conversion time."""

    op_type: str
    name: str
    opset: int
    attrs: dict[str, Any]
    inputs: tuple[str, ...]
    consts: tuple[np.ndarray | None, ...]
    outputs_used: tuple[bool, ...]
    outputs: tuple[str, ...] = ()
    state: RuntimeState = field(default_factory=RuntimeState)
    fixed_batch_one: bool = False
    codes_only_to_dequantize: bool = False

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def has(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] != ""

    def const(self, i: int) -> np.ndarray | None:
        return self.consts[i] if self.has(i) else None

    def const_ints(self, i: int) -> list[int] | None:
        value = self.const(i)
        return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]

    def error(self, message: str) -> NfdeployError:
        return NfdeployError(f"{self.op_type} node '{self.name}': {message}")


_BUILDERS: dict[str, Builder] = {}
_QOPERATOR_OPS = ("ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "QGemm")


def register(*op_types: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        for op_type in op_types:
            _BUILDERS[op_type] = fn
        return fn

    return deco


def supported_ops() -> list[str]:
    """Sorted names of every ONNX operator this converter implements (plus ``Constant``)."""
    return sorted({*_BUILDERS, "Constant"})


def build(ctx: NodeCtx) -> RunFn:
    builder = _BUILDERS.get(ctx.op_type)
    if builder is None and (ctx.op_type.startswith("QLinear") or ctx.op_type in _QOPERATOR_OPS):
        raise ctx.error(
            "quantized-operator (QOperator) models are not supported; quantize the float model "
            "with onnxruntime.quantization.quantize_static(..., quant_format=QuantFormat.QDQ)."
        )
    if builder is None:
        raise ctx.error(
            "operator not supported by the nfdeploy ONNX->torch converter. Try re-exporting the "
            "model at another opset, simplifying it (onnxsim / constant folding), or replacing "
            f"the layer. Supported: {', '.join(supported_ops())}."
        )
    return builder(ctx)


# ----------------------------------------------------------------------------- helpers


def _align(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a CPU operand (constant or shape value) to the other operand's device."""
    if a.device != b.device:
        if a.device.type == "cpu":
            a = a.to(b.device)
        else:
            b = b.to(a.device)
    return a, b


def _ints(static: list[int] | None, value: Any) -> list[int] | None:
    """The plan-time integers if known, else the runtime value's.

    Runtime values are Python shape values (int or list, see ``shape_ops``) or tensors.
    """
    if static is not None:
        return static
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.reshape(-1).tolist()]
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


def _axes_attr_or_input(
    ctx: NodeCtx, input_since: int, index: int = 1
) -> tuple[bool, list[int] | None]:
    """(axes come from an input, static axes) for ops whose axes moved from attribute to input."""
    if ctx.opset >= input_since:
        return True, ctx.const_ints(index)
    axes = ctx.attr("axes")
    return False, None if axes is None else [int(a) for a in axes]


def _torch_pads(onnx_pads: Sequence[int]) -> list[int]:
    """ONNX [b1, b2, ..., e1, e2, ...] -> torch F.pad order (last dim first)."""
    n = len(onnx_pads) // 2
    out: list[int] = []
    for d in reversed(range(n)):
        out += [int(onnx_pads[d]), int(onnx_pads[d + n])]
    return out


def _same_pads(
    in_sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    mode: str,
) -> list[int]:
    begins, ends = [], []
    for size, k, s, d in zip(in_sizes, kernel, strides, dilations, strict=True):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        if mode == "SAME_UPPER":
            begins.append(small)
            ends.append(large)
        else:
            begins.append(large)
            ends.append(small)
    return begins + ends


class _Padding:
    """Static or auto (SAME_*) padding for convolution and pooling nodes."""

    def __init__(self, ctx: NodeCtx, spatial: int | None) -> None:
        self.auto = ctx.attr("auto_pad", "NOTSET")
        if isinstance(self.auto, bytes):
            self.auto = self.auto.decode()
        if self.auto not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
            raise ctx.error(f"unknown auto_pad '{self.auto}'.")
        pads = ctx.attr("pads")
        self.static: list[int] | None
        if self.auto == "VALID":
            self.static = [0] * (2 * spatial) if spatial else None
        elif self.auto == "NOTSET":
            self.static = [int(p) for p in pads] if pads is not None else None
            if self.static is None and spatial:
                self.static = [0] * (2 * spatial)
        else:
            self.static = None

    def resolve(
        self,
        in_sizes: Sequence[int],
        kernel: Sequence[int],
        strides: Sequence[int],
        dilations: Sequence[int],
    ) -> list[int]:
        if self.static is not None:
            return self.static
        if self.auto in ("SAME_UPPER", "SAME_LOWER"):
            return _same_pads(in_sizes, kernel, strides, dilations, self.auto)
        return [0] * (2 * len(in_sizes))


def _symmetric(pads: Sequence[int]) -> bool:
    n = len(pads) // 2
    return list(pads[:n]) == list(pads[n:])


def _spatial_list(value: Any, n: int, default: int) -> list[int]:
    if value is None:
        return [default] * n
    return [int(v) for v in value]


# ----------------------------------------------------------------------------- elementwise


def _unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> Builder:
    def builder(ctx: NodeCtx) -> RunFn:
        return fn

    return builder


register("Relu")(_unary(torch.relu))
register("Sigmoid")(_unary(torch.sigmoid))
register("Tanh")(_unary(torch.tanh))
register("Exp")(_unary(torch.exp))
register("Log")(_unary(torch.log))
register("Sqrt")(_unary(torch.sqrt))
register("Neg")(_unary(torch.neg))
register("Abs")(_unary(torch.abs))
register("Reciprocal")(_unary(torch.reciprocal))
register("Floor")(_unary(torch.floor))
register("Ceil")(_unary(torch.ceil))
register("Round")(_unary(torch.round))
register("Erf")(_unary(torch.erf))
register("Sign")(_unary(torch.sign))
register("Sin")(_unary(torch.sin))
register("Cos")(_unary(torch.cos))
register("Not")(_unary(torch.logical_not))
register("Softplus")(_unary(F.softplus))
register("Softsign")(_unary(F.softsign))
register("Mish")(_unary(F.mish))


@register("Identity")
def _identity(ctx: NodeCtx) -> RunFn:
    return lambda x: x


@register("Dropout")
def _dropout(ctx: NodeCtx) -> RunFn:
    # Inference semantics; a requested mask output is all-true.
    if len(ctx.outputs_used) > 1 and ctx.outputs_used[1]:
        return lambda x, *rest: (x, torch.ones_like(x, dtype=torch.bool))
    return lambda x, *rest: x


@register("LeakyRelu")
def _leaky_relu(ctx: NodeCtx) -> RunFn:
    alpha = float(ctx.attr("alpha", 0.01))
    return lambda x: F.leaky_relu(x, alpha)


@register("Elu")
def _elu(ctx: NodeCtx) -> RunFn:
    alpha = float(ctx.attr("alpha", 1.0))
    return lambda x: F.elu(x, alpha)


@register("Selu")
def _selu(ctx: NodeCtx) -> RunFn:
    alpha = float(ctx.attr("alpha", 1.67326319217681884765625))
    gamma = float(ctx.attr("gamma", 1.05070102214813232421875))
    return lambda x: gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


@register("HardSigmoid")
def _hard_sigmoid(ctx: NodeCtx) -> RunFn:
    alpha = float(ctx.attr("alpha", 0.2))
    beta = float(ctx.attr("beta", 0.5))
    return lambda x: torch.clamp(x * alpha + beta, 0.0, 1.0)


@register("HardSwish")
def _hard_swish(ctx: NodeCtx) -> RunFn:
    return lambda x: x * torch.clamp(x * (1.0 / 6.0) + 0.5, 0.0, 1.0)


@register("Gelu")
def _gelu(ctx: NodeCtx) -> RunFn:
    approximate = ctx.attr("approximate", "none")
    return lambda x: F.gelu(x, approximate=approximate)


@register("PRelu")
def _prelu(ctx: NodeCtx) -> RunFn:
    def run(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        x, slope = _align(x, slope)
        if slope.dim() == 1 and x.dim() >= 2 and slope.shape[0] == x.shape[1] != x.shape[-1]:
            slope = slope.reshape([-1] + [1] * (x.dim() - 2))
        return torch.where(x >= 0, x, x * slope)

    return run


@register("Clip")
def _clip(ctx: NodeCtx) -> RunFn:
    if ctx.opset < 11:
        lo = float(ctx.attr("min", -math.inf))
        hi = float(ctx.attr("max", math.inf))
        return lambda x: torch.clamp(x, lo, hi)
    lo_c, hi_c = ctx.const(1), ctx.const(2)
    lo_static = None if lo_c is None else float(np.asarray(lo_c).reshape(-1)[0])
    hi_static = None if hi_c is None else float(np.asarray(hi_c).reshape(-1)[0])
    dynamic = (ctx.has(1) and lo_c is None) or (ctx.has(2) and hi_c is None)
    if not dynamic:
        return lambda x, *rest: torch.clamp(x, lo_static, hi_static)

    def run(
        x: torch.Tensor, lo: torch.Tensor | None = None, hi: torch.Tensor | None = None
    ) -> torch.Tensor:
        lo_t = None if lo is None else lo.to(x.device, x.dtype)
        hi_t = None if hi is None else hi.to(x.device, x.dtype)
        return torch.clamp(x, lo_t, hi_t)

    return run


def _coerced_softmax(fn: Callable[[torch.Tensor, int], torch.Tensor], ctx: NodeCtx) -> RunFn:
    if ctx.opset >= 13:
        axis = int(ctx.attr("axis", -1))
        return lambda x: fn(x, axis)
    axis = int(ctx.attr("axis", 1))

    def run(x: torch.Tensor) -> torch.Tensor:
        a = axis % x.dim() if x.dim() else 0
        flat = x.reshape(int(math.prod(x.shape[:a])), -1)
        return fn(flat, 1).reshape(x.shape)

    return run


@register("Softmax")
def _softmax(ctx: NodeCtx) -> RunFn:
    return _coerced_softmax(lambda x, a: torch.softmax(x, a), ctx)


@register("LogSoftmax")
def _log_softmax(ctx: NodeCtx) -> RunFn:
    return _coerced_softmax(lambda x, a: torch.log_softmax(x, a), ctx)


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Builder:
    def builder(ctx: NodeCtx) -> RunFn:
        if ctx.opset < 7 and ctx.attr("broadcast", 0):
            raise ctx.error("legacy 'broadcast' attribute (opset < 7); re-export at opset >= 9.")

        def run(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            if a.device != b.device:
                a, b = _align(a, b)
            return fn(a, b)

        return run

    return builder


def _div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.is_floating_point() or b.is_floating_point():
        return a / b
    return torch.div(a, b, rounding_mode="trunc")


def _pow(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    out = torch.pow(a, b)
    return out if out.dtype == a.dtype else out.to(a.dtype)


register("Add")(_binary(torch.add))
register("Sub")(_binary(torch.sub))
register("Mul")(_binary(torch.mul))
register("Div")(_binary(_div))
register("Pow")(_binary(_pow))
register("Equal")(_binary(torch.eq))
register("Less")(_binary(torch.lt))
register("LessOrEqual")(_binary(torch.le))
register("Greater")(_binary(torch.gt))
register("GreaterOrEqual")(_binary(torch.ge))
register("And")(_binary(torch.logical_and))
register("Or")(_binary(torch.logical_or))
register("Xor")(_binary(torch.logical_xor))


@register("Mod")
def _mod(ctx: NodeCtx) -> RunFn:
    fmod = int(ctx.attr("fmod", 0))
    return _binary(torch.fmod if fmod else torch.remainder)(ctx)


def _variadic(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], mean: bool = False
) -> Builder:
    def builder(ctx: NodeCtx) -> RunFn:
        def run(*xs: torch.Tensor) -> torch.Tensor:
            out = xs[0]
            for x in xs[1:]:
                out, x = _align(out, x)
                out = fn(out, x)
            return out / len(xs) if mean else out

        return run

    return builder


register("Max")(_variadic(torch.maximum))
register("Min")(_variadic(torch.minimum))
register("Sum")(_variadic(torch.add))
register("Mean")(_variadic(torch.add, mean=True))


@register("Where")
def _where(ctx: NodeCtx) -> RunFn:
    def run(cond: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = _align(a, b)
        cond, a = _align(cond, a)
        return torch.where(cond, a, b)

    return run


@register("Cast")
def _cast(ctx: NodeCtx) -> RunFn:
    to = int(ctx.attr("to"))
    if to not in ONNX_TO_TORCH:
        raise ctx.error(f"cast to ONNX element type {to} is not supported.")
    dtype = ONNX_TO_TORCH[to]
    if dtype.is_floating_point:
        return lambda x: x.to(dtype)

    def run(x: torch.Tensor) -> torch.Tensor:
        if x.is_floating_point():
            x = torch.trunc(x)  # ONNX float->int casts truncate toward zero
        return x.to(dtype)

    return run


@register("CastLike")
def _cast_like(ctx: NodeCtx) -> RunFn:
    return lambda x, like: x.to(like.dtype)


# ----------------------------------------------------------------------------- linear algebra


@register("MatMul")
def _matmul(ctx: NodeCtx) -> RunFn:
    def run(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.device != b.device:
            a, b = _align(a, b)
        return torch.matmul(a, b)

    return run


@register("Gemm")
def _gemm(ctx: NodeCtx) -> RunFn:
    alpha = float(ctx.attr("alpha", 1.0))
    beta = float(ctx.attr("beta", 1.0))
    trans_a = int(ctx.attr("transA", 0))
    trans_b = int(ctx.attr("transB", 0))
    if not trans_a and trans_b and alpha == 1.0 and beta == 1.0:

        def linear(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
            if c is None or c.dim() == 1:
                return F.linear(a, b, c)
            return F.linear(a, b) + c

        return linear

    def run(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        a2 = a.t() if trans_a else a
        b2 = b.t() if trans_b else b
        out = torch.matmul(a2, b2)
        if alpha != 1.0:
            out = out * alpha
        if c is not None and beta != 0.0:
            out = out + (c * beta if beta != 1.0 else c)
        return out

    return run


# ----------------------------------------------------------------------------- convolution


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@register("Conv")
def _conv(ctx: NodeCtx) -> RunFn:
    group = int(ctx.attr("group", 1))
    w_const = ctx.const(1)
    spatial = w_const.ndim - 2 if w_const is not None else None
    if spatial is not None and spatial not in _CONV:
        raise ctx.error(f"{spatial}-D convolution is not supported (1-D, 2-D and 3-D are).")
    padding = _Padding(ctx, spatial)
    strides_attr, dilations_attr = ctx.attr("strides"), ctx.attr("dilations")

    def run(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        n = w.dim() - 2
        conv = _CONV[n]
        kernel = list(w.shape[2:])
        strides = _spatial_list(strides_attr, n, 1)
        dilations = _spatial_list(dilations_attr, n, 1)
        pads = padding.resolve(x.shape[2:], kernel, strides, dilations)
        if _symmetric(pads):
            return conv(x, w, b, strides, pads[:n], dilations, group)
        x = F.pad(x, _torch_pads(pads))
        return conv(x, w, b, strides, 0, dilations, group)

    return run


@register("ConvTranspose")
def _conv_transpose(ctx: NodeCtx) -> RunFn:
    group = int(ctx.attr("group", 1))
    padding = _Padding(ctx, None)
    output_shape = ctx.attr("output_shape")
    w_const = ctx.const(1)
    if w_const is not None and w_const.ndim - 2 not in _CONV_T:
        raise ctx.error(f"{w_const.ndim - 2}-D transposed convolution is not supported.")
    strides_attr, dilations_attr = ctx.attr("strides"), ctx.attr("dilations")
    out_pad_attr = ctx.attr("output_padding")

    def run(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        n = w.dim() - 2
        conv_t = _CONV_T[n]
        kernel = list(w.shape[2:])
        strides = _spatial_list(strides_attr, n, 1)
        dilations = _spatial_list(dilations_attr, n, 1)
        out_pad = _spatial_list(out_pad_attr, n, 0)
        in_sizes = list(x.shape[2:])
        full = [
            s * (i - 1) + op + (k - 1) * d + 1
            for s, i, op, k, d in zip(strides, in_sizes, out_pad, kernel, dilations, strict=True)
        ]
        if output_shape is not None:
            target = [int(v) for v in output_shape][-n:]
            totals = [f - t for f, t in zip(full, target, strict=True)]
            upper = padding.auto == "SAME_UPPER"
            begins = [t // 2 if upper else t - t // 2 for t in totals]
            ends = [t - bg for t, bg in zip(totals, begins, strict=True)]
            pads = begins + ends
        elif padding.auto in ("SAME_UPPER", "SAME_LOWER"):
            totals = [f - i * s for f, i, s in zip(full, in_sizes, strides, strict=True)]
            upper = padding.auto == "SAME_UPPER"
            begins = [t // 2 if upper else t - t // 2 for t in totals]
            pads = begins + [t - bg for t, bg in zip(totals, begins, strict=True)]
        else:
            pads = padding.static if padding.static is not None else [0] * (2 * n)
        if (
            _symmetric(pads)
            and min(pads) >= 0
            and all(op < max(s, d) for op, s, d in zip(out_pad, strides, dilations, strict=True))
        ):
            return conv_t(x, w, b, strides, pads[:n], out_pad, group, dilations)
        # General case: full transposed convolution, then crop (or zero-extend) per side.
        y = conv_t(x, w, None, strides, 0, 0, group, dilations)
        crop: list[int] = []
        for d in reversed(range(n)):
            crop += [-pads[d], out_pad[d] - pads[d + n]]
        y = F.pad(y, crop)
        if b is not None:
            y = y + b.reshape([1, -1] + [1] * n)
        return y

    return run


# ----------------------------------------------------------------------------- normalisation


@register("BatchNormalization")
def _batch_norm(ctx: NodeCtx) -> RunFn:
    # Training mode: the attribute (opset 14+), or running-stat outputs (declared before 14).
    if int(ctx.attr("training_mode", 0)) or any(ctx.outputs[1:]) or any(ctx.outputs_used[1:]):
        raise ctx.error(
            "exported in training mode (batch statistics); re-export the vendor model after "
            "model.eval() with training=TrainingMode.EVAL."
        )
    if ctx.opset < 9 and int(ctx.attr("spatial", 1)) == 0:
        raise ctx.error("spatial=0 batch normalization is not supported.")
    eps = float(ctx.attr("epsilon", 1e-5))

    def run(
        x: torch.Tensor,
        scale: torch.Tensor,
        bias: torch.Tensor,
        mean: torch.Tensor,
        var: torch.Tensor,
    ) -> torch.Tensor:
        return F.batch_norm(x, mean, var, scale, bias, False, 0.0, eps)

    return run


@register("InstanceNormalization")
def _instance_norm(ctx: NodeCtx) -> RunFn:
    eps = float(ctx.attr("epsilon", 1e-5))
    return lambda x, scale, bias: F.instance_norm(x, weight=scale, bias=bias, eps=eps)


@register("LayerNormalization")
def _layer_norm(ctx: NodeCtx) -> RunFn:
    if any(ctx.outputs_used[1:]):
        raise ctx.error("the Mean / InvStdDev outputs are not supported.")
    axis = int(ctx.attr("axis", -1))
    eps = float(ctx.attr("epsilon", 1e-5))

    def run(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        a = axis % x.dim()
        return F.layer_norm(x, tuple(x.shape[a:]), scale, bias, eps)

    return run


@register("LRN")
def _lrn(ctx: NodeCtx) -> RunFn:
    size = int(ctx.attr("size"))
    alpha = float(ctx.attr("alpha", 1e-4))
    beta = float(ctx.attr("beta", 0.75))
    bias = float(ctx.attr("bias", 1.0))
    return lambda x: F.local_response_norm(x, size, alpha, beta, bias)


# ----------------------------------------------------------------------------- pooling


@register("MaxPool")
def _max_pool(ctx: NodeCtx) -> RunFn:
    if any(ctx.outputs_used[1:]):
        raise ctx.error("the Indices output is not supported.")
    kernel = [int(k) for k in ctx.attr("kernel_shape")]
    n = len(kernel)
    if n not in (1, 2, 3):
        raise ctx.error(f"{n}-D pooling is not supported.")
    strides = _spatial_list(ctx.attr("strides"), n, 1)
    dilations = _spatial_list(ctx.attr("dilations"), n, 1)
    ceil_mode = bool(ctx.attr("ceil_mode", 0))
    padding = _Padding(ctx, n)
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[n]

    def run(x: torch.Tensor) -> torch.Tensor:
        pads = padding.resolve(x.shape[2:], kernel, strides, dilations)
        if _symmetric(pads) and all(2 * p <= k for p, k in zip(pads[:n], kernel, strict=True)):
            return pool(x, kernel, strides, pads[:n], dilations, ceil_mode)
        x = F.pad(x, _torch_pads(pads), value=-math.inf)
        return pool(x, kernel, strides, 0, dilations, ceil_mode)

    return run


@register("AveragePool")
def _avg_pool(ctx: NodeCtx) -> RunFn:
    kernel = [int(k) for k in ctx.attr("kernel_shape")]
    n = len(kernel)
    if n not in (1, 2, 3):
        raise ctx.error(f"{n}-D pooling is not supported.")
    if any(int(d) != 1 for d in ctx.attr("dilations", [1] * n)):
        raise ctx.error("dilated average pooling is not supported.")
    strides = _spatial_list(ctx.attr("strides"), n, 1)
    ceil_mode = bool(ctx.attr("ceil_mode", 0))
    include_pad = bool(ctx.attr("count_include_pad", 0))
    padding = _Padding(ctx, n)
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[n]

    def run(x: torch.Tensor) -> torch.Tensor:
        pads = padding.resolve(x.shape[2:], kernel, strides, [1] * n)
        if _symmetric(pads) and all(2 * p <= k for p, k in zip(pads[:n], kernel, strict=True)):
            return pool(x, kernel, strides, pads[:n], ceil_mode, include_pad)
        tp = _torch_pads(pads)
        summed = pool(F.pad(x, tp), kernel, strides, 0, ceil_mode, True)
        if include_pad:
            return summed
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
        frac = pool(F.pad(ones, tp), kernel, strides, 0, ceil_mode, True)
        return summed / frac

    return run


@register("GlobalAveragePool")
def _global_avg_pool(ctx: NodeCtx) -> RunFn:
    return lambda x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


@register("GlobalMaxPool")
def _global_max_pool(ctx: NodeCtx) -> RunFn:
    return lambda x: x.amax(dim=tuple(range(2, x.dim())), keepdim=True)


# ----------------------------------------------------------------------------- reductions


_REDUCE: dict[str, Callable[[torch.Tensor, tuple[int, ...], bool], torch.Tensor]] = {
    "ReduceMean": lambda x, d, k: x.mean(dim=d, keepdim=k),
    "ReduceSum": lambda x, d, k: x.sum(dim=d, keepdim=k),
    "ReduceMax": lambda x, d, k: x.amax(dim=d, keepdim=k),
    "ReduceMin": lambda x, d, k: x.amin(dim=d, keepdim=k),
    "ReduceSumSquare": lambda x, d, k: (x * x).sum(dim=d, keepdim=k),
    "ReduceL2": lambda x, d, k: torch.sqrt((x * x).sum(dim=d, keepdim=k)),
    "ReduceL1": lambda x, d, k: x.abs().sum(dim=d, keepdim=k),
}


@register(*_REDUCE)
def _reduce(ctx: NodeCtx) -> RunFn:
    reducer = _REDUCE[ctx.op_type]
    since = 13 if ctx.op_type == "ReduceSum" else 18
    from_input, static_axes = _axes_attr_or_input(ctx, since)
    keep = bool(ctx.attr("keepdims", 1))
    noop = bool(ctx.attr("noop_with_empty_axes", 0))

    def run(x: torch.Tensor, axes_t: torch.Tensor | None = None) -> torch.Tensor:
        axes = static_axes
        if axes is None and from_input and axes_t is not None:
            axes = [int(a) for a in axes_t.reshape(-1).tolist()]
        if not axes:
            if noop:
                return x
            axes = list(range(x.dim()))
        return reducer(x, tuple(a % x.dim() for a in axes), keep)

    return run


@register("ArgMax", "ArgMin")
def _arg(ctx: NodeCtx) -> RunFn:
    axis = int(ctx.attr("axis", 0))
    keep = bool(ctx.attr("keepdims", 1))
    if int(ctx.attr("select_last_index", 0)):
        raise ctx.error("select_last_index=1 is not supported.")
    fn = torch.argmax if ctx.op_type == "ArgMax" else torch.argmin
    return lambda x: fn(x, dim=axis, keepdim=keep)


# ----------------------------------------------------------------------------- shape manipulation


@register("Shape")
def _shape(ctx: NodeCtx) -> RunFn:
    start = ctx.attr("start")
    end = ctx.attr("end")

    def run(x: torch.Tensor) -> torch.Tensor:
        dims = list(x.shape)[slice(start, end)]
        return torch.tensor(dims, dtype=torch.int64)

    return run


@register("Size")
def _size(ctx: NodeCtx) -> RunFn:
    return lambda x: torch.tensor(x.numel(), dtype=torch.int64)


def _reshape_target(in_shape: Sequence[int], target: list[int], allowzero: bool) -> list[int]:
    if not allowzero:
        target = [in_shape[i] if t == 0 and i < len(in_shape) else t for i, t in enumerate(target)]
    return target


@register("Reshape")
def _reshape(ctx: NodeCtx) -> RunFn:
    allowzero = bool(ctx.attr("allowzero", 0))
    static = [int(s) for s in ctx.attr("shape")] if ctx.opset < 5 else ctx.const_ints(1)
    # A graph exported with a fixed batch of 1 often flattens with a constant [1, K]: when the
    # running batch is larger, the leading 1 means "the batch".
    batch_fix = bool(ctx.fixed_batch_one and static and static[0] == 1)
    state = ctx.state

    def run(x: torch.Tensor, shape: torch.Tensor | None = None) -> torch.Tensor:
        target = _ints(static, shape)
        assert target is not None
        target = _reshape_target(x.shape, list(target), allowzero)
        if batch_fix and state.batch != 1 and x.dim() > 0 and x.shape[0] == state.batch:
            target[0] = state.batch
        return x.reshape(target)

    return run


@register("Flatten")
def _flatten(ctx: NodeCtx) -> RunFn:
    axis = int(ctx.attr("axis", 1))

    def run(x: torch.Tensor) -> torch.Tensor:
        a = axis % x.dim() if axis < 0 else axis
        lead = int(math.prod(x.shape[:a]))
        return x.reshape(lead, int(math.prod(x.shape[a:])))

    return run


@register("Transpose")
def _transpose(ctx: NodeCtx) -> RunFn:
    perm = ctx.attr("perm")

    def run(x: torch.Tensor) -> torch.Tensor:
        p = [int(v) for v in perm] if perm is not None else list(reversed(range(x.dim())))
        return x.permute(p)

    return run


@register("Squeeze")
def _squeeze(ctx: NodeCtx) -> RunFn:
    from_input, static_axes = _axes_attr_or_input(ctx, 13)

    def run(x: torch.Tensor, axes_t: torch.Tensor | None = None) -> torch.Tensor:
        axes = _ints(static_axes, axes_t if from_input else None)
        if axes is None:
            return x.squeeze()
        if x.dim() == 0:
            return x
        return x.squeeze(tuple(a % x.dim() for a in axes))

    return run


@register("Unsqueeze")
def _unsqueeze(ctx: NodeCtx) -> RunFn:
    _, static_axes = _axes_attr_or_input(ctx, 13)
    fail = ctx.error("missing axes.")

    def run(x: torch.Tensor, axes_t: torch.Tensor | None = None) -> torch.Tensor:
        axes = _ints(static_axes, axes_t)
        if axes is None:
            raise fail
        rank = x.dim() + len(axes)
        for a in sorted(a % rank for a in axes):
            x = x.unsqueeze(a)
        return x

    return run


@register("Concat")
def _concat(ctx: NodeCtx) -> RunFn:
    axis = int(ctx.attr("axis"))

    def run(*xs: torch.Tensor) -> torch.Tensor:
        parts = [x for x in xs if x is not None]
        devices = {p.device for p in parts}
        if len(devices) > 1:
            target = next(p.device for p in parts if p.device.type != "cpu")
            parts = [p.to(target) for p in parts]
        return torch.cat(parts, dim=axis)

    return run


@register("Split")
def _split(ctx: NodeCtx) -> RunFn:
    axis = int(ctx.attr("axis", 0))
    parts = int(ctx.attr("num_outputs", len(ctx.outputs_used)))
    if ctx.opset >= 13:
        static = ctx.const_ints(1)
    else:
        static = [int(v) for v in ctx.attr("split")] if ctx.attr("split") else None

    def run(x: torch.Tensor, split_t: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        sizes = _ints(static, split_t)
        if sizes is None:
            dim = x.shape[axis]
            chunk = -(-dim // parts)
            sizes = [min(chunk, dim - i * chunk) for i in range(parts)]
        return tuple(torch.split(x, list(sizes), dim=axis))

    return run


@register("Slice")
def _slice(ctx: NodeCtx) -> RunFn:
    if ctx.opset < 10:
        starts_s: list[int] | None = [int(v) for v in ctx.attr("starts")]
        ends_s: list[int] | None = [int(v) for v in ctx.attr("ends")]
        axes_attr = ctx.attr("axes")
        axes_s: list[int] | None = [int(v) for v in axes_attr] if axes_attr is not None else None
        steps_s: list[int] | None = None
    else:
        starts_s, ends_s = ctx.const_ints(1), ctx.const_ints(2)
        axes_s, steps_s = ctx.const_ints(3), ctx.const_ints(4)

    def run(
        x: torch.Tensor,
        starts_t: torch.Tensor | None = None,
        ends_t: torch.Tensor | None = None,
        axes_t: torch.Tensor | None = None,
        steps_t: torch.Tensor | None = None,
    ) -> torch.Tensor:
        starts = _ints(starts_s, starts_t) or []
        ends = _ints(ends_s, ends_t) or []
        axes = _ints(axes_s, axes_t) or list(range(len(starts)))
        steps = _ints(steps_s, steps_t) or [1] * len(starts)
        for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
            a = axis % x.dim()
            dim = x.shape[a]
            if step > 0:
                s = min(max(start + dim if start < 0 else start, 0), dim)
                e = min(max(end + dim if end < 0 else end, 0), dim)
                if step == 1:
                    x = x.narrow(a, s, max(e - s, 0))
                else:
                    x = x[(slice(None),) * a + (slice(s, e, step),)]
            else:
                s = min(max(start + dim if start < 0 else start, 0), dim - 1)
                e = min(max(end + dim if end < 0 else end, -1), dim - 1)
                x = x.index_select(a, torch.arange(s, e, step, device=x.device))
        return x

    return run


@register("Gather")
def _gather(ctx: NodeCtx) -> RunFn:
    axis = int(ctx.attr("axis", 0))
    static = ctx.const(1)
    scalar = int(static) if static is not None and static.ndim == 0 else None

    def run(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        a = axis % x.dim()
        dim = x.shape[a]
        if scalar is not None:
            return x.select(a, scalar + dim if scalar < 0 else scalar)
        if idx.device != x.device:
            idx = idx.to(x.device)
        idx = idx.long()
        flat = torch.where(idx < 0, idx + dim, idx).reshape(-1)
        out = x.index_select(a, flat)
        return out.reshape(list(x.shape[:a]) + list(idx.shape) + list(x.shape[a + 1 :]))

    return run


@register("GatherElements")
def _gather_elements(ctx: NodeCtx) -> RunFn:
    axis = int(ctx.attr("axis", 0))

    def run(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.to(x.device).long()
        dim = x.shape[axis]
        return torch.gather(x, axis, torch.where(idx < 0, idx + dim, idx))

    return run


def _broadcast_shape(a: list[int], b: list[int]) -> list[int]:
    """Numpy broadcasting of two shapes (torch.broadcast_shapes imports sympy on first use)."""
    rank = max(len(a), len(b))
    a = [1] * (rank - len(a)) + a
    b = [1] * (rank - len(b)) + b
    return [max(x, y) if min(x, y) == 1 else x for x, y in zip(a, b, strict=True)]


@register("Expand")
def _expand(ctx: NodeCtx) -> RunFn:
    static = ctx.const_ints(1)

    def run(x: torch.Tensor, shape_t: torch.Tensor) -> torch.Tensor:
        shape = _ints(static, shape_t)
        assert shape is not None
        return x.expand(_broadcast_shape(list(x.shape), shape))

    return run


@register("Tile")
def _tile(ctx: NodeCtx) -> RunFn:
    static = ctx.const_ints(1)

    def run(x: torch.Tensor, repeats_t: torch.Tensor) -> torch.Tensor:
        repeats = _ints(static, repeats_t)
        assert repeats is not None
        return x.repeat(repeats)

    return run


@register("ConstantOfShape")
def _constant_of_shape(ctx: NodeCtx) -> RunFn:
    value = ctx.attr("value")
    fill = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value).reshape(-1)
    dtype = torch.from_numpy(fill.copy()).dtype
    fill_value = fill[0].item()
    static = ctx.const_ints(0)

    def run(shape_t: torch.Tensor) -> torch.Tensor:
        shape = _ints(static, shape_t)
        assert shape is not None
        return torch.full(shape, fill_value, dtype=dtype, device=shape_t.device)

    return run


@register("Range")
def _range(ctx: NodeCtx) -> RunFn:
    def run(start: torch.Tensor, limit: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return torch.arange(
            start.item(), limit.item(), delta.item(), dtype=start.dtype, device=start.device
        )

    return run


@register("Pad")
def _pad(ctx: NodeCtx) -> RunFn:
    mode = ctx.attr("mode", "constant")
    modes = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
    torch_mode = modes.get(mode)
    if torch_mode is None:
        raise ctx.error(f"pad mode '{mode}' is not supported.")
    value_s: float | None = None
    if ctx.opset < 11:
        pads_s: list[int] | None = [int(p) for p in ctx.attr("pads", ctx.attr("paddings", []))]
        value_s = float(ctx.attr("value", 0.0))
        axes_s: list[int] | None = None
    else:
        pads_s, axes_s = ctx.const_ints(1), ctx.const_ints(3)
        value_c = ctx.const(2)
        if value_c is not None:
            value_s = float(np.asarray(value_c).reshape(-1)[0])
        elif not ctx.has(2):
            value_s = 0.0

    def run(
        x: torch.Tensor,
        pads_t: torch.Tensor | None = None,
        value_t: torch.Tensor | None = None,
        axes_t: torch.Tensor | None = None,
    ) -> torch.Tensor:
        pads = _ints(pads_s, pads_t) or []
        axes = _ints(axes_s, axes_t)
        rank = x.dim()
        if axes is not None:
            full = [0] * (2 * rank)
            k = len(axes)
            for j, a in enumerate(axes):
                full[a % rank] = pads[j]
                full[a % rank + rank] = pads[j + k]
            pads = full
        tp = _torch_pads(pads)
        while len(tp) >= 2 and tp[-1] == 0 and tp[-2] == 0:
            tp = tp[:-2]  # torch pads trailing dims only; drop untouched leading dims
        if torch_mode == "constant":
            if value_s is not None:
                value = value_s
            else:
                value = float(value_t.item()) if value_t is not None and value_t.numel() else 0.0
            return F.pad(x, tp, mode="constant", value=value)
        if not tp:
            return x
        return F.pad(x, tp, mode=torch_mode)

    return run


# ----------------------------------------------------------------------------- quantization


def _scalar_zero_point(ctx: NodeCtx) -> float | None:
    """A constant per-tensor zero point as a Python number (no tensor traffic per forward)."""
    zp = ctx.const(2)
    if zp is None or np.asarray(zp).size != 1:
        return None
    return float(np.asarray(zp).reshape(-1)[0])


def _quant_axis(ctx: NodeCtx) -> int | None:
    if ctx.attr("block_size"):
        raise ctx.error("blocked quantization (block_size) is not supported.")
    return int(ctx.attr("axis", 1))


@register("QuantizeLinear")
def _quantize(ctx: NodeCtx) -> RunFn:
    axis = _quant_axis(ctx)
    zp_const = ctx.const(2)
    out_type = int(ctx.attr("output_dtype", 0))
    code_dtype: np.dtype | None = np.dtype(np.uint8)
    if zp_const is not None:
        code_dtype = np.asarray(zp_const).dtype
    elif out_type:
        code_dtype = np.dtype(QUANT_RANGES[out_type][0]) if out_type in QUANT_RANGES else None
    if code_dtype is None or code_dtype not in NP_RANGES:
        raise ctx.error(
            f"quantization to {code_dtype} is not supported (int8/uint8/int16/uint16 are)."
        )
    qmin, qmax = NP_RANGES[code_dtype]
    as_float = ctx.codes_only_to_dequantize
    torch_codes = TORCH_CODE_DTYPES[code_dtype]
    zp_static = _scalar_zero_point(ctx)

    def run(x: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor | None = None) -> torch.Tensor:
        z = zp_static if zp_static is not None or zp is None else zp
        codes = fake_quantize_codes(
            x, scale, 0.0 if z is None else z, qmin, qmax, axis if scale.dim() == 1 else None
        )
        return codes if as_float else codes.detach().to(torch_codes)

    return run


@register("DequantizeLinear")
def _dequantize(ctx: NodeCtx) -> RunFn:
    axis = _quant_axis(ctx)
    zp_static = _scalar_zero_point(ctx)

    def run(q: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor | None = None) -> torch.Tensor:
        z = zp_static if zp_static is not None or zp is None else zp
        return dequantize_tensor(q, scale, z, axis if scale.dim() == 1 else None)

    return run
