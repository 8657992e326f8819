"""Helpers the operator families share: operand devices, integer arguments, axes."""

from __future__ import annotations

from typing import Any

import torch

from nfdeploy.torchify.registry import NodeCtx

ONNX_TO_TORCH: dict[int, torch.dtype] = {
    1: torch.float32,
    2: torch.uint8,
    3: torch.int8,
    5: torch.int16,
    6: torch.int32,
    7: torch.int64,
    9: torch.bool,
    10: torch.float16,
    11: torch.float64,
    16: torch.bfloat16,
}


def align(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a CPU operand (constant or shape value) to the other operand's device."""
    if a.device != b.device:
        if a.device.type == "cpu":
            a = a.to(b.device)
        else:
            b = b.to(a.device)
    return a, b


def ints(static: list[int] | None, value: Any) -> list[int] | None:
    """The plan-time integers if known, else the runtime value's.

    Runtime values are Python shape values (int or list, see :mod:`nfdeploy.torchify.shape_values`) or tensors.
    """
    if static is not None:
        return static
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.reshape(-1).tolist()]
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


def axes_attr_or_input(
    ctx: NodeCtx, input_since: int, index: int = 1
) -> tuple[bool, list[int] | None]:
    """(axes come from an input, static axes) for ops whose axes moved from attribute to input."""
    if ctx.opset >= input_since:
        return True, ctx.const_ints(index)
    axes = ctx.attr("axes")
    return False, None if axes is None else [int(a) for a in axes]
