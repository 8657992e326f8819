"""Bit-error injection into the stored bytes of numpy arrays (thin wrapper over ``_kernel``).

Two fault models act in place on the bytes of a C-contiguous, writable array; only bit
positions set in ``bit_mask`` (bit 0 = LSB .. bit 7 = MSB of every byte) are candidates:

* :func:`flip_bits` -- every candidate bit flips independently with probability ``p``.
* :func:`stuck_at` -- every candidate cell is faulty with probability ``p``; a faulty cell is
  stuck at 0 or at 1 with probability 1/2 each (applied as AND / OR), so only about ``p / 2``
  of the bits actually change. This is the "p BER" cell map of the NeuralFuse reference.

Both return the number of bits changed. The semantics are exact i.i.d. for any ``p`` in
[0, 1], realised with 53-bit uniforms (every probability is exact to within 2**-53).

Determinism (counter-based; full details in ``cpp_ext/bitflip.cpp``):

* All arithmetic is mod 2**64; ``mix64`` is the SplitMix64 finaliser, ``G`` its increment.
  ``h = mix64(seed + G)``, ``h = mix64((h ^ stream) + G)``, ``h = mix64((h ^ model) + G)``
  with ``model`` = 0 for flips and the constant "STUCK-AT" for stuck-at faults, so the two
  models are independent for the same (seed, stream).
* The buffer is cut into blocks of :data:`BLOCK_BYTES` (65536) bytes. Block ``b`` uses the
  SplitMix64 sequence seeded with ``mix64((h ^ b) + G)``; its candidates are numbered
  ``k = 0, 1, ...`` (byte ``k // popcount(mask)``, then the set bits of the mask from the LSB).
* ``p < 0.25``: geometric gaps, ``gap = floor(log(u) / log1p(-p))`` with
  ``u = ((x >> 11) + 1) * 2**-53``, so the cost scales with the number of faults. ``log`` is
  a fixed sequence of IEEE operations (within a few ulp, platform independent); ``log1p(-p)`` comes
  from the C library. ``p >= 0.25``: one draw per candidate, faulty iff ``u < p``.
* The stuck value of a faulty cell is bit 0 of the draw that selected it.

Hence the pattern depends only on (seed, stream, model, byte length, p, bit_mask): the
same on every run and for every ``threads`` value (threads only share out whole blocks).
Patterns are **not** nested across rates: the faults drawn at a lower ``p`` are not a
subset of those drawn at a higher ``p`` with the same seed (``validate --nested`` builds nested
patterns on top of this kernel: :mod:`nfdeploy.faults.nested`). ``tests/bitflip_reference.py``
reimplements the scheme in numpy and the tests check it bit for bit.

Per-tensor streams come from :func:`stream_key` (64-bit FNV-1a of the tensor name), which is
stable across processes, unlike Python's ``hash()``. This module does not import torch.
"""

from __future__ import annotations

import numpy as np

from nfdeploy.errors import NfdeployError

try:
    from nfdeploy import _kernel
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "nfdeploy._kernel, the compiled bit-error kernel (cpp_ext/bitflip.cpp), is missing or "
        "failed to load; build it with `pip install --no-build-isolation -e .` (needs a C++17 "
        f"compiler, CMake and pybind11): {exc}"
    ) from exc

__all__ = ["BLOCK_BYTES", "byte_view", "flip_bits", "stream_key", "stuck_at"]

BLOCK_BYTES: int = int(_kernel.BLOCK_BYTES)
"""Fixed block size (bytes) of the determinism scheme."""

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_U64 = (1 << 64) - 1


def _tensor_view(tensor: object) -> np.ndarray:
    try:
        return tensor.numpy()  # type: ignore[attr-defined]
    except (RuntimeError, TypeError) as exc:
        raise NfdeployError(
            f"cannot inject into this tensor in place ({exc}); use a detached CPU tensor"
        ) from None


def byte_view(arr: np.ndarray) -> np.ndarray:
    """Return a flat ``uint8`` view of the bytes of ``arr`` (no copy).

    ``arr`` may have any plain numeric dtype (int8, uint8, float16, float32, ...). Writes
    through the view change ``arr``. Raises :class:`NfdeployError` if ``arr`` is not a numpy
    array, is not C-contiguous, is read-only, or holds Python objects.
    """
    if not isinstance(arr, np.ndarray) and callable(getattr(arr, "numpy", None)):
        arr = _tensor_view(arr)  # a CPU torch tensor: same memory, no torch import here
    if not isinstance(arr, np.ndarray):
        raise NfdeployError(
            f"bit errors can only be injected into a numpy array or CPU tensor, got {type(arr).__name__}"
        )
    if arr.dtype.hasobject:
        raise NfdeployError(
            f"cannot inject bit errors into an array of dtype {arr.dtype}: it holds Python "
            "object references, not stored values"
        )
    if not arr.flags.c_contiguous:
        raise NfdeployError(
            f"cannot inject bit errors into a non-contiguous array (shape {arr.shape}, "
            f"strides {arr.strides}): errors are injected in place and no copy is made; "
            "pass np.ascontiguousarray(arr) and use the result"
        )
    if not arr.flags.writeable:
        raise NfdeployError(
            "cannot inject bit errors into a read-only array: errors are injected in place; "
            "pass a writable copy (arr.copy())"
        )
    return arr.reshape(-1).view(np.uint8)  # a view: reshape of a C-contiguous array never copies


def flip_bits(
    arr: np.ndarray,
    p: float,
    *,
    seed: int,
    stream: int,
    bit_mask: int = 0xFF,
    threads: int = 1,
) -> int:
    """Flip each bit of ``arr``'s bytes in ``bit_mask`` with probability ``p``, in place.

    ``seed`` and ``stream`` are integers in 0..2**64-1 (use :func:`stream_key` for tensor
    names). Returns the number of bits flipped.
    """
    return int(_kernel.flip_bits(byte_view(arr), p, seed, stream, bit_mask, threads))


def stuck_at(
    arr: np.ndarray,
    p: float,
    *,
    seed: int,
    stream: int,
    bit_mask: int = 0xFF,
    threads: int = 1,
) -> int:
    """Make each cell in ``bit_mask`` stuck at 0 or 1 (1/2 each) with probability ``p``.

    Applied in place to ``arr``'s bytes. Returns the number of bits actually changed (a
    stuck cell changes only a bit that held the other value), about ``p / 2`` per cell.
    """
    return int(_kernel.stuck_at(byte_view(arr), p, seed, stream, bit_mask, threads))


def stream_key(name: str) -> int:
    """Stable 64-bit FNV-1a hash of ``name`` (UTF-8), used as the ``stream`` of a tensor."""
    h = _FNV_OFFSET
    for byte in name.encode("utf-8"):
        h = ((h ^ byte) * _FNV_PRIME) & _U64
    return h
