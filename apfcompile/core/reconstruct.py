"""Patch sequences -> full-size canvases, and the reconstruction ceiling.

:func:`reconstruct` paints every p x p patch into its leaf's box by nearest upsampling (each
cell of the patch fills its f x f block of the box, ``f = size / p``), which is exactly what a
per-leaf ``cv2.resize(patch, (size, size), interpolation=cv2.INTER_NEAREST)`` gives. Parts of
boxes past the canvas are cut off; canvas pixels no leaf covers (dropped leaves) get ``fill``.

The reconstruction ceiling of a sample is the per-class Dice of its mask rebuilt from its own
serialised mask patches against the original mask: the best score any model can reach through
this sequence.
"""

from __future__ import annotations

import numpy as np

from formats.nodes import NodeTable

from ..errors import ParameterError

__all__ = ["ceiling_dice", "dice", "dice_from_confusion", "dice_per_class", "reconstruct"]


def reconstruct(
    patches: np.ndarray,
    box: np.ndarray | NodeTable,
    valid: np.ndarray | None,
    canvas: tuple[int, int],
    fill: int | float = 0,
) -> np.ndarray:
    """Canvas of ``canvas`` (H, W) from ``patches`` (N, p, p, ...) painted into their boxes.

    The arguments are :func:`loaders.reconstruct`'s, in the same order, for one sample:
    box: (N, 4) as (x1, x2, y1, y2), canvas pixels, half-open, square, side ``p * 2^k``, corners
    on multiples of the side (quadtree leaves) -- or a :class:`~formats.nodes.NodeTable`, whose
    boxes are taken; valid: (N,) bool, or None when every row is a leaf (padding rows of a
    fixed-length sequence are False); fill: the value where no valid box covers a pixel.
    Returns ``(H, W) + patches.shape[3:]`` in the patches' dtype.
    """
    box = box.box if isinstance(box, NodeTable) else np.asarray(box)
    n, p = patches.shape[0], patches.shape[1]
    if box.shape != (n, 4):
        raise ParameterError("box", f"shape ({n}, 4): one (x1, x2, y1, y2) per patch", box.shape)
    if valid is not None:
        valid = np.asarray(valid, bool)
        patches, box = patches[valid], box[valid]
    h, w = int(canvas[0]), int(canvas[1])
    extra = patches.shape[3:]
    if not len(box):
        return np.full((h, w) + extra, fill, patches.dtype)
    x1, x2, y1, y2 = (box[:, j].astype(np.int64) for j in range(4))
    size = x2 - x1
    big = int(size.max())
    hp = max(-(-h // big) * big, int(y2.max()))
    wp = max(-(-w // big) * big, int(x2.max()))
    out = np.full((hp, wp) + extra, fill, patches.dtype)
    factors = size // p
    for f in np.unique(factors):
        f = int(f)
        s = f * p
        sel = np.flatnonzero(factors == f)
        view = out.reshape((hp // s, s, wp // s, s) + extra)
        blocks = patches[sel]
        if f > 1:
            blocks = np.repeat(np.repeat(blocks, f, axis=1), f, axis=2)
        view[y1[sel] // s, :, x1[sel] // s, :] = blocks
    return out[:h, :w]


def dice(
    pred: np.ndarray,
    target: np.ndarray,
    classes: np.ndarray | None = None,
    ignore_index: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class Dice of two label maps of the same shape.

    ``classes``: which labels to score; default every label present in either map (less
    ``ignore_index``). Pixels where the target is ``ignore_index`` are left out. A class absent
    from both maps scores 1. Returns ``(classes, dice)``, dice as float64.
    """
    if pred.shape != target.shape:
        raise ParameterError("pred", f"the target's shape {target.shape}", pred.shape)
    p, t = pred.ravel(), target.ravel()
    if ignore_index is not None:
        keep = t != ignore_index
        p, t = p[keep], t[keep]
    dense = _dense_confusion(p, t)
    if dense is not None:  # small non-negative labels: one bincount, no sort
        confusion, both = dense
        if classes is None:
            classes = both[confusion.sum(axis=0) + confusion.sum(axis=1) > 0]
            if ignore_index is not None:
                classes = classes[classes != ignore_index]
        classes = np.asarray(classes)
        inside = (classes >= 0) & (classes < both.size)
        idx = np.where(inside, classes, 0).astype(np.int64)
        inter = np.where(inside, confusion[idx, idx], 0).astype(np.float64)
        total = np.where(inside, confusion.sum(axis=1)[idx] + confusion.sum(axis=0)[idx], 0)
        return classes, np.where(total > 0, 2 * inter / np.maximum(total, 1), 1.0)
    if classes is None:
        classes = np.union1d(np.unique(p), np.unique(t))
        if ignore_index is not None:
            classes = classes[classes != ignore_index]
    classes = np.asarray(classes)
    both = np.union1d(classes, np.union1d(np.unique(p), np.unique(t)))
    pi, ti = np.searchsorted(both, p), np.searchsorted(both, t)
    k = both.size
    confusion = np.bincount(pi.astype(np.int64) * k + ti, minlength=k * k).reshape(k, k)
    idx = np.searchsorted(both, classes)
    inter = confusion[idx, idx].astype(np.float64)
    total = confusion.sum(axis=1)[idx] + confusion.sum(axis=0)[idx]
    dice = np.where(total > 0, 2 * inter / np.maximum(total, 1), 1.0)
    return classes, dice


_DENSE_LABELS = 1024
"""Labels below this are counted in one dense K x K confusion matrix (K^2 <= 1 M bins)."""


def _dense_confusion(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(K x K confusion, labels 0..K-1) of two unsigned label arrays whose labels are all below
    :data:`_DENSE_LABELS`, by one ``bincount`` of ``pred * K + target``; None otherwise."""
    if p.dtype.kind != "u" or t.dtype.kind != "u" or p.size == 0:
        return None
    k = int(max(p.max(), t.max())) + 1
    if k > _DENSE_LABELS:
        return None
    wide = np.uint32 if k * k < 2**32 else np.uint64
    codes = p.astype(wide) * wide(k) + t
    return np.bincount(codes, minlength=k * k).reshape(k, k), np.arange(k)


def ceiling_dice(
    mask: np.ndarray,
    mask_patches: np.ndarray,
    leaves: NodeTable,
    ignore_index: int | None = None,
    classes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class Dice of ``mask`` against itself rebuilt from its patches ``mask_patches``.

    ``mask_patches`` (N, p, p) as :func:`apfcompile.core.patches.serialise_mask` made them for
    ``leaves``. Returns ``(classes, dice)`` as :func:`dice`.
    """
    fill = 0 if ignore_index is None else ignore_index
    rebuilt = reconstruct(mask_patches, leaves, None, mask.shape, fill=fill)
    return dice(rebuilt, mask, classes, ignore_index)


def dice_from_confusion(
    labels: np.ndarray, confusion: np.ndarray, ignore_index: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`dice` with ``classes=None`` from a confusion matrix instead of two maps.

    ``confusion[i, j]``: pixels of target label ``labels[j]`` predicted as ``labels[i]``. Target
    pixels of ``ignore_index`` are left out; the classes are the labels present in either map
    (less ``ignore_index``). Returns ``(classes, dice)`` as :func:`dice` does."""
    confusion = np.array(confusion, np.int64)
    labels = np.asarray(labels)
    ignored = labels == ignore_index if ignore_index is not None else np.zeros(labels.size, bool)
    confusion[:, ignored] = 0
    rows, cols = confusion.sum(axis=1), confusion.sum(axis=0)
    present = (rows + cols > 0) & ~ignored
    inter = np.diagonal(confusion)[present].astype(np.float64)
    total = rows[present] + cols[present]
    return labels[present], np.where(total > 0, 2 * inter / np.maximum(total, 1), 1.0)


dice_per_class = dice
"""The name :func:`dice` had before it matched :func:`loaders.dice`."""
