"""QuantizeLinear / DequantizeLinear on activations (weights are dequantized at plan time)."""

from __future__ import annotations

import numpy as np
import torch

from nfdeploy.torchify.quant import (
    NP_RANGES,
    QUANT_RANGES,
    TORCH_CODE_DTYPES,
    dequantize_tensor,
    fake_quantize_codes,
)
from nfdeploy.torchify.registry import NodeCtx, RunFn, converter


def _scalar_zero_point(ctx: NodeCtx) -> float | None:
    """A constant per-tensor zero point as a Python number (no tensor traffic per forward)."""
    zp = ctx.const(2)
    if zp is None or np.asarray(zp).size != 1:
        return None
    return float(np.asarray(zp).reshape(-1)[0])


def _quant_axis(ctx: NodeCtx) -> int | None:
    if ctx.attr("block_size"):
        raise ctx.error("blocked quantization (block_size) is not supported.")
    return int(ctx.attr("axis", 1))


@converter("QuantizeLinear")
def _quantize(ctx: NodeCtx) -> RunFn:
    axis = _quant_axis(ctx)
    zp_const = ctx.const(2)
    out_type = int(ctx.attr("output_dtype", 0))
    code_dtype: np.dtype | None = np.dtype(np.uint8)
    if zp_const is not None:
        code_dtype = np.asarray(zp_const).dtype
    elif out_type:
        code_dtype = np.dtype(QUANT_RANGES[out_type][0]) if out_type in QUANT_RANGES else None
    if code_dtype is None or code_dtype not in NP_RANGES:
        raise ctx.error(
            f"quantization to {code_dtype} is not supported (int8/uint8/int16/uint16 are)."
        )
    qmin, qmax = NP_RANGES[code_dtype]
    as_float = ctx.codes_only_to_dequantize
    torch_codes = TORCH_CODE_DTYPES[code_dtype]
    zp_static = _scalar_zero_point(ctx)

    def run(x: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor | None = None) -> torch.Tensor:
        z = zp_static if zp_static is not None or zp is None else zp
        codes = fake_quantize_codes(
            x, scale, 0.0 if z is None else z, qmin, qmax, axis if scale.dim() == 1 else None
        )
        return codes if as_float else codes.detach().to(torch_codes)

    return run


@converter("DequantizeLinear")
def _dequantize(ctx: NodeCtx) -> RunFn:
    axis = _quant_axis(ctx)
    zp_static = _scalar_zero_point(ctx)

    def run(q: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor | None = None) -> torch.Tensor:
        z = zp_static if zp_static is not None or zp is None else zp
        return dequantize_tensor(q, scale, z, axis if scale.dim() == 1 else None)

    return run
