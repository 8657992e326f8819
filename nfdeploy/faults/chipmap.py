"""Persistent per-cell fault maps ("chip maps"): real undervolted SRAM fails in the same cells.

File format (``.npz``, written by :meth:`ChipMap.save` / ``nfdeploy chipmap``):

- ``format``: ``nfdeploy-chipmap-v2`` (``-v1`` files, without the two keys below, still load)
- ``n_cells``: int64, number of bit cells described
- ``faulty``: uint8, ``np.packbits(mask, bitorder="little")``; cell ``i`` is bit ``i % 8`` of byte
  ``i // 8``, so cell ``8 * a + b`` is bit ``b`` (0 = LSB) of weight byte address ``a``
- ``stuck_value``: uint8, packed the same way: the value a faulty cell is stuck at
- ``geometry`` (v2, optional): int64 ``[banks, rows, cols]`` with ``banks * rows * cols ==
  n_cells``; the cells in storage order are ``reshape(banks, rows, cols)``
  (:mod:`nfdeploy.faults.chip_layout`)
- ``info`` (v2): a JSON object: how the map was made (``source``, ``seed``, ``ber``,
  ``voltage``, the clustering model's parameters, or the imported file)
- optional ``ber`` (float64) and ``seed`` (int64) when the map was generated

The selected weight tensors are laid out back to back (list order, as ``nfdeploy inspect``
prints it) from address 0. A map shorter than the weights wraps around (``validate`` states
it, see :meth:`ChipMap.coverage_note`); a truncated or corrupt file is refused on load.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nfdeploy.errors import NfdeployError
from nfdeploy.faults.chip_layout import Geometry
from nfdeploy.onnx.atomic import write_bytes_atomic

FORMAT = "nfdeploy-chipmap-v2"
FORMATS = ("nfdeploy-chipmap-v1", FORMAT)
_REQUIRED = ("n_cells", "faulty", "stuck_value")
_READ_ERRORS = (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile, zlib.error)


@dataclass(frozen=True)
class ChipMap:
    faulty: np.ndarray  # bool per cell
    stuck_value: np.ndarray  # bool per cell
    geometry: Geometry | None = None
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def n_cells(self) -> int:
        return int(self.faulty.size)

    @classmethod
    def generate(cls, n_cells: int, ber: float, *, seed: int) -> ChipMap:
        """Independent cells, no geometry (the v1 generator: same seed, same map)."""
        rng = np.random.default_rng(seed)
        info = {"source": "generated", "seed": seed, "ber": ber, "fault_kind": "iid"}
        return cls(rng.random(n_cells) < ber, rng.random(n_cells) < 0.5, None, info)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ChipMap:
        """Read a map, refusing a truncated or corrupt file (never read as healthy cells)."""
        path = Path(path)
        try:
            arrays = _read_arrays(path)
        except _READ_ERRORS as exc:
            raise NfdeployError(
                f"{path}: not a readable chip map ({exc}); make one with `nfdeploy chipmap`."
            ) from None
        n = _n_cells(path, arrays["n_cells"])
        need = (n + 7) // 8
        for name in ("faulty", "stuck_value"):
            packed = arrays[name]
            if packed.dtype != np.uint8 or packed.ndim != 1 or packed.size != need:
                raise NfdeployError(
                    f"{path}: truncated or corrupt chip map ({name} holds {packed.size:,} "
                    f"{packed.dtype} values, {n:,} cells need {need:,} bytes); make it again "
                    "with `nfdeploy chipmap`."
                )
        faulty = np.unpackbits(arrays["faulty"], count=n, bitorder="little").astype(bool)
        value = np.unpackbits(arrays["stuck_value"], count=n, bitorder="little").astype(bool)
        geometry = _geometry(path, arrays.get("geometry"), n)
        return cls(faulty, value, geometry, _info(path, arrays))

    def coverage_note(self, cells: int) -> str | None:
        """How the map lines up with ``cells`` stored weight bits, when it is not one to one."""
        if cells == self.n_cells:
            return None
        if cells > self.n_cells:
            return (
                f"the chip map has {self.n_cells:,} cells but the weights have {cells:,} bits: "
                f"it wraps around (bit i uses cell i mod {self.n_cells:,})"
            )
        if self.geometry and self.n_cells - cells < self.geometry.cells_per_bank:
            return None  # sized for these weights: only the last bank is partly used
        return (
            f"the chip map has {self.n_cells:,} cells but the weights have only {cells:,} bits: "
            "only its first cells are used (was it made for another model?)"
        )

    def save(
        self, path: str | os.PathLike[str], *, ber: float | None = None, seed: int | None = None
    ) -> None:
        """Write the map (format v2) atomically; ``ber``/``seed`` are also stored in ``info``."""
        info = dict(self.info)
        extra: dict[str, Any] = {}
        if ber is not None:
            extra["ber"] = np.float64(ber)
            info.setdefault("ber", float(ber))
        if seed is not None:
            extra["seed"] = np.int64(seed)
            info.setdefault("seed", int(seed))
        if self.geometry is not None:
            extra["geometry"] = np.array(self.geometry.to_list(), dtype=np.int64)
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            format=np.str_(FORMAT),
            n_cells=np.int64(self.n_cells),
            faulty=np.packbits(self.faulty, bitorder="little"),
            stuck_value=np.packbits(self.stuck_value, bitorder="little"),
            info=np.str_(json.dumps(info, sort_keys=True)),
            **extra,
        )
        write_bytes_atomic(path, buffer.getvalue())

    def apply(self, buf: np.ndarray, *, address: int, bit_mask: int = 0xFF) -> int:
        """Apply stuck cells to a uint8 view ``buf`` stored at byte ``address``; returns bits changed."""
        nbits = buf.size * 8
        if nbits == 0:
            return 0
        cells = (np.arange(nbits, dtype=np.int64) + address * 8) % self.n_cells
        bits = np.unpackbits(buf, bitorder="little").astype(bool)
        allowed = np.tile(
            np.unpackbits(np.uint8(bit_mask), bitorder="little").astype(bool), buf.size
        )
        faulty = self.faulty[cells] & allowed
        new_bits = np.where(faulty, self.stuck_value[cells], bits)
        changed = int(np.count_nonzero(new_bits != bits))
        buf[...] = np.packbits(new_bits, bitorder="little").reshape(buf.shape)
        return changed


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as handle:
        data = np.load(handle, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with data:
            if "format" not in data.files or str(data["format"]) not in FORMATS:
                raise ValueError(f"no '{FORMAT}' format marker")
            missing = [k for k in _REQUIRED if k not in data.files]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
            return {k: data[k] for k in data.files}


def _n_cells(path: Path, n_cells: np.ndarray) -> int:
    if n_cells.shape != () or n_cells.dtype.kind not in "iu":
        raise NfdeployError(f"{path}: corrupt chip map (n_cells is not one integer).")
    if int(n_cells) <= 0:
        raise NfdeployError(f"{path}: the chip map has no cells.")
    return int(n_cells)


def _geometry(path: Path, raw: np.ndarray | None, n_cells: int) -> Geometry | None:
    if raw is None:
        return None
    if raw.shape != (3,) or raw.dtype.kind not in "iu" or int(np.prod(raw)) != n_cells:
        raise NfdeployError(
            f"{path}: corrupt chip map (geometry {raw.tolist()} does not describe "
            f"{n_cells:,} cells as [banks, rows, cols])."
        )
    return Geometry(*(int(v) for v in raw))


def _info(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if "info" in arrays:
        try:
            info = json.loads(str(arrays["info"]))
        except ValueError:
            raise NfdeployError(f"{path}: corrupt chip map (info is not JSON).") from None
    for key, cast in (("ber", float), ("seed", int)):
        if key in arrays and key not in info:
            info[key] = cast(arrays[key])
    return info
