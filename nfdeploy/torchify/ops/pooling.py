"""MaxPool, AveragePool and their global forms."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nfdeploy.torchify.ops._padding import Padding, spatial_list, symmetric, torch_pads
from nfdeploy.torchify.registry import NodeCtx, RunFn, converter


@converter("MaxPool")
def _max_pool(ctx: NodeCtx) -> RunFn:
    if any(ctx.outputs_used[1:]):
        raise ctx.error("the Indices output is not supported.")
    kernel = [int(k) for k in ctx.attr("kernel_shape")]
    n = len(kernel)
    if n not in (1, 2, 3):
        raise ctx.error(f"{n}-D pooling is not supported.")
    strides = spatial_list(ctx.attr("strides"), n, 1)
    dilations = spatial_list(ctx.attr("dilations"), n, 1)
    ceil_mode = bool(ctx.attr("ceil_mode", 0))
    padding = Padding(ctx, n)
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[n]

    def run(x: torch.Tensor) -> torch.Tensor:
        pads = padding.resolve(x.shape[2:], kernel, strides, dilations)
        if symmetric(pads) and all(2 * p <= k for p, k in zip(pads[:n], kernel, strict=True)):
            return pool(x, kernel, strides, pads[:n], dilations, ceil_mode)
        x = F.pad(x, torch_pads(pads), value=-math.inf)
        return pool(x, kernel, strides, 0, dilations, ceil_mode)

    return run


@converter("AveragePool")
def _avg_pool(ctx: NodeCtx) -> RunFn:
    kernel = [int(k) for k in ctx.attr("kernel_shape")]
    n = len(kernel)
    if n not in (1, 2, 3):
        raise ctx.error(f"{n}-D pooling is not supported.")
    if any(int(d) != 1 for d in ctx.attr("dilations", [1] * n)):
        raise ctx.error("dilated average pooling is not supported.")
    strides = spatial_list(ctx.attr("strides"), n, 1)
    ceil_mode = bool(ctx.attr("ceil_mode", 0))
    include_pad = bool(ctx.attr("count_include_pad", 0))
    padding = Padding(ctx, n)
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[n]

    def run(x: torch.Tensor) -> torch.Tensor:
        pads = padding.resolve(x.shape[2:], kernel, strides, [1] * n)
        if symmetric(pads) and all(2 * p <= k for p, k in zip(pads[:n], kernel, strict=True)):
            return pool(x, kernel, strides, pads[:n], ceil_mode, include_pad)
        tp = torch_pads(pads)
        summed = pool(F.pad(x, tp), kernel, strides, 0, ceil_mode, True)
        if include_pad:
            return summed
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
        frac = pool(F.pad(ones, tp), kernel, strides, 0, ceil_mode, True)
        return summed / frac

    return run


@converter("GlobalAveragePool")
def _global_avg_pool(ctx: NodeCtx) -> RunFn:
    return lambda x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


@converter("GlobalMaxPool")
def _global_max_pool(ctx: NodeCtx) -> RunFn:
    return lambda x: x.amax(dim=tuple(range(2, x.dim())), keepdim=True)
