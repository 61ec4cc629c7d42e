"""Resampling an image to its canvas, identically whole or band by band.

Images: an exact whole-factor area reduction first (``f = floor(min(src / dst))``, each output
pixel the mean of an ``f x f`` block, OpenCV's area filter), then bilinear interpolation for the
remaining factor (below 2) with OpenCV's pixel-centre convention ``src = (dst + 1/2) * s - 1/2``,
edges replicated. Masks: nearest neighbour, ``src = floor((dst + 1/2) * s)``; labels never blend.
Every output row depends on a known, small range of source rows, so :func:`resample_rows` gives a
band of the canvas with exactly the values the whole-image resampling gives.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["resample", "resample_rows"]

Rows = Callable[[int, int], np.ndarray]


def _plan(src: int, dst: int) -> tuple[int, int, np.ndarray]:
    """Whole factor f, reduced size, and the (float64) sample positions in the reduced image."""
    f = max(1, src // dst)
    reduced = src // f
    pos = np.clip((np.arange(dst) + 0.5) * (reduced / dst) - 0.5, 0, reduced - 1)
    # On OpenCV's 1/32-pixel interpolation grid, so that a band's shifted positions (pos - first
    # row) round exactly as the whole image's do.
    return f, reduced, np.round(pos * 32) / 32


def _reduce(block: np.ndarray, f: int, width: int) -> np.ndarray:
    if f == 1:
        return block[:, : width * 1] if block.shape[1] != width else block
    rows = block.shape[0] // f
    out = cv2.resize(np.ascontiguousarray(block[: rows * f, : width * f]), (width, rows), interpolation=cv2.INTER_AREA)
    return out.reshape((rows, width) + block.shape[2:])


def resample_rows(
    rows: Rows, src_hw: tuple[int, int], dst_hw: tuple[int, int], y0: int, y1: int, nearest: bool = False
) -> np.ndarray:
    """Canvas rows ``[y0, y1)`` of the source (read through ``rows(a, b)``) resampled to ``dst_hw``."""
    (sh, sw), (dh, dw) = src_hw, dst_hw
    if (sh, sw) == (dh, dw):
        return rows(y0, y1)
    if nearest:
        ys = np.minimum(((np.arange(y0, y1) + 0.5) * (sh / dh)).astype(np.int64), sh - 1)
        xs = np.minimum(((np.arange(dw) + 0.5) * (sw / dw)).astype(np.int64), sw - 1)
        block = rows(int(ys[0]), int(ys[-1]) + 1)
        return np.ascontiguousarray(block[ys - ys[0]][:, xs])
    fy, ry, py = _plan(sh, dh)
    fx, rx, px = _plan(sw, dw)
    lo = int(np.floor(py[y0]))
    hi = min(ry, int(np.floor(py[y1 - 1])) + 2)  # the row below, for interpolation
    reduced = _reduce(rows(lo * fy, hi * fy), fy, rx)
    map_x = np.broadcast_to(px.astype(np.float32), (y1 - y0, dw))
    map_y = np.broadcast_to((py[y0:y1] - lo).astype(np.float32)[:, None], (y1 - y0, dw))
    out = cv2.remap(
        reduced,
        np.ascontiguousarray(map_x),
        np.ascontiguousarray(map_y),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out.reshape((y1 - y0, dw) + reduced.shape[2:])


def resample(image: np.ndarray, dst_hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """The whole image resampled to ``dst_hw`` (the same values as any banding of it)."""
    return resample_rows(lambda a, b: image[a:b], image.shape[:2], dst_hw, 0, dst_hw[0], nearest)
