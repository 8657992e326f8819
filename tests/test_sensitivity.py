"""`nfdeploy sensitivity`: per-tensor PA, its ranking, keep-k, and the patterns validate uses."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from nfdeploy.cli import main
from nfdeploy.energy import energy_report
from nfdeploy.errors import NfdeployError
from nfdeploy.faults.chipmap import ChipMap
from nfdeploy.faults.onnx_model import load_faultable
from nfdeploy.faults.onnx_weights import TensorSelection
from nfdeploy.faults.spec import DEFAULT_FAULT_MODEL, FaultModel, FaultSpec, Storage
from nfdeploy.onnx.session import make_session
from nfdeploy.sensitivity.api import sensitivity
from nfdeploy.sensitivity.groups import GroupRule, make_groups, parse_group_rules
from nfdeploy.sensitivity.measure import faulty_codes, load_setup, masked_bytes
from nfdeploy.validate.report import TrialResult
from nfdeploy.validate.runner import run_validation
from tests.onnx_builders import IN_CHANNELS, SIZE, conv_bn_model

TENSORS = ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]  # with --include-bias
BER = 0.08  # int8 flip: high enough that every tensor's faults move PA on 60 images
FP32_BER = 0.003  # fp32: a flipped high exponent bit breaks the net, most flips do less


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    """conv_bn_model and 60 colour images labelled by its own float predictions (CA ~ 1)."""
    model = conv_bn_model(seed=1)
    model_path = tmp_path / "vendor.onnx"
    onnx.save(model, str(model_path))
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (60, 1, 1, IN_CHANNELS))
    noise = rng.integers(-20, 21, (60, SIZE, SIZE, IN_CHANNELS))
    images = np.clip(colours + noise, 0, 255).astype(np.uint8)
    x = images.transpose(0, 3, 1, 2).astype(np.float32) / 255
    session = make_session(model.SerializeToString(), threads=1)
    labels = np.argmax(session.run(None, {"x": x})[0], axis=1)
    data = tmp_path / "data.npz"
    np.savez(data, x=images, y=labels)
    return {"model": model_path, "data": data}


def _common(setup: dict[str, Path]) -> dict[str, object]:
    return dict(
        model=str(setup["model"]), data=str(setup["data"]), preprocess="unit", threads=1,
        include_bias=True, quiet=True,
    )  # fmt: skip


def _validate_trials(
    setup: dict[str, Path], pattern: str | None, ber: float, **options: object
) -> list[TrialResult]:
    report = run_validation(
        model=setup["model"], data=str(setup["data"]), bers=[ber], preprocess="unit",
        threads=1, progress=False,
        selection=TensorSelection(include_bias=True, pattern=pattern), **options,
    )  # fmt: skip
    return report.results[0].trials


@pytest.mark.parametrize("fault_model", ["flip", "stuck-at"])
def test_each_group_equals_validate_with_only_that_tensor(
    setup: dict[str, Path], fault_model: str
) -> None:
    # fp32 storage: the clean tensors outside --tensors are the same floats in both runs (with
    # int8 storage validate leaves them unquantized, sensitivity keeps them stored clean)
    options: dict[str, object] = dict(trials=4, fault_model=fault_model, storage="fp32")
    result = sensitivity(**_common(setup), ber=FP32_BER, keep_max=0, **options)
    assert sorted(r.group.name for r in result.ranking) == sorted(TENSORS)
    options["fault_model"] = FaultModel(fault_model)
    for row in result.ranking:
        (name,) = row.group.tensors
        expected = _validate_trials(setup, f"^{re.escape(name)}$", FP32_BER, **options)
        assert [t.pa for t in row.trials] == [t.pa for t in expected], name
        assert [t.bits_changed for t in row.trials] == [t.bits_changed for t in expected]
    assert sum(t.bits_changed for r in result.ranking for t in r.trials) > 0
    drops = [result.ca - r.pa().mean for r in result.ranking]
    assert drops == sorted(drops, reverse=True)
    assert drops[0] > drops[-1]  # the tensors differ in sensitivity here


def _initializers(model_bytes: bytes) -> dict[str, np.ndarray]:
    model = onnx.load_from_string(model_bytes)
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


@pytest.mark.parametrize("fault_model", ["flip", "stuck-at", "chip-map"])
def test_masked_model_has_validates_faults_in_the_tensor_and_nothing_else(
    setup: dict[str, Path], tmp_path: Path, fault_model: str
) -> None:
    chip = tmp_path / "chip.npz"
    ChipMap.generate(4000, 0.3, seed=3).save(chip)
    options = dict(_common(setup))
    for key in ("model", "data", "quiet", "include_bias"):
        options.pop(key)
    state = load_setup(
        model=setup["model"], data=str(setup["data"]), ber=0.3, trials=1, seed=50_007,
        fault_model=FaultModel(fault_model), storage="auto", bit_positions=None,
        chip_map=chip if fault_model == "chip-map" else None,
        selection=TensorSelection(include_bias=True), split="test", limit=None,
        batch_size=256, progress=False, **options,
    )  # fmt: skip
    vendor = load_faultable(setup["model"], selection=TensorSelection(include_bias=True))
    clean = _initializers(vendor.clean_bytes())
    full, _ = vendor.faulty_bytes(state.spec, seed=50_007)  # what validate runs
    full_weights = _initializers(full)
    for name in TENSORS:
        masked, changed = masked_bytes(state.vendor, faulty_codes(state, 50_007), {name})
        weights = _initializers(masked)
        assert changed > 0, name
        assert not np.array_equal(weights[name], clean[name])
        np.testing.assert_array_equal(weights[name], full_weights[name])
        for other in set(clean) - {name}:
            np.testing.assert_array_equal(weights[other], clean[other], err_msg=other)


def test_keep_curve_ends_at_ca_and_starts_at_full_validate(setup: dict[str, Path]) -> None:
    result = sensitivity(**_common(setup), ber=BER, trials=3, keep_max=len(TENSORS))
    assert [k.k for k in result.keep] == list(range(len(TENSORS) + 1))
    full = _validate_trials(setup, None, BER, trials=3)
    assert [t.pa for t in result.keep[0].trials] == [t.pa for t in full]
    assert [t.bits_changed for t in result.keep[0].trials] == [t.bits_changed for t in full]
    everything = result.keep[-1]
    assert [t.pa for t in everything.trials] == [result.ca] * 3
    assert all(t.bits_changed == 0 for t in everything.trials)
    assert everything.kept == tuple(r.group.name for r in result.ranking)
    # keeping a tensor nominal removes exactly its faults: bits decrease along the ranking
    bits = [sum(t.bits_changed for t in k.trials) for k in result.keep]
    assert bits == sorted(bits, reverse=True)


def test_energy_counts_only_the_undervolted_accesses(setup: dict[str, Path]) -> None:
    result = sensitivity(**_common(setup), ber=BER, trials=1, keep_max=len(TENSORS))
    full = energy_report(vendor=setup["model"])  # every weight undervolted: ES = 1 - r
    assert result.keep[0].energy_saving == pytest.approx(full.energy_saving)
    assert result.keep[-1].energy_saving == 0.0
    saving = [k.energy_saving or 0.0 for k in result.keep]
    assert saving == sorted(saving, reverse=True)
    reads = {layer["name"]: layer["weight_reads"] for layer in full.layers_m}
    share = {r.group.name: r.access_share for r in result.ranking}
    total = sum(reads.values())
    assert share["conv.weight"] == pytest.approx(reads["conv"] / total)
    assert share["fc.weight"] == pytest.approx(reads["fc"] / total)
    assert share["conv.bias"] == share["fc.bias"] == 0.0  # biases: no accesses in the model


def test_qdq_model_faults_its_int8_codes_and_maps_them_to_layers(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    images = np.load(setup["data"])["x"][:8].transpose(0, 3, 1, 2).astype(np.float32) / 255

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": images[i : i + 1]} for i in range(len(images))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    qdq = tmp_path / "qdq.onnx"
    quantize_static(str(setup["model"]), str(qdq), Reader(), quant_format=QuantFormat.QDQ)
    result = sensitivity(
        **{**_common(setup), "model": str(qdq), "include_bias": False}, ber=BER, trials=2,
        keep_max=2,
    )  # fmt: skip
    assert result.header["vendor"]["storage"] == "qdq"
    assert {r.group.nodes for r in result.ranking} == {("conv",), ("fc",)}
    assert all(t.bits_changed > 0 for r in result.ranking for t in r.trials)
    assert result.keep[0].energy_saving == pytest.approx(energy_report(vendor=qdq).energy_saving)
    assert [t.pa for t in result.keep[-1].trials] == [result.ca] * 2


def test_groups_fault_together(setup: dict[str, Path]) -> None:
    result = sensitivity(
        **_common(setup), ber=BER, trials=2, group=["conv=^conv\\.", "head=^fc\\.weight$"]
    )
    groups = {r.group.name: r.group.tensors for r in result.ranking}
    assert groups == {
        "conv": ("conv.weight", "conv.bias"),
        "head": ("fc.weight",),
        "fc.bias": ("fc.bias",),
    }
    assert len(result.keep) == 4  # default --keep-max 5, capped at the 3 groups


def test_make_groups_first_rule_wins_and_unmatched_rules_are_refused(
    setup: dict[str, Path],
) -> None:
    targets = load_faultable(setup["model"], selection=TensorSelection(include_bias=True)).targets
    rules = [GroupRule("weights", r"weight$"), GroupRule("conv", r"^conv")]
    names = [(g.name, g.tensors) for g in make_groups(targets, rules[:1])]
    assert names == [
        ("weights", ("conv.weight", "fc.weight")),
        ("conv.bias", ("conv.bias",)),
        ("fc.bias", ("fc.bias",)),
    ]
    assert [g.name for g in make_groups(targets, rules)] == ["weights", "conv", "fc.bias"]
    with pytest.raises(NfdeployError, match="matches no fault target"):
        make_groups(targets, [GroupRule("x", "nothing")])
    for bad, message in (("noequals", "NAME=REGEX"), ("a=(", "regular expression")):
        with pytest.raises(NfdeployError, match=re.escape(message)):
            parse_group_rules([bad])
    with pytest.raises(NfdeployError, match="given twice"):
        parse_group_rules(["a=x", "a=y"])


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["sensitivity", "-q", *args])
    return result.exit_code, result.output


def test_cli_writes_report_and_plots(setup: dict[str, Path], tmp_path: Path) -> None:
    report, plots = tmp_path / "out" / "s.json", tmp_path / "plots"
    code, output = _invoke(
        "--model", str(setup["model"]), "--data", str(setup["data"]), "--preprocess", "unit",
        "--ber", "0.01", "--fault-model", "stuck-at", "--trials", "2", "--keep-max", "2",
        "--threads", "1", "--report", str(report), "--plot", str(plots),
    )  # fmt: skip
    assert code == 0, output
    assert "rank" in output and "keep-k" in output and "stuck-at" in output
    data = json.loads(report.read_text())
    assert data["schema"] == "nfdeploy-sensitivity-1"
    assert data["seeds"] == [50_000, 50_001] and data["trials"] == 2
    assert data["fault"]["fault_model"] == "stuck-at" and data["fault"]["ber"] == 0.01
    assert "stuck at 0 or 1" in data["fault"]["definition"]
    assert [row["rank"] for row in data["ranking"]] == [1, 2]
    assert {row["group"] for row in data["ranking"]} == {"conv.weight", "fc.weight"}
    for row in data["ranking"]:
        assert row["seeds"] == [50_000, 50_001] and len(row["pa_trials"]) == 2
        assert row["pa_drop"] == pytest.approx(data["ca"] - row["pa"]["mean"])
        assert row["stored_bytes"] > 0 and 0 < row["access_share"] < 1
    assert [k["k"] for k in data["keep_k"]] == [0, 1, 2]
    assert data["keep_k"][2]["energy_saving"] == 0.0
    assert data["keep_k"][0]["undervolted_byte_share"] == 1.0
    assert data["energy"]["r"] == pytest.approx(0.694)
    assert "A_U / A_M" in data["energy"]["formula"]
    assert sorted(p.name for p in plots.iterdir()) == ["keep-k.png", "sensitivity.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots.iterdir())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ber", "2"], "--ber 2"),
        (["--ber", "-0.1"], "--ber -0.1"),
        (["--ber", "0.01", "--keep-max", "9"], "--keep-max 9"),
        (["--ber", "0.01", "--group", "bad"], "NAME=REGEX"),
        (["--ber", "0.01", "--group", "g=zzz"], "matches no fault target"),
        (["--ber", "0.01", "--tensors", "zzz"], "no Conv/Gemm/MatMul weight tensors"),
        (["--ber", "0.01", "--seed", "100"], "training range"),
    ],
)
def test_bad_input_is_one_line(
    setup: dict[str, Path], tmp_path: Path, extra: list[str], message: str
) -> None:
    report = tmp_path / "r.json"
    code, output = _invoke(
        "--model", str(setup["model"]), "--data", str(setup["data"]), "--report", str(report),
        *extra,
    )  # fmt: skip
    assert code != 0 and message in output, output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1
    assert not report.exists()


def test_missing_model_is_one_line(setup: dict[str, Path], tmp_path: Path) -> None:
    code, output = _invoke(
        "--model", str(tmp_path / "nope.onnx"), "--data", str(setup["data"]), "--ber", "0.01"
    )
    assert code == 1 and "nope.onnx" in output and "Traceback" not in output


def test_library_refuses_bad_numbers(setup: dict[str, Path]) -> None:
    for options, message in (
        ({"trials": 0}, "--trials 0"),
        ({"keep_max": -1}, "--keep-max -1"),
        ({"fault_model": "bogus"}, "--fault-model bogus"),
    ):
        with pytest.raises(NfdeployError, match=re.escape(message)):
            sensitivity(**{**_common(setup), "ber": 0.01, **options})


def test_spec_and_storage_match_validate(setup: dict[str, Path]) -> None:
    result = sensitivity(**_common(setup), ber=0.01, trials=1, keep_max=0)
    spec = FaultSpec(DEFAULT_FAULT_MODEL, 0.01, Storage.INT8_TENSOR)  # validate's default too
    assert result.header["fault"] == spec.to_dict()


def test_a_whole_run_never_imports_torch(setup: dict[str, Path], tmp_path: Path) -> None:
    code = f"""
import importlib.abc, sys

class BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")

sys.meta_path.insert(0, BlockTorch())
from nfdeploy.cli import main
main(["sensitivity", "-q", "--model", {str(setup["model"])!r}, "--data", {str(setup["data"])!r},
      "--ber", "0.05", "--trials", "1", "--plot", {str(tmp_path / "plots")!r}])
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "plots" / "keep-k.png").is_file()
