"""Sequences back to full-size masks, on the device the predictions are on; Dice at full size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["dice", "reconstruct", "to_original"]


def reconstruct(
    pred: torch.Tensor,
    box: torch.Tensor,
    valid: torch.Tensor,
    canvas: tuple[int, int] | torch.Tensor,
    fill: int | float = 0,
) -> torch.Tensor:
    """Paint every valid patch into its box by nearest upsampling: full-size maps.

    Args:
        pred: (B, L, p, p) labels, or (B, L, K, p, p) per-class scores; volumes (B, L, p, p, p)
            or (B, L, K, p, p, p).
        box: (B, L, 4) as (x1, x2, y1, y2), canvas pixels, half-open, square, side p * 2^k,
            corners on multiples of the side (quadtree leaves); volumes (B, L, 6) with (z1, z2)
            after them (octree leaves).
        valid: (B, L) bool; invalid rows are ignored.
        canvas: (H, W) of the output (a batch's canvases padded to the largest); (D, H, W).
        fill: value where no valid box covers a pixel.
    Returns:
        (B, H, W) or (B, K, H, W) -- volumes (B, D, H, W) or (B, K, D, H, W) -- in ``pred``'s
        dtype and on its device; equal, bit for bit, to a loop that resizes each patch with
        nearest neighbour into its box.

    How: a leaf of side ``s = p * f`` is exactly its p x p patch on the canvas coarsened by ``f``.
    So the map is built coarse to fine: paint the largest leaves' patches at their level, upsample
    by 2 (nearest), paint the next size, and so on. Work is the patches themselves plus about 4/3
    of the output written once, vectorised per leaf size, never a loop per leaf.
    """
    if box.shape[-1] == 6:
        return _reconstruct_volume(pred, box, valid, canvas, fill)
    scores = pred.dim() == 5
    b, p = pred.shape[0], pred.shape[-1]
    h, w = int(canvas[0]), int(canvas[1])
    extra = (pred.shape[2],) if scores else ()
    box = box.to(pred.device)
    valid = valid.to(pred.device).bool()
    size = box[..., 1] - box[..., 0]
    sizes = sorted(torch.unique(size[valid]).tolist(), reverse=True) if bool(valid.any()) else []
    if not sizes:
        return torch.full((b,) + extra + (h, w), fill, dtype=pred.dtype, device=pred.device)
    if any(s % p or (s // p) & (s // p - 1) for s in sizes):
        raise ValueError(f"box sides must be p * 2^k (p = {p}); found sides {sizes}")
    big = sizes[0]
    hp = -(-max(h, int(box[..., 3][valid].max())) // big) * big
    wp = -(-max(w, int(box[..., 1][valid].max())) // big) * big
    f = big // p
    level = torch.full((b,) + extra + (hp // f, wp // f), fill, dtype=pred.dtype, device=pred.device)
    for s in sizes:
        step = f // (s // p)  # upsample from the current level to this size's level
        if step > 1:
            level = _upsample(level, step)
            f //= step
        bi, li = torch.nonzero(valid & (size == s), as_tuple=True)
        ty, tx = box[bi, li, 2] // s, box[bi, li, 0] // s
        rows, cols = level.shape[-2] // p, level.shape[-1] // p
        if scores:
            view = level.view(b, extra[0], rows, p, cols, p).permute(0, 2, 4, 1, 3, 5)  # b, ty, tx, K, p, p
        else:
            view = level.view(b, rows, p, cols, p).permute(0, 1, 3, 2, 4)  # b, ty, tx, p, p
        view[bi, ty, tx] = pred[bi, li]
    if f > 1:
        level = _upsample(level, f)
    return level[..., :h, :w]


def _reconstruct_volume(pred, box, valid, canvas, fill) -> torch.Tensor:
    """:func:`reconstruct` for octree leaves: each leaf size painted at full size, its patches
    repeated f times along the three axes (the leaves tile the volume: every voxel written once)."""
    scores = pred.dim() == 6
    b, p = pred.shape[0], pred.shape[-1]
    d, h, w = (int(v) for v in canvas)
    extra = (pred.shape[2],) if scores else ()
    box = box.to(pred.device).long()
    valid = valid.to(pred.device).bool()
    size = box[..., 1] - box[..., 0]
    sizes = sorted(torch.unique(size[valid]).tolist(), reverse=True) if bool(valid.any()) else []
    if not sizes:
        return torch.full((b,) + extra + (d, h, w), fill, dtype=pred.dtype, device=pred.device)
    if any(s % p or (s // p) & (s // p - 1) for s in sizes):
        raise ValueError(f"box sides must be p * 2^k (p = {p}); found sides {sizes}")
    big = sizes[0]
    full = [-(-max(n, int(box[..., j][valid].max())) // big) * big for n, j in ((d, 5), (h, 3), (w, 1))]
    out = torch.full((b,) + extra + tuple(full), fill, dtype=pred.dtype, device=pred.device)
    for s in sizes:
        f = s // p
        bi, li = torch.nonzero(valid & (size == s), as_tuple=True)
        tz, ty, tx = box[bi, li, 4] // s, box[bi, li, 2] // s, box[bi, li, 0] // s
        blocks = pred[bi, li]
        if f > 1:
            blocks = blocks.repeat_interleave(f, -1).repeat_interleave(f, -2).repeat_interleave(f, -3)
        grid = (full[0] // s, s, full[1] // s, s, full[2] // s, s)
        if scores:
            view = out.view(b, extra[0], *grid).permute(0, 2, 4, 6, 1, 3, 5, 7)  # b, tz, ty, tx, K, s, s, s
        else:
            view = out.view(b, *grid).permute(0, 1, 3, 5, 2, 4, 6)  # b, tz, ty, tx, s, s, s
        view[bi, tz, ty, tx] = blocks
    return out[..., :d, :h, :w]


def _upsample(x: torch.Tensor, k: int) -> torch.Tensor:
    """Nearest upsampling of the last two axes by an integer ``k``.

    On the CPU numpy's ``repeat`` runs at memory speed (torch's strided copy of an expanded view
    is several times slower there); elsewhere the expand-and-copy stays on the device.
    """
    if x.device.type == "cpu" and x.dtype != torch.bfloat16 and not x.requires_grad:
        a = x.numpy()
        return torch.from_numpy(np.repeat(np.repeat(a, k, axis=-1), k, axis=-2))
    *lead, h, w = x.shape
    return x[..., :, None, :, None].expand(*lead, h, k, w, k).reshape(*lead, h * k, w * k)


def dice(
    pred: torch.Tensor,
    target: torch.Tensor,
    classes: torch.Tensor | Sequence[int] | None = None,
    ignore_index: int | None = None,
    labelled: torch.Tensor | None = None,
    reduce: str = "batch",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class Dice of label maps of the same shape (B, ...).

    ``classes``: labels to score (default: every label in either map, less ``ignore_index``);
    pixels whose target is ``ignore_index`` are left out; a class absent from both scores 1.
    ``labelled``: the batch's ``labelled`` (B,) bool; unlabelled samples are left out whole.
    ``reduce``: ``"batch"`` pools the counts over the batch (a (K,) score); ``"none"`` scores
    every sample on its own ((B, K); an unlabelled sample's row is NaN).
    Returns ``(classes, dice)``: int64 and float64 tensors on the inputs' device. Vectorised: one
    ``bincount`` over (sample, class) pairs, whatever K.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred: expected the target's shape {tuple(target.shape)}, found {tuple(pred.shape)}")
    if reduce not in ("batch", "none"):
        raise ValueError(f"reduce: expected 'batch' or 'none', found {reduce!r}")
    b = pred.shape[0] if pred.dim() else 1
    p, t = pred.reshape(b, -1).long(), target.reshape(b, -1).long()
    keep = torch.ones(b, dtype=torch.bool, device=p.device)
    if labelled is not None:
        keep = torch.as_tensor(labelled, dtype=torch.bool, device=p.device).reshape(-1)
        if keep.shape[0] != b:
            raise ValueError(f"labelled: expected ({b},) flags, found {tuple(keep.shape)}")
    counted = t != ignore_index if ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
    counted &= keep[:, None]
    if classes is None:
        classes = torch.unique(torch.cat([p[counted], t[counted]]))
        if ignore_index is not None:
            classes = classes[classes != ignore_index]
    classes = torch.as_tensor(classes, dtype=torch.int64, device=p.device)
    k = int(classes.numel())
    sorted_classes, order = torch.sort(classes)

    def index(x: torch.Tensor) -> torch.Tensor:  # class slot of every pixel, k where not scored
        pos = torch.searchsorted(sorted_classes, x).clamp(max=max(k - 1, 0))
        hit = (sorted_classes[pos] == x) if k else torch.zeros_like(x, dtype=torch.bool)
        return torch.where(hit & counted, order[pos] if k else pos, torch.full_like(x, k))

    rows = torch.arange(b, device=p.device)[:, None] * (k + 1)
    pi, ti = index(p), index(t)
    n = b * (k + 1)
    pc = torch.bincount((rows + pi).reshape(-1), minlength=n).reshape(b, k + 1)[:, :k]
    tc = torch.bincount((rows + ti).reshape(-1), minlength=n).reshape(b, k + 1)[:, :k]
    both = torch.where(pi == ti, pi, torch.full_like(pi, k))
    ic = torch.bincount((rows + both).reshape(-1), minlength=n).reshape(b, k + 1)[:, :k]
    if reduce == "batch":
        pc, tc, ic = pc.sum(0), tc.sum(0), ic.sum(0)
    inter, total = ic.double(), (pc + tc).double()
    score = torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total))
    if reduce == "none":
        score[~keep] = float("nan")
    return classes, score


def to_original(
    pred: torch.Tensor,
    original: tuple[int, int] | torch.Tensor,
    scale: tuple[float, float] | torch.Tensor,
    offset: tuple[float, float] | torch.Tensor = (0.0, 0.0),
) -> torch.Tensor:
    """A canvas-size prediction ``(..., H_canvas, W_canvas)`` back on the original image's pixel
    grid ``(..., H, W)``, by the stored transform ``orig = canvas * scale + offset`` (pixel
    corners; an item's ``original`` and ``scale``): each original pixel takes the canvas pixel its
    centre falls in (nearest; the canvas's padding is never reached). Labels stay labels."""
    h, w = int(original[0]), int(original[1])
    dev = pred.device
    ys = ((torch.arange(h, device=dev, dtype=torch.float64) + 0.5 - float(offset[0])) / float(scale[0])).floor()
    xs = ((torch.arange(w, device=dev, dtype=torch.float64) + 0.5 - float(offset[1])) / float(scale[1])).floor()
    ys = ys.long().clamp(0, pred.shape[-2] - 1)
    xs = xs.long().clamp(0, pred.shape[-1] - 1)
    return pred[..., ys[:, None], xs[None, :]]
