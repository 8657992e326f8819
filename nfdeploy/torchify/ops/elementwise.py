"""Binary and variadic arithmetic, comparisons, logic, Where."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from nfdeploy.torchify import shape_values as sv
from nfdeploy.torchify.ops._common import align
from nfdeploy.torchify.registry import Builder, NodeCtx, RunFn, converter, shape_variant


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Builder:
    def builder(ctx: NodeCtx) -> RunFn:
        if ctx.opset < 7 and ctx.attr("broadcast", 0):
            raise ctx.error("legacy 'broadcast' attribute (opset < 7); re-export at opset >= 9.")

        def run(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            if a.device != b.device:
                a, b = align(a, b)
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


converter("Add")(_binary(torch.add))
converter("Sub")(_binary(torch.sub))
converter("Mul")(_binary(torch.mul))
converter("Div")(_binary(_div))
converter("Pow")(_binary(_pow))
converter("Equal")(_binary(torch.eq))
converter("Less")(_binary(torch.lt))
converter("LessOrEqual")(_binary(torch.le))
converter("Greater")(_binary(torch.gt))
converter("GreaterOrEqual")(_binary(torch.ge))
converter("And")(_binary(torch.logical_and))
converter("Or")(_binary(torch.logical_or))
converter("Xor")(_binary(torch.logical_xor))


@converter("Mod")
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
                out, x = align(out, x)
                out = fn(out, x)
            return out / len(xs) if mean else out

        return run

    return builder


converter("Max")(_variadic(torch.maximum))
converter("Min")(_variadic(torch.minimum))
converter("Sum")(_variadic(torch.add))
converter("Mean")(_variadic(torch.add, mean=True))


@converter("Where")
def _where(ctx: NodeCtx) -> RunFn:
    def run(cond: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = align(a, b)
        cond, a = align(cond, a)
        return torch.where(cond, a, b)

    return run


# Python shape-value variants (see nfdeploy.torchify.shape_values)


def _int_div(a: Any, b: Any) -> Any:
    if isinstance(a, float) or isinstance(b, float):
        return a / b
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


_PY_BINARY: dict[str, Callable[[Any, Any], Any]] = {
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


@shape_variant(*_PY_BINARY)
def _py_binary(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> RunFn | None:
    fn = _PY_BINARY[ctx.op_type]
    if ctx.op_type in ("Max", "Min") and len(ctx.inputs) != 2:
        return None
    a, b = sv.arg(ctx, shape_inputs, 0), sv.arg(ctx, shape_inputs, 1)
    return lambda *args: sv.broadcast(fn, a(args), b(args))


def _py_at(v: Any, i: int) -> Any:
    return v[i if len(v) > 1 else 0] if isinstance(v, list) else v


@shape_variant("Where")
def _py_where(ctx: NodeCtx, shape_inputs: tuple[bool, ...]) -> RunFn | None:
    c, a, b = (sv.arg(ctx, shape_inputs, i) for i in range(3))

    def run(*args: Any) -> Any:
        cond, x, y = c(args), a(args), b(args)
        n = max(len(v) if isinstance(v, list) else 1 for v in (cond, x, y))
        if not any(isinstance(v, list) for v in (cond, x, y)):
            return x if cond else y
        return [_py_at(x, i) if _py_at(cond, i) else _py_at(y, i) for i in range(n)]

    return run
