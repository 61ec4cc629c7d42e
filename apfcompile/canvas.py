"""The canvas: the image resampled to the resolution the forest works at.

Without a target resolution the canvas is the image itself. With ``R``:

- ``square`` (the paper): the image is resized to ``R x R`` (aspect not kept);
- ``pad``: resized to fit inside ``R x R`` keeping its aspect (longer side ``R``), then placed at
  the canvas's top-left and zero-padded to ``R x R``.

Images are resampled with OpenCV's area filter when shrinking and bilinear when enlarging; masks
always with nearest neighbour (labels are never blended). The transform back to original pixels
is ``orig = canvas * scale + offset`` per axis (pixel corners, offsets 0 here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from .errors import ParameterError

__all__ = ["Canvas", "fit_canvas", "Fit"]

Fit = Literal["square", "pad"]


@dataclass(frozen=True)
class Canvas:
    """A sample on its canvas: image (H x W [x C]), mask (H x W) or None, and the transform."""

    image: np.ndarray
    mask: np.ndarray | None
    original: tuple[int, int]
    scale: tuple[float, float]
    offset: tuple[float, float] = (0.0, 0.0)


def _resize(a: np.ndarray, size_hw: tuple[int, int], nearest: bool) -> np.ndarray:
    h, w = a.shape[:2]
    if (h, w) == size_hw:
        return a
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if size_hw[0] * size_hw[1] < h * w else cv2.INTER_LINEAR
    wide = a.dtype not in (np.uint8, np.uint16, np.int16, np.float32)
    src = a.astype(np.int32 if a.dtype.kind in "iub" else np.float32) if wide else a
    out = cv2.resize(src, (size_hw[1], size_hw[0]), interpolation=interp)
    if out.ndim == 2 and a.ndim == 3:
        out = out[:, :, None]
    return out.astype(a.dtype, copy=False)


def fit_canvas(
    image: np.ndarray, mask: np.ndarray | None, resolution: int | None = None, fit: Fit = "square"
) -> Canvas:
    """Resample ``image`` (and ``mask``) to the canvas (see the module docstring)."""
    h, w = image.shape[:2]
    if resolution is None:
        return Canvas(image, mask, (h, w), (1.0, 1.0))
    if resolution < 1:
        raise ParameterError("resolution", "an integer >= 1", resolution)
    if fit == "square":
        size = (resolution, resolution)
    elif fit == "pad":
        s = resolution / max(h, w)
        size = (max(1, round(h * s)), max(1, round(w * s)))
    else:
        raise ParameterError("fit", "'square' or 'pad'", fit)
    img = _resize(image, size, nearest=False)
    msk = None if mask is None else _resize(mask, size, nearest=True)
    if fit == "pad" and size != (resolution, resolution):
        pad = ((0, resolution - size[0]), (0, resolution - size[1]))
        img = np.pad(img, pad + ((0, 0),) * (img.ndim - 2))
        if msk is not None:
            msk = np.pad(msk, pad)
    return Canvas(img, msk, (h, w), (h / size[0], w / size[1]))
