"""3-D patches (issue #15): area means and majority labels per cell against per-leaf loops,
exact reconstruction, and the ceiling Dice read off the votes."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apfcompile.core.forest import ForestParams
from apfcompile.core.octree import build_octree, edge_count_volume
from apfcompile.core.reconstruct import dice, dice_from_confusion
from apfcompile.core.volume_patches import mode_volume_patches, reconstruct_volume, serialise_volume

from . import oracle

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def leaves_for(shape, m, length, seed):
    rng = np.random.default_rng(seed)
    edges = np.where(rng.random(shape) < 0.05, 255, 0).astype(np.uint8)
    return build_octree(edge_count_volume(edges, m), shape, ForestParams(min_size=m, length=length))


def boxes(leaves):
    return zip(leaves.x1.tolist(), leaves.y1.tolist(), leaves.z1.tolist(), leaves.size.tolist())


@SETTINGS
@given(
    shape=st.tuples(st.integers(2, 20), st.integers(2, 20), st.integers(2, 20)),
    channels=st.sampled_from([None, 2]),
    dtype=st.sampled_from([np.uint8, np.int16, np.float32]),
    p_log=st.integers(0, 1),
    seed=st.integers(0, 2**31),
)
def test_area_is_the_rounded_float64_cell_mean(shape, channels, dtype, p_log, seed):
    p = 1 << p_log
    rng = np.random.default_rng(seed)
    full = shape if channels is None else shape + (channels,)
    if np.dtype(dtype).kind == "f":
        volume = rng.normal(0, 100, full).astype(dtype)
    else:
        info = np.iinfo(dtype)
        volume = rng.integers(info.min, info.max, full, endpoint=True).astype(dtype)
    leaves = leaves_for(shape, max(p, 2), 40, seed)
    got = serialise_volume(volume, leaves, p)
    assert got.shape == (len(leaves), p, p, p, channels or 1) and got.dtype == volume.dtype
    for patch, (x1, y1, z1, s) in zip(got, boxes(leaves)):
        want = oracle.area_patch3(volume, x1, y1, z1, s, p)
        want = want.reshape(patch.shape)
        if volume.dtype.kind == "f":
            np.testing.assert_allclose(patch, want.astype(volume.dtype), rtol=1e-6)
        else:
            np.testing.assert_array_equal(patch, np.floor(want + 0.5).astype(volume.dtype))


@SETTINGS
@given(
    shape=st.tuples(st.integers(2, 18), st.integers(2, 18), st.integers(2, 18)),
    classes=st.integers(1, 5),
    ignore=st.booleans(),
    p_log=st.integers(0, 1),
    seed=st.integers(0, 2**31),
)
def test_mode_is_the_majority_label_and_the_ceiling_is_the_rebuilt_dice(shape, classes, ignore, p_log, seed):
    p = 1 << p_log
    rng = np.random.default_rng(seed)
    mask = rng.integers(0, classes, shape).astype(np.uint8)
    mask[: shape[0] // 2] = classes - 1  # uniform cells too
    ignore_index = None
    if ignore:
        ignore_index = 255
        mask[rng.random(shape) < 0.3] = 255
    leaves = leaves_for(shape, max(p, 2), 30, seed)
    fill = 0 if ignore_index is None else ignore_index
    got, labels, confusion = mode_volume_patches(mask, leaves, p, ignore_index)
    for patch, (x1, y1, z1, s) in zip(got, boxes(leaves)):
        np.testing.assert_array_equal(patch, oracle.mode_patch3(mask, x1, y1, z1, s, p, ignore_index, fill))
    rebuilt = reconstruct_volume(got, leaves, shape, fill)
    want_classes, want = dice(rebuilt, mask, None, ignore_index)
    got_classes, ceiling = dice_from_confusion(labels, confusion, ignore_index)
    np.testing.assert_array_equal(got_classes, want_classes)
    np.testing.assert_allclose(ceiling, want)


def test_reconstruct_equals_a_per_leaf_loop_and_is_exact_at_p_cubed():
    shape = (13, 20, 9)
    leaves = leaves_for(shape, 2, 60, 3)
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 9, (len(leaves), 2, 2, 2)).astype(np.uint8)
    got = reconstruct_volume(patches, leaves, shape, fill=7)
    want = np.full((16, 32, 16), 7, np.uint8)
    for patch, (x1, y1, z1, s) in zip(patches, boxes(leaves)):
        f = s // 2
        want[z1 : z1 + s, y1 : y1 + s, x1 : x1 + s] = patch.repeat(f, 0).repeat(f, 1).repeat(f, 2)
    np.testing.assert_array_equal(got, want[:13, :20, :9])
    # every leaf p^3 (p = min leaf): masks rebuild exactly
    mask = rng.integers(0, 4, shape).astype(np.uint8)
    grid = build_octree(np.zeros((7, 10, 5), np.int64), shape, ForestParams(min_size=2, length=10**6))
    assert set(grid.size.tolist()) == {2}
    patches, _, _ = mode_volume_patches(mask, grid, 2)
    np.testing.assert_array_equal(reconstruct_volume(patches, grid, shape), mask)


def test_a_real_ct_volume_end_to_end():
    """The bundled CT as one sequence: leaves tile it, the ceiling is the rebuilt mask's Dice, and
    the gradient edges mark as many voxels as the per-slice Canny."""
    from apfcompile.core.patchify import PatchParams
    from apfcompile.core.patchify_volume import patchify_volume, volume_edges
    from apfcompile.demo import sample_path
    from apfcompile.inputs.readers import read_array

    vol = np.ascontiguousarray(read_array(sample_path("ct_abdomen.nii.gz")).transpose(2, 1, 0))
    seg = np.ascontiguousarray(read_array(sample_path("ct_abdomen_seg.nii.gz")).transpose(2, 1, 0)).astype(np.uint8)
    params = PatchParams.make(4, length=1500, window=(-175, 250))
    for edges in ("slices", "gradient"):
        v = patchify_volume(vol, seg, params, edges=edges)
        assert len(v.leaves) <= 1500 and v.patches.shape == (len(v.leaves), 4, 4, 4, 1)
        covered = (v.leaves.size.astype(np.int64) ** 3).sum()
        assert covered >= np.prod(vol.shape) and v.gamma > 1
        rebuilt = reconstruct_volume(v.mask, v.leaves, vol.shape)
        classes, want = dice(rebuilt, seg)
        np.testing.assert_array_equal(v.ceiling[0], classes)
        np.testing.assert_allclose(v.ceiling[1], want)
    slices, gradient = volume_edges(vol, params, "slices"), volume_edges(vol, params, "gradient")
    assert abs(int(np.count_nonzero(gradient)) - int(np.count_nonzero(slices))) <= 0.01 * np.count_nonzero(slices)


def test_gradient_edges_streamed_in_slabs_equal_the_whole_volume_computation():
    """The slab-by-slab gradient (bounded memory) marks exactly the voxels the plain whole-volume
    computation marks: blur in the plane and along z, np.gradient, the k-th largest magnitude."""
    import cv2

    from apfcompile.core import patchify_volume as pv
    from apfcompile.core.edges import edge_map
    from apfcompile.core.octree import edge_count_volume
    from apfcompile.core.patchify import PatchParams
    from apfcompile.demo import sample_path
    from apfcompile.inputs.readers import read_array

    vol = np.ascontiguousarray(np.moveaxis(read_array(sample_path("ct_abdomen.nii.gz")), 2, 0))
    params = PatchParams.make(4, length=1500, window=(-175, 250))
    grey = list(pv._grey_slices(vol, params))
    marked = sum(int(np.count_nonzero(edge_map(s, params.edges))) for s in grey)
    smooth = np.stack([cv2.GaussianBlur(s.astype(np.float32), (3, 3), 0) for s in grey])
    taps = cv2.getGaussianKernel(3, 0).ravel().astype(np.float32)
    padded = np.pad(smooth, ((1, 1), (0, 0), (0, 0)), mode="edge")
    smooth = sum(t * padded[i : i + smooth.shape[0]] for i, t in enumerate(taps))
    gz, gy, gx = np.gradient(smooth)
    magnitude = np.sqrt(gz * gz + gy * gy + gx * gx)
    cut = np.sort(magnitude.ravel())[-marked]
    want = np.where((magnitude >= cut) & (magnitude > 0), 255, 0).astype(np.uint8)
    np.testing.assert_array_equal(pv.volume_edges(vol, params, "gradient"), want)
    np.testing.assert_array_equal(pv.edge_counts(vol, params, "gradient"), edge_count_volume(want, 4))
