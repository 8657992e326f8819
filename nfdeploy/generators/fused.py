"""The NeuralFuse input transform ``F(x) = clamp(x + G(x), lo, hi)``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import NfdeployError

__all__ = ["FusedInput"]


class FusedInput(nn.Module):
    """``F(x) = clamp(x + G(x), lo, hi)``, with per-channel bounds.

    ``lo``/``hi`` are the vendor model's valid input range in its own (preprocessed)
    coordinates, e.g. ``((0 - mean) / std, (1 - mean) / std)`` per channel. Give one value
    per channel, or a single value for all channels. They are stored as ``(1, C, 1, 1)``
    buffers (so they follow ``.to()`` and appear in the ``state_dict``) and applied with
    ``minimum``/``maximum``, which export to ONNX ``Min``/``Max``.
    """

    lo: Tensor
    hi: Tensor

    def __init__(self, generator: nn.Module, lo: Sequence[float], hi: Sequence[float]) -> None:
        super().__init__()
        lo_t, hi_t = self._bounds(lo, "lo"), self._bounds(hi, "hi")
        if lo_t.numel() != hi_t.numel() and 1 not in (lo_t.numel(), hi_t.numel()):
            raise NfdeployError(
                f"lo has {lo_t.numel()} values but hi has {hi_t.numel()}; give one per "
                "channel or a single value"
            )
        channels = getattr(generator, "channels", None)
        if isinstance(channels, int):
            for label, t in (("lo", lo_t), ("hi", hi_t)):
                if t.numel() not in (1, channels):
                    raise NfdeployError(
                        f"{label} has {t.numel()} values but the generator has {channels} "
                        "channels; give one per channel or a single value"
                    )
        if bool((lo_t > hi_t).any()):
            raise NfdeployError(
                f"lower bounds must not exceed upper bounds, got lo={lo_t.tolist()} "
                f"hi={hi_t.tolist()}"
            )
        self.generator = generator
        self.register_buffer("lo", lo_t.reshape(1, -1, 1, 1))
        self.register_buffer("hi", hi_t.reshape(1, -1, 1, 1))

    @staticmethod
    def _bounds(values: Sequence[float], label: str) -> Tensor:
        try:
            floats = [float(v) for v in values]
        except (TypeError, ValueError) as exc:
            raise NfdeployError(f"{label} must be a sequence of numbers, got {values!r}") from exc
        if not floats:
            raise NfdeployError(f"{label} must hold at least one value")
        if any(math.isnan(v) for v in floats):
            raise NfdeployError(f"{label} must not contain NaN, got {floats}")
        return torch.tensor(floats, dtype=torch.float32)

    def extra_repr(self) -> str:
        return f"lo={self.lo.flatten().tolist()}, hi={self.hi.flatten().tolist()}"

    def forward(self, x: Tensor) -> Tensor:
        y = x + self.generator(x)
        return torch.maximum(torch.minimum(y, self.hi), self.lo)
