"""NodeTable -> patch sequences: every s x s leaf becomes one p x p patch.

A leaf of side ``s`` is cut into a ``p x p`` grid of cells of ``f x f`` pixels, ``f = s / p``
(leaf sides and ``p`` are powers of two and ``s >= p``). Pixels past the image's right or bottom
edge are padding.

Image methods (the output keeps the input's dtype and channel count):

- ``area`` (default): each cell's exact mean. Integer images: the sum over the cell is exact
  (wide integer accumulators) and the mean is rounded half up, ``floor(sum / f^2 + 1/2)``; padding
  counts as zeros. float32 images: the float64 mean, cast to float32.
- ``nearest``: each cell's top-left pixel, which is what ``cv2.resize(..., INTER_NEAREST)`` picks
  (parity with the published code).

Mask methods (integer label maps, H x W):

- ``mode`` (default): each cell's most frequent label; ties go to the smallest label. Padding
  never votes; with ``ignore_index`` set, ignore pixels vote only in a cell with no other label.
  A cell with no votes at all gets ``fill`` (default: ``ignore_index`` if set, else 0).
- ``nearest``: each cell's top-left pixel, as for images.

All work is vectorised per leaf size: no Python loop runs per leaf.
"""

from __future__ import annotations

import numpy as np

from formats.nodes import NodeTable

from ..choices import ImageMethod, MaskMethod
from ..errors import InputError, ParameterError
from .pyramid import sum_pyramid

__all__ = ["serialise_image", "serialise_mask", "gather_cells"]


_MODE_CHUNK_PIXELS = 1 << 22  # pixels per bincount pass: bounds the temporary index arrays


def _factors(leaves: NodeTable, patch_size: int) -> np.ndarray:
    if not (patch_size >= 1 and not patch_size & (patch_size - 1)):
        raise ParameterError("patch_size", "a power of two", patch_size)
    if len(leaves) and int(leaves.size.min()) < patch_size:
        raise ParameterError(
            "patch_size",
            f"<= the smallest leaf ({int(leaves.size.min())} px)",
            patch_size,
            "build the forest with min_size >= patch_size",
        )
    return leaves.size // patch_size


def gather_cells(a: np.ndarray, y0: np.ndarray, x0: np.ndarray, p: int, fill: int | float = 0) -> np.ndarray:
    """``a[y0 + i, x0 + j]`` for ``i, j < p``: shape ``(n, p, p) + a.shape[2:]``.

    Positions past ``a``'s edges give ``fill``.
    """
    h, w = a.shape[:2]
    steps = np.arange(p)
    rows = y0[:, None] + steps
    cols = x0[:, None] + steps
    rows_in, cols_in = rows < h, cols < w
    out = a[np.minimum(rows, h - 1)[:, :, None], np.minimum(cols, w - 1)[:, None, :]]
    if not (rows_in.all() and cols_in.all()):
        out[~(rows_in[:, :, None] & cols_in[:, None, :])] = fill
    return out


def _as_hwc(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image[:, :, None]
    if image.ndim != 3:
        raise InputError("image", f"expected an H x W or H x W x C array, found shape {image.shape}")
    return image


def serialise_image(
    image: np.ndarray, leaves: NodeTable, patch_size: int = 8, method: ImageMethod = "area"
) -> np.ndarray:
    """Patches of ``image`` (H x W or H x W x C) for ``leaves``: ``(N, p, p, C)``, input dtype."""
    img = _as_hwc(image)
    factors = _factors(leaves, patch_size)
    out = np.zeros((len(leaves), patch_size, patch_size, img.shape[2]), img.dtype)
    if not len(leaves):
        return out
    if method == "nearest":
        for f in np.unique(factors):
            sel = np.flatnonzero(factors == f)
            level = img[::f, ::f]
            out[sel] = gather_cells(level, leaves.y1[sel] // f, leaves.x1[sel] // f, patch_size)
        return out
    if method != "area":
        raise ParameterError("image method", "'area' or 'nearest'", method)
    top = int(factors.max()).bit_length() - 1
    pyramid = sum_pyramid(img, top)
    for f in np.unique(factors):
        k = int(f).bit_length() - 1
        sel = np.flatnonzero(factors == f)
        sums = gather_cells(pyramid[k], leaves.y1[sel] // f, leaves.x1[sel] // f, patch_size)
        out[sel] = mean_from_sums(sums, int(f) * int(f), img.dtype)
    return out


def mean_from_sums(sums: np.ndarray, n: int, dtype: np.dtype) -> np.ndarray:
    """Cell means from cell sums over ``n`` pixels, in ``dtype``: integers rounded half up
    (``floor(sum / n + 1/2)``), floats as float64 means cast."""
    if n == 1:
        return sums.astype(dtype, copy=False)
    if np.dtype(dtype).kind == "f":
        return (sums / n).astype(dtype)
    wide = sums.astype(np.int64) if sums.dtype != np.uint64 else sums
    return np.floor_divide(wide + n // 2, n).astype(dtype)


def _dense_labels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels present in ``mask`` (sorted) and the mask as indices into them (int32)."""
    if mask.dtype.kind not in "iub":
        raise InputError("mask", f"expected integer class ids, found dtype {mask.dtype}")
    lo, hi = int(mask.min()), int(mask.max())
    if hi - lo <= 1 << 16:
        present = np.bincount((mask.astype(np.int64) - lo).ravel(), minlength=1) > 0
        labels = np.flatnonzero(present) + lo
        lut = np.zeros(hi - lo + 1, np.int32)
        lut[labels - lo] = np.arange(labels.size, dtype=np.int32)
        return labels, lut[mask.astype(np.int64) - lo]
    labels, inverse = np.unique(mask, return_inverse=True)
    return labels, inverse.reshape(mask.shape).astype(np.int32)


def serialise_mask(
    mask: np.ndarray,
    leaves: NodeTable,
    patch_size: int = 8,
    method: MaskMethod = "mode",
    ignore_index: int | None = None,
    fill: int | None = None,
) -> np.ndarray:
    """Patches of a label mask (H x W, integer) for ``leaves``: ``(N, p, p)``, the mask's dtype."""
    if mask.ndim != 2:
        raise InputError("mask", f"expected an H x W label map, found shape {mask.shape}")
    factors = _factors(leaves, patch_size)
    if fill is None:
        fill = 0 if ignore_index is None else ignore_index
    if method == "nearest":
        return serialise_image(mask, leaves, patch_size, "nearest")[..., 0]
    if method != "mode":
        raise ParameterError("mask method", "'mode' or 'nearest'", method)
    out = np.full((len(leaves), patch_size, patch_size), fill, mask.dtype)
    if not len(leaves):
        return out
    labels, dense = _dense_labels(mask)
    k = labels.size
    outside = k  # the padding's index: it never votes
    ignore = None
    if ignore_index is not None and np.any(labels == ignore_index):
        ignore = int(np.flatnonzero(labels == ignore_index)[0])
    # Pad to a multiple of the largest leaf so every leaf is a reshape-view away.
    big = int(leaves.size.max())
    h, w = mask.shape
    hp, wp = max(-(-h // big) * big, int(leaves.y2.max())), max(-(-w // big) * big, int(leaves.x2.max()))
    padded = np.full((hp, wp), outside, np.int32)
    padded[:h, :w] = dense
    for f in np.unique(factors):
        f = int(f)
        s = f * patch_size
        sel = np.flatnonzero(factors == f)
        view = padded.reshape(hp // s, s, wp // s, s)
        step = max(1, _MODE_CHUNK_PIXELS // (s * s))
        for start in range(0, sel.size, step):
            part = sel[start : start + step]
            blocks = view[leaves.y1[part] // s, :, leaves.x1[part] // s, :]  # (n, s, s)
            out[part] = _labels_or_fill(_block_mode(blocks, f, patch_size, k, ignore), labels, fill, mask.dtype)
    return out


def _labels_or_fill(index: np.ndarray, labels: np.ndarray, fill: int, dtype: np.dtype) -> np.ndarray:
    """Map dense label indices back to labels; index -1 (no vote) becomes ``fill``."""
    table = np.append(labels, fill).astype(dtype)
    return table[index]


def _block_mode(blocks: np.ndarray, f: int, p: int, k: int, ignore: int | None) -> np.ndarray:
    """Majority dense label per f x f cell of (n, s, s) blocks; -1 where nothing votes.

    Most cells hold one label only (the inside of an organ, the background): their min equals
    their max, which decides them without counting; the votes are counted (one ``bincount`` over
    (cell, label) keys) for the mixed cells alone."""
    n = blocks.shape[0]
    if f == 1:
        votes = blocks.reshape(n, p, p)
        return np.where(votes == k, -1, votes)
    cells = blocks.reshape(n, p, f, p, f).transpose(0, 1, 3, 2, 4).reshape(n * p * p, f * f)
    lo, hi = cells.min(axis=1), cells.max(axis=1)
    best = np.where(lo == k, -1, lo).astype(np.int64)  # uniform cells: their label (padding: -1)
    mixed = np.flatnonzero(lo != hi)
    if mixed.size:
        best[mixed] = _count_mode(cells[mixed], k, ignore)
    return best.reshape(n, p, p)


def _count_mode(cells: np.ndarray, k: int, ignore: int | None) -> np.ndarray:
    """Majority dense label of each row of ``cells`` (index ``k`` never votes; ``ignore`` only
    wins a cell with nothing else; ties to the smallest label); -1 where nothing votes."""
    m = cells.shape[0]
    k1 = k + 1
    keys = cells + (np.arange(m, dtype=np.int64) * k1)[:, None]
    counts = np.bincount(keys.ravel(), minlength=m * k1).reshape(m, k1)[:, :k]
    if ignore is not None:
        only_ignore = counts.sum(axis=1) == counts[:, ignore]
        counts[~only_ignore, ignore] = 0
    best = counts.argmax(axis=1)
    best[counts[np.arange(best.size), best] == 0] = -1
    return best
