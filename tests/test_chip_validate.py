"""`nfdeploy validate` with a clustered chip map, and with --voltage instead of --ber."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner

from nfdeploy.cli import main
from tests.onnx_builders import colour_patches_npz, conv_bn_model
from tests.test_cli_basics import BLOCK_TORCH


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    vendor = tmp_path / "vendor.onnx"
    onnx.save(conv_bn_model(seed=1), str(vendor))
    return {"vendor": vendor, "data": colour_patches_npz(tmp_path / "data.npz", 24)}


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _validate(files: dict[str, Path], *args: str) -> tuple[int, str]:
    return _run(
        "validate", "-q", "--model", str(files["vendor"]), "--data", str(files["data"]),
        "--preprocess", "unit", "--threads", "1", *args,
    )  # fmt: skip


def test_chip_map_needs_no_ber_and_reports_its_own(files: dict[str, Path], tmp_path: Path) -> None:
    chip, report = tmp_path / "chip.npz", tmp_path / "r.json"
    code, output = _run("chipmap", "--model", str(files["vendor"]), "--ber", "0.03", "--seed",
                        "5", "--out", str(chip))  # fmt: skip
    assert code == 0, output
    code, output = _validate(files, "--fault-model", "chip-map", "--chip-map", str(chip),
                             "--report", str(report))  # fmt: skip
    assert code == 0, output
    data = json.loads(report.read_text())
    assert data["results"][0]["ber"] == 0.03 and data["results"][0]["trials"][0]["bits_changed"]


def test_validate_with_a_clustered_chip_map(files: dict[str, Path], tmp_path: Path) -> None:
    chip, report = tmp_path / "chip.npz", tmp_path / "r.json"
    code, output = _run(
        "chipmap", "--model", str(files["vendor"]), "--layout", "8x64", "--ber", "0.05",
        "--row-share", "0.5", "--col-share", "0.5", "--row-fault-prob", "0.5",
        "--col-fault-prob", "0.5", "--seed", "11", "--out", str(chip),
    )  # fmt: skip
    assert code == 0, output
    code, output = _validate(
        files, "--ber", "0", "--fault-model", "chip-map", "--chip-map", str(chip),
        "--report", str(report),
    )  # fmt: skip
    assert code == 0, output
    data = json.loads(report.read_text())
    assert data["trials"] == 1 and len(data["results"][0]["trials"]) == 1  # one fixed chip
    assert data["results"][0]["trials"][0]["bits_changed"] > 0
    info = data["fault"]["chip_map_info"]
    assert (
        info["fault_kind"] == "clustered" and info["seed"] == 11 and info["geometry"][1:] == [8, 64]
    )
    assert "chip_map_note" not in data["fault"]  # sized for these weights: nothing to say


def test_validate_voltage_sets_the_ber_and_is_recorded(
    files: dict[str, Path], tmp_path: Path
) -> None:
    report = tmp_path / "r.json"
    code, output = _validate(
        files, "--voltage", "0.83", "--voltage", "0.89", "--fault-model", "stuck-at",
        "--trials", "1", "--report", str(report),
    )  # fmt: skip
    assert code == 0, output
    data = json.loads(report.read_text())
    assert [row["ber"] for row in data["results"]] == pytest.approx(
        [0.01, math.sqrt(0.01 * 1.31e-5)]
    )
    voltage = data["voltage"]
    assert voltage["voltages"] == [0.83, 0.89] and voltage["assumed"] == [False, True]
    assert "NeuralFuse" in voltage["sources"][0] and "ASSUMPTION" in voltage["curve"]
    assert data["fault"]["fault_model"] == "stuck-at"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--voltage", "0.83", "--fault-model", "flip"], "--fault-model flip"),  # not a cell rate
        (["--voltage", "0.83", "--fault-model", "chip-map"], "chipmap --voltage V"),
        (["--voltage", "0.83", "--ber", "0.01", "--fault-model", "stuck-at"], "not both"),
        (["--voltage", "0.7", "--fault-model", "stuck-at"], "--voltage 0.7: below 0.83"),
        (["--voltage", "0.98", "--fault-model", "stuck-at"], "not modelled"),
        (["--fault-model", "stuck-at"], "--ber or --voltage"),
    ],
)
def test_validate_voltage_errors(files: dict[str, Path], args: list[str], needle: str) -> None:
    code, output = _validate(files, *args)
    assert code == 1 and needle in output
    assert len(output.strip().splitlines()) == 1 and "Traceback" not in output


def test_chipmap_and_validate_voltage_need_no_torch(files: dict[str, Path], tmp_path: Path) -> None:
    chip = tmp_path / "chip.npz"
    code = BLOCK_TORCH + textwrap.dedent(
        f"""
        from click.testing import CliRunner
        from nfdeploy.cli import main
        run = CliRunner().invoke
        made = run(main, ["chipmap", "--model", {str(files["vendor"])!r}, "--voltage", "0.85",
                          "--row-share", "0.5", "--out", {str(chip)!r}])
        assert made.exit_code == 0, made.output
        checked = run(main, ["validate", "-q", "--model", {str(files["vendor"])!r}, "--data",
                             {str(files["data"])!r}, "--preprocess", "unit", "--trials", "1",
                             "--voltage", "0.85", "--fault-model", "stuck-at"])
        assert checked.exit_code == 0, checked.output
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok" and chip.exists()
