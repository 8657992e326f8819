"""One weight layer as a SCALE-Sim topology row (one image)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerShape:
    """One weight layer as a SCALE-Sim topology row (one image).

    ``channels`` is the depth of one filter (input channels per group); ``num_filters`` the
    number of output channels. ``macs`` and ``params`` count the multiply-accumulates and
    weight elements (biases excluded). ``groups`` and ``op`` are informational.
    """

    name: str
    kind: str  # 'conv' | 'convT' | 'gemm'
    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    num_filters: int
    stride_h: int
    stride_w: int
    macs: int
    params: int
    groups: int = 1
    op: str = ""

    @property
    def ofmap_h(self) -> int:
        """Output rows as SCALE-Sim computes them: ceil((ifmap - filter + stride) / stride)."""
        return -(-(self.ifmap_h - self.filter_h + self.stride_h) // self.stride_h)

    @property
    def ofmap_w(self) -> int:
        return -(-(self.ifmap_w - self.filter_w + self.stride_w) // self.stride_w)

    @property
    def ofmap_pixels(self) -> int:
        return self.ofmap_h * self.ofmap_w

    @property
    def window(self) -> int:
        """Weights per filter (SCALE-Sim's T for the output-stationary dataflow)."""
        return self.filter_h * self.filter_w * self.channels

    def topology_row(self) -> list[Any]:
        """The SCALE-Sim conv topology row: name, ifmap H, W, filter H, W, channels, filters,
        stride H, stride W."""
        return [
            self.name,
            self.ifmap_h,
            self.ifmap_w,
            self.filter_h,
            self.filter_w,
            self.channels,
            self.num_filters,
            self.stride_h,
            self.stride_w,
        ]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ofmap_h"] = self.ofmap_h
        d["ofmap_w"] = self.ofmap_w
        return d
