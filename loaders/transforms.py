"""Transforms in token space, applied where the reading happens (``transform=`` of the datasets).

:class:`Dihedral` applies one of the 8 flips and 90-degree rotations of the square to a sample *as
compiled*: every patch is flipped/rotated, every box and centre is mapped on the canvas (which turns
from H x W to W x H for odd rotations), and the sequence is sorted back into Z-order. Where every
leaf lies inside the canvas (a square power-of-two canvas, ``--resolution 512``; or tiles that
divide it), the leaves of the quadtree map onto leaves of the transformed image's quadtree, so this
is exact: on an image whose split priorities have no ties, it equals compiling the transformed image
(tested). Elsewhere (a root tile larger than the canvas) it refuses. Images and masks move together
by construction. The choice is a pure function of ``(seed, epoch, sample id)``: the same for any
worker count, and reproducible.

:class:`Window` and :class:`Normalize` are intensity transforms (CT window to float; per-channel
mean/std); the datasets' ``normalize=`` does the latter with the compile-time statistics.

Every transform takes an item or a batch (the dicts the datasets yield) and returns the same kind.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from formats.morton import morton_encode

__all__ = ["Compose", "Dihedral", "Normalize", "Window", "dihedral"]


def _is_batch(sample: dict) -> bool:
    return sample["valid"].dim() == 2


def _one(sample: dict, i: int) -> dict:
    """Sample ``i`` of a batch, as views."""
    return {
        k: (v[i] if isinstance(v, torch.Tensor) and v.dim() else v[i] if isinstance(v, list) else v)
        for k, v in sample.items()
    }


def dihedral(item: dict, op: int, tile_size: int | None = None) -> dict:
    """Item ``item`` under dihedral op ``op`` in 0..7: ``op % 4`` counter-clockwise quarter turns
    (``np.rot90``'s sense) after a left-right flip when ``op >= 4``. Returns a new item; invalid
    (padding) rows stay last and unchanged. ``tile_size``: the compile's ``--tile-size`` (None: one
    root tile), which the Z-order of the leaves follows."""
    if not 0 <= op < 8:
        raise ValueError(f"op: expected 0..7, found {op}")
    if item["box"].shape[-1] != 4:
        raise ValueError(
            "dihedral: expected 2-D items (box of 4 columns), found volume items (--mode volume); "
            "flips and rotations of octree sequences are not supported yet"
        )
    out = dict(item)
    h, w = int(item["canvas"][0]), int(item["canvas"][1])
    valid = item["valid"]
    inside = (item["box"][valid][:, 1] <= w).all() and (item["box"][valid][:, 3] <= h).all()
    if not bool(inside):
        raise ValueError(
            f"dihedral: leaves extend past the {h} x {w} canvas (its root tile is larger), so a flip or "
            "rotation is no quadtree of the same image; compile with a square power-of-two --resolution "
            "or a --tile-size that divides the canvas"
        )
    box = item["box"].clone()
    center = item["center"].clone()
    image, mask = item["image"], item.get("mask")
    if op >= 4:  # x -> W - x
        box[:, 0], box[:, 1] = w - item["box"][:, 1], w - item["box"][:, 0]
        center[:, 0] = w - item["center"][:, 0]
        image = image.flip(-1)
        mask = None if mask is None else mask.flip(-1)
    for _ in range(op % 4):  # (y, x) -> (W - x, y) on a canvas that becomes W x H
        x1, x2, y1, y2 = box.unbind(1)
        box = torch.stack([y1, y2, w - x2, w - x1], 1)
        center = torch.stack([center[:, 1], w - center[:, 0]], 1)
        image = image.rot90(1, (-2, -1))
        mask = None if mask is None else mask.rot90(1, (-2, -1))
        h, w = w, h
    box[~valid] = item["box"][~valid]
    center[~valid] = item["center"][~valid]
    order = _zorder(box, valid, item["size"], tile_size)
    out["box"], out["center"] = box[order], center[order]
    out["image"] = image[order]
    if mask is not None:
        out["mask"] = mask[order]
    for name in ("size", "valid"):
        out[name] = item[name][order]
    out["canvas"] = torch.tensor([h, w], dtype=item["canvas"].dtype)
    if "original" in item and op % 2:
        out["original"] = item["original"].flip(0)
        out["scale"] = item["scale"].flip(0)
    return out


def _zorder(box: torch.Tensor, valid: torch.Tensor, size: torch.Tensor, tile_size: int | None) -> torch.Tensor:
    """Row order that sorts valid leaves into Z-order (tiles row-major, then Morton), padding last."""
    x1, y1 = box[:, 0].numpy().astype(np.int64), box[:, 2].numpy().astype(np.int64)
    ok = valid.numpy()
    sizes = size.numpy()[ok]
    cell = int(sizes.min()) if sizes.size else 1
    if tile_size:
        ty, tx = y1 // tile_size, x1 // tile_size
        local = morton_encode((y1 % tile_size) // cell, (x1 % tile_size) // cell)
        keys = (ty, tx, local)
    else:
        keys = (morton_encode(y1 // cell, x1 // cell),)
    order = np.lexsort(tuple(reversed(keys)) + (~ok,))  # lexsort: last key first
    return torch.from_numpy(order)


class Dihedral:
    """A seeded random dihedral op per sample (``ops``: the allowed ones, default all 8).

    ``set_epoch`` is called by the datasets' ``set_epoch``; the op of sample ``id`` in epoch ``e``
    is drawn from ``numpy.random.default_rng((seed, e, id))``."""

    def __init__(self, seed: int = 0, ops: Sequence[int] = range(8), tile_size: int | None = None) -> None:
        self.seed, self.ops, self.tile_size, self.epoch = int(seed), tuple(int(o) for o in ops), tile_size, 0
        if not self.ops or any(not 0 <= o < 8 for o in self.ops):
            raise ValueError(f"ops: expected values in 0..7, found {list(ops)}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def op(self, sample_id: int) -> int:
        rng = np.random.default_rng((self.seed, self.epoch, int(sample_id)))
        return self.ops[int(rng.integers(len(self.ops)))]

    def __call__(self, sample: dict) -> dict:
        if not _is_batch(sample):
            return dihedral(sample, self.op(int(sample["id"])), self.tile_size)
        items = [
            dihedral(_one(sample, i), self.op(int(sample["id"][i])), self.tile_size)
            for i in range(sample["valid"].shape[0])
        ]
        out = dict(sample)
        for name, value in items[0].items():
            if isinstance(value, torch.Tensor):
                out[name] = torch.stack([it[name] for it in items])
        return out


class Window:
    """CT window to float: ``clip(image, lo, hi)`` scaled to [0, 1] (float32)."""

    def __init__(self, lo: float, hi: float) -> None:
        if not hi > lo:
            raise ValueError(f"window: expected lo < hi, found ({lo}, {hi})")
        self.lo, self.hi = float(lo), float(hi)

    def __call__(self, sample: dict) -> dict:
        out = dict(sample)
        out["image"] = ((sample["image"].float().clamp(self.lo, self.hi) - self.lo) / (self.hi - self.lo)).float()
        return out


class Normalize:
    """Per-channel ``(image - mean) / std`` as float32 (e.g. ``loaders.normalization(path)``)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.as_tensor(np.asarray(mean, np.float32)).reshape(-1, 1, 1)
        self.std = torch.as_tensor(np.asarray(std, np.float32)).reshape(-1, 1, 1)

    def __call__(self, sample: dict) -> dict:
        out = dict(sample)
        out["image"] = (sample["image"].float() - self.mean) / self.std
        return out


class Compose:
    """Transforms applied in order; ``set_epoch`` reaches every one that has it."""

    def __init__(self, *transforms) -> None:
        self.transforms = transforms

    def set_epoch(self, epoch: int) -> None:
        for t in self.transforms:
            if hasattr(t, "set_epoch"):
                t.set_epoch(epoch)

    def __call__(self, sample: dict) -> dict:
        for t in self.transforms:
            sample = t(sample)
        return sample
