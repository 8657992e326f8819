"""Import a measured fault map (per-cell SA0 / SA1 bitmaps) as a chip map.

Input format: an ``.npz`` holding

- ``sa0`` and ``sa1``: bool (or 0/1 integer) arrays of shape ``(banks, rows, cols)``, or
  ``(rows, cols)`` for one bank: True where the cell reads 0 (``sa0``) or 1 (``sa1``) whatever
  was written. A cell may not be in both. Cells are in the storage order of
  :mod:`nfdeploy.faults.chip_layout` (row-major within a bank, banks one after another);
- or, packed, ``sa0_packed`` / ``sa1_packed``: uint8 ``np.packbits(flat, bitorder="little")``
  with ``shape`` (int64 ``[banks, rows, cols]``);
- optional ``voltage`` (float, V / Vmin at which it was measured) and ``chip`` (a string id).

A map with fewer cells than the weights have bits is refused unless ``tile`` is given
(``--tile``): then bit ``i`` uses cell ``i mod n_cells`` (the map repeats), and the map and
the report say so.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from nfdeploy.errors import NfdeployError
from nfdeploy.faults.chip_layout import Geometry
from nfdeploy.faults.chipmap import ChipMap

FORMAT_HELP = (
    "an .npz with bool arrays sa0 and sa1 of shape (banks, rows, cols) or (rows, cols), "
    "or sa0_packed/sa1_packed (np.packbits, bitorder little) with shape [banks, rows, cols]"
)


def import_measured(*, path: str | Path, cells_needed: int, tile: bool = False) -> ChipMap:
    """The measured map in ``path`` as a :class:`ChipMap` covering ``cells_needed`` bits."""
    path = Path(path)
    arrays = _read(path)
    sa0, sa1, geometry = _bitmaps(path, arrays)
    both = int(np.count_nonzero(sa0 & sa1))
    if both:
        raise NfdeployError(
            f"{path}: {both:,} cells are in both sa0 and sa1; a cell is stuck at one value."
        )
    if geometry.n_cells < cells_needed and not tile:
        raise NfdeployError(
            f"{path}: the measured map has {geometry.n_cells:,} cells but the weights have "
            f"{cells_needed:,} bits; measure a larger map, or pass --tile to repeat it."
        )
    info: dict[str, Any] = {
        "source": "imported",
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "tiled": bool(geometry.n_cells < cells_needed),
        "fault_kind": "measured",
        "faulty_fraction": float(np.count_nonzero(sa0 | sa1) / geometry.n_cells),
    }
    info.update(_scalars(path, arrays))
    return ChipMap((sa0 | sa1).reshape(-1), sa1.reshape(-1), geometry, info)


def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise NfdeployError(
            f"{path}: not a readable measured map ({exc}); need {FORMAT_HELP}."
        ) from None


def _bitmaps(path: Path, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, Geometry]:
    if "sa0" in arrays and "sa1" in arrays:
        sa0, sa1 = (_as_bool(path, k, arrays[k]) for k in ("sa0", "sa1"))
        if sa0.shape != sa1.shape or sa0.ndim not in (2, 3) or sa0.size == 0:
            raise NfdeployError(
                f"{path}: sa0 {list(sa0.shape)} and sa1 {list(sa1.shape)} must have one shape "
                "(banks, rows, cols) or (rows, cols)."
            )
        shape = sa0.shape if sa0.ndim == 3 else (1, *sa0.shape)
        return sa0.reshape(shape), sa1.reshape(shape), Geometry(*(int(s) for s in shape))
    if {"sa0_packed", "sa1_packed", "shape"} <= arrays.keys():
        return _unpack(path, arrays)
    raise NfdeployError(f"{path}: keys {sorted(arrays)}; need {FORMAT_HELP}.")


def _unpack(path: Path, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, Geometry]:
    shape = arrays["shape"]
    if shape.shape != (3,) or shape.dtype.kind not in "iu" or np.any(shape < 1):
        raise NfdeployError(f"{path}: shape {shape.tolist()} is not [banks, rows, cols].")
    geometry = Geometry(*(int(s) for s in shape))
    out = []
    for key in ("sa0_packed", "sa1_packed"):
        packed = arrays[key]
        need = (geometry.n_cells + 7) // 8
        if packed.dtype != np.uint8 or packed.ndim != 1 or packed.size != need:
            raise NfdeployError(
                f"{path}: {key} holds {packed.size:,} {packed.dtype} values; shape "
                f"{geometry.to_list()} needs {need:,} uint8 bytes."
            )
        flat = np.unpackbits(packed, count=geometry.n_cells, bitorder="little").astype(bool)
        out.append(flat.reshape(geometry.shape))
    return out[0], out[1], geometry


def _as_bool(path: Path, key: str, array: np.ndarray) -> np.ndarray:
    if array.dtype == bool:
        return array
    if array.dtype.kind in "iu" and np.all((array == 0) | (array == 1)):
        return array.astype(bool)
    raise NfdeployError(f"{path}: {key} must be bool (or 0/1 integers), not {array.dtype}.")


def _scalars(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "voltage" in arrays:
        voltage = arrays["voltage"]
        if voltage.shape != () or voltage.dtype.kind not in "fiu":
            raise NfdeployError(f"{path}: voltage must be one number (V / Vmin).")
        out["voltage"] = float(voltage)
    if "chip" in arrays:
        out["chip"] = str(arrays["chip"])
    return out
