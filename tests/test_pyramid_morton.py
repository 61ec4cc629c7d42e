"""Exact block-sum pyramids and Morton codes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from apfcompile.core.morton import morton_decode, morton_encode, morton_encode16
from apfcompile.core.pyramid import accumulator_dtype, sum_pyramid


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 70),
    w=st.integers(1, 70),
    c=st.sampled_from([None, 1, 3, 16]),
    dtype=st.sampled_from([np.uint8, np.uint16, np.int16, np.float32]),
    seed=st.integers(0, 2**31),
)
def test_pyramid_sums_are_exact(h, w, c, dtype, seed):
    rng = np.random.default_rng(seed)
    shape = (h, w) if c is None else (h, w, c)
    if np.dtype(dtype).kind == "f":
        a = rng.normal(size=shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    pyramid = sum_pyramid(a, 6)
    for k in range(1, 7):
        f = 1 << k
        hp, wp = -(-h // f) * f, -(-w // f) * f
        pad = np.zeros((hp, wp) + shape[2:], np.float64 if a.dtype.kind == "f" else np.int64)
        pad[:h, :w] = a
        want = pad.reshape((hp // f, f, wp // f, f) + shape[2:]).sum(axis=(1, 3))
        assert pyramid[k].dtype == accumulator_dtype(dtype, k)
        if a.dtype.kind == "f":
            np.testing.assert_allclose(pyramid[k], want, rtol=1e-12, atol=1e-9)
        else:
            np.testing.assert_array_equal(pyramid[k], want)


def test_uint8_pyramid_at_its_limits():
    a = np.full((64, 64, 3), 255, np.uint8)
    pyramid = sum_pyramid(a, 6)
    assert [int(level.max()) for level in pyramid] == [255 * 4**k for k in range(7)]


@given(st.lists(st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1)), min_size=1, max_size=50))
def test_morton_round_trip(points):
    y, x = (np.array(v, dtype=np.int64) for v in zip(*points))
    yy, xx = morton_decode(morton_encode(y, x))
    np.testing.assert_array_equal(yy, y)
    np.testing.assert_array_equal(xx, x)


def test_morton_is_z_order():
    y, x = np.divmod(np.arange(16), 4)
    codes = morton_encode(y, x).reshape(4, 4)
    np.testing.assert_array_equal(codes, [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]])


def test_large_uint8_level_uses_bands_and_threads_exactly():
    """Above 4 M pixels the uint8 fast path works in threaded bands; odd sides included."""
    a = np.random.default_rng(5).integers(0, 256, (2049, 2051, 3), dtype=np.uint8)
    pad = np.zeros((2050, 2052, 3), np.int64)
    pad[:2049, :2051] = a
    want = pad[0::2, 0::2] + pad[1::2, 0::2] + pad[0::2, 1::2] + pad[1::2, 1::2]
    np.testing.assert_array_equal(sum_pyramid(a, 1)[1], want)


@given(st.lists(st.tuples(st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1)), min_size=1, max_size=50))
def test_morton_of_16_bit_cells_is_the_general_code(points):
    y, x = (np.array(v, dtype=np.int64) for v in zip(*points))
    np.testing.assert_array_equal(morton_encode16(y, x), morton_encode(y, x))
