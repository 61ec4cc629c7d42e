"""Which nodes a fixed-length sequence keeps: shared by the compiler and the loader.

A model wants every sequence at one length L. Longer sequences drop nodes:

- ``priority``: the lowest-priority nodes go first, priority = (edge pixels, side), ties broken
  against the node later in Z-order (the mirror of the greedy split rule);
- ``random``: a uniform random subset, seeded.

Kept nodes stay in stored (Z-) order. Shorter sequences are padded with invalid rows, whose
values and dtypes are defined once, here (:data:`PAD_ROW`, :func:`pad_rows`), for the compiler's
``fit_length``, the loader's batches and ``loaders.collate`` alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DROP_RULES", "PAD_ROW", "ROW_DTYPES", "pad_rows", "padding", "priority_order", "select_rows"]

DROP_RULES = ("priority", "random")

PAD_ROW: dict[str, int | float | bool] = {
    "image": 0,
    "mask": 0,
    "size": 0,
    "center": -1.0,
    "box": 0,
    "valid": False,
    "index": -1,
}
"""What a padding (invalid) row holds in each per-row field of a fixed-length sequence: zero
patches and mask, size 0, centre (-1, -1), box (0, 0, 0, 0), ``valid`` False, and index -1 (the
row's place in the unpadded sequence)."""

ROW_DTYPES: dict[str, np.dtype] = {
    "size": np.dtype(np.int32),
    "center": np.dtype(np.float32),
    "box": np.dtype(np.int32),
    "valid": np.dtype(np.bool_),
    "index": np.dtype(np.int32),
}
"""The dtypes of the per-row fields of a fixed-length sequence (``image`` and ``mask`` keep the
stored dtype; a loss that wants int64 targets takes ``mask.long()``, on the device): size (L,),
center (L, 2) as (cx, cy), box (L, 4) as (x1, x2, y1, y2), valid (L,), index (L,). int32 is the
narrowest integer type that holds any canvas coordinate (slides pass 32,767 pixels) and that torch
indexes with."""


def padding(name: str, shape: tuple[int, ...], dtype: np.dtype | None = None) -> np.ndarray:
    """An array of ``shape`` filled with field ``name``'s padding value, in its dtype (or ``dtype``)."""
    return np.full(shape, PAD_ROW[name], dtype or ROW_DTYPES[name])


def pad_rows(name: str, rows: np.ndarray, length: int) -> np.ndarray:
    """``rows`` (n, ...) of field ``name`` followed by padding rows up to ``length`` (n <= length),
    in the field's dtype (``image`` and ``mask``: the rows' own)."""
    dtype = ROW_DTYPES.get(name, rows.dtype)
    out = padding(name, (length,) + rows.shape[1:], dtype)
    out[: rows.shape[0]] = rows
    return out


def priority_order(edges: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Row indices from highest to lowest priority: (edges, size) descending, ties in stored order."""
    return np.lexsort((np.arange(len(edges)), -np.asarray(size, np.int64), -np.asarray(edges, np.int64)))


def select_rows(
    edges: np.ndarray, size: np.ndarray, length: int, drop: str = "priority", seed: int | Sequence[int] = 0
) -> np.ndarray:
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
