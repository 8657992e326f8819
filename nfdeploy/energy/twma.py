"""Total weight memory accesses (TWMA) on an output-stationary systolic array.

SCALE-Sim's output-stationary dataflow maps the ``E`` output pixels of one filter onto the
array rows and the ``M`` filters onto the columns; every fold streams the ``T = k*k*C``
weights of each mapped filter down its column, one word per cycle. Its "SRAM filter reads"
count is therefore exactly::

    reads = ceil(E / array_rows) * T * M          (words, batch 1)

(each row fold re-reads every weight once; the number of columns only changes how many folds
the filters take, not how many weights are read). SCALE-Sim's count does not depend on the
weight-SRAM capacity either: capacity only changes how often the SRAM is refilled from DRAM.

TWMA here counts SRAM *accesses*: one access returns one SRAM row of ``row_bits`` bits
(default 64, the 512 x 64 14 nm arrays behind the paper's voltage/BER figures), i.e. 8 int8
weights. ``TWMA = ceil(reads * word_bytes * 8 / row_bits)``; this reproduces the paper's
numbers (see docs/energy.md). ``row_bits = 8 * word_bytes`` gives SCALE-Sim's raw word count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from nfdeploy.errors import NfdeployError

from .layers import LayerShape

__all__ = [
    "BACKENDS",
    "DEFAULT_ARRAY",
    "DEFAULT_ROW_BITS",
    "DEFAULT_WEIGHT_SRAM_KB",
    "accesses_from_reads",
    "filter_sram_reads",
    "layer_filter_reads",
    "twma",
]

BACKENDS = ("analytic", "scalesim")
DEFAULT_ARRAY = (32, 32)
DEFAULT_WEIGHT_SRAM_KB = 256
DEFAULT_ROW_BITS = 64


def _check_array(array: Sequence[int]) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in array)
    except (TypeError, ValueError):
        raise NfdeployError(f"array {array!r}: expected (rows, cols)") from None
    if rows <= 0 or cols <= 0:
        raise NfdeployError(f"array {rows}x{cols}: both dimensions must be positive")
    return rows, cols


def _check_common(
    array: Sequence[int], weight_sram_kb: float, word_bytes: int, row_bits: int, backend: str
) -> tuple[int, int]:
    dims = _check_array(array)
    if not weight_sram_kb > 0:
        raise NfdeployError(f"weight SRAM size {weight_sram_kb} KB: must be positive")
    if int(word_bytes) != word_bytes or word_bytes < 1:
        raise NfdeployError(f"word size {word_bytes} bytes: must be a positive integer")
    if int(row_bits) != row_bits or row_bits < 8 or row_bits % 8:
        raise NfdeployError(f"SRAM row width {row_bits} bits: must be a positive multiple of 8")
    if backend not in BACKENDS:
        raise NfdeployError(f"backend '{backend}': choose one of {', '.join(BACKENDS)}")
    return dims


def layer_filter_reads(layer: LayerShape, *, array: Sequence[int] = DEFAULT_ARRAY) -> int:
    """SCALE-Sim's filter-SRAM read count (words) for one layer, output-stationary, batch 1."""
    rows, _ = _check_array(array)
    return math.ceil(layer.ofmap_pixels / rows) * layer.window * layer.num_filters


def filter_sram_reads(
    layers: Iterable[LayerShape],
    *,
    array: Sequence[int] = DEFAULT_ARRAY,
    weight_sram_kb: float = DEFAULT_WEIGHT_SRAM_KB,
    backend: str = "analytic",
) -> list[int]:
    """Per-layer filter-SRAM reads in words (SCALE-Sim's "SRAM filter reads")."""
    _check_common(array, weight_sram_kb, 1, DEFAULT_ROW_BITS, backend)
    layers = list(layers)
    if backend == "scalesim":
        from .scalesim_backend import scalesim_filter_reads

        return [
            scalesim_filter_reads(layer, array=array, weight_sram_kb=weight_sram_kb)
            for layer in layers
        ]
    return [layer_filter_reads(layer, array=array) for layer in layers]


def accesses_from_reads(
    reads: int, *, word_bytes: int = 1, row_bits: int = DEFAULT_ROW_BITS
) -> int:
    """SRAM row accesses needed to deliver ``reads`` weights of ``word_bytes`` bytes each."""
    return -(-int(reads) * int(word_bytes) * 8 // int(row_bits))


def twma(
    layers: Iterable[LayerShape],
    *,
    array: Sequence[int] = DEFAULT_ARRAY,
    weight_sram_kb: float = DEFAULT_WEIGHT_SRAM_KB,
    word_bytes: int = 1,
    row_bits: int = DEFAULT_ROW_BITS,
    backend: str = "analytic",
) -> int:
    """Total weight-SRAM accesses of a network (one image).

    ``array``: (rows, cols) of the output-stationary systolic array. ``weight_sram_kb``:
    weight (filter) SRAM size; validated and recorded, it does not change the count (see the
    module docstring). ``word_bytes``: bytes per weight (1 = int8). ``row_bits``: bits returned
    by one SRAM access (64 = 8 int8 weights, the convention that reproduces the paper; use
    ``8 * word_bytes`` for SCALE-Sim's raw per-word count). ``backend``: ``'analytic'`` (closed
    form) or ``'scalesim'`` (SCALE-Sim's own compute model; needs the ``energy`` extra).
    """
    _check_common(array, weight_sram_kb, word_bytes, row_bits, backend)
    reads = filter_sram_reads(layers, array=array, weight_sram_kb=weight_sram_kb, backend=backend)
    return accesses_from_reads(sum(reads), word_bytes=word_bytes, row_bits=row_bits)
