"""The NeuralFuse reference's fault map: one small stuck-at cell map per seed, tiled over every tensor.

The reference (IBM/NeuralFuse, ``faultmodels/randomfault.py`` and
``faultinjection_ops/zs_faultinjection_ops.py``) draws an 8192 x 128 map of SRAM cells per
seed and lays every conv/linear weight tensor over it from the start. Reimplemented here
from its documented behaviour (``docs/fault-model.md``, "ref-tiled"):

* cell (r, c) is faulty iff ``RandomState(seed).random_sample((8192, 128))[r, c] < p``; a
  faulty cell is stuck at 1 iff ``RandomState(seed + 1).random_sample(...)[r, c] < 1/2``,
  else at 0. The same uniforms serve every p, so maps are nested across p for a seed.
* a row holds ``k = 128 // bits`` elements of ``bits`` bits (16 int8 codes); bit j of the
  element in slot s is cell ``s * bits + j``.
* element i of a tensor (C order) uses row ``(i // k**2) % 8192`` and slot ``i % k``: the
  reference tiles the packed (8192, k) map k times along its columns, not once, so within
  each run of k**2 elements the same k-element pattern repeats k times.

numpy's legacy ``RandomState`` stream is frozen by numpy's compatibility policy, so a seed
gives the reference's own map. Only numpy; no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nfdeploy.errors import NfdeployError

MAP_ROWS = 8192
MAP_COLS = 128
#: RandomState takes seeds below 2**32, and the stuck values use seed + 1.
MAX_REF_SEED = 2**32 - 2
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def check_seed(seed: int) -> None:
    if not 0 <= seed <= MAX_REF_SEED:
        raise NfdeployError(
            f"seed {seed}: --fault-model ref-tiled draws its map with numpy's RandomState(seed) "
            f"and RandomState(seed + 1), as the reference does, so trial seeds must be in "
            f"0..{MAX_REF_SEED}; use --seed 50000 (the default)."
        )


@dataclass(frozen=True)
class RefTiledMap:
    """Stuck-at-0 and stuck-at-1 cells of one seed's map, (MAP_ROWS, MAP_COLS) booleans each."""

    stuck0: np.ndarray
    stuck1: np.ndarray
    _periods: dict[int, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False
    )  # masks() per element size, built once per map

    @classmethod
    def draw(cls, *, seed: int, p: float, bit_mask: int = 0xFF) -> RefTiledMap:
        """The map of ``seed`` at rate ``p``; cells whose bit position (j mod 8) is outside
        ``bit_mask`` are healthy."""
        check_seed(seed)
        shape = (MAP_ROWS, MAP_COLS)
        faulty = np.random.RandomState(seed).random_sample(shape) < p
        one = np.random.RandomState(seed + 1).random_sample(shape) < 0.5
        positions = np.arange(MAP_COLS) % 8
        faulty &= ((bit_mask >> positions) & 1).astype(bool)
        return cls(stuck0=faulty & ~one, stuck1=faulty & one)

    def masks(self, itemsize: int) -> tuple[np.ndarray, np.ndarray]:
        """(clear, set) masks of one map period: ``MAP_ROWS * k**2`` unsigned ``itemsize``-byte
        elements, element i of a tensor taking entry ``i % period``."""
        if itemsize not in _UNSIGNED:
            raise ValueError(f"ref-tiled: no map layout for {itemsize}-byte elements")
        if itemsize not in self._periods:
            self._periods[itemsize] = (
                _period(self.stuck0, itemsize),
                _period(self.stuck1, itemsize),
            )
        return self._periods[itemsize]

    def apply(self, codes: np.ndarray) -> int:
        """Apply the map to ``codes`` (C-contiguous, writable) in place; returns bits changed."""
        if codes.size == 0:
            return 0
        clear, set_ = self.masks(codes.itemsize)
        values = codes.reshape(-1).view(_UNSIGNED[codes.itemsize])
        old = values.copy()
        values &= ~_tiled(clear, values.size)
        values |= _tiled(set_, values.size)
        return int(np.unpackbits((old ^ values).view(np.uint8)).sum())


def _period(cells: np.ndarray, itemsize: int) -> np.ndarray:
    """Pack the cells of each row into k = 128 // bits elements, then tile each row k times."""
    bits = 8 * itemsize
    per_row = MAP_COLS // bits
    dtype = _UNSIGNED[itemsize]
    weights = np.left_shift(np.ones(bits, dtype=dtype), np.arange(bits, dtype=dtype))
    grouped = cells[:, : per_row * bits].reshape(MAP_ROWS, per_row, bits).astype(dtype)
    packed = np.bitwise_or.reduce(grouped * weights, axis=2)
    return np.tile(packed, (1, per_row)).reshape(-1)


def _tiled(period: np.ndarray, size: int) -> np.ndarray:
    """The first ``size`` entries of ``period`` repeated (a view when one period suffices)."""
    return period[:size] if size <= period.size else np.resize(period, size)
