"""Sequences back to full-size masks, on the device the predictions are on; Dice at full size."""

from __future__ import annotations

import torch

__all__ = ["dice", "reconstruct"]


def reconstruct(pred: torch.Tensor, box: torch.Tensor, valid: torch.Tensor, canvas, fill=0) -> torch.Tensor:
    """Paint every valid patch into its box by nearest upsampling: full-size maps.

    Args:
        pred: (B, L, p, p) labels, or (B, L, K, p, p) per-class scores.
        box: (B, L, 4) as (x1, x2, y1, y2), canvas pixels, half-open, square, side a multiple of p.
        valid: (B, L) bool; invalid rows are ignored.
        canvas: (H, W) of the output (a batch's canvases padded to the largest).
        fill: value where no valid box covers a pixel.
    Returns:
        (B, H, W) or (B, K, H, W) in ``pred``'s dtype and on its device. Equals, bit for bit, a
        loop that resizes each patch with nearest neighbour into its box. Work is vectorised per
        distinct box size (a handful), never per leaf.
    """
    scores = pred.dim() == 5
    b, n, p = pred.shape[0], pred.shape[1], pred.shape[-1]
    h, w = int(canvas[0]), int(canvas[1])
    extra = (pred.shape[2],) if scores else ()
    box = box.to(pred.device)
    valid = valid.to(pred.device).bool()
    size = box[..., 1] - box[..., 0]
    sizes = torch.unique(size[valid]).tolist() if bool(valid.any()) else []
    big = max(sizes) if sizes else 1
    hp = -(-max(h, int(box[..., 3][valid].max()) if sizes else h) // big) * big
    wp = -(-max(w, int(box[..., 1][valid].max()) if sizes else w) // big) * big
    out = torch.full((b,) + extra + (hp, wp), fill, dtype=pred.dtype, device=pred.device)
    for s in sizes:
        f = s // p
        bi, li = torch.nonzero(valid & (size == s), as_tuple=True)
        patches = pred[bi, li]  # (m, [K,] p, p)
        blocks = patches.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1) if f > 1 else patches
        ty = box[bi, li, 2] // s
        tx = box[bi, li, 0] // s
        if scores:
            view = out.view(b, extra[0], hp // s, s, wp // s, s).permute(0, 2, 4, 1, 3, 5)  # b, ty, tx, K, s, s
        else:
            view = out.view(b, hp // s, s, wp // s, s).permute(0, 1, 3, 2, 4)  # b, ty, tx, s, s
        view[bi, ty, tx] = blocks
    return out[..., :h, :w]


def dice(pred_full: torch.Tensor, target_full: torch.Tensor, classes=None, ignore_index: int | None = None):
    """Per-class Dice of label maps of the same shape, pooled over the batch.

    ``classes``: labels to score (default: every label in either map, less ``ignore_index``);
    pixels whose target is ``ignore_index`` are left out; a class absent from both scores 1.
    Returns ``(classes, dice)``: int64 and float64 tensors on the inputs' device.
    """
    if pred_full.shape != target_full.shape:
        raise ValueError(f"pred_full: expected the target's shape {tuple(target_full.shape)}, found {tuple(pred_full.shape)}")
    p, t = pred_full.reshape(-1).long(), target_full.reshape(-1).long()
    if ignore_index is not None:
        keep = t != ignore_index
        p, t = p[keep], t[keep]
    if classes is None:
        classes = torch.unique(torch.cat([p, t]))
        if ignore_index is not None:
            classes = classes[classes != ignore_index]
    classes = torch.as_tensor(classes, dtype=torch.int64, device=p.device)
    inter = torch.stack([((p == c) & (t == c)).sum() for c in classes]) if len(classes) else torch.zeros(0)
    total = torch.stack([(p == c).sum() + (t == c).sum() for c in classes]) if len(classes) else torch.zeros(0)
    inter, total = inter.double(), total.double()
    score = torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total))
    return classes, score
