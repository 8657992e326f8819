"""Cast, CastLike, and the pass-through operators Identity and Dropout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from nfdeploy.torchify import shape_values as sv
from nfdeploy.torchify.ops._common import ONNX_TO_TORCH
from nfdeploy.torchify.registry import NodeCtx, RunFn, converter, shape_variant


@converter("Identity")
def _identity(ctx: NodeCtx) -> RunFn:
    return lambda x: x


@converter("Dropout")
def _dropout(ctx: NodeCtx) -> RunFn:
    # Inference semantics; a requested mask output is all-true.
    if len(ctx.outputs_used) > 1 and ctx.outputs_used[1]:
        return lambda x, *rest: (x, torch.ones_like(x, dtype=torch.bool))
    return lambda x, *rest: x


@converter("Cast")
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


@converter("CastLike")
def _cast_like(ctx: NodeCtx) -> RunFn:
    return lambda x, like: x.to(like.dtype)


# Python shape-value variants (see nfdeploy.torchify.shape_values)

_INT_TYPES = {2, 3, 4, 5, 6, 7, 12, 13}  # ONNX integer element types
_FLOAT_TYPES = {1, 10, 11, 16}


@shape_variant("Identity")
def _py_identity(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> RunFn | None:
    return lambda v: v


def _py_converter(to: int) -> Callable[[Any], Any] | None:
    if to in _INT_TYPES:
        return int  # int() truncates toward zero, as ONNX casts do
    if to in _FLOAT_TYPES:
        return float
    return bool if to == 9 else None


@shape_variant("Cast")
def _py_cast(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> RunFn | None:
    convert = _py_converter(int(ctx.attr("to")))
    if convert is None:
        return None
    data = sv.arg(ctx, shape_inputs, 0)

    def run(*args: Any) -> Any:
        v = data(args)
        return [convert(e) for e in v] if isinstance(v, list) else convert(v)

    return run
