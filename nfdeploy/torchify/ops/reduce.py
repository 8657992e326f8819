"""Reduce* over axes, ArgMax / ArgMin."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nfdeploy.torchify.ops._common import axes_attr_or_input, ints
from nfdeploy.torchify.registry import NodeCtx, RunFn, converter

_REDUCE: dict[str, Callable[[torch.Tensor, tuple[int, ...], bool], torch.Tensor]] = {
    "ReduceMean": lambda x, d, k: x.mean(dim=d, keepdim=k),
    "ReduceSum": lambda x, d, k: x.sum(dim=d, keepdim=k),
    "ReduceMax": lambda x, d, k: x.amax(dim=d, keepdim=k),
    "ReduceMin": lambda x, d, k: x.amin(dim=d, keepdim=k),
    "ReduceSumSquare": lambda x, d, k: (x * x).sum(dim=d, keepdim=k),
    "ReduceL2": lambda x, d, k: torch.sqrt((x * x).sum(dim=d, keepdim=k)),
    "ReduceL1": lambda x, d, k: x.abs().sum(dim=d, keepdim=k),
}


@converter(*_REDUCE, int_inputs=(1,))
def _reduce(ctx: NodeCtx) -> RunFn:
    reducer = _REDUCE[ctx.op_type]
    since = 13 if ctx.op_type == "ReduceSum" else 18
    from_input, static_axes = axes_attr_or_input(ctx, since)
    keep = bool(ctx.attr("keepdims", 1))
    noop = bool(ctx.attr("noop_with_empty_axes", 0))

    def run(x: torch.Tensor, axes_t: torch.Tensor | list[int] | None = None) -> torch.Tensor:
        axes = ints(static_axes, axes_t if from_input else None)
        if not axes:
            if noop:
                return x
            axes = list(range(x.dim()))
        return reducer(x, tuple(a % x.dim() for a in axes), keep)

    return run


@converter("ArgMax", "ArgMin")
def _arg(ctx: NodeCtx) -> RunFn:
    axis = int(ctx.attr("axis", 0))
    keep = bool(ctx.attr("keepdims", 1))
    if int(ctx.attr("select_last_index", 0)):
        raise ctx.error("select_last_index=1 is not supported.")
    fn = torch.argmax if ctx.op_type == "ArgMax" else torch.argmin
    return lambda x: fn(x, dim=axis, keepdim=keep)
