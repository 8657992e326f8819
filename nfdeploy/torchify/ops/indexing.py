"""Concat, Split, Slice, Gather, GatherElements."""

from __future__ import annotations

from typing import Any

import torch

from nfdeploy.torchify import shape_values as sv
from nfdeploy.torchify.ops._common import ints
from nfdeploy.torchify.registry import NodeCtx, RunFn, converter, shape_variant


@converter("Concat")
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


@converter("Split", int_inputs=(1,))
def _split(ctx: NodeCtx) -> RunFn:
    axis = int(ctx.attr("axis", 0))
    parts = int(ctx.attr("num_outputs", len(ctx.outputs_used)))
    if ctx.opset >= 13:
        static = ctx.const_ints(1)
    else:
        static = [int(v) for v in ctx.attr("split")] if ctx.attr("split") else None

    def run(x: torch.Tensor, split_t: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        sizes = ints(static, split_t)
        if sizes is None:
            dim = x.shape[axis]
            chunk = -(-dim // parts)
            sizes = [min(chunk, dim - i * chunk) for i in range(parts)]
        return tuple(torch.split(x, list(sizes), dim=axis))

    return run


def _slice_axis(x: torch.Tensor, start: int, end: int, axis: int, step: int) -> torch.Tensor:
    a = axis % x.dim()
    dim = x.shape[a]
    if step <= 0:
        s = min(max(start + dim if start < 0 else start, 0), dim - 1)
        e = min(max(end + dim if end < 0 else end, -1), dim - 1)
        return x.index_select(a, torch.arange(s, e, step, device=x.device))
    s = min(max(start + dim if start < 0 else start, 0), dim)
    e = min(max(end + dim if end < 0 else end, 0), dim)
    if step == 1:
        return x.narrow(a, s, max(e - s, 0))
    return x[(slice(None),) * a + (slice(s, e, step),)]


def _slicer(
    starts_s: list[int] | None,
    ends_s: list[int] | None,
    axes_s: list[int] | None,
    steps_s: list[int] | None,
) -> RunFn:
    def run(
        x: torch.Tensor,
        starts_t: torch.Tensor | None = None,
        ends_t: torch.Tensor | None = None,
        axes_t: torch.Tensor | None = None,
        steps_t: torch.Tensor | None = None,
    ) -> torch.Tensor:
        starts = ints(starts_s, starts_t) or []
        ends = ints(ends_s, ends_t) or []
        axes = ints(axes_s, axes_t) or list(range(len(starts)))
        steps = ints(steps_s, steps_t) or [1] * len(starts)
        for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
            x = _slice_axis(x, start, end, axis, step)
        return x

    return run


@converter("Slice", opsets=(1, 9))
def _slice_attrs(ctx: NodeCtx) -> RunFn:
    axes = ctx.attr("axes")
    return _slicer(
        [int(v) for v in ctx.attr("starts")],
        [int(v) for v in ctx.attr("ends")],
        [int(v) for v in axes] if axes is not None else None,
        None,
    )


@converter("Slice", opsets=(10, None), int_inputs=(1, 2, 3, 4))
def _slice(ctx: NodeCtx) -> RunFn:
    return _slicer(*(ctx.const_ints(i) for i in (1, 2, 3, 4)))


@converter("Gather")
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


@converter("GatherElements")
def _gather_elements(ctx: NodeCtx) -> RunFn:
    axis = int(ctx.attr("axis", 0))

    def run(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.to(x.device).long()
        dim = x.shape[axis]
        return torch.gather(x, axis, torch.where(idx < 0, idx + dim, idx))

    return run


# Python shape-value variants (see nfdeploy.torchify.shape_values)


@shape_variant("Concat")
def _py_concat(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> RunFn | None:
    if int(ctx.attr("axis", 0)) not in (0, -1):
        return None
    parts = [sv.arg(ctx, shape_inputs, i) for i in range(len(ctx.inputs)) if ctx.has(i)]

    def run(*args: Any) -> Any:
        out: list[Any] = []
        for part in parts:
            v = part(args)
            if not isinstance(v, list):
                raise ValueError("Concat of a scalar")
            out.extend(v)
        return out

    return run


def _py_slice_args(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> tuple[Any, ...] | None:
    """(starts, ends, axes, steps) when all are known at plan time, else ``None``."""
    if ctx.opset < 10:
        return ctx.attr("starts"), ctx.attr("ends"), ctx.attr("axes"), None
    if any(shape_inputs[1:]):
        return None
    return tuple(sv.const(ctx, i) for i in (1, 2, 3, 4))


@shape_variant("Slice")
def _py_slice(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> RunFn | None:
    starts, ends, axes, steps = _py_slice_args(ctx, shape_inputs) or (None,) * 4
    if starts is None or ends is None or len(starts) != 1:
        return None
    if axes is not None and [int(a) for a in axes] not in ([0], [-1]):
        return None
    if steps is not None and [int(s) for s in steps] != [1]:
        return None
    start, end = int(starts[0]), int(ends[0])
    data = sv.arg(ctx, shape_inputs, 0)

    def run(*args: Any) -> Any:
        v = data(args)
        dim = len(v)
        s = min(max(start + dim if start < 0 else start, 0), dim)
        e = min(max(end + dim if end < 0 else end, 0), dim)
        return v[s:e]

    return run


@shape_variant("Gather")
def _py_gather(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> RunFn | None:
    if int(ctx.attr("axis", 0)) != 0:
        return None
    data, idx = sv.arg(ctx, shape_inputs, 0), sv.arg(ctx, shape_inputs, 1)

    def run(*args: Any) -> Any:
        d, i = data(args), idx(args)
        if not isinstance(d, list):
            raise ValueError("Gather on a scalar")
        if isinstance(i, list):
            return [d[int(j)] for j in i]
        return d[int(i)]

    return run
