"""Exact block-sum pyramids.

Level ``k`` of a pyramid holds, for every ``2^k x 2^k`` block of the input (along axes 0 and 1),
the exact sum of the block. Integer inputs are summed in an integer type wide enough never to
overflow, so averages computed from the sums are exact; float inputs are summed in float64.
Rows and columns past the input's edge count as zeros (an input whose side is not a multiple of
``2^k`` gives ``ceil(side / 2^k)`` blocks). Any trailing axes (channels) are carried along.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

__all__ = ["accumulator_dtype", "halve", "next_level", "sum_pyramid"]

_BAND_ROWS = 64  # even; 64 rows of an 8 K RGB image in uint16 = 3 MiB, cache-sized
_THREADED_PIXELS = 1 << 22


def accumulator_dtype(dtype: np.dtype, level: int) -> np.dtype:
    """Narrowest dtype that holds the sum of ``4**level`` values of ``dtype`` without overflow."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        dtype = np.dtype(np.uint8)
    if dtype.kind == "f":
        return np.dtype(np.float64)
    bits = dtype.itemsize * 8 + 2 * level
    for candidate in (8, 16, 32, 64):
        if bits <= candidate - (dtype.kind == "i"):
            return np.dtype(f"{dtype.kind}{candidate // 8}")
    return np.dtype(np.int64)


def halve(a: np.ndarray, out_dtype: np.dtype | None = None) -> np.ndarray:
    """Sums of the 2x2 blocks of ``a`` along axes 0 and 1, zero-padding odd sides.

    Returns an array of shape ``(ceil(h / 2), ceil(w / 2)) + a.shape[2:]`` in ``out_dtype``
    (default: ``a``'s dtype).
    """
    out_dtype = np.dtype(out_dtype or a.dtype)
    h, w = a.shape[:2]
    if h % 2 or w % 2:
        pad = [(0, h % 2), (0, w % 2)] + [(0, 0)] * (a.ndim - 2)
        a = np.pad(a, pad)
    rows = np.add(a[0::2], a[1::2], dtype=out_dtype)
    return np.add(rows[:, 0::2], rows[:, 1::2])


def sum_pyramid(a: np.ndarray, levels: int) -> list[np.ndarray]:
    """``[a, sums of 2x2 blocks, sums of 4x4 blocks, ...]``: ``levels + 1`` arrays in all.

    Level ``k`` has dtype :func:`accumulator_dtype` ``(a.dtype, k)`` (level 0 is ``a`` itself).
    """
    out = [a]
    for k in range(1, levels + 1):
        out.append(next_level(out[-1], a.dtype, k))
    return out


def next_level(previous: np.ndarray, source_dtype: np.dtype, level: int) -> np.ndarray:
    """Level ``level`` of a pyramid of ``source_dtype`` values from level ``level - 1``."""
    if np.dtype(source_dtype) == np.uint8 and level <= 4:
        return _halve_uint8_sums(previous)
    return halve(previous, accumulator_dtype(source_dtype, level))


def _halve_uint8_sums(a: np.ndarray) -> np.ndarray:
    """:func:`halve` for levels 0..3 of a uint8 pyramid (sums of at most 4^3 uint8 values).

    OpenCV's area resize by 2 averages each 2x2 block; on values scaled by 4 that average is the
    exact block sum, and with blocks of at most 4^4 uint8 values it still fits uint16. Work goes
    in bands of rows that stay in cache, split over two threads for large inputs (numpy and
    OpenCV release the GIL). Equal to numpy's strided adds bit for bit, several times faster.
    """
    h, w = a.shape[:2]
    squeeze = a.ndim == 3 and a.shape[2] == 1  # OpenCV would drop a channel axis of length 1
    src = a[:, :, 0] if squeeze else a
    rest = src.shape[2:]
    ho, wo = -(-h // 2), -(-w // 2)
    out = np.empty((ho, wo) + rest, np.uint16)

    def work(r0: int, r1: int) -> None:
        buf = np.zeros((_BAND_ROWS, 2 * wo) + rest, np.uint16)  # an odd last column stays 0
        for r in range(r0, r1, _BAND_ROWS):
            n = min(_BAND_ROWS, r1 - r)
            band = buf[: n + n % 2]
            band[:n, :w] = src[r : r + n]
            band[n:] = 0
            band <<= 2
            rows = band.shape[0] // 2
            cv2.resize(band, (wo, rows), dst=out[r // 2 : r // 2 + rows], interpolation=cv2.INTER_AREA)

    if h * w < _THREADED_PIXELS:
        work(0, h)
    else:
        middle = (h // 2) // _BAND_ROWS * _BAND_ROWS
        with ThreadPoolExecutor(max_workers=2) as pool:
            for job in [pool.submit(work, 0, middle), pool.submit(work, middle, h)]:
                job.result()
    return out[:, :, None] if squeeze else out
