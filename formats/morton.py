"""Morton (Z-order) codes for 2-D and 3-D grid positions.

A Morton code interleaves the bits of a cell's row and column: bit ``2k`` of the code is bit ``k``
of the column (x) and bit ``2k + 1`` is bit ``k`` of the row (y). Sorting by the code visits a
``2^d x 2^d`` grid in Z-order: top-left, top-right, bottom-left, bottom-right, recursively.
The functions take and return numpy integer arrays; coordinates must be below ``2^31``.

In 3-D (:func:`morton3_encode`) bit ``3k`` of the code is bit ``k`` of x, ``3k + 1`` of y and
``3k + 2`` of z: a ``2^d`` cube is visited x fastest, then y, then z, recursively (its eight
children in the order (z, y, x) = 000, 001, 010, 011, 100, ...); coordinates below ``2^21``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["morton3_decode", "morton3_encode", "morton_decode", "morton_encode", "morton_encode16"]

_MASKS = (
    (16, 0x0000FFFF0000FFFF),
    (8, 0x00FF00FF00FF00FF),
    (4, 0x0F0F0F0F0F0F0F0F),
    (2, 0x3333333333333333),
    (1, 0x5555555555555555),
)


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Insert a zero bit above every bit of ``v`` (uint64, values < 2^32), by bit twiddling."""
    v = v.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    for shift, mask in _MASKS:
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


_SPREAD16 = _spread_bits(np.arange(1 << 16, dtype=np.uint64))
""":func:`_spread_bits` of every 16-bit value: two lookups spread a 32-bit one (the forest calls
this on small arrays many times a sample, where five passes of shifts cost more than the work)."""


def _spread(v: np.ndarray) -> np.ndarray:
    """Insert a zero bit above every bit of ``v`` (uint64, values < 2^32)."""
    v = np.asarray(v).astype(np.uint64) & np.uint64(0xFFFFFFFF)
    return _SPREAD16[v & np.uint64(0xFFFF)] | (_SPREAD16[v >> np.uint64(16)] << np.uint64(32))


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


def morton_encode16(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """:func:`morton_encode` of cells whose row and column are below 2^16 (an IndexError
    otherwise): one table lookup per coordinate."""
    return _SPREAD16[x] | (_SPREAD16[y] << np.uint64(1))


def morton_decode(code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns (int64) of Morton codes: the inverse of :func:`morton_encode`."""
    code = np.asarray(code, dtype=np.uint64)
    return _compact(code >> np.uint64(1)).astype(np.int64), _compact(code).astype(np.int64)


_MASKS3 = (
    (32, 0x001F00000000FFFF),
    (16, 0x001F0000FF0000FF),
    (8, 0x100F00F00F00F00F),
    (4, 0x10C30C30C30C30C3),
    (2, 0x1249249249249249),
)


def _spread3(v: np.ndarray) -> np.ndarray:
    """Insert two zero bits above every bit of ``v`` (values < 2^21)."""
    v = np.asarray(v).astype(np.uint64) & np.uint64(0x1FFFFF)
    for shift, mask in _MASKS3:
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def _compact3(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_spread3`: keep every third bit of ``v`` and pack them."""
    v = v.astype(np.uint64) & np.uint64(0x1249249249249249)
    for shift, mask in (
        (2, 0x10C30C30C30C30C3),
        (4, 0x100F00F00F00F00F),
        (8, 0x001F0000FF0000FF),
        (16, 0x001F00000000FFFF),
        (32, 0x00000000001FFFFF),
    ):
        v = (v | (v >> np.uint64(shift))) & np.uint64(mask)
    return v


def morton3_encode(z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """3-D Z-order code (uint64) of cells at (z, y, x) (non-negative ints < 2^21)."""
    return _spread3(x) | (_spread3(y) << np.uint64(1)) | (_spread3(z) << np.uint64(2))


def morton3_decode(code: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, y, x) (int64) of 3-D Morton codes: the inverse of :func:`morton3_encode`."""
    code = np.asarray(code, dtype=np.uint64)
    return tuple(_compact3(code >> np.uint64(k)).astype(np.int64) for k in (2, 1, 0))
