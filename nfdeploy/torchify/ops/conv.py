"""Conv and ConvTranspose (1-D, 2-D, 3-D)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from nfdeploy.torchify.ops._padding import Padding, spatial_list, symmetric, torch_pads
from nfdeploy.torchify.registry import NodeCtx, RunFn, converter

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@converter("Conv")
def _conv(ctx: NodeCtx) -> RunFn:
    group = int(ctx.attr("group", 1))
    w_const = ctx.const(1)
    spatial = w_const.ndim - 2 if w_const is not None else None
    if spatial is not None and spatial not in _CONV:
        raise ctx.error(f"{spatial}-D convolution is not supported (1-D, 2-D and 3-D are).")
    padding = Padding(ctx, spatial)
    strides_attr, dilations_attr = ctx.attr("strides"), ctx.attr("dilations")

    def run(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        n = w.dim() - 2
        conv = _CONV[n]
        kernel = list(w.shape[2:])
        strides = spatial_list(strides_attr, n, 1)
        dilations = spatial_list(dilations_attr, n, 1)
        pads = padding.resolve(x.shape[2:], kernel, strides, dilations)
        if symmetric(pads):
            return conv(x, w, b, strides, pads[:n], dilations, group)
        x = F.pad(x, torch_pads(pads))
        return conv(x, w, b, strides, 0, dilations, group)

    return run


def _split_totals(totals: list[int], upper: bool) -> list[int]:
    """ONNX pads that split each total: the odd one at the end (SAME_UPPER) or the start."""
    begins = [t // 2 if upper else t - t // 2 for t in totals]
    return begins + [t - bg for t, bg in zip(totals, begins, strict=True)]


def _transposed_pads(
    padding: Padding,
    output_shape: list[int] | None,
    full: list[int],
    in_sizes: list[int],
    strides: list[int],
) -> list[int]:
    """Pads of a transposed convolution whose un-cropped output has the sizes ``full``."""
    n, upper = len(full), padding.auto == "SAME_UPPER"
    if output_shape is not None:
        target = [int(v) for v in output_shape][-n:]
        return _split_totals([f - t for f, t in zip(full, target, strict=True)], upper)
    if padding.auto in ("SAME_UPPER", "SAME_LOWER"):
        totals = [f - i * s for f, i, s in zip(full, in_sizes, strides, strict=True)]
        return _split_totals(totals, upper)
    return padding.static if padding.static is not None else [0] * (2 * n)


def _full_then_crop(
    conv_t: Callable[..., torch.Tensor],
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    pads: list[int],
    out_pad: list[int],
    args: tuple[list[int], int, list[int]],
) -> torch.Tensor:
    """General case: the full transposed convolution, then crop (or zero-extend) per side."""
    strides, group, dilations = args
    n = w.dim() - 2
    y = conv_t(x, w, None, strides, 0, 0, group, dilations)
    crop: list[int] = []
    for d in reversed(range(n)):
        crop += [-pads[d], out_pad[d] - pads[d + n]]
    y = F.pad(y, crop)
    return y if b is None else y + b.reshape([1, -1] + [1] * n)


@converter("ConvTranspose")
def _conv_transpose(ctx: NodeCtx) -> RunFn:
    group = int(ctx.attr("group", 1))
    padding = Padding(ctx, None)
    output_shape = ctx.attr("output_shape")
    w_const = ctx.const(1)
    if w_const is not None and w_const.ndim - 2 not in _CONV_T:
        raise ctx.error(f"{w_const.ndim - 2}-D transposed convolution is not supported.")
    strides_attr, dilations_attr = ctx.attr("strides"), ctx.attr("dilations")
    out_pad_attr = ctx.attr("output_padding")

    def run(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        n = w.dim() - 2
        kernel, in_sizes = list(w.shape[2:]), list(x.shape[2:])
        strides = spatial_list(strides_attr, n, 1)
        dilations = spatial_list(dilations_attr, n, 1)
        out_pad = spatial_list(out_pad_attr, n, 0)
        full = [
            s * (i - 1) + op + (k - 1) * d + 1
            for s, i, op, k, d in zip(strides, in_sizes, out_pad, kernel, dilations, strict=True)
        ]
        pads = _transposed_pads(padding, output_shape, full, in_sizes, strides)
        if (
            symmetric(pads)
            and min(pads) >= 0
            and all(op < max(s, d) for op, s, d in zip(out_pad, strides, dilations, strict=True))
        ):
            return _CONV_T[n](x, w, b, strides, pads[:n], out_pad, group, dilations)
        return _full_then_crop(_CONV_T[n], x, w, b, pads, out_pad, (strides, group, dilations))

    return run
