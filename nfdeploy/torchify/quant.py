"""QuantizeLinear / DequantizeLinear semantics, in numpy (weights) and torch (activations).

Activations are fake-quantized: ``QuantizeLinear`` produces the integer codes as a *float*
tensor (exact integers), with a clipped straight-through gradient (d codes / dx = 1/scale
inside the representable range, 0 outside), and ``DequantizeLinear`` maps them back with
``(q - zero_point) * scale``. Values match onnxruntime's unfused reference kernels
(round half to even of ``x / scale``, then saturate).
"""

from __future__ import annotations

import numpy as np
import torch

# ONNX TensorProto element type -> (numpy dtype, min code, max code) for quantized codes.
QUANT_RANGES: dict[int, tuple[type[np.integer], int, int]] = {
    2: (np.uint8, 0, 255),  # UINT8
    3: (np.int8, -128, 127),  # INT8
    4: (np.uint16, 0, 65535),  # UINT16
    5: (np.int16, -32768, 32767),  # INT16
    6: (np.int32, -(2**31), 2**31 - 1),  # INT32 (biases)
}

NP_RANGES: dict[np.dtype, tuple[int, int]] = {
    np.dtype(dt): (lo, hi) for dt, lo, hi in QUANT_RANGES.values()
}

TORCH_CODE_DTYPES: dict[np.dtype, torch.dtype] = {
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.int8): torch.int8,
    np.dtype(np.int16): torch.int16,
    np.dtype(np.uint16): torch.int32,  # torch has no general-purpose uint16
    np.dtype(np.int32): torch.int32,
}


def broadcast_param(param: np.ndarray, rank: int, axis: int | None) -> np.ndarray:
    """Reshape a per-axis scale / zero point so that it broadcasts along ``axis``."""
    if axis is None or param.ndim != 1:
        return param  # per-tensor (blocked quantization is rejected by the caller)
    shape = [1] * rank
    shape[axis % rank] = param.shape[0]
    return param.reshape(shape)


def dequantize_np(
    codes: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int | None
) -> np.ndarray:
    """``(codes - zero_point) * scale`` in float32, the way onnxruntime computes it."""
    rank = codes.ndim
    s = broadcast_param(np.asarray(scale, dtype=np.float32), rank, axis)
    if zero_point is None:
        centred = codes.astype(np.int64)
    else:
        z = broadcast_param(np.asarray(zero_point).astype(np.int64), rank, axis)
        centred = codes.astype(np.int64) - z
    return (centred.astype(np.float32) * s).astype(np.float32)


def _param_view(param: torch.Tensor, x: torch.Tensor, axis: int | None) -> torch.Tensor:
    if axis is None or param.dim() == 0:
        return param
    shape = [1] * x.dim()
    shape[axis % x.dim()] = -1
    return param.reshape(shape)


def _as_param(
    value: torch.Tensor | float, like: torch.Tensor, axis: int | None
) -> torch.Tensor | float:
    if isinstance(value, torch.Tensor):
        return _param_view(value.to(device=like.device, dtype=like.dtype), like, axis)
    return value


def fake_quantize_codes(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor | float,
    qmin: int,
    qmax: int,
    axis: int | None,
) -> torch.Tensor:
    """Integer codes of ``x`` as a float tensor, with a clipped straight-through gradient.

    ``scale`` stays a tensor so that ``x / scale`` is a true division (as in onnxruntime),
    never a multiplication by a rounded reciprocal; ``zero_point`` may be a Python number.
    """
    s = _param_view(scale.to(device=x.device, dtype=x.dtype), x, axis)
    z = _as_param(zero_point, x, axis)
    scaled = x / s
    raw = torch.round(scaled.detach()) + z
    codes = torch.clamp(raw, qmin, qmax)
    inside = (raw >= qmin) & (raw <= qmax)
    # Value: exactly ``codes``; gradient: d(x / s) inside the range, zero where saturated.
    return codes + (scaled - scaled.detach()) * inside.to(x.dtype)


def dequantize_tensor(
    q: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor | float | None,
    axis: int | None,
) -> torch.Tensor:
    """``(q - zero_point) * scale``; ``q`` is float codes (differentiable) or an integer tensor."""
    dtype = q.dtype if q.is_floating_point() else scale.dtype
    qf = q if q.is_floating_point() else q.to(dtype)
    s = _param_view(scale.to(device=q.device, dtype=dtype), qf, axis)
    if zero_point is None or (not isinstance(zero_point, torch.Tensor) and zero_point == 0):
        return qf * s
    return (qf - _as_param(zero_point, qf, axis)) * s
