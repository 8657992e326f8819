"""validate is deterministic: identical runs give identical JSON apart from the timing fields,
and the results do not depend on --threads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pytest
from click.testing import CliRunner

from nfdeploy.cli import main
from tests.onnx_builders import colour_patches_npz, conv_bn_model
from tests.test_validate_cli import _identity_generator


def without_timing(report: dict[str, Any]) -> dict[str, Any]:
    """The report less its "timing" section, where the schema keeps every clock reading."""
    return {k: v for k, v in report.items() if k != "timing"}


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    vendor = tmp_path / "vendor.onnx"
    onnx.save(conv_bn_model(seed=1), str(vendor))
    data = colour_patches_npz(tmp_path / "data.npz", 80)
    generator = _identity_generator(tmp_path / "generator.onnx", delta=0.1)
    return {"vendor": vendor, "data": data, "generator": generator}


def _validate(inputs: dict[str, Path], report: Path, *extra: str) -> dict[str, Any]:
    args = [
        "validate", "-q", "--model", str(inputs["vendor"]), "--data", str(inputs["data"]),
        "--generator", str(inputs["generator"]), "--preprocess", "unit", "--ber", "0.02",
        "--ber", "0.1", "--trials", "3", "--fault-model", "stuck-at", "--report", str(report),
        "--batch-size", "16", *extra,
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return dict(json.loads(report.read_text()))


def test_identical_runs_give_identical_reports(inputs: dict[str, Path], tmp_path: Path) -> None:
    first = _validate(inputs, tmp_path / "a.json", "--threads", "1")
    second = _validate(inputs, tmp_path / "b.json", "--threads", "1")
    assert json.dumps(without_timing(first), sort_keys=True) == json.dumps(
        without_timing(second), sort_keys=True
    )
    assert any(t["bits_changed"] > 0 for row in first["results"] for t in row["trials"])
    assert first["timing"]["created"] and len(first["timing"]["trials"]) == 2  # two BERs


def test_report_round_trips_and_reads_schema_1(inputs: dict[str, Path], tmp_path: Path) -> None:
    from nfdeploy.validate.report import ValidationReport

    data = _validate(inputs, tmp_path / "a.json", "--threads", "1")
    again = ValidationReport.from_dict(data).to_dict()
    assert json.dumps(again, sort_keys=True) == json.dumps(data, sort_keys=True)
    old = {k: v for k, v in data.items() if k != "timing"}  # schema 1: timing inside trials
    old["created"], old["schema_version"] = data["timing"]["created"], 1
    old["results"] = [
        {**row, "trials": [{**t, **tt} for t, tt in zip(row["trials"], times, strict=True)]}
        for row, times in zip(data["results"], data["timing"]["trials"], strict=True)
    ]
    old["timing"] = {k: v for k, v in data["timing"].items() if k not in ("created", "trials")}
    assert ValidationReport.from_dict(old).to_dict() == data


def test_results_do_not_depend_on_threads(inputs: dict[str, Path], tmp_path: Path) -> None:
    one = _validate(inputs, tmp_path / "one.json", "--threads", "1")
    two = _validate(inputs, tmp_path / "two.json", "--threads", "2")
    assert without_timing(one)["results"] == without_timing(two)["results"]
    batch = _validate(inputs, tmp_path / "batch.json", "--threads", "1", "--batch-size", "7")
    assert without_timing(one)["results"] == without_timing(batch)["results"]


def test_workers_give_the_single_process_report(inputs: dict[str, Path], tmp_path: Path) -> None:
    """--workers 2 (two spawned processes, both BERs in one pool) equals --workers 1."""
    one = _validate(inputs, tmp_path / "one.json", "--threads", "1")
    two = _validate(inputs, tmp_path / "two.json", "--threads", "1", "--workers", "2")
    assert json.dumps(without_timing(one), sort_keys=True) == json.dumps(
        without_timing(two), sort_keys=True
    )
    assert len(two["timing"]["trials"]) == 2 and all(two["timing"]["trials"])


def test_workers_default_to_a_share_of_the_cores() -> None:
    from nfdeploy.validate.pool import threads_per_worker

    assert threads_per_worker(3, 2) == 3
    assert threads_per_worker(0, 10_000) == 1


def test_zero_workers_is_one_line(inputs: dict[str, Path], tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    args = ["validate", "--model", str(inputs["vendor"]), "--data", str(inputs["data"]),
            "--ber", "0.01", "--workers", "0", "--report", str(report)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--workers" in result.output and not report.exists()


def test_provider_is_recorded_and_checked(inputs: dict[str, Path], tmp_path: Path) -> None:
    import onnxruntime as ort

    auto = _validate(inputs, tmp_path / "auto.json", "--threads", "1", "--provider", "auto")
    assert auto["execution_provider"] in ort.get_available_providers()
    cpu = _validate(inputs, tmp_path / "cpu.json", "--threads", "1")
    assert cpu["execution_provider"] == "CPUExecutionProvider"
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the refusal cannot be shown here")
    report = tmp_path / "cuda.json"
    args = ["validate", "--model", str(inputs["vendor"]), "--data", str(inputs["data"]),
            "--ber", "0.01", "--provider", "cuda", "--report", str(report)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "--provider cuda: this onnxruntime has no" in result.output
    assert "Traceback" not in result.output and not report.exists()
