"""Memory geometry of a chip map: the stored weight bits laid onto banks x rows x columns.

The paper's voltage/BER/energy figures come from 14 nm SRAM in 512 x 64 arrays: 512 rows
(word lines) of 64 bit cells (bit-line columns), i.e. one 64-bit word per row, 32 Kibit =
4 KiB per array ("bank" here). ``docs/energy.md`` reads the same 64-bit rows as one weight-SRAM
access (8 int8 weights).

Mapping, in storage order (the selected tensors back to back, as ``nfdeploy inspect`` lists
them; cell ``i = 8 * byte_address + bit``, bit 0 = LSB)::

    bank = i // (rows * cols)
    row  = (i // cols) % rows
    col  = i % cols

so with 64 columns a row holds 8 consecutive bytes, and column ``c`` holds bit ``c % 8`` of
byte ``c // 8`` of every row. There is no column interleaving (column mux 1) and no address
scrambling: an assumption, real arrays often interleave words. The flat per-cell arrays of a
:class:`~nfdeploy.faults.chipmap.ChipMap` are exactly ``np.reshape(cells, (banks, rows, cols))``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nfdeploy.errors import NfdeployError

#: 512 rows x 64 bit columns: the 14 nm SRAM arrays behind the paper's 0.83 x Vmin / 1 % point.
PAPER_ROWS, PAPER_COLS = 512, 64
_LAYOUT = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


@dataclass(frozen=True)
class Geometry:
    """``banks`` arrays of ``rows`` x ``cols`` bit cells, filled in storage order."""

    banks: int
    rows: int
    cols: int

    def __post_init__(self) -> None:
        for name in ("banks", "rows", "cols"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise NfdeployError(f"chip geometry: {name} = {value!r}, need a whole number >= 1.")

    @property
    def cells_per_bank(self) -> int:
        return self.rows * self.cols

    @property
    def n_cells(self) -> int:
        return self.banks * self.cells_per_bank

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.banks, self.rows, self.cols)

    def locate(self, cell: int) -> tuple[int, int, int]:
        """(bank, row, col) of flat cell index ``cell`` (= 8 * byte address + bit)."""
        if not 0 <= cell < self.n_cells:
            raise NfdeployError(f"cell {cell}: outside this {self.describe()}.")
        bank, offset = divmod(cell, self.cells_per_bank)
        row, col = divmod(offset, self.cols)
        return bank, row, col

    def cell(self, bank: int, row: int, col: int) -> int:
        """Flat cell index of (bank, row, col); the inverse of :meth:`locate`."""
        if not (0 <= bank < self.banks and 0 <= row < self.rows and 0 <= col < self.cols):
            raise NfdeployError(f"({bank}, {row}, {col}): outside this {self.describe()}.")
        return (bank * self.rows + row) * self.cols + col

    def describe(self) -> str:
        return (
            f"{self.banks} bank(s) of {self.rows} rows x {self.cols} columns "
            f"({self.n_cells:,} cells)"
        )

    def to_list(self) -> list[int]:
        return [self.banks, self.rows, self.cols]


def parse_layout(text: str) -> tuple[int, int]:
    """'512x64' -> (512, 64): rows x columns of bit cells per bank."""
    match = _LAYOUT.match(text)
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise NfdeployError(
            f"--layout {text!r}: give ROWSxCOLS of bit cells per bank, e.g. 512x64 (the paper's)."
        )
    return int(match[1]), int(match[2])


def geometry_for(
    *, cells: int, rows: int = PAPER_ROWS, cols: int = PAPER_COLS, banks: int | None = None
) -> Geometry:
    """The smallest number of ``rows`` x ``cols`` banks holding ``cells`` bits, or ``banks``
    given (refused when too few: the map would wrap around)."""
    if cells < 1:
        raise NfdeployError("chip map: nothing to cover (0 weight bits).")
    needed = -(-cells // (rows * cols))
    if banks is None:
        return Geometry(needed, rows, cols)
    if banks < needed:
        raise NfdeployError(
            f"--banks {banks}: {banks} x {rows} x {cols} = {banks * rows * cols:,} cells hold "
            f"fewer than the {cells:,} weight bits; use --banks {needed} or more, or omit it."
        )
    return Geometry(banks, rows, cols)
