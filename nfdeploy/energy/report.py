"""NeuralFuse energy saving of a vendor model M with a generator G.

    ES = 1 - r - TWMA_G / TWMA_M

M's weights sit in undervolted SRAM (each access costs r of nominal); G runs at nominal
voltage ahead of M. Energies are normalised by M's weight-SRAM read energy at nominal, so
only the ratio TWMA_G / TWMA_M enters and the access granularity (row width) cancels up to
rounding. Without a generator, ES = 1 - r (undervolting alone, with M's accuracy loss).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nfdeploy.errors import NfdeployError

from .layers import LayerShape, extract_layers, input_is_static, model_label
from .twma import (
    DEFAULT_ARRAY,
    DEFAULT_ROW_BITS,
    DEFAULT_WEIGHT_SRAM_KB,
    _check_common,
    accesses_from_reads,
    filter_sram_reads,
)
from .voltage import operating_point

__all__ = ["EnergyReport", "NetworkCount", "count_network", "energy_report"]


@dataclass(frozen=True)
class NetworkCount:
    """TWMA and size figures of one network, with its per-layer rows."""

    twma: int
    weight_reads: int
    macs: int
    params: int
    layers: list[LayerShape]
    layer_reads: list[int]
    input_shape: tuple[int, ...]

    def layers_dict(self) -> list[dict[str, Any]]:
        out = []
        for layer, reads in zip(self.layers, self.layer_reads, strict=True):
            d = layer.to_dict()
            d["weight_reads"] = reads
            out.append(d)
        return out


def count_network(
    path_or_model: Any,
    *,
    input_shape: Sequence[int] | None = None,
    array: Sequence[int] = DEFAULT_ARRAY,
    weight_sram_kb: float = DEFAULT_WEIGHT_SRAM_KB,
    word_bytes: int = 1,
    row_bits: int = DEFAULT_ROW_BITS,
    backend: str = "analytic",
) -> NetworkCount:
    """Layers, per-layer weight reads and TWMA of one ONNX model."""
    _check_common(array, weight_sram_kb, word_bytes, row_bits, backend)
    layers, inputs = extract_layers(path_or_model, input_shape)
    reads = filter_sram_reads(layers, array=array, weight_sram_kb=weight_sram_kb, backend=backend)
    total = sum(reads)
    return NetworkCount(
        twma=accesses_from_reads(total, word_bytes=word_bytes, row_bits=row_bits),
        weight_reads=total,
        macs=sum(layer.macs for layer in layers),
        params=sum(layer.params for layer in layers),
        layers=layers,
        layer_reads=reads,
        input_shape=next(iter(inputs.values())),
    )


@dataclass(frozen=True)
class EnergyReport:
    """Energy saving of M (+ G). ``energy_saving`` is a fraction (0.24 = 24 %)."""

    twma_g: int
    twma_m: int
    macs_g: int
    macs_m: int
    params_g: int
    params_m: int
    r: float
    ber: float | None
    energy_saving: float
    verdict: str
    voltage_ratio: float | None = None
    source: str = ""
    backend: str = "analytic"
    array: tuple[int, int] = DEFAULT_ARRAY
    weight_sram_kb: float = DEFAULT_WEIGHT_SRAM_KB
    word_bytes: int = 1
    row_bits: int = DEFAULT_ROW_BITS
    vendor: str = ""
    generator: str | None = None
    input_shape: tuple[int, ...] = ()
    layers_m: list[dict[str, Any]] = field(default_factory=list)
    layers_g: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "generator": self.generator,
            "energy_saving": self.energy_saving,
            "verdict": self.verdict,
            "twma_m": self.twma_m,
            "twma_g": self.twma_g,
            "twma_ratio": self.twma_g / self.twma_m if self.twma_m else None,
            "macs_m": self.macs_m,
            "macs_g": self.macs_g,
            "params_m": self.params_m,
            "params_g": self.params_g,
            "operating_point": {
                "voltage_ratio": self.voltage_ratio,
                "ber": self.ber,
                "r": self.r,
                "source": self.source,
            },
            "accelerator": {
                "dataflow": "output-stationary",
                "array": list(self.array),
                "weight_sram_kb": self.weight_sram_kb,
                "word_bytes": self.word_bytes,
                "row_bits": self.row_bits,
                "backend": self.backend,
            },
            "input_shape": list(self.input_shape),
            "formula": "ES = 1 - r - TWMA_G / TWMA_M",
            "layers_m": self.layers_m,
            "layers_g": self.layers_g,
        }

    def to_text(self) -> str:
        rows, cols = self.array
        volt = f"{self.voltage_ratio:g} x Vmin" if self.voltage_ratio is not None else "voltage ?"
        ber = f"BER {self.ber:.3g}" if self.ber is not None else "BER ?"
        ratio = self.twma_g / self.twma_m if self.twma_m else 0.0
        figures = (self.twma_m, self.macs_m, self.params_m, self.twma_g, self.macs_g, self.params_g)
        width = max(len(f"{v:,}") for v in (*figures, 1000000))
        lines = [
            "NeuralFuse energy estimate: ES = 1 - r - TWMA_G / TWMA_M",
            f"  operating point : {volt}, {ber}, r = {self.r:.3f}",
            f"                    ({self.source})",
            f"  accelerator     : {rows}x{cols} output-stationary array, "
            f"{self.weight_sram_kb:g} KB weight SRAM, {self.word_bytes}-byte weights, "
            f"{self.row_bits}-bit SRAM rows ({self.backend})",
            f"  {'':16}{'TWMA':>{width}}  {'MACs':>{width}}  {'weights':>{width}}",
            f"  {'vendor M':16}{self.twma_m:>{width},}  {self.macs_m:>{width},}  "
            f"{self.params_m:>{width},}",
        ]
        if self.generator is not None:
            lines.append(
                f"  {'generator G':16}{self.twma_g:>{width},}  {self.macs_g:>{width},}  "
                f"{self.params_g:>{width},}"
            )
        lines += [
            f"  TWMA_G / TWMA_M : {ratio:.4f}",
            f"  ES = 1 - {self.r:.3f} - {ratio:.4f} = {self.energy_saving * 100:.1f}%",
            f"  verdict         : {self.verdict}",
        ]
        return "\n".join(lines)


def _same_file(a: object, b: object) -> bool:
    """Both paths name files with the same bytes (the vendor passed as --generator)."""
    if not isinstance(a, str | os.PathLike) or not isinstance(b, str | os.PathLike):
        return False
    try:
        if os.path.samefile(a, b):
            return True
        return (
            os.path.getsize(a) == os.path.getsize(b)
            and Path(a).read_bytes() == Path(b).read_bytes()
        )
    except OSError:
        return False


def _verdict(es: float, has_generator: bool) -> str:
    if es > 0:
        text = f"saves {es * 100:.1f}%"
        return text if has_generator else f"{text} (undervolting alone, no generator)"
    if has_generator:
        return "G costs more than the saving: ES ≤ 0"
    return "no saving at this operating point: ES ≤ 0"


def energy_report(
    *,
    vendor: str | os.PathLike[str],
    generator: str | os.PathLike[str] | None = None,
    ber: float | None = None,
    voltage: float | None = None,
    r: float | None = None,
    backend: str = "analytic",
    input_shape: Sequence[int] | None = None,
    array: Sequence[int] = DEFAULT_ARRAY,
    weight_sram_kb: float = DEFAULT_WEIGHT_SRAM_KB,
    word_bytes: int = 1,
    row_bits: int = DEFAULT_ROW_BITS,
) -> EnergyReport:
    """Energy saving of running ``vendor`` in undervolted SRAM behind ``generator``.

    The operating point comes from ``ber`` / ``voltage`` (ratio to Vmin) via
    :func:`~nfdeploy.energy.voltage.operating_point`, or from ``r`` directly; with none of
    them, the paper's point (0.83 x Vmin, 1% BER, r = 0.694). ``input_shape`` fixes the input
    of both models (default: each graph's own; a generator with a dynamic size gets the
    vendor's). Errors are one-line :class:`~nfdeploy.errors.NfdeployError`.
    """
    point = operating_point(ber=ber, voltage=voltage, r=r)
    dims = _check_common(array, weight_sram_kb, word_bytes, row_bits, backend)
    opts: dict[str, Any] = dict(
        array=dims,
        weight_sram_kb=weight_sram_kb,
        word_bytes=word_bytes,
        row_bits=row_bits,
        backend=backend,
    )
    m = count_network(vendor, input_shape=input_shape, **opts)
    if m.twma <= 0:  # pragma: no cover - layers always read weights
        raise NfdeployError(f"{os.fspath(vendor)}: zero weight accesses; nothing to compare")
    g: NetworkCount | None = None
    if generator is not None:
        if _same_file(vendor, generator):
            raise NfdeployError(
                f"{model_label(generator)}: the generator is the vendor model itself; pass the "
                "generator.onnx written by `nfdeploy export`."
            )
        g_shape = input_shape
        if g_shape is None and not input_is_static(generator):
            g_shape = m.input_shape
        g = count_network(generator, input_shape=g_shape, **opts)
    twma_g = g.twma if g is not None else 0
    es = 1.0 - point.r - twma_g / m.twma
    return EnergyReport(
        twma_g=twma_g,
        twma_m=m.twma,
        macs_g=g.macs if g is not None else 0,
        macs_m=m.macs,
        params_g=g.params if g is not None else 0,
        params_m=m.params,
        r=point.r,
        ber=point.ber,
        energy_saving=es,
        verdict=_verdict(es, g is not None),
        voltage_ratio=point.voltage_ratio,
        source=point.source,
        backend=backend,
        array=dims,
        weight_sram_kb=weight_sram_kb,
        word_bytes=word_bytes,
        row_bits=row_bits,
        vendor=os.fspath(vendor),
        generator=os.fspath(generator) if generator is not None else None,
        input_shape=m.input_shape,
        layers_m=m.layers_dict(),
        layers_g=g.layers_dict() if g is not None else [],
    )
