"""Property tests of the bit-error kernel (hypothesis): the numpy oracle bit for bit, over
sizes 0 to several MB, p at 0 and 1 and in between, masks, seeds, streams and thread counts,
and refusals of invalid dtypes and layouts. `cpp_ext/sanitize.sh` runs them under
AddressSanitizer + UndefinedBehaviorSanitizer. Skipped where hypothesis is not installed."""

from __future__ import annotations

import numpy as np
import pytest

from nfdeploy import _kernel
from tests import bitflip_reference as ref

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

U64 = st.integers(0, (1 << 64) - 1)
MODELS = st.sampled_from(["flip_bits", "stuck_at"])
RATES = st.sampled_from([0.0, 1.0, 0.25, 1e-9]) | st.floats(0.0, 1.0, allow_nan=False)
MASKS = st.integers(1, 255)
BLOCK = ref.BLOCK_BYTES
# Around the block edges, where the counter scheme switches keys.
SIZES = st.sampled_from([0, 1, 7, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 3]) | st.integers(
    0, 5000
)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    model=MODELS, n=SIZES, p=RATES, mask=MASKS, seed=U64, stream=U64, data_seed=st.integers(0, 99)
)
def test_kernel_equals_the_oracle(
    model: str, n: int, p: float, mask: int, seed: int, stream: int, data_seed: int
) -> None:
    if p >= ref.DENSE_MIN_P:
        n = min(n, BLOCK + 17)  # the per-bit numpy oracle is slow on large dense buffers
    data = np.random.default_rng(data_seed).integers(0, 256, n, dtype=np.uint8)
    expected = data.copy()
    got = getattr(_kernel, model)(data, p, seed, stream, mask)
    want = getattr(ref, model)(expected, p, seed, stream, mask)
    assert got == want
    np.testing.assert_array_equal(data, expected)


@settings(derandomize=True, max_examples=12, deadline=None)
@given(
    model=MODELS,
    n=st.integers(1 << 20, 6 << 20),
    p=st.sampled_from([0.0, 1e-6, 1e-3, 0.3, 1.0]),
    mask=MASKS,
    seed=U64,
    threads=st.integers(1, 8),
)
def test_megabyte_buffers_only_masked_bits_and_any_thread_count(
    model: str, n: int, p: float, mask: int, seed: int, threads: int
) -> None:
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
    before = data.copy()
    one = data.copy()
    changed = getattr(_kernel, model)(data, p, seed, 7, mask, threads)
    assert changed == getattr(_kernel, model)(one, p, seed, 7, mask, 1)
    np.testing.assert_array_equal(data, one)
    diff = before ^ data
    assert not (diff & ~np.uint8(mask)).any()
    assert changed == int(np.unpackbits(diff).sum())
    if p == 0.0:
        assert changed == 0
    if p == 1.0 and model == "flip_bits":
        assert changed == n * bin(mask).count("1")


@settings(derandomize=True, max_examples=40, deadline=None)
@given(
    model=MODELS,
    dtype=st.sampled_from([np.int8, np.int16, np.float16, np.float32, np.float64, np.uint16]),
    n=st.integers(0, 64),
)
def test_other_dtypes_are_refused_untouched(model: str, dtype: type, n: int) -> None:
    data = np.zeros(n, dtype=dtype)
    with pytest.raises(TypeError, match="dtype uint8"):
        getattr(_kernel, model)(data, 0.5, 1, 1)
    assert not data.any()


@settings(derandomize=True, max_examples=40, deadline=None)
@given(model=MODELS, rows=st.integers(2, 40), cols=st.integers(2, 40), step=st.integers(2, 5))
def test_non_contiguous_and_read_only_are_refused_untouched(
    model: str, rows: int, cols: int, step: int
) -> None:
    data = np.zeros((rows, cols), dtype=np.uint8)
    views = [data.T, data[:, ::step], data.reshape(-1)[::step]]
    # numpy calls a strided view of one element contiguous (e.g. a 2 x 2 flattened, [::4])
    views = [v for v in views if not v.flags.c_contiguous]
    assert views[0].shape == (cols, rows)  # data.T of a >= 2 x 2 array is never contiguous
    for view in views:
        with pytest.raises(TypeError, match="C-contiguous"):
            getattr(_kernel, model)(view, 1.0, 1, 1)
    data.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        getattr(_kernel, model)(data, 1.0, 1, 1)
    assert not data.any()


@settings(derandomize=True, max_examples=40, deadline=None)
@given(
    p=st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not 0.0 <= v <= 1.0),
    mask=st.integers().filter(lambda m: not 1 <= m <= 255),
)
def test_bad_p_and_mask_are_refused(p: float, mask: int) -> None:
    buf = np.zeros(8, dtype=np.uint8)
    with pytest.raises(ValueError, match="probability"):
        _kernel.flip_bits(buf, p, 1, 1)
    with pytest.raises((ValueError, TypeError)):
        _kernel.stuck_at(buf, 0.5, 1, 1, mask)
    assert not buf.any()
