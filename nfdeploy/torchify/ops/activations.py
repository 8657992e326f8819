"""Activations: unary maps, parametrised ones (LeakyRelu, Elu, ...), Clip, Softmax."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from nfdeploy.torchify.ops._common import align
from nfdeploy.torchify.registry import Builder, NodeCtx, RunFn, converter


def _unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> Builder:
    def builder(ctx: NodeCtx) -> RunFn:
        return fn

    return builder


converter("Relu")(_unary(torch.relu))
converter("Sigmoid")(_unary(torch.sigmoid))
converter("Tanh")(_unary(torch.tanh))
converter("Exp")(_unary(torch.exp))
converter("Log")(_unary(torch.log))
converter("Sqrt")(_unary(torch.sqrt))
converter("Neg")(_unary(torch.neg))
converter("Abs")(_unary(torch.abs))
converter("Reciprocal")(_unary(torch.reciprocal))
converter("Floor")(_unary(torch.floor))
converter("Ceil")(_unary(torch.ceil))
converter("Round")(_unary(torch.round))
converter("Erf")(_unary(torch.erf))
converter("Sign")(_unary(torch.sign))
converter("Sin")(_unary(torch.sin))
converter("Cos")(_unary(torch.cos))
converter("Not")(_unary(torch.logical_not))
converter("Softplus")(_unary(F.softplus))
converter("Softsign")(_unary(F.softsign))
converter("Mish")(_unary(F.mish))


@converter("LeakyRelu")
def _leaky_relu(ctx: NodeCtx) -> RunFn:
    alpha = float(ctx.attr("alpha", 0.01))
    return lambda x: F.leaky_relu(x, alpha)


@converter("Elu")
def _elu(ctx: NodeCtx) -> RunFn:
    alpha = float(ctx.attr("alpha", 1.0))
    return lambda x: F.elu(x, alpha)


@converter("Selu")
def _selu(ctx: NodeCtx) -> RunFn:
    alpha = float(ctx.attr("alpha", 1.67326319217681884765625))
    gamma = float(ctx.attr("gamma", 1.05070102214813232421875))
    return lambda x: gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


@converter("HardSigmoid")
def _hard_sigmoid(ctx: NodeCtx) -> RunFn:
    alpha = float(ctx.attr("alpha", 0.2))
    beta = float(ctx.attr("beta", 0.5))
    return lambda x: torch.clamp(x * alpha + beta, 0.0, 1.0)


@converter("HardSwish")
def _hard_swish(ctx: NodeCtx) -> RunFn:
    return lambda x: x * torch.clamp(x * (1.0 / 6.0) + 0.5, 0.0, 1.0)


@converter("Gelu")
def _gelu(ctx: NodeCtx) -> RunFn:
    approximate = ctx.attr("approximate", "none")
    return lambda x: F.gelu(x, approximate=approximate)


@converter("PRelu")
def _prelu(ctx: NodeCtx) -> RunFn:
    def run(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        x, slope = align(x, slope)
        if slope.dim() == 1 and x.dim() >= 2 and slope.shape[0] == x.shape[1] != x.shape[-1]:
            slope = slope.reshape([-1] + [1] * (x.dim() - 2))
        return torch.where(x >= 0, x, x * slope)

    return run


@converter("Clip", opsets=(1, 10))
def _clip_attrs(ctx: NodeCtx) -> RunFn:
    lo = float(ctx.attr("min", -math.inf))
    hi = float(ctx.attr("max", math.inf))
    return lambda x: torch.clamp(x, lo, hi)


def _first_float(value: np.ndarray | None) -> float | None:
    return None if value is None else float(np.asarray(value).reshape(-1)[0])


@converter("Clip", opsets=(11, None))
def _clip(ctx: NodeCtx) -> RunFn:
    lo_static, hi_static = _first_float(ctx.const(1)), _first_float(ctx.const(2))
    dynamic = (ctx.has(1) and lo_static is None) or (ctx.has(2) and hi_static is None)
    if not dynamic:
        return lambda x, *rest: torch.clamp(x, lo_static, hi_static)

    def run(
        x: torch.Tensor, lo: torch.Tensor | None = None, hi: torch.Tensor | None = None
    ) -> torch.Tensor:
        lo_t = None if lo is None else lo.to(x.device, x.dtype)
        hi_t = None if hi is None else hi.to(x.device, x.dtype)
        return torch.clamp(x, lo_t, hi_t)

    return run


def _coerced_softmax(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> Builder:
    """Before opset 13: the input is coerced to 2-D at ``axis`` and normalised per row."""

    def builder(ctx: NodeCtx) -> RunFn:
        axis = int(ctx.attr("axis", 1))

        def run(x: torch.Tensor) -> torch.Tensor:
            a = axis % x.dim() if x.dim() else 0
            flat = x.reshape(int(math.prod(x.shape[:a])), -1)
            return fn(flat, 1).reshape(x.shape)

        return run

    return builder


def _axis_softmax(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> Builder:
    def builder(ctx: NodeCtx) -> RunFn:
        axis = int(ctx.attr("axis", -1))
        return lambda x: fn(x, axis)

    return builder


converter("Softmax", opsets=(1, 12))(_coerced_softmax(torch.softmax))
converter("Softmax", opsets=(13, None))(_axis_softmax(torch.softmax))
converter("LogSoftmax", opsets=(1, 12))(_coerced_softmax(torch.log_softmax))
converter("LogSoftmax", opsets=(13, None))(_axis_softmax(torch.log_softmax))
