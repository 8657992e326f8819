"""ConvL / ConvS: convolutional encoder-decoder generators with nearest upsampling.

Layout (``C`` = input channels; every conv 3×3, stride 1, pad 1, with bias; "CBR" =
conv -> BatchNorm -> ReLU; the head ends in BatchNorm + tanh, so ``|G(x)| < 1``):

* ConvL: encoder stages 32, 64, 128 of two CBR each, each followed by 2×2 max-pool.
  Decoder stages 128, 64, 32: CBR(in->w), nearest ×2 upsample, CBR(w->w).
  Head: conv 32->C, BN, tanh. 723,273 parameters at C=3.
* ConvS: encoder stages 32, 64, 64 of one CBR each, each followed by max-pool.
  Decoder stages 64, 32, C: CBR(in->w), nearest ×2 upsample.
  Head: conv C->C, BN, tanh. 113,187 parameters at C=3.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .blocks import PaddedGenerator, conv_bn, conv_bn_relu, encoder_layers

__all__ = ["ConvGenerator", "conv_l", "conv_s"]


class ConvGenerator(PaddedGenerator):
    """Encoder (conv stages + max-pool) / decoder (conv + nearest upsample) generator.

    ``encoder`` and ``decoder`` list stage widths (``None`` in ``decoder`` means "the input
    channel count"); ``convs`` is the number of CBR layers per stage (the second and later
    decoder convs run after the upsample, at the new resolution).
    """

    def __init__(
        self,
        *,
        channels: int,
        height: int,
        width: int,
        encoder: Sequence[int],
        decoder: Sequence[int | None],
        convs: int,
    ) -> None:
        if len(encoder) != len(decoder):
            raise ValueError("encoder and decoder need the same number of stages")
        super().__init__(channels=channels, height=height, width=width, depth=len(encoder))
        layers = encoder_layers(channels, encoder, convs)
        prev = encoder[-1]
        for w_opt in decoder:
            w = channels if w_opt is None else w_opt
            layers += conv_bn_relu(prev, w)
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            for _ in range(convs - 1):
                layers += conv_bn_relu(w, w)
            prev = w
        layers += conv_bn(prev, channels)
        layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def body(self, x: Tensor) -> Tensor:
        return self.net(x)


def conv_l(*, channels: int = 3, height: int = 32, width: int = 32) -> ConvGenerator:
    """ConvL (paper "Conv-L")."""
    return ConvGenerator(
        channels=channels,
        height=height,
        width=width,
        encoder=(32, 64, 128),
        decoder=(128, 64, 32),
        convs=2,
    )


def conv_s(*, channels: int = 3, height: int = 32, width: int = 32) -> ConvGenerator:
    """ConvS (paper "Conv-S")."""
    return ConvGenerator(
        channels=channels,
        height=height,
        width=width,
        encoder=(32, 64, 64),
        decoder=(64, 32, None),
        convs=1,
    )
