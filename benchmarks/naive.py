"""The published way, re-implemented plainly for baselines (never used by the library).

The greedy build keeps a Python list of nodes, finds the maximum by scanning the list and sums
the pixels of every new child with ``np.sum`` over the edge map, as the published code does. To
compare leaves one for one it applies the project's exact rule (priority = (edges, side), ties to
the first in Z-order, minimum leaf size, stop before the count passes L) instead of the published
code's defects (edges alone, stop at 2 px, overshoot to L + 2).
"""

from __future__ import annotations

import cv2
import numpy as np


def naive_greedy(edges: np.ndarray, length: int, min_size: int) -> list[tuple[int, int, int]]:
    """Leaves (x1, y1, side) in Z-order for a square power-of-two 0/255 edge map."""
    side = edges.shape[0]
    nodes = [[0, 0, side, int(np.sum(edges) / 255)]]
    while len(nodes) + 3 <= length:
        # max() returns the first maximum, i.e. the first in Z-order; side breaks edge ties.
        best = max(nodes, key=lambda n: n[3] * 65536 + n[2])
        if best[2] <= min_size:  # rare: the best leaf cannot split; take the best that can
            splittable = [n for n in nodes if n[2] > min_size]
            if not splittable:
                break
            best = max(splittable, key=lambda n: n[3] * 65536 + n[2])
        idx = nodes.index(best)
        x1, y1, s, _ = best
        h = s // 2
        kids = []
        for x, y in ((x1, y1), (x1 + h, y1), (x1, y1 + h), (x1 + h, y1 + h)):
            kids.append([x, y, h, int(np.sum(edges[y : y + h, x : x + h]) / 255)])
        nodes = nodes[:idx] + kids + nodes[idx + 1 :]
    return [(x, y, s) for x, y, s, _ in nodes]


def naive_patches(image: np.ndarray, leaves, p: int) -> np.ndarray:
    """Per-leaf ``cv2.resize(..., INTER_NEAREST)``, one call per leaf (the published serialise)."""
    out = [cv2.resize(image[y : y + s, x : x + s], (p, p), interpolation=cv2.INTER_NEAREST) for x, y, s in leaves]
    return np.stack(out)
