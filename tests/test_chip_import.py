"""`nfdeploy chipmap`: --layout / clustering / --voltage / --import, and the voltage -> BER curve."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from nfdeploy.cli import main
from nfdeploy.energy.voltage import BER_CURVE, ber_at_voltage
from nfdeploy.errors import NfdeployError
from nfdeploy.faults.chip_import import import_measured
from nfdeploy.faults.chipmap import ChipMap
from tests.onnx_builders import conv_bn_model

WEIGHT_BITS = (4 * 3 * 3 * 3 + 3 * 4) * 8  # conv + fc weights of conv_bn_model, int8


@pytest.fixture
def vendor(tmp_path: Path) -> Path:
    path = tmp_path / "vendor.onnx"
    onnx.save(conv_bn_model(seed=1), str(path))
    return path


def _chipmap(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["chipmap", *args])
    return result.exit_code, result.output


def _measured(path: Path, shape: tuple[int, ...], seed: int = 0, **extra: object) -> Path:
    rng = np.random.default_rng(seed)
    state = rng.choice(3, size=shape, p=[0.9, 0.05, 0.05])  # 0 healthy, 1 SA0, 2 SA1
    np.savez(path, sa0=state == 1, sa1=state == 2, **extra)  # type: ignore[arg-type]
    return path


# ----------------------------------------------------------------------------- import


def test_import_round_trip_bool_and_packed(tmp_path: Path) -> None:
    src = _measured(tmp_path / "m.npz", (2, 8, 64), voltage=np.float64(0.85), chip=np.str_("c7"))
    chip = import_measured(path=src, cells_needed=2 * 8 * 64)
    with np.load(src) as data:
        sa0, sa1 = data["sa0"].reshape(-1), data["sa1"].reshape(-1)
    assert np.array_equal(chip.faulty, sa0 | sa1) and np.array_equal(
        chip.stuck_value[sa1], sa1[sa1]
    )
    assert not chip.stuck_value[sa0].any()
    assert chip.geometry is not None and chip.geometry.shape == (2, 8, 64)
    assert chip.info["voltage"] == 0.85 and chip.info["chip"] == "c7" and not chip.info["tiled"]
    packed = tmp_path / "p.npz"
    np.savez(
        packed, sa0_packed=np.packbits(sa0, bitorder="little"),
        sa1_packed=np.packbits(sa1, bitorder="little"), shape=np.array([2, 8, 64]),
    )  # fmt: skip
    again = import_measured(path=packed, cells_needed=100)
    assert np.array_equal(again.faulty, chip.faulty)
    assert np.array_equal(again.stuck_value, chip.stuck_value)


def test_import_size_check_and_tile(vendor: Path, tmp_path: Path) -> None:
    small = _measured(tmp_path / "small.npz", (4, 64))  # 256 cells < the weights' bits
    code, output = _chipmap(
        "--model", str(vendor), "--import", str(small), "--out", str(tmp_path / "c.npz")
    )
    assert code == 1 and "small.npz" in output and "256" in output and f"{WEIGHT_BITS:,}" in output
    assert "--tile" in output and len(output.strip().splitlines()) == 1
    assert not (tmp_path / "c.npz").exists()
    code, output = _chipmap(
        "--model", str(vendor), "--import", str(small), "--tile", "--out", str(tmp_path / "c.npz")
    )
    assert code == 0 and "tiled" in output
    chip = ChipMap.load(tmp_path / "c.npz")
    assert chip.info["tiled"] is True and chip.info["source"] == "imported"
    assert "wraps around" in (chip.coverage_note(WEIGHT_BITS) or "")


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"sa0": np.ones((2, 4), bool), "sa1": np.ones((2, 4), bool)}, "in both sa0 and sa1"),
        ({"sa0": np.zeros((2, 4), bool), "sa1": np.zeros((2, 5), bool)}, "one shape"),
        ({"sa0": np.full((2, 4), 2), "sa1": np.zeros((2, 4), bool)}, "bool"),
        ({"faulty": np.zeros(3)}, "need an .npz with bool arrays sa0 and sa1"),
        (
            {
                "sa0_packed": np.zeros(2, np.uint8),
                "sa1_packed": np.zeros(1, np.uint8),
                "shape": np.array([1, 2, 8]),
            },
            "sa1_packed holds 1 uint8",
        ),
    ],
)
def test_import_refuses_bad_maps(
    tmp_path: Path, arrays: dict[str, np.ndarray], needle: str
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(NfdeployError, match=needle):
        import_measured(path=path, cells_needed=4)


def test_import_refuses_generation_options(vendor: Path, tmp_path: Path) -> None:
    src = _measured(tmp_path / "m.npz", (1, 64, 64))
    code, output = _chipmap(
        "--model", str(vendor), "--import", str(src), "--ber", "0.01", "--row-share", "0.5",
        "--out", str(tmp_path / "c.npz"),
    )  # fmt: skip
    assert code == 1 and "--ber, clustering options would be ignored" in output


# ----------------------------------------------------------------------------- generate (CLI)


def test_layout_map_sized_for_the_model(vendor: Path, tmp_path: Path) -> None:
    args = ["--model", str(vendor), "--layout", "8x16", "--ber", "0.1", "--row-share", "1",
            "--row-fault-prob", "0.5", "--seed", "4"]  # fmt: skip
    code, output = _chipmap(*args, "--out", str(tmp_path / "c.npz"))
    assert code == 0, output
    chip = ChipMap.load(tmp_path / "c.npz")
    assert chip.geometry is not None and chip.geometry.shape == (-(-WEIGHT_BITS // 128), 8, 16)
    assert chip.coverage_note(WEIGHT_BITS) is None
    assert chip.info["seed"] == 4 and chip.info["model"]["row_share"] == 1.0
    assert chip.info["fault_kind"] == "clustered"
    assert _chipmap(*args, "--out", str(tmp_path / "d.npz"))[0] == 0  # again: the same chip
    assert np.array_equal(ChipMap.load(tmp_path / "d.npz").faulty, chip.faulty)
    code, output = _chipmap("--bytes", "1000", "--layout", "8x16", "--banks", "2", "--ber", "0.1",
                            "--out", str(tmp_path / "e.npz"))  # fmt: skip
    assert code == 1 and "--banks 2" in output and "--banks 63 or more" in output


def test_voltage_map_records_voltage_and_ber(tmp_path: Path) -> None:
    out = tmp_path / "c.npz"
    code, output = _chipmap(
        "--bytes", "5000", "--voltage", "0.83", "--col-share", "0.5", "--out", str(out)
    )
    assert code == 0, output
    chip = ChipMap.load(out)
    assert chip.info["voltage"] == 0.83 and chip.info["ber"] == 0.01
    assert "NeuralFuse" in chip.info["voltage_source"]
    for args, needle in [
        (["--voltage", "0.5"], "--voltage 0.5: below 0.83"),
        (["--voltage", "0.9", "--ber", "0.01"], "not both"),
        ([], "give --ber P or --voltage V"),
    ]:
        code, output = _chipmap("--bytes", "5000", *args, "--out", str(out))
        assert code == 1 and needle in output and len(output.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- voltage curve


def test_voltage_curve_points_and_interpolation() -> None:
    assert ber_at_voltage(0.83).ber == 0.01 and not ber_at_voltage(0.83).assumed
    assert ber_at_voltage(1.0).ber == 0.0
    onset = ber_at_voltage(0.95)
    assert onset.ber == 1.31e-5 and onset.assumed and "ASSUMPTION" in onset.source
    mid = ber_at_voltage(0.89)  # half way between 0.83 and 0.95 in log BER
    assert mid.ber == pytest.approx(math.sqrt(0.01 * 1.31e-5), rel=1e-9) and mid.assumed
    bers = [ber_at_voltage(v).ber for v in np.linspace(0.83, 0.95, 13)]
    assert all(a > b for a, b in itertools.pairwise(bers))  # lower voltage, more faults
    assert [p.assumed for p in BER_CURVE] == [False, True, False]


@pytest.mark.parametrize(
    ("voltage", "needle"),
    [(0.82, "below 0.83"), (0.97, "not modelled"), (1.2, "above Vmin"), (0.0, "positive")],
)
def test_voltage_curve_refuses_outside_its_range(voltage: float, needle: str) -> None:
    with pytest.raises(NfdeployError, match=needle):
        ber_at_voltage(voltage)
