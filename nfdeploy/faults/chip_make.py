"""`make_chip_map`: the library function behind `nfdeploy chipmap` (generate or import a map)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nfdeploy.errors import NfdeployError
from nfdeploy.faults.chip_cluster import ClusterModel, generate
from nfdeploy.faults.chip_layout import (
    PAPER_COLS,
    PAPER_ROWS,
    Geometry,
    geometry_for,
    parse_layout,
)
from nfdeploy.faults.chipmap import ChipMap


@dataclass(frozen=True)
class MadeMap:
    """What `make_chip_map` wrote: the map and a one-line summary for the CLI."""

    chip: ChipMap
    cells_needed: int

    def summary(self, out: str) -> str:
        info, chip = self.chip.info, self.chip
        where = chip.geometry.describe() if chip.geometry else f"{chip.n_cells:,} cells"
        how = ", ".join(
            f"{k} {info[k]:g}" if isinstance(info[k], float) else f"{k} {info[k]}"
            for k in ("seed", "voltage", "ber", "fault_kind", "file")
            if k in info
        )
        tiled = "; tiled over the weights" if info.get("tiled") else ""
        faulty = int(chip.faulty.sum())
        return f"wrote {out}: {where}, {faulty:,} faulty ({how}){tiled}"


def make_chip_map(
    *,
    out: str,
    model_path: str | None = None,
    n_bytes: int | None = None,
    storage: str = "auto",
    ber: float | None = None,
    voltage: float | None = None,
    layout: str | None = None,
    banks: int | None = None,
    cluster: dict[str, float] | None = None,
    seed: int = 0,
    import_path: str | None = None,
    tile: bool = False,
) -> MadeMap:
    """Write a chip map for ``model_path`` (or ``n_bytes`` stored bytes) to ``out``.

    Generated: at ``ber`` or at ``voltage`` (V / Vmin, through the voltage -> BER curve),
    spread by ``cluster`` (:class:`ClusterModel` fields other than ``ber``) over ``layout``
    ('ROWSxCOLS', default 512x64 when clustered or ``banks`` is given; without either, one
    flat cell per weight bit). Imported: ``import_path`` (see :mod:`nfdeploy.faults.chip_import`).
    """
    cells = _cells_needed(model_path, n_bytes, storage)
    if import_path is not None:
        _refuse_with_import(ber, voltage, layout, banks, cluster)
        from nfdeploy.faults.chip_import import import_measured

        chip = import_measured(path=import_path, cells_needed=cells, tile=tile)
    else:
        chip = _generated(cells, ber, voltage, layout, banks, cluster or {}, seed)
    chip.save(out)
    return MadeMap(chip, cells)


def _cells_needed(model_path: str | None, n_bytes: int | None, storage: str) -> int:
    if (model_path is None) == (n_bytes is None):
        raise NfdeployError("chipmap: give --model MODEL.onnx or --bytes N (one of them).")
    if model_path is None:
        if n_bytes is None or n_bytes < 1:
            raise NfdeployError(f"--bytes {n_bytes}: need at least 1 stored byte.")
        return n_bytes * 8
    from nfdeploy.faults.onnx_model import load_faultable

    cells = load_faultable(model_path, storage=storage).stored_bytes() * 8
    if cells == 0:
        raise NfdeployError(f"{model_path}: no weight tensors to cover.")
    return cells


def _refuse_with_import(
    ber: float | None, voltage: float | None, layout: str | None, banks: int | None,
    cluster: dict[str, float] | None,
) -> None:  # fmt: skip
    given = [
        flag
        for flag, value in (("--ber", ber), ("--voltage", voltage), ("--layout", layout),
                            ("--banks", banks), ("clustering options", cluster or None))
        if value is not None
    ]  # fmt: skip
    if given:
        raise NfdeployError(
            f"--import: {', '.join(given)} would be ignored (a measured map has its own faults "
            "and geometry); drop them."
        )


def _rate(ber: float | None, voltage: float | None) -> tuple[float, dict[str, Any]]:
    if ber is not None and voltage is not None:
        raise NfdeployError("--ber and --voltage: give one, not both (the voltage sets the BER).")
    if ber is None and voltage is None:
        raise NfdeployError("chipmap: give --ber P or --voltage V, or --import FILE.")
    if voltage is None:
        assert ber is not None  # checked above
        return ber, {}
    from nfdeploy.energy.voltage import ber_at_voltage

    point = ber_at_voltage(voltage)
    return point.ber, {"voltage": point.voltage_ratio, "voltage_source": point.source}


def _generated(
    cells: int, ber: float | None, voltage: float | None, layout: str | None, banks: int | None,
    cluster: dict[str, float], seed: int,
) -> ChipMap:  # fmt: skip
    rate, extra = _rate(ber, voltage)
    model = ClusterModel(ber=rate, **cluster)
    info: dict[str, Any] = {"source": "generated", "seed": seed, "ber": rate, **extra}
    info.update(fault_kind=model.kind(), model=model.to_dict())
    if layout is None and banks is None and model.kind() == "iid":
        # one cell per weight bit and no geometry, as in v1 (same seed, same map)
        faulty, stuck = generate(geometry=Geometry(1, 1, cells), model=model, seed=seed)
        return ChipMap(faulty, stuck, None, info)
    rows, cols = parse_layout(layout) if layout else (PAPER_ROWS, PAPER_COLS)
    geometry = geometry_for(cells=cells, rows=rows, cols=cols, banks=banks)
    faulty, stuck = generate(geometry=geometry, model=model, seed=seed)
    return ChipMap(faulty, stuck, geometry, {**info, "geometry": geometry.to_list()})
