"""Shape arithmetic in plain Python.

Exporters compute reshape targets at runtime (``Shape -> Gather -> Unsqueeze -> Concat ->
Reshape``). Running those nodes as torch ops on tiny int64 tensors costs a ``.tolist()`` per
forward and breaks ``torch.compile`` graphs, so values derived only from ``Shape`` (and
constants) are kept as Python ints / lists of ints instead: a 0-D value is an ``int`` (or
``float`` / ``bool``), a 1-D value a ``list``. Operators that read such a value as
integers (``Reshape``'s shape, ``Slice``'s starts, ...) take the list directly; anything else
gets a tensor (see :func:`to_tensor`).

A builder returns ``None`` when it cannot handle a case in Python; the node then runs as a
torch op on tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from nfdeploy.torchify.ops import NodeCtx

PyValue = Any  # int | float | bool | list[int | float | bool]
PyFn = Callable[..., PyValue]

#: (op_type, input index) pairs whose runtime implementation accepts a Python list of ints.
INT_CONSUMERS: frozenset[tuple[str, int]] = frozenset(
    {
        ("Reshape", 1),
        ("Expand", 1),
        ("Tile", 1),
        ("ConstantOfShape", 0),
        ("Slice", 1),
        ("Slice", 2),
        ("Slice", 3),
        ("Slice", 4),
        ("Squeeze", 1),
        ("Unsqueeze", 1),
        ("Split", 1),
        ("Pad", 1),
        ("Pad", 3),
        ("ReduceMean", 1),
        ("ReduceSum", 1),
        ("ReduceMax", 1),
        ("ReduceMin", 1),
        ("ReduceSumSquare", 1),
        ("ReduceL1", 1),
        ("ReduceL2", 1),
    }
)

_INT_TYPES = {2, 3, 4, 5, 6, 7, 12, 13}  # ONNX integer element types
_FLOAT_TYPES = {1, 10, 11, 16}


def to_tensor(value: PyValue) -> torch.Tensor:
    """A Python shape value as the tensor ONNX would have (int64 for integers)."""
    sample = value[0] if isinstance(value, list) and value else value
    if isinstance(sample, bool):
        return torch.tensor(value, dtype=torch.bool)
    if isinstance(sample, float):
        return torch.tensor(value, dtype=torch.float32)
    return torch.tensor(value, dtype=torch.int64)


def _const(ctx: NodeCtx, i: int) -> PyValue | None:
    value = ctx.const(i)
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.ndim > 1:
        return None
    return arr.tolist()


_BUILDERS: dict[str, Callable[[NodeCtx, tuple[bool, ...]], PyFn | None]] = {}


def _register(*ops: str) -> Callable[[Callable[[NodeCtx, tuple[bool, ...]], PyFn | None]], Any]:
    def deco(fn: Callable[[NodeCtx, tuple[bool, ...]], PyFn | None]) -> Any:
        for op in ops:
            _BUILDERS[op] = fn
        return fn

    return deco


def build(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> PyFn | None:
    """A Python implementation of ``ctx``'s node, or ``None``.

    ``shape_inputs[i]`` tells whether input ``i`` is a runtime shape value (else: a constant
    known in ``ctx``, or absent). Shape values arrive as Python values; constants are read
    from ``ctx`` at build time.
    """
    builder = _BUILDERS.get(ctx.op_type)
    if builder is None:
        return None
    if ctx.op_type in ("Shape", "Size"):
        return builder(ctx, shape_inputs)
    for i, is_shape in enumerate(shape_inputs):
        if not is_shape and ctx.has(i) and _const(ctx, i) is None:
            return None  # a constant we cannot express (rank > 1)
    return builder(ctx, shape_inputs)


def _arg(ctx: NodeCtx, shape_inputs: tuple[bool, ...], i: int) -> Callable[[tuple[Any, ...]], Any]:
    """Getter for input ``i``: the runtime value for shape inputs, else the constant."""
    if i < len(shape_inputs) and shape_inputs[i]:
        return lambda args: args[i]
    value = _const(ctx, i)
    return lambda args: value


@_register("Shape")
def _shape(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> PyFn | None:
    start, end = ctx.attr("start"), ctx.attr("end")
    return lambda x: list(x.shape)[slice(start, end)]


@_register("Size")
def _size(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> PyFn | None:
    return lambda x: math.prod(x.shape)


@_register("Identity")
def _identity(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> PyFn | None:
    return lambda v: v


@_register("Gather")
def _gather(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> PyFn | None:
    if int(ctx.attr("axis", 0)) != 0:
        return None
    data, idx = _arg(ctx, shape_inputs, 0), _arg(ctx, shape_inputs, 1)

    def run(*args: Any) -> PyValue:
        d, i = data(args), idx(args)
        if not isinstance(d, list):
            raise ValueError("Gather on a scalar")
        if isinstance(i, list):
            return [d[int(j)] for j in i]
        return d[int(i)]

    return run


@_register("Unsqueeze")
def _unsqueeze(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> PyFn | None:
    axes = ctx.attr("axes") if ctx.opset < 13 else _const(ctx, 1)
    if axes is None or [int(a) for a in np.asarray(axes).reshape(-1)] not in ([0], [-1]):
        return None
    data = _arg(ctx, shape_inputs, 0)

    def run(*args: Any) -> PyValue:
        v = data(args)
        if isinstance(v, list):
            raise ValueError("Unsqueeze of a 1-D shape value")
        return [v]

    return run


@_register("Squeeze")
def _squeeze(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> PyFn | None:
    axes = ctx.attr("axes") if ctx.opset < 13 else _const(ctx, 1)
    if axes is not None and [int(a) for a in np.asarray(axes).reshape(-1)] not in ([0], [-1]):
        return None
    data = _arg(ctx, shape_inputs, 0)

    def run(*args: Any) -> PyValue:
        v = data(args)
        if not isinstance(v, list) or len(v) != 1:
            raise ValueError("Squeeze of a shape value that is not [v]")
        return v[0]

    return run


@_register("Concat")
def _concat(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> PyFn | None:
    if int(ctx.attr("axis", 0)) not in (0, -1):
        return None
    parts = [_arg(ctx, shape_inputs, i) for i in range(len(ctx.inputs)) if ctx.has(i)]

    def run(*args: Any) -> PyValue:
        out: list[Any] = []
        for part in parts:
            v = part(args)
            if not isinstance(v, list):
                raise ValueError("Concat of a scalar")
            out.extend(v)
        return out

    return run


@_register("Slice")
def _slice(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> PyFn | None:
    if ctx.opset < 10:
        starts, ends = ctx.attr("starts"), ctx.attr("ends")
        axes, steps = ctx.attr("axes"), None
    else:
        if any(shape_inputs[1:]):
            return None
        starts, ends, axes, steps = (_const(ctx, i) for i in (1, 2, 3, 4))
    if starts is None or ends is None or len(starts) != 1:
        return None
    if axes is not None and [int(a) for a in axes] not in ([0], [-1]):
        return None
    if steps is not None and [int(s) for s in steps] != [1]:
        return None
    start, end = int(starts[0]), int(ends[0])
    data = _arg(ctx, shape_inputs, 0)

    def run(*args: Any) -> PyValue:
        v = data(args)
        dim = len(v)
        s = min(max(start + dim if start < 0 else start, 0), dim)
        e = min(max(end + dim if end < 0 else end, 0), dim)
        return v[s:e]

    return run


@_register("Reshape")
def _reshape(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> PyFn | None:
    target = _const(ctx, 1)
    if not isinstance(target, list) or len(target) > 1 or any(shape_inputs[1:]):
        return None
    data = _arg(ctx, shape_inputs, 0)

    def run(*args: Any) -> PyValue:
        v = data(args)
        flat = v if isinstance(v, list) else [v]
        if not target:  # to a scalar
            if len(flat) != 1:
                raise ValueError("Reshape of a shape value to a scalar")
            return flat[0]
        return list(flat)

    return run


@_register("Cast")
def _cast(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> PyFn | None:
    to = int(ctx.attr("to"))
    if to in _INT_TYPES:
        convert: Callable[[Any], Any] = lambda v: int(v)  # noqa: E731 - int() truncates
    elif to in _FLOAT_TYPES:
        convert = float
    elif to == 9:
        convert = bool
    else:
        return None
    data = _arg(ctx, shape_inputs, 0)

    def run(*args: Any) -> PyValue:
        v = data(args)
        return [convert(e) for e in v] if isinstance(v, list) else convert(v)

    return run


def _int_div(a: Any, b: Any) -> Any:
    if isinstance(a, float) or isinstance(b, float):
        return a / b
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


_ELEMENTWISE: dict[str, Callable[[Any, Any], Any]] = {
    "Add": lambda a, b: a + b,
    "Sub": lambda a, b: a - b,
    "Mul": lambda a, b: a * b,
    "Div": _int_div,
    "Equal": lambda a, b: a == b,
    "Less": lambda a, b: a < b,
    "Greater": lambda a, b: a > b,
    "Max": max,
    "Min": min,
}


def _broadcast(fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    if isinstance(a, list) and isinstance(b, list):
        if len(a) == len(b):
            return [fn(x, y) for x, y in zip(a, b, strict=True)]
        if len(a) == 1:
            return [fn(a[0], y) for y in b]
        if len(b) == 1:
            return [fn(x, b[0]) for x in a]
        raise ValueError("incompatible shape values")
    if isinstance(a, list):
        return [fn(x, b) for x in a]
    if isinstance(b, list):
        return [fn(a, y) for y in b]
    return fn(a, b)


@_register(*_ELEMENTWISE)
def _elementwise(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> PyFn | None:
    fn = _ELEMENTWISE[ctx.op_type]
    if ctx.op_type in ("Max", "Min") and len(ctx.inputs) != 2:
        return None
    a, b = _arg(ctx, shape_inputs, 0), _arg(ctx, shape_inputs, 1)
    return lambda *args: _broadcast(fn, a(args), b(args))


@_register("Where")
def _where(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> PyFn | None:
    c, a, b = (_arg(ctx, shape_inputs, i) for i in range(3))

    def run(*args: Any) -> PyValue:
        cond, x, y = c(args), a(args), b(args)
        n = max(len(v) if isinstance(v, list) else 1 for v in (cond, x, y))
        if not any(isinstance(v, list) for v in (cond, x, y)):
            return x if cond else y

        def at(v: Any, i: int) -> Any:
            return v[i if len(v) > 1 else 0] if isinstance(v, list) else v

        return [at(x, i) if at(cond, i) else at(y, i) for i in range(n)]

    return run


@_register("ReduceProd")
def _reduce_prod(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> PyFn | None:
    keep = bool(ctx.attr("keepdims", 1))
    if ctx.opset >= 18 and ctx.has(1):
        return None
    data = _arg(ctx, shape_inputs, 0)

    def run(*args: Any) -> PyValue:
        v = data(args)
        p = math.prod(v) if isinstance(v, list) else v
        return [p] if keep else p

    return run
