"""Pad or drop to a fixed length."""

from __future__ import annotations

import numpy as np
import pytest

from apfcompile import ForestParams, ParameterError, build_forest, edge_count_grid, fit_length, select_leaves


def forest(length=64):
    rng = np.random.default_rng(0)
    edges = np.where(rng.random((128, 128)) < 0.05, 255, 0).astype(np.uint8)
    edges[:40, :40] = 255
    return build_forest(edge_count_grid(edges, 8), (128, 128), ForestParams(length=length))


def test_pad_marks_invalid_rows():
    leaves = forest()
    patches = np.ones((len(leaves), 8, 8, 3), np.uint8)
    seq = fit_length(patches, leaves, 100, mask=np.ones((len(leaves), 8, 8), np.uint8))
    n = len(leaves)
    assert seq.patches.shape == (100, 8, 8, 3) and seq.mask.shape == (100, 8, 8)
    assert seq.valid[:n].all() and not seq.valid[n:].any()
    assert (seq.size[n:] == 0).all() and (seq.center[n:] == -1).all() and (seq.box[n:] == 0).all()
    assert not seq.patches[n:].any() and not seq.mask[n:].any()
    np.testing.assert_array_equal(seq.box[:n], np.stack([leaves.x1, leaves.x2, leaves.y1, leaves.y2], 1))
    np.testing.assert_array_equal(seq.center[:n, 0], leaves.cx)


def test_drop_by_priority_keeps_the_highest_and_z_order():
    leaves = forest()
    keep = select_leaves(leaves, 20, "priority")
    assert keep.size == 20 and np.all(np.diff(keep) > 0)
    dropped = np.setdiff1d(np.arange(len(leaves)), keep)
    prio = lambda i: (leaves.edges[i], leaves.size[i])  # noqa: E731
    assert min(prio(i) for i in keep) >= max(prio(i) for i in dropped)


def test_drop_random_is_seeded():
    leaves = forest()
    a, b = select_leaves(leaves, 20, "random", 1), select_leaves(leaves, 20, "random", 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, select_leaves(leaves, 20, "random", 2))
    seq = fit_length(np.zeros((len(leaves), 8, 8, 1), np.uint8), leaves, 20, drop="random", seed=1)
    np.testing.assert_array_equal(seq.index, a)


def test_bad_drop_and_length():
    leaves = forest()
    with pytest.raises(ParameterError, match="drop"):
        select_leaves(leaves, 5, "worst")
    with pytest.raises(ParameterError, match="length"):
        select_leaves(leaves, 0)
