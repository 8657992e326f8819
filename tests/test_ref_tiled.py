"""--fault-model ref-tiled: the reference's 8192 x 128 stuck-at map, tiled over every tensor."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from nfdeploy.cli import main
from nfdeploy.errors import NfdeployError
from nfdeploy.faults import injectors
from nfdeploy.faults.onnx_model import load_faultable
from nfdeploy.faults.ref_tiled import MAP_COLS, MAP_ROWS, RefTiledMap
from nfdeploy.faults.spec import FaultModel, FaultSpec, Storage
from nfdeploy.faults.storage import StoredWeight, perturb
from tests.onnx_builders import colour_patches_npz, conv_bn_model

CELLS = MAP_ROWS * MAP_COLS
PERIOD = MAP_ROWS * 16 * 16  # int8: 16 codes per map row, each row's pattern repeated 16 times
SPEC = FaultSpec(FaultModel.REF_TILED, 0.01, Storage.INT8_TENSOR)


def _stored(name: str, size: int, fill: int) -> StoredWeight:
    return StoredWeight(name, Storage.INT8_TENSOR, np.full(size, fill, np.int8), np.ones(1))


def _stuck_cells(spec: FaultSpec, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(stuck at 1, stuck at 0) per cell of a size-element int8 tensor, as (size, 8) booleans:
    bits that all-zero codes gain, and bits that all-one codes lose."""
    zeros, ones = perturb([_stored("a", size, 0), _stored("b", size, -1)], spec, seed=seed)
    gained = np.unpackbits(zeros[0].view(np.uint8)[:, None], axis=1, bitorder="little")
    lost = 1 - np.unpackbits(ones[0].view(np.uint8)[:, None], axis=1, bitorder="little")
    return gained.astype(bool), lost.astype(bool)


def _within(count: float, expected: float, sd: float) -> bool:
    return abs(count - expected) <= 6 * sd  # 6 sigma: a seeded draw this far out is ~1e-9 rare


def test_rate_and_stuck_balance_over_one_full_map() -> None:
    """The first 16 codes of every 256 in one map period hold every cell once: faulty ~ p,
    stuck at 1 ~ 1/2 of them."""
    stuck1, stuck0 = (
        cells.reshape(MAP_ROWS, 256, 8)[:, :16] for cells in _stuck_cells(SPEC, 50_000, PERIOD)
    )
    faulty = int(stuck1.sum() + stuck0.sum())
    p = SPEC.ber
    assert _within(faulty, p * CELLS, (CELLS * p * (1 - p)) ** 0.5)
    assert _within(int(stuck1.sum()), faulty / 2, (faulty / 4) ** 0.5)
    assert not (stuck1 & stuck0).any()


def test_cells_follow_the_documented_map_and_layout() -> None:
    """Element i, bit j is cell (row (i // 256) % 8192, column 8 * (i % 16) + j) of the map
    drawn from RandomState(seed) (faulty iff < p) and RandomState(seed + 1) (at 1 iff < 1/2)."""
    seed, size = 50_003, 3 * 256 + 40
    faulty = np.random.RandomState(seed).random_sample((MAP_ROWS, MAP_COLS)) < SPEC.ber
    at_one = np.random.RandomState(seed + 1).random_sample((MAP_ROWS, MAP_COLS)) < 0.5
    index = np.arange(size)
    cols = 8 * (index % 16)[:, None] + np.arange(8)
    rows = np.broadcast_to(((index // 256) % MAP_ROWS)[:, None], cols.shape)
    stuck1, stuck0 = _stuck_cells(SPEC, seed, size)
    np.testing.assert_array_equal(stuck1, faulty[rows, cols] & at_one[rows, cols])
    np.testing.assert_array_equal(stuck0, faulty[rows, cols] & ~at_one[rows, cols])
    assert stuck1.any() and stuck0.any()


def test_faults_repeat_within_a_layer_and_across_layers() -> None:
    spec = FaultSpec(FaultModel.REF_TILED, 0.05, Storage.INT8_TENSOR)
    size = PERIOD + 4096
    stuck1, stuck0 = _stuck_cells(spec, 50_001, size)
    pattern = stuck1.astype(np.uint8) * 2 + stuck0  # 0 healthy, 1 stuck at 0, 2 stuck at 1
    head = slice(0, 4096)
    np.testing.assert_array_equal(pattern[PERIOD:], pattern[head])  # one map period apart
    np.testing.assert_array_equal(pattern[16:256], pattern[0:240])  # the row's 16-code repeat
    assert (pattern[256:512] != pattern[0:256]).any()  # the next map row differs
    # two layers of different sizes: the same offset gets the same fault
    layers = perturb([_stored("conv1", 4096, 0), _stored("fc", 1000, 0)], spec, seed=50_001)
    np.testing.assert_array_equal(layers[0][0][:1000], layers[1][0])
    assert layers[1][1] > 0


def test_deterministic_per_seed_and_different_across_seeds() -> None:
    weights = [_stored("w", 5000, 0x35)]
    first, again = (perturb(weights, SPEC, seed=50_000) for _ in range(2))
    other = perturb(weights, SPEC, seed=50_002)
    np.testing.assert_array_equal(first[0][0], again[0][0])
    assert first[0][1] == again[0][1] > 0
    assert (first[0][0] != other[0][0]).any()


def test_nested_across_rates_and_bits_respected() -> None:
    low, high = (
        _stuck_cells(FaultSpec(FaultModel.REF_TILED, p, Storage.INT8_TENSOR), 50_000, 8192)
        for p in (0.005, 0.02)
    )
    for cells_low, cells_high in zip(low, high, strict=True):
        assert cells_low.sum() > 0 and not (cells_low & ~cells_high).any()
    msb = FaultSpec(FaultModel.REF_TILED, 0.2, Storage.INT8_TENSOR, bit_positions=(7,))
    stuck1, stuck0 = _stuck_cells(msb, 50_000, 8192)
    assert (stuck1 | stuck0)[:, 7].any() and not (stuck1 | stuck0)[:, :7].any()


def test_fp16_elements_use_eight_slots_per_row() -> None:
    """16-bit elements: 8 per map row, the row's pattern repeated 8 times over 64 elements."""
    codes = np.zeros(256, np.float16)
    fault_map = RefTiledMap.draw(seed=50_000, p=0.2)
    assert fault_map.apply(codes) > 0
    bits = codes.view(np.uint16)
    np.testing.assert_array_equal(bits[8:64], bits[0:56])
    assert (bits[64:128] != bits[0:64]).any()
    at_one = fault_map.stuck1[0].reshape(8, 16)  # row 0: slot s holds cells 16s .. 16s + 15
    expected = (at_one * (1 << np.arange(16))).sum(axis=1)
    np.testing.assert_array_equal(bits[:8], expected)


def test_seed_beyond_randomstate_is_refused() -> None:
    with pytest.raises(NfdeployError, match="RandomState"):
        perturb([_stored("w", 10, 0)], SPEC, seed=2**32)


def test_every_fault_model_has_an_injector(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(injectors.INJECTORS) == set(FaultModel)
    monkeypatch.setattr(
        injectors, "INJECTORS", {FaultModel.FLIP: injectors.INJECTORS[FaultModel.FLIP]}
    )
    with pytest.raises(LookupError, match="ref-tiled"):
        perturb([_stored("w", 10, 0)], SPEC, seed=50_000)


def test_training_weights_equal_validate_initializers(tmp_path: Path) -> None:
    from nfdeploy.train.perturbed import PerturbedWeights

    path = tmp_path / "vendor.onnx"
    onnx.save(conv_bn_model(), str(path))
    model = load_faultable(path)
    spec = FaultSpec(FaultModel.REF_TILED, 0.1, model.storage)
    trained = PerturbedWeights(load_faultable(path), spec).for_seed(1234)
    faulty_bytes, changed = model.faulty_bytes(spec, seed=1234)
    inits = {
        i.name: numpy_helper.to_array(i)
        for i in onnx.load_from_string(faulty_bytes).graph.initializer
    }
    assert changed > 0 and set(trained) == {t.name for t in model.targets}
    for name, tensor in trained.items():
        np.testing.assert_array_equal(tensor.numpy(), inits[name])
    clean = {t.name: w.dequantize() for t, w in zip(model.targets, model.stored, strict=True)}
    assert any((trained[name].numpy() != clean[name]).any() for name in trained)


def test_validate_and_train_accept_ref_tiled(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor.onnx"
    onnx.save(conv_bn_model(seed=1), str(vendor))
    data = colour_patches_npz(tmp_path / "data.npz", 40)
    report = tmp_path / "report.json"
    args = ["validate", "-q", "--model", str(vendor), "--data", str(data), "--preprocess", "unit"]
    result = CliRunner().invoke(
        main,
        [*args, "--ber", "0.1", "--trials", "2", "--fault-model", "ref-tiled", "--report", str(report)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    fault = json.loads(report.read_text())["fault"]
    assert fault["fault_model"] == "ref-tiled" and fault["nested"] is True
    assert "8192 x 128" in fault["definition"] and "p = BER" in fault["definition"]
    refused = CliRunner().invoke(main, [*args, "--ber", "0.1", "--fault-model", "ref-tiled",
                                        "--seed", str(2**32)])  # fmt: skip
    assert refused.exit_code != 0 and "RandomState" in refused.output
    assert "Traceback" not in refused.output
    from nfdeploy.cli.train_cmd import train_command

    (option,) = [p for p in train_command.params if p.name == "fault_model"]
    assert isinstance(option.type, click.Choice)
    assert set(option.type.choices) == {"flip", "stuck-at", "ref-tiled"}
