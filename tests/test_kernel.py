"""The compiled bit-error kernel: exact match with the numpy oracle, statistics, refusals."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from nfdeploy import _kernel
from nfdeploy.errors import NfdeployError
from nfdeploy.faults import kernel
from tests import bitflip_reference as ref

MIB = 1 << 20
U64_MAX = (1 << 64) - 1
# Upper 0.1% point of the chi-square distribution with 7 degrees of freedom.
CHI2_7DOF_999 = 24.322


def _random_bytes(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)


def _changed_bits(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Global indices (8 * byte + bit) of the bits that differ, ascending."""
    diff = np.unpackbits(before ^ after, bitorder="little")
    return np.flatnonzero(diff)


def _within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    mean = n * p
    return abs(count - mean) <= sigmas * math.sqrt(n * p * (1.0 - p)) + 1.0


# --------------------------------------------------------------------------- the oracle


ORACLE_SIZES = [1, 13, 4099, ref.BLOCK_BYTES, 2 * ref.BLOCK_BYTES + 777]
ORACLE_RATES = [1e-7, 1e-4, 3e-3, 0.05, 0.2499, 0.25, 0.5, 1.0]


def test_constants_match_the_oracle() -> None:
    assert _kernel.BLOCK_BYTES == ref.BLOCK_BYTES == kernel.BLOCK_BYTES


@pytest.mark.parametrize("model", ["flip_bits", "stuck_at"])
@pytest.mark.parametrize("p", ORACLE_RATES)
def test_kernel_reproduces_the_oracle_bit_for_bit(model: str, p: float) -> None:
    for i, n in enumerate(ORACLE_SIZES):
        if p >= ref.DENSE_MIN_P and n > ref.BLOCK_BYTES:
            n = ref.BLOCK_BYTES + 321  # keep the per-bit numpy oracle fast
        for mask in (0xFF, 0x80, 0xC0, 0x5A):
            data = _random_bytes(n, seed=i)
            expected = data.copy()
            got = getattr(_kernel, model)(data, p, 2024 + i, 77, mask)
            want = getattr(ref, model)(expected, p, 2024 + i, 77, mask)
            assert got == want, (n, mask)
            np.testing.assert_array_equal(data, expected, err_msg=f"n={n} mask={mask:#x}")


def test_oracle_log_is_accurate() -> None:
    x = ref.draws(12345, 0, 200_000)
    u = ((x >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0**-53
    u = np.concatenate([u, [1.0, 2.0**-53, 0.5, ref._SQRT_HALF, 1.0 - 2.0**-53]])
    exact = np.log(u)
    approx = ref.log_unit(u)
    assert approx[-5] == 0.0
    rel = np.abs(approx - exact) / np.maximum(np.abs(exact), 1e-300)
    assert rel.max() < 1e-15


def test_extreme_seeds_and_streams_match_the_oracle() -> None:
    for seed, stream in [(0, 0), (U64_MAX, U64_MAX), (1 << 63, 12345)]:
        data = _random_bytes(5000, seed=3)
        expected = data.copy()
        assert _kernel.flip_bits(data, 0.01, seed, stream) == ref.flip_bits(
            expected, 0.01, seed, stream
        )
        np.testing.assert_array_equal(data, expected)


# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("p", [1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.5])
def test_flip_count_is_binomial(p: float) -> None:
    n = 2 * MIB
    data = np.zeros(n, dtype=np.uint8)
    count = _kernel.flip_bits(data, p, 11, 22)
    assert count == int(np.unpackbits(data).sum())
    assert _within_binomial(count, 8 * n, p), (count, 8 * n * p)


@pytest.mark.parametrize("p", [1e-2, 0.2, 0.3])
def test_flips_are_uniform_over_bit_positions(p: float) -> None:
    data = np.zeros(MIB, dtype=np.uint8)
    _kernel.flip_bits(data, p, 5, 6)
    per_position = np.unpackbits(data, bitorder="little").reshape(-1, 8).sum(axis=0)
    expected = per_position.sum() / 8.0
    chi2 = float(((per_position - expected) ** 2 / expected).sum())
    assert chi2 < CHI2_7DOF_999, per_position


@pytest.mark.parametrize("p", [1e-3, 1e-2, 0.2, 0.5])
def test_gaps_between_flips_are_geometric(p: float) -> None:
    n = 2 * MIB if p < 0.1 else MIB // 4  # 32 or 4 blocks: gaps also cross block boundaries
    data = np.zeros(n, dtype=np.uint8)
    _kernel.flip_bits(data, p, 8, 9)
    flips = _changed_bits(np.zeros_like(data), data)
    gaps = np.diff(flips) - 1  # failures before the next success: Geometric(p) on 0, 1, ...
    m = gaps.size
    mean, sd = (1 - p) / p, math.sqrt(1 - p) / p
    assert abs(gaps.mean() - mean) < 5 * sd / math.sqrt(m)
    # Kolmogorov-Smirnov distance to the geometric CDF, at the support points.
    values, counts = np.unique(gaps, return_counts=True)
    empirical = np.cumsum(counts) / m
    model = 1.0 - (1.0 - p) ** (values + 1.0)
    distance = float(np.max(np.abs(empirical - model)))
    assert distance < 1.95 / math.sqrt(m)  # alpha = 0.001 (conservative for discrete laws)


@pytest.mark.parametrize("p", [1e-3, 1e-2, 0.3])
def test_stuck_at_changes_about_half_the_faulty_cells(p: float) -> None:
    n = MIB
    data = _random_bytes(n, seed=4)
    before = data.copy()
    count = _kernel.stuck_at(data, p, 1, 2)
    assert count == _changed_bits(before, data).size
    # Whatever the stored bit, a faulty cell changes it with probability 1/2.
    assert _within_binomial(count, 8 * n, p / 2)


@pytest.mark.parametrize("p", [1e-2, 0.3])
def test_stuck_values_are_fair_and_only_differing_bits_change(p: float) -> None:
    n = MIB // 2
    zeros = np.zeros(n, dtype=np.uint8)
    ones = np.full(n, 0xFF, dtype=np.uint8)
    set_count = _kernel.stuck_at(zeros, p, 3, 4)
    cleared_count = _kernel.stuck_at(ones, p, 3, 4)
    # All-zero memory can only gain ones, all-one memory only lose them.
    assert set_count == int(np.unpackbits(zeros).sum())
    assert cleared_count == int((8 - np.unpackbits(ones).reshape(-1, 8).sum(axis=1)).sum())
    # Same seed and stream, same faulty cells: stuck-at-1 cells plus stuck-at-0 cells.
    assert _within_binomial(set_count, 8 * n, p / 2)
    assert _within_binomial(set_count + cleared_count, 8 * n, p)
    both = np.unpackbits(zeros) | (1 - np.unpackbits(ones))  # every faulty cell, once
    assert int(both.sum()) == set_count + cleared_count


@pytest.mark.parametrize("model", ["flip_bits", "stuck_at"])
@pytest.mark.parametrize("mask", [0x80, 0xC0, 0x01, 0x5A])
@pytest.mark.parametrize("p", [1e-2, 0.5])
def test_only_masked_bits_change(model: str, mask: int, p: float) -> None:
    n = MIB // 4
    data = _random_bytes(n, seed=mask)
    before = data.copy()
    count = getattr(_kernel, model)(data, p, 7, 7, mask)
    diff = before ^ data
    assert not np.any(diff & ~np.uint8(mask))
    assert count == int(np.unpackbits(diff).sum())
    candidates = n * bin(mask).count("1")
    rate = p if model == "flip_bits" else p / 2
    assert _within_binomial(count, candidates, rate)
    per_position = np.unpackbits(diff, bitorder="little").reshape(-1, 8).sum(axis=0)
    assert all((per_position[j] > 0) == bool(mask >> j & 1) for j in range(8))


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("model", ["flip_bits", "stuck_at"])
@pytest.mark.parametrize("p", [1e-3, 0.2, 0.5])
def test_same_arguments_same_pattern_for_any_thread_count(model: str, p: float) -> None:
    source = _random_bytes(5 * ref.BLOCK_BYTES + 123, seed=9)
    results = []
    for threads in (1, 2, 3, 4, 16):
        data = source.copy()
        count = getattr(_kernel, model)(data, p, 42, 43, 0xFF, threads)
        results.append((count, data))
    again = source.copy()
    assert getattr(_kernel, model)(again, p, 42, 43) == results[0][0]
    np.testing.assert_array_equal(again, results[0][1])
    for count, data in results[1:]:
        assert count == results[0][0]
        np.testing.assert_array_equal(data, results[0][1])


def test_different_seed_stream_or_model_gives_a_different_pattern() -> None:
    def pattern(model: str, seed: int, stream: int) -> np.ndarray:
        data = np.zeros(MIB // 8, dtype=np.uint8)
        getattr(_kernel, model)(data, 1e-2, seed, stream)
        return data != 0  # bytes holding a fault (stuck-at-0 cells leave zeros unchanged)

    base = pattern("flip_bits", 1, 1)
    for other in (pattern("flip_bits", 2, 1), pattern("flip_bits", 1, 2)):
        overlap = np.count_nonzero(base & other) / np.count_nonzero(base)
        assert overlap < 0.2  # independent patterns share about 8% of the faulty bytes
    stuck = pattern("stuck_at", 1, 1)
    assert np.count_nonzero(base & stuck) / np.count_nonzero(stuck) < 0.2


def test_blocks_are_independent_of_the_buffer_tail() -> None:
    # Block b's pattern depends on b only, so a longer buffer keeps the shorter one's prefix.
    short = np.zeros(2 * ref.BLOCK_BYTES, dtype=np.uint8)
    long = np.zeros(3 * ref.BLOCK_BYTES + 5, dtype=np.uint8)
    _kernel.flip_bits(short, 1e-3, 5, 5)
    _kernel.flip_bits(long, 1e-3, 5, 5)
    np.testing.assert_array_equal(short, long[: short.size])


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("model", ["flip_bits", "stuck_at"])
def test_empty_and_one_byte_buffers(model: str) -> None:
    empty = np.zeros(0, dtype=np.uint8)
    assert getattr(_kernel, model)(empty, 0.5, 1, 1) == 0
    one = np.zeros(1, dtype=np.uint8)
    hits = sum(getattr(_kernel, model)(one.copy(), 0.5, s, 0) for s in range(200))
    assert 0 < hits < 8 * 200


@pytest.mark.parametrize("model", ["flip_bits", "stuck_at"])
def test_p_zero_changes_nothing(model: str) -> None:
    data = _random_bytes(100_000)
    before = data.copy()
    assert getattr(_kernel, model)(data, 0.0, 1, 1) == 0
    np.testing.assert_array_equal(data, before)


@pytest.mark.parametrize("mask", [0xFF, 0x80, 0xC0, 0x5A])
def test_p_one_flips_every_masked_bit(mask: int) -> None:
    data = _random_bytes(70_000)
    before = data.copy()
    assert _kernel.flip_bits(data, 1.0, 1, 1, mask, 2) == data.size * bin(mask).count("1")
    np.testing.assert_array_equal(data, before ^ np.uint8(mask))


def test_p_one_stuck_at_sets_every_masked_cell() -> None:
    data = _random_bytes(70_000)
    before = data.copy()
    count = _kernel.stuck_at(data, 1.0, 1, 1, 0xF0)
    np.testing.assert_array_equal(data & 0x0F, before & 0x0F)
    assert count == _changed_bits(before, data).size
    assert _within_binomial(count, 4 * data.size, 0.5)


def test_tiny_rates_never_fault() -> None:
    data = np.zeros(4 * MIB, dtype=np.uint8)
    assert _kernel.flip_bits(data, 1e-300, 1, 1) == 0
    assert _kernel.flip_bits(data, 5e-324, 1, 1) == 0
    assert not data.any()


def test_multidimensional_uint8_array_is_accepted() -> None:
    data = np.zeros((64, 32), dtype=np.uint8)
    assert _kernel.flip_bits(data, 1.0, 0, 0) == data.size * 8
    assert (data == 0xFF).all()


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("fn", [_kernel.flip_bits, _kernel.stuck_at])
def test_raw_kernel_refuses_other_dtypes_without_copying(fn: Callable[..., int]) -> None:
    data = np.zeros(16, dtype=np.float32)
    with pytest.raises(TypeError, match="dtype uint8, got float32"):
        fn(data, 0.5, 1, 1)
    with pytest.raises(TypeError, match="dtype uint8, got int8"):
        fn(np.zeros(16, dtype=np.int8), 0.5, 1, 1)
    with pytest.raises(TypeError, match=r"numpy\.ndarray"):
        fn(bytearray(16), 0.5, 1, 1)
    assert not data.any()


def test_raw_kernel_refuses_non_contiguous_and_read_only() -> None:
    data = np.zeros(64, dtype=np.uint8)
    with pytest.raises(TypeError, match="C-contiguous"):
        _kernel.flip_bits(data[::2], 1.0, 1, 1)
    with pytest.raises(TypeError, match="C-contiguous"):
        _kernel.flip_bits(np.zeros((8, 8), dtype=np.uint8).T, 1.0, 1, 1)
    data.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _kernel.stuck_at(data, 1.0, 1, 1)
    assert not data.any()


@pytest.mark.parametrize("p", [-0.1, 1.0000001, math.nan, math.inf])
def test_p_outside_unit_interval_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\]"):
        _kernel.flip_bits(np.zeros(4, dtype=np.uint8), p, 1, 1)


@pytest.mark.parametrize("mask", [0, 256, -1])
def test_bad_bit_mask_is_refused(mask: int) -> None:
    with pytest.raises(ValueError, match=r"bit_mask must be in 1\.\.255"):
        _kernel.stuck_at(np.zeros(4, dtype=np.uint8), 0.1, 1, 1, mask)


def test_bad_threads_is_refused() -> None:
    with pytest.raises(ValueError, match="threads must be >= 1"):
        _kernel.flip_bits(np.zeros(4, dtype=np.uint8), 0.1, 1, 1, 0xFF, 0)


@pytest.mark.parametrize("name", ["seed", "stream"])
def test_seed_and_stream_must_be_uint64(name: str) -> None:
    buf = np.zeros(4, dtype=np.uint8)
    args = {"seed": 1, "stream": 1}
    for bad in (-1, 1 << 64):
        with pytest.raises(ValueError, match=f"{name} must be an integer in 0..2\\*\\*64-1"):
            _kernel.flip_bits(buf, 0.1, **{**args, name: bad})
    with pytest.raises(TypeError, match=f"{name} must be an integer"):
        _kernel.flip_bits(buf, 0.1, **{**args, name: 1.5})
    # numpy integers are fine
    _kernel.flip_bits(buf, 0.1, **{**args, name: np.uint64(U64_MAX)})


# --------------------------------------------------------------------------- the wrapper


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.float16, np.float32, np.float64])
def test_byte_view_is_a_view_of_the_bytes(dtype: type) -> None:
    arr = np.arange(24, dtype=dtype).reshape(2, 3, 4)
    view = kernel.byte_view(arr)
    assert view.dtype == np.uint8 and view.ndim == 1 and view.size == arr.nbytes
    assert np.shares_memory(view, arr)
    view[:] = 0
    assert not arr.any()


def test_byte_view_refusals() -> None:
    arr = np.zeros((4, 4), dtype=np.float32)
    with pytest.raises(NfdeployError, match="non-contiguous"):
        kernel.byte_view(arr[:, 1])
    with pytest.raises(NfdeployError, match="non-contiguous"):
        kernel.byte_view(arr.T)
    arr.flags.writeable = False
    with pytest.raises(NfdeployError, match="read-only"):
        kernel.byte_view(arr)
    with pytest.raises(NfdeployError, match="numpy array"):
        kernel.byte_view([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(NfdeployError, match="object"):
        kernel.byte_view(np.array([None, 1], dtype=object))


def test_wrapper_injects_into_any_dtype_in_place() -> None:
    weights = np.linspace(-1, 1, 4096, dtype=np.float32).reshape(64, 64)
    before = weights.copy()
    count = kernel.flip_bits(weights, 1e-2, seed=1, stream=kernel.stream_key("conv1.weight"))
    changed = _changed_bits(kernel.byte_view(before), kernel.byte_view(weights))
    assert count == changed.size > 0
    # same bytes through the raw kernel give the same pattern
    raw = before.copy()
    _kernel.flip_bits(kernel.byte_view(raw), 1e-2, 1, kernel.stream_key("conv1.weight"))
    np.testing.assert_array_equal(raw.view(np.uint8), weights.view(np.uint8))

    codes = np.zeros(1000, dtype=np.int8)
    count = kernel.stuck_at(codes, 0.5, seed=3, stream=4, bit_mask=0x80, threads=2)
    assert count == int(np.count_nonzero(codes)) > 0
    assert set(np.unique(codes).tolist()) == {0, -128}


def test_wrapper_refuses_non_contiguous_with_nfdeploy_error() -> None:
    with pytest.raises(NfdeployError, match="non-contiguous"):
        kernel.flip_bits(np.zeros((4, 4), np.float32)[:, :2], 0.1, seed=1, stream=1)


def test_stream_key_is_64_bit_fnv1a() -> None:
    assert kernel.stream_key("") == 0xCBF29CE484222325
    assert kernel.stream_key("a") == 0xAF63DC4C8601EC8C
    assert kernel.stream_key("foobar") == 0x85944171F73967E8
    assert 0 <= kernel.stream_key("layer1.0.conv1.weight ü") <= U64_MAX


def test_kernel_module_does_not_import_torch() -> None:
    code = "import sys, nfdeploy.faults.kernel; print('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "False"
