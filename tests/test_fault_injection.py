"""Faults reach onnxruntime: Conv->BN fusion, known bit flips, QDQ, fixed batch, exporter shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from nfdeploy.errors import NfdeployError
from nfdeploy.faults.chipmap import ChipMap
from nfdeploy.faults.onnx_model import load_faultable
from nfdeploy.faults.onnx_weights import TensorSelection
from nfdeploy.faults.spec import FaultModel, FaultSpec, Storage
from nfdeploy.faults.storage import StoredWeight
from nfdeploy.onnx.session import make_session
from tests.onnx_builders import IN_CHANNELS, SIZE, conv_bn_model, conv_bn_weights, numpy_forward


def _save(model: onnx.ModelProto, tmp_path: Path, name: str = "m.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _run(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    session = make_session(model_bytes, threads=1)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(5, IN_CHANNELS, SIZE, SIZE)).astype(np.float32)


def test_default_targets_are_conv_and_gemm_weights(tmp_path: Path) -> None:
    model = load_faultable(_save(conv_bn_model(), tmp_path))
    assert [t.name for t in model.targets] == ["conv.weight", "fc.weight"]
    with_bias = load_faultable(
        _save(conv_bn_model(), tmp_path), selection=TensorSelection(include_bias=True)
    )
    assert [t.name for t in with_bias.targets] == [
        "conv.weight",
        "conv.bias",
        "fc.weight",
        "fc.bias",
    ]
    only_fc = load_faultable(
        _save(conv_bn_model(), tmp_path), selection=TensorSelection(pattern="^fc")
    )
    assert [t.name for t in only_fc.targets] == ["fc.weight"]


def test_faults_survive_conv_bn_fusion(tmp_path: Path, x: np.ndarray) -> None:
    """At ORT_ENABLE_ALL, Conv+BN is fused; faults must still change the outputs."""
    model = load_faultable(
        _save(conv_bn_model(), tmp_path), selection=TensorSelection(pattern="conv")
    )
    clean = _run(model.clean_bytes(), x)
    spec = FaultSpec(FaultModel.FLIP, 0.05, Storage.INT8_TENSOR)
    faulty_bytes, changed = model.faulty_bytes(spec, seed=50_000)
    assert changed > 0
    assert not np.allclose(_run(faulty_bytes, x), clean)


def test_one_known_bit_changes_output_by_exact_amount(tmp_path: Path, x: np.ndarray) -> None:
    """A chip map with one stuck cell: the MSB of conv.weight's code 7 flips, nothing else."""
    model = load_faultable(_save(conv_bn_model(), tmp_path))
    conv = model.stored[0]
    index = 7
    stored_msb = (conv.codes.view(np.uint8).ravel()[index] >> 7) & 1
    faulty = np.zeros(model.stored_bytes() * 8, dtype=bool)
    faulty[index * 8 + 7] = True
    chip_path = tmp_path / "chip.npz"
    ChipMap(faulty, np.full(faulty.shape, not stored_msb)).save(chip_path)
    spec = FaultSpec(FaultModel.CHIP_MAP, 0.0, Storage.INT8_TENSOR, chip_map=chip_path)

    faulty_bytes, changed = model.faulty_bytes(spec, seed=50_000)

    assert changed == 1
    weights = conv_bn_weights()
    expected_codes = conv.codes.copy()
    expected_codes.view(np.uint8).ravel()[index] ^= 0x80
    weights["conv.weight"] = conv.dequantize(expected_codes)
    weights["fc.weight"] = model.stored[1].dequantize()
    np.testing.assert_allclose(
        _run(faulty_bytes, x), numpy_forward(weights, x), rtol=1e-4, atol=1e-5
    )
    weights["conv.weight"] = conv.dequantize()
    np.testing.assert_allclose(
        _run(model.clean_bytes(), x), numpy_forward(weights, x), rtol=1e-4, atol=1e-5
    )


def test_same_seed_same_pattern_other_seed_differs(tmp_path: Path) -> None:
    model = load_faultable(_save(conv_bn_model(), tmp_path))
    spec = FaultSpec(FaultModel.STUCK_AT, 0.2, Storage.INT8_TENSOR)
    first, _ = model.faulty_bytes(spec, seed=50_001)
    again, _ = load_faultable(_save(conv_bn_model(), tmp_path, "copy.onnx")).faulty_bytes(
        spec, seed=50_001
    )
    other, _ = model.faulty_bytes(spec, seed=50_002)
    assert first == again
    assert first != other


@pytest.mark.parametrize("flatten", ["reshape_const", "shape_chain"])
def test_fixed_batch_of_one_is_made_dynamic(tmp_path: Path, x: np.ndarray, flatten: str) -> None:
    original = conv_bn_model(batch=1, flatten=flatten)
    model = load_faultable(_save(original, tmp_path), storage="fp32")
    assert model.dynamic_batch, model.batch_note
    reference = np.concatenate(
        [_run(original.SerializeToString(), x[i : i + 1]) for i in range(len(x))]
    )
    spec = FaultSpec(FaultModel.FLIP, 0.0, Storage.FP32)
    np.testing.assert_allclose(
        _run(model.faulty_bytes(spec, seed=50_000)[0], x), reference, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(("opset", "ir"), [(9, 4), (13, 7), (17, 8), (20, 10)])
def test_exporter_variants_take_faults(tmp_path: Path, x: np.ndarray, opset: int, ir: int) -> None:
    for inits_as_inputs in (False, True):
        model = load_faultable(
            _save(
                conv_bn_model(
                    opset=opset, ir=ir, flatten="shape_chain", inits_as_inputs=inits_as_inputs
                ),
                tmp_path,
            )
        )
        clean = _run(model.clean_bytes(), x)
        faulty, changed = model.faulty_bytes(
            FaultSpec(FaultModel.FLIP, 0.1, Storage.INT8_TENSOR), seed=50_000
        )
        assert changed > 0
        assert not np.allclose(_run(faulty, x), clean)


def test_float_storages(tmp_path: Path) -> None:
    weight = conv_bn_weights()["conv.weight"]
    fp32 = StoredWeight.from_float("w", weight, Storage.FP32)
    assert np.array_equal(fp32.dequantize(), weight)
    fp16 = StoredWeight.from_float("w", weight, Storage.FP16)
    assert fp16.codes.dtype == np.float16
    np.testing.assert_allclose(fp16.dequantize(), weight, rtol=1e-3)
    for storage in (Storage.INT8_TENSOR, Storage.INT8_CHANNEL):
        stored = StoredWeight.from_float("w", weight, storage)
        assert stored.codes.dtype == np.int8
        assert np.all(np.abs(stored.dequantize() - weight) <= stored.scale / 2 + 1e-7)
    per_tensor = StoredWeight.from_float("w", weight, Storage.INT8_TENSOR)
    assert per_tensor.scale is not None and per_tensor.scale.size == 1
    assert np.isclose(float(per_tensor.scale.ravel()[0]), np.abs(weight).max() / 127)


def test_qdq_model_flips_int8_initializers(tmp_path: Path, x: np.ndarray) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": x[i : i + 1]} for i in range(len(x))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    float_path = _save(conv_bn_model(), tmp_path, "float.onnx")
    qdq_path = tmp_path / "qdq.onnx"
    quantize_static(
        str(float_path),
        str(qdq_path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    model = load_faultable(qdq_path)
    assert model.storage is Storage.QDQ
    assert model.targets and all(t.qdq for t in model.targets)
    spec = FaultSpec(FaultModel.FLIP, 0.1, Storage.QDQ)
    faulty, changed = model.faulty_bytes(spec, seed=50_000)
    assert changed > 0
    inits = {
        i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(faulty).graph.initializer
    }
    for target, stored in zip(model.targets, model.stored, strict=True):
        assert inits[target.name].dtype == stored.codes.dtype
    assert any(
        not np.array_equal(inits[t.name], s.codes)
        for t, s in zip(model.targets, model.stored, strict=True)
    )
    assert not np.allclose(_run(faulty, x), _run(model.clean_bytes(), x))
    with pytest.raises(NfdeployError, match="--storage qdq"):
        load_faultable(qdq_path, storage="int8-tensor")


def test_external_data_outside_folder_is_refused(tmp_path: Path) -> None:
    model = conv_bn_model()
    init = next(i for i in model.graph.initializer if i.name == "conv.weight")
    init.ClearField("raw_data")
    del init.float_data[:]
    init.data_location = onnx.TensorProto.EXTERNAL
    init.external_data.add(key="location", value="../outside.bin")
    path = tmp_path / "sub" / "m.onnx"
    path.parent.mkdir()
    path.write_bytes(model.SerializeToString())
    with pytest.raises(NfdeployError, match="leaves the model folder"):
        load_faultable(path)


def test_bad_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(NfdeployError, match="no such ONNX file"):
        load_faultable(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model" * 10)
    with pytest.raises(NfdeployError, match=r"garbage\.onnx"):
        load_faultable(garbage)
