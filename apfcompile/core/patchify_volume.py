"""One volume through the 3-D core: edges -> octree -> p^3 patch sequence (+ mask patches, ceiling).

The 3-D twin of :func:`~apfcompile.core.patchify` (issue #15). Volumes are (D, H, W [, C]) in
voxels, axis 0 the slice axis. Edges, two ways (``edges=``):

- ``"slices"`` (default): the 2-D rule on every slice (window or percentile stretch, blur, Canny;
  :func:`~apfcompile.core.edges.edge_map`), stacked. Without a fixed window the percentile
  stretch is taken over the whole volume, so every slice is mapped alike;
- ``"gradient"``: the magnitude of the 3-D gradient of the Gaussian-blurred volume (same window
  and blur, the blur applied along all three axes), thresholded at the value that marks as many
  voxels as the slice-wise Canny does (equal edge density, so the two differ only in where).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from ..errors import InputError
from .edges import edge_count_grid, edge_map, to_grey, to_uint8
from .octree import OctreeLeaves, build_octree, edge_count_volume
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
    """0/255 uint8 edge volume (D, H, W) of ``volume`` by ``method`` (see the module docstring).
    ``gradient`` works on float32 copies of the whole volume (about 5x its voxels in memory)."""
    slices = np.stack([edge_map(s, params.edges) for s in _grey_slices(volume, params)])
    if method == "slices":
        return slices
    if method != "gradient":
        raise InputError("edges", f"expected 'slices' or 'gradient', found {method!r}")
    e = params.edges
    smooth = np.stack([s.astype(np.float32) for s in _grey_slices(volume, params)])
    if e.blur > 1:
        smooth = np.stack([cv2.GaussianBlur(s, (e.blur, e.blur), 0) for s in smooth])
        taps = cv2.getGaussianKernel(e.blur, 0).ravel().astype(np.float32)
        padded = np.pad(smooth, ((e.blur // 2, e.blur // 2), (0, 0), (0, 0)), mode="edge")
        smooth = sum(t * padded[i : i + smooth.shape[0]] for i, t in enumerate(taps))
    gz, gy, gx = np.gradient(smooth)
    magnitude = np.sqrt(gz * gz + gy * gy + gx * gx)
    marked = int(np.count_nonzero(slices))
    if marked == 0:
        return np.zeros(slices.shape, np.uint8)
    flat = magnitude.ravel()
    cut = np.partition(flat, flat.size - marked)[flat.size - marked]
    return np.where((magnitude >= cut) & (magnitude > 0), 255, 0).astype(np.uint8)


def edge_counts(volume: np.ndarray, params: PatchParams, method: VolumeEdges = "slices") -> np.ndarray:
    """Edge voxels per ``min_size``^3 cell (:func:`~apfcompile.core.octree.edge_count_volume`).
    ``slices`` streams: one slice's grey and edges at a time, never the edge volume."""
    m = params.forest.min_size
    if method != "slices":
        return edge_count_volume(volume_edges(volume, params, method), m)
    planes = np.stack([edge_count_grid(edge_map(s, params.edges), m) for s in _grey_slices(volume, params)])
    nz = -(-planes.shape[0] // m)
    if nz * m != planes.shape[0]:
        planes = np.concatenate([planes, np.zeros((nz * m - planes.shape[0],) + planes.shape[1:], planes.dtype)])
    return planes.reshape((nz, m) + planes.shape[1:]).sum(axis=1, dtype=np.int64)


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
