"""Edge detection: the signal that drives the quadtree.

The pipeline per image (H x W x C, any of uint8 / uint16 / int16 / float32):

1. Grey reduction (:func:`to_grey`): 3 channels -> luminance (ITU-R BT.601 weights 0.299, 0.587,
   0.114, as OpenCV's RGB2GRAY; channels are taken as R, G, B); 1 channel as is; 2 or more than 3
   channels -> mean of the channels; or one chosen channel.
2. Scaling to uint8 (:func:`to_uint8`): uint8 passes unchanged. Other dtypes map a window
   ``[lo, hi]`` linearly onto ``[0, 255]`` (values outside clip, then round half to even). The window
   is either fixed (``window=(lo, hi)``, e.g. CT's HU window ``(-175, 250)``) or, by default, the
   1st and 99th percentiles of the grey image, computed on a regular subsample of at most 2^20
   pixels (deterministic). A constant image maps to all zeros.
3. Gaussian blur with an odd kernel K (``K = 1`` means no blur; sigma derived by OpenCV from K).
4. Canny with hysteresis thresholds ``(lo, hi)``, 3x3 Sobel, L1 gradient (OpenCV's defaults, the
   published code's settings).

The result is an edge map, uint8 0/255 (H x W). :func:`edge_count_grid` reduces it to the number
of edge pixels in every ``cell x cell`` block, which is all the forest needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ParameterError
from .pyramid import halve

__all__ = ["EdgeParams", "edge_count_grid", "edge_map", "to_grey", "to_uint8"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_PERCENTILE_SAMPLES = 1 << 20


@dataclass(frozen=True)
class EdgeParams:
    """Settings of the edge detector (one "view" of a sample).

    blur: odd Gaussian kernel size, >= 1 (1 = no blur).
    canny: Canny hysteresis thresholds (lo, hi), 0 <= lo <= hi.
    window: fixed intensity window (lo, hi) mapped to 0..255 for non-uint8 images, or None for
        the percentile stretch.
    percentiles: the stretch's (low, high) percentiles, used when ``window`` is None.
    channel: use this channel instead of the grey reduction, or None.
    """

    blur: int = 3
    canny: tuple[float, float] = (100.0, 200.0)
    window: tuple[float, float] | None = None
    percentiles: tuple[float, float] = (1.0, 99.0)
    channel: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.blur, int) and self.blur >= 1 and self.blur % 2 == 1):
            raise ParameterError("blur", "an odd integer >= 1", self.blur)
        lo, hi = self.canny
        if not (0 <= lo <= hi):
            raise ParameterError("canny", "thresholds 0 <= lo <= hi", self.canny)
        if self.window is not None and not self.window[0] < self.window[1]:
            raise ParameterError("window", "lo < hi", self.window)
        plo, phi = self.percentiles
        if not (0 <= plo < phi <= 100):
            raise ParameterError("percentiles", "0 <= low < high <= 100", self.percentiles)


def to_grey(image: np.ndarray, channel: int | None = None) -> np.ndarray:
    """One grey plane (H x W) of an H x W or H x W x C image.

    uint8 RGB stays uint8 (OpenCV's fixed-point luminance); other reductions give float32, and a
    single channel keeps its dtype.
    """
    if image.ndim == 2:
        return image
    c = image.shape[2]
    if channel is not None:
        if not 0 <= channel < c:
            raise ParameterError("channel", f"an index in 0..{c - 1}", channel)
        return image[:, :, channel]
    if c == 1:
        return image[:, :, 0]
    if c == 3:
        if image.dtype == np.uint8:
            return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return np.tensordot(image.astype(np.float32, copy=False), _LUMA, axes=([2], [0]))
    return image.mean(axis=2, dtype=np.float32)


def to_uint8(
    grey: np.ndarray,
    window: tuple[float, float] | None = None,
    percentiles: tuple[float, float] = (1.0, 99.0),
) -> np.ndarray:
    """Scale a grey plane to uint8 by the rule in the module docstring."""
    if grey.dtype == np.uint8:
        return grey
    if window is None:
        flat = grey.reshape(-1)
        step = max(1, flat.size // _PERCENTILE_SAMPLES)
        lo, hi = np.percentile(flat[::step], percentiles)
    else:
        lo, hi = window
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        return np.zeros(grey.shape, np.uint8)
    scaled = (grey.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.rint(np.clip(scaled, 0, 255, out=scaled), out=scaled).astype(np.uint8)


def edge_map(image: np.ndarray, params: EdgeParams = EdgeParams()) -> np.ndarray:
    """Canny edge map of ``image``: uint8, 0 or 255, shape (H, W)."""
    grey = to_uint8(to_grey(image, params.channel), params.window, params.percentiles)
    if params.blur > 1:
        grey = cv2.GaussianBlur(grey, (params.blur, params.blur), 0)
    lo, hi = params.canny
    return cv2.Canny(np.ascontiguousarray(grey), lo, hi)


def edge_count_grid(edges: np.ndarray, cell: int) -> np.ndarray:
    """Number of non-zero pixels in every ``cell x cell`` block of a 0/255 edge map.

    ``cell`` is a power of two. Returns shape ``(ceil(H / cell), ceil(W / cell))`` in the narrowest
    unsigned dtype that holds ``cell**2`` (uint8 for cells up to 8 x 8 pixels... a gigapixel canvas
    has ~10^8 cells); pixels past the map's edge count as zero.
    """
    if cell < 1 or cell & (cell - 1):
        raise ParameterError("cell", "a power of two", cell)
    h, w = edges.shape
    # OpenCV's area resize gives the block mean of 0/255 values to within 0.5; for blocks of up
    # to 8 x 8 that mean identifies the count exactly (255 / 64 > 1), and it is far faster than
    # summing in numpy. Larger cells continue with exact integer 2x2 sums.
    first = min(cell, 8)
    hp, wp = -(-h // first) * first, -(-w // first) * first
    e = edges if edges.dtype == np.uint8 else (edges != 0).astype(np.uint8) * 255
    if (hp, wp) != (h, w):
        e = cv2.copyMakeBorder(e, 0, hp - h, 0, wp - w, cv2.BORDER_CONSTANT, value=0)
    if first == 1:
        grid = (e != 0).astype(np.uint8)
    else:
        mean = cv2.resize(e, (wp // first, hp // first), interpolation=cv2.INTER_AREA)
        grid = np.rint(mean * (first * first / 255.0)).astype(np.uint8)
    size = first
    while size < cell:
        size *= 2
        grid = halve(grid, np.min_scalar_type(size * size))
    return grid
