"""Fixed-length sequences: pad with invalid rows, or drop leaves.

A model wants every sequence at one length L. A sample with fewer leaves is padded with invalid
rows: zero patches, size 0, centre (-1, -1), box (0, 0, 0, 0), ``valid = False``. A sample with
more leaves drops some:

- ``priority``: the lowest-priority leaves go first, priority = (edge pixels, side), ties broken
  against the leaf later in Z-order (the mirror of the greedy split rule);
- ``random``: a uniform random subset, seeded.

The kept leaves stay in Z-order. The area of a dropped leaf has no patch and is not rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from formats.sequence import DROP_RULES, select_rows

from .errors import ParameterError
from .forest import Leaves

__all__ = ["FixedSequence", "fit_length", "select_leaves"]

Drop = Literal["priority", "random"]


def select_leaves(leaves: Leaves, length: int, drop: Drop = "priority", seed: int = 0) -> np.ndarray:
    """Indices (ascending, so Z-order) of the at most ``length`` leaves to keep."""
    if length < 1:
        raise ParameterError("length", "an integer >= 1", length)
    if drop not in DROP_RULES:
        raise ParameterError("drop", "'priority' or 'random'", drop)
    return select_rows(leaves.edges, leaves.size, length, drop, seed)


@dataclass(frozen=True)
class FixedSequence:
    """One sample at a fixed length L.

    patches: (L, p, p, C) image patches; mask: (L, p, p) label patches or None;
    size: (L,) int32; center: (L, 2) float64 as (cx, cy); box: (L, 4) int32 as (x1, x2, y1, y2);
    valid: (L,) bool; index: (L,) int64 row of each leaf in the unpadded sequence (-1 for pads).
    """

    patches: np.ndarray
    mask: np.ndarray | None
    size: np.ndarray
    center: np.ndarray
    box: np.ndarray
    valid: np.ndarray
    index: np.ndarray


def _pad(a: np.ndarray, length: int, fill) -> np.ndarray:
    out = np.full((length,) + a.shape[1:], fill, a.dtype)
    out[: a.shape[0]] = a
    return out


def fit_length(
    patches: np.ndarray,
    leaves: Leaves,
    length: int,
    mask: np.ndarray | None = None,
    drop: Drop = "priority",
    seed: int = 0,
) -> FixedSequence:
    """Pad or drop a sample's sequence (``patches`` and ``mask`` row i <-> leaf i) to ``length``."""
    keep = select_leaves(leaves, length, drop, seed)
    kept = leaves.take(keep)
    box = np.stack([kept.x1, kept.x2, kept.y1, kept.y2], axis=1).astype(np.int32)
    center = np.stack([kept.cx, kept.cy], axis=1)
    return FixedSequence(
        patches=_pad(patches[keep], length, 0),
        mask=None if mask is None else _pad(mask[keep], length, 0),
        size=_pad(kept.size.astype(np.int32), length, 0),
        center=_pad(center, length, -1.0),
        box=_pad(box, length, 0),
        valid=_pad(np.ones(keep.size, bool), length, False),
        index=_pad(keep.astype(np.int64), length, -1),
    )
