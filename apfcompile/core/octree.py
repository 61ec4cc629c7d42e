"""The octree forest: which cubic leaves cover a volume, in 3-D Z-order (issue #15).

Geometry. A volume of D x H x W voxels (axes z, y, x) is covered by a grid of cubic root nodes of
side ``T`` (a power of two; by default one cube, the next power of two >= max(D, H, W)), in
row-major (z, y, x) order. Each root is an octree whose nodes at depth ``d`` have side ``T >> d``;
the deepest allowed side is the minimum leaf size ``m`` (a power of two, usually the patch size).
A node's box is half-open, ``[x1, x2) x [y1, y2) x [z1, z2)`` in voxels, always cubic, and may
reach past the volume's far faces (that part holds no edges); a node lying wholly outside the
volume is never split and never emitted.

Edge counts. Every node's priority needs its number of edge voxels; they come from a count grid
at the minimum leaf size (:func:`edge_count_volume`) summed up a pyramid of 2 x 2 x 2 block sums.

Policies, the 2-D rules (:mod:`apfcompile.core.forest`) with eight children:

``greedy``: repeatedly split the leaf of highest priority, priority = (edge voxels, side)
compared lexicographically, ties to the leaf first in 3-D Morton order; a leaf at the minimum size
cannot split; stop before a split would take the number of emitted leaves (children inside the
volume) past ``length``, or when nothing can split. A child's priority is strictly below its
parent's (no more edges, a smaller side), so the splits are exactly the global priority order of
all splittable nodes, cut where the leaf count would pass ``length``: computed with one partial
sort. An edge-free volume ties everywhere on edges, so it splits level by level in Morton order:
a uniform grid as far as ``length`` allows.

``threshold``: split every node holding more than ``split_value`` edge voxels that is larger than
the minimum size and shallower than ``max_depth``.

Order. Leaves are returned in 3-D Morton order: roots row-major, inside a root x fastest, then y,
then z, recursively (:func:`formats.morton.morton3_encode`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formats.morton import morton3_encode
from formats.nodes import NodeTable

from ..errors import ParameterError
from .edges import edge_count_grid
from .forest import ForestParams, _kth_largest, _priority_prefix, _top

__all__ = ["OctreeLeaves", "build_octree", "default_cube_size", "edge_count_volume", "halve3", "sum_slice_counts"]

_MAX_DEPTH = 20  # Morton keys of 3 bits per level in a uint64, beside the root index


OctreeLeaves = NodeTable
"""The octree's output: a :class:`~formats.nodes.NodeTable` with z1/z2, canvas (D, H, W)."""


def default_cube_size(shape: tuple[int, int, int], min_size: int) -> int:
    """The side of one power-of-two cube covering a ``(D, H, W)`` volume, at least ``min_size``."""
    side = max(*(int(s) for s in shape), int(min_size))
    return 1 << (side - 1).bit_length()


def halve3(a: np.ndarray) -> np.ndarray:
    """Sums of the 2 x 2 x 2 blocks of a 3-D array (int64), zero-padding odd sides."""
    a = a.astype(np.int64, copy=False)
    pad = [(0, n % 2) for n in a.shape]
    if any(p for _, p in pad):
        a = np.pad(a, pad)
    a = a[0::2] + a[1::2]
    a = a[:, 0::2] + a[:, 1::2]
    return a[:, :, 0::2] + a[:, :, 1::2]


def edge_count_volume(edges: np.ndarray, cell: int) -> np.ndarray:
    """Edge voxels per ``cell``^3 block of a (D, H, W) edge volume, as int64 of shape
    ``ceil(D / cell) x ceil(H / cell) x ceil(W / cell)`` (blocks past the far faces count the voxels
    inside only). ``edges``: 0/255 uint8 slices as Canny makes them (any other dtype: nonzero is
    an edge); ``cell`` a power of two. Each slice's cells are counted by
    :func:`~apfcompile.core.edges.edge_count_grid`, then ``cell`` slices at a time are summed."""
    if edges.ndim != 3:
        raise ParameterError("edges", "a D x H x W edge volume", edges.shape)
    if edges.dtype != np.uint8:
        edges = (edges != 0).astype(np.uint8) * np.uint8(255)
    return sum_slice_counts([edge_count_grid(s, cell) for s in edges], cell)


def sum_slice_counts(planes: list[np.ndarray], cell: int) -> np.ndarray:
    """Per-slice cell counts (D planes of ``ceil(H / cell) x ceil(W / cell)``) summed ``cell``
    slices at a time into the int64 grid of ``cell``^3 blocks (missing slices past the far face
    count zero)."""
    stacked = np.stack(planes)
    d = stacked.shape[0]
    nz = -(-d // cell)
    if nz * cell != d:
        stacked = np.concatenate([stacked, np.zeros((nz * cell - d,) + stacked.shape[1:], stacked.dtype)])
    return stacked.reshape((nz, cell) + stacked.shape[1:]).sum(axis=1, dtype=np.int64)


@dataclass
class _Level:
    """All nodes of one depth across the root grid."""

    depth: int
    side: int
    counts: np.ndarray  # (nz, ny, nx) int64 edge voxels per node
    inside: np.ndarray  # (nz, ny, nx) bool: node intersects the volume


def _levels(counts: np.ndarray, cell: int, shape: tuple[int, int, int], cube: int) -> list[_Level]:
    """Nodes of every depth, roots (0) to leaves of side ``cell``, over the padded root grid."""
    roots = tuple(-(-n // cube) for n in shape)
    per = cube // cell
    grid = np.zeros(tuple(r * per for r in roots), np.int64)
    take = tuple(min(c, g) for c, g in zip(counts.shape, grid.shape))
    grid[: take[0], : take[1], : take[2]] = counts[: take[0], : take[1], : take[2]]
    depth_max = per.bit_length() - 1
    out = []
    side = cell
    for depth in range(depth_max, -1, -1):
        axes = [np.arange(grid.shape[k]) * side < shape[k] for k in range(3)]
        inside = axes[0][:, None, None] & axes[1][None, :, None] & axes[2][None, None, :]
        out.append(_Level(depth, side, grid, inside))
        if depth:
            grid = halve3(grid)
            side *= 2
    return out[::-1]


def _zkeys(level: _Level, iz: np.ndarray, iy: np.ndarray, ix: np.ndarray, depth_max: int, roots) -> np.ndarray:
    """Global Z-order key of nodes: root index, then Morton code of the node's first finest cell."""
    shift = depth_max - level.depth
    per = 1 << level.depth
    root = ((iz // per) * roots[1] + iy // per) * roots[2] + ix // per
    local = morton3_encode((iz % per) << shift, (iy % per) << shift, (ix % per) << shift)
    return root.astype(np.uint64) * np.uint64(1 << (3 * depth_max)) + local


def _children_inside(levels: list[_Level], d: int) -> np.ndarray:
    """For nodes at depth d: how many of their eight children intersect the volume."""
    return halve3(levels[d + 1].inside.astype(np.int64))


def _to_children(split: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(np.repeat(split, 2, axis=0), 2, axis=1), 2, axis=2)


def build_octree(
    counts: np.ndarray, shape: tuple[int, int, int], params: ForestParams = ForestParams()
) -> OctreeLeaves:
    """Grow the octree for a volume of ``shape`` (D, H, W) from its edge-count grid.

    ``counts``: edge voxels per ``params.min_size``-cube cell (:func:`edge_count_volume`), shape
    at least ``ceil(shape / min_size)`` per axis. ``params.tile_size`` is the root cubes' side
    (None: one cube covering the volume). Returns the leaves in Morton order (module docstring).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ParameterError("shape", "a volume of at least 1 x 1 x 1 voxels", shape)
    m = params.min_size
    need = tuple(-(-s // m) for s in shape)
    if counts.ndim != 3 or any(c < n for c, n in zip(counts.shape, need)):
        raise ParameterError("counts", f"a grid of at least {need} cells of {m} voxels", counts.shape)
    cube = params.tile_size or default_cube_size(shape, m)
    levels = _levels(counts, m, shape, cube)
    depth_max = len(levels) - 1
    if depth_max > _MAX_DEPTH:
        raise ParameterError("min_size", f"a root side at most 2^{_MAX_DEPTH} times it", m)
    roots = levels[0].inside.shape
    if params.policy == "greedy":
        split = _greedy(levels, params.length, depth_max, roots)
    else:
        split = _threshold(levels, params, depth_max)
    return _collect(levels, split, depth_max, roots, shape, cube)


def _greedy(levels: list[_Level], length: int, depth_max: int, roots) -> list[np.ndarray]:
    """Which nodes the greedy rule splits, one boolean grid per depth (deepest: none)."""
    n_roots = int(levels[0].inside.sum())
    if n_roots > length:
        raise ParameterError(
            "length",
            f">= the number of root cubes covering the volume ({n_roots})",
            length,
            "use a larger length or a larger cube size",
        )
    split = [np.zeros(lv.inside.shape, bool) for lv in levels]
    if depth_max == 0:
        return split
    # As in 2-D: only a corner node per depth can split without adding a leaf, so the greedy
    # prefix lies within the `limit` highest-priority splittable nodes, all at or above the
    # limit-th largest edge count.
    limit = length + depth_max + 1
    tops = [_top(lv.counts[lv.inside], limit) for lv in levels[:-1]]
    floor = _kth_largest(np.concatenate(tops), limit)
    depth, iz, iy, ix, edges, added, zkey = [], [], [], [], [], [], []
    for lv in levels[:-1]:
        z, y, x = np.nonzero(lv.inside & (lv.counts >= floor))
        depth.append(np.full(z.shape, lv.depth, np.int64))
        iz.append(z)
        iy.append(y)
        ix.append(x)
        edges.append(lv.counts[z, y, x])
        added.append(_children_inside(levels, lv.depth)[z, y, x] - 1)
        zkey.append(_zkeys(lv, z, y, x, depth_max, roots))
    depth, iz, iy, ix = (np.concatenate(a) for a in (depth, iz, iy, ix))
    edges, added, zkey = (np.concatenate(a) for a in (edges, added, zkey))
    order = _priority_prefix(edges, depth, zkey, limit)
    count = n_roots + np.cumsum(added[order])
    over = np.flatnonzero(count > length)
    order = order[: over[0]] if over.size else order
    for d in range(depth_max):
        sel = order[depth[order] == d]
        split[d][iz[sel], iy[sel], ix[sel]] = True
    return split


def _threshold(levels: list[_Level], params: ForestParams, depth_max: int) -> list[np.ndarray]:
    """Which nodes the threshold rule splits, one boolean grid per depth (deepest: none)."""
    deepest = depth_max if params.max_depth is None else min(depth_max, params.max_depth)
    split = [np.zeros(lv.inside.shape, bool) for lv in levels]
    reach = levels[0].inside
    for d in range(deepest):
        split[d] = reach & (levels[d].counts > params.split_value)
        reach = _to_children(split[d]) & levels[d + 1].inside
    return split


def _collect(levels: list[_Level], split: list[np.ndarray], depth_max: int, roots, shape, cube: int) -> OctreeLeaves:
    """Leaves = reached nodes that were not split, sorted into Morton order."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("d", "z", "y", "x", "e", "k")}
    reach = levels[0].inside
    for d, lv in enumerate(levels):
        z, y, x = np.nonzero(reach & ~split[d])
        parts["d"].append(np.full(z.shape, d, np.int32))
        for name, v in (("z", z), ("y", y), ("x", x)):
            parts[name].append(v)
        parts["e"].append(lv.counts[z, y, x])
        parts["k"].append(_zkeys(lv, z, y, x, depth_max, roots))
        if d < depth_max:
            reach = _to_children(split[d]) & levels[d + 1].inside
    d, z, y, x, e, k = (np.concatenate(parts[n]) for n in ("d", "z", "y", "x", "e", "k"))
    order = np.argsort(k, kind="stable")
    d, z, y, x, e = d[order], z[order], y[order], x[order], e[order]
    side = np.array([lv.side for lv in levels], np.int64)[d]
    x1, y1, z1 = ((v * side).astype(np.int32) for v in (x, y, z))
    size = side.astype(np.int32)
    tile = ((z1 // cube) * roots[1] + y1 // cube) * roots[2] + x1 // cube
    return NodeTable(
        x1=x1,
        x2=x1 + size,
        y1=y1,
        y2=y1 + size,
        z1=z1,
        z2=z1 + size,
        size=size,
        depth=d,
        tile=tile.astype(np.int32),
        edges=e.astype(np.int64),
        canvas=shape,
    )
