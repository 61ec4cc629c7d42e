"""Fixed-length sequences: pad with invalid rows, or drop leaves.

A model wants every sequence at one length L. A sample with fewer leaves is padded with invalid
rows (:data:`formats.sequence.PAD_ROW`: zero patches, size 0, centre (-1, -1), box (0, 0, 0, 0),
``valid = False``), exactly as the loader pads its batches. A sample with more leaves drops some:

- ``priority``: the lowest-priority leaves go first, priority = (edge pixels, side), ties broken
  against the leaf later in Z-order (the mirror of the greedy split rule);
- ``random``: a uniform random subset, seeded.

The kept leaves stay in Z-order. The area of a dropped leaf has no patch and is not rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formats.nodes import NodeTable
from formats.sequence import DROP_RULES, pad_rows, select_rows

from ..choices import Drop
from ..errors import ParameterError

__all__ = ["FixedSequence", "fit_length", "select_leaves"]


def select_leaves(leaves: NodeTable, length: int, drop: Drop = "priority", seed: int = 0) -> np.ndarray:
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
    size: (L,) int64; center: (L, 2) float32 as (cx, cy); box: (L, 4) int64 as (x1, x2, y1, y2);
    valid: (L,) bool; index: (L,) int64 row of each leaf in the unpadded sequence (-1 for pads).
    The dtypes and padding values are the loader's (:mod:`formats.sequence`), so ``box`` and
    ``valid`` go straight to either ``reconstruct``.
    """

    patches: np.ndarray
    mask: np.ndarray | None
    size: np.ndarray
    center: np.ndarray
    box: np.ndarray
    valid: np.ndarray
    index: np.ndarray


def fit_length(
    patches: np.ndarray,
    leaves: NodeTable,
    length: int,
    mask: np.ndarray | None = None,
    drop: Drop = "priority",
    seed: int = 0,
) -> FixedSequence:
    """Pad or drop a sample's sequence (``patches`` and ``mask`` row i <-> leaf i) to ``length``."""
    keep = select_leaves(leaves, length, drop, seed)
    kept = leaves.take(keep)
    return FixedSequence(
        patches=pad_rows("image", patches[keep], length),
        mask=None if mask is None else pad_rows("mask", mask[keep], length),
        size=pad_rows("size", kept.size, length),
        center=pad_rows("center", kept.center, length),
        box=pad_rows("box", kept.box, length),
        valid=pad_rows("valid", np.ones(keep.size, bool), length),
        index=pad_rows("index", keep, length),
    )
