"""Serialisation: area / nearest images and mode / nearest masks against per-leaf references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apfcompile import (
    ForestParams,
    ParameterError,
    build_forest,
    ceiling_dice,
    edge_count_grid,
    edge_map,
    reconstruct,
    serialise_image,
    serialise_mask,
)
from apfcompile.core.patches import mode_patches
from apfcompile.core.reconstruct import dice_from_confusion

from . import oracle

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = [np.uint8, np.uint16, np.int16, np.float32]


def random_image(rng, shape, dtype):
    if np.dtype(dtype).kind == "f":
        return rng.normal(0, 100, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


def leaves_for(image, length, min_size, seed=0):
    """A forest driven by random edges, so leaf sizes vary."""
    rng = np.random.default_rng(seed)
    edges = np.where(rng.random(image.shape[:2]) < 0.05, 255, 0).astype(np.uint8)
    params = ForestParams(length=length, min_size=min_size)
    return build_forest(edge_count_grid(edges, min_size), image.shape[:2], params)


def random_case(h, w, c, dtype, p_log, seed):
    """A random image of that shape and dtype, its patch size and a forest over it."""
    p = 1 << p_log
    image = random_image(np.random.default_rng(seed), (h, w, c), dtype)
    return image, p, leaves_for(image, length=40, min_size=p, seed=seed)


def boxes(leaves):
    return list(zip(leaves.x1.tolist(), leaves.y1.tolist(), leaves.size.tolist()))


@SETTINGS
@given(
    h=st.integers(4, 90),
    w=st.integers(4, 90),
    c=st.sampled_from([1, 3, 16]),
    dtype=st.sampled_from(DTYPES),
    p_log=st.integers(0, 2),
    seed=st.integers(0, 2**31),
)
def test_area_is_the_rounded_float64_box_average(h, w, c, dtype, p_log, seed):
    image, p, leaves = random_case(h, w, c, dtype, p_log, seed)
    got = serialise_image(image, leaves, p, "area")
    assert got.shape == (len(leaves), p, p, c) and got.dtype == image.dtype
    for patch, (x1, y1, s) in zip(got, boxes(leaves)):
        mean = oracle.area_patch(image, x1, y1, s, p)
        if np.dtype(dtype).kind == "f":
            np.testing.assert_allclose(patch, mean.astype(np.float32), rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_array_equal(patch, np.floor(mean + 0.5).astype(dtype))


def test_area_rounds_half_up():
    image = np.array([[1, 2], [2, 2]], np.uint8)  # mean 1.75 -> 2
    leaves = build_forest(np.zeros((1, 1), np.int64), (2, 2), ForestParams(length=1, min_size=2))
    assert serialise_image(image, leaves, 1)[0, 0, 0, 0] == 2
    image = np.array([[1, 2], [1, 2]], np.uint8)  # mean 1.5 -> 2 (half up)
    assert serialise_image(image, leaves, 1)[0, 0, 0, 0] == 2
    image = np.array([[-1, -2], [-1, -2]], np.int16)  # mean -1.5 -> -1 (half up, toward +inf)
    assert serialise_image(image, leaves, 1)[0, 0, 0, 0] == -1


@SETTINGS
@given(
    h=st.integers(4, 90),
    w=st.integers(4, 90),
    c=st.sampled_from([1, 3, 4]),
    dtype=st.sampled_from(DTYPES),
    p_log=st.integers(0, 2),
    seed=st.integers(0, 2**31),
)
def test_nearest_matches_cv2_resize_per_leaf(h, w, c, dtype, p_log, seed):
    image, p, leaves = random_case(h, w, c, dtype, p_log, seed)
    got = serialise_image(image, leaves, p, "nearest")
    for patch, (x1, y1, s) in zip(got, boxes(leaves)):
        np.testing.assert_array_equal(patch, oracle.nearest_patch(image, x1, y1, s, p))


@SETTINGS
@given(
    h=st.integers(4, 70),
    w=st.integers(4, 70),
    classes=st.integers(1, 6),
    p_log=st.integers(0, 2),
    ignore=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_mode_is_the_majority_label(h, w, classes, p_log, ignore, seed):
    p = 1 << p_log
    rng = np.random.default_rng(seed)
    mask = rng.integers(0, classes, (h, w)).astype(np.uint8)
    ignore_index = None
    if ignore:
        ignore_index = 255
        mask[rng.random((h, w)) < 0.5] = 255
    leaves = leaves_for(mask, length=30, min_size=max(p, 2), seed=seed)
    got = serialise_mask(mask, leaves, p, "mode", ignore_index=ignore_index)
    fill = 0 if ignore_index is None else ignore_index
    for patch, (x1, y1, s) in zip(got, boxes(leaves)):
        want = oracle.mode_patch(mask, x1, y1, s, p, ignore_index, fill)
        np.testing.assert_array_equal(patch, want)


@SETTINGS
@given(
    h=st.integers(4, 70),
    w=st.integers(4, 70),
    classes=st.integers(1, 6),
    p_log=st.integers(0, 2),
    ignore=st.booleans(),
    dtype=st.sampled_from([np.uint8, np.uint16, np.int32]),
    seed=st.integers(0, 2**31),
)
def test_the_ceiling_from_the_votes_is_the_rebuilt_masks_dice(h, w, classes, p_log, ignore, dtype, seed):
    p = 1 << p_log
    rng = np.random.default_rng(seed)
    mask = rng.integers(0, classes, (h, w)).astype(dtype)
    mask[: h // 2, : w // 2] = classes - 1  # uniform cells as well as mixed ones
    ignore_index = None
    if ignore:
        ignore_index = 255
        mask[rng.random((h, w)) < 0.3] = 255
    leaves = leaves_for(mask, length=30, min_size=max(p, 2), seed=seed)
    fill = 0 if ignore_index is None else ignore_index
    patches, labels, confusion = mode_patches(mask, leaves, p, ignore_index, fill)
    np.testing.assert_array_equal(patches, serialise_mask(mask, leaves, p, "mode", ignore_index=ignore_index))
    want_classes, want = ceiling_dice(mask, patches, leaves, ignore_index)
    got_classes, got = dice_from_confusion(labels, confusion, ignore_index)
    np.testing.assert_array_equal(got_classes, want_classes)
    np.testing.assert_allclose(got, want)


def test_mode_in_small_passes_is_the_same(nuclei, monkeypatch):
    """Mixed cells are gathered and their votes counted in passes of bounded size: any bound
    gives the same patches and confusion."""
    import apfcompile.core.patches as patches_mod

    _, mask = nuclei
    leaves = leaves_for(mask, length=300, min_size=8)
    whole = mode_patches(mask, leaves, 4, None, 0)
    monkeypatch.setattr(patches_mod, "_MODE_CHUNK_PIXELS", 64)
    for got, want in zip(mode_patches(mask, leaves, 4, None, 0), whole):
        np.testing.assert_array_equal(got, want)


def test_mode_with_many_and_negative_labels():
    rng = np.random.default_rng(3)
    mask = rng.integers(-5, 200_000, (40, 40)).astype(np.int32)
    mask[:20] = rng.integers(-3, 3, (20, 40))
    leaves = leaves_for(mask, length=20, min_size=4)
    got = serialise_mask(mask, leaves, 2)
    for patch, (x1, y1, s) in zip(got, boxes(leaves)):
        np.testing.assert_array_equal(patch, oracle.mode_patch(mask, x1, y1, s, 2))


def test_mask_nearest_matches_cv2(nuclei):
    _, mask = nuclei
    leaves = leaves_for(mask, length=300, min_size=8)
    got = serialise_mask(mask, leaves, 8, "nearest")
    for patch, (x1, y1, s) in zip(got, boxes(leaves)):
        np.testing.assert_array_equal(patch, oracle.nearest_patch(mask, x1, y1, s, 8))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("c", [1, 3, 16])
def test_leaves_of_patch_size_round_trip_exactly(dtype, c):
    """A forest whose leaves are all p x p reproduces image and mask exactly, any dtype/channels."""
    rng = np.random.default_rng(7)
    image = random_image(rng, (48, 40, c), dtype)
    mask = rng.integers(0, 14, (48, 40)).astype(np.uint8)
    edges = np.full((48, 40), 255, np.uint8)
    leaves = build_forest(edge_count_grid(edges, 8), (48, 40), ForestParams(length=10_000, min_size=8))
    assert set(leaves.size.tolist()) == {8}
    for method in ("area", "nearest"):
        patches = serialise_image(image, leaves, 8, method)
        np.testing.assert_array_equal(reconstruct(patches, leaves, None, (48, 40)), image)
    for method in ("mode", "nearest"):
        np.testing.assert_array_equal(
            reconstruct(serialise_mask(mask, leaves, 8, method), leaves, None, (48, 40)), mask
        )


def test_real_tissue_patches(tissue):
    edges = edge_map(tissue)
    leaves = build_forest(edge_count_grid(edges, 8), tissue.shape[:2], ForestParams(length=1024))
    got = serialise_image(tissue, leaves, 8)
    assert got.shape == (len(leaves), 8, 8, 3)
    for i in np.linspace(0, len(leaves) - 1, 50).astype(int):
        x1, y1, s = boxes(leaves)[i]
        np.testing.assert_array_equal(got[i], np.floor(oracle.area_patch(tissue, x1, y1, s, 8) + 0.5))


def test_patch_size_must_fit_the_leaves():
    leaves = build_forest(np.zeros((2, 2), np.int64), (8, 8), ForestParams(length=4, min_size=4))
    with pytest.raises(ParameterError, match="patch_size"):
        serialise_image(np.zeros((8, 8), np.uint8), leaves, 8)
    with pytest.raises(ParameterError, match="power of two"):
        serialise_image(np.zeros((8, 8), np.uint8), leaves, 3)
