"""Shape arithmetic in plain Python.

Exporters compute reshape targets at runtime (``Shape -> Gather -> Unsqueeze -> Concat ->
Reshape``). Running those nodes as torch ops on tiny int64 tensors costs a ``.tolist()`` per
forward and breaks ``torch.compile`` graphs, so values derived only from ``Shape`` (and
constants) are kept as Python ints / lists of ints instead: a 0-D value is an ``int`` (or
``float`` / ``bool``), a 1-D value a ``list``. Operators that read such a value as
integers (``Reshape``'s shape, ``Slice``'s starts, ...: a converter's ``int_inputs``) take
the list directly; anything else gets a tensor (see :func:`to_tensor`).

The Python variants live next to their torch converters in :mod:`nfdeploy.torchify.ops`
(registered with :func:`nfdeploy.torchify.registry.shape_variant`). A variant returns
``None`` when it cannot handle a case in Python; the node then runs as a torch op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from nfdeploy.torchify.registry import Converter, NodeCtx, RunFn

PyValue = Any  # int | float | bool | list[int | float | bool]
Getter = Callable[[tuple[Any, ...]], Any]


def to_tensor(value: PyValue) -> torch.Tensor:
    """A Python shape value as the tensor ONNX would have (int64 for integers)."""
    sample = value[0] if isinstance(value, list) and value else value
    if isinstance(sample, bool):
        return torch.tensor(value, dtype=torch.bool)
    if isinstance(sample, float):
        return torch.tensor(value, dtype=torch.float32)
    return torch.tensor(value, dtype=torch.int64)


def const(ctx: NodeCtx, i: int) -> PyValue | None:
    """Constant input ``i`` as a Python value, or ``None`` (absent, or of rank > 1)."""
    value = ctx.const(i)
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.ndim > 1:
        return None
    return arr.tolist()


def arg(ctx: NodeCtx, shape_inputs: tuple[bool, ...], i: int) -> Getter:
    """Getter for input ``i``: the runtime value for shape inputs, else the constant."""
    if i < len(shape_inputs) and shape_inputs[i]:
        return lambda args: args[i]
    value = const(ctx, i)
    return lambda args: value


def build(entry: Converter, ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> RunFn | None:
    """The Python implementation of ``ctx``'s node, or ``None``.

    ``shape_inputs[i]`` tells whether input ``i`` is a runtime shape value (else: a constant
    known in ``ctx``, or absent). Shape values arrive as Python values; constants are read
    from ``ctx`` at build time.
    """
    if entry.build_shape is None:
        return None
    if ctx.op_type not in ("Shape", "Size") and any(
        not is_shape and ctx.has(i) and const(ctx, i) is None
        for i, is_shape in enumerate(shape_inputs)
    ):
        return None  # a constant we cannot express (rank > 1)
    return entry.build_shape(ctx, shape_inputs)


def broadcast(fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    """``fn`` applied elementwise with numpy broadcasting of scalars and 1-D lists."""
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
