"""DeConvL / DeConvS: convolutional encoder, transposed-convolution decoder.

Layout (``C`` = input channels; convs 3×3/s1/p1 with bias; transposed convs ("CT") 4×4,
stride 2, pad 1, with bias, which exactly double H and W; "CBR" = conv -> BN -> ReLU):

* DeConvL: the ConvL encoder (stages 32, 64, 128 of two CBR + max-pool), then a
  bottleneck CBR 128->128. Decoder stages 64, 32: CT(in->w)+BN+ReLU, CBR(w->w).
  Head: CT 32->C, BN, tanh. 647,785 parameters at C=3.
* DeConvS: encoder stages 32, 64, 64 of one CBR + max-pool, no bottleneck. Decoder
  stages 64, 32: CT(in->w)+BN+ReLU. Head: CT 32->C, BN, tanh. 156,777 parameters at C=3.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .blocks import PaddedGenerator, conv_bn_relu, convt_bn, convt_bn_relu, encoder_layers

__all__ = ["DeConvGenerator", "deconv_l", "deconv_s"]


class DeConvGenerator(PaddedGenerator):
    """Encoder (conv stages + max-pool) / decoder (transposed conv) generator.

    ``decoder`` lists the widths of all but the last upsampling stage; the head is the last
    transposed conv (to ``channels``) + BN + tanh. ``convs`` CBR layers per encoder stage;
    decoder stages get ``convs - 1`` refining CBRs after their transposed conv.
    """

    def __init__(
        self,
        *,
        channels: int,
        height: int,
        width: int,
        encoder: Sequence[int],
        decoder: Sequence[int],
        convs: int,
        bottleneck: bool,
    ) -> None:
        if len(decoder) != len(encoder) - 1:
            raise ValueError("decoder needs one stage fewer than the encoder (head upsamples)")
        super().__init__(channels=channels, height=height, width=width, depth=len(encoder))
        layers = encoder_layers(channels, encoder, convs)
        prev = encoder[-1]
        if bottleneck:
            layers += conv_bn_relu(prev, prev)
        for w in decoder:
            layers += convt_bn_relu(prev, w)
            for _ in range(convs - 1):
                layers += conv_bn_relu(w, w)
            prev = w
        layers += convt_bn(prev, channels)
        layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def body(self, x: Tensor) -> Tensor:
        return self.net(x)


def deconv_l(*, channels: int = 3, height: int = 32, width: int = 32) -> DeConvGenerator:
    """DeConvL (paper "DeConv-L")."""
    return DeConvGenerator(
        channels=channels,
        height=height,
        width=width,
        encoder=(32, 64, 128),
        decoder=(64, 32),
        convs=2,
        bottleneck=True,
    )


def deconv_s(*, channels: int = 3, height: int = 32, width: int = 32) -> DeConvGenerator:
    """DeConvS (paper "DeConv-S")."""
    return DeConvGenerator(
        channels=channels,
        height=height,
        width=width,
        encoder=(32, 64, 64),
        decoder=(64, 32),
        convs=1,
        bottleneck=False,
    )
