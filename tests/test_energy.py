"""nfdeploy.energy: ONNX -> SCALE-Sim rows, TWMA, voltage table, ES report, `energy` CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from nfdeploy.cli.energy_cmd import energy_command
from nfdeploy.energy import (
    PAPER_POINT,
    LayerShape,
    energy_report,
    filter_sram_reads,
    layer_filter_reads,
    layers_from_onnx,
    operating_point,
    scalesim_available,
    twma,
)
from nfdeploy.errors import NfdeployError

# ----------------------------------------------------------------------------- builders

_RNG = np.random.default_rng(0)


def _w(name: str, shape: tuple[int, ...], dtype: type = np.float32) -> TensorProto:
    if dtype is np.int8:
        return numpy_helper.from_array(_RNG.integers(-8, 8, shape).astype(np.int8), name)
    return numpy_helper.from_array(_RNG.normal(0, 0.1, shape).astype(dtype), name)


def _model(
    nodes: list[onnx.NodeProto],
    inits: list[TensorProto],
    in_shape: list[int | str | None],
    *,
    opset: int = 17,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _save(model: onnx.ModelProto, path: Path) -> str:
    onnx.save(model, str(path))
    return str(path)


def tiny_cnn(batch: int | str = 1, hw: int | str = 8, width: int = 8) -> onnx.ModelProto:
    """conv3x3(3->w) - relu - conv3x3/2(w->2w) - global pool - flatten - gemm(2w->10)."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node(
            "Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv2"
        ),
        helper.make_node("GlobalAveragePool", ["c2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fcw", "fcb"], ["y"], transB=1, name="fc"),
    ]
    inits = [
        _w("w1", (width, 3, 3, 3)),
        _w("b1", (width,)),
        _w("w2", (2 * width, width, 3, 3)),
        _w("fcw", (10, 2 * width)),
        _w("fcb", (10,)),
    ]
    return _model(nodes, inits, [batch, 3, hw, hw])


def big_cnn() -> onnx.ModelProto:
    """Like tiny_cnn but wider: a 'vendor' model for the ES tests."""
    return tiny_cnn(hw=16, width=32)


# ----------------------------------------------------------------------------- layers


def test_conv_and_gemm_rows_match_hand_computed_shapes() -> None:
    layers = layers_from_onnx(tiny_cnn())
    assert [(layer.name, layer.kind) for layer in layers] == [
        ("conv1", "conv"),
        ("conv2", "conv"),
        ("fc", "gemm"),
    ]
    c1, c2, fc = layers
    assert (c1.ofmap_h, c1.ofmap_w, c1.window, c1.num_filters) == (8, 8, 27, 8)
    assert (c1.ifmap_h, c1.filter_h, c1.stride_h) == (10, 3, 1)
    # stride 2 on a padded 10x10 input: true output 4x4; the row's ifmap is the touched
    # extent (4-1)*2+3 = 9, so SCALE-Sim's ceil formula also gives 4 (10 would give 5).
    assert (c2.ifmap_h, c2.stride_h, c2.ofmap_h, c2.ofmap_pixels) == (9, 2, 4, 16)
    assert c2.macs == 16 * 9 * 8 * 16 and c2.params == 16 * 8 * 9
    assert (fc.ifmap_h, fc.ifmap_w, fc.filter_w, fc.channels, fc.num_filters) == (1, 16, 16, 1, 10)
    assert fc.macs == fc.params == 160
    assert c1.topology_row() == ["conv1", 10, 10, 3, 3, 3, 8, 1, 1]


def test_grouped_dilated_and_depthwise_conv() -> None:
    nodes = [
        helper.make_node(
            "Conv", ["x", "wg"], ["g1"], group=2, pads=[2, 2, 2, 2], dilations=[2, 2], name="g"
        ),
        helper.make_node("Conv", ["g1", "wd"], ["y"], group=8, pads=[1, 1, 1, 1], name="dw"),
    ]
    model = _model(nodes, [_w("wg", (8, 2, 3, 3)), _w("wd", (8, 1, 3, 3))], [1, 4, 12, 12])
    g, dw = layers_from_onnx(model)
    # grouped: 2 groups of 2 input channels; dilation keeps the 12x12 output, compact kernel
    assert (g.channels, g.num_filters, g.groups, g.ofmap_h, g.filter_h) == (2, 8, 2, 12, 3)
    assert g.macs == 144 * 9 * 2 * 8 and g.params == 8 * 2 * 9
    assert (dw.channels, dw.num_filters, dw.groups, dw.window) == (1, 8, 8, 9)
    # weight reads of a grouped conv = those of its groups run separately
    per_group = LayerShape("p", "conv", 14, 14, 3, 3, 2, 4, 1, 1, 0, 0)
    assert layer_filter_reads(g) == 2 * layer_filter_reads(per_group)


def test_conv_transpose_maps_to_stride1_conv_over_zero_inserted_input() -> None:
    nodes = [
        helper.make_node(
            "ConvTranspose", ["x", "wt"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1], name="up"
        )
    ]
    model = _model(nodes, [_w("wt", (16, 8, 4, 4))], [1, 16, 4, 4])
    (up,) = layers_from_onnx(model)
    assert up.kind == "convT"
    assert (up.ofmap_h, up.ofmap_w) == (8, 8)  # (4-1)*2 - 2 + 4
    assert (up.ifmap_h, up.filter_h, up.stride_h) == (11, 4, 1)  # out + k - 1, stride 1
    assert (up.channels, up.num_filters) == (16, 8)
    assert up.params == 16 * 8 * 16
    assert up.macs == 64 * 16 * 16 * 8  # dense count of the equivalent conv
    assert layer_filter_reads(up) == math.ceil(64 / 32) * 16 * 16 * 8


def test_matmul_with_constant_weight_and_qdq_weights() -> None:
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wdq"]),
        helper.make_node("MatMul", ["f", "wdq"], ["h"], name="mm_qdq"),
        helper.make_node("MatMul", ["h", "hT"], ["y"], name="act_x_act"),  # skipped
    ]
    inits = [
        _w("wq", (48, 12), np.int8),
        numpy_helper.from_array(np.array(0.02, np.float32), "ws"),
        numpy_helper.from_array(np.array(0, np.int8), "wz"),
    ]
    graph_nodes = [*nodes[:3], helper.make_node("Transpose", ["h"], ["hT"]), nodes[3]]
    model = _model(graph_nodes, inits, ["N", 3, 4, 4])  # dynamic batch -> 1
    (mm,) = layers_from_onnx(model)
    assert (mm.name, mm.kind) == ("mm_qdq", "gemm")
    assert (mm.ifmap_h, mm.ifmap_w, mm.num_filters) == (1, 48, 12)
    assert mm.params == 48 * 12


def test_fixed_batch_is_counted_per_image() -> None:
    one = layers_from_onnx(tiny_cnn(batch=1))
    four = layers_from_onnx(tiny_cnn(batch=4))
    assert [layer.ifmap_h for layer in one] == [layer.ifmap_h for layer in four]
    assert twma(one) == twma(four)


def test_dynamic_spatial_size_needs_input_shape() -> None:
    model = tiny_cnn(batch="N", hw="H")
    with pytest.raises(NfdeployError, match="input-shape"):
        layers_from_onnx(model)
    c1 = layers_from_onnx(model, input_shape=(1, 3, 32, 32))[0]
    assert c1.ofmap_pixels == 1024
    # an override also replaces a static size
    assert layers_from_onnx(tiny_cnn(), input_shape=(1, 3, 16, 16))[0].ofmap_h == 16
    with pytest.raises(NfdeployError, match="rank"):
        layers_from_onnx(tiny_cnn(), input_shape=(1, 3, 16))


def test_shapes_fall_back_to_onnxruntime_when_inference_cannot() -> None:
    # Tile's repeats are not a literal initializer: onnx shape inference loses the shape.
    nodes = [
        helper.make_node("Identity", ["rep"], ["rep2"]),
        helper.make_node("Tile", ["x", "rep2"], ["t"]),
        helper.make_node("Conv", ["t", "w"], ["y"], name="conv"),
    ]
    inits = [
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.int64), "rep"),
        _w("w", (4, 3, 3, 3)),
    ]
    (conv,) = layers_from_onnx(_model(nodes, inits, [1, 3, 8, 8]))
    assert (conv.ofmap_h, conv.ofmap_w) == (14, 14)


def test_invalid_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(NfdeployError, match="no such ONNX file"):
        layers_from_onnx(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00this is not a protobuf\xff" * 8)
    with pytest.raises(NfdeployError, match="not a readable ONNX model") as info:
        layers_from_onnx(bad)
    assert "\n" not in str(info.value)
    relu = _model([helper.make_node("Relu", ["x"], ["y"])], [], [1, 3, 4, 4])
    with pytest.raises(NfdeployError, match="no weight layers found"):
        layers_from_onnx(relu)


# ----------------------------------------------------------------------------- TWMA


def test_analytic_twma_is_scalesims_closed_form() -> None:
    layer = LayerShape("l", "conv", 33, 33, 3, 3, 64, 128, 2, 2, 0, 0)  # ofmap 16x16
    assert layer.ofmap_pixels == 256
    # SCALE-Sim's ceil formula on the whole padded input (34) would give 17x17
    assert LayerShape("l", "conv", 34, 34, 3, 3, 64, 128, 2, 2, 0, 0).ofmap_pixels == 289
    assert layer_filter_reads(layer) == 8 * 576 * 128  # ceil(256/32) row folds
    assert layer_filter_reads(layer, array=(16, 16)) == 16 * 576 * 128
    # TWMA: 64-bit SRAM rows hold 8 int8 weights; row_bits=8 is the raw per-word count
    assert twma([layer]) == 8 * 576 * 128 // 8
    assert twma([layer], row_bits=8) == 8 * 576 * 128
    assert twma([layer], word_bytes=2) == 8 * 576 * 128 // 4
    # SRAM capacity does not change SCALE-Sim's read count
    assert twma([layer], weight_sram_kb=64) == twma([layer])
    with pytest.raises(NfdeployError, match="backend"):
        twma([layer], backend="cycle-accurate")
    with pytest.raises(NfdeployError, match="row width"):
        twma([layer], row_bits=12)


@pytest.mark.skipif(
    not scalesim_available(),
    reason="SCALE-Sim is not importable (pip install scalesim, the 'energy' extra)",
)
def test_analytic_within_5_percent_of_scalesim() -> None:
    layers = [
        LayerShape("stem", "conv", 34, 34, 3, 3, 3, 64, 1, 1, 0, 0),
        LayerShape("s2", "conv", 17, 17, 3, 3, 64, 96, 2, 2, 0, 0),  # 8x8, 96 = 3 col folds
        LayerShape("odd", "conv", 13, 9, 3, 1, 5, 7, 1, 1, 0, 0),  # 11x9 = 99 px, 7 filters
        LayerShape("pw", "conv", 10, 10, 1, 1, 48, 40, 1, 1, 0, 0),
        LayerShape("convT", "convT", 19, 19, 4, 4, 16, 3, 1, 1, 0, 0),
        LayerShape("fc", "gemm", 1, 512, 1, 512, 1, 10, 1, 1, 0, 0),
    ]
    analytic = filter_sram_reads(layers)
    simulated = filter_sram_reads(layers, backend="scalesim")
    for layer, a, s in zip(layers, analytic, simulated, strict=True):
        assert abs(a - s) <= 0.05 * s, (layer.name, a, s)
    assert twma(layers, backend="scalesim") == twma(layers)


# ----------------------------------------------------------------------------- voltage


def test_operating_points() -> None:
    assert operating_point() == PAPER_POINT
    paper = operating_point(ber=0.01)
    assert (paper.voltage_ratio, paper.ber, paper.r) == (0.83, 0.01, 0.694)
    assert operating_point(voltage=0.83) == paper
    assert operating_point(voltage=1.0).r == 1.0
    mid = operating_point(voltage=0.9)
    assert mid.ber is None and 0.694 < mid.r < 1.0
    assert mid.r == pytest.approx(0.9**2, rel=0.01)  # ~C V^2
    user = operating_point(ber=3.98e-3, r=0.8)
    assert (user.ber, user.r) == (3.98e-3, 0.8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ber": 0.02}, "outside the voltage table"),
        ({"ber": 3.98e-3}, "not labelled"),
        ({"voltage": 0.7}, "below 0.83"),
        ({"voltage": 1.2}, "above nominal"),
        ({"ber": 0.01, "voltage": 0.9}, "do not match"),
        ({"ber": 1.5}, "must be in"),
        ({"r": 0.0}, "read-energy ratio"),
    ],
)
def test_operating_point_errors(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(NfdeployError, match=match):
        operating_point(**kwargs)


# ----------------------------------------------------------------------------- report


def test_energy_report_formula_and_verdicts(tmp_path: Path) -> None:
    vendor = _save(big_cnn(), tmp_path / "m.onnx")
    small = _save(tiny_cnn(hw=16), tmp_path / "g.onnx")
    rep = energy_report(vendor=vendor, generator=small)
    m_count = twma(layers_from_onnx(vendor))
    g_count = twma(layers_from_onnx(small))
    assert (rep.twma_m, rep.twma_g) == (m_count, g_count)
    assert rep.energy_saving == pytest.approx(1 - 0.694 - g_count / m_count)
    assert rep.energy_saving > 0 and rep.verdict.startswith("saves ")
    assert rep.params_m == sum(layer.params for layer in layers_from_onnx(vendor))
    d = rep.to_dict()
    assert d["operating_point"]["r"] == 0.694 and len(d["layers_m"]) == 3
    json.dumps(d)
    assert "ES = 1 - 0.694" in rep.to_text()

    # a generator as costly as the vendor model: no saving
    costly = energy_report(vendor=small, generator=vendor)
    assert costly.energy_saving <= 0
    assert costly.verdict == "G costs more than the saving: ES ≤ 0"

    alone = energy_report(vendor=vendor, voltage=0.9)
    assert alone.twma_g == 0 and alone.energy_saving == pytest.approx(1 - alone.r)


def test_energy_report_gives_a_dynamic_generator_the_vendor_shape(tmp_path: Path) -> None:
    vendor = _save(big_cnn(), tmp_path / "m.onnx")
    dyn = _save(tiny_cnn(batch="N", hw="H"), tmp_path / "g.onnx")
    rep = energy_report(vendor=vendor, generator=dyn, r=0.7)
    assert rep.twma_g == twma(layers_from_onnx(dyn, input_shape=(1, 3, 16, 16)))
    assert rep.source == "r given by the user"


# ----------------------------------------------------------------------------- CLI


def test_cli_prints_report_and_writes_json(tmp_path: Path) -> None:
    vendor = _save(big_cnn(), tmp_path / "m.onnx")
    gen = _save(tiny_cnn(hw=16), tmp_path / "g.onnx")
    out = tmp_path / "energy.json"
    result = CliRunner().invoke(
        energy_command,
        ["--model", vendor, "--generator", gen, "--ber", "0.01", "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "verdict" in result.output and "saves" in result.output
    data = json.loads(out.read_text())
    assert data["energy_saving"] == pytest.approx(
        energy_report(vendor=vendor, generator=gen).energy_saving
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".energy-")] == []


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--ber", "0.05"], "outside the voltage table"),
        (["--ber", "0.00398"], "pass --r"),
        (["--generator", "nope.onnx"], "no such ONNX file"),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, extra: list[str], match: str) -> None:
    vendor = _save(big_cnn(), tmp_path / "m.onnx")
    result = CliRunner().invoke(energy_command, ["--model", vendor, *extra])
    assert result.exit_code == 1
    assert match in result.output
    assert result.output.strip().count("\n") == 0


def test_energy_package_does_not_import_torch() -> None:
    code = "import sys, nfdeploy.energy; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
