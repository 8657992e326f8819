"""The fused transform F(x) = clip(x + G(x)) built for a data set's preprocessing."""

from __future__ import annotations

import torch

from nfdeploy.data import Preprocess
from nfdeploy.generators.fused import FusedInput
from nfdeploy.generators.registry import build_generator


def build_fused_input(
    *, generator: str, seed: int, pre: Preprocess, channels_last: bool = False
) -> FusedInput:
    """G by name, initialised from ``seed``, clipped to the valid input range of ``pre``."""
    torch.manual_seed(seed)
    model = build_generator(generator, channels=pre.channels, height=pre.height, width=pre.width)
    lo, hi = pre.valid_range()
    fused = FusedInput(model, [float(v) for v in lo], [float(v) for v in hi])
    return fused.to(memory_format=torch.channels_last) if channels_last else fused  # type: ignore[call-overload]
