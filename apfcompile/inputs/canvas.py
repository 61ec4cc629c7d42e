"""The canvas: the image resampled to the resolution the forest works at.

Without a target resolution the canvas is the image itself. With ``R``:

- ``square`` (the paper): the image is resized to ``R x R`` (aspect not kept);
- ``pad``: resized to fit inside ``R x R`` keeping its aspect (longer side ``R``), then placed at
  the canvas's top-left and padded to ``R x R`` with ``pad_value`` (default: the image's
  background, :func:`apfcompile.inputs.modality.background`; CT pads with air). Masks pad with 0.

Images are resampled by :mod:`apfcompile.core.resample` (a whole-factor area reduction, then bilinear);
masks always with nearest neighbour (labels are never blended). The same functions serve the
out-of-core path band by band, with identical results. The transform back to original pixels
is ``orig = canvas * scale + offset`` per axis (pixel corners, offsets 0 here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..choices import Fit
from ..core.resample import resample
from ..errors import ParameterError
from .modality import background

__all__ = ["Canvas", "Fit", "canvas_size", "fit_canvas", "pad_fill"]


def pad_fill(value: float, dtype: np.dtype) -> np.generic:
    """``value`` in ``dtype``, clipped to its range (air's -1024 pads an unsigned CT with 0)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return dtype.type(min(max(round(value), info.min), info.max))
    return dtype.type(value)


@dataclass(frozen=True)
class Canvas:
    """A sample on its canvas: image (H x W [x C]), mask (H x W) or None, the (H, W) the image was
    resampled to (``size``; the canvas is that, padded for ``fit="pad"``), and the transform."""

    image: np.ndarray
    mask: np.ndarray | None
    original: tuple[int, int]
    scale: tuple[float, float]
    offset: tuple[float, float] = (0.0, 0.0)
    size: tuple[int, int] = (0, 0)


def _resize(a: np.ndarray, size_hw: tuple[int, int], nearest: bool) -> np.ndarray:
    if a.shape[:2] == tuple(size_hw):
        return a
    wide = a.dtype not in (np.uint8, np.uint16, np.int16, np.float32) and not nearest
    src = a.astype(np.float32) if wide else a
    return resample(src, size_hw, nearest).astype(a.dtype, copy=False)


def canvas_size(h: int, w: int, resolution: int | None, fit: Fit) -> tuple[tuple[int, int], tuple[int, int]]:
    """(resampled image size, canvas size) for an ``h x w`` image (see the module docstring)."""
    if resolution is None:
        return (h, w), (h, w)
    if resolution < 1:
        raise ParameterError("resolution", "an integer >= 1", resolution)
    if fit == "square":
        return (resolution, resolution), (resolution, resolution)
    if fit == "pad":
        s = resolution / max(h, w)
        return (max(1, round(h * s)), max(1, round(w * s))), (resolution, resolution)
    raise ParameterError("fit", "'square' or 'pad'", fit)


def fit_canvas(
    image: np.ndarray,
    mask: np.ndarray | None,
    resolution: int | None = None,
    fit: Fit = "square",
    pad_value: float | None = None,
) -> Canvas:
    """Resample ``image`` (and ``mask``) to the canvas (see the module docstring)."""
    h, w = image.shape[:2]
    size, full = canvas_size(h, w, resolution, fit)
    if size == (h, w) and full == (h, w):
        return Canvas(image, mask, (h, w), (1.0, 1.0), size=(h, w))
    img = _resize(image, size, nearest=False)
    msk = None if mask is None else _resize(mask, size, nearest=True)
    if full != size:
        pad = ((0, full[0] - size[0]), (0, full[1] - size[1]))
        value = background(img) if pad_value is None else pad_fill(pad_value, img.dtype)
        out = np.empty(full + img.shape[2:], img.dtype)
        out[...] = value
        out[: size[0], : size[1]] = img
        img = out
        if msk is not None:
            msk = np.pad(msk, pad)
    return Canvas(img, msk, (h, w), (h / size[0], w / size[1]), size=size)
