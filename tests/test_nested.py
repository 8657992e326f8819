"""validate --nested: for one seed, the faulty cells at a lower BER are a subset of those at a higher one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from nfdeploy.cli import main
from nfdeploy.errors import NfdeployError
from nfdeploy.faults import kernel, nested
from nfdeploy.faults.chipmap import ChipMap
from nfdeploy.faults.nested import LEVELS, Nested, faulty_cells
from nfdeploy.faults.onnx_model import load_faultable
from nfdeploy.faults.spec import FaultModel, FaultSpec, Storage
from nfdeploy.faults.storage import StoredWeight, perturb
from tests.onnx_builders import colour_patches_npz, conv_bn_model

NBYTES = 3 * kernel.BLOCK_BYTES + 1000  # several kernel blocks and a short last one
# level edges (2**-7, 2**-30), inside levels, below the last level, and the dense range
RATES = (1e-10, 2.0**-30, 1e-6, 0.001, 2.0**-7, 0.01, 0.02, 0.3, 0.5, 0.75, 1.0)


def _cells(p: float, model: Nested = Nested.FLIP, **options: int) -> np.ndarray:
    args = {"seed": 50_000, "stream": 99, "bit_mask": 0xFF, "threads": 1, **options}
    bits = np.unpackbits(faulty_cells(NBYTES, p, model=model, **args), bitorder="little")
    return bits.astype(bool)


def _within(count: float, n: float, p: float) -> bool:
    return abs(count - n * p) <= 6 * (n * p * (1 - p)) ** 0.5 + 1e-9  # 6 sigma, seeded


@pytest.mark.parametrize("model", list(Nested))
def test_each_rate_is_bernoulli_p_and_the_rates_nest(model: Nested) -> None:
    previous = np.zeros(NBYTES * 8, dtype=bool)
    for p in RATES:
        cells = _cells(p, model)
        assert _within(int(cells.sum()), cells.size, p), p
        assert not (previous & ~cells).any(), f"faults at a lower rate missing at {p}"
        previous = cells


def test_bit_positions_are_uniform_and_the_mask_holds() -> None:
    per_position = _cells(0.01).reshape(NBYTES, 8).sum(axis=0)
    assert all(_within(int(c), NBYTES, 0.01) for c in per_position)
    masked = _cells(0.05, bit_mask=0x81).reshape(NBYTES, 8)
    assert not masked[:, 1:7].any()
    assert all(_within(int(masked[:, b].sum()), NBYTES, 0.05) for b in (0, 7))


def test_patterns_depend_on_seed_and_stream_not_threads() -> None:
    base = _cells(0.01)
    np.testing.assert_array_equal(base, _cells(0.01, threads=2))
    assert (base != _cells(0.01, seed=50_001)).any()
    assert (base != _cells(0.01, stream=98)).any()
    assert (base != _cells(0.01, Nested.STUCK_AT)).any()  # the two models are independent


def test_levels_cover_every_rate() -> None:
    for p in RATES:
        level = nested.top_level(p)
        upper = 2.0**-level
        assert p <= upper and (level == LEVELS or p > upper / 2)
        assert 0 < nested.keep_fraction(p, level) <= 1


def _stored(fill: int) -> list[StoredWeight]:
    return [StoredWeight("w", Storage.INT8_TENSOR, np.full(NBYTES, fill, np.int8), np.ones(1))]


def _stuck(p: float) -> tuple[np.ndarray, np.ndarray]:
    """(cells stuck at 1, cells stuck at 0) under nested stuck-at at rate p, seed 50000."""
    spec = FaultSpec(FaultModel.STUCK_AT, p, Storage.INT8_TENSOR, nested=True)
    (zeros, _), (ones, _) = (perturb(_stored(fill), spec, seed=50_000)[0] for fill in (0, -1))
    gained = np.unpackbits(zeros.view(np.uint8), bitorder="little").astype(bool)
    lost = ~np.unpackbits(ones.view(np.uint8), bitorder="little").astype(bool)
    return gained, lost


def test_stuck_values_do_not_change_with_the_rate() -> None:
    """Both polarities nest, so a cell faulty at two rates is stuck at the same value."""
    low, high = _stuck(0.005), _stuck(0.02)
    for cells_low, cells_high in zip(low, high, strict=True):
        assert cells_low.any() and not (cells_low & ~cells_high).any()
    faulty = int(high[0].sum() + high[1].sum())
    assert _within(faulty, NBYTES * 8, 0.02)
    assert abs(int(high[0].sum()) - faulty / 2) <= 6 * (faulty / 4) ** 0.5  # SA1 ~ 1/2


def test_flip_changes_exactly_the_faulty_cells() -> None:
    spec = FaultSpec(FaultModel.FLIP, 0.01, Storage.INT8_TENSOR, nested=True)
    ((codes, changed),) = perturb(_stored(0x5A), spec, seed=50_000)
    flipped = np.unpackbits((codes.view(np.uint8) ^ 0x5A), bitorder="little").astype(bool)
    stream = kernel.stream_key("w")
    expected = faulty_cells(
        NBYTES, 0.01, model=Nested.FLIP, seed=50_000, stream=stream, bit_mask=0xFF, threads=1
    )
    np.testing.assert_array_equal(flipped, np.unpackbits(expected, bitorder="little") == 1)
    assert changed == int(flipped.sum())


def test_default_stays_the_plain_kernel_pattern() -> None:
    """Without --nested the patterns and the spec's report entry are those of before."""
    spec = FaultSpec(FaultModel.STUCK_AT, 0.01, Storage.INT8_TENSOR)
    ((codes, _),) = perturb(_stored(0x35), spec, seed=50_000)
    direct = np.full(NBYTES, 0x35, np.int8)
    kernel.stuck_at(direct, 0.01, seed=50_000, stream=kernel.stream_key("w"))
    np.testing.assert_array_equal(codes, direct)
    assert "nested" not in spec.to_dict()
    as_nested = FaultSpec(FaultModel.STUCK_AT, 0.01, Storage.INT8_TENSOR, nested=True)
    assert as_nested.to_dict()["nested"] is True
    assert "nested:" in as_nested.describe()
    assert FaultSpec.from_dict(as_nested.to_dict()) == as_nested


def test_nested_chip_map_is_refused(tmp_path: Path) -> None:
    chip = tmp_path / "chip.npz"
    ChipMap.generate(1024, 0.01, seed=1).save(chip)
    with pytest.raises(NfdeployError, match="--nested"):
        FaultSpec(FaultModel.CHIP_MAP, 0.0, Storage.INT8_TENSOR, chip_map=chip, nested=True)


def test_validate_nested_sweep_report_and_subsets(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor.onnx"
    onnx.save(conv_bn_model(seed=1), str(vendor))
    data = colour_patches_npz(tmp_path / "data.npz", 40)
    reports = {}
    for flag in ("--nested", None):
        report = tmp_path / f"{flag}.json"
        args = [
            "validate", "-q", "--model", str(vendor), "--data", str(data), "--preprocess", "unit",
            "--fault-model", "stuck-at", "--ber", "0.02", "--ber", "0.1", "--ber", "0.3",
            "--trials", "3", "--report", str(report), *([flag] if flag else []),
        ]  # fmt: skip
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        reports[flag] = json.loads(report.read_text())
    fault = reports["--nested"]["fault"]
    assert fault["nested"] is True and "nested:" in fault["definition"]
    assert "nested" not in reports[None]["fault"]
    # faulty cells and their stuck values nest, so every trial changes more bits at a higher BER
    rows = reports["--nested"]["results"]
    changed = np.array([[t["bits_changed"] for t in row["trials"]] for row in rows])
    assert (np.diff(changed, axis=0) > 0).all()
    # the specs the report states give nested faulty codes for each trial seed
    model = load_faultable(vendor)
    for seed in reports["--nested"]["seeds"]:
        previous = None
        for row in rows:
            spec = FaultSpec.from_dict({**fault, "ber": row["ber"]})
            faulty = perturb(model.stored, spec, seed=seed)
            flipped = np.concatenate(
                [
                    (codes ^ w.codes).view(np.uint8).ravel()
                    for (codes, _), w in zip(faulty, model.stored, strict=True)
                ]
            )
            assert previous is None or not (previous & ~flipped).any()
            previous = flipped
