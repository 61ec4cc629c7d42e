"""Transforms in token space (issue #13): the 8 flips and rotations of a compiled sample equal
compiling the transformed image (where no split priorities tie), masks move with images, and the
draws are a pure function of (seed, epoch, sample)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from apfcompile import CompileConfig, ForestParams, build_forest, compile_dataset, serialise_image, serialise_mask
from apfcompile import reconstruct as reconstruct_np
from loaders import APFDataset, collate
from loaders.transforms import Compose, Dihedral, Normalize, Window, dihedral

from . import builders


def _grid_op(a: np.ndarray, op: int) -> np.ndarray:
    """The dihedral op on an (H, W, ...) array, as ``loaders.transforms.dihedral`` defines it."""
    if op >= 4:
        a = a[:, ::-1]
    return np.ascontiguousarray(np.rot90(a, op % 4))


def _item(image, mask, leaves, p, canvas):
    return {
        "image": torch.from_numpy(serialise_image(image, leaves, p).transpose(0, 3, 1, 2).copy()),
        "mask": torch.from_numpy(serialise_mask(mask, leaves, p)),
        "box": torch.from_numpy(np.stack([leaves.x1, leaves.x2, leaves.y1, leaves.y2], 1).astype(np.int64)),
        "center": torch.from_numpy(np.stack([leaves.cx, leaves.cy], 1).astype(np.float32)),
        "size": torch.from_numpy(leaves.size.astype(np.int64)),
        "valid": torch.ones(len(leaves), dtype=torch.bool),
        "canvas": torch.tensor(canvas),
        "id": 0,
    }


@settings(max_examples=60, deadline=None)
@given(
    tile=st.sampled_from([1, 2, 4]),
    tiles=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    length=st.integers(1, 64),
    op=st.integers(0, 7),
    seed=st.integers(0, 2**31),
)
def test_transforming_the_compiled_sample_equals_compiling_the_transformed_image(tile, tiles, length, op, seed):
    """Canvases tiled by power-of-two roots (one square root when tiles = (1, 1))."""
    p = 4
    rng = np.random.default_rng(seed)
    gh, gw = tile * tiles[0], tile * tiles[1]
    if gh * gw > 60:
        gh, gw = tile, tile
    length = max(length, (gh // tile) * (gw // tile))  # at least one leaf per root tile
    # distinct powers of two per cell: every node's edge sum is distinct, so no priority ties
    counts = (2 ** rng.permutation(gh * gw)).reshape(gh, gw).astype(np.int64)
    image = rng.integers(0, 255, (gh * p, gw * p, 3)).astype(np.uint8)
    mask = rng.integers(0, 4, (gh * p, gw * p)).astype(np.uint8)
    params = ForestParams(length=length, min_size=p, tile_size=tile * p)
    leaves = build_forest(counts, (gh * p, gw * p), params)
    got = dihedral(_item(image, mask, leaves, p, (gh * p, gw * p)), op, tile_size=tile * p)

    t_counts, t_image, t_mask = _grid_op(counts, op), _grid_op(image, op), _grid_op(mask, op)
    t_leaves = build_forest(t_counts, t_image.shape[:2], params)
    want = _item(t_image, t_mask, t_leaves, p, t_image.shape[:2])
    for name in ("box", "size", "image", "mask", "canvas"):
        assert torch.equal(got[name], want[name]), name
    assert torch.allclose(got["center"], want["center"])


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    root = tmp_path_factory.mktemp("tf")
    src = builders.btcv(root / "btcv", cases=1)
    compile_dataset(CompileConfig.from_options(src, root / "ds", length=64, workers=1, resolution=128, fit="pad"))
    return root / "ds"


def test_a_canvas_its_root_overhangs_is_refused():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 9, (3, 2))
    leaves = build_forest(counts, (12, 8), ForestParams(length=4, min_size=4))  # root 16 > 12 x 8
    item = _item(np.zeros((12, 8, 1), np.uint8), np.zeros((12, 8), np.uint8), leaves, 4, (12, 8))
    with pytest.raises(ValueError, match="leaves extend past the 12 x 8 canvas"):
        dihedral(item, 1)


def test_masks_move_with_images_on_a_real_dataset(ct):
    plain = APFDataset(ct, length=64, view=0)
    for op in range(8):
        moved = APFDataset(ct, length=64, view=0, transform=lambda item, op=op: dihedral(item, op))
        a, b = plain[15], moved[15]
        valid_a, valid_b = a["valid"].numpy(), b["valid"].numpy()
        canvas = tuple(b["canvas"].tolist())
        for name in ("image", "mask"):
            x = a[name].numpy()
            y = b[name].numpy()
            if name == "image":
                x, y = x[:, 0], y[:, 0]
            full_a = reconstruct_np(x[valid_a], a["box"].numpy()[valid_a], None, tuple(a["canvas"].tolist()))
            full_b = reconstruct_np(y[valid_b], b["box"].numpy()[valid_b], None, canvas)
            np.testing.assert_array_equal(_grid_op(full_a, op), full_b)


def test_draws_depend_on_seed_epoch_and_sample_only(ct):
    def ops(workers: int, epoch: int) -> list:
        t = Dihedral(seed=5)
        data = APFDataset(ct, length=64, transform=t)
        data.set_epoch(epoch)
        loader = DataLoader(data, batch_size=6, num_workers=workers, collate_fn=collate)
        return [tuple(b["canvas"].flatten().tolist()) + tuple(b["box"][:, 0].flatten().tolist()) for b in loader]

    assert ops(0, 1) == ops(2, 1)  # the same draws in worker processes
    assert ops(0, 1) != ops(0, 2)
    t = Dihedral(seed=5)
    assert [t.op(i) for i in range(20)] == [Dihedral(seed=5).op(i) for i in range(20)]
    assert len({t.op(i) for i in range(40)}) == 8


def test_intensity_transforms(ct):
    item = APFDataset(ct, length=64, view=0, transform=Compose(Window(-175, 250), Dihedral(0, ops=[0])))[15]
    assert item["image"].dtype == torch.float32 and 0 <= item["image"].min() and item["image"].max() <= 1
    raw = APFDataset(ct, length=64, view=0)[15]
    norm = Normalize([-300.0], [400.0])(raw)
    assert torch.allclose(norm["image"], (raw["image"].float() + 300) / 400)
    with pytest.raises(ValueError, match="transform"):
        APFDataset(ct, transform="flip")
