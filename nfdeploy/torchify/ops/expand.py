"""Operators that build a larger tensor: Expand, Tile, ConstantOfShape, Range, Pad."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nfdeploy.torchify.ops._common import ints
from nfdeploy.torchify.ops._padding import torch_pads
from nfdeploy.torchify.registry import NodeCtx, RunFn, converter


def _broadcast_shape(a: list[int], b: list[int]) -> list[int]:
    """Numpy broadcasting of two shapes (torch.broadcast_shapes imports sympy on first use)."""
    rank = max(len(a), len(b))
    a = [1] * (rank - len(a)) + a
    b = [1] * (rank - len(b)) + b
    return [max(x, y) if min(x, y) == 1 else x for x, y in zip(a, b, strict=True)]


@converter("Expand", int_inputs=(1,))
def _expand(ctx: NodeCtx) -> RunFn:
    static = ctx.const_ints(1)

    def run(x: torch.Tensor, shape_t: torch.Tensor) -> torch.Tensor:
        shape = ints(static, shape_t)
        assert shape is not None
        return x.expand(_broadcast_shape(list(x.shape), shape))

    return run


@converter("Tile", int_inputs=(1,))
def _tile(ctx: NodeCtx) -> RunFn:
    static = ctx.const_ints(1)

    def run(x: torch.Tensor, repeats_t: torch.Tensor) -> torch.Tensor:
        repeats = ints(static, repeats_t)
        assert repeats is not None
        return x.repeat(repeats)

    return run


@converter("ConstantOfShape", int_inputs=(0,))
def _constant_of_shape(ctx: NodeCtx) -> RunFn:
    value = ctx.attr("value")
    fill = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value).reshape(-1)
    dtype = torch.from_numpy(fill.copy()).dtype
    fill_value = fill[0].item()
    static = ctx.const_ints(0)

    def run(shape_t: torch.Tensor | list[int]) -> torch.Tensor:
        shape = ints(static, shape_t)
        assert shape is not None
        device = shape_t.device if isinstance(shape_t, torch.Tensor) else None  # list: CPU
        return torch.full(shape, fill_value, dtype=dtype, device=device)

    return run


@converter("Range")
def _range(ctx: NodeCtx) -> RunFn:
    def run(start: torch.Tensor, limit: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return torch.arange(
            start.item(), limit.item(), delta.item(), dtype=start.dtype, device=start.device
        )

    return run


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


def _pad_mode(ctx: NodeCtx) -> str:
    mode = ctx.attr("mode", "constant")
    if mode not in _PAD_MODES:
        raise ctx.error(f"pad mode '{mode}' is not supported.")
    return _PAD_MODES[mode]


@converter("Pad", opsets=(1, 10))
def _pad_attrs(ctx: NodeCtx) -> RunFn:
    mode = _pad_mode(ctx)
    pads = [int(p) for p in ctx.attr("pads", ctx.attr("paddings", []))]
    return _padder(mode, pads, float(ctx.attr("value", 0.0)), None)


@converter("Pad", opsets=(11, None), int_inputs=(1, 3))
def _pad(ctx: NodeCtx) -> RunFn:
    mode = _pad_mode(ctx)
    value_c = ctx.const(2)
    value: float | None = None
    if value_c is not None:
        value = float(np.asarray(value_c).reshape(-1)[0])
    elif not ctx.has(2):
        value = 0.0
    return _padder(mode, ctx.const_ints(1), value, ctx.const_ints(3))


def _on_every_axis(pads: list[int], axes: list[int], rank: int) -> list[int]:
    """ONNX pads for the listed ``axes`` as pads for all ``rank`` axes."""
    full = [0] * (2 * rank)
    k = len(axes)
    for j, a in enumerate(axes):
        full[a % rank] = pads[j]
        full[a % rank + rank] = pads[j + k]
    return full


def _trimmed_torch_pads(pads: list[int]) -> list[int]:
    tp = torch_pads(pads)
    while len(tp) >= 2 and tp[-1] == 0 and tp[-2] == 0:
        tp = tp[:-2]  # torch pads trailing dims only; drop untouched leading dims
    return tp


def _padder(
    torch_mode: str, pads_s: list[int] | None, value_s: float | None, axes_s: list[int] | None
) -> RunFn:
    def run(
        x: torch.Tensor,
        pads_t: torch.Tensor | None = None,
        value_t: torch.Tensor | None = None,
        axes_t: torch.Tensor | None = None,
    ) -> torch.Tensor:
        pads = ints(pads_s, pads_t) or []
        axes = ints(axes_s, axes_t)
        tp = _trimmed_torch_pads(pads if axes is None else _on_every_axis(pads, axes, x.dim()))
        if torch_mode == "constant":
            if value_s is not None:
                value = value_s
            else:
                value = float(value_t.item()) if value_t is not None and value_t.numel() else 0.0
            return F.pad(x, tp, mode="constant", value=value)
        return F.pad(x, tp, mode=torch_mode) if tp else x

    return run
