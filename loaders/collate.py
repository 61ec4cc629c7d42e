"""Batching items of possibly different lengths."""

from __future__ import annotations

import torch

from formats.sequence import PAD_ROW

__all__ = ["collate"]


def collate(items: list[dict] | dict) -> dict:
    """Stack items into a batch, padding sequences to the longest with invalid rows.

    A batch that is already assembled (a dict, as ``APFDataset.__getitems__`` returns) passes
    through unchanged.

    Tensors with a sequence axis (``image``, ``mask``, ``size``, ``center``, ``box``, ``valid``) are
    padded along it with :data:`formats.sequence.PAD_ROW`'s values (zeros; centre -1; ``valid``
    False); ``canvas``, ``original`` and ``scale`` are stacked to (B, 2), ``ceiling`` to (B,);
    ``id`` becomes an int64 tensor (B,); ``key`` a list of str; ``labelled`` (labelled datasets) a
    bool tensor (B,). Works with ``pin_memory=True``.
    """
    if isinstance(items, dict):
        return items
    if not items:
        raise ValueError("collate: expected at least one item")
    out: dict = {}
    longest = max(int(it["valid"].shape[0]) for it in items)
    for name in ("image", "mask", "size", "center", "box", "valid"):
        if name not in items[0]:
            continue
        first = items[0][name]
        batch = torch.full((len(items), longest) + tuple(first.shape[1:]), PAD_ROW[name], dtype=first.dtype)
        for i, it in enumerate(items):
            t = it[name]
            batch[i, : t.shape[0]] = t
        out[name] = batch
    for name in ("canvas", "original", "scale", "ceiling"):
        if name in items[0]:
            out[name] = torch.stack([torch.as_tensor(it[name]) for it in items])
    out["id"] = torch.tensor([it["id"] for it in items], dtype=torch.int64)
    out["key"] = [it["key"] for it in items]
    if "labelled" in items[0]:
        out["labelled"] = torch.tensor([bool(it["labelled"]) for it in items], dtype=torch.bool)
    return out
