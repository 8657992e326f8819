"""Building blocks shared by the paper generators.

Every paper generator pools three times, so its body only accepts inputs whose height and
width are multiples of 8. :class:`PaddedGenerator` hides that: it pads the input up to the
next multiple (reflect padding where possible, zero padding otherwise), runs the body and
crops the result back, so ``G(x).shape == x.shape`` for every size.

The padding amounts are plain Python ints computed from the construction-time
``height``/``width``. While tracing (the TorchScript-based ONNX exporter) only those static
ints are used, so the exported graph holds constant ``Pad``/``Slice`` nodes rather than
``Shape``-dependent arithmetic. In eager mode and under ``torch.export`` (where static
dimensions are ordinary ints) the amounts are recomputed from the actual input size with
the same rule, so a generator built for 32×32 still works, unchanged, on 30×30 inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "PaddedGenerator",
    "conv_bn",
    "conv_bn_relu",
    "convt_bn",
    "convt_bn_relu",
    "pad_to",
    "padding_for",
]


def conv_bn(in_ch: int, out_ch: int, *, kernel_size: int = 3, bias: bool = True) -> list[nn.Module]:
    """``Conv2d(k, stride 1, 'same' padding) -> BatchNorm2d``."""
    return [
        nn.Conv2d(in_ch, out_ch, kernel_size, stride=1, padding=kernel_size // 2, bias=bias),
        nn.BatchNorm2d(out_ch),
    ]


def conv_bn_relu(
    in_ch: int, out_ch: int, *, kernel_size: int = 3, bias: bool = True
) -> list[nn.Module]:
    """``Conv2d(k, stride 1, 'same' padding) -> BatchNorm2d -> ReLU``."""
    return [*conv_bn(in_ch, out_ch, kernel_size=kernel_size, bias=bias), nn.ReLU(inplace=True)]


def convt_bn(in_ch: int, out_ch: int) -> list[nn.Module]:
    """``ConvTranspose2d(k4, s2, p1)`` (exactly doubles H and W) ``-> BatchNorm2d``."""
    return [
        nn.ConvTranspose2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1, bias=True),
        nn.BatchNorm2d(out_ch),
    ]


def convt_bn_relu(in_ch: int, out_ch: int) -> list[nn.Module]:
    """``ConvTranspose2d(k4, s2, p1) -> BatchNorm2d -> ReLU``."""
    return [*convt_bn(in_ch, out_ch), nn.ReLU(inplace=True)]


def encoder_layers(in_ch: int, widths: Sequence[int], convs: int) -> list[nn.Module]:
    """Encoder stages: ``convs`` conv-BN-ReLU layers at each width, then a 2x max-pool."""
    layers: list[nn.Module] = []
    prev = in_ch
    for w in widths:
        for i in range(convs):
            layers += conv_bn_relu(prev if i == 0 else w, w)
        prev = w
        layers.append(nn.MaxPool2d(2))
    return layers


def padding_for(height: int, width: int, multiple: int) -> tuple[tuple[int, int, int, int], str]:
    """Padding ``(left, right, top, bottom)`` that rounds ``height×width`` up to ``multiple``.

    The padding is split as evenly as possible (the extra pixel goes right/bottom). The mode
    is ``"reflect"`` when every amount is smaller than the dimension it pads (reflect's
    requirement) and ``"zeros"`` otherwise, e.g. for a 3×3 input rounded up to 8×8.
    """
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    top, left = pad_h // 2, pad_w // 2
    pads = (left, pad_w - left, top, pad_h - top)
    fits = max(pads[0], pads[1]) < width and max(pads[2], pads[3]) < height
    return pads, ("reflect" if fits else "zeros")


def _pad_dim(x: Tensor, dim: int, size: int, before: int, after: int, mode: str) -> Tensor:
    """Pad dimension ``dim`` (of static length ``size``) by ``before``/``after`` elements.

    Built from ``narrow``/``flip``/``cat`` with Python-int arguments rather than ``F.pad``:
    the TorchScript ONNX exporter lowers ``F.pad`` through a reversed ``Slice`` that makes it
    emit a constant-folding ``UserWarning``; this form exports to plain ``Slice``/``Concat``.
    """
    if before == 0 and after == 0:
        return x
    parts: list[Tensor] = []
    if mode == "reflect":
        if before:
            parts.append(x.narrow(dim, 1, before).flip(dim))
        parts.append(x)
        if after:
            parts.append(x.narrow(dim, size - 1 - after, after).flip(dim))
    else:
        reps = [1] * x.dim()
        zero = torch.zeros_like(x.narrow(dim, 0, 1))
        if before:
            reps[dim] = before
            parts.append(zero.repeat(reps))
        parts.append(x)
        if after:
            reps[dim] = after
            parts.append(zero.repeat(reps))
    return torch.cat(parts, dim)


def pad_to(
    x: Tensor, height: int, width: int, pads: tuple[int, int, int, int], mode: str
) -> Tensor:
    """Pad an ``(..., height, width)`` tensor by ``pads = (left, right, top, bottom)``."""
    left, right, top, bottom = pads
    x = _pad_dim(x, x.dim() - 2, height, top, bottom, mode)
    return _pad_dim(x, x.dim() - 1, width, left, right, mode)


class PaddedGenerator(nn.Module):
    """Base class: pad to a multiple of ``2**depth``, run :meth:`body`, crop back.

    Subclasses build their layers in ``__init__`` and implement :meth:`body`, which sees
    only inputs whose spatial size is a multiple of :attr:`multiple`.
    """

    def __init__(self, *, channels: int, height: int, width: int, depth: int) -> None:
        super().__init__()
        for label, value in (("channels", channels), ("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        self.channels = channels
        self.height = height
        self.width = width
        self.depth = depth
        self.multiple = 2**depth
        self.pads, self.pad_mode = padding_for(height, width, self.multiple)

    def body(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, height={self.height}, width={self.width}, "
            f"multiple={self.multiple}, pads={self.pads}, pad_mode={self.pad_mode!r}"
        )

    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_tracing():
            height, width = self.height, self.width
            pads, mode = self.pads, self.pad_mode
        else:
            height, width = x.shape[-2], x.shape[-1]
            if (height, width) == (self.height, self.width):
                pads, mode = self.pads, self.pad_mode
            else:
                pads, mode = padding_for(height, width, self.multiple)
        if not any(pads):
            return self.body(x)
        left, _, top, _ = pads
        y = self.body(pad_to(x, height, width, pads, mode))
        return y[..., top : top + height, left : left + width]
