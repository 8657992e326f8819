"""Nested fault patterns (``validate --nested``): for one seed, the faults at a lower rate are a
subset of those at a higher rate, and every rate is still exactly i.i.d. Bernoulli(p) per cell.

The kernel draws faulty cells by geometric gap skipping, so the cells it picks at two rates
are unrelated. Nesting is built on top of it from a fixed ladder of rates q_l = 2**-l
(l = 0 .. LEVELS), the same for every sweep, so a pattern depends only on (seed, stream,
byte length, p, bit mask) and never on the other rates of a sweep:

* level l draws an independent cell set D_l with the kernel (its own stream): D_LEVELS at
  rate q_LEVELS, and D_l for l < LEVELS at rate r_l = q_{l+1} / (1 - q_{l+1}), so that the
  union D_LEVELS | ... | D_l is Bernoulli(q_l) per cell;
* for q_{j+1} < p <= q_j the faulty cells are D_LEVELS | ... | D_{j+1} plus the cells of D_j
  whose own uniform v (a hash of seed, stream, level and cell) is below
  t = ((p - q_{j+1}) / (1 - q_{j+1})) / r_j; for p <= q_LEVELS, the cells of D_LEVELS with
  v < p / q_LEVELS. Both are exactly Bernoulli(p), and raising p only adds cells;
* a faulty cell is stuck at the top bit of a hash of (seed, stream, cell), whatever p is.

Cell ``8 * a + b`` is bit ``b`` of byte ``a``. Drawing costs about twice the cells of one
kernel call at p plus one pass over the buffer per level (LEVELS - j + 1 of them).
"""

from __future__ import annotations

import math
from enum import Enum

import numpy as np

import nfdeploy.faults.kernel as kernel

LEVELS = 30  # q_30 = 2**-30 ~ 9.3e-10; lower rates thin that level
_G = 0x9E3779B97F4A7C15
_U64 = (1 << 64) - 1
_TAG_LEVEL, _TAG_THIN, _TAG_STUCK = 0x4C4556454C, 0x5448494E, 0x535455434B  # LEVEL THIN STUCK


class Nested(int, Enum):
    """The two i.i.d. models that nest; their patterns are independent of each other."""

    FLIP = 0x4E455354464C4950  # "NESTFLIP"
    STUCK_AT = 0x4E45535453544B41  # "NESTSTKA"


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64
    return z ^ (z >> 31)


def _key(*parts: int) -> int:
    h = 0
    for part in parts:
        h = _mix64(((h ^ part) + _G) & _U64)
    return h


def _cell_hash(key: int, cells: np.ndarray) -> np.ndarray:
    """SplitMix64 of ``key + (cell + 1) * G`` for every cell index (uint64 arithmetic wraps)."""
    z = np.uint64(key) + (cells.astype(np.uint64) + np.uint64(1)) * np.uint64(_G)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def top_level(p: float) -> int:
    """The j with q_{j+1} < p <= q_j (capped at LEVELS), exactly, from p's binary exponent."""
    mantissa, exponent = math.frexp(p)
    return min(1 - exponent if mantissa == 0.5 else -exponent, LEVELS)


def level_rate(level: int) -> float:
    q_next = 2.0 ** -(level + 1)
    return 2.0**-LEVELS if level == LEVELS else q_next / (1.0 - q_next)


def keep_fraction(p: float, level: int) -> float:
    """Share of the top level's cells kept at rate p."""
    if level == LEVELS:
        return min(p / 2.0**-LEVELS, 1.0)
    q_next = 2.0 ** -(level + 1)
    return min((p - q_next) / (1.0 - q_next) / level_rate(level), 1.0)


def _cells_of(hits: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Byte addresses with a hit, their 8 bits (LSB first) as (n, 8) booleans, and the
    (row, bit) indices of the set ones (cell = 8 * addresses[row] + bit)."""
    addresses = np.flatnonzero(hits)
    bits = np.unpackbits(hits[addresses, None], axis=1, bitorder="little").astype(bool)
    rows, cols = np.nonzero(bits)
    return addresses, bits, (rows, cols)


def _pack(bits: np.ndarray) -> np.ndarray:
    return np.packbits(bits, axis=1, bitorder="little")[:, 0]


def _thin(hits: np.ndarray, *, keep: float, key: int) -> None:
    """Keep each set bit of ``hits`` iff its cell's uniform is below ``keep`` (in place)."""
    if keep >= 1.0:
        return
    addresses, bits, (rows, cols) = _cells_of(hits)
    uniform = (_cell_hash(key, addresses[rows] * 8 + cols) >> np.uint64(11)) * 2.0**-53
    dropped = uniform >= keep
    bits[rows[dropped], cols[dropped]] = False
    hits[addresses] = _pack(bits)


def faulty_cells(
    nbytes: int, p: float, *, model: Nested, seed: int, stream: int, bit_mask: int, threads: int
) -> np.ndarray:
    """uint8 array of ``nbytes``: bit b of byte a set iff cell 8a + b is faulty at rate p."""
    hits = np.zeros(nbytes, dtype=np.uint8)
    if p <= 0.0 or nbytes == 0:
        return hits
    top = top_level(p)
    scratch = np.empty_like(hits)
    for level in range(LEVELS, top - 1, -1):
        scratch.fill(0)
        level_stream = _key(stream, model, _TAG_LEVEL, level)
        kernel.flip_bits(
            scratch, level_rate(level), seed=seed, stream=level_stream, bit_mask=bit_mask,
            threads=threads,
        )  # fmt: skip
        if level == top:
            _thin(
                scratch,
                keep=keep_fraction(p, level),
                key=_key(seed, stream, model, _TAG_THIN, level),
            )
        hits |= scratch
    return hits


def inject(
    codes: np.ndarray,
    p: float,
    *,
    model: Nested,
    seed: int,
    stream: int,
    bit_mask: int = 0xFF,
    threads: int = 1,
) -> int:
    """Nested faults into ``codes`` in place (flip: XOR; stuck-at: AND/OR); bits changed."""
    data = kernel.byte_view(codes)
    hits = faulty_cells(
        data.size, p, model=model, seed=seed, stream=stream, bit_mask=bit_mask, threads=threads
    )
    addresses, bits, (rows, cols) = _cells_of(hits)
    old = data[addresses]
    if model is Nested.FLIP:
        new = old ^ hits[addresses]
    else:
        cells = addresses[rows] * 8 + cols
        ones = np.zeros_like(bits)
        ones[rows, cols] = (_cell_hash(_key(seed, stream, model, _TAG_STUCK), cells) >> 63) == 1
        new = (old & ~hits[addresses]) | _pack(ones)
    data[addresses] = new
    return int(np.unpackbits(old ^ new).sum())
