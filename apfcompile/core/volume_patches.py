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
from .patches import _count_mode, _dense_labels, _index_dtype, mean_from_sums

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


def _blocks(a: np.ndarray, z: np.ndarray, y: np.ndarray, x: np.ndarray, p: int) -> np.ndarray:
    """``a[z + i, y + j, x + k]`` for ``i, j, k < p`` where z, y, x and a's first three sides are
    multiples of p: shape (n, p, p, p) + a.shape[3:]."""
    d, h, w = a.shape[:3]
    view = a.reshape((d // p, p, h // p, p, w // p, p) + a.shape[3:])
    return view[z // p, :, y // p, :, x // p, :]


def _halve3_sum(a: np.ndarray, dtype) -> np.ndarray:
    return (
        a[0::2, 0::2, 0::2].astype(dtype)
        + a[0::2, 0::2, 1::2]
        + a[0::2, 1::2, 0::2]
        + a[0::2, 1::2, 1::2]
        + a[1::2, 0::2, 0::2]
        + a[1::2, 0::2, 1::2]
        + a[1::2, 1::2, 0::2]
        + a[1::2, 1::2, 1::2]
    )


def serialise_volume(volume: np.ndarray, leaves: OctreeLeaves, patch_size: int = 8) -> np.ndarray:
    """``area`` patches of ``volume`` (D, H, W [, C]) for ``leaves``: (N, p, p, p, C), its dtype."""
    if volume.ndim not in (3, 4) or volume.size == 0:
        raise InputError("volume", f"expected a non-empty D x H x W [x C] array, found shape {volume.shape}")
    vol = volume[..., None] if volume.ndim == 3 else volume
    p = patch_size
    factors = _factors(leaves, p)
    out = np.zeros((len(leaves), p, p, p, vol.shape[3]), vol.dtype)
    if not len(leaves):
        return out
    full = _padded_shape(leaves, vol.shape)
    if full != vol.shape[:3]:
        padded = np.zeros(full + vol.shape[3:], vol.dtype)
        padded[: vol.shape[0], : vol.shape[1], : vol.shape[2]] = vol
        vol = padded
    wide = np.float64 if vol.dtype.kind == "f" else np.int64
    level, f_level = vol, 1
    for f in np.unique(factors):
        f = int(f)
        while f_level < f:  # exact sums of f^3 blocks, one level at a time
            level = _halve3_sum(level, wide)
            f_level *= 2
        sel = np.flatnonzero(factors == f)
        sums = _blocks(level, leaves.z1[sel] // f, leaves.y1[sel] // f, leaves.x1[sel] // f, p)
        out[sel] = mean_from_sums(sums, f**3, vol.dtype)
    return out


def _halve3_with(op, a: np.ndarray) -> np.ndarray:
    """``op`` (np.minimum / np.maximum) over the 2 x 2 x 2 blocks of ``a`` (even sides)."""
    parts = [a[i::2, j::2, k::2] for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    out = parts[0]
    for part in parts[1:]:
        out = op(out, part)
    return out


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
    left out), for :func:`~apfcompile.core.reconstruct.dice_from_confusion`.
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
    outside = k
    ignore = None
    if ignore_index is not None and np.any(labels == ignore_index):
        ignore = int(np.flatnonzero(labels == ignore_index)[0])
    full = _padded_shape(leaves, mask.shape)
    if full == mask.shape:
        padded = dense
    else:
        padded = np.full(full, outside, _index_dtype(k))
        padded[: mask.shape[0], : mask.shape[1], : mask.shape[2]] = dense
    table = np.append(labels, fill).astype(mask.dtype)
    confusion = np.zeros((k, k), np.int64)
    diagonal = np.zeros(k + 1, np.int64)
    low, high, f_level = padded, padded, 1
    span_cache: dict[int, np.ndarray] = {}
    for f in np.unique(factors):
        f = int(f)
        while f_level < f:
            low, high = _halve3_with(np.minimum, low), _halve3_with(np.maximum, high)
            f_level *= 2
        sel = np.flatnonzero(factors == f)
        z0, y0, x0 = leaves.z1[sel] // f, leaves.y1[sel] // f, leaves.x1[sel] // f
        lo = _blocks(low, z0, y0, x0, p).astype(np.int64)
        hi = _blocks(high, z0, y0, x0, p)
        best = np.where(lo == outside, -1, lo)
        uniform = lo.ravel() == hi.ravel()
        diagonal += f**3 * np.bincount(lo.ravel()[uniform], minlength=k + 1)
        mixed = np.flatnonzero(~uniform)
        if mixed.size:
            leaf, cell = np.divmod(mixed, p**3)
            cz = leaves.z1[sel][leaf] + (cell // (p * p)) * f
            cy = leaves.y1[sel][leaf] + (cell // p % p) * f
            cx = leaves.x1[sel][leaf] + (cell % p) * f
            span = span_cache.setdefault(f, np.arange(f))
            step = max(1, _MODE_CHUNK_VOXELS // max(f**3, k + 1))
            flat = best.reshape(-1)
            for start in range(0, mixed.size, step):
                part = slice(start, start + step)
                voxels = padded[
                    (cz[part, None] + span)[:, :, None, None],
                    (cy[part, None] + span)[:, None, :, None],
                    (cx[part, None] + span)[:, None, None, :],
                ]
                votes = voxels.reshape(-1, f**3).astype(np.int64)
                winners = _count_mode(votes, k, ignore)
                flat[mixed[part]] = winners
                pairs = np.bincount((winners[:, None] * (k + 1) + votes).ravel(), minlength=k * (k + 1))
                confusion += pairs.reshape(k, k + 1)[:, :k]
        out[sel] = table[best]
    confusion[np.arange(k), np.arange(k)] += diagonal[:k]
    return out, labels, confusion


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
