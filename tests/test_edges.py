"""Edge maps: grey reduction and scaling rules, blur/Canny settings, the count grid."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apfcompile import EdgeParams, ParameterError, edge_count_grid, edge_map
from apfcompile.core.edges import to_grey, to_uint8


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(1, 100),
    w=st.integers(1, 100),
    cell_log=st.integers(0, 5),
    density=st.floats(0, 1),
    seed=st.integers(0, 2**31),
)
def test_count_grid_counts_edge_pixels(h, w, cell_log, density, seed):
    cell = 1 << cell_log
    edges = np.where(np.random.default_rng(seed).random((h, w)) < density, 255, 0).astype(np.uint8)
    grid = edge_count_grid(edges, cell)
    hp, wp = -(-h // cell) * cell, -(-w // cell) * cell
    pad = np.zeros((hp, wp), np.int64)
    pad[:h, :w] = edges > 0
    np.testing.assert_array_equal(grid, pad.reshape(hp // cell, cell, wp // cell, cell).sum(axis=(1, 3)))


def test_count_grid_on_real_edges(tissue):
    edges = edge_map(tissue)
    for cell in (1, 2, 8, 16, 64):
        assert edge_count_grid(edges, cell).sum() == np.count_nonzero(edges)


def test_grey_rules():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200
    assert to_grey(rgb)[0, 0] == cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[0, 0] == round(0.299 * 200)
    many = np.arange(16, dtype=np.float32).reshape(1, 1, 16).repeat(2, 0)
    assert to_grey(many)[0, 0] == pytest.approx(7.5)
    assert to_grey(rgb, channel=0)[0, 0] == 200
    with pytest.raises(ParameterError, match="channel"):
        to_grey(rgb, channel=3)
    rgb16 = rgb.astype(np.uint16) * 256
    assert to_grey(rgb16)[0, 0] == pytest.approx(0.299 * 200 * 256, rel=1e-5)


def test_uint8_scaling_rules():
    hu = np.array([[-1000, -175, 37, 250, 3000]], np.int16)
    np.testing.assert_array_equal(to_uint8(hu, window=(-175, 250)), [[0, 0, 127, 255, 255]])
    ramp = np.linspace(0, 1000, 101, dtype=np.float32).reshape(1, -1)
    scaled = to_uint8(ramp)  # 1st..99th percentile -> 0..255
    assert scaled[0, 0] == 0 and scaled[0, -1] == 255 and scaled[0, 50] == 128
    assert not to_uint8(np.full((3, 3), 7, np.uint16)).any()  # constant image -> zeros
    u8 = np.arange(9, dtype=np.uint8).reshape(3, 3)
    assert to_uint8(u8) is u8


def test_edge_map_uses_blur_and_canny():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    want = cv2.Canny(cv2.GaussianBlur(image, (5, 5), 0), 50, 150)
    np.testing.assert_array_equal(edge_map(image, EdgeParams(blur=5, canny=(50, 150))), want)
    np.testing.assert_array_equal(edge_map(image, EdgeParams(blur=1, canny=(50, 150))), cv2.Canny(image, 50, 150))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("c", [1, 3, 16])
def test_edge_map_accepts_every_dtype_and_channel_count(dtype, c):
    rng = np.random.default_rng(1)
    image = (rng.random((40, 50, c)) * 100).astype(dtype)
    image[10:30, 10:30] += dtype(50) if np.dtype(dtype).kind != "f" else 50.0
    edges = edge_map(image)
    assert edges.shape == (40, 50) and edges.dtype == np.uint8 and set(np.unique(edges)) <= {0, 255}


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"blur": 4}, "blur"),
        ({"blur": 0}, "blur"),
        ({"canny": (200, 100)}, "canny"),
        ({"window": (5, 5)}, "window"),
        ({"percentiles": (50, 10)}, "percentiles"),
    ],
)
def test_bad_edge_parameters(kw, field):
    with pytest.raises(ParameterError, match=field):
        EdgeParams(**kw)
