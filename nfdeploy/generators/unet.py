"""UNetL / UNetS: a 3-level U-Net with skip concatenation and no output squashing.

Layout (``C`` = input channels, widths ``w0 < w1 < w2 < w3``; "DC" = double conv, i.e.
(3×3 conv without bias -> BN -> ReLU) × 2):

* stem DC(C->w0); three down stages: 2×2 max-pool, DC(w_i -> w_{i+1});
* three up stages: ConvTranspose 2×2/s2 with bias (w_{i+1} -> w_i), concat with the skip
  (skip first, w_i + w_i channels), DC(2·w_i -> w_i);
* head: 1×1 conv w0 -> C with bias, no BN, no tanh (``G(x)`` is unbounded; the fused input
  is clamped afterwards).

UNetL uses widths 16/32/64/128 (482,771 parameters at C=3), UNetS 8/16/32/64 (121,195).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import Tensor, nn

from .blocks import PaddedGenerator, conv_bn_relu

__all__ = ["UNetGenerator", "unet_l", "unet_s"]


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        *conv_bn_relu(in_ch, out_ch, bias=False), *conv_bn_relu(out_ch, out_ch, bias=False)
    )


class _Up(nn.Module):
    def __init__(self, in_ch: int, skip_ch: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, skip_ch, kernel_size=2, stride=2, bias=True)
        self.conv = _double_conv(2 * skip_ch, skip_ch)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNetGenerator(PaddedGenerator):
    """U-Net generator with ``len(widths) - 1`` pooling levels."""

    def __init__(self, *, channels: int, height: int, width: int, widths: Sequence[int]) -> None:
        if len(widths) < 2:
            raise ValueError("a U-Net needs at least two widths")
        super().__init__(channels=channels, height=height, width=width, depth=len(widths) - 1)
        self.stem = _double_conv(channels, widths[0])
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _double_conv(a, b)) for a, b in pairwise(widths)
        )
        self.ups = nn.ModuleList(_Up(b, a) for a, b in reversed(list(pairwise(widths))))
        self.head = nn.Conv2d(widths[0], channels, kernel_size=1, bias=True)

    def body(self, x: Tensor) -> Tensor:
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return self.head(y)


def unet_l(*, channels: int = 3, height: int = 32, width: int = 32) -> UNetGenerator:
    """UNetL (paper "UNet-L")."""
    return UNetGenerator(channels=channels, height=height, width=width, widths=(16, 32, 64, 128))


def unet_s(*, channels: int = 3, height: int = 32, width: int = 32) -> UNetGenerator:
    """UNetS (paper "UNet-S")."""
    return UNetGenerator(channels=channels, height=height, width=width, widths=(8, 16, 32, 64))
