"""Persistent per-cell fault maps ("chip maps"): real undervolted SRAM fails in the same cells.

File format (``.npz``, written by :meth:`ChipMap.save` / ``nfdeploy chipmap``):

- ``format``: the string ``nfdeploy-chipmap-v1``
- ``n_cells``: int64, number of bit cells described
- ``faulty``: uint8, ``np.packbits(mask, bitorder="little")``; cell ``i`` is bit ``i % 8`` of byte
  ``i // 8``, so cell ``8 * a + b`` is bit ``b`` (0 = LSB) of weight byte address ``a``
- ``stuck_value``: uint8, packed the same way: the value a faulty cell is stuck at
- optional ``ber`` (float64) and ``seed`` (int64) when the map was generated

The selected weight tensors are laid out back to back (list order, as ``nfdeploy inspect``
prints it) from address 0. A map shorter than the weights wraps around (``validate`` states
it, see :meth:`ChipMap.coverage_note`); a truncated or corrupt file is refused on load.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nfdeploy.errors import NfdeployError
from nfdeploy.runtime.onnx_io import write_bytes_atomic

FORMAT = "nfdeploy-chipmap-v1"


@dataclass(frozen=True)
class ChipMap:
    faulty: np.ndarray  # bool per cell
    stuck_value: np.ndarray  # bool per cell

    @property
    def n_cells(self) -> int:
        return int(self.faulty.size)

    @classmethod
    def generate(cls, n_cells: int, ber: float, *, seed: int) -> ChipMap:
        rng = np.random.default_rng(seed)
        return cls(rng.random(n_cells) < ber, rng.random(n_cells) < 0.5)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ChipMap:
        """Read a map, refusing a truncated or corrupt file (never read as healthy cells)."""
        path = Path(path)
        try:
            with open(path, "rb") as handle:
                data = np.load(handle, allow_pickle=False)
                if not isinstance(data, np.lib.npyio.NpzFile):
                    raise ValueError("not an .npz archive")
                with data:
                    if "format" not in data.files or str(data["format"]) != FORMAT:
                        raise ValueError(f"no '{FORMAT}' format marker")
                    missing = [
                        k for k in ("n_cells", "faulty", "stuck_value") if k not in data.files
                    ]
                    if missing:
                        raise ValueError(f"missing {', '.join(missing)}")
                    n_cells, faulty_bytes, value_bytes = (
                        data["n_cells"],
                        data["faulty"],
                        data["stuck_value"],
                    )
        except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise NfdeployError(
                f"{path}: not a readable chip map ({exc}); make one with `nfdeploy chipmap`."
            ) from None
        if n_cells.shape != () or n_cells.dtype.kind not in "iu":
            raise NfdeployError(f"{path}: corrupt chip map (n_cells is not one integer).")
        n = int(n_cells)
        if n <= 0:
            raise NfdeployError(f"{path}: the chip map has no cells.")
        need = (n + 7) // 8
        for name, packed in (("faulty", faulty_bytes), ("stuck_value", value_bytes)):
            if packed.dtype != np.uint8 or packed.ndim != 1 or packed.size != need:
                raise NfdeployError(
                    f"{path}: truncated or corrupt chip map ({name} holds {packed.size:,} "
                    f"{packed.dtype} values, {n:,} cells need {need:,} bytes); make it again "
                    "with `nfdeploy chipmap`."
                )
        faulty = np.unpackbits(faulty_bytes, count=n, bitorder="little").astype(bool)
        value = np.unpackbits(value_bytes, count=n, bitorder="little").astype(bool)
        return cls(faulty, value)

    def coverage_note(self, cells: int) -> str | None:
        """How the map lines up with ``cells`` stored weight bits, when it is not one to one."""
        if cells == self.n_cells:
            return None
        if cells > self.n_cells:
            return (
                f"the chip map has {self.n_cells:,} cells but the weights have {cells:,} bits: "
                f"it wraps around (bit i uses cell i mod {self.n_cells:,})"
            )
        return (
            f"the chip map has {self.n_cells:,} cells but the weights have only {cells:,} bits: "
            "only its first cells are used (was it made for another model?)"
        )

    def save(
        self, path: str | os.PathLike[str], *, ber: float | None = None, seed: int | None = None
    ) -> None:

        extra: dict[str, Any] = {"ber": np.float64(ber)} if ber is not None else {}
        if seed is not None:
            extra["seed"] = np.int64(seed)
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            format=np.str_(FORMAT),
            n_cells=np.int64(self.n_cells),
            faulty=np.packbits(self.faulty, bitorder="little"),
            stuck_value=np.packbits(self.stuck_value, bitorder="little"),
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


def make_chip_map_for_model(
    *, model_path: str, ber: float, seed: int, storage: str, out: str
) -> tuple[int, int]:
    """A map with one cell per stored weight bit of ``model_path``; returns (cells, faulty cells)."""
    from nfdeploy.faults.onnx_model import load_faultable

    if not 0.0 <= ber <= 1.0:
        raise NfdeployError(f"--ber {ber}: a cell fault probability in [0, 1], e.g. 0.01.")
    model = load_faultable(model_path, storage=storage)
    cells = model.stored_bytes() * 8
    if cells == 0:
        raise NfdeployError(f"{model_path}: no weight tensors to cover.")
    chip = ChipMap.generate(cells, ber, seed=seed)
    chip.save(out, ber=ber, seed=seed)
    return cells, int(chip.faulty.sum())
