"""Chip-map geometry (banks x rows x cols in storage order) and the clustered fault generator."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nfdeploy.errors import NfdeployError
from nfdeploy.faults.chip_cluster import ClusterModel, generate
from nfdeploy.faults.chip_layout import Geometry, geometry_for, parse_layout
from nfdeploy.faults.chipmap import ChipMap

BIG = Geometry(64, 512, 64)  # 2 Mi cells: tolerances below are 6 sigma at this size


def test_geometry_round_trip_and_storage_order() -> None:
    geo = Geometry(3, 512, 64)
    rng = np.random.default_rng(0)
    for cell in [0, 63, 64, 32767, 32768, geo.n_cells - 1, *rng.integers(0, geo.n_cells, 200)]:
        assert geo.cell(*geo.locate(int(cell))) == cell
    # a 64-bit row holds 8 consecutive bytes; column c is bit c % 8 of byte c // 8 of the row
    byte_address, bit = 8 * 513 + 5, 6  # byte 5 of row 1 of bank 1
    assert geo.locate(8 * byte_address + bit) == (1, 1, 8 * 5 + 6)
    flat = np.arange(geo.n_cells)
    assert flat.reshape(geo.shape)[2, 7, 9] == geo.cell(2, 7, 9)
    with pytest.raises(NfdeployError, match="outside"):
        geo.locate(geo.n_cells)


def test_one_stuck_cell_hits_the_byte_and_bit_the_geometry_names() -> None:
    geo = Geometry(2, 4, 16)  # 128 cells = 16 bytes
    faulty = np.zeros(geo.shape, bool)
    faulty[1, 2, 13] = True  # bank 1, row 2, col 13 -> cell 64 + 32 + 13 = 109 = byte 13, bit 5
    chip = ChipMap(faulty.reshape(-1), faulty.reshape(-1).copy(), geo)  # stuck at 1
    weights = np.zeros(6, np.uint8)  # stored at byte address 10: bytes 10..15
    assert chip.apply(weights, address=10) == 1
    assert weights.tolist() == [0, 0, 0, 1 << 5, 0, 0]


def test_layout_parsing_and_sizing() -> None:
    assert parse_layout("512x64") == (512, 64) and parse_layout(" 16 X 8 ") == (16, 8)
    for bad in ("512", "0x64", "axb", "512x64x2"):
        with pytest.raises(NfdeployError, match="--layout"):
            parse_layout(bad)
    assert geometry_for(cells=32768 + 1).banks == 2
    assert geometry_for(cells=10, rows=2, cols=8, banks=4) == Geometry(4, 2, 8)
    with pytest.raises(NfdeployError, match="--banks 1"):
        geometry_for(cells=32768 + 1, banks=1)


def _line_sigma(lines: int, length: int, weak: float, q: float) -> float:
    """Std of the fault count from ``lines`` lines, each weak with prob ``weak``, whose
    ``length`` cells then fail with prob ``q`` (a Bernoulli times a binomial, summed)."""
    mean = length * q
    second = length * q * (1 - q) + mean**2
    return math.sqrt(lines * (weak * second - (weak * mean) ** 2))


@pytest.mark.parametrize(
    ("row_share", "col_share"), [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (0.4, 0.3)]
)
def test_clustered_rate_hits_the_target(row_share: float, col_share: float) -> None:
    model = ClusterModel(ber=0.01, row_share=row_share, col_share=col_share)
    assert model.expected_fault_fraction() == pytest.approx(0.01, rel=1e-12)
    seeds = range(1, 5)
    total = sum(int(generate(geometry=BIG, model=model, seed=s)[0].sum()) for s in seeds)
    n = BIG.n_cells * len(seeds)
    # 6 sigma, the components' std added as if fully correlated (Minkowski): an upper bound
    sigma = math.sqrt(len(seeds)) * (
        math.sqrt(BIG.n_cells * model.background_prob)
        + _line_sigma(BIG.banks * BIG.rows, BIG.cols, model.weak_row_prob, model.row_fault_prob)
        + _line_sigma(BIG.banks * BIG.cols, BIG.rows, model.weak_col_prob, model.col_fault_prob)
    )
    assert abs(total - 0.01 * n) < 6 * sigma
    assert 6 * sigma < 0.25 * 0.01 * n  # the check is not vacuous (weak columns are clumpy)


def _lines_with_faults(faulty: np.ndarray, axis: int) -> float:
    return float(np.mean(faulty.reshape(BIG.shape).any(axis=axis)))


def test_row_and_column_clustering_is_visible() -> None:
    iid, _ = generate(geometry=BIG, model=ClusterModel(ber=0.01), seed=2)
    rows, _ = generate(geometry=BIG, model=ClusterModel(ber=0.01, row_share=1.0), seed=2)
    cols, _ = generate(geometry=BIG, model=ClusterModel(ber=0.01, col_share=1.0), seed=2)
    # i.i.d.: a 64-cell row has a fault with prob 1 - 0.99^64 = 0.47; weak rows: 4% are weak
    assert _lines_with_faults(iid, axis=2) > 0.4
    assert _lines_with_faults(rows, axis=2) < 0.06
    assert _lines_with_faults(cols, axis=1) < 0.06 < 0.99 < _lines_with_faults(iid, axis=1)
    per_row = np.sort(rows.reshape(BIG.shape).sum(axis=2).reshape(-1))[::-1]
    assert per_row[: per_row.size // 20].sum() == rows.sum()  # all faults in the top 5% of rows


def test_sa1_fraction() -> None:
    model = ClusterModel(ber=0.05, row_share=0.5, sa1_fraction=0.8)
    faulty, stuck = generate(geometry=BIG, model=model, seed=3)
    n = int(faulty.sum())
    ones = int(stuck[faulty].sum())
    assert abs(ones - 0.8 * n) < 6 * math.sqrt(n * 0.8 * 0.2)
    faulty0, stuck0 = generate(geometry=BIG, model=ClusterModel(ber=0.05, sa1_fraction=0.0), seed=3)
    assert faulty0.any() and not stuck0[faulty0].any()


def test_same_seed_same_chip_and_faults_nest_as_the_rate_grows() -> None:
    geo = Geometry(4, 64, 64)
    low = ClusterModel(ber=0.005, row_share=0.3, col_share=0.3)
    high = ClusterModel(ber=0.02, row_share=0.3, col_share=0.3)
    a, sa = generate(geometry=geo, model=low, seed=7)
    b, sb = generate(geometry=geo, model=low, seed=7)
    assert np.array_equal(a, b) and np.array_equal(sa, sb)
    other, _ = generate(geometry=geo, model=low, seed=8)
    assert not np.array_equal(a, other)
    worse, s_worse = generate(geometry=geo, model=high, seed=7)
    assert np.all(worse[a]) and worse.sum() > 2 * a.sum()  # a superset
    assert np.array_equal(s_worse[a], sa[a])  # each weak cell keeps its stuck value


def test_iid_flat_map_is_the_v1_map() -> None:
    faulty, stuck = generate(geometry=Geometry(1, 1, 5000), model=ClusterModel(ber=0.1), seed=4)
    v1 = ChipMap.generate(5000, 0.1, seed=4)
    assert np.array_equal(faulty, v1.faulty) and np.array_equal(stuck, v1.stuck_value)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"ber": 1.5}, "--ber 1.5"),
        ({"ber": 0.01, "row_share": 0.7, "col_share": 0.6}, "add up to at most 1"),
        ({"ber": 0.5, "row_share": 1.0, "row_fault_prob": 0.1}, "--row-fault-prob 0.1"),
        ({"ber": 0.01, "col_share": 0.5, "col_fault_prob": 0.0}, "--col-fault-prob 0"),
        ({"ber": 0.01, "sa1_fraction": float("nan")}, "--sa1-fraction"),
    ],
)
def test_cluster_model_refuses_bad_parameters(kwargs: dict[str, float], needle: str) -> None:
    with pytest.raises(NfdeployError, match=needle):
        ClusterModel(**kwargs)


def test_v2_file_keeps_geometry_and_info_and_v1_files_still_load(tmp_path) -> None:
    geo = Geometry(2, 8, 16)
    faulty, stuck = generate(geometry=geo, model=ClusterModel(ber=0.1, row_share=0.5), seed=5)
    ChipMap(faulty, stuck, geo, {"seed": 5, "voltage": 0.83}).save(tmp_path / "v2.npz")
    back = ChipMap.load(tmp_path / "v2.npz")
    assert back.geometry == geo and back.info == {"seed": 5, "voltage": 0.83}
    assert np.array_equal(back.faulty, faulty) and np.array_equal(back.stuck_value, stuck)
    assert back.coverage_note(geo.n_cells - 100) is None  # sized for it: last bank partly used
    assert "another model" in (back.coverage_note(geo.n_cells - 200) or "")
    np.savez(
        tmp_path / "v1.npz", format=np.str_("nfdeploy-chipmap-v1"), n_cells=np.int64(16),
        faulty=np.packbits(faulty[:16], bitorder="little"),
        stuck_value=np.packbits(stuck[:16], bitorder="little"), seed=np.int64(9),
    )  # fmt: skip
    old = ChipMap.load(tmp_path / "v1.npz")
    assert old.geometry is None and old.info == {"seed": 9} and old.n_cells == 16
    arrays = dict(np.load(tmp_path / "v2.npz"))
    np.savez(tmp_path / "bad_geo.npz", **{**arrays, "geometry": np.array([2, 8, 15])})
    with pytest.raises(NfdeployError, match="geometry"):
        ChipMap.load(tmp_path / "bad_geo.npz")
