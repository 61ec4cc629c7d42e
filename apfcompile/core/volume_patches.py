"""Octree leaves -> patch sequences and back: every s^3 leaf becomes one p^3 patch (issue #15).

The 3-D twin of :mod:`apfcompile.core.patches`: a leaf of side ``s`` is cut into a ``p x p x p``
grid of cells of ``f^3`` voxels, ``f = s / p``; voxels past the volume's far faces are padding.

- images, ``area``: each cell's exact mean, integers summed exactly and rounded half up
  (``floor(sum / f^3 + 1/2)``, padding counting as zeros), float32 via the float64 mean; the dtype
  and channels are kept. Shapes: volume (D, H, W) or (D, H, W, C) -> (N, p, p, p, C).
- masks, ``mode``: each cell's most frequent label, ties to the smallest; padding never votes;
  with ``ignore_index``, ignore voxels vote only in a cell with nothing else; a cell with no votes
  gets ``fill``. Computed on min and max pyramids: a cell whose min equals its max is decided
  without counting, only mixed cells are gathered. The same pass yields the confusion matrix of
  the rebuilt mask against the mask, so the ceiling Dice costs no rebuild.
- :func:`reconstruct_volume`: patches painted back into their boxes by nearest upsampling.

All work is vectorised per leaf size; no Python loop runs per leaf.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, ParameterError
from .octree import OctreeLeaves
from .patches import _count_mode, _dense_labels, mean_from_sums

__all__ = ["mode_volume_patches", "reconstruct_volume", "serialise_volume"]

_MODE_CHUNK_VOXELS = 1 << 22


def _factors(leaves: OctreeLeaves, p: int) -> np.ndarray:
    if not (p >= 1 and not p & (p - 1)):
        raise ParameterError("patch_size", "a power of two", p)
    if len(leaves) and int(leaves.size.min()) < p:
        raise ParameterError("patch_size", f"<= the smallest leaf ({int(leaves.size.min())} voxels)", p)
    return (leaves.size // p).astype(np.int64)


def _padded_shape(leaves: OctreeLeaves, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The volume's shape rounded up to whole largest leaves (and every leaf's far face)."""
    big = int(leaves.size.max())
    far = (int(leaves.z2.max()), int(leaves.y2.max()), int(leaves.x2.max()))
    return tuple(max(-(-n // big) * big, f) for n, f in zip(shape[:3], far))


_HALVE_ROWS = 16  # output slices per pass: bounds the temporaries to a few slabs


def _halve3(a: np.ndarray, op, dtype=None) -> np.ndarray:
    """``op`` (np.add, np.minimum, np.maximum) over the 2 x 2 x 2 blocks of ``a``'s first three
    axes, in ``dtype`` (default ``a``'s). Odd sides are not padded: the last block along such an
    axis combines the voxels that exist (so sums count missing voxels as zeros, and min / max look
    at the voxels inside only). Works through slabs of slices: no temporary of ``a``'s size."""
    dtype = np.dtype(dtype or a.dtype)
    d = a.shape[0]
    out = np.empty((-(-d // 2), -(-a.shape[1] // 2), -(-a.shape[2] // 2)) + a.shape[3:], dtype)
    for z in range(0, out.shape[0], _HALVE_ROWS):
        slab = a[2 * z : 2 * (z + _HALVE_ROWS)]
        for axis in range(3):
            n = slab.shape[axis]
            even = [slice(None)] * slab.ndim
            odd = [slice(None)] * slab.ndim
            head = [slice(None)] * slab.ndim
            even[axis], odd[axis], head[axis] = slice(0, None, 2), slice(1, None, 2), slice(0, n // 2)
            first = slab[tuple(even)].astype(dtype)  # ceil(n / 2) along the axis
            op(first[tuple(head)], slab[tuple(odd)], out=first[tuple(head)])
            slab = first
        out[z : z + slab.shape[0]] = slab
    return out


def _gather(a: np.ndarray, z: np.ndarray, y: np.ndarray, x: np.ndarray, p: int, fill) -> np.ndarray:
    """``a[z + i, y + j, x + k]`` for ``i, j, k < p``, shape (n, p, p, p) + a.shape[3:]; positions
    past ``a``'s far faces give ``fill``."""
    steps = np.arange(p)
    idx = [(v[:, None] + steps) for v in (z, y, x)]
    inside = [i < n for i, n in zip(idx, a.shape[:3])]
    zz, yy, xx = (np.minimum(i, n - 1) for i, n in zip(idx, a.shape[:3]))
    out = a[zz[:, :, None, None], yy[:, None, :, None], xx[:, None, None, :]]
    if not all(m.all() for m in inside):
        keep = inside[0][:, :, None, None] & inside[1][:, None, :, None] & inside[2][:, None, None, :]
        out[~keep] = fill
    return out


def _sum_dtype(dtype: np.dtype, level: int) -> np.dtype:
    """Exact sums of 8^level values of ``dtype``: int32 while it holds them, else int64; float64."""
    if dtype.kind == "f":
        return np.dtype(np.float64)
    bits = dtype.itemsize * 8 - (dtype.kind == "i") + 3 * level
    return np.dtype(np.int32 if bits <= 31 else np.int64)


def serialise_volume(volume: np.ndarray, leaves: OctreeLeaves, patch_size: int = 8) -> np.ndarray:
    """``area`` patches of ``volume`` (D, H, W [, C]) for ``leaves``: (N, p, p, p, C), its dtype.

    Memory: the volume is never copied or padded; the sum pyramid holds levels of 1/8, 1/64, ...
    of its voxels (in int32 where that is exact)."""
    if volume.ndim not in (3, 4) or volume.size == 0:
        raise InputError("volume", f"expected a non-empty D x H x W [x C] array, found shape {volume.shape}")
    vol = volume[..., None] if volume.ndim == 3 else volume
    p = patch_size
    factors = _factors(leaves, p)
    out = np.zeros((len(leaves), p, p, p, vol.shape[3]), vol.dtype)
    if not len(leaves):
        return out
    level, depth = vol, 0
    for f in np.unique(factors):
        f = int(f)
        while (1 << depth) < f:  # exact sums of f^3 blocks, one level at a time
            depth += 1
            level = _halve3(level, np.add, _sum_dtype(vol.dtype, depth))
        for sel in _chunks(np.flatnonzero(factors == f), p):
            sums = _gather(level, leaves.z1[sel] // f, leaves.y1[sel] // f, leaves.x1[sel] // f, p, 0)
            out[sel] = mean_from_sums(sums, f**3, vol.dtype)
    return out


_CHUNK_CELLS = 1 << 21  # patch cells per pass: bounds the (n, p, p, p) temporaries (16 MiB of int64)


def _chunks(sel: np.ndarray, p: int):
    """``sel`` in pieces of at most ``_CHUNK_CELLS`` patch cells."""
    step = max(1, _CHUNK_CELLS // p**3)
    for start in range(0, sel.size, step):
        yield sel[start : start + step]


def mode_volume_patches(
    mask: np.ndarray,
    leaves: OctreeLeaves,
    patch_size: int = 8,
    ignore_index: int | None = None,
    fill: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``mode`` patches of a label volume (D, H, W) for ``leaves``, with the rebuilt mask's confusion.

    Returns ``(patches (N, p, p, p) in the mask's dtype, labels, confusion)``: ``confusion[i, j]``
    counts the voxels of label ``labels[j]`` whose cell's patch value is ``labels[i]`` (padding
    left out), for :func:`~apfcompile.core.reconstruct.dice_from_confusion`. Memory: uint8 masks
    are used as they are (no copy, no padding); min / max pyramids of 1/8, 1/64, ... of the voxels.
    """
    if mask.ndim != 3:
        raise InputError("mask", f"expected a D x H x W label volume, found shape {mask.shape}")
    p = patch_size
    factors = _factors(leaves, p)
    fill = (0 if ignore_index is None else ignore_index) if fill is None else fill
    out = np.full((len(leaves), p, p, p), fill, mask.dtype)
    if not len(leaves):
        return out, np.zeros(0, mask.dtype), np.zeros((0, 0), np.int64)
    labels, dense = _dense_labels(mask)
    k = labels.size
    ignore = None
    if ignore_index is not None and np.any(labels == ignore_index):
        ignore = int(np.flatnonzero(labels == ignore_index)[0])
    table = np.append(labels, fill).astype(mask.dtype)
    confusion = np.zeros((k, k), np.int64)
    diagonal = np.zeros(k + 1, np.int64)
    low, high, depth = dense, dense, 0
    shape = np.array(mask.shape, np.int64)
    for f in np.unique(factors):
        f = int(f)
        while (1 << depth) < f:
            depth += 1
            low, high = _halve3(low, np.minimum), _halve3(high, np.maximum)
        for sel in _chunks(np.flatnonzero(factors == f), p):
            _mode_cells(leaves, sel, f, p, low, high, dense, shape, k, ignore, table, out, confusion, diagonal)
    confusion[np.arange(k), np.arange(k)] += diagonal[:k]
    return out, labels, confusion


def _mode_cells(leaves, sel, f, p, low, high, dense, shape, k, ignore, table, out, confusion, diagonal) -> None:
    """:func:`mode_volume_patches` for the leaves ``sel`` of factor ``f``: their patches into
    ``out``, their votes into ``confusion`` and ``diagonal``."""
    outside = k  # what a position past the far faces reads as: it never votes
    z0, y0, x0 = leaves.z1[sel] // f, leaves.y1[sel] // f, leaves.x1[sel] // f
    lo = _gather(low, z0, y0, x0, p, 0).astype(np.int64)
    hi = _gather(high, z0, y0, x0, p, 0).astype(np.int64)
    # voxels of each cell inside the volume (cells on the far faces hold fewer than f^3)
    steps = np.arange(p) * f
    ext = [np.clip(n - (v[:, None] * f + steps), 0, f) for v, n in zip((z0, y0, x0), shape)]
    count = ext[0][:, :, None, None] * ext[1][:, None, :, None] * ext[2][:, None, None, :]
    lo[count == 0] = outside
    best = np.where(lo == outside, -1, lo)
    uniform = (lo == hi) | (count == 0)
    diagonal += np.bincount(lo[uniform].ravel(), weights=count[uniform].ravel(), minlength=k + 1).astype(np.int64)
    mixed = np.flatnonzero(~uniform.ravel())
    if mixed.size:
        leaf, cell = np.divmod(mixed, p**3)
        cz = leaves.z1[sel][leaf] + (cell // (p * p)) * f
        cy = leaves.y1[sel][leaf] + (cell // p % p) * f
        cx = leaves.x1[sel][leaf] + (cell % p) * f
        step = max(1, _MODE_CHUNK_VOXELS // max(f**3, k + 1))
        flat = best.reshape(-1)
        for start in range(0, mixed.size, step):
            part = slice(start, start + step)
            votes = _gather(dense, cz[part], cy[part], cx[part], f, 0).astype(np.int64)
            span = np.arange(f)
            far = (
                ((cz[part, None] + span) >= shape[0])[:, :, None, None]
                | ((cy[part, None] + span) >= shape[1])[:, None, :, None]
                | ((cx[part, None] + span) >= shape[2])[:, None, None, :]
            )
            votes[far] = outside
            votes = votes.reshape(-1, f**3)
            winners = _count_mode(votes, k, ignore)
            flat[mixed[part]] = winners
            pairs = np.bincount((winners[:, None] * (k + 1) + votes).ravel(), minlength=k * (k + 1))
            confusion += pairs.reshape(k, k + 1)[:, :k]
    out[sel] = table[best]


def reconstruct_volume(
    patches: np.ndarray, leaves: OctreeLeaves, shape: tuple[int, int, int], fill: int | float = 0
) -> np.ndarray:
    """(D, H, W) + patches.shape[4:] from ``patches`` (N, p, p, p, ...) painted into their boxes
    by nearest upsampling; ``fill`` where no leaf covers a voxel. Equal to a per-leaf loop."""
    n, p = patches.shape[0], patches.shape[1]
    if len(leaves) != n:
        raise ParameterError("leaves", f"{n} leaves, one per patch", len(leaves))
    extra = patches.shape[4:]
    d, h, w = (int(s) for s in shape)
    if not n:
        return np.full((d, h, w) + extra, fill, patches.dtype)
    full = _padded_shape(leaves, (d, h, w))
    out = np.full(full + extra, fill, patches.dtype)
    factors = _factors(leaves, p)
    for f in np.unique(factors):
        f = int(f)
        s = f * p
        sel = np.flatnonzero(factors == f)
        blocks = patches[sel]
        if f > 1:
            blocks = blocks.repeat(f, axis=1).repeat(f, axis=2).repeat(f, axis=3)
        view = out.reshape((full[0] // s, s, full[1] // s, s, full[2] // s, s) + extra)
        view[leaves.z1[sel] // s, :, leaves.y1[sel] // s, :, leaves.x1[sel] // s, :] = blocks
    return out[:d, :h, :w]
