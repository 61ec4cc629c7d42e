"""Back to full size: the vectorised painter equals the per-leaf loop; Dice and the ceiling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apfcompile import (
    ForestParams,
    PatchParams,
    build_forest,
    ceiling_dice,
    dice_per_class,
    edge_count_grid,
    patchify,
    reconstruct,
    select_leaves,
    serialise_mask,
)

from . import oracle


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 80),
    w=st.integers(1, 80),
    p_log=st.integers(0, 3),
    extra=st.sampled_from([(), (3,)]),
    seed=st.integers(0, 2**31),
    drop=st.booleans(),
)
def test_reconstruct_equals_the_per_leaf_loop(h, w, p_log, extra, seed, drop):
    p = 1 << p_log
    rng = np.random.default_rng(seed)
    edges = np.where(rng.random((h, w)) < 0.1, 255, 0).astype(np.uint8)
    m = max(p, 1)
    leaves = build_forest(edge_count_grid(edges, m), (h, w), ForestParams(length=60, min_size=m))
    if drop and len(leaves) > 2:  # gaps where leaves were dropped keep the fill value
        leaves = leaves.take(select_leaves(leaves, len(leaves) // 2, "random", seed))
    patches = rng.integers(0, 250, (len(leaves), p, p) + extra).astype(np.uint8)
    got = reconstruct(patches, leaves, None, (h, w), fill=255)
    boxes = list(zip(leaves.x1.tolist(), leaves.y1.tolist(), leaves.size.tolist()))
    np.testing.assert_array_equal(got, oracle.reconstruct_loop(patches, boxes, (h, w), fill=255))


def test_dice_per_class():
    target = np.array([[0, 1, 1], [2, 2, 0]])
    pred = np.array([[0, 1, 0], [2, 2, 2]])
    classes, dice = dice_per_class(pred, target)
    assert classes.tolist() == [0, 1, 2]
    np.testing.assert_allclose(dice, [2 * 1 / 4, 2 * 1 / 3, 2 * 2 / 5])
    classes, dice = dice_per_class(pred, target, classes=[1, 7])
    np.testing.assert_allclose(dice, [2 / 3, 1.0])  # absent from both -> 1
    classes, dice = dice_per_class(np.array([1, 1, 3]), np.array([1, 255, 255]), ignore_index=255)
    assert classes.tolist() == [1] and dice.tolist() == [1.0]


@settings(max_examples=80, deadline=None)
@given(
    labels=st.integers(1, 1500),
    n=st.integers(1, 300),
    ignore=st.sampled_from([None, 0, 3]),
    given_classes=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_dense_confusion_equals_the_sorted_path(labels, n, ignore, given_classes, seed):
    """Small unsigned labels take one dense bincount; any other take the sort path: same scores."""
    rng = np.random.default_rng(seed)
    dtype = np.uint8 if labels <= 256 else np.uint16
    pred = rng.integers(0, labels, n).astype(dtype)
    target = rng.integers(0, labels, n).astype(dtype)
    classes = rng.integers(0, labels + 3, 5) if given_classes else None
    c1, d1 = dice_per_class(pred, target, classes, ignore)
    c2, d2 = dice_per_class(pred.astype(np.int64), target.astype(np.int64), classes, ignore)  # sorted path
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_allclose(d1, d2)


def test_ceiling_on_real_ct_slice_beats_published_resampling(ct_slice):
    """Majority-down / nearest-up keeps organ labels; it never invents a label in between."""
    image, seg = ct_slice
    sample = patchify(image, seg, PatchParams.make(8, min_size=8, length=64, window=(-175, 250)))
    classes, dice = sample.ceiling
    assert set(np.unique(reconstruct(sample.mask, sample.leaves, None, seg.shape)).tolist()) <= set(
        np.unique(seg).tolist()
    )
    classes2, dice2 = ceiling_dice(seg, sample.mask, sample.leaves)
    np.testing.assert_array_equal(dice, dice2)
    nearest = serialise_mask(seg, sample.leaves, 8, "nearest")
    _, dice_nearest = ceiling_dice(seg, nearest, sample.leaves, classes=classes)
    assert dice[classes > 0].mean() >= dice_nearest[classes > 0].mean()


@pytest.mark.parametrize("method", ["mode", "nearest"])
def test_ceiling_is_one_when_leaves_are_patch_sized(nuclei, method):
    image, mask = nuclei
    edges = np.full(mask.shape, 255, np.uint8)
    leaves = build_forest(edge_count_grid(edges, 8), mask.shape, ForestParams(length=4096))
    classes, dice = ceiling_dice(mask, serialise_mask(mask, leaves, 8, method), leaves)
    assert np.all(dice == 1.0)
