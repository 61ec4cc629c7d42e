"""What a compiled dataset knows about itself: normalisation constants and class weights.

Both come from the manifest's ``statistics`` (computed exactly at compile time; ``formats/FORMAT.md``).
By default they use the ``train`` split where the dataset has splits — statistics of validation or
test samples must not reach training — else every sample.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from formats import Dataset, Manifest, open_dataset

__all__ = ["class_weights", "normalization"]


def _manifest(source: Dataset | Manifest | str | os.PathLike) -> Manifest:
    if isinstance(source, Manifest):
        return source
    if isinstance(source, Dataset):
        return source.manifest
    return open_dataset(source).manifest


def _entry(m: Manifest, split: str | None) -> dict:
    st = m.statistics
    if not st:
        raise ValueError("statistics: the dataset has none (compiled before they existed): compile it again")
    name = split if split is not None else ("train" if "train" in st else "all")
    if name not in st:
        raise ValueError(f"split: expected one of {sorted(st)}, found {name!r}")
    return st[name]


def normalization(
    source: Dataset | Manifest | str | os.PathLike, split: str | None = None, windowed: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean, std)`` (float32 arrays of C) of a dataset's split (default: ``train``
    if there is one, else all samples); ``windowed``: of the values clipped to the edge window
    (CT), where the dataset has them."""
    e = _entry(_manifest(source), split)
    if windowed:
        if "windowed" not in e:
            raise ValueError("windowed: the dataset's frames had no fixed window (CT / --window)")
        e = e["windowed"]
    std = np.asarray(e["std"], np.float32)
    return np.asarray(e["mean"], np.float32), np.where(std > 0, std, np.float32(1))


def class_weights(
    source: Dataset | Manifest | str | os.PathLike,
    method: str = "inverse",
    level: str = "cells",
    split: str | None = None,
) -> torch.Tensor:
    """Loss weights per class id (a float32 tensor of ``max id + 1``; 0 for the ignore label and
    for classes never seen), from the exact counts at compile time.

    ``method``: ``inverse`` — ``total / (K * count)``, K the classes seen (scikit-learn's
    "balanced"); ``median`` — median frequency balancing, ``median(freq) / freq``. ``level``:
    ``cells`` (the stored mask patches: what a token-level loss sees) or ``pixels`` (the original
    masks). ``split``: as :func:`normalization`."""
    if method not in ("inverse", "median"):
        raise ValueError(f"method: expected 'inverse' or 'median', found {method!r}")
    if level not in ("cells", "pixels"):
        raise ValueError(f"level: expected 'cells' or 'pixels', found {level!r}")
    m = _manifest(source)
    counts = {int(k): int(n) for k, n in _entry(m, split)["classes"][level].items()}
    if m.ignore_index is not None:
        counts.pop(m.ignore_index, None)
    if not counts:
        raise ValueError("class_weights: the dataset has no labelled pixels")
    ids = np.array(sorted(counts))
    n = np.array([counts[i] for i in ids], np.float64)
    seen = n > 0
    freq = n / n.sum()
    w = np.zeros_like(n)
    if method == "inverse":
        w[seen] = n.sum() / (seen.sum() * n[seen])
    else:
        w[seen] = np.median(freq[seen]) / freq[seen]
    out = torch.zeros(int(ids.max()) + 1, dtype=torch.float32)
    out[torch.from_numpy(ids)] = torch.from_numpy(w.astype(np.float32))
    return out
