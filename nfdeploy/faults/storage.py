"""Stored weight codes: quantize -> inject -> dequantize, on numpy arrays (torch-free).

Training and validation both call :func:`perturb` on the same :class:`StoredWeight` list, so a
seed gives the same faulty weights on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nfdeploy.faults.injectors import injector
from nfdeploy.faults.spec import FaultSpec, Storage

INT8_MAX = 127.0


@dataclass(frozen=True)
class StoredWeight:
    """One weight tensor as it sits in (emulated) SRAM."""

    name: str
    storage: Storage
    codes: np.ndarray  # int8 / float16 / float32, C-contiguous, never modified
    scale: np.ndarray | None = None  # broadcastable to codes (int8 storages)
    zero_point: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes)

    @classmethod
    def from_float(
        cls, name: str, weight: np.ndarray, storage: Storage, *, axis: int = 0
    ) -> StoredWeight:
        weight = np.asarray(weight, dtype=np.float32)
        if storage is Storage.FP32:
            return cls(name, storage, np.ascontiguousarray(weight))
        if storage is Storage.FP16:
            return cls(name, storage, np.ascontiguousarray(weight.astype(np.float16)))
        if storage is Storage.INT8_CHANNEL and weight.ndim >= 2:
            reduce_axes = tuple(i for i in range(weight.ndim) if i != axis)
            peak = np.max(np.abs(weight), axis=reduce_axes, keepdims=True)
        else:
            peak = (
                np.max(np.abs(weight), keepdims=True)
                if weight.size
                else np.ones((1,) * weight.ndim)
            )
        scale = np.where(peak > 0, peak / INT8_MAX, 1.0).astype(np.float32)
        codes = np.clip(np.rint(weight / scale), -INT8_MAX, INT8_MAX).astype(np.int8)
        return cls(name, storage, np.ascontiguousarray(codes), scale)

    @classmethod
    def from_qdq(
        cls,
        name: str,
        codes: np.ndarray,
        scale: np.ndarray,
        zero_point: np.ndarray,
        *,
        axis: int | None,
    ) -> StoredWeight:
        """An int8/uint8 initializer feeding DequantizeLinear(scale, zero_point[, axis])."""
        shape = [1] * codes.ndim
        if axis is not None and np.asarray(scale).size > 1:
            shape[axis] = -1
        scale_b = np.asarray(scale, dtype=np.float32).reshape(shape)
        zp_b = np.asarray(zero_point, dtype=np.float32).reshape(shape)
        return cls(name, Storage.QDQ, np.ascontiguousarray(codes), scale_b, zp_b)

    def dequantize(self, codes: np.ndarray | None = None) -> np.ndarray:
        """Float32 weights as the network computes with them, from these (or faulty) codes."""
        codes = self.codes if codes is None else codes
        if self.scale is None:
            return codes.astype(np.float32)
        values = codes.astype(np.float32)
        if self.zero_point is not None:
            values -= self.zero_point
        return values * self.scale


def perturb(
    stored: Sequence[StoredWeight],
    spec: FaultSpec,
    *,
    seed: int,
    threads: int = 1,
    namespace: str = "",
) -> list[tuple[np.ndarray, int]]:
    """Faulty copies of every stored tensor under ``spec`` and trial ``seed``, with bits changed.

    Pattern of tensor ``t`` depends only on (seed, name of t, its byte length, spec): the kernel
    stream is the FNV-1a hash of ``namespace + name``. A chip map instead addresses the tensors laid
    out back to back in list order (byte address * 8 + bit = cell index); ref-tiled lays every
    tensor over the seed's map from its start. The injector comes from
    :data:`nfdeploy.faults.injectors.INJECTORS`, keyed by ``spec.model``.
    """
    inject = injector(spec=spec, seed=seed, threads=threads)
    results: list[tuple[np.ndarray, int]] = []
    address = 0
    for weight in stored:
        faulty = weight.codes.copy()
        results.append((faulty, inject(faulty, namespace + weight.name, address)))
        address += weight.nbytes
    return results
