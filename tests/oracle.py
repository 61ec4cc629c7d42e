"""Slow, obviously-correct reference implementations that the tests hold the library to.

They follow the rules as written in the forest and serialise docstrings, one leaf at a time,
with plain Python lists and per-leaf numpy slices. Nothing here is fast or clever on purpose.
"""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np


def next_pow2(v: int) -> int:
    return 1 << (max(v, 1) - 1).bit_length()


def edge_pixels(edges: np.ndarray, x1: int, y1: int, s: int) -> int:
    return int(np.count_nonzero(edges[y1 : y1 + s, x1 : x1 + s]))


def _roots(h: int, w: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Root tiles (x1, y1, side, depth) intersecting the image, row-major."""
    return [(tx, ty, tile, 0) for ty in range(0, h, tile) for tx in range(0, w, tile)]


def _children(node, h: int, w: int):
    """The four quadrants in Z-order (TL, TR, BL, BR) that intersect the image."""
    x1, y1, s, d = node
    half = s // 2
    quads = [(x1, y1), (x1 + half, y1), (x1, y1 + half), (x1 + half, y1 + half)]
    return [(x, y, half, d + 1) for x, y in quads if x < w and y < h]


def greedy_leaves(edges: np.ndarray, length: int, min_size: int, tile: int | None = None):
    """The greedy rule: split the (edges, side)-max leaf, ties to the first in Z-order."""
    h, w = edges.shape
    tile = tile or max(next_pow2(max(h, w)), min_size)
    leaves = _roots(h, w, tile)  # the list is kept in Z-order throughout
    while True:
        best, best_key = None, None
        for i, (x1, y1, s, _depth) in enumerate(leaves):
            if s <= min_size:
                continue
            key = (edge_pixels(edges, x1, y1, s), s)
            if best_key is None or key > best_key:  # strict: ties keep the earlier leaf
                best, best_key = i, key
        if best is None:
            break
        kids = _children(leaves[best], h, w)
        if len(leaves) - 1 + len(kids) > length:
            break
        leaves[best : best + 1] = kids
    return leaves


def threshold_leaves(edges: np.ndarray, split_value: float, min_size: int, max_depth=None, tile=None):
    """The threshold rule, recursively, children visited in Z-order."""
    h, w = edges.shape
    tile = tile or max(next_pow2(max(h, w)), min_size)
    out = []

    def visit(node):
        x1, y1, s, d = node
        deeper = max_depth is None or d < max_depth
        if s > min_size and deeper and edge_pixels(edges, x1, y1, s) > split_value:
            for child in _children(node, h, w):
                visit(child)
        else:
            out.append(node)

    for root in _roots(h, w, tile):
        visit(root)
    return out


def padded(a: np.ndarray, h: int, w: int, fill=0) -> np.ndarray:
    out = np.full((h, w) + a.shape[2:], fill, a.dtype)
    out[: a.shape[0], : a.shape[1]] = a
    return out


def area_patch(image: np.ndarray, x1: int, y1: int, s: int, p: int) -> np.ndarray:
    """float64 box average of each cell, padding as zeros (before rounding)."""
    f = s // p
    img = padded(image, max(image.shape[0], y1 + s), max(image.shape[1], x1 + s)).astype(np.float64)
    block = img[y1 : y1 + s, x1 : x1 + s]
    return block.reshape((p, f, p, f) + block.shape[2:]).mean(axis=(1, 3))


def nearest_patch(image: np.ndarray, x1: int, y1: int, s: int, p: int) -> np.ndarray:
    img = padded(image, max(image.shape[0], y1 + s), max(image.shape[1], x1 + s))
    block = np.ascontiguousarray(img[y1 : y1 + s, x1 : x1 + s])
    out = cv2.resize(block, (p, p), interpolation=cv2.INTER_NEAREST)
    return out.reshape((p, p) + block.shape[2:])


def mode_patch(mask: np.ndarray, x1: int, y1: int, s: int, p: int, ignore=None, fill=0) -> np.ndarray:
    """Majority label per cell; ties to the smallest; padding never votes; ignore votes last."""
    f = s // p
    h, w = mask.shape
    out = np.full((p, p), fill, mask.dtype)
    for i in range(p):
        for j in range(p):
            ys, xs = y1 + i * f, x1 + j * f
            cell = mask[ys : min(ys + f, h), xs : min(xs + f, w)].ravel().tolist()
            votes = Counter(cell)
            if ignore is not None and len(votes) > 1:
                votes.pop(ignore, None)
            if votes:
                top = max(votes.values())
                out[i, j] = min(v for v, c in votes.items() if c == top)
    return out


def reconstruct_loop(patches: np.ndarray, boxes, shape, fill=0) -> np.ndarray:
    """The published way: per-leaf nearest resize into the box, clipped to the canvas."""
    h, w = shape
    big = max([s for _, _, s in boxes] + [1])
    canvas = np.full((h + big, w + big) + patches.shape[3:], fill, patches.dtype)
    for patch, (x1, y1, s) in zip(patches, boxes):
        up = cv2.resize(np.ascontiguousarray(patch), (s, s), interpolation=cv2.INTER_NEAREST)
        canvas[y1 : y1 + s, x1 : x1 + s] = up.reshape((s, s) + patches.shape[3:])
    return canvas[:h, :w]


# --- 3-D: the octree rules, one node at a time (issue #15) ---


def edge_voxels(edges: np.ndarray, x1: int, y1: int, z1: int, s: int) -> int:
    return int(np.count_nonzero(edges[z1 : z1 + s, y1 : y1 + s, x1 : x1 + s]))


def _roots3(d: int, h: int, w: int, cube: int):
    """Root cubes (x1, y1, z1, side, depth) intersecting the volume, row-major (z, y, x)."""
    return [(tx, ty, tz, cube, 0) for tz in range(0, d, cube) for ty in range(0, h, cube) for tx in range(0, w, cube)]


def _children3(node, d: int, h: int, w: int):
    """The eight octants in Z-order (x fastest, then y, then z) that intersect the volume."""
    x1, y1, z1, s, depth = node
    half = s // 2
    octants = [(x1 + dx, y1 + dy, z1 + dz) for dz in (0, half) for dy in (0, half) for dx in (0, half)]
    return [(x, y, z, half, depth + 1) for x, y, z in octants if x < w and y < h and z < d]


def greedy_octree(edges: np.ndarray, length: int, min_size: int, cube: int | None = None):
    """The greedy rule: split the (edges, side)-max leaf, ties to the first in Z-order."""
    d, h, w = edges.shape
    cube = cube or max(next_pow2(max(d, h, w)), min_size)
    leaves = _roots3(d, h, w, cube)  # kept in Z-order throughout
    while True:
        best, best_key = None, None
        for i, (x1, y1, z1, s, _depth) in enumerate(leaves):
            if s <= min_size:
                continue
            key = (edge_voxels(edges, x1, y1, z1, s), s)
            if best_key is None or key > best_key:  # strict: ties keep the earlier leaf
                best, best_key = i, key
        if best is None:
            break
        kids = _children3(leaves[best], d, h, w)
        if len(leaves) - 1 + len(kids) > length:
            break
        leaves[best : best + 1] = kids
    return leaves


def threshold_octree(edges: np.ndarray, split_value: float, min_size: int, max_depth=None, cube=None):
    """The threshold rule, recursively, children visited in Z-order."""
    d, h, w = edges.shape
    cube = cube or max(next_pow2(max(d, h, w)), min_size)
    out = []

    def visit(node):
        x1, y1, z1, s, depth = node
        deeper = max_depth is None or depth < max_depth
        if s > min_size and deeper and edge_voxels(edges, x1, y1, z1, s) > split_value:
            for child in _children3(node, d, h, w):
                visit(child)
        else:
            out.append(node)

    for root in _roots3(d, h, w, cube):
        visit(root)
    return out


def area_patch3(volume: np.ndarray, x1: int, y1: int, z1: int, s: int, p: int) -> np.ndarray:
    """float64 mean of each f^3 cell of one cubic leaf (padding as zeros), (p, p, p) + channels."""
    d, h, w = volume.shape[:3]
    big = np.zeros((max(d, z1 + s), max(h, y1 + s), max(w, x1 + s)) + volume.shape[3:], np.float64)
    big[:d, :h, :w] = volume
    block = big[z1 : z1 + s, y1 : y1 + s, x1 : x1 + s]
    f = s // p
    return block.reshape((p, f, p, f, p, f) + block.shape[3:]).mean(axis=(1, 3, 5))


def mode_patch3(mask: np.ndarray, x1: int, y1: int, z1: int, s: int, p: int, ignore=None, fill=0) -> np.ndarray:
    """Majority label of each f^3 cell, one cell at a time (ties to the smallest label)."""
    f = s // p
    out = np.full((p, p, p), fill, mask.dtype)
    for i in range(p):
        for j in range(p):
            for k in range(p):
                zz, yy, xx = z1 + i * f, y1 + j * f, x1 + k * f
                cell = mask[zz : zz + f, yy : yy + f, xx : xx + f].ravel()
                if cell.size == 0:
                    continue
                votes = cell[cell != ignore] if ignore is not None else cell
                if votes.size == 0:
                    votes = cell  # only ignore voxels: ignore wins
                values, counts = np.unique(votes, return_counts=True)
                out[i, j, k] = values[np.argmax(counts)]
    return out
