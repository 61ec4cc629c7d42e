"""Which nodes a fixed-length sequence keeps: shared by the compiler and the loader.

A model wants every sequence at one length L. Longer sequences drop nodes:

- ``priority``: the lowest-priority nodes go first, priority = (edge pixels, side), ties broken
  against the node later in Z-order (the mirror of the greedy split rule);
- ``random``: a uniform random subset, seeded.

Kept nodes stay in stored (Z-) order. Shorter sequences are padded by the caller with invalid rows.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DROP_RULES", "priority_order", "select_rows"]

DROP_RULES = ("priority", "random")


def priority_order(edges: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Row indices from highest to lowest priority: (edges, size) descending, ties in stored order."""
    return np.lexsort((np.arange(len(edges)), -np.asarray(size, np.int64), -np.asarray(edges, np.int64)))


def select_rows(edges: np.ndarray, size: np.ndarray, length: int, drop: str = "priority", seed=0) -> np.ndarray:
    """Ascending indices of the at most ``length`` rows to keep (all of them when there are fewer).

    ``seed`` may be an int or a sequence of ints (e.g. ``(seed, epoch, sample)``) for ``random``.
    """
    n = len(edges)
    if length < 1:
        raise ValueError(f"length: expected an integer >= 1, found {length!r}")
    if drop not in DROP_RULES:
        raise ValueError(f"drop: expected one of {DROP_RULES}, found {drop!r}")
    if n <= length:
        return np.arange(n)
    if drop == "priority":
        keep = priority_order(edges, size)[:length]
    else:
        keep = np.random.default_rng(seed).choice(n, size=length, replace=False)
    return np.sort(keep)
