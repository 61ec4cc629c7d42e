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

import cv2
import numpy as np

from formats.nodes import NodeTable

from ..choices import ImageMethod, MaskMethod
from ..errors import InputError, ParameterError
from .pyramid import sum_pyramid

__all__ = ["gather_cells", "mode_patches", "serialise_image", "serialise_mask"]


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
        level, y0, x0 = pyramid[k], leaves.y1[sel] // f, leaves.x1[sel] // f
        if level.shape[0] % patch_size == 0 and level.shape[1] % patch_size == 0:  # every leaf inside
            sums = _aligned_cells(level, y0, x0, patch_size)  # one index per leaf, not per cell
        else:
            sums = gather_cells(level, y0, x0, patch_size)
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
    """Labels (sorted; those present, or all 256 for uint8 masks) and the mask as indices into
    them; :func:`_index_dtype` of the label count holds the indices and one more (the padding's)."""
    if mask.dtype.kind not in "iub":
        raise InputError("mask", f"expected integer class ids, found dtype {mask.dtype}")
    if mask.dtype == np.uint8:  # the common case: the labels are their own indices (no pass)
        return np.arange(256, dtype=np.uint8), mask
    lo, hi = int(mask.min()), int(mask.max())
    if hi - lo <= 1 << 16:
        shifted = mask.astype(np.int64) - lo
        labels = np.flatnonzero(np.bincount(shifted.ravel(), minlength=1)) + lo
        lut = np.zeros(hi - lo + 1, _index_dtype(labels.size))
        lut[labels - lo] = np.arange(labels.size)
        return labels, lut[shifted]
    labels, inverse = np.unique(mask, return_inverse=True)
    return labels, inverse.reshape(mask.shape).astype(_index_dtype(labels.size))


def _index_dtype(k: int) -> np.dtype:
    """The narrowest unsigned dtype holding indices 0..k (k: the padding's index)."""
    return np.dtype(np.uint8 if k < 1 << 8 else np.uint16 if k < 1 << 16 else np.uint32)


def serialise_mask(
    mask: np.ndarray,
    leaves: NodeTable,
    patch_size: int = 8,
    method: MaskMethod = "mode",
    ignore_index: int | None = None,
    fill: int | None = None,
) -> np.ndarray:
    """Patches of a label mask (H x W, integer) for ``leaves``: ``(N, p, p)``, the mask's dtype.

    ``mode`` works on min and max pyramids of the mask's dense label indices: a cell whose min
    equals its max holds one label (most cells: organ interiors, background), decided without
    looking at its pixels; only the mixed cells' pixels are gathered and their votes counted.
    """
    if mask.ndim != 2:
        raise InputError("mask", f"expected an H x W label map, found shape {mask.shape}")
    _factors(leaves, patch_size)  # validates the leaves against the patch size
    if fill is None:
        fill = 0 if ignore_index is None else ignore_index
    if method == "nearest":
        return serialise_image(mask, leaves, patch_size, "nearest")[..., 0]
    if method != "mode":
        raise ParameterError("mask method", "'mode' or 'nearest'", method)
    return mode_patches(mask, leaves, patch_size, ignore_index, fill)[0]


def mode_patches(
    mask: np.ndarray, leaves: NodeTable, patch_size: int, ignore_index: int | None, fill: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`serialise_mask`'s ``mode`` patches, with the confusion of the mask they rebuild to.

    Returns ``(patches, labels, confusion)``: ``confusion[i, j]`` counts the canvas pixels of
    label ``labels[j]`` whose cell's patch value is ``labels[i]``, i.e. the confusion matrix of
    :func:`~apfcompile.core.reconstruct.reconstruct` of the patches against the mask, counted
    without rebuilding it: a uniform cell adds its pixels to the diagonal, a mixed cell its vote
    counts to its winner's row. (The ceiling Dice is read off it:
    :func:`~apfcompile.core.reconstruct.dice_from_confusion`.)
    """
    out = np.full((len(leaves), patch_size, patch_size), fill, mask.dtype)
    if not len(leaves):
        return out, np.zeros(0, mask.dtype), np.zeros((0, 0), np.int64)
    factors = _factors(leaves, patch_size)
    labels, dense = _dense_labels(mask)
    k = labels.size
    outside = k  # the padding's index: it never votes
    ignore = None
    if ignore_index is not None and np.any(labels == ignore_index):
        ignore = int(np.flatnonzero(labels == ignore_index)[0])
    # Pad to a multiple of the largest leaf so every level halves exactly.
    big = int(leaves.size.max())
    h, w = mask.shape
    hp, wp = max(-(-h // big) * big, int(leaves.y2.max())), max(-(-w // big) * big, int(leaves.x2.max()))
    if (hp, wp) == (h, w):  # no padding needed (a power-of-two canvas): the labels as they are
        padded = dense
    else:
        padded = np.full((hp, wp), outside, _index_dtype(k))
        padded[:h, :w] = dense
    lows, highs = [padded], [padded]
    for _ in range(int(factors.max()).bit_length() - 1):
        lows.append(_halve_with(np.minimum, lows[-1]))
        highs.append(_halve_with(np.maximum, highs[-1]))
    table = np.append(labels, fill).astype(mask.dtype)  # dense index -> label; the padding's (k) -> fill
    identity = padded.dtype == mask.dtype == np.uint8  # uint8 labels, no padding: indices are labels
    diagonal = np.zeros(k + 1, np.int64)
    counted = np.zeros(k * (k + 1), np.int64)  # (winner, pixel label) of mixed cells' pixels
    pairs, pending = [], 0  # their keys, counted once ~_MODE_CHUNK_PIXELS of them have gathered
    for f in np.unique(factors):
        f = int(f)
        level = f.bit_length() - 1
        sel = np.flatnonzero(factors == f)
        y0, x0 = leaves.y1[sel] // f, leaves.x1[sel] // f
        best = _aligned_cells(lows[level], y0, x0, patch_size)  # a new array: mixed cells' winners go in
        flat = best.reshape(-1)
        if f == 1:  # cells are pixels: all uniform
            diagonal += np.bincount(flat, minlength=k + 1)
        else:
            uniform = flat == _aligned_cells(highs[level], y0, x0, patch_size).reshape(-1)
            diagonal += f * f * np.bincount(flat[uniform], minlength=k + 1)
            mixed = np.flatnonzero(~uniform)
            leaf, cell = np.divmod(mixed, patch_size * patch_size)
            cy = leaves.y1[sel][leaf] + (cell // patch_size) * f
            cx = leaves.x1[sel][leaf] + (cell % patch_size) * f
            step = max(1, _MODE_CHUNK_PIXELS // (f * f))  # bounds the pixels gathered per pass
            span = np.arange(f)
            for start in range(0, mixed.size, step):
                part = slice(start, start + step)
                votes = padded[(cy[part, None] + span)[:, :, None], (cx[part, None] + span)[:, None, :]]
                votes = votes.reshape(-1, f * f)
                winners = _count_mode(votes, k, ignore)
                flat[mixed[part]] = winners
                pairs.append((winners[:, None].astype(np.int64) * (k + 1) + votes).ravel())
                pending += pairs[-1].size
                if pending >= _MODE_CHUNK_PIXELS:
                    counted += np.bincount(np.concatenate(pairs), minlength=counted.size)
                    pairs, pending = [], 0
        out[sel] = best if identity else table[best]
    if pairs:
        counted += np.bincount(np.concatenate(pairs), minlength=counted.size)
    confusion = counted.reshape(k, k + 1)[:, :k].copy()  # (winner, pixel label); padding left out
    confusion[np.arange(k), np.arange(k)] += diagonal[:k]
    return out, labels, confusion


def _aligned_cells(a: np.ndarray, y0: np.ndarray, x0: np.ndarray, p: int) -> np.ndarray:
    """``a[y0 + i, x0 + j]`` for ``i, j < p`` where y0, x0 are multiples of p and a's sides too:
    one index per block, not per cell. Shape (n, p, p) + a.shape[2:]."""
    h, w = a.shape[:2]
    return a.reshape((h // p, p, w // p, p) + a.shape[2:])[y0 // p, :, x0 // p, :]


_BLOCK_2x2 = np.ones((2, 2), np.uint8)


def _halve_with(op, a: np.ndarray) -> np.ndarray:
    """``op`` (np.minimum or np.maximum) over the 2 x 2 blocks of ``a`` (even sides). 8/16-bit:
    OpenCV's erosion / dilation by a 2 x 2 block anchored at its top-left, every other row and
    column of it (a view), ~2.5x the four strided NumPy reads."""
    if a.dtype in (np.uint8, np.uint16):
        morph = cv2.erode if op is np.minimum else cv2.dilate
        return morph(np.ascontiguousarray(a), _BLOCK_2x2, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[0::2, 0::2]
    return op(op(a[0::2, 0::2], a[1::2, 0::2]), op(a[0::2, 1::2], a[1::2, 1::2]))


def _count_mode(cells: np.ndarray, k: int, ignore: int | None) -> np.ndarray:
    """Majority dense label of each row of ``cells`` (index ``k`` never votes; ``ignore`` only
    wins a cell with nothing else; ties to the smallest label). Every row holds at least one label
    below ``k`` (a mixed cell), so every row has a winner.

    By sorting each row: the longest run of equal values wins, the first (smallest) of equally
    long ones; the work does not depend on how many labels the mask has."""
    m, n = cells.shape
    ranked = np.sort(cells, axis=1)
    steps = np.arange(n, dtype=np.int32)
    starts = np.zeros((m, n), np.int32)
    np.copyto(starts[:, 1:], steps[1:], where=ranked[:, 1:] != ranked[:, :-1])
    score = 2 * (steps - np.maximum.accumulate(starts, axis=1) + 1)  # twice the run's length so far
    score[ranked == k] = 0  # padding never votes
    if ignore is not None:
        score[ranked == ignore] = 1  # beats only padding
    return ranked[np.arange(m), score.argmax(axis=1)].astype(np.int64)
