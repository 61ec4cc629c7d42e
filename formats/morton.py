"""Morton (Z-order) codes for 2-D grid positions.

A Morton code interleaves the bits of a cell's row and column: bit ``2k`` of the code is bit ``k``
of the column (x) and bit ``2k + 1`` is bit ``k`` of the row (y). Sorting by the code visits a
``2^d x 2^d`` grid in Z-order: top-left, top-right, bottom-left, bottom-right, recursively.
The functions take and return numpy integer arrays; coordinates must be below ``2^31``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["morton_encode", "morton_decode"]

_MASKS = (
    (16, 0x0000FFFF0000FFFF),
    (8, 0x00FF00FF00FF00FF),
    (4, 0x0F0F0F0F0F0F0F0F),
    (2, 0x3333333333333333),
    (1, 0x5555555555555555),
)


def _spread(v: np.ndarray) -> np.ndarray:
    """Insert a zero bit above every bit of ``v`` (uint64, values < 2^32)."""
    v = v.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    for shift, mask in _MASKS:
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def _compact(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_spread`: keep the even bits of ``v`` and pack them."""
    v = v.astype(np.uint64) & np.uint64(0x5555555555555555)
    for shift, mask in (
        (1, 0x3333333333333333),
        (2, 0x0F0F0F0F0F0F0F0F),
        (4, 0x00FF00FF00FF00FF),
        (8, 0x0000FFFF0000FFFF),
        (16, 0x00000000FFFFFFFF),
    ):
        v = (v | (v >> np.uint64(shift))) & np.uint64(mask)
    return v


def morton_encode(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Z-order code (uint64) of grid cells at row ``y``, column ``x`` (non-negative ints < 2^31)."""
    return _spread(np.asarray(x)) | (_spread(np.asarray(y)) << np.uint64(1))


def morton_decode(code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns (int64) of Morton codes: the inverse of :func:`morton_encode`."""
    code = np.asarray(code, dtype=np.uint64)
    return _compact(code >> np.uint64(1)).astype(np.int64), _compact(code).astype(np.int64)
