"""Shape, Size, Reshape, Flatten, Transpose, Squeeze, Unsqueeze."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from nfdeploy.torchify import shape_values as sv
from nfdeploy.torchify.ops._common import axes_attr_or_input, ints
from nfdeploy.torchify.registry import NodeCtx, RunFn, converter, shape_variant


@converter("Shape")
def _shape(ctx: NodeCtx) -> RunFn:
    start = ctx.attr("start")
    end = ctx.attr("end")

    def run(x: torch.Tensor) -> torch.Tensor:
        dims = list(x.shape)[slice(start, end)]
        return torch.tensor(dims, dtype=torch.int64)

    return run


@converter("Size")
def _size(ctx: NodeCtx) -> RunFn:
    return lambda x: torch.tensor(x.numel(), dtype=torch.int64)


def _reshape_target(in_shape: Sequence[int], target: list[int], allowzero: bool) -> list[int]:
    if not allowzero:
        target = [in_shape[i] if t == 0 and i < len(in_shape) else t for i, t in enumerate(target)]
    return target


@converter("Reshape", int_inputs=(1,))
def _reshape(ctx: NodeCtx) -> RunFn:
    allowzero = bool(ctx.attr("allowzero", 0))
    static = [int(s) for s in ctx.attr("shape")] if ctx.opset < 5 else ctx.const_ints(1)
    # A graph exported with a fixed batch of 1 often flattens with a constant [1, K]: when the
    # running batch is larger, the leading 1 means "the batch".
    batch_fix = bool(ctx.fixed_batch_one and static and static[0] == 1)
    state = ctx.state

    def run(x: torch.Tensor, shape: torch.Tensor | None = None) -> torch.Tensor:
        target = ints(static, shape)
        assert target is not None
        target = _reshape_target(x.shape, list(target), allowzero)
        if batch_fix and state.batch != 1 and x.dim() > 0 and x.shape[0] == state.batch:
            target[0] = state.batch
        return x.reshape(target)

    return run


@converter("Flatten")
def _flatten(ctx: NodeCtx) -> RunFn:
    axis = int(ctx.attr("axis", 1))

    def run(x: torch.Tensor) -> torch.Tensor:
        a = axis % x.dim() if axis < 0 else axis
        lead = int(math.prod(x.shape[:a]))
        return x.reshape(lead, int(math.prod(x.shape[a:])))

    return run


@converter("Transpose")
def _transpose(ctx: NodeCtx) -> RunFn:
    perm = ctx.attr("perm")

    def run(x: torch.Tensor) -> torch.Tensor:
        p = [int(v) for v in perm] if perm is not None else list(reversed(range(x.dim())))
        return x.permute(p)

    return run


@converter("Squeeze", int_inputs=(1,))
def _squeeze(ctx: NodeCtx) -> RunFn:
    from_input, static_axes = axes_attr_or_input(ctx, 13)

    def run(x: torch.Tensor, axes_t: torch.Tensor | None = None) -> torch.Tensor:
        axes = ints(static_axes, axes_t if from_input else None)
        if axes is None:
            return x.squeeze()
        if x.dim() == 0:
            return x
        return x.squeeze(tuple(a % x.dim() for a in axes))

    return run


@converter("Unsqueeze", int_inputs=(1,))
def _unsqueeze(ctx: NodeCtx) -> RunFn:
    _, static_axes = axes_attr_or_input(ctx, 13)
    fail = ctx.error("missing axes.")

    def run(x: torch.Tensor, axes_t: torch.Tensor | None = None) -> torch.Tensor:
        axes = ints(static_axes, axes_t)
        if axes is None:
            raise fail
        rank = x.dim() + len(axes)
        for a in sorted(a % rank for a in axes):
            x = x.unsqueeze(a)
        return x

    return run


# Python shape-value variants (see nfdeploy.torchify.shape_values)


def _py_dims(value: Any) -> list[int]:
    """The shape of a tensor, or of a Python shape value (a list is 1-D, a number 0-D)."""
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    return [len(value)] if isinstance(value, list) else []


@shape_variant("Shape")
def _py_shape(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> RunFn | None:
    start, end = ctx.attr("start"), ctx.attr("end")
    return lambda x: _py_dims(x)[slice(start, end)]


@shape_variant("Size")
def _py_size(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> RunFn | None:
    return lambda x: math.prod(_py_dims(x))


@shape_variant("Reshape")
def _py_reshape(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> RunFn | None:
    target = sv.const(ctx, 1)
    if not isinstance(target, list) or len(target) > 1 or any(shape_inputs[1:]):
        return None
    data = sv.arg(ctx, shape_inputs, 0)

    def run(*args: Any) -> Any:
        v = data(args)
        flat = v if isinstance(v, list) else [v]
        if not target:  # to a scalar
            if len(flat) != 1:
                raise ValueError("Reshape of a shape value to a scalar")
            return flat[0]
        return list(flat)

    return run


def _py_axes(ctx: NodeCtx) -> list[int] | None:
    axes = ctx.attr("axes") if ctx.opset < 13 else sv.const(ctx, 1)
    return None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]


@shape_variant("Unsqueeze")
def _py_unsqueeze(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> RunFn | None:
    if _py_axes(ctx) not in ([0], [-1]):
        return None
    data = sv.arg(ctx, shape_inputs, 0)

    def run(*args: Any) -> Any:
        v = data(args)
        if isinstance(v, list):
            raise ValueError("Unsqueeze of a 1-D shape value")
        return [v]

    return run


@shape_variant("Squeeze")
def _py_squeeze(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> RunFn | None:
    if _py_axes(ctx) not in (None, [0], [-1]):
        return None
    data = sv.arg(ctx, shape_inputs, 0)

    def run(*args: Any) -> Any:
        v = data(args)
        if not isinstance(v, list) or len(v) != 1:
            raise ValueError("Squeeze of a shape value that is not [v]")
        return v[0]

    return run
