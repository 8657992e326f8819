"""Numpy oracle for ``nfdeploy._kernel`` (test-only; never a runtime fallback).

Reimplements the determinism scheme documented in ``cpp_ext/bitflip.cpp`` with numpy uint64
arithmetic, so the tests can check the compiled kernel bit for bit. It is deliberately
written differently from the C++ (whole arrays of draws, an unpacked bit matrix, cumulative
sums instead of a running position) so that the two implementations do not share mistakes.
"""

from __future__ import annotations

import math

import numpy as np

BLOCK_BYTES = 65536
DENSE_MIN_P = 0.25
GAMMA = 0x9E3779B97F4A7C15
MODEL_FLIP = 0
MODEL_STUCK = 0x535455434B2D4154  # "STUCK-AT"
_U64 = (1 << 64) - 1

_LN2 = 0.6931471805599453
_SQRT_HALF = 0.7071067811865476
_TWO52 = 4503599627370496.0
_TWO52_BITS = np.uint64(0x4330000000000000)
# 2/23, 2/21, ..., 2/3: Horner order of the atanh series used for log().
_SERIES = [2.0 / (2 * j + 1) for j in range(11, 0, -1)]


def _mix64_int(z: int) -> int:
    z &= _U64
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & _U64
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & _U64
    z ^= z >> 31
    return z


def _mix64(z: np.ndarray) -> np.ndarray:
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def model_key(seed: int, stream: int, model: int) -> int:
    h = _mix64_int(seed + GAMMA)
    h = _mix64_int((h ^ stream) + GAMMA)
    return _mix64_int((h ^ model) + GAMMA)


def block_key(h: int, b: int) -> int:
    return _mix64_int((h ^ b) + GAMMA)


def draws(key: int, first: int, n: int) -> np.ndarray:
    """Draws x_{first+1} .. x_{first+n} of the SplitMix64 sequence seeded with ``key``."""
    i = np.arange(first + 1, first + n + 1, dtype=np.uint64)
    return _mix64(np.uint64(key) + i * np.uint64(GAMMA))


def log_unit(u: np.ndarray) -> np.ndarray:
    """log(u) for u in (0, 1], with the kernel's exact sequence of IEEE operations."""
    b = u.view(np.uint64)
    e = ((b >> np.uint64(52)) | _TWO52_BITS).view(np.float64) - (_TWO52 + 1022.0)
    fb = (b & np.uint64(0x000FFFFFFFFFFFFF)) | np.uint64(0x3FE0000000000000)
    low = fb.view(np.float64) < _SQRT_HALF
    fb = fb + np.where(low, np.uint64(1 << 52), np.uint64(0))
    e = e - np.where(low, 1.0, 0.0)
    f = fb.view(np.float64)
    s = (f - 1.0) / (f + 1.0)
    z = s * s
    poly = np.full_like(z, _SERIES[0])
    for c in _SERIES[1:]:
        poly = poly * z + c
    return e * _LN2 + s * (2.0 + z * poly)


def faulty_candidates(nbits: int, p: float, key: int) -> tuple[np.ndarray, np.ndarray]:
    """Faulty candidate indices of one block (ascending) and the draw that chose each."""
    if p >= DENSE_MIN_P:
        x = draws(key, 0, nbits)
        threshold = np.uint64(math.ceil(p * 2.0**53))
        idx = np.flatnonzero((x >> np.uint64(11)) < threshold)
        return idx, x[idx]
    scale = 1.0 / math.log1p(-p)
    found_idx: list[np.ndarray] = []
    found_x: list[np.ndarray] = []
    start = 0  # next candidate index
    used = 0  # draws consumed
    chunk = int(nbits * p * 1.1) + 64
    while True:
        x = draws(key, used, chunk)
        used += chunk
        u = ((x >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0**-53
        gap = np.floor(log_unit(u) * scale)
        gap = np.minimum(gap, float(nbits)).astype(np.int64)  # cap: avoids int overflow
        pos = start + np.cumsum(gap + 1) - 1
        ok = pos < nbits
        n_ok = int(np.argmin(ok)) if not ok.all() else ok.size
        found_idx.append(pos[:n_ok])
        found_x.append(x[:n_ok])
        if n_ok < ok.size:
            break
        start = int(pos[-1]) + 1
    return np.concatenate(found_idx), np.concatenate(found_x)


def _inject(buf: np.ndarray, p: float, seed: int, stream: int, bit_mask: int, model: int) -> int:
    assert buf.dtype == np.uint8 and buf.flags.c_contiguous and buf.flags.writeable
    assert 0.0 <= p <= 1.0 and 1 <= bit_mask <= 255
    flat = buf.reshape(-1)
    if flat.size == 0 or p == 0.0:
        return 0
    positions = np.array([j for j in range(8) if bit_mask >> j & 1])
    pc = positions.size
    bits = np.unpackbits(flat, bitorder="little").reshape(-1, 8)  # bits[i, j]: bit j of byte i
    h = model_key(seed, stream, model)
    changed = 0
    for b, start in enumerate(range(0, flat.size, BLOCK_BYTES)):
        nbytes = min(BLOCK_BYTES, flat.size - start)
        idx, x = faulty_candidates(nbytes * pc, p, block_key(h, b))
        rows = start + idx // pc
        cols = positions[idx % pc]
        old = bits[rows, cols]
        new = 1 - old if model == MODEL_FLIP else (x & np.uint64(1)).astype(np.uint8)
        bits[rows, cols] = new
        changed += int(np.count_nonzero(old != new))
    flat[:] = np.packbits(bits.reshape(-1), bitorder="little")
    return changed


def flip_bits(buf: np.ndarray, p: float, seed: int, stream: int, bit_mask: int = 0xFF) -> int:
    """Reference ``_kernel.flip_bits`` (in place on a uint8 array; returns bits changed)."""
    return _inject(buf, p, seed, stream, bit_mask, MODEL_FLIP)


def stuck_at(buf: np.ndarray, p: float, seed: int, stream: int, bit_mask: int = 0xFF) -> int:
    """Reference ``_kernel.stuck_at`` (in place on a uint8 array; returns bits changed)."""
    return _inject(buf, p, seed, stream, bit_mask, MODEL_STUCK)
