"""One volume through the 3-D core: edges -> octree -> p^3 patch sequence (+ mask patches, ceiling).

The 3-D twin of :func:`~apfcompile.core.patchify` (issue #15). Volumes are (D, H, W [, C]) in
voxels, axis 0 the slice axis. Edges, two ways (``edges=``):

- ``"slices"`` (the default): the 2-D rule on every slice (window or percentile stretch, blur, Canny;
  :func:`~apfcompile.core.edges.edge_map`), stacked. Without a fixed window the percentile
  stretch is taken over the whole volume, so every slice is mapped alike;
- ``"gradient"``: the magnitude of the 3-D gradient of the Gaussian-blurred volume (same window
  and blur, the blur applied along all three axes), thresholded at the value that marks as many
  voxels as the slice-wise Canny does (equal edge density, so the two differ only in where). In
  ``benchmarks/bench_dims.py`` it scored a higher ceiling Dice on a real CT (+0.02-0.03) and a
  lower one on a real MR (-0.08-0.12), so ``slices`` is the default; it costs a Canny pass and
  two gradient passes, all streamed slab by slab.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from ..errors import InputError
from .edges import edge_count_grid, edge_map, to_grey, to_uint8
from .octree import OctreeLeaves, build_octree, sum_slice_counts
from .patchify import PatchParams
from .reconstruct import dice_from_confusion
from .volume_patches import mode_volume_patches, serialise_volume

__all__ = ["PatchedVolume", "VolumeEdges", "edge_counts", "patchify_volume", "volume_edges"]

VolumeEdges = Literal["slices", "gradient"]


@dataclass(frozen=True)
class PatchedVolume:
    """A volume's sequence: row i of every array <-> leaf i (3-D Morton order).

    patches: (N, p, p, p, C) in the volume's dtype; mask: (N, p, p, p) or None; gamma: uniform
    p^3-grid patches over the volume / N; ceiling: (classes, per-class Dice) of the mask rebuilt
    from ``mask`` against the mask, or None.
    """

    leaves: OctreeLeaves
    patches: np.ndarray
    mask: np.ndarray | None
    gamma: float
    ceiling: tuple[np.ndarray, np.ndarray] | None


def _window(volume: np.ndarray, params: PatchParams) -> tuple[float, float] | None:
    """The edge window: the fixed one, else one percentile stretch over the whole volume (so that
    every slice maps alike); None for uint8 volumes, which need no mapping."""
    e = params.edges
    if e.window is not None or volume.dtype == np.uint8:
        return e.window
    grey = to_grey(volume.reshape((-1,) + volume.shape[2:]), e.channel).reshape(-1)
    lo, hi = np.percentile(grey[:: max(1, grey.size // (1 << 20))], e.percentiles)
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def _grey_slices(volume: np.ndarray, params: PatchParams):
    """uint8 grey slices, one at a time: the window (see :func:`_window`) of every slice."""
    window, e = _window(volume, params), params.edges
    for s in volume:
        yield to_uint8(to_grey(s, e.channel), window, e.percentiles)


def volume_edges(volume: np.ndarray, params: PatchParams, method: VolumeEdges = "slices") -> np.ndarray:
    """0/255 uint8 edge volume (D, H, W) of ``volume`` by ``method`` (see the module docstring),
    assembled whole: for inspection and tests (:func:`edge_counts` never holds it)."""
    if method == "slices":
        return np.stack([edge_map(s, params.edges) for s in _grey_slices(volume, params)])
    cut = _gradient_cut(volume, params)
    return np.concatenate([_marked(m, cut) for _, m in _magnitude_slabs(volume, params)])


def _marked(magnitude: np.ndarray, cut: float | None) -> np.ndarray:
    if cut is None:
        return np.zeros(magnitude.shape, np.uint8)
    return np.where((magnitude >= cut) & (magnitude > 0), 255, 0).astype(np.uint8)


_SLAB = 8  # slices of gradient magnitude computed at a time


def _magnitude_slabs(volume: np.ndarray, params: PatchParams):
    """``(z0, magnitude)`` for slabs of up to ``_SLAB`` slices: the 3-D gradient magnitude (float32)
    of the volume blurred in the plane (OpenCV) and along z (the same Gaussian taps, edge slices
    repeated), with central differences inside and one-sided ones on the faces, as
    ``np.gradient`` takes them; computed from the slices a slab needs, never the whole volume."""
    e = params.edges
    window = _window(volume, params)
    d = volume.shape[0]
    r = e.blur // 2 if e.blur > 1 else 0
    taps = cv2.getGaussianKernel(e.blur, 0).ravel().astype(np.float32) if e.blur > 1 else np.ones(1, np.float32)
    cache: dict[int, np.ndarray] = {}

    def flat(z: int) -> np.ndarray:  # one slice, windowed and blurred in the plane
        z = min(max(z, 0), d - 1)
        if z not in cache:
            g = to_uint8(to_grey(volume[z], e.channel), window, e.percentiles).astype(np.float32)
            cache[z] = cv2.GaussianBlur(g, (e.blur, e.blur), 0) if e.blur > 1 else g
        return cache[z]

    def smooth(z: int) -> np.ndarray:  # blurred along z too
        out = 0
        for i, t in enumerate(taps):
            out = out + t * flat(z + i - r)
        return out

    for z0 in range(0, d, _SLAB):
        z1 = min(d, z0 + _SLAB)
        lo, hi = max(0, z0 - 1), min(d, z1 + 1)
        sm = np.stack([smooth(z) for z in range(lo, hi)])
        for z in [k for k in cache if k < lo - r - 1]:
            del cache[z]
        gz = np.empty((z1 - z0,) + sm.shape[1:], np.float32)
        for j, z in enumerate(range(z0, z1)):
            k = z - lo
            if d < 2:
                gz[j] = 0
            elif z == 0:
                gz[j] = sm[k + 1] - sm[k]
            elif z == d - 1:
                gz[j] = sm[k] - sm[k - 1]
            else:
                gz[j] = (sm[k + 1] - sm[k - 1]) / 2.0
        own = sm[z0 - lo : z0 - lo + (z1 - z0)]
        gy = np.gradient(own, axis=1) if own.shape[1] > 1 else np.zeros_like(own)
        gx = np.gradient(own, axis=2) if own.shape[2] > 1 else np.zeros_like(own)
        yield z0, np.sqrt(gz * gz + gy * gy + gx * gx)


def _gradient_cut(volume: np.ndarray, params: PatchParams) -> float | None:
    """The magnitude at or above which as many voxels are marked as the per-slice Canny marks
    (the k-th largest magnitude, k = that count), from the top-k of each slab; None: no edges."""
    marked = sum(int(np.count_nonzero(edge_map(s, params.edges))) for s in _grey_slices(volume, params))
    if marked == 0:
        return None
    top = np.zeros(0, np.float32)
    for _, magnitude in _magnitude_slabs(volume, params):
        values = np.concatenate([top, magnitude.ravel()])
        if values.size > marked:
            values.partition(values.size - marked)  # in place: no third copy
            values = values[values.size - marked :].copy()
        top = values
    return float(top.min())


def edge_counts(volume: np.ndarray, params: PatchParams, method: VolumeEdges = "slices") -> np.ndarray:
    """Edge voxels per ``min_size``^3 cell (:func:`~apfcompile.core.octree.edge_count_volume`),
    streaming either way: one slice (``slices``) or one slab (``gradient``, two passes: the cut,
    then the counts) at a time, never the edge volume."""
    m = params.forest.min_size
    if method == "slices":
        planes = [edge_count_grid(edge_map(s, params.edges), m) for s in _grey_slices(volume, params)]
    elif method == "gradient":
        cut = _gradient_cut(volume, params)
        planes = [edge_count_grid(edge, m) for _, mag in _magnitude_slabs(volume, params) for edge in _marked(mag, cut)]
    else:
        raise InputError("edges", f"expected 'slices' or 'gradient', found {method!r}")
    return sum_slice_counts(planes, m)


def patchify_volume(
    volume: np.ndarray,
    mask: np.ndarray | None = None,
    params: PatchParams = PatchParams(),
    edges: VolumeEdges = "slices",
) -> PatchedVolume:
    """Cut one volume (D, H, W [, C]) and its label volume (D, H, W) into a p^3 patch sequence
    (``area`` images, ``mode`` masks; ``params.forest`` as in 2-D, its ``tile_size`` the root cubes')."""
    p = params.patch_size
    if volume.ndim not in (3, 4) or min(volume.shape[:3]) < 1:
        raise InputError("volume", f"expected a D x H x W [x C] array, found shape {volume.shape}")
    if mask is not None and mask.shape != volume.shape[:3]:
        raise InputError("mask", f"size {mask.shape} differs from its volume's {volume.shape[:3]}")
    shape = volume.shape[:3]
    counts = edge_counts(volume, params, edges)
    leaves = build_octree(counts, shape, params.forest)
    patches = serialise_volume(volume, leaves, p)
    gamma = float(np.prod([-(-s // p) for s in shape]) / max(len(leaves), 1))
    mask_patches, ceiling = None, None
    if mask is not None:
        ignore = params.ignore_index
        mask_patches, labels, confusion = mode_volume_patches(mask, leaves, p, ignore)
        ceiling = dice_from_confusion(labels, confusion, ignore)
    return PatchedVolume(leaves, patches, mask_patches, gamma, ceiling)
