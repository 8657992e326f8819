"""Clustered stuck-at cell faults: independent cells, plus weak rows and weak columns.

Model (per bank of a :class:`~nfdeploy.faults.chip_layout.Geometry`), three independent
components, a cell is faulty when any of them makes it so:

* background: every cell is faulty with probability ``p0``;
* rows: every row is *weak* with probability ``pi_r``; each cell of a weak row is faulty
  with probability ``q_r`` (``row_fault_prob``);
* columns: the same with ``pi_c`` and ``q_c`` (``col_fault_prob``).

A faulty cell is stuck at 1 with probability ``sa1_fraction``, else at 0 (independently).

Calibration: the row component alone makes a cell faulty with probability
``a_r = pi_r q_r = row_share * p``, the column component ``a_c = col_share * p``, and ``p0``
solves ``1 - (1 - p0)(1 - a_r)(1 - a_c) = p``, so the expected faulty-cell fraction is exactly
the target ``p`` ("stuck-at BER": each cell faulty with probability p). ``row_share`` /
``col_share`` are the shares of p the rows / columns contribute (before the small overlap).

Seeds: the same seed gives the same map; the random numbers are drawn per cell, row and
column independently of ``p``, so for one seed and fixed shares and q a higher ``p`` (a lower
voltage) fails a superset of the cells, each stuck at the same value: a chip's weak cells
stay weak as the voltage drops.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nfdeploy.errors import NfdeployError
from nfdeploy.faults.chip_layout import Geometry

#: Defaults and where they come from (see docs/fault-model.md, "Clustered chip maps").
DEFAULT_SA1_FRACTION = 0.5  # NeuralFuse reference: stuck at 0 or 1 with probability 1/2 each
DEFAULT_LINE_FAULT_PROB = 0.25  # ASSUMPTION: no sourced within-row/column fault probability
_ROW_STREAM, _COL_STREAM = 1, 2


@dataclass(frozen=True)
class ClusterModel:
    """Target stuck-at rate ``ber`` and how its faults are spread (see the module doc)."""

    ber: float
    row_share: float = 0.0
    col_share: float = 0.0
    row_fault_prob: float = DEFAULT_LINE_FAULT_PROB
    col_fault_prob: float = DEFAULT_LINE_FAULT_PROB
    sa1_fraction: float = DEFAULT_SA1_FRACTION

    def __post_init__(self) -> None:
        _check_unit("--ber", self.ber, "a cell fault probability, e.g. 0.01")
        _check_unit("--row-share", self.row_share, "the share of faults from weak rows")
        _check_unit("--col-share", self.col_share, "the share of faults from weak columns")
        _check_unit("--sa1-fraction", self.sa1_fraction, "the share of cells stuck at 1")
        if self.row_share + self.col_share > 1.0 + 1e-12:
            raise NfdeployError(
                f"--row-share {self.row_share:g} + --col-share {self.col_share:g} > 1: the shares "
                "of faults from rows and columns add up to at most 1."
            )
        for flag, q, share in (
            ("--row-fault-prob", self.row_fault_prob, self.row_share),
            ("--col-fault-prob", self.col_fault_prob, self.col_share),
        ):
            _check_unit(flag, q, "a weak line's cell fault probability")
            if q <= 0.0 or share * self.ber > q:
                raise NfdeployError(
                    f"{flag} {q:g}: must exceed share x BER = {share * self.ber:g} (else more "
                    "than every line would have to be weak); raise it or lower the share."
                )

    @property
    def weak_row_prob(self) -> float:
        return self.row_share * self.ber / self.row_fault_prob

    @property
    def weak_col_prob(self) -> float:
        return self.col_share * self.ber / self.col_fault_prob

    @property
    def background_prob(self) -> float:
        """``p0`` of the module doc: the independent cells' fault probability."""
        if self.ber >= 1.0:
            return 1.0
        lines = (1.0 - self.row_share * self.ber) * (1.0 - self.col_share * self.ber)
        return max(0.0, 1.0 - (1.0 - self.ber) / lines)

    def expected_fault_fraction(self) -> float:
        """Probability that a cell is faulty (equals ``ber`` by calibration)."""
        free = (1.0 - self.background_prob) * (1.0 - self.row_share * self.ber)
        return 1.0 - free * (1.0 - self.col_share * self.ber)

    def kind(self) -> str:
        if self.row_share == 0.0 and self.col_share == 0.0:
            return "iid"
        return "clustered"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind()}


def generate(
    *, geometry: Geometry, model: ClusterModel, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(faulty, stuck_value) bool arrays of ``geometry.n_cells`` cells in storage order."""
    shape = geometry.shape
    rng = np.random.default_rng(seed)
    faulty = rng.random(shape) < model.background_prob
    stuck = rng.random(shape) < model.sa1_fraction
    if model.row_share > 0.0:
        rows = np.random.default_rng([seed, _ROW_STREAM])
        weak = rows.random(shape[:2]) < model.weak_row_prob
        faulty |= weak[:, :, None] & (rows.random(shape) < model.row_fault_prob)
    if model.col_share > 0.0:
        cols = np.random.default_rng([seed, _COL_STREAM])
        weak = cols.random((shape[0], shape[2])) < model.weak_col_prob
        faulty |= weak[:, None, :] & (cols.random(shape) < model.col_fault_prob)
    return faulty.reshape(-1), stuck.reshape(-1)


def _check_unit(flag: str, value: float, what: str) -> None:
    if not (isinstance(value, float | int) and 0.0 <= value <= 1.0) or math.isnan(value):
        raise NfdeployError(f"{flag} {value}: {what}, a number in [0, 1].")
