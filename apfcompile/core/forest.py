"""The quadtree forest: which square leaves cover the canvas, in Z-order.

Geometry. The canvas (H x W pixels) is covered by a row-major grid of square root tiles of side
``T`` (a power of two; by default one tile, the next power of two >= max(H, W)). Each tile is a
quadtree whose nodes at depth ``d`` have side ``T >> d``; the deepest allowed side is the minimum
leaf size ``m`` (a power of two, default the patch size). A node's box is half-open,
``[x1, x2) x [y1, y2)`` in canvas pixels, always square, and may reach past the image's right
or bottom edge: that area holds no edges (and zeros when patches are cut). A node lying wholly
outside the image is never split and never emitted.

Edge counts. Every node's priority needs its number of edge pixels; they come from a count grid
at the minimum leaf size summed up a pyramid (:mod:`apfcompile.core.pyramid`), never by re-summing
pixels.

Policies.

``greedy`` (the published code's rule, made exact): repeatedly split the leaf of highest priority,
priority = (edge pixels, side) compared lexicographically, ties to the leaf first in Z-order; a
leaf at the minimum size cannot split; stop before a split would take the number of emitted
leaves past ``length``, or when nothing can split. Because a child's priority is always strictly
below its parent's (fewer or equal edges, smaller side), the sequence of splits is exactly the
global priority order of all splittable nodes, cut where the leaf count would pass ``length``;
that is how it is computed here, with one partial sort instead of a heap.

``threshold`` (the paper's text): split every node holding more than ``split_value`` edge pixels
that is larger than the minimum size and shallower than ``max_depth``.

Order. Leaves are returned in Morton Z-order: tiles row-major, Z-order inside a tile (top-left,
top-right, bottom-left, bottom-right, recursively).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formats.nodes import NodeTable

from ..choices import Policy
from ..errors import ParameterError
from .morton import morton_encode, morton_encode16
from .pyramid import accumulator_dtype, halve

__all__ = ["ForestParams", "Leaves", "build_forest", "default_tile_size"]

Leaves = NodeTable
"""The forest's output is the node table of :mod:`formats.nodes` (one leaf table everywhere)."""


def _is_pow2(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and v >= 1 and not v & (v - 1)


@dataclass(frozen=True)
class ForestParams:
    """How to grow the forest.

    policy: ``"greedy"`` (fixed budget ``length``) or ``"threshold"`` (``split_value``).
    length: greedy's maximum number of emitted leaves, >= 1.
    min_size: smallest leaf side in pixels, a power of two (usually the patch size).
    tile_size: side of the root tiles, a power of two >= min_size; None for one tile covering the
        canvas.
    split_value: threshold policy: split nodes with more than this many edge pixels.
    max_depth: threshold policy: deepest level that may be reached (root = 0); None = no limit.
    """

    policy: Policy = "greedy"
    length: int = 1024
    min_size: int = 8
    tile_size: int | None = None
    split_value: int = 0
    max_depth: int | None = None

    def __post_init__(self) -> None:
        if self.policy not in ("greedy", "threshold"):
            raise ParameterError("policy", "'greedy' or 'threshold'", self.policy)
        if not (isinstance(self.length, (int, np.integer)) and self.length >= 1):
            raise ParameterError("length", "an integer >= 1", self.length)
        if not _is_pow2(self.min_size):
            raise ParameterError("min_size", "a power of two", self.min_size)
        if self.tile_size is not None and not (_is_pow2(self.tile_size) and self.tile_size >= self.min_size):
            raise ParameterError("tile_size", f"a power of two >= min_size ({self.min_size})", self.tile_size)
        if self.split_value < 0:
            raise ParameterError("split_value", "a number >= 0", self.split_value)
        if self.max_depth is not None and self.max_depth < 0:
            raise ParameterError("max_depth", "an integer >= 0 or None", self.max_depth)


def default_tile_size(shape: tuple[int, int], min_size: int) -> int:
    """The side of one power-of-two tile covering an ``(H, W)`` canvas, at least ``min_size``."""
    side = max(int(shape[0]), int(shape[1]), int(min_size))
    return 1 << (side - 1).bit_length()


@dataclass
class _Level:
    """All nodes of one depth across the tile grid."""

    depth: int
    side: int
    counts: np.ndarray  # (rows, cols) int64 edge pixels per node
    inside: np.ndarray  # (rows, cols) bool: node intersects the image


def _levels(counts: np.ndarray, cell: int, shape: tuple[int, int], tile: int) -> list[_Level]:
    """Nodes of every depth, root (0) to leaves of side ``cell``, over the padded tile grid."""
    h, w = shape
    n_ty, n_tx = -(-h // tile), -(-w // tile)
    per_tile = tile // cell
    full = (n_ty * per_tile, n_tx * per_tile)
    # Counts stay in the narrowest exact dtype (a gigapixel canvas has ~10^8 finest cells).
    dtype = counts.dtype if counts.dtype.kind in "iu" else np.dtype(np.int64)
    if counts.shape == full and counts.dtype == dtype:
        grid = counts
    else:
        grid = np.zeros(full, dtype)
        rows, cols = min(counts.shape[0], full[0]), min(counts.shape[1], full[1])
        grid[:rows, :cols] = counts[:rows, :cols]
    depth_max = per_tile.bit_length() - 1
    out = []
    side = cell
    for depth in range(depth_max, -1, -1):
        r = np.arange(grid.shape[0]) * side < h
        c = np.arange(grid.shape[1]) * side < w
        out.append(_Level(depth, side, grid, r[:, None] & c[None, :]))
        if depth:
            grid = halve(grid, accumulator_dtype(dtype, depth_max - depth + 1))
            side *= 2
    return out[::-1]


def _zkeys(level: _Level, iy: np.ndarray, ix: np.ndarray, depth_max: int, n_tx: int) -> np.ndarray:
    """Global Z-order key of nodes: tile index, then Morton code of the top-left finest cell."""
    shift = depth_max - level.depth
    per_tile = 1 << level.depth
    tile = (iy // per_tile) * n_tx + ix // per_tile
    if depth_max <= 16:  # local cells below 2^16: one table lookup per coordinate
        local = morton_encode16((iy % per_tile) << shift, (ix % per_tile) << shift)
    else:
        local = morton_encode((iy % per_tile) << shift, (ix % per_tile) << shift)
    return tile.astype(np.uint64) * np.uint64(1 << (2 * depth_max)) + local


def _children_inside(levels: list[_Level], d: int) -> np.ndarray:
    """For nodes at depth d: how many of their four children intersect the image."""
    child = levels[d + 1].inside.astype(np.int8)
    return halve(child, np.int8)


def build_forest(
    counts: np.ndarray,
    shape: tuple[int, int],
    params: ForestParams = ForestParams(),
) -> NodeTable:
    """Grow the forest for an image of ``shape`` (H, W) from its edge-count grid.

    ``counts``: int array, edge pixels per ``params.min_size``-square cell of the canvas (as made by
    :func:`apfcompile.core.edges.edge_count_grid` with ``cell = params.min_size``), shape at least
    ``(ceil(H / min_size), ceil(W / min_size))``.
    Returns the leaves in Z-order (see the module docstring for the rules).
    """
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise ParameterError("shape", "a canvas of at least 1 x 1 pixels", shape)
    m = params.min_size
    need = (-(-h // m), -(-w // m))
    if counts.ndim != 2 or counts.shape[0] < need[0] or counts.shape[1] < need[1]:
        raise ParameterError("counts", f"a grid of at least {need} cells of {m} px", counts.shape)
    tile = params.tile_size or default_tile_size((h, w), m)
    n_tx = -(-w // tile)
    levels = _levels(counts, m, (h, w), tile)
    depth_max = len(levels) - 1
    if params.policy == "greedy":
        split = _greedy(levels, params.length, depth_max, n_tx)
    else:
        split = _threshold(levels, params, depth_max)
    return _collect_leaves(levels, split, depth_max, n_tx, (h, w))


def _greedy(levels: list[_Level], length: int, depth_max: int, n_tx: int) -> list[np.ndarray]:
    """Which nodes the greedy rule splits, as one boolean grid per depth (deepest: none)."""
    n_roots = int(levels[0].inside.sum())
    if n_roots > length:
        raise ParameterError(
            "length",
            f">= the number of root tiles covering the image ({n_roots})",
            length,
            "use a larger length or a larger tile size",
        )
    split = [np.zeros(lv.inside.shape, bool) for lv in levels]
    if depth_max == 0:  # roots at the minimum size: nothing can split
        return split
    # The greedy prefix is within the `limit` highest-priority splittable nodes (see
    # _priority_prefix), and those all hold at least the limit-th largest edge count: only
    # nodes at or above that count are candidates.
    limit = length + depth_max + 1
    tops = [_top(lv.counts if lv.inside.all() else lv.counts[lv.inside], limit) for lv in levels[:-1]]
    floor = _kth_largest(np.concatenate(tops), limit)
    depth, iy, ix, edges, added, zkey = [], [], [], [], [], []
    for lv in levels[:-1]:
        y, x = np.nonzero(lv.inside & (lv.counts >= floor))
        depth.append(np.full(y.shape, lv.depth, np.int64))
        iy.append(y)
        ix.append(x)
        edges.append(lv.counts[y, x].astype(np.int64))
        added.append(_children_inside(levels, lv.depth)[y, x].astype(np.int64) - 1)
        zkey.append(_zkeys(lv, y, x, depth_max, n_tx))
    depth, iy, ix = np.concatenate(depth), np.concatenate(iy), np.concatenate(ix)
    edges, added, zkey = np.concatenate(edges), np.concatenate(added), np.concatenate(zkey)
    order = _priority_prefix(edges, depth, zkey, limit)
    # Splits in priority order; stop at the first that would take the count past `length`.
    count = n_roots + np.cumsum(added[order])
    over = np.flatnonzero(count > length)
    order = order[: over[0]] if over.size else order
    for d in range(depth_max):
        sel = order[depth[order] == d]
        split[d][iy[sel], ix[sel]] = True
    return split


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest of ``values`` (all of them when there are fewer), as int64, unordered."""
    flat = values.reshape(-1)
    if flat.size > k:
        flat = np.partition(flat, flat.size - k)[flat.size - k :]
    return flat.astype(np.int64)


def _kth_largest(values: np.ndarray, k: int) -> int:
    """The k-th largest of ``values`` (its minimum when there are k or fewer; 0 when empty)."""
    if values.size == 0:
        return 0
    if values.size <= k:
        return int(values.min())
    return int(np.partition(values, values.size - k)[values.size - k])


def _priority_prefix(edges: np.ndarray, depth: np.ndarray, zkey: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the ``limit`` highest-priority nodes, highest first.

    Priority: edges descending, then side descending (depth ascending), then Z-order ascending.
    Every split adds at least one leaf except, at most once per depth, a corner node with a
    single child inside the image; so the greedy prefix never needs more than
    ``length + depth_max + 1`` nodes, and selecting those first keeps the sort small.
    """
    n = edges.shape[0]
    if n > limit:
        # Pack the priority into one int64 when it fits, to select with argpartition.
        n_depth = int(depth.max()) + 1
        z_span = int(zkey.max()) + 1
        if (int(edges.max()) + 1) * n_depth * z_span < 2**63:
            key = (edges * n_depth + (n_depth - 1 - depth)) * z_span + (z_span - 1 - zkey.astype(np.int64))
            top = np.argpartition(-key, limit - 1)[:limit]
            return top[np.argsort(-key[top], kind="stable")]
    order = np.lexsort((zkey, depth, -edges))
    return order[:limit]


def _threshold(levels: list[_Level], params: ForestParams, depth_max: int) -> list[np.ndarray]:
    """Which nodes the threshold rule splits, one boolean grid per depth (deepest: none)."""
    deepest = depth_max if params.max_depth is None else min(depth_max, params.max_depth)
    split = [np.zeros(lv.inside.shape, bool) for lv in levels]
    reach = levels[0].inside
    for d in range(deepest):
        split[d] = reach & (levels[d].counts > params.split_value)
        reach = np.repeat(np.repeat(split[d], 2, axis=0), 2, axis=1) & levels[d + 1].inside
    return split


def _collect_leaves(
    levels: list[_Level], split: list[np.ndarray], depth_max: int, n_tx: int, shape: tuple[int, int]
) -> NodeTable:
    """Leaves = reached nodes that were not split, sorted into Z-order."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("d", "y", "x", "e", "z")}
    reach = levels[0].inside
    for d, lv in enumerate(levels):
        leaf = reach & ~split[d]
        y, x = np.nonzero(leaf)
        parts["d"].append(np.full(y.shape, d, np.int32))
        parts["y"].append(y)
        parts["x"].append(x)
        parts["e"].append(lv.counts[y, x].astype(np.int64))
        parts["z"].append(_zkeys(lv, y, x, depth_max, n_tx))
        if d < depth_max:
            reach = np.repeat(np.repeat(split[d], 2, axis=0), 2, axis=1) & levels[d + 1].inside
    d, y, x, e, z = (np.concatenate(parts[k]) for k in ("d", "y", "x", "e", "z"))
    order = np.argsort(z, kind="stable")
    d, y, x, e = d[order], y[order], x[order], e[order]
    side = np.array([lv.side for lv in levels], np.int64)[d]
    tile = side << d  # = tile size
    x1, y1 = (x * side).astype(np.int32), (y * side).astype(np.int32)
    size = side.astype(np.int32)
    per_row = n_tx
    tile_index = (y1 // tile) * per_row + x1 // tile
    return NodeTable(
        x1=x1,
        x2=x1 + size,
        y1=y1,
        y2=y1 + size,
        size=size,
        depth=d,
        tile=tile_index.astype(np.int32),
        edges=e.astype(np.int64),
        canvas=(shape[0], shape[1]),
    )
