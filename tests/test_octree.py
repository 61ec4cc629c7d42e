"""The octree (3-D forest) against its one-node-at-a-time oracle, on random and real volumes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apfcompile.core.forest import ForestParams
from apfcompile.core.octree import build_octree, edge_count_volume
from apfcompile.demo import sample_path
from apfcompile.errors import ParameterError
from apfcompile.inputs.readers import read_array
from formats.morton import morton3_decode, morton3_encode

from . import oracle

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def as_tuples(leaves):
    return list(
        zip(leaves.x1.tolist(), leaves.y1.tolist(), leaves.z1.tolist(), leaves.size.tolist(), leaves.depth.tolist())
    )


@st.composite
def volumes(draw):
    shape = tuple(draw(st.integers(1, 24)) for _ in range(3))
    density = draw(st.sampled_from([0.0, 0.01, 0.05, 0.3]))
    seed = draw(st.integers(0, 2**31))
    return np.where(np.random.default_rng(seed).random(shape) < density, 255, 0).astype(np.uint8)  # as Canny


def octree(edges, m, **kw):
    return build_octree(edge_count_volume(edges, m), edges.shape, ForestParams(min_size=m, **kw))


def assert_tiles_exactly(leaves, shape):
    """Every voxel of the volume in exactly one leaf; no leaf wholly outside it."""
    cover = np.zeros(tuple(s + 64 for s in shape), np.int32)
    for x1, x2, y1, y2, z1, z2 in leaves.box.tolist():
        assert x1 < shape[2] and y1 < shape[1] and z1 < shape[0]
        cover[z1:z2, y1:y2, x1:x2] += 1
    assert (cover[: shape[0], : shape[1], : shape[2]] == 1).all()


@SETTINGS
@given(edges=volumes(), length=st.integers(1, 120), min_log=st.integers(0, 2), cube_log=st.sampled_from([None, 3]))
def test_greedy_matches_oracle(edges, length, min_log, cube_log):
    m = 1 << min_log
    cube = None if cube_log is None else max(1 << cube_log, m)
    n_roots = len(oracle._roots3(*edges.shape, cube or max(oracle.next_pow2(max(edges.shape)), m)))
    if n_roots > length:
        with pytest.raises(ParameterError):
            octree(edges, m, length=length, tile_size=cube)
        return
    leaves = octree(edges, m, length=length, tile_size=cube)
    assert as_tuples(leaves) == oracle.greedy_octree(edges, length, m, cube)
    assert len(leaves) <= length
    assert_tiles_exactly(leaves, edges.shape)


@SETTINGS
@given(
    edges=volumes(),
    split_value=st.sampled_from([0, 1, 5]),
    min_log=st.integers(0, 2),
    max_depth=st.sampled_from([None, 1, 3]),
)
def test_threshold_matches_oracle(edges, split_value, min_log, max_depth):
    m = 1 << min_log
    leaves = octree(edges, m, policy="threshold", split_value=split_value, max_depth=max_depth)
    assert as_tuples(leaves) == oracle.threshold_octree(edges, split_value, m, max_depth)
    assert_tiles_exactly(leaves, edges.shape)


def test_real_ct_edges_match_oracle():
    """Per-slice Canny of the bundled CT (its HU window), stacked: the octree equals the oracle."""
    import cv2

    ct = read_array(sample_path("ct_abdomen.nii.gz"))  # (x, y, z) as stored
    volume = np.ascontiguousarray(ct.transpose(2, 1, 0))  # (D, H, W)
    grey = np.clip((volume.astype(np.float32) + 175) * (255 / 425), 0, 255).astype(np.uint8)
    edges = np.stack([cv2.Canny(cv2.GaussianBlur(s, (3, 3), 0), 100, 200) for s in grey])
    for length in (64, 500):
        leaves = octree(edges, 4, length=length)
        assert as_tuples(leaves) == oracle.greedy_octree(edges, length, 4)
        assert_tiles_exactly(leaves, edges.shape)


@pytest.mark.parametrize("shape", [(16, 16, 16), (5, 16, 9)])
def test_edge_free_volume_is_a_uniform_grid(shape):
    edges = np.zeros(shape, np.uint8)
    leaves = octree(edges, 2, length=4096)
    assert set(leaves.size.tolist()) == {2}
    assert_tiles_exactly(leaves, shape)
    partial = octree(np.zeros((16, 16, 16), np.uint8), 2, length=64)  # 8 -> 64: one level finer
    assert set(partial.size.tolist()) == {4} and len(partial) == 64


def test_leaves_come_in_morton_order():
    rng = np.random.default_rng(5)
    edges = np.where(rng.random((32, 32, 32)) < 0.02, 255, 0).astype(np.uint8)
    leaves = octree(edges, 2, length=300)
    key = morton3_encode(leaves.z1 // 2, leaves.y1 // 2, leaves.x1 // 2)
    assert (np.diff(key.astype(np.int64)) > 0).all()
    z, y, x = morton3_decode(key)
    assert (z == leaves.z1 // 2).all() and (y == leaves.y1 // 2).all() and (x == leaves.x1 // 2).all()
