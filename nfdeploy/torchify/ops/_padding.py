"""Static and auto (SAME_*) padding, for convolution, pooling and Pad."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nfdeploy.torchify.registry import NodeCtx


def torch_pads(onnx_pads: Sequence[int]) -> list[int]:
    """ONNX [b1, b2, ..., e1, e2, ...] -> torch F.pad order (last dim first)."""
    n = len(onnx_pads) // 2
    out: list[int] = []
    for d in reversed(range(n)):
        out += [int(onnx_pads[d]), int(onnx_pads[d + n])]
    return out


def same_pads(
    in_sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    mode: str,
) -> list[int]:
    begins, ends = [], []
    for size, k, s, d in zip(in_sizes, kernel, strides, dilations, strict=True):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        if mode == "SAME_UPPER":
            begins.append(small)
            ends.append(large)
        else:
            begins.append(large)
            ends.append(small)
    return begins + ends


class Padding:
    """Static or auto (SAME_*) padding for convolution and pooling nodes."""

    def __init__(self, ctx: NodeCtx, spatial: int | None) -> None:
        self.auto = ctx.attr("auto_pad", "NOTSET")
        if isinstance(self.auto, bytes):
            self.auto = self.auto.decode()
        if self.auto not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
            raise ctx.error(f"unknown auto_pad '{self.auto}'.")
        pads = ctx.attr("pads")
        self.static: list[int] | None
        if self.auto == "VALID":
            self.static = [0] * (2 * spatial) if spatial else None
        elif self.auto == "NOTSET":
            self.static = [int(p) for p in pads] if pads is not None else None
            if self.static is None and spatial:
                self.static = [0] * (2 * spatial)
        else:
            self.static = None

    def resolve(
        self,
        in_sizes: Sequence[int],
        kernel: Sequence[int],
        strides: Sequence[int],
        dilations: Sequence[int],
    ) -> list[int]:
        if self.static is not None:
            return self.static
        if self.auto in ("SAME_UPPER", "SAME_LOWER"):
            return same_pads(in_sizes, kernel, strides, dilations, self.auto)
        return [0] * (2 * len(in_sizes))


def symmetric(pads: Sequence[int]) -> bool:
    n = len(pads) // 2
    return list(pads[:n]) == list(pads[n:])


def spatial_list(value: Any, n: int, default: int) -> list[int]:
    if value is None:
        return [default] * n
    return [int(v) for v in value]
