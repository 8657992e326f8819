"""BatchNormalization (inference), InstanceNormalization, LayerNormalization, LRN."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nfdeploy.torchify.registry import NodeCtx, RunFn, converter


@converter("BatchNormalization")
def _batch_norm(ctx: NodeCtx) -> RunFn:
    # Training mode: the attribute (opset 14+), or running-stat outputs (declared before 14).
    if int(ctx.attr("training_mode", 0)) or any(ctx.outputs[1:]) or any(ctx.outputs_used[1:]):
        raise ctx.error(
            "exported in training mode (batch statistics); re-export the vendor model after "
            "model.eval() with training=TrainingMode.EVAL."
        )
    if ctx.opset < 9 and int(ctx.attr("spatial", 1)) == 0:
        raise ctx.error("spatial=0 batch normalization is not supported.")
    eps = float(ctx.attr("epsilon", 1e-5))

    def run(
        x: torch.Tensor,
        scale: torch.Tensor,
        bias: torch.Tensor,
        mean: torch.Tensor,
        var: torch.Tensor,
    ) -> torch.Tensor:
        return F.batch_norm(x, mean, var, scale, bias, False, 0.0, eps)

    return run


@converter("InstanceNormalization")
def _instance_norm(ctx: NodeCtx) -> RunFn:
    eps = float(ctx.attr("epsilon", 1e-5))
    return lambda x, scale, bias: F.instance_norm(x, weight=scale, bias=bias, eps=eps)


@converter("LayerNormalization")
def _layer_norm(ctx: NodeCtx) -> RunFn:
    if any(ctx.outputs_used[1:]):
        raise ctx.error("the Mean / InvStdDev outputs are not supported.")
    axis = int(ctx.attr("axis", -1))
    eps = float(ctx.attr("epsilon", 1e-5))

    def run(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        a = axis % x.dim()
        return F.layer_norm(x, tuple(x.shape[a:]), scale, bias, eps)

    return run


@converter("LRN")
def _lrn(ctx: NodeCtx) -> RunFn:
    size = int(ctx.attr("size"))
    alpha = float(ctx.attr("alpha", 1e-4))
    beta = float(ctx.attr("beta", 0.75))
    bias = float(ctx.attr("bias", 1.0))
    return lambda x: F.local_response_norm(x, size, alpha, beta, bias)
