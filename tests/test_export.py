"""`nfdeploy export`: drop-in generator.onnx, provenance, parity, merged pipeline, int8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from nfdeploy.cli import main
from nfdeploy.onnx.metadata import metadata_dict
from nfdeploy.onnx.session import make_session
from tests.onnx_builders import IN_CHANNELS, SIZE, conv_bn_model

pytestmark = pytest.mark.filterwarnings(
    "ignore:You are using the legacy TorchScript-based ONNX export"
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    vendor = root / "vendor.onnx"
    model = conv_bn_model(seed=1, opset=13)
    onnx.helper.set_model_props(model, {"vendor.note": "kept"})
    onnx.save(model, str(vendor))
    rng = np.random.default_rng(0)
    images = np.clip(
        rng.integers(0, 256, (80, 1, 1, IN_CHANNELS))
        + rng.integers(-9, 9, (80, SIZE, SIZE, IN_CHANNELS)),
        0,
        255,
    )
    data = root / "data.npz"
    np.savez(data, x=images.astype(np.uint8), y=rng.integers(0, 3, 80))
    run = root / "run"
    args = [
        "train", "-q", "--model", str(vendor), "--data", str(data), "--out", str(run), "--generator", "UNetS",
        "--epochs", "1", "--batch-size", "10", "--n-perturbed", "1", "--holdout", "10", "--threads", "1",
        "--preprocess", "unit",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return {"vendor": vendor, "data": data, "run": run}


def test_generator_onnx_is_a_drop_in(trained: dict[str, Path]) -> None:
    result = CliRunner().invoke(main, ["export", "--run", str(trained["run"])])
    assert result.exit_code == 0, result.output
    path = trained["run"] / "generator.onnx"
    generator, vendor = onnx.load(str(path)), onnx.load(str(trained["vendor"]))
    assert generator.graph.input[0].name == vendor.graph.input[0].name
    assert generator.opset_import[0].version == 13
    assert generator.ir_version <= vendor.ir_version
    props = metadata_dict(generator)
    for key in ("nfdeploy.version", "nfdeploy.vendor_sha256", "nfdeploy.generator_arch", "nfdeploy.train_ber",
                "nfdeploy.fault_model", "nfdeploy.storage", "nfdeploy.preprocess", "nfdeploy.seed"):  # fmt: skip
        assert key in props, key
    assert props["nfdeploy.generator_arch"] == "UNetS"
    session = make_session(path.read_bytes(), threads=1)
    x = np.random.default_rng(0).random((5, IN_CHANNELS, SIZE, SIZE), dtype=np.float32)
    fused = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert fused.shape == x.shape and fused.min() >= 0.0 and fused.max() <= 1.0
    vendor_session = make_session(vendor.SerializeToString(), threads=1)
    assert vendor_session.run(None, {"x": fused})[0].shape == (5, 3)


def test_merged_pipeline_equals_chain(trained: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "generator.onnx"
    result = CliRunner().invoke(
        main, ["export", "--run", str(trained["run"]), "--out", str(out), "--merge"]
    )
    assert result.exit_code == 0, result.output
    pipeline = tmp_path / "pipeline.onnx"
    x = np.random.default_rng(1).random((4, IN_CHANNELS, SIZE, SIZE), dtype=np.float32)
    gen, ven, merged = (
        make_session(p.read_bytes(), threads=1) for p in (out, trained["vendor"], pipeline)
    )
    chain = ven.run(None, {"x": gen.run(None, {"x": x})[0]})[0]
    merged_model = onnx.load(str(pipeline))
    assert [i.name for i in merged_model.graph.input] == ["x"]
    assert [o.name for o in merged_model.graph.output] == ["logits"]
    np.testing.assert_allclose(merged.run(None, {"x": x})[0], chain, rtol=1e-5, atol=1e-6)
    assert onnx.load(str(trained["vendor"])).SerializeToString() == trained["vendor"].read_bytes()


def test_int8_generator_is_checked(trained: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "generator.onnx"
    result = CliRunner().invoke(
        main, ["export", "--run", str(trained["run"]), "--out", str(out), "--quantize", "int8"]
    )
    assert result.exit_code == 0, result.output
    assert "int8 generator: CA(NF)" in result.output
    quantized = onnx.load(str(tmp_path / "generator.int8.onnx"))
    assert any(node.op_type == "DequantizeLinear" for node in quantized.graph.node)


def test_export_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["export", "--run", str(empty)])
    assert (
        result.exit_code == 1
        and "no checkpoint" in result.output
        and "Traceback" not in result.output
    )
    assert not (empty / "generator.onnx").exists()
