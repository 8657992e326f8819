"""MatMul and Gemm."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nfdeploy.torchify.ops._common import align
from nfdeploy.torchify.registry import NodeCtx, RunFn, converter


@converter("MatMul")
def _matmul(ctx: NodeCtx) -> RunFn:
    def run(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.device != b.device:
            a, b = align(a, b)
        return torch.matmul(a, b)

    return run


@converter("Gemm")
def _gemm(ctx: NodeCtx) -> RunFn:
    alpha = float(ctx.attr("alpha", 1.0))
    beta = float(ctx.attr("beta", 1.0))
    trans_a = int(ctx.attr("transA", 0))
    trans_b = int(ctx.attr("transB", 0))
    if not trans_a and trans_b and alpha == 1.0 and beta == 1.0:

        def linear(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
            if c is None or c.dim() == 1:
                return F.linear(a, b, c)
            return F.linear(a, b) + c

        return linear

    def run(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        a2 = a.t() if trans_a else a
        b2 = b.t() if trans_b else b
        out = torch.matmul(a2, b2)
        if alpha != 1.0:
            out = out * alpha
        if c is not None and beta != 0.0:
            out = out + (c * beta if beta != 1.0 else c)
        return out

    return run
